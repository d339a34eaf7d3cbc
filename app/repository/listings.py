"""What readers and staff see of the reservations: the views, paged or streamed, and who holds a book now (from the
locks). Reads only; the writes are the use cases' (app/repository/reservations.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

from app.db import Database
from app.models import NotFound, Page, Reservation
from app.repository.base import PageTokens, RepositoryBase, Resume, reservation_from_row
from app.repository.locks import LockRunner, LockState
from app.repository.store import COLUMNS
from app.rules import DEFAULT_PAGE_SIZE


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

    async def holders(self, book_ids: Sequence[UUID]) -> dict[UUID, Reservation]:
        """The reservations holding any of these books now, by book; one read for a whole catalogue page."""
        locks = await self.locks.read_many(book_ids)
        return {lock.book_id: lock.reservation() for lock in locks if lock.state is LockState.HELD}

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
