"""What readers and staff see of the reservations: the views, paged or streamed, and who holds a book now (from the
locks). Reads only; the writes are the use cases' (app/repository/reservations.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

from app.db import Database
from app.models import NotFound, Page, Place, Reservation
from app.repository.base import PageTokens, RepositoryBase, Resume, reservation_from_row
from app.repository.locks import LockRunner, LockState, place_in, token_of
from app.repository.store import COLUMNS
from app.rules import DEFAULT_PAGE_SIZE
from app.search import RESULT_BOUND

# The most locks one read asks for (`holders`): a catalogue page's 15 in one, a thousand in ten reads at once.
HOLDERS_PER_READ = 100


class ReservationListings(RepositoryBase):
    def __init__(self, db: Database, pages: PageTokens, locks: LockRunner) -> None:
        super().__init__(db)
        self.pages = pages
        self.locks = locks

    async def get_reservation(self, reservation_id: UUID) -> Reservation:
        row = (
            await self.db.execute(
                self.cql(f"SELECT {COLUMNS} FROM {{ks}}.reservations WHERE reservation_id = ?"), [reservation_id]
            )
        ).one()
        if row is None or row.book_id is None:  # None: only a move's hint is left of it
            raise NotFound.reservation(reservation_id)
        return reservation_from_row(row)

    async def holder(self, book_id: UUID, *, serial: bool = False) -> Reservation | None:
        """The reservation that holds the book now, from the lock; `serial` reads it linearizably. A move's target not
        yet confirmed is not a hold (docs/reservation-protocol.md)."""
        lock = await self.locks.read(book_id, serial=serial)
        return lock.reservation() if lock.state is LockState.HELD else None

    async def queue(self, book_id: UUID) -> list[Place]:
        """The book's queue, in order, from its lock."""
        lock = await self.locks.read(book_id)
        return [place_in(lock, entry.user_id) for entry in lock.queue]

    async def places(self, user_id: int) -> list[Place]:
        """Every queue the reader is in, with their place in it, from the locks (one indexed read)."""
        locks = await self.locks.read_waiting_for(user_id)
        return sorted((place_in(lock, user_id) for lock in locks if lock.in_queue(user_id)), key=lambda p: p.position)

    async def holders(self, book_ids: Sequence[UUID], *, a_whole_span: bool = False) -> dict[UUID, Reservation]:
        """The reservations holding any of these books now, by book.

        `a_whole_span`: the books are every book of the catalogue from the first's token to the last's (an unfiltered
        page of `list_books`, in token order). The held locks of that span then come from one read of the index on
        the lock's state, which costs Cassandra a quarter to a tenth of reading each lock by key (performance notes,
        issue 21). Otherwise, or while that index cannot answer, the locks are read by key: one read for a catalogue
        page, and reads of HOLDERS_PER_READ books at once for more (a search's "available now", the desk's books of
        a title), so no one read asks a coordinator for a thousand partitions."""
        if a_whole_span and book_ids:
            tokens = [token_of(book_id) for book_id in book_ids]
            held = await self.locks.read_held_between(min(tokens), max(tokens))
            if held is not None:
                wanted = set(book_ids)  # (a book added since the page was read may lie in the span)
                return {
                    lock.book_id: lock.reservation()
                    for lock in held
                    if lock.book_id in wanted and lock.state is LockState.HELD
                }
        chunks = [book_ids[i : i + HOLDERS_PER_READ] for i in range(0, len(book_ids), HOLDERS_PER_READ)]
        read = await asyncio.gather(*(self.locks.read_many(chunk) for chunk in chunks))
        return {lock.book_id: lock.reservation() for locks in read for lock in locks if lock.state is LockState.HELD}

    async def list_reservations(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, page: str | None = None
    ) -> Page[Reservation]:
        return await self._page(
            f"SELECT {COLUMNS} FROM {{ks}}.reservations", [], page_size, page, Resume.by_token("reservation_id", UUID)
        )

    async def each_reservation(self) -> AsyncIterator[list[Reservation]]:
        """Every reservation, a page at a time as Cassandra pages the table, for a listing streamed whole."""
        async for rows in self._scan(f"SELECT {COLUMNS} FROM {{ks}}.reservations"):
            yield [reservation_from_row(row) for row in rows if row.book_id is not None]

    async def user_reservations(
        self, user_id: int, *, page_size: int = DEFAULT_PAGE_SIZE, page: str | None = None
    ) -> Page[Reservation]:
        return await self._page(
            f"SELECT {COLUMNS} FROM {{ks}}.user_reservations WHERE user_id = ?",
            [user_id],
            page_size,
            page,
            Resume.after("book_id", UUID),
        )

    async def some_reservations(self, user_id: int | None = None, *, bound: int = RESULT_BOUND) -> list[Reservation]:
        """Up to bound + 1 reservations (one more than the bound means there are more), in storage order: a reader's
        (one partition), or everybody's. For the pages' lists, which sort, count and number what they read
        (app/search.py), as the catalogue's search does."""
        if user_id is None:
            rows = await self._up_to(f"SELECT {COLUMNS} FROM {{ks}}.reservations", [], bound)
        else:
            cql = f"SELECT {COLUMNS} FROM {{ks}}.user_reservations WHERE user_id = ?"
            rows = await self._up_to(cql, [user_id], bound)
        return [reservation_from_row(r) for r in rows if r.book_id is not None]

    async def book_reservations(self, book_id: UUID) -> list[Reservation]:
        result = await self.db.execute(
            self.cql(f"SELECT {COLUMNS} FROM {{ks}}.book_reservations WHERE book_id = ?"), [book_id]
        )
        return [reservation_from_row(r) for r in result.rows if r.book_id is not None]

    async def _page(
        self, cql: str, params: list[Any], page_size: int, page: str | None, resume: Resume
    ) -> Page[Reservation]:
        rows, next_page = await self._page_query(cql, params, page_size, page, resume)
        return Page([reservation_from_row(r) for r in rows if r.book_id is not None], next_page)
