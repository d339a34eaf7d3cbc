"""Made-up books and readers, the same ones for the same seed: the app's demo catalogue and the seeder's data.

There is one generator. `python -m app` writes its first DEMO_BOOKS books and DEMO_READERS readers for
DEFAULT_SEED into an empty database (`seed_if_empty`); `python -m seeder --books N --users M --seed S`
writes the first N and M for seed S (`seeder.seed`), DEFAULT_SEED by default. So the demo catalogue is
exactly what `python -m seeder --books 60 --users 12` writes, and seeding a database that shows the demo
extends it instead of adding a second catalogue beside it.

Ids are derived from the seed and the row's position, not drawn at random, so writing the same seed again
overwrites the rows written before instead of adding new ones. Books and readers come from separate random
streams: changing the number of readers does not change the books, and the first N books of a larger run
are the N books of a smaller one. Readers get the card numbers 1..N; the app hands out seven-digit
numbers itself, so these never meet.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID, uuid5

from faker import Faker

from app.models import Book, NotFound, Role
from app.repository import Library
from app.rules import DEMO_LIBRARIAN_CARD

log = logging.getLogger(__name__)

DEFAULT_SEED = 42
DEMO_BOOKS = 60
DEMO_READERS = 12

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
# Faker's lorem words make odd titles; these make ones that read like books.
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
# Book i is by one of the first FIRST_AUTHORS + i // BOOKS_PER_NEW_AUTHOR authors of the pool (all of it from
# book ~10,000 on): authors write several books in a catalogue of any size, the demo's 60 books included, so
# following an author's name in the catalogue finds more than the one book.
FIRST_AUTHORS, BOOKS_PER_NEW_AUTHOR = 12, 5


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
    cost more CPU than the database writes themselves on a 100,000-book run."""

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
        return f"{_indefinite(noun)} {noun} in {rng.choice(_MONTHS)}"
    return f"The {noun} of {rng.choice(pools.last_names)}"


def _indefinite(word: str) -> str:
    """The article a title puts before `word`: "An Orchard", "An Empire", "A Harbor" (every noun above starts with
    the sound its letter says, so the letter decides)."""
    return "An" if word[:1].lower() in "aeiou" else "A"


def _author(pools: _Pools, rng: random.Random, index: int) -> str:
    known = min(len(pools.authors), FIRST_AUTHORS + index // BOOKS_PER_NEW_AUTHOR)
    return pools.authors[rng.randrange(len(pools.authors)) % known]


@functools.lru_cache(maxsize=4)
def _book_pools(seed: int) -> _Pools:
    """The pools of `seed`'s books, drawn once per process (~0.3 s of Faker): they depend on the seed alone, and
    the picks from them come from a random stream of their own, so every call still yields the same books."""
    fake, _ = _faker(seed, "books")
    return _Pools(fake, POOL_SIZE)


def demo_books(count: int, seed: int = DEFAULT_SEED) -> Iterator[Book]:
    """Books 0..count-1 of `seed`; lazily, so a million of them never sit in memory."""
    _, rng = _faker(seed, "books")
    pools = _book_pools(seed)
    for index in range(count):
        yield Book(
            book_id_for(seed, index),
            _title(pools, rng),
            _author(pools, rng, index),
            rng.choice(GENRES),
            rng.randint(FIRST_YEAR, LAST_YEAR),
        )


def demo_readers(count: int, seed: int = DEFAULT_SEED) -> Iterator[UserRow]:
    """Readers with card numbers 1..count."""
    fake, _ = _faker(seed, "users")
    for user_id in range(1, count + 1):
        name = fake.name()
        local = re.sub(r"[^a-z]+", ".", name.lower()).strip(".")
        yield UserRow(user_id, name, f"{local}.{user_id}@{fake.free_email_domain()}")


async def seed_if_empty(library: Library, *, books: int = DEMO_BOOKS, readers: int = DEMO_READERS) -> bool:
    """Writes the demo data if the catalogue and the readers are both empty; True if it did. Two instances
    starting together on one empty database write the same rows, so the catalogue is not doubled."""
    has_books, has_readers = await asyncio.gather(library.list_books(page_size=1), library.list_users(page_size=1))
    if has_books.items or has_readers.items:
        return False
    for book in demo_books(books):
        await library.create_book(book.title, book.author, book.genre, book.published_year, book_id=book.book_id)
    for reader in demo_readers(readers):
        await library.import_user(reader.name, reader.email, reader.user_id)
    log.info("seeded the demo catalogue: %d books, %d readers (cards 1..%d)", books, readers, readers)
    return True


async def demo_sign_ins(library: Library, *, readers: int = DEMO_READERS) -> list[str]:
    """Lines for the log that let a newcomer sign in on both sides at once, in development only. The demo librarian
    (card DEMO_LIBRARIAN_CARD) gets a new random password at every start; each demo reader without a PIN gets a
    random one now. A reader's PIN set earlier is kept (it is stored only as a hash, so it cannot be shown again);
    the librarian can set a new one on the reader's page."""
    password = secrets.token_urlsafe(9)
    try:
        await library.get_user(DEMO_LIBRARIAN_CARD)
    except NotFound:
        await library.create_user(
            "Demo Librarian", "librarian@library.invalid", DEMO_LIBRARIAN_CARD, role=Role.LIBRARIAN, pin=password
        )
    else:
        await library.set_pin(DEMO_LIBRARIAN_CARD, password)
    lines = [f"librarian  card {DEMO_LIBRARIAN_CARD}  password {password}"]
    kept = 0
    for card in range(1, readers + 1):
        try:
            user = await library.get_user(card)
        except NotFound:
            continue
        if user.has_pin:
            kept += 1
            continue
        pin = f"{secrets.randbelow(10**6):06d}"
        await library.set_pin(card, pin)
        lines.append(f"reader     card {card:<8}  PIN {pin}       ({user.name})")
    if kept:
        lines.append(f"{kept} demo reader(s) keep the PIN printed when it was set; the librarian can set new ones")
    return lines
