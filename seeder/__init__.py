"""Fills the catalogue and the readers: made-up data reproducible by seed, or a catalogue CSV file.

    from seeder import seed
    result = await seed(library, books=1000, users=100, seed=42)

From a shell: `python -m seeder --help`.
"""

from seeder.catalogue_csv import CatalogueError, read_catalogue
from seeder.fake import UserRow, fake_books, fake_users
from seeder.load import SeedResult, seed

__all__ = [
    "CatalogueError",
    "SeedResult",
    "UserRow",
    "fake_books",
    "fake_users",
    "read_catalogue",
    "seed",
]
