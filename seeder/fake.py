"""Made-up books and readers, the same ones for the same seed.

Ids are derived from the seed and the row's position, not drawn at random, so running the seeder again
with the same seed overwrites the rows it wrote before instead of adding new ones. Books and readers
come from separate random streams: changing --users does not change the books, and the first N books of
a larger run are the N books of a smaller one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID, uuid5

from faker import Faker

from app.models import Book

# Fixed forever: changing it would give every seeded book a new id, and re-runs would duplicate the catalogue.
BOOK_ID_NAMESPACE = UUID("6f1f6a3e-3c1b-5d7e-9a43-2b7f0c1d9e55")

GENRES = (
    "Fantasy",
    "Science Fiction",
    "Mystery",
    "Thriller",
    "Romance",
    "Historical Fiction",
    "Biography",
    "History",
    "Poetry",
    "Philosophy",
    "Children",
    "Travel",
)
_ADJECTIVES = (
    "Silent", "Hidden", "Last", "Broken", "Golden", "Distant", "Forgotten", "Burning", "Quiet", "Endless",
    "Secret", "Winter", "Crimson", "Lost", "Wandering", "Iron",
)  # fmt: skip
_NOUNS = (
    "River", "Garden", "Kingdom", "Letters", "Harbor", "Orchard", "Map", "Empire", "Lighthouse", "Witness",
    "Library", "Voyage", "Mountain", "Promise", "Archive", "Storm",
)  # fmt: skip
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip
FIRST_YEAR, LAST_YEAR = 1850, 2024
POOL_SIZE = 2000


@dataclass(frozen=True)
class UserRow:
    user_id: int
    name: str
    email: str


def book_id_for(seed: int, index: int) -> UUID:
    return uuid5(BOOK_ID_NAMESPACE, f"seed {seed} book {index}")


def _faker(seed: int, stream: str) -> tuple[Faker, random.Random]:
    # One fixed locale: the data must not depend on the machine's language settings.
    fake = Faker("en_US")
    fake.seed_instance(f"{seed}/{stream}")
    return fake, random.Random(f"{seed}/{stream}")


class _Pools:
    """Names drawn once from Faker, then picked from at random: Faker spends ~0.1 ms on each name, which would
    cost more CPU than the database writes themselves on a 100,000-book run. Authors write several books anyway."""

    def __init__(self, fake: Faker, size: int) -> None:
        self.authors = [fake.name() for _ in range(size)]
        self.cities = [fake.city() for _ in range(size // 4 + 1)]
        self.first_names = [fake.first_name() for _ in range(size // 4 + 1)]
        self.last_names = [fake.last_name() for _ in range(size // 4 + 1)]


def _title(pools: _Pools, rng: random.Random) -> str:
    pattern = rng.randrange(5)
    adjective, noun = rng.choice(_ADJECTIVES), rng.choice(_NOUNS)
    if pattern == 0:
        return f"The {adjective} {noun}"
    if pattern == 1:
        return f"{noun} of {rng.choice(pools.cities)}"
    if pattern == 2:
        return f"{rng.choice(pools.first_names)} and the {adjective} {noun}"
    if pattern == 3:
        return f"A {noun} in {rng.choice(_MONTHS)}"
    return f"The {noun} of {rng.choice(pools.last_names)}"


def fake_books(count: int, seed: int) -> Iterator[Book]:
    fake, rng = _faker(seed, "books")
    pools = _Pools(fake, POOL_SIZE)
    for index in range(count):
        yield Book(
            book_id_for(seed, index),
            _title(pools, rng),
            rng.choice(pools.authors),
            rng.choice(GENRES),
            rng.randint(FIRST_YEAR, LAST_YEAR),
        )


def fake_users(count: int, seed: int) -> Iterator[UserRow]:
    """Readers with card numbers 1..count; the app hands out seven-digit numbers itself, so these never meet."""
    fake, _ = _faker(seed, "users")
    for user_id in range(1, count + 1):
        name = fake.name()
        local = re.sub(r"[^a-z]+", ".", name.lower()).strip(".")
        yield UserRow(user_id, name, f"{local}.{user_id}@{fake.free_email_domain()}")
