"""The audit: reads every reservation table and checks that they tell one story; its repair mends only what it
has verified again.

Invariants: a book has at most one active reservation; every held lock has its reservation in all three views, with
the same book, reader, time and version; no view row exists that no lock backs (a held lock, or the OUTGOING source
of a move whose rows are still to go); no reservation holds two locks; no lock stays in a move's in-between state
(INCOMING, OUTGOING) longer than the settle time; nobody waits for a book free longer than the settle time; no hold
is past its pickup window for longer than the sweep takes to end it, and no suspended place past its end; no holder
waits in their own book's queue, and no reader is in a queue twice (active and suspended); no reader is over the
per-reader limits. The scans are not taken at one instant, so under traffic
the picture can show a request half-way. The repair therefore never acts on the picture: for each book or row it
names, it reads the lock again at SERIAL immediately before writing, leaves alone any lock that changed within
`settle_after`, and does only what a request meeting that lock would do (app/repository/reservations.py): a move's
in-between state settled, views rebuilt at the lock's version, rows no lock backs deleted at their own write time, a
free book given to the first reader waiting for it.
Run beside live traffic, it can only redo what a request would do, or undo what no request still does.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any
from uuid import UUID

from app import metrics
from app.db import Database
from app.models import AuditReport, DatabaseUnavailable, NotFound
from app.repository.base import RepositoryBase
from app.repository.clock import VersionClock
from app.repository.locks import Lock, LockRunner, LockState, T
from app.repository.reservations import Reservations
from app.repository.seats import READY, WAITING
from app.repository.store import VIEWS, ViewRow

_KEY_OF_ROW = {
    "reservations": lambda r: r.reservation_id,
    "user_reservations": lambda r: (r.user_id, r.book_id),
    "book_reservations": lambda r: r.book_id,
}


class Audit:
    """The audit and its repair, on the locks and the reservation use cases only (their public operations: settle,
    heal, locate, and the store's scan and row delete), so the schedule search runs this same code on its model."""

    def __init__(self, locks: LockRunner, reservations: Reservations) -> None:
        self.locks = locks
        self.reservations = reservations

    async def audit(self, repair: bool = False) -> AuditReport:
        locks = [lock async for page in self.locks.scan() for lock in page]
        views: dict[str, list[ViewRow]] = {
            table: [row async for page in self.reservations.store.scan(table) for row in page] for table in VIEWS
        }
        held = [lock for lock in locks if lock.state is LockState.HELD]
        report = AuditReport(locks=len(held), reservations=len(views["reservations"]))
        violations = report.violations
        suspects: set[UUID] = set()  # books whose lock the repair must look at again
        orphans: list[tuple[str, ViewRow]] = []  # view rows that no lock backs, with their table

        on_book: dict[UUID, set[UUID]] = defaultdict(set)
        for row in views["reservations"] + views["book_reservations"]:
            on_book[row.book_id].add(row.reservation_id)
        for book_id, ids in on_book.items():
            if len(ids) > 1:
                violations.append(
                    f"book {book_id} has {len(ids)} active reservations: " + ", ".join(str(i) for i in sorted(ids))
                )
                suspects.add(book_id)

        locks_of: dict[UUID, list[Lock]] = defaultdict(list)
        for lock in held:
            locks_of[lock.reservation_id].append(lock)
        for reservation_id, its_locks in locks_of.items():
            if len(its_locks) > 1:
                books = ", ".join(str(lock.book_id) for lock in its_locks)
                violations.append(f"reservation {reservation_id} holds the locks of {len(its_locks)} books: {books}")
                suspects.update(lock.book_id for lock in its_locks)

        for lock in locks:
            if lock.state is LockState.FREE and lock.waiting and self.reservations.settled(lock):
                violations.append(f"book {lock.book_id} is free while {len(lock.waiting)} reader(s) wait for it")
                suspects.add(lock.book_id)
            if self.reservations.overdue(lock):
                violations.append(
                    f"reservation {lock.reservation_id} on book {lock.book_id} is past its pickup window "
                    f"({lock.ready_until}) for longer than a sweep takes to end it"
                )
                suspects.add(lock.book_id)
            if lock.user_id is not None and lock.in_queue(lock.user_id) is not None:
                violations.append(f"reader {lock.user_id} holds book {lock.book_id} and waits in its queue too")
            for twice in {w.user_id for w in lock.waiting} & {w.user_id for w in lock.suspended}:
                violations.append(f"reader {twice} is in the queue for book {lock.book_id} twice")
            for late in self.reservations.late_resumptions(lock):
                violations.append(
                    f"the place of reader {late.user_id} in the queue for book {lock.book_id} is still suspended, "
                    f"past its end ({late.suspended_until}) for longer than a sweep takes to resume it"
                )
                suspects.add(lock.book_id)
        violations.extend(self._over_the_limits(locks))

        moving: dict[tuple[UUID, UUID], Lock] = {}  # (reservation, book) of every lock in a move's in-between state
        for lock in locks:
            if lock.in_between:
                moving[(lock.reservation_id, lock.book_id)] = lock
                if self.reservations.settled(lock):
                    violations.append(
                        f"lock on book {lock.book_id} is {lock.state} for reservation {lock.reservation_id}: "
                        "a move stopped half-way"
                    )
                    suspects.add(lock.book_id)

        by_lock = {
            "reservations": lambda lock: lock.reservation_id,
            "user_reservations": lambda lock: (lock.user_id, lock.book_id),
            "book_reservations": lambda lock: lock.book_id,
        }
        for table, rows in views.items():
            present = {_KEY_OF_ROW[table](row): row for row in rows}
            backed: set[Any] = set()
            for lock in held:
                key = by_lock[table](lock)
                found = present.get(key)
                single = len(locks_of[lock.reservation_id]) == 1
                if found is None:
                    if single:
                        violations.append(
                            f"lock on book {lock.book_id} holds reservation {lock.reservation_id}, missing from {table}"
                        )
                        suspects.add(lock.book_id)
                    continue
                backed.add(key)
                if not found.shows(lock) and single:
                    said = f"{table} has reservation {found.reservation_id} as {_describe(found)}"
                    violations.append(f"{said}, its lock says {_describe(lock)}")
                    suspects.add(lock.book_id)
            for key, row in present.items():
                if key in backed or (row.reservation_id, row.book_id) in moving:
                    continue
                if any(lock.book_id == row.book_id for lock in locks_of.get(row.reservation_id, [])):
                    continue
                violations.append(f"{table} has reservation {row.reservation_id} ({_describe(row)}) without a lock")
                orphans.append((table, row))

        if repair and violations:
            await self._repair(sorted(suspects), orphans, report)
        if repair:
            # The repair's lag is time() minus this (app/metrics.py): a pass that found nothing to mend is a pass.
            metrics.LAST_REPAIR.set(time.time())
        return report

    def _over_the_limits(self, locks: list[Lock]) -> list[str]:
        """Readers over the per-reader limits: more places in queues than WAITING, or more ready holds and places
        together than READY + WAITING (a hold handed on from the queue keeps its place's seat: docs/reservation-
        protocol.md, "Per-reader limits"). A book on loan is no hold. Nothing to check without limits."""
        limits = self.reservations.limits
        if not limits:
            return []
        places: dict[int, int] = defaultdict(int)
        ready: dict[int, int] = defaultdict(int)
        for lock in locks:
            for entry in lock.queue:
                places[entry.user_id] += 1
            if lock.state is LockState.HELD and lock.lent_at is None and lock.user_id is not None:
                ready[lock.user_id] += 1
        most_places, most_ready = limits.get(WAITING, 0), limits.get(READY, 0)
        over = []
        for reader in sorted(set(places) | set(ready)):
            if most_places and places[reader] > most_places:
                over.append(f"reader {reader} is in {places[reader]} queues, above the limit of {most_places}")
            if most_places and most_ready and ready[reader] + places[reader] > most_ready + most_places:
                over.append(
                    f"reader {reader} has {ready[reader]} ready holds and {places[reader]} places, above the limits "
                    f"of {most_ready} and {most_places}"
                )
        return over

    async def _repair(self, books: list[UUID], orphans: list[tuple[str, ViewRow]], report: AuditReport) -> None:
        # Every failure is reported (and left for the next pass), never swallowed.
        for book_id in books:
            try:
                report.repaired.extend(await self._repair_book(book_id))
            except (DatabaseUnavailable, NotFound) as error:
                metrics.REPAIRS.labels(metrics.NOT_MENDED).inc()
                report.repaired.append(f"book {book_id}: not mended, left for the next repair ({error})")
        for table, row in orphans:
            try:
                report.repaired.extend(await self._repair_orphan(table, row))
            except (DatabaseUnavailable, NotFound) as error:
                metrics.REPAIRS.labels(metrics.NOT_MENDED).inc()
                left = f"reservation {row.reservation_id}: not mended, left for the next repair"
                report.repaired.append(f"{left} ({error})")

    async def _repair_book(self, book_id: UUID) -> list[str]:
        """One book's lock, verified again at SERIAL: a move's in-between state settled, a held lock's views rebuilt."""
        lock = await self.locks.read(book_id, serial=True)
        if self.reservations.late_resumptions(lock):
            resumed = await self.reservations.resume_due(lock)
            metrics.REPAIRS.labels(metrics.QUEUE_SERVED).inc()
            return [f"resumed {resumed} suspended place(s) in the queue for book {book_id}"]
        if lock.state is LockState.FREE and lock.waiting and self.reservations.settled(lock):
            await self.reservations.promote(book_id)
            metrics.REPAIRS.labels(metrics.QUEUE_SERVED).inc()
            return [f"gave free book {book_id} to the first of the {len(lock.waiting)} reader(s) waiting for it"]
        if lock.state not in (LockState.HELD, LockState.INCOMING, LockState.OUTGOING):
            return []
        if not self.reservations.settled(lock):
            return [f"book {book_id}: changed less than the settle time ago; left to the request at work on it"]
        if lock.in_between:
            await self.reservations.settle(lock)
            metrics.REPAIRS.labels(metrics.MOVE_SETTLED).inc()
            return [f"settled the move of {lock.reservation_id} left {lock.state} on book {book_id}"]
        if await self.reservations.expire(lock):
            metrics.REPAIRS.labels(metrics.HOLD_ENDED).inc()
            return [f"ended reservation {lock.reservation_id} on book {book_id}: its pickup window had passed"]
        if await self._views_agree(lock):
            return []  # the scans, taken one after another, only caught a request half-way: nothing to mend
        return await self._rebuild(lock)

    async def _rebuild(self, lock: Lock) -> list[str]:
        """A held lock's views rebuilt by the use cases' heal, at once, even where the reservation's own row agrees."""
        done = await self.reservations.heal(lock, at_once=True, rebuild=True)
        if done:
            metrics.REPAIRS.labels(metrics.VIEWS_REBUILT).inc()
        return [done] if done else []

    async def _views_agree(self, lock: Lock) -> bool:
        """Whether the three views show exactly the lock's state, read now (a repair must not change what is right:
        moving a healthy lock to a new version would refuse a client's move that read the old one)."""
        store = self.reservations.store
        assert lock.reservation_id is not None and lock.user_id is not None
        rows = await asyncio.gather(
            store.reservation_row(lock.reservation_id),
            store.book_row(lock.book_id),
            store.user_row(lock.user_id, lock.book_id),
        )
        return all(row is not None and row.shows(lock) for row in rows)

    async def _repair_orphan(self, table: str, row: ViewRow) -> list[str]:
        """A view row no lock backs, verified again: deleted at its own write time, which removes that write and
        nothing newer, unless its book's lock involves it after all, or changed within the settle time, or (for the
        reservation's own row) the reservation is held elsewhere, whose views are then rebuilt instead."""
        lock = await self.locks.read(row.book_id, serial=True)
        if lock.holds(row.reservation_id) or not self.reservations.settled(lock):
            return []
        if lock.involves(row.reservation_id):
            await self.reservations.settle(lock)
            metrics.REPAIRS.labels(metrics.MOVE_SETTLED).inc()
            return [f"settled the move of {row.reservation_id} left {lock.state} on book {row.book_id}"]
        if table == "reservations":
            own = await self.reservations.store.reservation_row(row.reservation_id)
            if own is not None:
                try:
                    holding = await self.reservations.locate(own)
                except NotFound:
                    holding = None
                if holding is not None:
                    return await self._rebuild(holding)
        assert row.written is not None
        await self.reservations.store.delete_row(table, row, row.written)
        metrics.REPAIRS.labels(metrics.ORPHAN_DELETED).inc()
        return [f"deleted {table}'s row of {row.reservation_id} ({_describe(row)}): no lock holds it"]


class AuditRepository(RepositoryBase):
    """The audit on Cassandra, and the schema upgrade's rebuild of the locks (which reads the catalogue)."""

    def __init__(self, db: Database, clock: VersionClock, locks: LockRunner, reservations: Reservations) -> None:
        super().__init__(db)
        self.clock = clock
        self.locks = locks
        self.reservations = reservations
        self.audit = Audit(locks, reservations).audit

    async def upgrade_locks(self) -> str:
        """Schema version 1 -> 2: the locks of reserved books get their state and version, every other book a free
        lock, and the views (made anew) are rebuilt from the locks."""
        converted = created = 0
        async for page in self.locks.scan():
            for old in page:
                if old.state is None and old.reservation_id is not None:
                    adopted = await self.locks.run(T.ADOPT, old.book_id, reservation_id=old.reservation_id)
                    if adopted.applied:
                        converted += 1
                        lock = await self.locks.read(old.book_id, serial=True)
                        if lock.user_id is not None and lock.reserved_at is not None:
                            await self.reservations.store.write_views(lock)
        async for rows in self._scan("SELECT book_id FROM {ks}.books"):
            for row in rows:
                await self.reservations.open(row.book_id)
                created += 1
        return f"{converted} reserved books' locks converted, {created} books given a lock if they had none"


def _describe(r: ViewRow | Lock) -> str:
    at = f"{r.reserved_at:%Y-%m-%d %H:%M:%S.%f}"[:-3] if r.reserved_at else "no time"
    return f"book {r.book_id}, user {r.user_id}, at {at}, version {r.version}"
