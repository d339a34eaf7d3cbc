"""The audit: reads every reservation table and checks that they tell one story; its repair mends only what
it has verified again.

Invariants: a book has at most one active reservation; every held lock has its reservation in all three
views, with the same book, reader, time and version; no view row exists that no held lock backs; no
reservation holds two locks. The four scans are not taken at one instant, so under traffic the picture can
show a request half-way. The repair therefore never acts on the picture: for each book or row it names, it
reads the lock again at SERIAL immediately before writing, leaves alone any lock that changed within
`settle_after`, and writes only what the lock's versions allow (ReservationRepository's docstring): views
rebuilt at the lock's version, rows no lock backs deleted at their own version, and of two locks left by a
move that stopped half-way, the one its reservation's row does not point to released. Run beside live
traffic, it can only redo what a request would do, or undo what no request still does.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from app.db import Database
from app.models import AuditReport, DatabaseUnavailable, NotFound
from app.repository.base import RepositoryBase
from app.repository.clock import VersionClock
from app.repository.reservations import LOCK_COLUMNS, VIEW_COLUMNS, Lock, ReservationRepository, lock_from_row

VIEWS = ("reservations", "user_reservations", "book_reservations")


class AuditRepository(RepositoryBase):
    """The audit, its repair, and the schema upgrade's rebuild of the locks. Given the database, the instance's
    version clock, and the reservations part, whose lock operations (the lock read at SERIAL, the settle time, a
    release, a restamp, the views written at a lock's version) are the only ones the repair uses to write."""

    def __init__(self, db: Database, clock: VersionClock, reservations: ReservationRepository) -> None:
        super().__init__(db)
        self.clock = clock
        self.reservations = reservations

    async def _rows(self, cql: str) -> AsyncIterator[Any]:
        async for rows in self._scan(cql):
            for row in rows:
                yield row

    async def audit(self, repair: bool = False) -> AuditReport:
        locks = [
            lock_from_row(row.book_id, row)
            async for row in self._rows(f"SELECT {LOCK_COLUMNS} FROM {{ks}}.reservation_by_book_id")
        ]
        views: dict[str, list[Any]] = {
            # A row with no book is only a move's hint (`moving_to`) that outlived its reservation: not a view.
            table: [row async for row in self._rows(f"SELECT {VIEW_COLUMNS} FROM {{ks}}.{table}") if row.book_id]
            for table in VIEWS
        }
        held = [lock for lock in locks if lock.state == "held"]
        report = AuditReport(locks=len(held), reservations=len(views["reservations"]))
        violations = report.violations
        suspects: set[UUID] = set()  # books whose lock the repair must look at again
        orphans: list[tuple[str, Any]] = []  # view rows that no held lock backs, with their table

        on_book: dict[UUID, set[UUID]] = defaultdict(set)
        for row in views["reservations"]:
            on_book[row.book_id].add(row.reservation_id)
        for row in views["book_reservations"]:
            on_book[row.book_id].add(row.reservation_id)
        for book_id, ids in on_book.items():
            if len(ids) > 1:
                violations.append(
                    f"book {book_id} has {len(ids)} active reservations: " + ", ".join(str(i) for i in sorted(ids))
                )
                suspects.add(book_id)

        locks_of: dict[UUID, list[Lock]] = defaultdict(list)
        for lock in held:
            locks_of[lock.reservation_id].append(lock)  # type: ignore[index]
        for reservation_id, its_locks in locks_of.items():
            if len(its_locks) > 1:
                books = ", ".join(str(lock.book_id) for lock in its_locks)
                violations.append(f"reservation {reservation_id} holds the locks of {len(its_locks)} books: {books}")
                suspects.update(lock.book_id for lock in its_locks)

        by_key = {
            "reservations": lambda lock: lock.reservation_id,
            "user_reservations": lambda lock: (lock.user_id, lock.book_id),
            "book_reservations": lambda lock: lock.book_id,
        }
        row_key = {
            "reservations": lambda row: row.reservation_id,
            "user_reservations": lambda row: (row.user_id, row.book_id),
            "book_reservations": lambda row: row.book_id,
        }
        for table, rows in views.items():
            present = {row_key[table](row): row for row in rows}
            backed: set[Any] = set()
            for lock in held:
                key = by_key[table](lock)
                row = present.get(key)
                if row is None:
                    if len(locks_of[lock.reservation_id]) == 1:  # type: ignore[index]
                        violations.append(
                            f"lock on book {lock.book_id} holds reservation {lock.reservation_id}, missing from {table}"
                        )
                        suspects.add(lock.book_id)
                    continue
                backed.add(key)
                if (row.reservation_id, row.book_id, row.user_id, row.reserved_at, row.version) != (
                    lock.reservation_id,
                    lock.book_id,
                    lock.user_id,
                    lock.reserved_at,
                    lock.version,
                ) and len(locks_of[lock.reservation_id]) == 1:  # type: ignore[index]
                    violations.append(
                        f"{table} has reservation {row.reservation_id} as {_describe(row)}, "
                        f"its lock says {_describe(lock)}"
                    )
                    suspects.add(lock.book_id)
            for key, row in present.items():
                if key not in backed and not any(
                    lock.book_id == row.book_id for lock in locks_of.get(row.reservation_id, [])
                ):
                    violations.append(f"{table} has reservation {row.reservation_id} ({_describe(row)}) without a lock")
                    orphans.append((table, row))

        if repair and violations:
            await self._repair(sorted(suspects), orphans, report)
        return report

    async def _repair(self, books: list[UUID], orphans: list[tuple[str, Any]], report: AuditReport) -> None:
        for book_id in books:
            try:
                report.repaired.extend(await self._settle_book(book_id))
            except (DatabaseUnavailable, NotFound) as error:
                # Unavailable, or the reservation was cancelled between the check and the write: nothing to mend.
                report.repaired.append(f"book {book_id}: left for the next repair ({error})")
        for table, row in orphans:
            try:
                report.repaired.extend(await self._settle_orphan(table, row))
            except (DatabaseUnavailable, NotFound) as error:
                report.repaired.append(f"reservation {row.reservation_id}: left for the next repair ({error})")

    async def _settle_book(self, book_id: UUID) -> list[str]:
        """One book's lock, verified again at SERIAL; the views of the reservation it holds rebuilt at its version."""
        lock = await self.reservations._resolve_lock(book_id)
        if lock.state != "held" or lock.reservation_id is None:
            return []
        if not self.reservations._settled(lock):
            return [f"book {book_id}: changed less than the settle time ago; left to the request at work on it"]
        row = await self.reservations._reservation_row(lock.reservation_id)
        if row is not None and row.book_id != lock.book_id:
            other = await self.reservations._resolve_lock(row.book_id)
            if other.holds(lock.reservation_id):
                # A move stopped between taking this book and giving up the other: it never happened.
                if await self.reservations._release(book_id, lock.reservation_id, exact=lock.version) is not None:
                    return [f"released book {book_id}, taken by a move of {lock.reservation_id} that stopped"]
                return []
        if await self._views_agree(lock, row):
            return []  # the scans, taken one after another, only caught a request half-way: nothing to mend
        if row is not None and (row.written or 0) >= (lock.version or 0):
            # Something wrote the row at or above the lock's version (by hand, or a client with its own clock): views
            # rebuilt at that version would lose. Move the lock to a version above it first.
            lock = await self.reservations._restamp(lock, above=row.written)
        await self.reservations._write_views(lock)
        return [f"rebuilt the views of {lock.reservation_id} from its lock on book {book_id} (version {lock.version})"]

    async def _views_agree(self, lock: Lock, row: Any) -> bool:
        """Whether the three views show exactly the lock's state, read now (a repair must not change what is right:
        moving a healthy lock to a new version would refuse a client's move that read the old one)."""
        if row is None or _state(row) != _state(lock):
            return False
        book_row, user_row = await asyncio.gather(
            self.db.execute(
                self.cql(f"SELECT {VIEW_COLUMNS} FROM {{ks}}.book_reservations WHERE book_id = ?"), [lock.book_id]
            ),
            self.db.execute(
                self.cql(f"SELECT {VIEW_COLUMNS} FROM {{ks}}.user_reservations WHERE user_id = ? AND book_id = ?"),
                [lock.user_id, lock.book_id],
            ),
        )
        return all(r is not None and _state(r) == _state(lock) for r in (book_row.one(), user_row.one()))

    async def _settle_orphan(self, table: str, row: Any) -> list[str]:
        """A view row no held lock backs, verified again: deleted at its own write time, which removes that write
        and nothing newer, unless its book's lock holds it after all, or changed within the settle time, or a
        move took the reservation to a book whose lock holds it (then that book is settled instead)."""
        lock = await self.reservations._resolve_lock(row.book_id)
        if lock.holds(row.reservation_id) or not self.reservations._settled(lock):
            return []
        if lock.moved_rid == row.reservation_id and lock.moved_to is not None:
            target = await self.reservations._resolve_lock(lock.moved_to)
            if target.holds(row.reservation_id):
                return await self._settle_book(lock.moved_to)
        key = {
            "reservations": ("reservation_id = ?", [row.reservation_id]),
            "user_reservations": ("user_id = ? AND book_id = ?", [row.user_id, row.book_id]),
            "book_reservations": ("book_id = ?", [row.book_id]),
        }
        where, params = key[table]
        await self.db.execute(
            self.cql(f"DELETE FROM {{ks}}.{table} USING TIMESTAMP ? WHERE {where}"), [row.written, *params], write=True
        )
        return [f"deleted {table}'s row of {row.reservation_id} ({_describe(row)}): no lock holds it"]

    async def upgrade_locks(self) -> str:
        """Schema version 1 -> 2: the locks of reserved books get their state and version, every other book a free
        lock, and the views (made anew) are rebuilt from the locks."""
        converted = created = 0
        async for row in self._rows(f"SELECT {LOCK_COLUMNS} FROM {{ks}}.reservation_by_book_id"):
            if row.state is None and row.reservation_id is not None:
                version = self.clock.next()
                result = await self.db.execute(
                    self.cql(
                        "UPDATE {ks}.reservation_by_book_id SET state = 'held', version = ? WHERE book_id = ? "
                        "IF state = null AND reservation_id = ?"
                    ),
                    [version, row.book_id, row.reservation_id],
                    write=True,
                )
                if result.was_applied:
                    converted += 1
                    lock = await self.reservations._resolve_lock(row.book_id)
                    if lock.user_id is not None and lock.reserved_at is not None:
                        await self.reservations._write_views(lock)
        async for row in self._rows("SELECT book_id FROM {ks}.books"):
            await self.reservations._open_lock(row.book_id)
            created += 1
        return f"{converted} reserved books' locks converted, {created} books given a lock if they had none"


def _state(r: Any) -> tuple[Any, ...]:
    return (r.reservation_id, r.book_id, r.user_id, r.reserved_at, r.version)


def _describe(r: Any) -> str:
    at = f"{r.reserved_at:%Y-%m-%d %H:%M:%S.%f}"[:-3] if r.reserved_at else "no time"
    return f"book {r.book_id}, user {r.user_id}, at {at}, version {r.version}"
