"""Writing books and readers through the repository, many at once.

Every write is an upsert keyed by an id fixed in advance (derived from the seed, or given by the CSV), so
a retry after a timeout, or a second run, rewrites the same rows and duplicates nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from app.demo_data import DEFAULT_SEED, UserRow, demo_books, demo_readers
from app.models import Book
from app.repository import Library
from toolkit.cli import retrying, run_bounded
from toolkit.progress import Progress

# Enough requests in flight to keep every node busy; more only queues inside the driver.
DEFAULT_CONCURRENCY = 64


@dataclass(frozen=True)
class SeedResult:
    books: int
    users: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.books + self.users

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self, keyspace: str) -> str:
        return (
            f"seeded {self.books} books and {self.users} users into keyspace {keyspace} "
            f"in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)"
        )


async def write_books(
    library: Library,
    books: Iterable[Book],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> int:
    written = 0

    async def write(book: Book) -> None:
        nonlocal written
        await retrying(
            lambda: library.create_book(book.title, book.author, book.genre, book.published_year, book_id=book.book_id)
        )
        written += 1
        if progress:
            progress.advance()

    await run_bounded(books, write, concurrency)
    return written


async def write_users(
    library: Library,
    users: Iterable[UserRow],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> int:
    written = 0

    async def write(user: UserRow) -> None:
        nonlocal written
        await retrying(lambda: library.import_user(user.name, user.email, user.user_id))
        written += 1
        if progress:
            progress.advance()

    await run_bounded(users, write, concurrency)
    return written


async def seed(
    library: Library,
    *,
    books: int = 1000,
    users: int = 100,
    seed: int = DEFAULT_SEED,
    catalogue: list[Book] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    show_progress: bool = False,
) -> SeedResult:
    """Fills the catalogue (`books` made-up books, or the rows of `catalogue`) and `users` readers with card
    numbers 1..users. The same seed always writes the same rows, so calling it again changes nothing. The
    made-up rows come from app.demo_data, the generator of the app's own demo catalogue."""
    started = time.monotonic()
    book_rows: Iterable[Book] = catalogue if catalogue is not None else demo_books(books, seed)
    book_total = len(catalogue) if catalogue is not None else books
    progress = Progress(book_total + users, "seeding") if show_progress else None
    try:
        written_books = await write_books(library, book_rows, concurrency=concurrency, progress=progress)
        written_users = await write_users(
            library, demo_readers(users, seed), concurrency=concurrency, progress=progress
        )
    finally:
        if progress:
            progress.close()
    return SeedResult(written_books, written_users, time.monotonic() - started)
