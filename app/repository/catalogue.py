"""Books and readers: plain rows, written at the configured consistency (LOCAL_QUORUM)."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import UUID, uuid4

from app.access import Caller
from app.credentials import hash_pin
from app.db import Database
from app.models import Book, Conflict, InvalidInput, Page, Role, UnknownBook, UnknownReader, User
from app.repository.base import (
    SCAN_PAGE,
    PageTokens,
    RepositoryBase,
    book_from_row,
    check_page_size,
    now,
)
from app.repository.clock import VersionClock
from app.repository.listings import ReservationListings
from app.repository.reservations import Reservations
from app.rules import (
    DEFAULT_PAGE_SIZE,
    FIRST_LEGACY_CARD,
    HANDED_OUT_CARDS,
    MAX_CARD,
    check_email,
    check_pin,
    check_text,
    check_year,
    is_card_number,
)
from app.search import RESULT_BOUND, SearchResult, Sort, page_of, query_terms, search_terms

BOOK_COLUMNS = "book_id, title, author, genre, published_year"
USER_COLUMNS = "user_id, name, email, joined_at"  # what a new card's row is written with
USER_READ_COLUMNS = f"{USER_COLUMNS}, role, pin_hash, deactivated_at"
CARD_NUMBERS = HANDED_OUT_CARDS  # app/rules.py says why these


# The checks are app/rules.py's, the same the API's parsers apply, so the UI's forms accept what the API accepts.
def _text(value: object, field: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    return check_text(value, field)


def _year(value: object) -> int | None:
    return check_year(value)


def _email(value: object) -> str:
    return check_email(value)


class CatalogueRepository(RepositoryBase):
    """Books and readers. Given the database, the instance's version clock (a book's row is stamped from it), the
    page tokens, and the reservations part: a book's lock is opened and withdrawn with the book, and a reader
    holding reservations is not deleted."""

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
            f"SELECT {BOOK_COLUMNS} FROM {{ks}}.books{where}", params, page_size, page
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
    ) -> SearchResult:
        """What a reader's search finds: one page in the chosen order, the count (exact up to `bound`) and the
        genre and author facets (app/search.py). Reads up to bound + 1 matching rows, in pages of SCAN_PAGE."""
        where, params = _book_conditions(q, genre, author)
        matches: list[Book] = []
        query = f"SELECT {BOOK_COLUMNS} FROM {{ks}}.books{where} LIMIT {bound + 1}"
        async for rows in self._scan(query, params, page_size=min(bound + 1, SCAN_PAGE)):
            matches.extend(book_from_row(r) for r in rows)
        return page_of(matches, bound=bound, order=sort, page=page, page_size=check_page_size(page_size))

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

    # -- readers ----------------------------------------------------------------------------
    async def get_user(self, user_id: int) -> User:
        row = await self._user_row(user_id)
        if row is None:
            raise UnknownReader(user_id)
        return user_from_row(row)

    async def _user_row(self, user_id: int) -> Any | None:
        result = await self.db.execute(
            self.cql(f"SELECT {USER_READ_COLUMNS} FROM {{ks}}.users WHERE user_id = ?"), [user_id]
        )
        return result.one()

    async def pin_hash(self, user_id: int) -> tuple[User, str | None] | None:
        """The card and its PIN's hash, for signing in; None if there is no such card."""
        row = await self._user_row(user_id)
        return None if row is None else (user_from_row(row), row.pin_hash)

    async def list_users(self, *, page_size: int = DEFAULT_PAGE_SIZE, page: str | None = None) -> Page[User]:
        rows, next_page = await self._page_query(f"SELECT {USER_READ_COLUMNS} FROM {{ks}}.users", [], page_size, page)
        return Page([user_from_row(r) for r in rows], next_page)

    async def create_user(
        self,
        name: str,
        email: str,
        user_id: int | None = None,
        *,
        role: Role = Role.READER,
        pin: str | None = None,
    ) -> User:
        """Adds a card: `user_id` if given (a Conflict if that card is taken: a new reader never overwrites another),
        else a free seven-digit card number. With `pin`, the card can sign in at once. Every write of a card is a
        conditional one, so all of them are ordered by Cassandra, not by the clocks of app instances."""
        name, email = _text(name, "name"), _email(email)
        if user_id is not None and not is_card_number(user_id):
            raise InvalidInput("user_id must be a positive 32-bit integer", field="user_id")
        pin_hashed = await _hashed(pin, role)
        for _ in range(1 if user_id is not None else 20):
            user = User(user_id or random.randint(*CARD_NUMBERS), name, email, now(), role, True, pin is not None)
            if await self._claim_card(user, pin_hashed):
                return user
        if user_id is not None:
            raise Conflict.card_taken(user_id)
        raise Conflict.no_free_card()

    async def import_user(self, name: str, email: str, user_id: int) -> User:
        """Writes card `user_id` as a reader for the seeder and the tools: an upsert, so an import can run twice (an
        existing card keeps its joined date, role and PIN). The API never calls this."""
        name, email = _text(name, "name"), _email(email)
        if not is_card_number(user_id):
            raise InvalidInput("user_id must be a positive 32-bit integer", field="user_id")
        if await self._claim_card(User(user_id, name, email, now()), None):
            return await self.get_user(user_id)
        result = await self.db.execute(
            self.cql("UPDATE {ks}.users SET name = ?, email = ? WHERE user_id = ? IF state = null"),
            [name, email, user_id],
            write=True,
        )
        if not result.was_applied:
            raise Conflict.reader_closing(user_id)
        return await self.get_user(user_id)

    async def ensure_librarian(self, caller: Caller) -> None:
        """Makes card `caller.user_id` a librarian named `caller.name`, creating it without a PIN if it is new."""
        if not await self._claim_card(
            User(caller.user_id, caller.name, "staff@library.invalid", now(), Role.LIBRARIAN), None
        ):
            await self.db.execute(
                self.cql("UPDATE {ks}.users SET role = ? WHERE user_id = ? IF EXISTS"),
                [Role.LIBRARIAN.value, caller.user_id],
                write=True,
            )

    async def register_card(self, user_id: int) -> None:
        """Makes card `user_id` a reader if it is not one yet, for the earlier system's endpoints, whose scripts name
        readers by any card number (0 included) and had no readers table. The new API never does this."""
        if not is_card_number(user_id, FIRST_LEGACY_CARD):
            raise InvalidInput(f"user_id must be a card number from {FIRST_LEGACY_CARD} to {MAX_CARD}", field="user_id")
        await self._claim_card(User(user_id, f"Card {user_id}", "", now()), None)

    async def update_user(self, user_id: int, *, name: str | None = None, email: str | None = None) -> User:
        user = await self.get_user(user_id)
        updated = User(
            user_id,
            _text(name, "name") if name is not None else user.name,
            _email(email) if email is not None else user.email,
            user.joined_at,
            user.role,
            user.active,
            user.has_pin,
        )
        # IF EXISTS: a reader deleted meanwhile is not brought back by the update.
        result = await self.db.execute(
            self.cql("UPDATE {ks}.users SET name = ?, email = ? WHERE user_id = ? IF EXISTS"),
            [updated.name, updated.email, user_id],
            write=True,
        )
        if not result.was_applied:
            raise UnknownReader(user_id)
        return updated

    async def set_pin(self, user_id: int, pin: str) -> None:
        """Sets the card's PIN (a librarian's password), hashed; the card can sign in with it from now on."""
        user = await self.get_user(user_id)
        pin_hashed = await _hashed(pin, user.role)
        result = await self.db.execute(
            self.cql("UPDATE {ks}.users SET pin_hash = ? WHERE user_id = ? IF EXISTS"),
            [pin_hashed, user_id],
            write=True,
        )
        if not result.was_applied:
            raise UnknownReader(user_id)

    async def set_active(self, user_id: int, active: bool) -> User:
        """Deactivates the card (it keeps its reservations but cannot sign in) or makes it active again. Ending the
        card's sessions is the accounts part's (`Library.set_active` does both)."""
        result = await self.db.execute(
            self.cql("UPDATE {ks}.users SET deactivated_at = ? WHERE user_id = ? IF EXISTS"),
            [None if active else now(), user_id],
            write=True,
        )
        if not result.was_applied:
            raise UnknownReader(user_id)
        return await self.get_user(user_id)

    async def _claim_card(self, user: User, pin_hashed: str | None) -> bool:
        role = None if user.role is Role.READER else user.role.value
        result = await self.db.execute(
            self.cql(
                f"INSERT INTO {{ks}}.users ({USER_COLUMNS}, role, pin_hash) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
            ),
            [user.user_id, user.name, user.email, user.joined_at, role, pin_hashed],
            write=True,
        )
        return result.was_applied

    async def delete_user(self, user_id: int) -> None:
        """Marks the reader 'closing' with a conditional write, then looks for their reservations. A reserve for
        them reads their row again after writing its views: it either sees the mark and gives the book back, or
        wrote its views before this looked, and then the deletion is refused (the reservations module's docstring)."""
        user = await self.get_user(user_id)
        marked = await self.db.execute(
            self.cql("UPDATE {ks}.users SET state = 'closing' WHERE user_id = ? IF joined_at = ? AND state = null"),
            [user_id, user.joined_at],
            write=True,
        )
        if not marked.was_applied:
            raise Conflict.reader_changed(user_id)
        held = await self.listings.user_reservations(user_id, page_size=1)
        if held.items:
            await self.db.execute(
                self.cql("UPDATE {ks}.users SET state = null WHERE user_id = ? IF state = 'closing'"),
                [user_id],
                write=True,
            )
            raise Conflict.reader_in_use(user_id)
        await self.db.execute(
            self.cql("DELETE FROM {ks}.users WHERE user_id = ? IF state = 'closing'"), [user_id], write=True
        )


def _book_conditions(q: str | None, genre: str | None, author: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of a catalogue query: each word of `q` one of the book's search terms (app/search.py),
    genre and author exact (any case, through their own indexes)."""
    conditions, params = [], []
    for term in query_terms(q or ""):
        conditions.append("search_terms CONTAINS ?")
        params.append(term)
    if genre and genre.strip():
        conditions.append("genre = ?")
        params.append(genre.strip())
    if author and author.strip():
        conditions.append("author = ?")
        params.append(author.strip())
    return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), params


def user_from_row(row: Any) -> User:
    role = Role(row.role) if row.role else Role.READER
    return User(
        row.user_id, row.name, row.email, row.joined_at, role, row.deactivated_at is None, row.pin_hash is not None
    )


async def _hashed(pin: str | None, role: Role) -> str | None:
    """The PIN's argon2 hash, computed off the event loop (tens of milliseconds of CPU)."""
    if pin is None:
        return None
    return await asyncio.to_thread(hash_pin, check_pin(pin, staff=role is Role.LIBRARIAN))
