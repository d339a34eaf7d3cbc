"""What the reservation use cases read and write besides the locks: the three views, the move hint, and the reader
check. An interface (`ReservationStore`) with Cassandra's implementation here and an in-memory model of Cassandra's
promises in the schedule search (tests/schedules/), so the same use cases run on both.

The views are derived from lock states. Every view insert is stamped (`USING TIMESTAMP`) with the version of the
HELD state it describes, every view delete with the version of the transition that ended that state; Cassandra
keeps, per cell, the write with the highest timestamp, so nothing written for an older state of a lock outranks a
newer one (docs/reservation-protocol.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from app.db import Database
from app.models import Reservation, User
from app.repository.locks import Lock

COLUMNS = "reservation_id, book_id, user_id, reserved_at, ready_until, lent_at"
# A view row with its version and its write time (which a repair deletes at, removing that write and nothing newer).
VIEW_COLUMNS = f"{COLUMNS}, version, WRITETIME(reserved_at) AS written"
VIEWS = ("reservations", "user_reservations", "book_reservations")


@dataclass(frozen=True)
class ViewRow:
    """One row of a view as read back: what it says, the version it was written for, and its write time. For the
    `reservations` table, also the move hint (`moving_to`) and its write time."""

    reservation_id: UUID
    book_id: UUID
    user_id: int
    reserved_at: datetime | None
    version: int | None
    written: int | None
    moving_to: UUID | None = None
    hinted: int | None = None
    ready_until: datetime | None = None
    lent_at: datetime | None = None

    def reservation(self) -> Reservation:
        r = self
        assert r.reserved_at is not None
        return Reservation(r.reservation_id, r.book_id, r.user_id, r.reserved_at, r.ready_until, r.lent_at)

    def shows(self, lock: Lock) -> bool:
        """Whether the row says exactly what the HELD lock says, at its version."""
        r = self
        said = (r.reservation_id, r.book_id, r.user_id, r.reserved_at, r.ready_until, r.lent_at, r.version)
        return said == (
            lock.reservation_id,
            lock.book_id,
            lock.user_id,
            lock.reserved_at,
            lock.ready_until,
            lock.lent_at,
            lock.version,
        )


def view_row(row: Any) -> ViewRow | None:
    if row is None or row.book_id is None:  # no book: only a move's hint is left of it
        return None
    return ViewRow(
        row.reservation_id,
        row.book_id,
        row.user_id,
        row.reserved_at,
        row.version,
        row.written,
        getattr(row, "moving_to", None),
        getattr(row, "hinted", None),
        row.ready_until,
        getattr(row, "lent_at", None),
    )


class ReservationStore(Protocol):
    async def write_views(self, lock: Lock, *, came_from: UUID | None = None, drop_at: int | None = None) -> None:
        """The HELD lock's three rows at its version. `came_from`: the book a move took the reservation from, recorded
        as the reservation's hint (so a cancel finds that book's lock and rows); with `drop_at`, the reader's and that
        book's rows are deleted at that version in the same write."""
        ...

    async def delete_book_rows(self, user_id: int, book_id: UUID, version: int) -> None:
        """The reader's row for the book and the book's row, deleted at `version`."""
        ...

    async def delete_user_row(self, user_id: int, book_id: UUID, version: int) -> None:
        """The reader's row for the book, deleted at `version` (a hand-off: the book's row is the next holder's)."""
        ...

    async def delete_reservation_row(self, reservation_id: UUID, version: int) -> None: ...

    async def delete_if_naming(self, reservation_id: UUID, user_id: int, book_id: UUID) -> None:
        """The book's and the reader's rows for `book_id`, if they still name the reservation, each deleted at its own
        write time: the write that put the reservation there goes, any newer one stays."""
        ...

    async def hint(self, reservation_id: UUID, book_id: UUID, at: int) -> None:
        """Marks the reservation's row with the book a move is about to take (stamped `at`)."""
        ...

    async def reservation_row(self, reservation_id: UUID) -> ViewRow | None: ...

    async def book_row(self, book_id: UUID) -> ViewRow | None: ...

    async def user_row(self, user_id: int, book_id: UUID) -> ViewRow | None: ...

    async def reader(self, user_id: int) -> User | None:
        """The reader's row as a reserve sees it; None for no reader, or one being deleted."""
        ...

    async def card(self, user_id: int) -> tuple[User | None, bool]:
        """The reader's row whatever its state (None: no such card), and whether a deletion has marked it closing."""
        ...

    def scan(self, table: str) -> AsyncIterator[list[ViewRow]]:
        """Every row of one of the VIEWS, a page at a time, for the audit."""
        ...

    async def delete_row(self, table: str, row: ViewRow, at: int) -> None:
        """The row of `table` with the key of `row`, deleted at `at` (the repair: at the row's own write time)."""
        ...


_INSERTS = (
    "INSERT INTO {ks}.reservations (reservation_id, book_id, user_id, reserved_at, ready_until, lent_at, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
    "INSERT INTO {ks}.user_reservations (user_id, book_id, reservation_id, reserved_at, ready_until, lent_at, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
    "INSERT INTO {ks}.book_reservations (book_id, reservation_id, user_id, reserved_at, ready_until, lent_at, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
)
_DELETE_RESERVATION_ROW = "DELETE FROM {ks}.reservations USING TIMESTAMP ? WHERE reservation_id = ?"
_DELETE_USER_ROW = "DELETE FROM {ks}.user_reservations USING TIMESTAMP ? WHERE user_id = ? AND book_id = ?"
_DELETE_BOOK_ROW = "DELETE FROM {ks}.book_reservations USING TIMESTAMP ? WHERE book_id = ?"
_HINT = "UPDATE {ks}.reservations USING TIMESTAMP ? SET moving_to = ? WHERE reservation_id = ?"
_HINT_COLUMNS = "moving_to, WRITETIME(moving_to) AS hinted"
_RESERVATION_ROW = f"SELECT {VIEW_COLUMNS}, {_HINT_COLUMNS} FROM {{ks}}.reservations WHERE reservation_id = ?"
_BOOK_ROW = f"SELECT {VIEW_COLUMNS} FROM {{ks}}.book_reservations WHERE book_id = ?"
_USER_ROW = f"SELECT {VIEW_COLUMNS} FROM {{ks}}.user_reservations WHERE user_id = ? AND book_id = ?"
_READER = "SELECT user_id, joined_at, state FROM {ks}.users WHERE user_id = ?"


class CassandraReservationStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ks = db.settings.keyspace

    def cql(self, text: str) -> str:
        return text.replace("{ks}", self.ks)

    async def write_views(self, lock: Lock, *, came_from: UUID | None = None, drop_at: int | None = None) -> None:
        # One logged batch, so the three rows (and a move's source rows) land together or, after the batchlog
        # replays, not at all.
        r, v = lock.reservation(), lock.version
        values = (
            [r.reservation_id, r.book_id, r.user_id, r.reserved_at, r.ready_until, r.lent_at, v, v],
            [r.user_id, r.book_id, r.reservation_id, r.reserved_at, r.ready_until, r.lent_at, v, v],
            [r.book_id, r.reservation_id, r.user_id, r.reserved_at, r.ready_until, r.lent_at, v, v],
        )
        batch = self.db.batch()
        for cql, params in zip(_INSERTS, values, strict=True):
            batch.add(await self.db.prepare(self.cql(cql)), params)
        if came_from is not None:
            batch.add(await self.db.prepare(self.cql(_HINT)), [v, came_from, r.reservation_id])
            if drop_at is not None:
                batch.add(await self.db.prepare(self.cql(_DELETE_USER_ROW)), [drop_at, r.user_id, came_from])
                batch.add(await self.db.prepare(self.cql(_DELETE_BOOK_ROW)), [drop_at, came_from])
        await self.db.execute(batch, write=True)

    async def delete_book_rows(self, user_id: int, book_id: UUID, version: int) -> None:
        # Two plain writes rather than a logged batch: a batchlog needs two live peers that the failure detector
        # believes in, and a cancel must work whenever a quorum does. Sent as one unlogged batch: the same two
        # independent writes (either may land without the other), for one request's work instead of two.
        batch = self.db.batch(logged=False)
        batch.add(await self.db.prepare(self.cql(_DELETE_USER_ROW)), [version, user_id, book_id])
        batch.add(await self.db.prepare(self.cql(_DELETE_BOOK_ROW)), [version, book_id])
        await self.db.execute(batch, write=True)

    async def delete_user_row(self, user_id: int, book_id: UUID, version: int) -> None:
        await self.db.execute(self.cql(_DELETE_USER_ROW), [version, user_id, book_id], write=True)

    async def delete_reservation_row(self, reservation_id: UUID, version: int) -> None:
        await self.db.execute(self.cql(_DELETE_RESERVATION_ROW), [version, reservation_id], write=True)

    async def delete_if_naming(self, reservation_id: UUID, user_id: int, book_id: UUID) -> None:
        book_row, user_row = await asyncio.gather(self.book_row(book_id), self.user_row(user_id, book_id))
        if book_row is not None and book_row.reservation_id == reservation_id:
            await self.db.execute(self.cql(_DELETE_BOOK_ROW), [book_row.written, book_id], write=True)
        if user_row is not None and user_row.reservation_id == reservation_id:
            await self.db.execute(self.cql(_DELETE_USER_ROW), [user_row.written, user_id, book_id], write=True)

    async def hint(self, reservation_id: UUID, book_id: UUID, at: int) -> None:
        await self.db.execute(self.cql(_HINT), [at, book_id, reservation_id], write=True)

    async def reservation_row(self, reservation_id: UUID) -> ViewRow | None:
        return view_row((await self.db.execute(self.cql(_RESERVATION_ROW), [reservation_id])).one())

    async def book_row(self, book_id: UUID) -> ViewRow | None:
        return view_row((await self.db.execute(self.cql(_BOOK_ROW), [book_id])).one())

    async def user_row(self, user_id: int, book_id: UUID) -> ViewRow | None:
        return view_row((await self.db.execute(self.cql(_USER_ROW), [user_id, book_id])).one())

    async def reader(self, user_id: int) -> User | None:
        user, closing = await self.card(user_id)
        return None if closing else user

    async def card(self, user_id: int) -> tuple[User | None, bool]:
        row = (await self.db.execute(self.cql(_READER), [user_id])).one()
        if row is None:
            return None, False
        return User(row.user_id, "", "", row.joined_at), row.state is not None

    async def scan(self, table: str) -> AsyncIterator[list[ViewRow]]:
        assert table in VIEWS
        async for rows in self.db.pages(self.cql(f"SELECT {VIEW_COLUMNS} FROM {{ks}}.{table}"), page_size=1000):
            yield [r for row in rows if (r := view_row(row)) is not None]  # None: only a move's hint

    async def delete_row(self, table: str, row: ViewRow, at: int) -> None:
        keys: dict[str, tuple[str, list[Any]]] = {
            "reservations": ("reservation_id = ?", [row.reservation_id]),
            "user_reservations": ("user_id = ? AND book_id = ?", [row.user_id, row.book_id]),
            "book_reservations": ("book_id = ?", [row.book_id]),
        }
        where, key = keys[table]
        await self.db.execute(
            self.cql(f"DELETE FROM {{ks}}.{table} USING TIMESTAMP ? WHERE {where}"), [at, *key], write=True
        )
