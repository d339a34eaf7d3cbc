"""The reservation use cases, composed of the lock's transitions (app/repository/locks.py).

Reserve, cancel, renew, move and withdraw each run transitions of the table, then write or delete the views at the
version of the state they describe (app/repository/store.py). The queue's use cases (join, leave, the hand-off a
cancel or an expiry makes, promote) and the pickup window's (expire, sweep) are built the same way, and the per-
reader limits take a seat of the reader's around each (app/repository/seats.py). Whoever meets a move's in-between
state settles it first, the same way every time (`settle`): from what the source lock says, read at SERIAL, the move
went through and is finished, or it never will and its target is abandoned. The argument for every path, and the
test that shows it, is a row of docs/reservation-protocol.md.

Nothing here knows Cassandra: the locks, the views and the keys are interfaces, so the schedule search
(tests/schedules/) runs these same use cases on a model of what Cassandra promises.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from app import metrics
from app.models import (
    Conflict,
    ConflictKind,
    DatabaseUnavailable,
    Forbidden,
    HoldEnd,
    NotFound,
    Place,
    Reservation,
    UnknownBook,
    UnknownReader,
    User,
    reservation_id_for,
)
from app.repository.base import now
from app.repository.clock import VersionClock
from app.repository.idempotency import KeyOutcome, KeyStore
from app.repository.locks import (
    ATTEMPTS,
    Lock,
    LockRunner,
    LockState,
    Outcome,
    T,
    Transition,
    Waiting,
    backoff,
    place_in,
)
from app.repository.seats import READY, WAITING, Seat, SeatStore
from app.repository.store import ReservationStore, ViewRow
from app.rules import MAX_RENEWALS, PICKUP_SECONDS, SWEEP_SECONDS, check_idempotency_key

log = logging.getLogger(__name__)

Step = Callable[[str, dict[str, Any]], Awaitable[None]]
Ready = Callable[[], Awaitable[None]]  # what must hold before a take is sent

_GONE = (None, LockState.WITHDRAWN)
# How many expired holds a sweep ends at once: a sweep's length, and so the worst-case delay of an expiry, grows with
# the holds to end divided by this (each end is a few round trips and one or two lightweight transactions).
SWEEP_CONCURRENCY = 16
# How many lock states `heal` remembers as having their views whole (about 100 bytes each).
WHOLE_STATES_KEPT = 10_000


class Reservations:
    """The use cases. Given the lock runner, the view store, the idempotency keys, the instance's version clock, and
    `settle_after_seconds`: the age below which a move's undecided state is left to the request making it;
    `pickup_seconds`: how long a hold waits to be collected once the book is the reader's (its `ready_until`), and
    `max_renewals`: how often a reader may extend that. `steps` are the named points where a test may pause an
    operation."""

    def __init__(
        self,
        locks: LockRunner,
        store: ReservationStore,
        keys: KeyStore,
        clock: VersionClock,
        *,
        settle_after_seconds: float,
        pickup_seconds: float = PICKUP_SECONDS,
        max_renewals: int = MAX_RENEWALS,
        sweep_seconds: float = SWEEP_SECONDS,
        seats: SeatStore | None = None,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.locks = locks
        self.store = store
        self.keys = keys
        self.clock = clock
        self.settle_after_seconds = settle_after_seconds
        self.pickup_seconds = pickup_seconds
        self.max_renewals = max_renewals
        self.sweep_seconds = sweep_seconds
        # The per-reader limits (app/repository/seats.py): how many seats of each kind a reader has; 0 or missing:
        # no limit, and no seat is taken.
        self.seats = seats
        self.limits = {kind: n for kind, n in (limits or {}).items() if n > 0} if seats is not None else {}
        self.steps: dict[str, Step] = {}
        # Told of each hold that comes to a reader from the queue, once it is theirs (app/notices.py sends the
        # e-mail); a listener must return at once, and nothing it does can undo the hand-off.
        self.ready_listeners: list[Callable[[Reservation], None]] = []
        # Told of each hold or place that ends (cancelled, expired, left), for the reader's history
        # (app/repository/history.py): (reader, how it ended, reservation, book, when it began).
        self.ended_listeners: list[Callable[[int, HoldEnd, UUID, UUID, datetime | None], Awaitable[None]]] = []
        # The held locks (book, version) whose views this instance found up to date: a book refused again and again
        # (held for days) has its views looked at once per state, not on every refusal (`heal`). Nothing but a later
        # transition (a new version) removes views written at a version, so a state found whole stays whole.
        self._whole: OrderedDict[tuple[UUID, int], None] = OrderedDict()

    # -- reserve ------------------------------------------------------------------------------------------------
    async def reserve(self, book_id: UUID, user_id: int, idempotency_key: str | None = None) -> Reservation:
        """Reserve the book for the reader, or raise Conflict if another reservation holds it.

        The service chooses the reservation id. A client that may retry sends an idempotency key: the first request
        with it makes the reservation, and a retry answers what became of it (the reservation, or the refusal, or
        that it was cancelled since) without ever reserving again (app/repository/idempotency.py).

        Every door reserves through here (the API, the pages, the earlier system's endpoints), so each reserve's
        outcome is counted here, once (app/metrics.py)."""
        try:
            if idempotency_key is not None:
                reservation = await self._reserve_with_key(book_id, user_id, idempotency_key)
            else:
                reservation = await self._reserve(book_id, user_id, uuid4(), keyed=False)
        except Exception as error:
            metrics.RESERVATIONS.labels(metrics.reserve_outcome(error)).inc()
            raise
        metrics.RESERVATIONS.labels(metrics.RESERVED).inc()
        return reservation

    async def _reserve_with_key(self, book_id: UUID, user_id: int, key: str) -> Reservation:
        key = check_idempotency_key(key)  # app/rules.py; it is hashed into the id, so it must encode
        reservation_id = reservation_id_for(user_id, book_id, key)
        reader, claimed = await asyncio.gather(
            self._active_reader(user_id), self.keys.claim(reservation_id, user_id, book_id), return_exceptions=True
        )
        if isinstance(claimed, BaseException):
            raise claimed
        if not claimed:
            return await self._replay(reservation_id, book_id, user_id)
        if isinstance(reader, BaseException):
            await self.keys.record(reservation_id, KeyOutcome.MISSING)
            raise reader
        return await self._reserve(book_id, reader, reservation_id, keyed=True)

    async def _reserve(self, book_id: UUID, reader: User | int, reservation_id: UUID, *, keyed: bool) -> Reservation:
        """Takes the book for the reservation, then completes it (`_complete`). `reader`: the reader as read already,
        or their card, read once the lock's read shows the book may be taken: a held book is refused from that one
        read, and a reader that does not exist never takes the lock."""
        checked = [reader] if isinstance(reader, User) else []
        user_id = reader.user_id if isinstance(reader, User) else reader
        claimed: list[Seat] = []

        async def ready() -> None:
            """Once the look shows the book may be taken: the reader exists, and has a seat free under the limit."""
            if not checked:
                checked.append(await self._active_reader(user_id))
            claimed.extend(await self._claim_seat(user_id, READY, reservation_id, book_id))

        try:
            lock = await self._take(book_id, reservation_id, user_id, ready=ready)
        except (Conflict, NotFound) as refused:
            await self._free_seats(claimed)
            if keyed and not (isinstance(refused, Conflict) and refused.kind is ConflictKind.LIMIT_REACHED):
                outcome = KeyOutcome.TAKEN if isinstance(refused, Conflict) else KeyOutcome.MISSING
                await self.keys.record(reservation_id, outcome)
            elif keyed:
                await self.keys.record(reservation_id, KeyOutcome.UNDONE)
            raise
        await self._step("reserve.locked", lock=lock)
        return await self._complete(lock, keyed=keyed, reader=checked[0])

    async def _take(self, book_id: UUID, reservation_id: UUID, user_id: int, *, ready: Ready | None = None) -> Lock:
        """free -> held. A book that does not exist has no lock row, so the condition fails and nothing is taken: no
        existence check needs a round trip of its own. `ready`: what must hold before the take is sent."""
        for _ in range(2):
            taken = await self._run_past_moves(
                T.TAKE,
                book_id,
                ready=ready,
                reservation_id=reservation_id,
                user_id=user_id,
                reserved_at=now(),
                **self.window(),
            )
            if taken.applied:
                return taken.lock
            ready = None  # awaited already, if the take was sent
            if not await self.expire(taken.lock):
                break
            # the hold it met had outlived its pickup window, and is ended now: the book may be free
        raise await self._refusal(book_id, taken.lock, user_id)

    def window(self, renewals: int = 0) -> dict[str, Any]:
        """The pickup window and renewal count of a hold that becomes the reader's now (a take, a move, a hand-off),
        or that is renewed (`renewals` its new count)."""
        until = now() + timedelta(milliseconds=round(self.pickup_seconds * 1000))  # Cassandra keeps milliseconds
        return {"ready_until": until, "renewals": renewals}

    async def _run_past_moves(
        self, transition: Transition, book_id: UUID, *, ready: Ready | None = None, **values: Any
    ) -> Outcome:
        """Runs a transition that leaves FREE; if it meets a move's in-between state, settles that first and runs it
        again. Refused when the lock is anything else, or a move still at work on it (younger than the settle time).
        The lock is looked at first with a QUORUM read (`LockRunner.look`, rule 7 of docs/reservation-protocol.md),
        which answers most refusals without a Paxos round; `ready` is awaited once before the transition is sent."""
        for _ in range(ATTEMPTS):
            outcome = await self.locks.look(transition, book_id, **values) if transition.refused_by_read else None
            if outcome is None:
                if ready is not None:
                    await ready()
                    ready = None
                outcome = await self.locks.run(transition, book_id, **values)
            if outcome.applied or not outcome.lock.in_between or not await self.settle(outcome.lock):
                return outcome
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def _refusal(self, book_id: UUID, met: Lock, user_id: int) -> Exception:
        """Why a take of the book was refused, from the lock it met; a HELD lock is healed on the way."""
        if met.state in _GONE:
            return UnknownBook(book_id)
        if met.state is LockState.HELD:
            await self._heal_beside(met)
        elif met.state is LockState.FREE and met.waiting:
            await self.promote(book_id)  # free, and readers wait: it is theirs, in order
        if (paused := met.suspension(user_id)) is not None:
            return Conflict.place_suspended(book_id, paused.suspended_until)
        return self._taken(book_id, met, user_id)  # held, or a move at work on it: taken, for now

    def _taken(self, book_id: UUID, held: Lock, user_id: int) -> Conflict:
        if held.user_id == user_id:
            return Conflict.book_held_by_caller(book_id, held.reservation_id)
        return Conflict.book_held(book_id)

    async def _complete(self, lock: Lock, *, keyed: bool, reader: User | None = None) -> Reservation:
        """The rest of a reserve once its lock is held: the views, the reader read again, the key's outcome. Any
        failure undoes exactly the lock state `lock` (nothing if another request has moved it on since).

        A deletion of the reader marks their row 'closing' with a conditional write before it looks for their
        reservations; reading the row again after the views are written means either the views were there before
        the deletion looked (and it refuses), or this reserve sees the mark (and gives the book back)."""
        rid, user_id = lock.reservation_id, lock.user_id
        assert rid is not None and user_id is not None
        if reader is None:
            reader = await self.store.reader(user_id)
            if reader is None:
                await self._undo_reserve(lock, keyed, KeyOutcome.MISSING)
                raise UnknownReader(user_id)
        try:
            await self._confirm_seat(user_id, READY, rid, lock.book_id)
        except (Conflict, DatabaseUnavailable):
            # No seat under the limit holds it (a paused request's claim expired, and another took the seat): a
            # hold is never acknowledged without one, so this one is taken back.
            await self._undo_reserve(lock, keyed, KeyOutcome.UNDONE)
            raise
        try:
            await self.store.write_views(lock)
        except DatabaseUnavailable:
            await self._undo_reserve(lock, keyed, KeyOutcome.UNDONE)
            raise
        await self._step("reserve.views_written", lock=lock)
        try:
            still = await self.store.reader(user_id)
        except DatabaseUnavailable:
            # Unknown whether the reader is being deleted: give the book back rather than keep what nobody knows of.
            await self._undo_reserve(lock, keyed, KeyOutcome.UNDONE)
            raise
        if still != reader:
            await self._undo_reserve(lock, keyed, KeyOutcome.MISSING)
            raise UnknownReader(user_id)
        if keyed:
            # Only now may a retry acknowledge the reservation without finishing it: nothing can undo it any more.
            await self.keys.record(rid, KeyOutcome.MADE)
        return lock.reservation()

    async def _undo_reserve(self, lock: Lock, keyed: bool, outcome: KeyOutcome) -> None:
        """Takes back a reservation this request made: the lock only if it still is exactly the state this request
        wrote (held at its version), then the views above that version; records the key's outcome once it is
        certainly gone. Nothing that existed before the request is touched."""
        rid, user_id = lock.reservation_id, lock.user_id
        assert rid is not None and user_id is not None
        try:
            released, handed = await self._end_exactly(lock)
            if released.applied:
                version = released.lock.version
                assert version is not None
                await self._delete_rows_of(user_id, lock.book_id, version, handed=handed)
                await self.store.delete_reservation_row(rid, version)
                await self._free_seat_of(user_id, rid)
                if keyed:
                    await self.keys.record(rid, outcome)
        except DatabaseUnavailable:
            # The lock stays the truth; the heal at the next conflict or the audit's repair rebuilds its views.
            log.warning("could not undo reservation %s on book %s", rid, lock.book_id)

    async def _end_exactly(
        self, lock: Lock, release: Transition = T.RELEASE_EXACT, hand_off: Transition = T.HAND_OFF_EXACT
    ) -> tuple[Outcome, bool]:
        """Ends the hold `lock` shows, only at its exact version: the book freed, or, when readers joined its queue
        meanwhile, handed to the first of them (a loan: `RETURN`, `RETURN_HAND_OFF`). Says how it went, and whether
        it was handed on."""
        rid = lock.reservation_id
        released = await self.locks.run(release, lock.book_id, expected=lock.version, reservation_id=rid)
        if not released.applied and released.lock.waiting and released.lock.version == lock.version:
            met = replace(lock, waiting=released.lock.waiting)
            handed = await self._hand_on(met, hand_off, reservation_id=rid, expected=lock.version)
            return handed, handed.applied
        return released, False

    async def _replay(self, reservation_id: UUID, book_id: UUID, user_id: int) -> Reservation:
        """A retry of a keyed reserve: say what became of the first request, never take a lock. Once the first request
        recorded the reservation complete, it is acknowledged. While the lock holds it but the first request has not
        finished (slow, frozen, or dead), the retry finishes it: it restamps the lock first, which fences off the
        first request's undo (that releases only the exact version it wrote), then writes the views and checks the
        reader as the first request would. Only a first request that is over and undid itself may be made again."""
        lock, first = await asyncio.gather(self.locks.read(book_id, serial=True), self.keys.read(reservation_id))
        outcome = first.outcome if first else None
        if lock.holds(reservation_id):
            if outcome is KeyOutcome.MADE:
                await self.heal(lock, at_once=True)
                return lock.reservation()
            fenced = await self._restamp(lock)
            if fenced.applied:
                return await self._complete(fenced.lock, keyed=True)
            # else the first request undid itself meanwhile: its outcome says so shortly
        elif lock.involves(reservation_id):
            await self.settle(lock)  # made, then moved, and the move stopped half-way
        elif outcome is KeyOutcome.MADE:
            row = await self.store.reservation_row(reservation_id)
            if row is not None:
                return row.reservation()  # made, and moved to another book since
            raise NotFound.reservation_cancelled(reservation_id)
        elif outcome is KeyOutcome.TAKEN:
            raise Conflict.book_was_held(book_id)
        elif outcome is KeyOutcome.MISSING:
            raise NotFound.book_or_reader(book_id, user_id)
        elif outcome is KeyOutcome.UNDONE and first is not None and await self.keys.take_over(reservation_id, first):
            reader = await self._active_reader(user_id)
            return await self._reserve(book_id, reader, reservation_id, keyed=True)
        raise DatabaseUnavailable(
            "an earlier request with this idempotency_key has not finished; if it never does, nothing is reserved "
            "under this key: try again in a moment, or send a new key to try again now"
        )

    async def _active_reader(self, user_id: int) -> User:
        reader = await self.store.reader(user_id)
        if reader is None:
            raise UnknownReader(user_id)
        return reader

    # -- cancel -------------------------------------------------------------------------------------------------
    async def cancel(self, reservation_id: UUID, user_id: int) -> None:
        """Cancel the caller's own reservation: every lock it holds or is taking is ended, then its views go. A stale
        or repeated cancel never frees a newer reservation: a lock is released only if it still carries this id."""
        row = await self._owned(reservation_id, user_id)
        # Tried first on the book the reservation's row names, where it nearly always is: the lock's own condition
        # checks it, so no read of the lock is needed unless that fails.
        book_id = row.book_id
        seen = [row]  # every version of its row read on the way: the books they name are where its rows may be
        for _ in range(ATTEMPTS):
            released = await self.locks.run(T.RELEASE, book_id, reservation_id=reservation_id)
            handed = False
            if not released.applied and released.lock.holds(reservation_id) and released.lock.lent_at is not None:
                raise Conflict.on_loan(book_id, reservation_id)  # the book is at the reader's: the desk ends it
            if not released.applied and released.lock.holds(reservation_id) and released.lock.waiting:
                # Readers wait for the book: it goes to the first of them in the same transition, never free between.
                released = await self._hand_on(released.lock, T.HAND_OFF, reservation_id=reservation_id)
                handed = released.applied
            if released.applied:
                version = released.lock.version
                assert version is not None
                await self._step("cancel.released", book_id=book_id, version=version)
                await self._clear_ended(seen, book_id, version, handed=handed)
                await self._ended(user_id, HoldEnd.CANCELLED, reservation_id, book_id, seen[-1].reserved_at)
                return
            try:
                book_id = (await self.locate(seen[-1], seen=seen)).book_id
            except NotFound:
                await self._remove_released(seen)
                return
        raise DatabaseUnavailable("database unavailable: the cancellation could not be confirmed; try again")

    async def _clear_ended(self, seen: list[ViewRow], book_id: UUID, version: int, *, handed: bool) -> None:
        """The views of a reservation whose hold on `book_id` ended at `version` (released, handed on, expired): a
        move its rows name ended too, its rows on the book and on any other book they name deleted, its own row
        last."""
        rid, user_id = seen[0].reservation_id, seen[0].user_id
        await self._end_moves_into(seen, book_id)
        await self._delete_rows_of(user_id, book_id, version, handed=handed)
        for other in _books_named(seen, book_id):
            await self.store.delete_if_naming(rid, user_id, other)
        await self.store.delete_reservation_row(rid, version)
        await self._free_seat_of(user_id, rid)

    async def _remove_released(self, seen: list[ViewRow]) -> None:
        """No lock holds the reservation any more, yet its row is there: released by this cancel itself (an answer
        lost, and the book taken by another since), by a concurrent cancel, or by a crash half-way. It is cancelled
        either way, and its rows go above every state that has ended: at each book's `freed_at` (the version of its
        last release, which a take leaves alone, so a view write of any ended state, however late, is below it and
        the current holder's rows above it), and the reader's row at its `handed_at` (the last hand-off's version,
        above every hold it ended; the next holder's rows are written at it, under another reader's key, unless the
        book came back to this reader, whose row is then deleted only if it still names the reservation). Rows of a
        lock with neither are deleted at their own write time, which removes those writes and nothing newer (the
        book's and the reader's rows may be another's by now)."""
        rid, user_id = seen[0].reservation_id, seen[0].user_id
        if (last := await self.store.reservation_row(rid)) is not None:
            seen = [*seen, last]
        await self._end_moves_into(seen, None)
        above = max(max(row.written or 0, row.hinted or 0) for row in seen)
        for book_id in _books_named(seen, None):
            lock = await self.locks.read(book_id, serial=True)
            if lock.freed_at is None and lock.handed_at is None:
                await self.store.delete_if_naming(rid, user_id, book_id)
                continue
            if lock.freed_at is not None:
                await self.store.delete_book_rows(user_id, book_id, lock.freed_at)
            if lock.handed_at is not None and lock.handed_at > (lock.freed_at or 0):
                if lock.user_id == user_id:
                    # The book came back to this reader since, at the hand-off's version: that row is the new hold's.
                    await self.store.delete_if_naming(rid, user_id, book_id)
                else:
                    # Handed on: the reader's row goes above the hand-off; the book's is the next holder's, at that
                    # same version, and theirs to keep. Their views may never have been written, though (the hand-off's
                    # answer was lost, and the lock changed again before it was read back: the desk lent the book),
                    # so a book row still naming this reservation goes at its own write time, below theirs.
                    await self.store.delete_user_row(user_id, book_id, lock.handed_at)
                    await self.store.delete_if_naming(rid, user_id, book_id)
            above = max(above, lock.freed_at or 0, lock.handed_at or 0)
        await self.store.delete_reservation_row(rid, above)
        await self._free_seat_of(user_id, rid)

    async def _end_moves_into(self, rows: list[ViewRow], released: UUID | None) -> None:
        """The other books the reservation's row names as its hint (a move's target while the move is at work, its
        source once it is done) may be in a move's in-between state for it: a target taken by a move paused before
        its decision (which can never go through once the hold is released: abandoned now), or a source whose rows
        are still to go (finished now), rather than left to whoever meets it."""
        rid = rows[0].reservation_id
        for book_id in dict.fromkeys(row.moving_to for row in rows):
            if book_id is None or book_id == released:
                continue
            other = await self.locks.read(book_id, serial=True)
            if other.involves(rid) and other.in_between:
                await self.settle(other)

    async def _owned(self, reservation_id: UUID, user_id: int) -> ViewRow:
        row = await self.store.reservation_row(reservation_id)
        if row is None:
            raise NotFound.reservation(reservation_id)
        if row.user_id != user_id:
            raise Forbidden.not_owner(reservation_id)
        return row

    # -- move or renew ------------------------------------------------------------------------------------------
    async def renew_on(self, book_id: UUID, user_id: int) -> Reservation:
        """Renew the reader's reservation of the book, named as the earlier system named one: by its book and reader.
        The book's lock, read at QUORUM, says which reservation that is, and the renewal starts from it. NotFound if no
        reservation of the reader holds the book."""
        lock = await self.locks.read(book_id)
        if lock.state is not LockState.HELD or lock.user_id != user_id or lock.reservation_id is None:
            raise NotFound(f"reader {user_id} holds no reservation of book {book_id}", book_id=book_id, user_id=user_id)
        # The earlier system's renewal had no limit, and its contract no refusal for one: its scripts renew at will.
        return await self.move(lock.reservation_id, user_id, known=lock, limited=False)

    async def move(
        self,
        reservation_id: UUID,
        user_id: int,
        new_book_id: UUID | None = None,
        *,
        known: Lock | None = None,
        limited: bool = True,
    ) -> Reservation:
        """Move the caller's reservation to another book, or renew its time when no book (or the same one) is given.

        A move is a small two-phase commit decided on the source lock: the target is taken as INCOMING (from the
        source, at the version the source is held at), the source goes HELD -> OUTGOING only in the state this move
        read (the decision: a renew, cancel or other move in between makes it fail, and the target is abandoned),
        then the target is confirmed HELD above every version the source had, the views follow, and the source is
        freed. Each step after the decision is the same code whoever runs it (`_finish_move`). `limited`: a renewal is
        refused past `max_renewals` (the earlier system's renewal is not). `known`: the lock of the
        book the reservation is thought to be on, just read at QUORUM; it stands for `locate`'s first read when it holds
        the reservation on the book its row names."""
        row = await self._owned(reservation_id, user_id)
        if known is not None and known.holds(reservation_id) and known.book_id == row.book_id:
            source = known
        else:
            source = await self.locate(row, quick=True)
        if row.book_id != source.book_id:
            # Rows left by a move of an earlier version whose views never came: each goes at its own write time.
            await self.store.delete_if_naming(reservation_id, user_id, row.book_id)
        # A move of this reservation that stopped half-way leaves its other book in-between: finished or abandoned
        # first, so that no later move overwrites the only pointer to it (the row's hint).
        await self._end_moves_into([row], source.book_id)
        if source.lent_at is not None:
            raise Conflict.on_loan(source.book_id, reservation_id)  # a loan is neither renewed nor moved here
        if new_book_id is None or new_book_id == source.book_id:
            return await self._renew(source, limited=limited)
        assert source.version is not None
        # The hint comes before the take, so a cancel can always find a target this move took.
        await self.store.hint(reservation_id, new_book_id, source.version)
        await self._step("move.hinted", source=source)
        target = await self._move_in(source, new_book_id)
        await self._step("move.target_taken", source=source, target=target)
        decided = await self.locks.run(
            T.MOVE_OUT,
            source.book_id,
            before=source,
            above=target.version,
            expected=source.version,
            reservation_id=reservation_id,
            moved_to=new_book_id,
        )
        if not decided.applied:
            now_source = await self.locks.read(source.book_id, serial=True)
            if not (now_source.state is LockState.OUTGOING and _is_move(now_source, target)):
                await self._abandon(target)
                await self.locate(row)  # NotFound if a cancel got there first
                raise Conflict.reservation_changed(reservation_id)
            decided = Outcome(True, now_source)  # another send of this same move decided it
        await self._step("move.source_released", source=source, target=target, version=decided.lock.version)
        moved = await self._finish_move(decided.lock, target)
        if moved is None:
            raise NotFound.reservation_cancelled_while_changed(reservation_id)
        return moved.reservation()

    async def _move_in(self, source: Lock, book_id: UUID) -> Lock:
        """free -> incoming, for the reservation coming from `source`. Another send of this same move (the same
        reservation, source and source version) may have taken it already: that take is this move's too."""
        rid, user_id = source.reservation_id, source.user_id
        assert rid is not None and user_id is not None
        taken = await self._run_past_moves(
            T.MOVE_IN,
            book_id,
            above=source.version,
            reservation_id=rid,
            user_id=user_id,
            reserved_at=now(),
            move_from=source.book_id,
            move_from_version=source.version,
            **self.window(),
        )
        if taken.applied:
            return taken.lock
        if taken.lock.state is LockState.INCOMING and _is_same_move(taken.lock, source):
            return await self.locks.read(book_id, serial=True)
        raise await self._refusal(book_id, taken.lock, user_id)

    async def _finish_move(self, source: Lock, target: Lock | None = None) -> Lock | None:
        """The rest of a decided move (the source OUTGOING): the target confirmed held above the source's version,
        the views written there and the source's rows deleted at its OUTGOING version, then the source freed. Only
        then can anyone take the source: its rows are gone before a new holder's are written. Returns the target's
        lock if the reservation still holds it (a cancel may have followed it there already). `target`: the
        INCOMING state the caller itself took, saving a read; otherwise the target is read at SERIAL."""
        rid, user_id, target_id = source.reservation_id, source.user_id, source.moved_to
        assert rid is not None and user_id is not None and target_id is not None and source.version is not None
        # The target as the caller saw it may be an INCOMING state this decision did not decide (a late send's, or one
        # abandoned since): whenever it is not confirmed, the target is read as it is now and judged again.
        fresh = target is None
        if target is None:
            target = await self.locks.read(target_id, serial=True)
        for _ in range(ATTEMPTS):
            if target.state is LockState.INCOMING and _is_move(source, target):
                confirmed = await self.locks.run(
                    T.CONFIRM,
                    target_id,
                    before=target,
                    above=source.version,
                    expected=target.version,
                    reservation_id=rid,
                    move_from_version=target.move_from_version,
                )
                if confirmed.applied:
                    target = confirmed.lock
                    break
            elif fresh:
                break
            target, fresh = await self.locks.read(target_id, serial=True), True
        if target.state is LockState.INCOMING and _is_move(source, target):
            # Never free the source while its decided target is unconfirmed: that would lose the reservation.
            raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")
        await self._step("move.confirmed", source=source, target=target)
        held = target if target.holds(rid) else None
        if held is not None:
            await self.store.write_views(held, came_from=source.book_id, drop_at=source.version)
        else:
            await self.store.delete_book_rows(user_id, source.book_id, source.version)
        await self._step("move.views_written", source=source, target=target)
        await self.locks.run(T.FINISH_OUT, source.book_id, before=source, reservation_id=rid)
        # Readers may wait for the book the reservation left, joined after the mover read the source (a join leaves
        # the version, so the decision did not fail for it): the lock, read again, says.
        await self.promote(source.book_id)
        return held

    async def _restamp(self, lock: Lock, *, renew: bool = False, above: int | None = None) -> Outcome:
        """held -> held at a new version, only at the version read: a fence (a late write of the version read can no
        longer apply), a renewal (`renew`: a new time and pickup window, one more renewal), or a lift above a view row
        written at `above`. The lock must have been read whole (not a refusal's columns): what it does not renew, it
        writes again as read."""
        kept = {"reserved_at": lock.reserved_at, "ready_until": lock.ready_until, "renewals": lock.renewals}
        if renew:
            kept = {"reserved_at": now(), **self.window((lock.renewals or 0) + 1)}
        return await self.locks.run(
            T.RESTAMP,
            lock.book_id,
            before=lock,
            above=above,
            expected=lock.version,
            reservation_id=lock.reservation_id,
            **kept,
        )

    async def _abandon(self, target: Lock) -> bool:
        """incoming -> free, for a move that never will go through; the target's rows for its reader are deleted above
        every version written there (nothing is written for an incoming state, but nothing older may remain). Says
        whether this call abandoned it (False: another request already had)."""
        abandoned = await self.locks.run(
            T.ABANDON,
            target.book_id,
            expected=target.version,
            reservation_id=target.reservation_id,
            move_from_version=target.move_from_version,
        )
        if abandoned.applied and abandoned.lock.version is not None and target.user_id is not None:
            await self.store.delete_book_rows(target.user_id, target.book_id, abandoned.lock.version)
        return abandoned.applied

    async def _renew(self, lock: Lock, *, limited: bool = True) -> Reservation:
        for _ in range(ATTEMPTS):
            if lock.lent_at is not None:  # collected meanwhile (the restamp's condition refused it): a loan now
                raise Conflict.on_loan(lock.book_id, lock.reservation_id)
            if limited and (lock.renewals or 0) >= self.max_renewals:
                assert lock.reservation_id is not None
                raise Conflict.renewed_enough(lock.reservation_id, self.max_renewals)
            renewed = await self._restamp(lock, renew=True)
            if renewed.applied:
                await self.store.write_views(renewed.lock)
                return renewed.lock.reservation()
            lock = await self.locate(await self._row_of(lock))  # moved or renewed by another request: follow it
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def _row_of(self, lock: Lock) -> ViewRow:
        assert lock.reservation_id is not None
        row = await self.store.reservation_row(lock.reservation_id)
        if row is None:
            raise NotFound.reservation(lock.reservation_id)
        return row

    # -- the pickup window -------------------------------------------------------------------------------------
    async def expire(self, lock: Lock) -> bool:
        """Ends a hold whose pickup window has passed, from the state `lock` (read whole) shows and only from it: a
        renewal, cancel or move meanwhile changed its version, and the hold stands. The book goes to the next reader
        waiting, or is freed. Nothing waits for this to be correct: a hold past its window is still the reader's
        until it ends, and whoever meets it first (a sweep, a reserve or join refused by it) ends it. Says whether
        this call did."""
        if not lock.expired(now()):
            return False
        rid, user_id, version = lock.reservation_id, lock.user_id, lock.version
        assert rid is not None and user_id is not None and version is not None
        ended, handed = await self._end_exactly(lock)
        if not ended.applied:
            return False
        assert ended.lock.version is not None
        await self._step("expire.ended", lock=lock, version=ended.lock.version)
        await self._clear_ended(await self._rows_of_ended(lock), lock.book_id, ended.lock.version, handed=handed)
        metrics.EXPIRED.inc()
        await self._ended(user_id, HoldEnd.EXPIRED, rid, lock.book_id, lock.reserved_at)
        return True

    async def _rows_of_ended(self, lock: Lock) -> list[ViewRow]:
        """The rows a hold `lock` showed, ended by an expiry or a return, is cleared from: its reservation's row, or
        what the lock says of it when that row is gone already."""
        rid, user_id = lock.reservation_id, lock.user_id
        assert rid is not None and user_id is not None
        row = await self.store.reservation_row(rid)
        return [row] if row is not None else [ViewRow(rid, lock.book_id, user_id, None, None, None)]

    def _swept_by(self) -> datetime:
        """Anything due before this should have been swept: two sweep intervals, each with its pass, and the settle
        time ago. The audit's line for a hold nobody ended, or a suspension nobody resumed, in time."""
        return now() - timedelta(seconds=self.settle_after_seconds + 2 * self.sweep_seconds)

    def overdue(self, lock: Lock) -> bool:
        """A hold past its pickup window for longer than a sweep takes to end it."""
        return lock.expired(self._swept_by())

    def late_resumptions(self, lock: Lock) -> tuple[Waiting, ...]:
        """The suspended places of `lock` past their end for longer than a sweep takes to resume them."""
        return lock.due(self._swept_by())

    async def sweep(self) -> int:
        """Resumes every suspended place whose date has come (one indexed read of `resume_at`), then ends every hold
        whose pickup window has passed (one indexed read of the held locks, or a scan of every lock while that index
        cannot answer). Harmless beside any number of other sweeps: each change is conditioned on the exact state
        read. Returns how many holds this sweep ended."""
        at, gate = now(), asyncio.Semaphore(SWEEP_CONCURRENCY)
        # Suspensions that ended first, so that a hold expiring on the same book goes to a reader just resumed.
        resuming = await self.locks.read_resuming_by(at)

        async def resume(lock: Lock) -> None:
            async with gate:
                try:
                    await self.resume_due(lock)
                except DatabaseUnavailable as error:  # the next sweep tries again
                    log.warning("could not resume the suspended places on %s: %s", lock.book_id, error)

        await asyncio.gather(*(resume(lock) for lock in resuming))
        held = await self.locks.read_held_between(-(2**63), 2**63 - 1)
        if held is None:
            held = [lock async for page in self.locks.scan() for lock in page if lock.state is LockState.HELD]

        async def end(lock: Lock) -> bool:
            async with gate:
                try:
                    return await self.expire(lock)
                except DatabaseUnavailable as error:  # the next sweep tries again
                    log.warning("could not end the expired hold %s on %s: %s", lock.reservation_id, lock.book_id, error)
                    return False

        return sum(await asyncio.gather(*(end(lock) for lock in held if lock.expired(at))))

    # -- the loan: collected at the desk, returned at the desk ----------------------------------------------------
    async def lend(self, book_id: UUID) -> Reservation:
        """The reader collected their ready hold on the book at the desk: it is on loan until the desk marks it
        returned (it no longer expires, and the reader's cancel or move no longer ends it). The hold ends in the
        reader's history as collected, and frees its seat under the limit. Conflict if nobody holds the book, or it
        is on loan already."""
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(book_id, serial=True)
            if lock.state in _GONE:
                raise UnknownBook(book_id)
            if lock.in_between:
                if not await self.settle(lock):
                    raise Conflict.nothing_to_collect(book_id)  # a move at work on it: the reader is changing books
                continue
            if lock.state is not LockState.HELD:
                raise Conflict.nothing_to_collect(book_id)
            if lock.lent_at is not None:
                raise Conflict.already_lent(book_id)
            rid, user_id = lock.reservation_id, lock.user_id
            assert rid is not None and user_id is not None
            lent = await self.locks.run(
                T.LEND, book_id, before=lock, expected=lock.version, reservation_id=rid, lent_at=now()
            )
            if not lent.applied:
                continue  # renewed, cancelled or handed on meanwhile: look again
            await self.store.write_views(lent.lock)
            await self._free_seat_of(user_id, rid)
            await self._ended(user_id, HoldEnd.COLLECTED, rid, book_id, lock.reserved_at)
            return lent.lock.reservation()
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def take_back(self, book_id: UUID) -> Reservation:
        """The desk marks the book on loan returned: the loan ends, from the exact state read, and the book goes to
        the first reader waiting (a ready hold for them, with its notice), or is free. Returns the loan that ended.
        Conflict if the book is not on loan."""
        tried: Reservation | None = None
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(book_id, serial=True)
            if lock.state in _GONE:
                raise UnknownBook(book_id)
            if tried is not None and not lock.involves(tried.reservation_id):
                # Ended by a send whose answer was lost (this request's or another desk's): its rows go as a
                # cancel's do then, above every state of the book that has ended.
                row = await self.store.reservation_row(tried.reservation_id)
                if row is not None:
                    await self._remove_released([row])
                return tried
            if lock.state is not LockState.HELD or lock.lent_at is None:
                raise Conflict.not_on_loan(book_id)
            tried = lock.reservation()
            ended, handed = await self._end_exactly(lock, T.RETURN, T.RETURN_HAND_OFF)
            if not ended.applied:
                continue  # another desk's return, or a reader joining the queue meanwhile: look again
            version, loan = ended.lock.version, lock.reservation()
            assert version is not None
            await self._step("return.ended", lock=lock, version=version)
            await self._clear_ended(await self._rows_of_ended(lock), book_id, version, handed=handed)
            await self._ended(loan.user_id, HoldEnd.RETURNED, loan.reservation_id, book_id, loan.lent_at)
            return loan
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    # -- the per-reader limits (app/repository/seats.py) ----------------------------------------------------------
    async def _claim_seat(self, user_id: int, kind: str, rid: UUID, book_id: UUID) -> list[Seat]:
        """One of the reader's seats of `kind` for the reservation, before it takes a book or a place: [] when that
        kind has no limit. Conflict (the limit reached) when every seat is taken by a hold still alive."""
        limit = self.limits.get(kind, 0)
        if not limit:
            return []
        assert self.seats is not None
        for attempt in range(2):
            seats = await self.seats.read(user_id, kind)
            mine = next((s for s in seats if s.reservation_id == rid), None)
            if mine is not None:
                return [mine]  # claimed already, by an earlier attempt of this request
            taken = {s.seat for s in seats}
            for index in range(limit):
                if index not in taken and await self.seats.claim(user_id, kind, index, rid, book_id):
                    return [Seat(user_id, kind, index, rid, book_id, False)]
            if attempt == 0 and not await self._free_ended_seats(await self.seats.read(user_id, kind)):
                break
        raise Conflict.limit_reached(user_id, kind, limit)

    async def _confirm_seat(self, user_id: int, kind: str, rid: UUID, book_id: UUID) -> None:
        """The reservation's seat confirmed, once its hold or place exists: its claim, or a seat claimed now if the
        claim expired (the request was paused that long, or it is a keyed retry finishing the first request).
        Conflict if no seat is free; DatabaseUnavailable if the one claimed cannot be confirmed."""
        if not self.limits.get(kind, 0):
            return
        assert self.seats is not None
        mine = next((s for s in await self.seats.read(user_id, kind) if s.reservation_id == rid), None)
        if mine is not None and (mine.confirmed or await self.seats.confirm(mine)):
            return
        (claimed,) = await self._claim_seat(user_id, kind, rid, book_id)
        if not await self.seats.confirm(claimed):
            raise DatabaseUnavailable("database unavailable: the reader's limit could not be checked; try again")

    async def _free_seats(self, seats: list[Seat]) -> None:
        for seat in seats:
            try:
                await self.seats.free(seat)  # type: ignore[union-attr]
            except DatabaseUnavailable as error:  # expires with its claim's TTL, or the next claim frees it
                log.warning("could not free seat %s of reader %s: %s", seat.seat, seat.user_id, error)

    async def _free_seat_of(self, user_id: int, rid: UUID) -> None:
        """The seat of a hold or place that has ended, freed (any kind)."""
        if self.seats is None:
            return
        for kind in self.limits:
            try:
                seats = await self.seats.read(user_id, kind)
            except DatabaseUnavailable as error:
                log.warning("could not read the seats of reader %s: %s", user_id, error)
                continue
            await self._free_seats([s for s in seats if s.reservation_id == rid])

    async def _free_ended_seats(self, seats: list[Seat]) -> bool:
        """Frees the confirmed seats whose hold or place has ended without freeing them (a crash in between): each
        one's reservation is looked for in the locks it may be on, read at SERIAL, and a reservation that ended
        never holds or waits again, so a seat found ended stays ended. Unconfirmed claims are left to their TTL (a
        request may be at work on them). Says whether any was freed."""
        ended = []
        for seat in seats:
            if not seat.confirmed or seat.reservation_id is None or seat.book_id is None:
                continue
            rid = seat.reservation_id
            lock = await self.locks.read(seat.book_id, serial=True)
            if lock.involves(rid) or any(w.reservation_id == rid for w in lock.queue):
                continue
            row = await self.store.reservation_row(rid)
            if row is not None:
                try:
                    await self.locate(row)
                    continue  # held on another book (moved there)
                except NotFound:
                    pass
            ended.append(seat)
        await self._free_seats(ended)
        return bool(ended)

    # -- the queue ----------------------------------------------------------------------------------------------
    async def join(self, book_id: UUID, user_id: int) -> Place | Reservation:
        """Puts the reader in the queue of a book another reader holds, and says their place. A book that is free
        with nobody waiting is reserved for them instead (the Reservation). Conflict if they hold it or wait for it
        already. Like a reserve, the reader is read before and again after the join: a deletion of the reader marks
        their card first and then looks for their places (app/repository/readers.py), so one of the two sees the
        other, and a join that sees the mark leaves the queue again."""
        reader = await self._active_reader(user_id)
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(book_id)
            if lock.state in _GONE:
                raise UnknownBook(book_id)
            if (entry := lock.queued(user_id)) is not None:
                raise Conflict.already_waiting(book_id, lock.position(user_id) or 0)
            if (paused := lock.suspension(user_id)) is not None:
                raise Conflict.place_suspended(book_id, paused.suspended_until)
            if lock.in_between:
                if not await self.settle(lock):
                    raise self._taken(book_id, lock, user_id)  # a move at work on it: it is not free
                continue
            if lock.state is LockState.FREE:
                if lock.waiting:
                    await self.promote(book_id)
                    continue
                try:
                    return await self._reserve(book_id, reader, uuid4(), keyed=False)
                except Conflict as refused:
                    if refused.kind is ConflictKind.LIMIT_REACHED:
                        raise
                    continue  # taken meanwhile: join its queue
            if lock.user_id == user_id:
                raise Conflict.book_held_by_caller(book_id, lock.reservation_id)
            rid = uuid4()
            claimed = await self._claim_seat(user_id, WAITING, rid, book_id)
            joined = await self.locks.run(
                T.JOIN if lock.queue_seq is not None else T.JOIN_FIRST,
                book_id,
                before=lock,
                above=lock.queue_seq,
                user_id=user_id,
                reservation_id=rid,
            )
            if not joined.applied:
                # A lost answer is judged by queue_seq, which any later join moves on: the entry, naming this join's
                # fresh reservation, says whether it landed after all (or the book came to the reader already).
                mine = joined.lock.queued(user_id)
                if mine is not None and mine.reservation_id == rid:
                    joined = Outcome(True, joined.lock)
                elif joined.lock.involves(rid):
                    await self._confirm_seat(user_id, WAITING, rid, book_id)
                    return joined.lock.reservation()
                else:
                    await self._free_seats(claimed)
                    continue  # the lock changed since it was read: look again
            entry = joined.lock.queued(user_id)
            assert entry is not None
            await self._step("join.joined", lock=joined.lock)
            try:
                await self._confirm_seat(user_id, WAITING, rid, book_id)
            except (Conflict, DatabaseUnavailable):
                await self._leave_entry(book_id, user_id, entry)  # never a place without a seat under the limit
                raise
            if await self.store.reader(user_id) != reader:
                await self._leave_entry(book_id, user_id, entry)
                raise UnknownReader(user_id)
            return place_in(joined.lock, user_id)
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def leave(self, book_id: UUID, user_id: int) -> UUID:
        """Takes the reader out of the book's queue; returns the reservation their place was for. NotFound if they
        are not in it. Should the book have come to them meanwhile, the reservation it made is cancelled: they asked
        not to wait for it any more."""
        tried: Waiting | None = None
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(book_id, serial=True)
            paused = lock.suspension(user_id)
            if paused is None:
                if tried is not None and lock.in_queue(user_id) is None:
                    return await self._left(book_id, user_id, tried)  # this request's own send, its answer lost
                break
            tried = paused
            # A suspended place: taken out of the other map, as read (`suspend_seq`); a change of it meanwhile (its
            # resumption, another reader's suspension) makes it look again.
            left = await self.locks.run(
                T.LEAVE_SUSPENDED, book_id, user_id=user_id, entry=paused.cell(), **_suspensions_without(lock, paused)
            )
            if left.applied:
                return await self._left(book_id, user_id, paused)
        else:
            raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")
        entry = lock.queued(user_id)
        if entry is None:
            raise NotFound.not_waiting(book_id, user_id)
        await self._leave_entry(book_id, user_id, entry)
        return entry.reservation_id

    async def _leave_entry(self, book_id: UUID, user_id: int, entry: Waiting) -> None:
        for _ in range(ATTEMPTS):
            left = await self.locks.run(T.LEAVE, book_id, user_id=user_id, entry=entry.cell())
            if left.applied:
                await self._left(book_id, user_id, entry)
                return
            lock = await self.locks.read(book_id, serial=True)
            if lock.queued(user_id) == entry:
                continue  # the send never got there
            if lock.involves(entry.reservation_id):
                await self._give_back(lock, entry, user_id)  # handed the book meanwhile
            else:
                await self._free_seat_of(user_id, entry.reservation_id)
            return  # gone from the queue (a lost answer of ours, or a hand-off that cancel ended)
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def _left(self, book_id: UUID, user_id: int, entry: Waiting) -> UUID:
        """A place (active or suspended) the reader left: its seat freed, and a line in their history."""
        await self._free_seat_of(user_id, entry.reservation_id)
        await self._ended(user_id, HoldEnd.LEFT, entry.reservation_id, book_id, None)
        return entry.reservation_id

    async def _give_back(self, lock: Lock, entry: Waiting, user_id: int) -> None:
        """A reader who left the queue just as the book came to them: the reservation it made is cancelled. Its views
        may not be written yet (the hand-off is at work): the cancel, which starts from them, is tried again until
        they are, or until the lock no longer involves the reservation (ended by someone else)."""
        rid = entry.reservation_id
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.cancel(rid, user_id)
                return
            except NotFound:
                await backoff(attempt)
                if not (await self.locks.read(lock.book_id, serial=True)).involves(rid):
                    return
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    # -- suspending a place -----------------------------------------------------------------------------------
    async def suspend(self, book_id: UUID, user_id: int, until: datetime) -> Place:
        """Suspends the reader's place in the book's queue until `until` (a time to come; the service checks it):
        hand-offs skip it meanwhile, it keeps its position, and it becomes active again then (`resume_due`, run by
        the sweep), or sooner if the reader resumes it. NotFound if they are not in the queue (the book may have
        come to them meanwhile); Conflict if the place is suspended already."""
        until = until.astimezone(UTC).replace(tzinfo=None) if until.tzinfo else until
        until = until.replace(microsecond=until.microsecond // 1000 * 1000)  # as Cassandra keeps it
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(book_id, serial=True)
            if (paused := lock.suspension(user_id)) is not None:
                if paused.suspended_until == until:
                    return place_in(lock, user_id)  # this request's own, whose answer was lost
                raise Conflict.place_suspended(book_id, paused.suspended_until)
            entry = lock.queued(user_id)
            if entry is None:
                raise NotFound.not_waiting(book_id, user_id)
            suspended = replace(entry, suspended_until=until)
            done = await self.locks.run(
                T.SUSPEND,
                book_id,
                before=lock,
                user_id=user_id,
                entry=entry.cell(),
                suspended_entry=suspended.cell(),
                **_suspensions_with(lock, suspended),
            )
            if done.applied:
                return place_in(done.lock, user_id)
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def resume(self, book_id: UUID, user_id: int) -> Place | Reservation:
        """Makes the reader's suspended place active again, where it was. A free book is then theirs if nobody is
        before them (the Reservation it became); otherwise their place. NotFound if they are not in the queue."""
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(book_id, serial=True)
            paused = lock.suspension(user_id)
            if paused is None:
                if lock.queued(user_id) is not None:
                    return place_in(lock, user_id)  # active already (this request's own, whose answer was lost)
                raise NotFound.not_waiting(book_id, user_id)
            if await self._resume(lock, paused) is None:
                continue  # the queue changed meanwhile: look again
            # The lock is read again: a resume pins only the reader's entry, so the state it left (a release since
            # the read above may have freed the book) is known only from the lock itself.
            resumed = await self.locks.read(book_id, serial=True)
            if resumed.state is LockState.FREE and resumed.waiting:
                await self.promote(book_id)
                resumed = await self.locks.read(book_id, serial=True)
            if resumed.holds(paused.reservation_id):
                return resumed.reservation()
            if resumed.in_queue(user_id) is None:
                raise NotFound.not_waiting(book_id, user_id)
            return place_in(resumed, user_id)
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def resume_due(self, lock: Lock) -> int:
        """Resumes every suspended place of `lock` whose date has come (the sweep's part, from its indexed read); a
        free book then goes to the first reader waiting. Each resumption is conditioned on the queue's suspensions
        exactly as read, so sweeps on many instances resume each place once. Says how many this call resumed."""
        done = 0
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(lock.book_id, serial=True)
            due = lock.due(now())
            if not due:
                break
            done += await self._resume(lock, due[0]) is not None
        if done:
            await self.promote(lock.book_id)  # reads the lock itself: a free book with a reader waiting is theirs
        return done

    async def _resume(self, lock: Lock, paused: Waiting) -> Lock | None:
        """suspended -> waiting for one entry, from the suspensions as read: None if refused. The lock returned is
        `lock` with the entry moved: its other columns are as read, not as they are now."""
        active = replace(paused, suspended_until=None)
        done = await self.locks.run(
            T.RESUME,
            lock.book_id,
            before=lock,
            user_id=paused.user_id,
            entry=paused.cell(),
            resumed_entry=active.cell(),
            **_suspensions_without(lock, paused),
        )
        return done.lock if done.applied else None

    async def promote(self, book_id: UUID) -> None:
        """A free book with readers waiting (its holder moved away) goes to the first of them."""
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(book_id, serial=True)
            if lock.state is not LockState.FREE or not lock.waiting:
                return
            if (await self._hand_on(lock, T.PROMOTE)).applied:
                return
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def _hand_on(self, lock: Lock, transition: Transition, **values: Any) -> Outcome:
        """Gives the book to the first reader in its queue, in one transition from `lock` (hand off: from the
        reservation it holds; promote: from free), then writes their views and reads their card again. A reader
        whose card is gone is taken out of the queue first, and the next one is tried; a card deleted while the book
        came to them (the same race as a reserve's) has the reservation cancelled, which hands the book on again.
        Refused: the lock is no longer as read, and the caller reads it again."""
        for _ in range(ATTEMPTS):
            entry = lock.next_in_line()
            if entry is None:
                return Outcome(False, lock)
            reader = await self._settled_card(entry.user_id)
            if reader is None:
                await self.locks.run(T.LEAVE, lock.book_id, user_id=entry.user_id, entry=entry.cell())
                lock = replace(lock, waiting=tuple(w for w in lock.waiting if w != entry))
                continue
            handed = await self.locks.run(
                transition,
                lock.book_id,
                before=lock,
                next_user_id=entry.user_id,
                next_reservation_id=entry.reservation_id,
                next_entry=entry.cell(),
                reserved_at=now(),
                **self.window(),
                **values,
            )
            if not handed.applied:
                return handed
            metrics.HAND_OFFS.labels(metrics.PROMOTED if transition is T.PROMOTE else metrics.HANDED_ON).inc()
            await self._step("queue.handed", lock=handed.lock)
            await self.store.write_views(handed.lock)
            try:
                if await self._settled_card(entry.user_id) != reader:
                    await self.cancel(entry.reservation_id, entry.user_id)
                    return handed
            except (DatabaseUnavailable, NotFound) as error:
                # The hand-off stands whatever happens here: the book is theirs unless their card is gone.
                log.warning("could not check card %s after a hand-off of %s: %s", entry.user_id, lock.book_id, error)
            for listener in self.ready_listeners:
                listener(handed.lock.reservation())
            return handed
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")

    async def _ended(self, user_id: int, how: HoldEnd, rid: UUID, book_id: UUID, since: datetime | None) -> None:
        """Tells the listeners a hold has ended; they record it and never fail the change (ReaderHistory logs)."""
        await asyncio.gather(*(listener(user_id, how, rid, book_id, since) for listener in self.ended_listeners))

    async def _settled_card(self, user_id: int) -> User | None:
        """The reader's card for a hand-off: None once it is gone. A card a deletion has marked closing is read again
        until the deletion is over: deleted (None), or refused, which clears the mark (the reader keeps their turn:
        a deletion is refused while they wait or hold, so its mark alone must not cost them the book). A mark that
        stays (a deletion that died half-way) counts as gone, as it does for a reserve."""
        for attempt in range(1, ATTEMPTS + 1):
            user, closing = await self.store.card(user_id)
            if not closing:
                return user
            await backoff(attempt)
        return None

    async def _delete_rows_of(self, user_id: int, book_id: UUID, version: int, *, handed: bool) -> None:
        """The released reservation's reader and book rows, deleted at the version that released it; after a
        hand-off, the reader's row only: the book's row is the next holder's now, written at that same version."""
        if handed:
            await self.store.delete_user_row(user_id, book_id, version)
        else:
            await self.store.delete_book_rows(user_id, book_id, version)

    # -- settling what a pause, a crash or a failed write left half-way -----------------------------------------
    async def settle(self, lock: Lock) -> bool:
        """Finishes or undoes the move whose in-between state `lock` shows, from what its source lock says at SERIAL.
        True once the state is gone; False if the move is undecided and younger than the settle time, left to the
        request at work on it.

        - OUTGOING, or INCOMING whose source is OUTGOING to it: the move is decided; it is finished.
        - INCOMING whose source still holds the reservation at the version the move began from: undecided. Once
          settled, the source is restamped (so the move's decision can never apply), its views rewritten, and the
          target abandoned.
        - INCOMING whose source is anything else: the move can never go through; the target is abandoned."""
        for _ in range(ATTEMPTS):
            lock = await self.locks.read(lock.book_id, serial=True)
            if lock.state is LockState.OUTGOING:
                await self._finish_move(lock)
                metrics.HEALS.labels(metrics.MOVE_FINISHED).inc()
                return True
            if lock.state is not LockState.INCOMING or lock.move_from is None:
                return True
            source = await self.locks.read(lock.move_from, serial=True)
            if source.state is LockState.OUTGOING and _is_move(source, lock):
                await self._finish_move(source)
                metrics.HEALS.labels(metrics.MOVE_FINISHED).inc()
                return True
            if source.holds(lock.reservation_id) and source.version == lock.move_from_version:  # type: ignore[arg-type]
                if not self.settled(lock):
                    return False
                fenced = await self._restamp(source)
                if not fenced.applied:
                    continue  # the source changed meanwhile: look again
                await self.store.write_views(fenced.lock)
            if await self._abandon(lock):
                metrics.HEALS.labels(metrics.MOVE_ABANDONED).inc()
            return True
        raise DatabaseUnavailable("database unavailable: a change half-way could not be settled; try again")

    async def locate(self, row: ViewRow, *, quick: bool = False, seen: list[ViewRow] | None = None) -> Lock:
        """The lock that holds the reservation now, read at SERIAL: the book its row names, or the book its hint names.
        A move's in-between state of it met on the way is settled first. NotFound once no lock holds it.

        `quick` first reads the row's book at QUORUM: that sees every transition that has finished, and the transition
        that follows is conditioned on the version read, so a stale answer makes it fail, never misapply."""
        rid = row.reservation_id
        if quick:
            lock = await self.locks.read(row.book_id)
            if lock.holds(rid):
                return lock
        for _ in range(ATTEMPTS):
            settled_any = False
            for book_id in dict.fromkeys(b for b in (row.book_id, row.moving_to) if b is not None):
                lock = await self.locks.read(book_id, serial=True)
                if lock.holds(rid):
                    return lock
                if lock.involves(rid):
                    settled_any |= await self.settle(lock)
            newer = await self.store.reservation_row(rid)
            if newer is not None and seen is not None:
                seen.append(newer)
            if newer is None or (not settled_any and (newer.book_id, newer.moving_to) == (row.book_id, row.moving_to)):
                raise NotFound.reservation(rid)
            row = newer
        raise DatabaseUnavailable("database unavailable: the reservation could not be found; try again")

    def settled(self, lock: Lock) -> bool:
        """True if the lock has not changed for `settle_after`: no request still at work on it is expected."""
        if lock.version is None:
            return True
        return self.clock.wall_us() - lock.version > self.settle_after_seconds * 1_000_000

    async def heal(self, lock: Lock, *, at_once: bool = False, rebuild: bool = False) -> str | None:
        """A held lock whose views are missing or older than it: rebuilt at the lock's version, after reading the lock
        again at SERIAL (a state that ended meanwhile is outranked by its ending's deletes anyway). Left to the request
        making it while younger than `settle_after` (unless `at_once`). `rebuild`: rewritten even if the reservation's
        own row looks up to date (the repair saw another view differ). Says what it did; raises DatabaseUnavailable if
        it failed."""
        rid = lock.reservation_id
        if lock.state is not LockState.HELD or rid is None or not (at_once or self.settled(lock)):
            return None
        state = (lock.book_id, lock.version or 0)
        if state in self._whole and not rebuild:
            return None
        await self._step("heal.start", lock=lock)
        row = await self.store.reservation_row(rid)
        fresh = row is not None and row.book_id == lock.book_id and (row.version or 0) >= (lock.version or 0)
        if fresh and not rebuild:
            self._whole[state] = None
            if len(self._whole) > WHOLE_STATES_KEPT:
                self._whole.popitem(last=False)
            return None
        current = await self.locks.read(lock.book_id, serial=True)
        user_id = current.user_id
        if not current.holds(rid) or user_id is None:
            return None
        came_from = row.book_id if row is not None and row.book_id != current.book_id else None
        if came_from is not None:
            # The views still name another book: a move that stopped half-way is finished by its own code.
            other = await self.locks.read(came_from, serial=True)
            if other.involves(rid) and other.in_between:
                await self.settle(other)
                return f"settled the move of {rid} left {other.state} on book {came_from}"
        if row is not None and (row.written or 0) >= (current.version or 0):
            # Something wrote the row at or above the lock's version (by hand, or a client with its own clock): views
            # rebuilt at that version would lose. Move the lock to a version above it first.
            restamped = await self._restamp(current, above=row.written)
            if not restamped.applied:
                return None
            current = restamped.lock
        await self.store.write_views(current, came_from=came_from)
        if came_from is not None:
            await self.store.delete_if_naming(rid, user_id, came_from)
        metrics.HEALS.labels(metrics.VIEWS_REBUILT).inc()
        return f"rebuilt the views of {rid} from its lock on book {current.book_id} (version {current.version})"

    async def _heal_beside(self, lock: Lock) -> None:
        """The heal a refused reserve or move runs on the lock that refused it; its failure is logged as an error (the
        client's answer, the conflict, is the truth either way)."""
        try:
            done = await self.heal(lock)
        except DatabaseUnavailable as error:
            log.error("could not rebuild the views of %s on book %s: %s", lock.reservation_id, lock.book_id, error)
            return
        if done:
            log.warning("%s", done)

    # -- the lock's life with its book ------------------------------------------------------------------------
    async def open(self, book_id: UUID) -> None:
        """Gives a new book its free lock, or frees the lock of a withdrawn book written again."""
        opened = await self.locks.run(T.OPEN, book_id)
        if not opened.applied and opened.lock.state is LockState.WITHDRAWN:
            await self.locks.run(T.REVIVE, book_id)

    async def withdraw(self, book_id: UUID) -> int:
        """free -> withdrawn, so no reserve can take the book any more; Conflict while it is held or a move is at work
        on it. Returns the lock's version once withdrawn."""
        withdrawn = await self._run_past_moves(T.WITHDRAW, book_id)
        met = withdrawn.lock
        if withdrawn.applied or met.state in _GONE:
            return met.version or 0
        if met.state is LockState.FREE and met.waiting:
            await self.promote(book_id)
        raise Conflict.book_in_use(book_id, met.reservation_id)  # held, or readers wait (suspended or not)

    async def _step(self, name: str, **facts: Any) -> None:
        """A named point in an operation, where a test can pause it (`Library.steps`)."""
        hook = self.steps.get(name)
        if hook is not None:
            await hook(name, facts)


def _suspensions_with(lock: Lock, entry: Waiting) -> dict[str, Any]:
    """The values of a change that adds `entry` to the lock's suspended places: as read, and what they become."""
    return _suspensions_as(lock, (*lock.suspended, entry))


def _suspensions_without(lock: Lock, entry: Waiting) -> dict[str, Any]:
    """The values of a change that takes `entry` out of the lock's suspended places."""
    return _suspensions_as(lock, tuple(w for w in lock.suspended if w.user_id != entry.user_id))


def _suspensions_as(lock: Lock, left: tuple[Waiting, ...]) -> dict[str, Any]:
    ends = [w.suspended_until for w in left if w.suspended_until is not None]
    return {
        "suspend_seq_read": lock.suspend_seq,
        "suspend_seq": (lock.suspend_seq or 0) + 1,
        "resume_at": min(ends) if ends else None,
    }


def _books_named(rows: list[ViewRow], released: UUID | None) -> list[UUID]:
    """The books these versions of a reservation's row name (its book, its hint), but `released`."""
    named = dict.fromkeys(b for row in rows for b in (row.book_id, row.moving_to))
    return [b for b in named if b is not None and b != released]


def _is_same_move(target: Lock, source: Lock) -> bool:
    """Whether the INCOMING target was taken by a move of the reservation from `source` as it is now."""
    return (target.reservation_id, target.move_from, target.move_from_version) == (
        source.reservation_id,
        source.book_id,
        source.version,
    )


def _is_move(source: Lock, target: Lock) -> bool:
    """Whether the OUTGOING source decided the move that `target` (INCOMING) is the target of. The decision is above
    the target's take (MOVE_OUT runs above it): an INCOMING state taken after the decision, by a late send of the same
    move once the decided one had ended, is not the one decided (found by the schedule search: a late send re-took the
    target after the reservation was moved there and cancelled, and confirmed it from the old decision)."""
    return (
        source.reservation_id == target.reservation_id
        and source.moved_to == target.book_id
        and target.move_from == source.book_id
        and (target.version or 0) < (source.version or 0)
    )
