"""Fills the catalogue and the readers: made-up data reproducible by seed (app.demo_data's generator, the one
the app's demo catalogue comes from), or a catalogue CSV file.

    from seeder import seed
    result = await seed(library, books=1000, users=100, seed=42)

From a shell: `python -m seeder --help`.
"""

from seeder.catalogue_csv import CatalogueError, read_catalogue
from seeder.load import SeedResult, seed

__all__ = [
    "CatalogueError",
    "SeedResult",
    "read_catalogue",
    "seed",
]
