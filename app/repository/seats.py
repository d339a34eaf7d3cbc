"""A reader's seats: the per-reader limits on holds (issue 22), as conditional rows of the reader's own.

The book's locks cannot bound how many books one reader holds: a hundred reserves of a hundred books by one reader
take a hundred different locks, each linearizable on its own and blind to the others. So every hold a reader places
first takes one of their seats, `reader_seats` (user_id, kind, seat): `kind` READY for a book reserved while free,
WAITING for a place in a queue; `seat` from 0 to the limit less one. Cassandra keeps one row per key, so a reader
never has more seats of a kind than the limit, whatever the number of requests and instances.

A seat's life, each step a lightweight transaction on its row (linearizable against every other step on it):
- claim: `INSERT ... IF NOT EXISTS USING TTL` the claim's time to live, unconfirmed, naming the reservation and book;
- confirm, once the book's lock (or queue) holds the reservation: `UPDATE ... USING TTL 0 ... IF reservation_id = R`,
  which keeps it for good. A request that took the lock and cannot confirm its seat (it expired while the request was
  paused, and may be another's now) takes the hold back: no hold is acknowledged without a confirmed seat;
- free, once the hold has ended (cancelled, expired, left, handed on, undone): `DELETE ... IF reservation_id = R`.
A claim whose request died expires with its TTL; a confirmed seat whose hold ended without freeing it (a crash
between the two) is freed by the next claim of that reader that finds every seat taken, after checking the hold is
over (`Reservations._free_ended_seats`): a reservation that ended never holds a book again, so that check cannot go
stale. docs/reservation-protocol.md, "Per-reader limits", has the argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from app.db import Database, OutcomeUnknown
from app.models import DatabaseUnavailable

READY, WAITING = "ready", "waiting"
# How long an unconfirmed claim lives: far above a request's time from claim to confirm (two round trips and a
# lightweight transaction), so only a request paused or dead that long loses its seat.
CLAIM_SECONDS = 60


@dataclass(frozen=True)
class Seat:
    user_id: int
    kind: str
    seat: int
    reservation_id: UUID | None
    book_id: UUID | None
    confirmed: bool


class SeatStore(Protocol):
    async def read(self, user_id: int, kind: str) -> list[Seat]:
        """The reader's seats of a kind, read at QUORUM: which ones look free to claim (the claim decides)."""
        ...

    async def claim(self, user_id: int, kind: str, seat: int, reservation_id: UUID, book_id: UUID) -> bool: ...

    async def confirm(self, seat: Seat) -> bool: ...

    async def free(self, seat: Seat) -> None: ...


class CassandraSeats:
    def __init__(self, db: Database, claim_seconds: int = CLAIM_SECONDS) -> None:
        self.db = db
        ks = db.settings.keyspace
        columns = "user_id, kind, seat, reservation_id, book_id, confirmed"
        self._read = f"SELECT {columns} FROM {ks}.reader_seats WHERE user_id = ? AND kind = ?"
        self._read_one = f"SELECT {columns} FROM {ks}.reader_seats WHERE user_id = ? AND kind = ? AND seat = ?"
        self._claim = (
            f"INSERT INTO {ks}.reader_seats (user_id, kind, seat, reservation_id, book_id) VALUES (?, ?, ?, ?, ?) "
            f"IF NOT EXISTS USING TTL {claim_seconds}"
        )
        self._confirm = (
            f"UPDATE {ks}.reader_seats USING TTL 0 SET confirmed = true, reservation_id = ?, book_id = ? "
            "WHERE user_id = ? AND kind = ? AND seat = ? IF reservation_id = ?"
        )
        self._free = f"DELETE FROM {ks}.reader_seats WHERE user_id = ? AND kind = ? AND seat = ? IF reservation_id = ?"

    async def read(self, user_id: int, kind: str) -> list[Seat]:
        rows = await self.db.execute(self._read, [user_id, kind])
        return [_seat(row) for row in rows.rows]

    async def _holds(self, user_id: int, kind: str, seat: int, reservation_id: UUID, confirmed: bool | None) -> bool:
        """After a lost answer: the seat as it is now, read at SERIAL (which finishes or supersedes the round)."""
        row = (
            await self.db.execute(self._read_one, [user_id, kind, seat], consistency=self.db.serial_consistency)
        ).one()
        if row is None or row.reservation_id != reservation_id:
            return False
        return confirmed is None or bool(row.confirmed) == confirmed

    async def claim(self, user_id: int, kind: str, seat: int, reservation_id: UUID, book_id: UUID) -> bool:
        try:
            result = await self.db.execute(self._claim, [user_id, kind, seat, reservation_id, book_id], write=True)
            return result.was_applied
        except OutcomeUnknown:
            return await self._holds(user_id, kind, seat, reservation_id, None)

    async def confirm(self, seat: Seat) -> bool:
        assert seat.reservation_id is not None
        values = [seat.reservation_id, seat.book_id, seat.user_id, seat.kind, seat.seat, seat.reservation_id]
        try:
            return (await self.db.execute(self._confirm, values, write=True)).was_applied
        except OutcomeUnknown:
            return await self._holds(seat.user_id, seat.kind, seat.seat, seat.reservation_id, True)

    async def free(self, seat: Seat) -> None:
        try:
            await self.db.execute(self._free, [seat.user_id, seat.kind, seat.seat, seat.reservation_id], write=True)
        except OutcomeUnknown:
            if seat.reservation_id is not None and await self._holds(
                seat.user_id, seat.kind, seat.seat, seat.reservation_id, None
            ):
                raise DatabaseUnavailable("database unavailable: a reader's seat could not be freed") from None


def _seat(row: object) -> Seat:
    return Seat(
        row.user_id,  # type: ignore[attr-defined]
        row.kind,  # type: ignore[attr-defined]
        row.seat,  # type: ignore[attr-defined]
        row.reservation_id,  # type: ignore[attr-defined]
        row.book_id,  # type: ignore[attr-defined]
        bool(row.confirmed),  # type: ignore[attr-defined]
    )
