"""Reservations that can never double-book.

The lock row `reservation_by_book_id` (one per reserved book) is the source of truth, and only
lightweight transactions write it: taken with `INSERT ... IF NOT EXISTS`, renewed with
`UPDATE ... IF reservation_id = ?`, released with `DELETE ... IF reservation_id = ?`, all at
LOCAL_SERIAL with their commit at LOCAL_QUORUM. A release can therefore only ever free the
reservation that asked for it, however late or repeated the request.

The three views (`reservations`, `user_reservations`, `book_reservations`) follow the lock in one
logged batch at LOCAL_QUORUM: the batchlog makes them all-or-nothing. Their writes carry the
driver's client-side timestamps, so an undo written after a failed batch outranks that batch
even if its batchlog replays it later.

When a lightweight transaction's answer is lost (write timeout, dropped connection), the lock
row is read back at SERIAL, which finishes or forever supersedes the unfinished Paxos round:
what it shows is the truth, and the operation completes or undoes accordingly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from app.db import OutcomeUnknown
from app.models import Conflict, DatabaseUnavailable, Forbidden, NotFound, Page, Reservation
from app.repository.base import (
    RepositoryBase,
    check_page_size,
    now,
    reservation_from_row,
    write_time,
)

log = logging.getLogger(__name__)

COLUMNS = "reservation_id, book_id, user_id, reserved_at"
LOCK_COLUMNS = "book_id, reservation_id, user_id, reserved_at"
LOCK_READ = f"SELECT {LOCK_COLUMNS} FROM {{ks}}.reservation_by_book_id WHERE book_id = ?"
LOCKS_READ = f"SELECT {LOCK_COLUMNS} FROM {{ks}}.reservation_by_book_id WHERE book_id IN ?"
LOCK_TAKE = (
    "INSERT INTO {ks}.reservation_by_book_id (book_id, reservation_id, user_id, reserved_at) "
    "VALUES (?, ?, ?, ?) IF NOT EXISTS"
)
LOCK_RENEW = "UPDATE {ks}.reservation_by_book_id SET reserved_at = ? WHERE book_id = ? IF reservation_id = ?"
LOCK_RELEASE = "DELETE FROM {ks}.reservation_by_book_id WHERE book_id = ? IF reservation_id = ?"
# The view writes carry the time taken just before their lock's transaction: an operation that changes the lock
# later (a cancel) deletes with a newer timestamp, so a slow view write can never bring a cancelled reservation back.
VIEW_INSERTS = (
    "INSERT INTO {ks}.reservations (reservation_id, book_id, user_id, reserved_at) VALUES (?, ?, ?, ?) "
    "USING TIMESTAMP ?",
    "INSERT INTO {ks}.user_reservations (user_id, reservation_id, book_id, reserved_at) VALUES (?, ?, ?, ?) "
    "USING TIMESTAMP ?",
    "INSERT INTO {ks}.book_reservations (book_id, reservation_id, user_id, reserved_at) VALUES (?, ?, ?, ?) "
    "USING TIMESTAMP ?",
)
VIEW_DELETES = (
    "DELETE FROM {ks}.reservations WHERE reservation_id = ?",
    "DELETE FROM {ks}.user_reservations WHERE user_id = ? AND reservation_id = ?",
    "DELETE FROM {ks}.book_reservations WHERE book_id = ? AND reservation_id = ?",
)
# Views are written right after the lock, within one request; a lock this old without them was left by a crash.
VIEWS_OVERDUE = timedelta(seconds=30)
# An ambiguous lightweight transaction is read back and, when it did not apply, tried again this often.
LWT_ATTEMPTS = 3


async def _backoff(attempt: int) -> None:
    # Jittered and growing, so that contending clients stop colliding in the same Paxos round.
    await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))


class ReservationRepository(RepositoryBase):
    # -- reads ------------------------------------------------------------------------------
    async def get_reservation(self, reservation_id: UUID) -> Reservation:
        row = (
            await self.db.execute(
                self.cql(f"SELECT {COLUMNS} FROM {{ks}}.reservations WHERE reservation_id = ?"), [reservation_id]
            )
        ).one()
        if row is None:
            raise NotFound(f"reservation {reservation_id} does not exist")
        return reservation_from_row(row)

    async def holder(self, book_id: UUID, *, serial: bool = False) -> Reservation | None:
        """The reservation that holds the book now, from the lock; `serial` reads it linearizably."""
        row = await self._read_lock(book_id, serial=serial)
        return reservation_from_row(row) if row else None

    async def holders(self, book_ids: Sequence[UUID]) -> dict[UUID, Reservation]:
        """The reservations holding any of these books now, by book; one read for a whole catalogue page."""
        if not book_ids:
            return {}
        result = await self.db.execute(self.cql(LOCKS_READ), [list(book_ids)])
        return {row.book_id: reservation_from_row(row) for row in result.rows}

    async def list_reservations(self, *, page_size: int = 20, page: str | None = None) -> Page[Reservation]:
        return await self._page(f"SELECT {COLUMNS} FROM {{ks}}.reservations", [], page_size, page)

    async def user_reservations(
        self, user_id: int, *, page_size: int = 20, page: str | None = None
    ) -> Page[Reservation]:
        return await self._page(
            f"SELECT {COLUMNS} FROM {{ks}}.user_reservations WHERE user_id = ?", [user_id], page_size, page
        )

    async def book_reservations(self, book_id: UUID) -> list[Reservation]:
        page = await self._page(
            f"SELECT {COLUMNS} FROM {{ks}}.book_reservations WHERE book_id = ?", [book_id], 100, None
        )
        return page.items

    async def _page(self, cql: str, params: list[Any], page_size: int, page: str | None) -> Page[Reservation]:
        result = await self.db.execute(
            self.cql(cql), params, page_size=check_page_size(page_size), paging_state=self.pages.decode(page)
        )
        return Page([reservation_from_row(r) for r in result.rows], self.pages.encode(result.paging_state))

    # -- reserve ----------------------------------------------------------------------------
    async def reserve(self, book_id: UUID, user_id: int, reservation_id: UUID | None = None) -> Reservation:
        """Reserve the book for the reader, or raise Conflict if another reservation holds it.

        The caller may name the reservation id: a retry with the same id is idempotent and returns the
        same reservation, even after a lost answer.
        """
        reservation_id = reservation_id or uuid4()
        written_at = write_time()
        # The existence checks travel with the lock rather than before it: a round trip fewer on every reservation.
        # The price is that a request for a book or reader that does not exist holds the lock for one round trip
        # before it gives it back, during which a real reader's request for that book is refused as taken.
        checked, locked = await asyncio.gather(
            self._require_book_and_user(book_id, user_id),
            self._take_lock(book_id, reservation_id, user_id, now()),
            return_exceptions=True,
        )
        if isinstance(checked, BaseException):
            if isinstance(locked, Reservation) and locked.reservation_id == reservation_id:
                try:
                    await self._release_lock(book_id, reservation_id)
                except DatabaseUnavailable:
                    # The client's answer is still the failed check; the lock left behind has no views, and the
                    # audit's repair or the next conflict's heal finds it.
                    log.warning("could not give back lock %s on book %s after a failed check", reservation_id, book_id)
            raise checked
        if isinstance(locked, BaseException):
            raise locked
        held = locked
        if held.reservation_id != reservation_id:
            await self._heal_views(held)
            raise self._taken(book_id, held, user_id)
        await self._write_views_or_undo(held, release_on_failure=book_id, written_at=written_at)
        return held

    async def _heal_views(self, held: Reservation) -> None:
        """A lock older than any request, whose reservation row is missing, was left by a client that died between
        the lock and the views. The lock is the truth: write its views, so that its reader sees and can cancel it."""
        if now() - held.reserved_at < VIEWS_OVERDUE:
            return
        try:
            await self.get_reservation(held.reservation_id)
        except NotFound:
            log.warning(
                "rebuilding the views of reservation %s from its lock on book %s", held.reservation_id, held.book_id
            )
            await self._write_views_or_undo(held, release_on_failure=None)

    async def _require_book_and_user(self, book_id: UUID, user_id: int) -> None:
        await asyncio.gather(self.get_book(book_id), self.get_user(user_id))  # type: ignore[attr-defined]

    def _taken(self, book_id: UUID, held: Reservation, user_id: int) -> Conflict:
        if held.user_id == user_id:
            return Conflict(f"you already hold book {book_id} (reservation {held.reservation_id})")
        return Conflict(f"book {book_id} is already reserved by another reader")

    async def _take_lock(self, book_id: UUID, reservation_id: UUID, user_id: int, at: datetime) -> Reservation:
        """Returns the reservation that holds the lock afterwards: ours, or the one that was there first."""
        for attempt in range(1, LWT_ATTEMPTS + 1):
            try:
                result = await self.db.execute(self.cql(LOCK_TAKE), [book_id, reservation_id, user_id, at], write=True)
            except OutcomeUnknown:
                row = await self._resolve_lock(book_id)
                if row is not None:
                    return reservation_from_row(row)
                log.info("lock on book %s: outcome unknown, not applied (attempt %d)", book_id, attempt)
                await _backoff(attempt)
                continue
            if result.was_applied:
                return Reservation(reservation_id, book_id, user_id, at)
            return reservation_from_row(result.one())
        raise DatabaseUnavailable("database unavailable: the reservation could not be confirmed; nothing was reserved")

    # -- cancel -----------------------------------------------------------------------------
    async def cancel(self, reservation_id: UUID, user_id: int) -> None:
        """Cancel the caller's own reservation. A stale or repeated cancel never frees a newer reservation:
        the lock is released only if it still carries this reservation's id."""
        reservation = await self._owned(reservation_id, user_id)
        for _ in range(LWT_ATTEMPTS):
            if await self._release_lock(reservation.book_id, reservation_id):
                break
            # Not on that book any more: a move may have carried it to another one meanwhile; follow it there.
            try:
                moved = await self.get_reservation(reservation_id)
            except NotFound:
                return  # a concurrent cancel finished it
            if moved.book_id == reservation.book_id:
                break  # a stale reservation whose lock is gone: only its views remain to clean
            reservation = moved
        await self._delete_views(reservation)

    async def _owned(self, reservation_id: UUID, user_id: int) -> Reservation:
        reservation = await self.get_reservation(reservation_id)
        if reservation.user_id != user_id:
            raise Forbidden(f"reservation {reservation_id} belongs to another reader")
        return reservation

    async def _release_lock(self, book_id: UUID, reservation_id: UUID) -> bool:
        """Frees the book if this reservation holds it; True if it was released now."""
        for _ in range(LWT_ATTEMPTS):
            try:
                return (
                    await self.db.execute(self.cql(LOCK_RELEASE), [book_id, reservation_id], write=True)
                ).was_applied
            except OutcomeUnknown:
                row = await self._resolve_lock(book_id)
                if row is None or row.reservation_id != reservation_id:
                    return True
        raise DatabaseUnavailable("database unavailable: the cancellation could not be confirmed; try again")

    # -- move or renew ----------------------------------------------------------------------
    async def move(self, reservation_id: UUID, user_id: int, new_book_id: UUID | None = None) -> Reservation:
        """Move the caller's reservation to another book, or renew its time when no book (or the same one) is
        given. The new book is locked first; if it is taken, the reservation stays exactly as it was."""
        if new_book_id is None:
            return await self._renew(await self._owned(reservation_id, user_id))
        current, _ = await asyncio.gather(
            self._owned(reservation_id, user_id),
            self.get_book(new_book_id),  # type: ignore[attr-defined]
        )
        if new_book_id == current.book_id:
            return await self._renew(current)
        written_at = write_time()
        held = await self._take_lock(new_book_id, reservation_id, user_id, now())
        if held.reservation_id != reservation_id:
            raise self._taken(new_book_id, held, user_id)
        batch = self.db.batch()
        await self._add_view_inserts(batch, held, written_at)
        batch.add(await self.db.prepare(self.cql(VIEW_DELETES[2])), [current.book_id, reservation_id])
        await self._execute_views_or_undo(batch, held, release_on_failure=new_book_id)
        if not await self._release_lock(current.book_id, reservation_id):
            # The old lock went while we moved: the owner's cancel got there first, and the cancel wins. Take back
            # all the move wrote, as the cancel may have deleted the views before our writes landed.
            await self._release_lock(new_book_id, reservation_id)
            await self._delete_views(held)
            raise NotFound(f"reservation {reservation_id} was cancelled while it was being changed")
        return held

    async def _renew(self, current: Reservation) -> Reservation:
        renewed = Reservation(current.reservation_id, current.book_id, current.user_id, now())
        written_at = write_time()
        for _ in range(LWT_ATTEMPTS):
            try:
                result = await self.db.execute(
                    self.cql(LOCK_RENEW), [renewed.reserved_at, current.book_id, current.reservation_id], write=True
                )
                applied = result.was_applied
            except OutcomeUnknown:
                row = await self._resolve_lock(current.book_id)
                if row is None or row.reservation_id != current.reservation_id:
                    applied = False
                elif row.reserved_at != renewed.reserved_at:
                    continue
                else:
                    applied = True
            if not applied:
                raise NotFound(f"reservation {current.reservation_id} no longer holds book {current.book_id}")
            await self._write_views_or_undo(renewed, release_on_failure=None, written_at=written_at)
            return renewed
        raise DatabaseUnavailable("database unavailable: the renewal could not be confirmed; try again")

    # -- the views --------------------------------------------------------------------------
    async def _add_view_inserts(self, batch: Any, r: Reservation, written_at: int) -> None:
        values = (
            [r.reservation_id, r.book_id, r.user_id, r.reserved_at, written_at],
            [r.user_id, r.reservation_id, r.book_id, r.reserved_at, written_at],
            [r.book_id, r.reservation_id, r.user_id, r.reserved_at, written_at],
        )
        for cql, params in zip(VIEW_INSERTS, values, strict=True):
            batch.add(await self.db.prepare(self.cql(cql)), params)

    async def _write_views_or_undo(
        self, r: Reservation, *, release_on_failure: UUID | None, written_at: int | None = None
    ) -> None:
        """`written_at` is the write time taken before the lock's transaction; repairs write at the present."""
        batch = self.db.batch()
        await self._add_view_inserts(batch, r, written_at or write_time())
        await self._execute_views_or_undo(batch, r, release_on_failure=release_on_failure)

    async def _execute_views_or_undo(self, batch: Any, r: Reservation, *, release_on_failure: UUID | None) -> None:
        try:
            await self.db.execute(batch, write=True)
        except DatabaseUnavailable:
            # Not acknowledged: take back what this call added, so no half-made reservation lingers. The lock goes
            # first (Paxos needs only a quorum); if the undo fails too, the lock stays the truth and
            # audit(repair=True) rebuilds the views from it.
            if release_on_failure is not None:
                try:
                    await self._release_lock(release_on_failure, r.reservation_id)
                    await self._delete_views(
                        Reservation(r.reservation_id, release_on_failure, r.user_id, r.reserved_at)
                    )
                except DatabaseUnavailable:
                    log.warning("could not undo reservation %s on book %s", r.reservation_id, release_on_failure)
            raise

    async def _delete_views(self, r: Reservation) -> None:
        """Deletes the reservation's three view rows, as plain writes rather than a logged batch: a batchlog needs
        two live peers that the failure detector believes in, and a cancel or an undo must work whenever a quorum
        does. Their newer timestamps outrank a late batchlog replay of the writes they undo. The `reservations` row
        goes last, so that a retried cancel still finds the reservation while anything of it remains."""
        await asyncio.gather(
            self.db.execute(self.cql(VIEW_DELETES[1]), [r.user_id, r.reservation_id], write=True),
            self.db.execute(self.cql(VIEW_DELETES[2]), [r.book_id, r.reservation_id], write=True),
        )
        await self.db.execute(self.cql(VIEW_DELETES[0]), [r.reservation_id], write=True)

    async def _resolve_lock(self, book_id: UUID) -> Any | None:
        """The lock row at SERIAL, after an ambiguous lightweight transaction. Under contention the serial read
        can itself time out; it is retried with backoff, and only then is the database called unavailable."""
        for attempt in range(1, LWT_ATTEMPTS + 2):
            try:
                return await self._read_lock(book_id, serial=True)
            except DatabaseUnavailable:
                if attempt > LWT_ATTEMPTS:
                    raise
                await _backoff(attempt)
        return None  # not reached

    async def _read_lock(self, book_id: UUID, *, serial: bool) -> Any | None:
        consistency = self.db.settings.serial_consistency if serial else None
        return (await self.db.execute(self.cql(LOCK_READ), [book_id], consistency=consistency)).one()
