"""Reservations that can never double-book, whatever the interleaving, the clocks or the pauses.

The lock row `reservation_by_book_id` (one per book, created with it, never deleted) is the only truth. Only
lightweight transactions write it, and every transition's condition includes `version < new` or
`version = the version read` with new > read, so a lock's version strictly grows with each transition it
goes through, on every replica, whatever the app's clocks say (app/repository/clock.py).

The three views (`reservations`, `user_reservations`, `book_reservations`) are derived from lock states.
Every view insert is stamped (`USING TIMESTAMP`) with the version of the lock state it describes; every
view delete with the version of the transition that ended that state. Cassandra keeps, per cell, the write
with the highest timestamp. Why each path is then safe:

- Reserve: the lock goes free -> held at v (condition: free, version < v); the views are written at v. A
  cancel releases at v' > v (condition), so its deletes outrank the views however late these land.
- Cancel: held -> free at v' (condition: this reservation holds it, version < v'); the views are deleted
  at v'. Any write describing the cancelled state carries a version <= v and loses.
- Renew: held at v -> held at v2 (condition: version = v); the views are rewritten at v2.
- Move A -> B: (1) B free -> held by the reservation at vb > va (the source's version read);
  (2) A held at va -> free at va2 > vb, remembering `moved_rid`/`moved_to` (condition: version = va, so a
  renew, cancel or other move of the reservation in between makes it fail, and this move is undone);
  (3) B held at vb -> held at vb2 > va2 (condition: version = vb: a cancel that followed the reservation to
  B meanwhile makes it fail, and the move reports the cancellation); then the views are written at vb2 and
  A's rows deleted at va2. The reservation's own row is written at vb2, above every version either lock
  had before, so nothing from its past on A outranks it, and a later cancel on B deletes above vb2.
- Heal (a conflict with a lock older than `settle_after`, whose views are missing or older) and repair:
  both re-read the lock at SERIAL immediately before acting and write the views at that lock's version.
  Should the state have ended meanwhile, its ending deletes outrank these writes: a heal can never bring
  back what a cancel removed. Repair deletes a view row no lock backs at that row's own write time
  (`WRITETIME`), which removes that write and nothing newer, and only when the lock of its book has not
  changed for `settle_after`; a cancel that finds no lock holding its reservation removes what still names
  it the same way.
- Undo after a failed view write deletes only the rows of the reservation this request created, above the
  version it wrote; an idempotent retry never undoes anything, as it created nothing.
- Idempotency keys: the id is derived from reader, book and key (app/models.py). The first request with a
  key claims it with `INSERT ... IF NOT EXISTS`; a retry finds the claim and never takes the lock, so a late
  duplicate of a reserve cannot bring back a reservation cancelled after it. A retry that finds the lock held
  but the first request unfinished moves the lock to a new version before it acknowledges: the first
  request's undo releases only the exact version it wrote, so it can no longer take back what the retry
  acknowledged (found by the adversarial run: a frozen first request undid a reservation a retry had
  already acknowledged, and the book had two holders).
- Reader deletion: the reader's row is marked 'closing' by a conditional write before their reservations
  are looked for; a reserve reads the reader again after writing its views and undoes itself if the row
  changed. Either the reserve's views were written before the deletion looked (and it refuses), or the
  reserve sees the mark (and gives the book back).
- Book deletion: free -> withdrawn, a transition of the same lock that a racing reserve's condition sees.

When a lightweight transaction's answer is lost, the lock row is read at SERIAL, which finishes or forever
supersedes the unfinished Paxos round: what it shows tells whether the transition happened. Only then does a
request take a lock state that matches what it sent as its own. A version is no signature: two instances that
read the same version both propose the one above it, and a second send of a move meets the first send's take
under the reservation's own id. After a definite "not applied", the state is another request's, and this
request neither reports it as its success nor undoes it (two regression tests in test_interleavings.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from app.db import Database, OutcomeUnknown
from app.models import (
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    NotFound,
    Page,
    Reservation,
    UnknownBook,
    UnknownReader,
    User,
    reservation_id_for,
)
from app.repository.base import PageTokens, RepositoryBase, now, reservation_from_row
from app.repository.clock import VersionClock
from app.rules import DEFAULT_PAGE_SIZE, check_idempotency_key

log = logging.getLogger(__name__)

COLUMNS = "reservation_id, book_id, user_id, reserved_at"
# A view row with its version and its write time (which a repair deletes at, removing that write and nothing newer).
VIEW_COLUMNS = f"{COLUMNS}, version, WRITETIME(reserved_at) AS written"
LOCK_COLUMNS = "book_id, state, reservation_id, user_id, reserved_at, version, moved_rid, moved_to"
LOCK_READ = f"SELECT {LOCK_COLUMNS} FROM {{ks}}.reservation_by_book_id WHERE book_id = ?"
LOCKS_READ = f"SELECT {LOCK_COLUMNS} FROM {{ks}}.reservation_by_book_id WHERE book_id IN ?"
_LOCK = "UPDATE {ks}.reservation_by_book_id SET "
# The `= null` conditions hold whenever the book is free; they are there so that a refused take returns who
# holds the book (a failed condition returns only the columns it names).
LOCK_TAKE = (
    _LOCK + "state = 'held', reservation_id = ?, user_id = ?, reserved_at = ?, version = ? WHERE book_id = ? "
    "IF state = 'free' AND version < ? AND reservation_id = null AND user_id = null AND reserved_at = null"
)
LOCK_RELEASE = (
    _LOCK + "state = 'free', reservation_id = null, user_id = null, reserved_at = null, version = ? "
    "WHERE book_id = ? IF state = 'held' AND reservation_id = ? AND version < ?"
)
LOCK_RELEASE_EXACT = (
    _LOCK + "state = 'free', reservation_id = null, user_id = null, reserved_at = null, version = ? "
    "WHERE book_id = ? IF state = 'held' AND reservation_id = ? AND version = ?"
)
LOCK_MOVE_AWAY = (
    _LOCK + "state = 'free', reservation_id = null, user_id = null, reserved_at = null, moved_rid = ?, "
    "moved_to = ?, version = ? WHERE book_id = ? IF state = 'held' AND reservation_id = ? AND version = ?"
)
LOCK_RESTAMP = (
    _LOCK + "reserved_at = ?, version = ? WHERE book_id = ? IF state = 'held' AND reservation_id = ? AND version = ?"
)
LOCK_CREATE = "INSERT INTO {ks}.reservation_by_book_id (book_id, state, version) VALUES (?, 'free', ?) IF NOT EXISTS"
LOCK_REVIVE = _LOCK + "state = 'free', version = ? WHERE book_id = ? IF state = 'withdrawn' AND version < ?"
LOCK_WITHDRAW = _LOCK + "state = 'withdrawn', version = ? WHERE book_id = ? IF state = 'free' AND version < ?"

VIEW_INSERTS = (
    "INSERT INTO {ks}.reservations (reservation_id, book_id, user_id, reserved_at, version) "
    "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?",
    "INSERT INTO {ks}.user_reservations (user_id, book_id, reservation_id, reserved_at, version) "
    "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?",
    "INSERT INTO {ks}.book_reservations (book_id, reservation_id, user_id, reserved_at, version) "
    "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?",
)
MOVING_TO = "UPDATE {ks}.reservations USING TIMESTAMP ? SET moving_to = ? WHERE reservation_id = ?"
DELETE_RESERVATION_ROW = "DELETE FROM {ks}.reservations USING TIMESTAMP ? WHERE reservation_id = ?"
DELETE_USER_ROW = "DELETE FROM {ks}.user_reservations USING TIMESTAMP ? WHERE user_id = ? AND book_id = ?"
DELETE_BOOK_ROW = "DELETE FROM {ks}.book_reservations USING TIMESTAMP ? WHERE book_id = ?"

KEY_CLAIM = (
    "INSERT INTO {ks}.reservation_keys (reservation_id, user_id, book_id, outcome, attempt) "
    "VALUES (?, ?, ?, 'claimed', ?) IF NOT EXISTS"
)
KEY_READ = "SELECT outcome, attempt FROM {ks}.reservation_keys WHERE reservation_id = ?"
KEY_OUTCOME = "UPDATE {ks}.reservation_keys SET outcome = ? WHERE reservation_id = ?"
KEY_TAKE_OVER = (
    "UPDATE {ks}.reservation_keys SET outcome = 'claimed', attempt = ? WHERE reservation_id = ? "
    "IF outcome = 'undone' AND attempt = ?"
)

USER_STATE_READ = "SELECT user_id, joined_at, state FROM {ks}.users WHERE user_id = ?"

# Ambiguous or outdated lightweight transactions are read back and tried again this often.
LWT_ATTEMPTS = 4


async def _backoff(attempt: int) -> None:
    # Jittered and growing, so that contending clients stop colliding in the same Paxos round.
    await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))


@dataclass(frozen=True)
class Lock:
    """One book's lock row. `state` None: no row (the book does not exist, or was never given a lock)."""

    book_id: UUID
    state: str | None
    reservation_id: UUID | None = None
    user_id: int | None = None
    reserved_at: datetime | None = None
    version: int | None = None
    moved_rid: UUID | None = None
    moved_to: UUID | None = None

    def holds(self, reservation_id: UUID) -> bool:
        return self.state == "held" and self.reservation_id == reservation_id

    def reservation(self) -> Reservation:
        assert self.reservation_id is not None and self.user_id is not None and self.reserved_at is not None
        return Reservation(self.reservation_id, self.book_id, self.user_id, self.reserved_at)


