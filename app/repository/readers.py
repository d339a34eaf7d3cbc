"""The readers: the cards of `users` (readers and librarians), each named by its card number.

Every write of a card is a conditional one (a lightweight transaction), nine in all: a new card is claimed with
`IF NOT EXISTS`, so a new reader never overwrites another; a change (name and e-mail, PIN, deactivation, a
librarian's role) applies `IF EXISTS`, so a reader deleted meanwhile is not brought back by it; an import
updates only a card that is not being deleted (`IF state = null`); and a deletion marks the card `closing`,
then either unmarks it or deletes it, each step conditional on the one before. So Cassandra orders every write
of a card, not the clocks of the app instances. How a deletion and a reserve for the same reader exclude each
other is the reservations module's docstring's (the reserve reads the reader again after writing its views).

What this part does not decide: who may change a card, what else a deactivation or a deletion ends (its
sessions), or how a holder proves who they are before changing their own PIN. Those rules span parts, and are
app/service.py's.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import uuid4

from app.access import Caller
from app.credentials import hash_pin
from app.db import Database
from app.models import Conflict, InvalidInput, Page, Role, UnknownReader, User
from app.repository.base import PageTokens, RepositoryBase, Resume, now, term_conditions
from app.repository.listings import ReservationListings
from app.rules import (
    DEFAULT_PAGE_SIZE,
    FIRST_LEGACY_CARD,
    HANDED_OUT_CARDS,
    MAX_CARD,
    check_email,
    check_pin,
    check_text,
    is_card_number,
)
from app.search import RESULT_BOUND, reader_terms

# The most conditional writes of the schema upgrade's backfill in flight at once.
BACKFILL_CONCURRENCY = 32

USER_COLUMNS = "user_id, name, email, joined_at"  # what a new card's row is written with
USER_READ_COLUMNS = f"{USER_COLUMNS}, role, pin_hash, deactivated_at, generation"
CARD_NUMBERS = HANDED_OUT_CARDS  # app/rules.py says why these


class ReaderRepository(RepositoryBase):
    """The cards. Given the database, the page tokens, and the reservations' listings: a reader who holds
    reservations is not deleted."""

    def __init__(self, db: Database, pages: PageTokens, listings: ReservationListings) -> None:
        super().__init__(db)
        self.pages = pages
        self.listings = listings

    async def get_user(self, user_id: int) -> User:
        user = await self.find_user(user_id)
        if user is None:
            raise UnknownReader(user_id)
        return user

    async def find_user(self, user_id: int) -> User | None:
        """The card, or None if there is none of that number (for a session's check at every request)."""
        row = await self._user_row(user_id)
        return None if row is None else user_from_row(row)

    async def _user_row(self, user_id: int) -> Any | None:
        result = await self.db.execute(
            self.cql(f"SELECT {USER_READ_COLUMNS} FROM {{ks}}.users WHERE user_id = ?"), [user_id]
        )
        return result.one()

    async def pin_hash(self, user_id: int) -> tuple[User, str | None] | None:
        """The card and its PIN's hash, for signing in; None if there is no such card."""
        row = await self._user_row(user_id)
        return None if row is None else (user_from_row(row), row.pin_hash)

    async def list_users(
        self, *, q: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, page: str | None = None
    ) -> Page[User]:
        """A page of the cards in storage order, for the API and the tools; `q`: only those whose name or e-mail
        has a word beginning with each word of it (as the catalogue's `q`)."""
        where, params = _where(q)
        query = f"SELECT {USER_READ_COLUMNS} FROM {{ks}}.users{where}"
        rows, next_page = await self._page_query(query, params, page_size, page, Resume.by_token("user_id", int))
        return Page([user_from_row(r) for r in rows], next_page)

    async def matching_users(self, q: str | None = None, *, bound: int = RESULT_BOUND) -> list[User]:
        """The cards a desk's search finds (every card without `q`), in storage order: at most bound + 1 (one more
        than the bound means there are more), for the pages to sort, count and number (app/search.py)."""
        where, params = _where(q)
        rows = await self._up_to(f"SELECT {USER_READ_COLUMNS} FROM {{ks}}.users{where}", params, bound)
        return [user_from_row(r) for r in rows]

    async def backfill_search_terms(self) -> int:
        """Writes `search_terms` for every card that has none (a schema upgrade from a version without them), only if
        its name and e-mail are still those the terms are made of: a card renamed meanwhile was written with its own
        terms, and a card deleted meanwhile is not brought back. Returns how many cards were written."""
        written = 0
        update = self.cql("UPDATE {ks}.users SET search_terms = ? WHERE user_id = ? IF name = ? AND email = ?")
        # Each is a Paxos round on its card's replicas: a few at a time, not a scanned page's thousand at once.
        slots = asyncio.Semaphore(BACKFILL_CONCURRENCY)

        async def write(row: Any) -> bool:
            async with slots:
                return bool((await self.db.execute(update, _terms_of_row(row), write=True)).was_applied)

        async for rows in self._scan("SELECT user_id, name, email, search_terms FROM {ks}.users"):
            missing = [r for r in rows if r.search_terms is None and r.name is not None]
            written += sum(await asyncio.gather(*(write(r) for r in missing)))
        return written

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
        name, email = check_text(name, "name"), check_email(email)
        if user_id is not None and not is_card_number(user_id):
            raise InvalidInput("user_id must be a positive 32-bit integer", field="user_id")
        pin_hashed = await _hashed(pin, role)
        for _ in range(1 if user_id is not None else 20):
            card = user_id or random.randint(*CARD_NUMBERS)
            user = User(card, name, email, now(), role, True, pin is not None, uuid4())
            if await self._claim_card(user, pin_hashed):
                return user
        if user_id is not None:
            raise Conflict.card_taken(user_id)
        raise Conflict.no_free_card()

    async def import_user(self, name: str, email: str, user_id: int) -> User:
        """Writes card `user_id` as a reader for the seeder and the tools: an upsert, so an import can run twice (an
        existing card keeps its joined date, role and PIN). The API never calls this."""
        name, email = check_text(name, "name"), check_email(email)
        if not is_card_number(user_id):
            raise InvalidInput("user_id must be a positive 32-bit integer", field="user_id")
        if await self._claim_card(User(user_id, name, email, now(), generation=uuid4()), None):
            return await self.get_user(user_id)
        result = await self.db.execute(
            self.cql("UPDATE {ks}.users SET name = ?, email = ?, search_terms = ? WHERE user_id = ? IF state = null"),
            [name, email, reader_terms(name, email), user_id],
            write=True,
        )
        if not result.was_applied:
            raise Conflict.reader_closing(user_id)
        return await self.get_user(user_id)

    async def ensure_librarian(self, caller: Caller) -> None:
        """Makes card `caller.user_id` a librarian named `caller.name`, creating it without a PIN if it is new."""
        if not await self._claim_card(
            User(caller.user_id, caller.name, "staff@library.invalid", now(), Role.LIBRARIAN, generation=uuid4()), None
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
        await self._claim_card(User(user_id, f"Card {user_id}", "", now(), generation=uuid4()), None)

    async def update_user(self, user_id: int, *, name: str | None = None, email: str | None = None) -> User:
        user = await self.get_user(user_id)
        updated = User(
            user_id,
            check_text(name, "name") if name is not None else user.name,
            check_email(email) if email is not None else user.email,
            user.joined_at,
            user.role,
            user.active,
            user.has_pin,
            user.generation,
        )
        # IF EXISTS: a reader deleted meanwhile is not brought back by the update.
        result = await self.db.execute(
            self.cql("UPDATE {ks}.users SET name = ?, email = ?, search_terms = ? WHERE user_id = ? IF EXISTS"),
            [updated.name, updated.email, reader_terms(updated.name, updated.email), user_id],
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
        card's sessions with it is the service's rule (app/service.py)."""
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
                f"INSERT INTO {{ks}}.users ({USER_COLUMNS}, role, pin_hash, generation, search_terms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
            ),
            [
                user.user_id,
                user.name,
                user.email,
                user.joined_at,
                role,
                pin_hashed,
                user.generation,
                reader_terms(user.name, user.email),
            ],
            write=True,
        )
        return result.was_applied

    async def delete_user(self, user_id: int) -> None:
        """Marks the reader 'closing' with a conditional write, then looks for their reservations. A reserve for
        them reads their row again after writing its views: it either sees the mark and gives the book back, or
        wrote its views before this looked, and then the deletion is refused (the reservations module's docstring).
        A join of a book's queue, and a hand-off of a book to them, read the row again the same way after the
        transition (the join or the views), and this looks for their places in queues as well as their holds."""
        user = await self.get_user(user_id)
        marked = await self.db.execute(
            self.cql("UPDATE {ks}.users SET state = 'closing' WHERE user_id = ? IF joined_at = ? AND state = null"),
            [user_id, user.joined_at],
            write=True,
        )
        if not marked.was_applied:
            raise Conflict.reader_changed(user_id)
        held, places = await asyncio.gather(
            self.listings.user_reservations(user_id, page_size=1), self.listings.places(user_id)
        )
        if held.items or places:
            await self.db.execute(
                self.cql("UPDATE {ks}.users SET state = null WHERE user_id = ? IF state = 'closing'"),
                [user_id],
                write=True,
            )
            raise Conflict.reader_in_use(user_id) if held.items else Conflict.reader_waiting(user_id)
        await self.db.execute(
            self.cql("DELETE FROM {ks}.users WHERE user_id = ? IF state = 'closing'"), [user_id], write=True
        )


def _terms_of_row(row: Any) -> list[Any]:
    """The values of the backfill's update for a card's row: its terms, its number, and the name and e-mail that the
    terms are made of (the update's condition)."""
    return [reader_terms(row.name, row.email or ""), row.user_id, row.name, row.email]


def _where(q: str | None) -> tuple[str, list[Any]]:
    conditions, params = term_conditions(q)
    return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), params


def user_from_row(row: Any) -> User:
    role = Role(row.role) if row.role else Role.READER
    return User(
        row.user_id,
        row.name,
        row.email,
        row.joined_at,
        role,
        row.deactivated_at is None,
        row.pin_hash is not None,
        row.generation,
    )


async def _hashed(pin: str | None, role: Role) -> str | None:
    """The PIN's argon2 hash, computed off the event loop (tens of milliseconds of CPU)."""
    if pin is None:
        return None
    return await asyncio.to_thread(hash_pin, check_pin(pin, staff=role is Role.LIBRARIAN))
