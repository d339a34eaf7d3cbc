"""The catalogue: the books, and how readers find them.

A book is a plain row of `books`, written at the configured consistency (LOCAL_QUORUM) and stamped from the
instance's version clock, with its search terms (app/search.py) in the same row, so the terms never describe
another version of the book. A book's lock is opened when it is added and withdrawn before it is deleted, through
the reservations part, so a deletion never races a reserve into a reservation of a book that is gone. Searching
reads what the storage-attached indexes find (docs/architecture.md, "How the catalogue is searched"); "available now"
keeps of those matches the books whose lock is free, read through the listings. The readers are `readers.py`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from app.db import Database
from app.models import Book, Page, UnknownBook
from app.repository.base import (
    PageTokens,
    RepositoryBase,
    Resume,
    book_from_row,
    check_page_size,
    term_conditions,
)
from app.repository.clock import VersionClock
from app.repository.listings import ReservationListings
from app.repository.reservations import Reservations
from app.rules import DEFAULT_PAGE_SIZE, check_text, check_year
from app.search import RESULT_BOUND, SearchResult, Sort, page_of, search_terms

BOOK_COLUMNS = "book_id, title, author, genre, published_year"
# Books read in one `IN` read by `get_books` (as the listings read locks): a list of a thousand reservations sorted by
# title is ten reads, not a thousand at once, and no one read asks a coordinator for a thousand partitions.
BOOKS_PER_READ = 100


# The checks are app/rules.py's, the same the API's parsers apply, so the UI's forms accept what the API accepts.
def _text(value: object, field: str) -> str:
    return check_text(value, field)


def _year(value: object) -> int | None:
    return check_year(value)


class CatalogueRepository(RepositoryBase):
    """The books. Given the database, the instance's version clock (a book's row is stamped from it), the page
    tokens, the reservations part, through which a book's lock is opened and withdrawn with the book, and the
    listings, which say which books are held now."""

    def __init__(
        self,
        db: Database,
        clock: VersionClock,
        pages: PageTokens,
        reservations: Reservations,
        listings: ReservationListings,
    ) -> None:
        super().__init__(db)
        self.clock = clock
        self.pages = pages
        self.reservations = reservations
        self.listings = listings

    # -- books ------------------------------------------------------------------------------
    async def get_book(self, book_id: UUID) -> Book:
        row = (
            await self.db.execute(self.cql(f"SELECT {BOOK_COLUMNS} FROM {{ks}}.books WHERE book_id = ?"), [book_id])
        ).one()
        if row is None:
            raise UnknownBook(book_id)
        return book_from_row(row)

    async def get_books(self, book_ids: Sequence[UUID]) -> dict[UUID, Book]:
        """The books of these ids that exist, by id: BOOKS_PER_READ at a time in one read each."""
        unique = list(dict.fromkeys(book_ids))
        chunks = [unique[i : i + BOOKS_PER_READ] for i in range(0, len(unique), BOOKS_PER_READ)]
        query = self.cql(f"SELECT {BOOK_COLUMNS} FROM {{ks}}.books WHERE book_id IN ?")
        read = await asyncio.gather(*(self.db.execute(query, [chunk]) for chunk in chunks))
        return {row.book_id: book_from_row(row) for result in read for row in result.rows}

    async def list_books(
        self,
        *,
        genre: str | None = None,
        author: str | None = None,
        q: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        page: str | None = None,
    ) -> Page[Book]:
        """A page of the catalogue in storage order, for the API and the tools: what `search_books` finds, paged
        by Cassandra's tokens, so any number of books can be walked through."""
        where, params = _book_conditions(q, genre, author)
        rows, next_page = await self._page_query(
            f"SELECT {BOOK_COLUMNS} FROM {{ks}}.books{where}", params, page_size, page, Resume.by_token("book_id", UUID)
        )
        return Page([book_from_row(r) for r in rows], next_page)

    async def search_books(
        self,
        q: str | None = None,
        *,
        genre: str | None = None,
        author: str | None = None,
        sort: Sort = Sort.TITLE,
        page: int = 1,
        page_size: int = DEFAULT_PAGE_SIZE,
        bound: int = RESULT_BOUND,
        available_only: bool = False,
    ) -> SearchResult:
        """What a reader's search finds: one page in the chosen order, the count (exact up to `bound`) and the
        genre and author facets (app/search.py). Reads up to bound + 1 matching rows, in pages of SCAN_PAGE.
        `available_only` keeps the books nobody holds now, from one read of the matches' locks: the count, the
        facets and the pages are then those of the available books among the first `bound` matches, and when the
        read found more than those the count says so (not exact), however few are left."""
        found = await self.matching_books(q, genre=genre, author=author, bound=bound)
        more, matches = len(found) > bound, found[:bound]  # the row past the bound only says "more": never shown
        looked_at = len(matches)
        if available_only:
            held = await self.listings.holders([b.book_id for b in matches])
            matches = [b for b in matches if b.book_id not in held]
        return page_of(
            matches,
            bound=bound,
            order=sort,
            page=page,
            page_size=check_page_size(page_size),
            more=more,
            looked_at=looked_at,
        )

    async def matching_books(
        self, q: str | None = None, *, genre: str | None = None, author: str | None = None, bound: int = RESULT_BOUND
    ) -> list[Book]:
        """The books a search finds, in storage order: at most bound + 1 (one more than the bound means there are
        more), for a search's page or for the desk's list of a title's reservations."""
        where, params = _book_conditions(q, genre, author)
        rows = await self._up_to(f"SELECT {BOOK_COLUMNS} FROM {{ks}}.books{where}", params, bound)
        return [book_from_row(r) for r in rows]

    async def backfill_search_terms(self) -> int:
        """Writes `search_terms` for every book (a schema upgrade from a version without them): at the book's own
        write time, so a newer write of the book (or its deletion) racing the backfill is never overwritten.
        Returns how many books were written."""
        written = 0
        update = self.cql("UPDATE {ks}.books USING TIMESTAMP ? SET search_terms = ? WHERE book_id = ?")
        async for rows in self._scan(f"SELECT {BOOK_COLUMNS}, WRITETIME(title) AS written FROM {{ks}}.books"):
            books = [r for r in rows if r.written is not None]
            await asyncio.gather(
                *(
                    self.db.execute(update, [r.written, search_terms(book_from_row(r)), r.book_id], write=True)
                    for r in books
                )
            )
            written += len(books)
        return written

    async def create_book(
        self,
        title: str,
        author: str,
        genre: str,
        published_year: int | None,
        book_id: UUID | None = None,
    ) -> Book:
        """Adds a book, or overwrites the one with this `book_id` (so imports can run twice)."""
        book = Book(
            book_id or uuid4(),
            _text(title, "title"),
            _text(author, "author"),
            _text(genre, "genre"),
            _year(published_year),
        )
        await self._write_book(book)
        await self.reservations.open(book.book_id)
        return book

    async def update_book(
        self,
        book_id: UUID,
        *,
        title: str | None = None,
        author: str | None = None,
        genre: str | None = None,
        published_year: int | None = None,
    ) -> Book:
        book = await self.get_book(book_id)
        updated = Book(
            book_id,
            _text(title, "title") if title is not None else book.title,
            _text(author, "author") if author is not None else book.author,
            _text(genre, "genre") if genre is not None else book.genre,
            _year(published_year) if published_year is not None else book.published_year,
        )
        await self._write_book(updated)
        return updated

    async def _write_book(self, book: Book) -> None:
        await self.db.execute(
            self.cql(
                f"INSERT INTO {{ks}}.books ({BOOK_COLUMNS}, search_terms) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            [
                book.book_id,
                book.title,
                book.author,
                book.genre,
                book.published_year,
                search_terms(book),
                self.clock.next(),
            ],
            write=True,
        )

    async def delete_book(self, book_id: UUID) -> None:
        """Withdraws the book's lock first (free -> withdrawn, refused while it is held), so a reserve racing the
        deletion either took the book before (and the deletion is refused) or finds it withdrawn."""
        await self.get_book(book_id)
        withdrawn = await self.reservations.withdraw(book_id)
        # The row goes above its own last write, whichever instance's clock stamped that: a book written by an
        # instance whose clock is ahead is still deleted by one whose clock is behind.
        written = (
            await self.db.execute(
                self.cql("SELECT WRITETIME(title) AS written FROM {ks}.books WHERE book_id = ?"), [book_id]
            )
        ).one()
        version = max(withdrawn, (written.written or 0) + 1 if written else 0)
        await self.db.execute(
            self.cql("DELETE FROM {ks}.books USING TIMESTAMP ? WHERE book_id = ?"), [version, book_id], write=True
        )


def _book_conditions(q: str | None, genre: str | None, author: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of a catalogue query: each word of `q` one of the book's search terms (app/search.py),
    genre and author exact (any case, through their own indexes)."""
    conditions, params = term_conditions(q)
    if genre and genre.strip():
        conditions.append("genre = ?")
        params.append(genre.strip())
    if author and author.strip():
        conditions.append("author = ?")
        params.append(author.strip())
    return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), params
