"""A small demo catalogue and a few readers, written when `python -m app` finds an empty database.

Deterministic (a fixed Faker seed), so every fresh start shows the same library. The fuller seeder
(`seeder/`) may call `seed_if_empty` or replace it; readers get the card numbers 1..N.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from faker import Faker

from app.repository import Library

log = logging.getLogger(__name__)

GENRES = ("Fiction", "Mystery", "Science Fiction", "Fantasy", "History", "Biography", "Poetry", "Science")
SEED = 4
# Faker's lorem words make odd titles; these make ones that read like books.
ADJECTIVES = ("Silent", "Hidden", "Last", "Winter", "Crimson", "Distant", "Golden", "Broken", "Quiet", "Lost", "Paper")
NOUNS = (
    "River",
    "Garden",
    "Lighthouse",
    "Orchard",
    "Harbour",
    "Archive",
    "Mountain",
    "Letters",
    "Clockmaker",
    "Bridge",
)
# Book ids derive from the seed and position, so seeding twice (two instances starting together) writes the
# same rows instead of doubling the catalogue.
NAMESPACE = uuid.UUID("6f1c1f0e-5b4f-4d0e-9a51-0b6c1ea9d0a4")


def demo_books(count: int = 60) -> list[dict[str, object]]:
    fake = Faker()
    fake.seed_instance(SEED)
    authors = [fake.name() for _ in range(max(3, count // 5))]
    books = []
    for i in range(count):
        adjective, noun = fake.random_element(ADJECTIVES), fake.random_element(NOUNS)
        title = (
            f"The {adjective} {noun}",
            f"The {noun} of {fake.city()}",
            f"{adjective} {noun}s",
            f"{noun}s in {fake.month_name()}",
        )[i % 4]
        books.append(
            {
                "book_id": uuid.uuid5(NAMESPACE, f"book-{i}"),
                "title": title,
                "author": authors[i % len(authors)],
                "genre": GENRES[i % len(GENRES)],
                "published_year": fake.random_int(1850, 2024),
            }
        )
    return books


def demo_readers(count: int = 12) -> list[dict[str, object]]:
    fake = Faker()
    fake.seed_instance(SEED + 1)
    readers = []
    for user_id in range(1, count + 1):
        name = fake.name()
        readers.append({"user_id": user_id, "name": name, "email": fake.email()})
    return readers


async def seed_if_empty(library: Library, *, books: int = 60, readers: int = 12) -> bool:
    """Writes the demo data if the catalogue and the readers are both empty; True if it did."""
    has_books, has_readers = await asyncio.gather(library.list_books(page_size=1), library.list_users(page_size=1))
    if has_books.items or has_readers.items:
        return False
    for book in demo_books(books):
        await library.create_book(
            book["title"], book["author"], book["genre"], book["published_year"], book_id=book["book_id"]
        )  # type: ignore[arg-type]
    for reader in demo_readers(readers):
        await library.create_user(reader["name"], reader["email"], user_id=reader["user_id"])  # type: ignore[arg-type]
    log.info("seeded the demo catalogue: %d books, %d readers (cards 1..%d)", books, readers, readers)
    return True