def lock_from_row(book_id: UUID, row: Any) -> Lock:
    if row is None:
        return Lock(book_id, None)
    return Lock(
        book_id,
        getattr(row, "state", None),
        getattr(row, "reservation_id", None),
        getattr(row, "user_id", None),
        getattr(row, "reserved_at", None),
        getattr(row, "version", None),
        getattr(row, "moved_rid", None),
        getattr(row, "moved_to", None),
    )


Step = Callable[[str, dict[str, Any]], Awaitable[None]]


class ReservationRepository(RepositoryBase):
    """The reservations and the books' locks (the module docstring says why they never double-book).

    Given the database, the instance's version clock (shared with the other parts, so that every version this
    instance proposes is above every one it has given out or seen), the page tokens, and `settle_after_seconds`,
    the age below which a lock state is left to the request making it. `steps` are the named points where a test
    may pause an operation. The catalogue (a book's lock opened and withdrawn with it, a reader's reservations)
    and the audit (the lock read at SERIAL, views rebuilt, releases) call its lock operations."""

    def __init__(self, db: Database, clock: VersionClock, pages: PageTokens, *, settle_after_seconds: float) -> None:
        super().__init__(db)
        self.clock = clock
        self.pages = pages
        self.settle_after_seconds = settle_after_seconds
        self.steps: dict[str, Step] = {}

    # -- reads ------------------------------------------------------------------------------
    async def get_reservation(self, reservation_id: UUID) -> Reservation:
        row = (
            await self.db.execute(
                self.cql(f"SELECT {COLUMNS} FROM {{ks}}.reservations WHERE reservation_id = ?"), [reservation_id]
            )
        ).one()
        if row is None or row.book_id is None:  # None: only a move's hint is left of it
            raise NotFound.reservation(reservation_id)
        return reservation_from_row(row)

    async def _reservation_row(self, reservation_id: UUID) -> Any | None:
        hint = "moving_to, WRITETIME(moving_to) AS hinted"
        cql = f"SELECT {VIEW_COLUMNS}, {hint} FROM {{ks}}.reservations WHERE reservation_id = ?"
        row = (await self.db.execute(self.cql(cql), [reservation_id])).one()
        return row if row is not None and row.book_id is not None else None

    async def holder(self, book_id: UUID, *, serial: bool = False) -> Reservation | None:
        """The reservation that holds the book now, from the lock; `serial` reads it linearizably."""
        lock = await self._read_lock(book_id, serial=serial)
        return lock.reservation() if lock.state == "held" else None

    async def holders(self, book_ids: Sequence[UUID]) -> dict[UUID, Reservation]:
        """The reservations holding any of these books now, by book; one read for a whole catalogue page."""
        if not book_ids:
            return {}
        result = await self.db.execute(self.cql(LOCKS_READ), [list(book_ids)])
        locks = (lock_from_row(row.book_id, row) for row in result.rows)
        return {lock.book_id: lock.reservation() for lock in locks if lock.state == "held"}

    async def list_reservations(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, page: str | None = None
    ) -> Page[Reservation]:
        return await self._page(f"SELECT {COLUMNS} FROM {{ks}}.reservations", [], page_size, page)

    async def each_reservation(self) -> AsyncIterator[list[Reservation]]:
        """Every reservation, a page at a time as Cassandra pages the table, for a listing streamed whole."""
        async for rows in self._scan(f"SELECT {COLUMNS} FROM {{ks}}.reservations"):
            yield [reservation_from_row(row) for row in rows]

    async def user_reservations(
        self, user_id: int, *, page_size: int = DEFAULT_PAGE_SIZE, page: str | None = None
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
        rows, next_page = await self._page_query(cql, params, page_size, page)
        return Page([reservation_from_row(r) for r in rows], next_page)

    # -- reserve ----------------------------------------------------------------------------
    async def reserve(self, book_id: UUID, user_id: int, idempotency_key: str | None = None) -> Reservation:
        """Reserve the book for the reader, or raise Conflict if another reservation holds it.

        The service chooses the reservation id. A client that may retry sends an idempotency key: the first
        request with it makes the reservation, and a retry answers what became of it (the reservation, or the
        refusal, or that it was cancelled since) without ever reserving again.
        """
        if idempotency_key is not None:
            return await self._reserve_with_key(book_id, user_id, idempotency_key)
        reader = await self._active_reader(user_id)
        return await self._reserve(book_id, reader, uuid4(), keyed=False)

    async def _reserve_with_key(self, book_id: UUID, user_id: int, key: str) -> Reservation:
        key = check_idempotency_key(key)  # app/rules.py; it is hashed into the id, so it must encode
        reservation_id = reservation_id_for(user_id, book_id, key)
        reader, claimed = await asyncio.gather(
            self._active_reader(user_id), self._claim(reservation_id, user_id, book_id), return_exceptions=True
        )
        if isinstance(claimed, BaseException):
            raise claimed
        if not claimed:
            return await self._replay(reservation_id, book_id, user_id)
        if isinstance(reader, BaseException):
            await self._record_outcome(reservation_id, "missing")
            raise reader
        return await self._reserve(book_id, reader, reservation_id, keyed=True)

    async def _reserve(self, book_id: UUID, reader: User, reservation_id: UUID, *, keyed: bool) -> Reservation:
        try:
            lock = await self._take(book_id, reservation_id, reader.user_id)
        except Conflict:
            if keyed:
                await self._record_outcome(reservation_id, "taken")
            raise
        except NotFound:
            if keyed:
                await self._record_outcome(reservation_id, "missing")
            raise
        await self._step("reserve.locked", lock=lock)
        return await self._complete(lock, keyed=keyed, reader=reader)

    async def _complete(self, lock: Lock, *, keyed: bool, reader: User | None = None) -> Reservation:
        """The rest of a reserve once its lock is held: the views, the reader read again, the key's outcome. Any
        failure undoes exactly the lock state `lock` (nothing if another request has moved it on since)."""
        rid, user_id = lock.reservation_id, lock.user_id
        assert rid is not None and user_id is not None
        if reader is None:
            reader = await self._reader_row(user_id)
            if reader is None:
                if await self._undo_reserve(lock) and keyed:
                    await self._record_outcome(rid, "missing")
                raise UnknownReader(user_id)
        try:
            await self._write_views(lock)
        except DatabaseUnavailable:
            if await self._undo_reserve(lock) and keyed:
                await self._record_outcome(rid, "undone")
            raise
        await self._step("reserve.views_written", lock=lock)
        # A deletion of the reader that started meanwhile marked their row first: see the module docstring.
        try:
            still = await self._reader_row(user_id)
        except DatabaseUnavailable:
            # Unknown whether the reader is being deleted: give the book back rather than keep what nobody knows of.
            if await self._undo_reserve(lock) and keyed:
                await self._record_outcome(rid, "undone")
            raise
        if still != reader:
            if await self._undo_reserve(lock) and keyed:
                await self._record_outcome(rid, "missing")
            raise UnknownReader(user_id)
        if keyed:
            # Only now may a retry acknowledge the reservation without finishing it: nothing can undo it any more.
            await self._record_outcome(rid, "made")
        return lock.reservation()

    async def _claim(self, reservation_id: UUID, user_id: int, book_id: UUID) -> bool:
        """True if this request is the first with its key. Each request claims with a token of its own, so that
        after a lost answer the claim read back at SERIAL tells whose it is."""
        attempt = uuid4()
        return await self._lwt_applied_row(
            KEY_CLAIM,
            [reservation_id, user_id, book_id, attempt],
            KEY_READ,
            [reservation_id],
            lambda row: row is not None and row.attempt == attempt,
        )

    async def _lwt_applied_row(
        self, cql: str, params: list[Any], read: str, key: list[Any], applied_if: Callable[[Any], bool]
    ) -> bool:
        """One conditional write; after a lost answer, the row read back at SERIAL tells whether it applied."""
        consistency = self.db.settings.serial_consistency
        lost = False
        for _ in range(LWT_ATTEMPTS):
            try:
                if (await self.db.execute(self.cql(cql), params, write=True)).was_applied:
                    return True
                if not lost:
                    return False
                # An earlier send whose answer was lost may have been finished by Paxos when this one came.
                return applied_if((await self.db.execute(self.cql(read), key, consistency=consistency)).one())
            except OutcomeUnknown:
                lost = True
                row = (await self.db.execute(self.cql(read), key, consistency=consistency)).one()
                if applied_if(row):
                    return True
        raise DatabaseUnavailable("database unavailable: the reservation could not be confirmed; nothing was reserved")

    async def _record_outcome(self, reservation_id: UUID, outcome: str) -> None:
        try:
            await self.db.execute(self.cql(KEY_OUTCOME), [outcome, reservation_id], write=True)
        except DatabaseUnavailable:
            log.warning("could not record outcome %s of idempotency key of %s", outcome, reservation_id)

    async def _replay(self, reservation_id: UUID, book_id: UUID, user_id: int) -> Reservation:
        """A retry of a keyed reserve: say what became of the first request, never take a lock. Once the first request
        recorded the reservation complete, it is acknowledged. While the lock holds it but the first request has not
        finished (slow, frozen, or dead), the retry finishes it: it moves the lock to a new version first, which
        fences off the first request's undo (that releases only the exact version it wrote), then writes the views
        and checks the reader as the first request would. Only a first request that is over and undid itself
        ('undone') may be made again: nothing of it can still happen."""
        lock, claim = await asyncio.gather(
            self._read_lock(book_id, serial=True), self.db.execute(self.cql(KEY_READ), [reservation_id])
        )
        first = claim.one()
        outcome = first.outcome if first else None
        if lock.holds(reservation_id):
            if outcome == "made":
                await self._heal(lock, at_once=True)
                return lock.reservation()
            try:
                fenced = await self._restamp(lock)
            except NotFound:
                fenced = None  # the first request undid itself meanwhile: its outcome says so shortly
            if fenced is not None:
                return await self._complete(fenced, keyed=True)
        elif outcome == "made":
            row = await self._reservation_row(reservation_id)
            if row is not None:
                return reservation_from_row(row)  # made, and moved to another book since
            raise NotFound.reservation_cancelled(reservation_id)
        elif outcome == "taken":
            raise Conflict.book_was_held(book_id)
        elif outcome == "missing":
            raise NotFound.book_or_reader(book_id, user_id)
        elif outcome == "undone" and first is not None:
            attempt = uuid4()
            taken_over = await self._lwt_applied_row(
                KEY_TAKE_OVER,
                [attempt, reservation_id, first.attempt],
                KEY_READ,
                [reservation_id],
                lambda row: row is not None and row.attempt == attempt,
            )
            if taken_over:
                reader = await self._active_reader(user_id)
                return await self._reserve(book_id, reader, reservation_id, keyed=True)
        raise DatabaseUnavailable(
            "an earlier request with this idempotency_key has not finished; if it never does, nothing is reserved "
            "under this key: try again in a moment, or send a new key to try again now"
        )

    async def _active_reader(self, user_id: int) -> User:
        reader = await self._reader_row(user_id)
        if reader is None:
            raise UnknownReader(user_id)
        return reader

    async def _reader_row(self, user_id: int) -> User | None:
        """The reader's row as a reserve sees it; None for no reader, or one being deleted."""
        row = (await self.db.execute(self.cql(USER_STATE_READ), [user_id])).one()
        if row is None or row.state is not None:
            return None
        return User(row.user_id, "", "", row.joined_at)

    async def _take(self, book_id: UUID, reservation_id: UUID, user_id: int, *, above: int | None = None) -> Lock:
        """Takes the free book for the reservation; returns the lock it holds. A book that does not exist has no
        lock row, so the condition fails and nothing is taken: no existence check needs a round trip of its own."""
        seen = above
        unanswered: set[int] = set()  # the versions of sends whose answer was lost (see `_lwt_applied`)
        for attempt in range(1, LWT_ATTEMPTS + 2):
            version = self.clock.next(seen)
            at = now()
            try:
                result = await self.db.execute(
                    self.cql(LOCK_TAKE), [reservation_id, user_id, at, version, book_id, version], write=True
                )
                if result.was_applied:
                    return Lock(book_id, "held", reservation_id, user_id, at, version)
                current = lock_from_row(book_id, result.one())
            except OutcomeUnknown:
                unanswered.add(version)
                current = await self._resolve_lock(book_id)
            self.clock.observe(current.version)
            if current.holds(reservation_id) and current.version in unanswered:
                # An earlier attempt of this loop whose answer was lost: Paxos finished its proposal when this one
                # came (found by the adversarial series, seed 17, where it was answered as "you already hold").
                return current
            # Held by this reservation, but not by a send of ours whose answer was lost: another request of the same
            # reservation took it (a move sent again while the first is still at work). It is not ours to return,
            # since our undo would then release the other request's take (found by the adversarial series, seed 7).
            if current.state == "held":
                try:
                    await self._heal(current)
                except DatabaseUnavailable:
                    log.warning("could not heal the views of %s on book %s", current.reservation_id, book_id)
                raise self._taken(book_id, current, user_id)
            if current.state != "free":
                raise UnknownBook(book_id)
            # Free, but our version was not above the lock's: our clock is behind. Go again from the lock's.
            seen = max(seen or 0, current.version or 0)
            if attempt > 2:
                await _backoff(attempt)
        raise DatabaseUnavailable("database unavailable: the reservation could not be confirmed; nothing was reserved")

    def _taken(self, book_id: UUID, held: Lock, user_id: int) -> Conflict:
        if held.user_id == user_id:
            return Conflict.book_held_by_caller(book_id, held.reservation_id)
        return Conflict.book_held(book_id)

    async def _undo_reserve(self, lock: Lock) -> bool:
        """Takes back a reservation this request made: the lock if it still carries exactly the state this request
        wrote, and the views above that state's version. Nothing that existed before the request is touched.
        True if the request's reservation is certainly gone."""
        try:
            released = await self._release(lock.book_id, lock.reservation_id, exact=lock.version)  # type: ignore[arg-type]
            if released is not None:
                await self._delete_views(lock.reservation_id, lock.user_id, lock.book_id, released)  # type: ignore[arg-type]
                return True
        except DatabaseUnavailable:
            # The lock stays the truth; the heal at the next conflict or the audit's repair rebuilds its views.
            log.warning("could not undo reservation %s on book %s", lock.reservation_id, lock.book_id)
        return False

    # -- cancel -----------------------------------------------------------------------------
    async def cancel(self, reservation_id: UUID, user_id: int) -> None:
        """Cancel the caller's own reservation. A stale or repeated cancel never frees a newer reservation: the
        lock is released only if it still carries this reservation's id."""
        reservation = await self._owned(reservation_id, user_id)
        # Tried first on the book the reservation's row names, where it nearly always is: the lock's own condition
        # checks it, so no read of the lock is needed unless that fails.
        lock = Lock(reservation.book_id, "held", reservation_id)
        for _ in range(LWT_ATTEMPTS):
            released = await self._release(lock.book_id, reservation_id)
            if released is not None:
                await self._step("cancel.released", book_id=lock.book_id, version=released)
                await self._delete_views(reservation_id, user_id, lock.book_id, released)
                if lock.book_id != reservation.book_id:
                    # A move got the reservation here but not its views: the old book's rows still name it.
                    await self._delete_stale_rows(reservation_id, user_id, reservation.book_id)
                return
            try:
                lock = await self._holding(reservation)
            except NotFound:
                # No lock holds it any more, yet its row is there: released by this cancel itself (an answer lost,
                # and the book taken by another since), by a concurrent cancel, or by a crash half-way. It is
                # cancelled either way: what still names it goes, each row at its own write time, which removes
                # those writes and nothing newer (the book's and the reader's rows may be another's by now).
                await self._delete_stale_rows(reservation_id, user_id, reservation.book_id)
                row = await self._reservation_row(reservation_id)
                if row is not None:
                    written = max(row.written or 0, row.hinted or 0)
                    await self.db.execute(self.cql(DELETE_RESERVATION_ROW), [written, reservation_id], write=True)
                return
        raise DatabaseUnavailable("database unavailable: the cancellation could not be confirmed; try again")

    async def _owned(self, reservation_id: UUID, user_id: int) -> Reservation:
        reservation = await self.get_reservation(reservation_id)
        if reservation.user_id != user_id:
            raise Forbidden.not_owner(reservation_id)
        return reservation

    async def _holding(self, reservation: Reservation, *, serial: bool = True) -> Lock:
        """The lock that holds the reservation now, read at SERIAL: the book its row names, or the book a move
        took it to (the old book's lock remembers where). NotFound if no lock holds it any more."""
        if not serial:
            # A quorum read sees every transition that has finished; the transition that follows is conditioned on
            # the version read, so a stale answer makes it fail, never misapply, and then the SERIAL path runs.
            quick = await self._read_lock(reservation.book_id, serial=False)
            if quick.holds(reservation.reservation_id):
                return quick
        read: dict[UUID, Lock] = {}
        book_id: UUID | None = reservation.book_id
        while book_id is not None and book_id not in read:
            lock = read[book_id] = await self._resolve_lock(book_id)
            if lock.holds(reservation.reservation_id):
                return lock
            book_id = lock.moved_to if lock.moved_rid == reservation.reservation_id else None
        row = await self._reservation_row(reservation.reservation_id)
        if row is not None and row.book_id not in read:
            return await self._holding(reservation_from_row(row))
        if row is not None and row.moving_to is not None and row.moving_to not in read:
            lock = await self._resolve_lock(row.moving_to)
            if lock.holds(reservation.reservation_id):
                return lock
        raise NotFound.reservation(reservation.reservation_id)

    async def _release(self, book_id: UUID, reservation_id: UUID, *, exact: int | None = None) -> int | None:
        """Frees the book if this reservation holds it (and, with `exact`, still at that version). Returns the
        version of the release, or None if the reservation did not hold the book."""
        seen = exact
        unanswered: set[int] = set()  # the versions of sends whose answer was lost (see `_lwt_applied`)
        for attempt in range(1, LWT_ATTEMPTS + 2):
            version = self.clock.next(seen)
            cql, guard = (LOCK_RELEASE_EXACT, exact) if exact is not None else (LOCK_RELEASE, version)
            try:
                result = await self.db.execute(self.cql(cql), [version, book_id, reservation_id, guard], write=True)
                if result.was_applied:
                    return version
                current = lock_from_row(book_id, result.one())
            except OutcomeUnknown:
                unanswered.add(version)
                current = await self._resolve_lock(book_id)
            if current.state != "held" and current.version in unanswered:
                # This release, or an earlier send of it whose answer was lost and that Paxos finished meanwhile.
                return current.version
            self.clock.observe(current.version)
            if not current.holds(reservation_id) or (exact is not None and current.version != exact):
                return None
            seen = current.version if exact is None else exact
            if attempt > 2:
                await _backoff(attempt)
        raise DatabaseUnavailable("database unavailable: the cancellation could not be confirmed; try again")

    # -- move or renew ----------------------------------------------------------------------
    async def move(self, reservation_id: UUID, user_id: int, new_book_id: UUID | None = None) -> Reservation:
        """Move the caller's reservation to another book, or renew its time when no book (or the same one) is
        given. The new book is taken first; if it is taken by another, the reservation stays as it was."""
        current = await self._owned(reservation_id, user_id)
        source = await self._holding(current, serial=False)
        if current.book_id != source.book_id:
            # An earlier move got the reservation to its book but failed to write its views: the rows of the book
            # it left still name it. Remove them (each at its own write time) before anything else is written.
            await self._delete_stale_rows(reservation_id, user_id, current.book_id)
        if new_book_id is None or new_book_id == source.book_id:
            return await self._renew(source)
        target = await self._take(new_book_id, reservation_id, user_id, above=source.version)
        # The reservation's own row remembers where it is going before the old book is given up: should the views
        # never follow (a failed batch, a crash) and the old book's one-slot pointer be overwritten by a later move
        # away from it, a cancel still finds the lock that holds it. Stamped at the source's version, so a cancel's
        # delete of the row (above it) always shadows it.
        await self.db.execute(self.cql(MOVING_TO), [source.version, new_book_id, reservation_id], write=True)
        await self._step("move.target_taken", source=source, target=target)
        # The source is given up only in the state this move read: a renew, cancel or other move of the
        # reservation in between makes the condition fail, and the move is undone.
        away = self.clock.next(target.version, source.version)
        if not await self._transition_held(
            source,
            LOCK_MOVE_AWAY,
            [reservation_id, new_book_id, away, source.book_id, reservation_id, source.version],
            lambda lock: lock.state != "held" and lock.version == away,
        ):
            await self._release(new_book_id, reservation_id, exact=target.version)
            await self._holding(current)  # NotFound if a cancel got there first
            raise Conflict.reservation_changed(reservation_id)
        await self._step("move.source_released", source=source, target=target, version=away)
        # Confirm the target above every version the source had: a cancel that followed the reservation to the
        # new book meanwhile makes this fail, and then the reservation is gone, as the cancel said.
        confirmed = self.clock.next(away)
        if not await self._transition_held(
            target,
            LOCK_RESTAMP,
            [target.reserved_at, confirmed, new_book_id, reservation_id, target.version],
            lambda lock: lock.holds(reservation_id) and lock.version == confirmed,
        ):
            await self._delete_source_views(user_id, source.book_id, away)
            now_held = await self._resolve_lock(new_book_id)
            if now_held.holds(reservation_id):
                return now_held.reservation()  # moved, and renewed by another request since: its views are written
            raise NotFound.reservation_cancelled_while_changed(reservation_id)
        moved = Lock(new_book_id, "held", reservation_id, user_id, target.reserved_at, confirmed)
        await self._write_views(moved, source=(source.book_id, away))
        return moved.reservation()

    async def _transition_held(
        self, expected: Lock, cql: str, params: list[Any], applied_if: Callable[[Lock], bool]
    ) -> bool:
        """A transition conditioned on the lock being exactly `expected`. False once the lock is anything else; while
        it still is (a request whose answer was lost and that never got there), it is sent again."""
        lost = False
        for _ in range(LWT_ATTEMPTS):
            try:
                if (await self.db.execute(self.cql(cql), params, write=True)).was_applied:
                    return True
            except OutcomeUnknown:
                lost = True
            current = await self._resolve_lock(expected.book_id)
            if lost and applied_if(current):
                return True  # an earlier send, whose answer was lost, was finished by Paxos meanwhile
            if not (current.holds(expected.reservation_id) and current.version == expected.version):  # type: ignore[arg-type]
                return False
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def _renew(self, lock: Lock) -> Reservation:
        renewed = await self._restamp(lock, at=now())
        await self._write_views(renewed)
        return renewed.reservation()

    async def _restamp(self, lock: Lock, *, at: datetime | None = None, above: int | None = None) -> Lock:
        """The held lock moved to a new version (above `above`), with a new time if `at` is given; followed to
        wherever the reservation is if a move or renew got there first. NotFound once no lock holds it."""
        for _ in range(LWT_ATTEMPTS):
            version, rid = self.clock.next(lock.version, above), lock.reservation_id
            when = at or lock.reserved_at
            if await self._lwt_applied(
                lock.book_id,
                LOCK_RESTAMP,
                [when, version, lock.book_id, rid, lock.version],
                lambda current, rid=rid, version=version: current.holds(rid) and current.version == version,  # type: ignore[misc]
            ):
                return Lock(lock.book_id, "held", rid, lock.user_id, when, version)
            lock = await self._holding(lock.reservation())
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def _lwt_applied(
        self, book_id: UUID, cql: str, params: list[Any], applied_if: Callable[[Lock], bool]
    ) -> bool:
        """Runs one conditional transition; after a lost answer, the lock read at SERIAL tells.

        A lock state matching what the transition would have written is taken as this request's own only after a
        lost answer, never after a definite "not applied": two instances can propose the same version (each one
        above the version they both read), so a definite refusal followed by a match means another request made
        that state (found with two moves of one reservation racing, on one node, where both proposed read + 1)."""
        try:
            return (await self.db.execute(self.cql(cql), params, write=True)).was_applied
        except OutcomeUnknown:
            return applied_if(await self._resolve_lock(book_id))

    # -- the views --------------------------------------------------------------------------
    async def _write_views(self, lock: Lock, *, source: tuple[UUID, int] | None = None) -> None:
        """The lock state's three view rows at its version, in one logged batch; with `source`, the old book's
        rows of a move deleted at the version of its release."""
        r, v = lock.reservation(), lock.version
        values = (
            [r.reservation_id, r.book_id, r.user_id, r.reserved_at, v, v],
            [r.user_id, r.book_id, r.reservation_id, r.reserved_at, v, v],
            [r.book_id, r.reservation_id, r.user_id, r.reserved_at, v, v],
        )
        batch = self.db.batch()
        for cql, params in zip(VIEW_INSERTS, values, strict=True):
            batch.add(await self.db.prepare(self.cql(cql)), params)
        if source is not None:
            book_id, away = source
            batch.add(await self.db.prepare(self.cql(DELETE_USER_ROW)), [away, r.user_id, book_id])
            batch.add(await self.db.prepare(self.cql(DELETE_BOOK_ROW)), [away, book_id])
        await self.db.execute(batch, write=True)

    async def _delete_views(self, reservation_id: UUID, user_id: int, book_id: UUID, version: int) -> None:
        """The reservation's three view rows, deleted at `version`, as plain writes rather than a logged batch: a
        batchlog needs two live peers that the failure detector believes in, and a cancel must work whenever a
        quorum does. The `reservations` row goes last, so that a retried cancel still finds the reservation while
        anything of it remains."""
        await self._delete_source_views(user_id, book_id, version)
        await self.db.execute(self.cql(DELETE_RESERVATION_ROW), [version, reservation_id], write=True)

    async def _delete_source_views(self, user_id: int, book_id: UUID, version: int) -> None:
        await asyncio.gather(
            self.db.execute(self.cql(DELETE_USER_ROW), [version, user_id, book_id], write=True),
            self.db.execute(self.cql(DELETE_BOOK_ROW), [version, book_id], write=True),
        )

    async def _delete_stale_rows(self, reservation_id: UUID, user_id: int, book_id: UUID) -> None:
        """The book's and the reader's rows for `book_id`, if they still name the reservation, each deleted at its own
        write time: the write that put the reservation there goes, any newer one stays."""
        book_row, user_row = await asyncio.gather(
            self.db.execute(
                self.cql(f"SELECT {VIEW_COLUMNS} FROM {{ks}}.book_reservations WHERE book_id = ?"), [book_id]
            ),
            self.db.execute(
                self.cql(f"SELECT {VIEW_COLUMNS} FROM {{ks}}.user_reservations WHERE user_id = ? AND book_id = ?"),
                [user_id, book_id],
            ),
        )
        if (row := book_row.one()) is not None and row.reservation_id == reservation_id:
            await self.db.execute(self.cql(DELETE_BOOK_ROW), [row.written, book_id], write=True)
        if (row := user_row.one()) is not None and row.reservation_id == reservation_id:
            await self.db.execute(self.cql(DELETE_USER_ROW), [row.written, user_id, book_id], write=True)

    # -- settling what a crash or a pause left behind -------------------------------------------------------
    def _settled(self, lock: Lock) -> bool:
        """True if the lock has not changed for `settle_after`: no request still at work on it is expected."""
        if lock.version is None:
            return True
        age = self.clock.wall_us() - lock.version
        return age > self.settle_after_seconds * 1_000_000

    async def _heal(self, lock: Lock, *, at_once: bool = False) -> None:
        """A held lock whose views are missing or older than it: rebuild them at the lock's version, after reading
        the lock again at SERIAL. Left to the request making it while it is younger than `settle_after`."""
        if lock.reservation_id is None or not (at_once or self._settled(lock)):
            return
        await self._step("heal.start", lock=lock)
        row = await self._reservation_row(lock.reservation_id)
        if row is not None and row.book_id == lock.book_id and (row.version or 0) >= (lock.version or 0):
            return
        current = await self._resolve_lock(lock.book_id)
        if current.state != "held" or current.reservation_id != lock.reservation_id or current.user_id is None:
            return
        log.warning(
            "rebuilding the views of reservation %s from its lock on book %s", lock.reservation_id, lock.book_id
        )
        await self._write_views(current)
        if row is not None and row.book_id != current.book_id:
            # The views still named the book a move left: its rows go, each at its own write time.
            await self._delete_stale_rows(current.reservation_id, current.user_id, row.book_id)

    async def _resolve_lock(self, book_id: UUID) -> Lock:
        """The lock row at SERIAL. Under contention the serial read can itself time out; it is retried with
        backoff, and only then is the database called unavailable."""
        for attempt in range(1, LWT_ATTEMPTS + 2):
            try:
                return await self._read_lock(book_id, serial=True)
            except DatabaseUnavailable:
                if attempt > LWT_ATTEMPTS:
                    raise
                await _backoff(attempt)
        raise AssertionError("not reached")

    async def _read_lock(self, book_id: UUID, *, serial: bool) -> Lock:
        consistency = self.db.settings.serial_consistency if serial else None
        row = (await self.db.execute(self.cql(LOCK_READ), [book_id], consistency=consistency)).one()
        lock = lock_from_row(book_id, row)
        self.clock.observe(lock.version)
        return lock

    # -- the lock's life with its book ----------------------------------------------------------------------
    async def _open_lock(self, book_id: UUID) -> None:
        """Gives a new book its free lock, or frees the lock of a withdrawn book written again."""
        version = self.clock.next()
        result = await self.db.execute(self.cql(LOCK_CREATE), [book_id, version], write=True)
        if result.was_applied:
            return
        current = lock_from_row(book_id, result.one())
        self.clock.observe(current.version)
        if current.state == "withdrawn":
            version = self.clock.next(current.version)
            await self.db.execute(self.cql(LOCK_REVIVE), [version, book_id, version], write=True)

    async def _withdraw_lock(self, book_id: UUID) -> int:
        """free -> withdrawn, so no reserve can take the book any more; Conflict while it is held. Returns the
        lock's version once withdrawn."""
        seen = None
        for _ in range(LWT_ATTEMPTS):
            version = self.clock.next(seen)
            try:
                result = await self.db.execute(self.cql(LOCK_WITHDRAW), [version, book_id, version], write=True)
                if result.was_applied:
                    return version
                current = lock_from_row(book_id, result.one())
            except OutcomeUnknown:
                current = await self._resolve_lock(book_id)
            if current.state in ("withdrawn", None):
                return current.version or version
            if current.state == "held":
                current = await self._resolve_lock(book_id)
                if current.state == "held":
                    raise Conflict.book_in_use(book_id, current.reservation_id)
            seen = current.version
        raise DatabaseUnavailable("database unavailable: the book could not be withdrawn; try again")

    async def _step(self, name: str, **facts: Any) -> None:
        """A named point in an operation, where a test can pause it (`Library.steps`, this part's `steps`)."""
        hook = self.steps.get(name)
        if hook is not None:
            await hook(name, facts)
