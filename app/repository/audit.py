"""The audit: reads every reservation table and checks that they tell one story.

Invariants: a book has at most one active reservation; every lock has its reservation in all three
views, with the same book, reader and time; no view row exists without its lock. Repair takes the
locks as the truth: it rebuilds each lock's views, deletes view rows no lock backs, and of two locks
left by an interrupted move keeps the one the reservation points to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from app.models import AuditReport, Reservation
from app.repository.base import RepositoryBase, reservation_from_row

SCAN_PAGE = 1000


class AuditRepository(RepositoryBase):
    async def _scan(self, cql: str) -> AsyncIterator[Any]:
        paging_state = None
        while True:
            result = await self.db.execute(self.cql(cql), page_size=SCAN_PAGE, paging_state=paging_state)
            for row in result.rows:
                yield row
            paging_state = result.paging_state
            if not paging_state:
                return

    async def _all(self, table: str) -> list[Reservation]:
        cql = f"SELECT reservation_id, book_id, user_id, reserved_at FROM {{ks}}.{table}"
        return [reservation_from_row(row) async for row in self._scan(cql)]

    async def audit(self, repair: bool = False) -> AuditReport:
        locks = await self._all("reservation_by_book_id")
        views = {
            "reservations": await self._all("reservations"),
            "user_reservations": await self._all("user_reservations"),
            "book_reservations": await self._all("book_reservations"),
        }
        report = AuditReport(locks=len(locks), reservations=len(views["reservations"]))
        violations = report.violations

        by_book: dict[Any, list[Reservation]] = defaultdict(list)
        for r in views["book_reservations"]:
            by_book[r.book_id].append(r)
        for r in views["reservations"]:
            if r not in by_book[r.book_id]:
                by_book[r.book_id].append(r)
        for book_id, held in by_book.items():
            if len({r.reservation_id for r in held}) > 1:
                violations.append(
                    f"book {book_id} has {len(held)} active reservations: "
                    + ", ".join(str(r.reservation_id) for r in held)
                )

        # A reservation id on two locks: a move that stopped between taking the new lock and releasing the old.
        locks_of: dict[Any, list[Reservation]] = defaultdict(list)
        for lock in locks:
            locks_of[lock.reservation_id].append(lock)
        reservation_rows = {r.reservation_id: r for r in views["reservations"]}
        truth: dict[Any, Reservation] = {}
        stale_locks: list[Reservation] = []
        for reservation_id, held in locks_of.items():
            row = reservation_rows.get(reservation_id)
            keep = next(
                (lock for lock in held if row and lock.book_id == row.book_id),
                max(held, key=lambda lock: lock.reserved_at),
            )
            truth[reservation_id] = keep
            for lock in held:
                if lock is not keep:
                    stale_locks.append(lock)
                    violations.append(
                        f"reservation {reservation_id} also locks book {lock.book_id} (it holds book {keep.book_id})"
                    )

        for table, rows in views.items():
            present = {r.reservation_id: r for r in rows}
            for reservation_id, lock in truth.items():
                row = present.get(reservation_id)
                if row is None:
                    violations.append(
                        f"lock on book {lock.book_id} holds reservation {reservation_id}, missing from {table}"
                    )
                elif row != lock:
                    violations.append(
                        f"{table} has reservation {reservation_id} as {_describe(row)}, its lock says {_describe(lock)}"
                    )
            for r in rows:
                if r.reservation_id not in truth:
                    violations.append(f"{table} has reservation {r.reservation_id} ({_describe(r)}) without a lock")

        if repair and violations:
            await self._repair(truth, stale_locks, views, report)
        return report

    async def _repair(
        self,
        truth: dict[Any, Reservation],
        stale_locks: list[Reservation],
        views: dict[str, list[Reservation]],
        report: AuditReport,
    ) -> None:
        for lock in stale_locks:
            await self._release_lock(lock.book_id, lock.reservation_id)  # type: ignore[attr-defined]
            report.repaired.append(f"released stale lock of {lock.reservation_id} on book {lock.book_id}")
        for table_rows in views.values():
            for r in table_rows:
                if truth.get(r.reservation_id) != r:
                    await self._delete_views(r)  # type: ignore[attr-defined]
                    report.repaired.append(f"deleted views of {r.reservation_id} ({_describe(r)})")
        for reservation_id, lock in truth.items():
            if any(lock not in rows for rows in views.values()):
                await self._write_views_or_undo(lock, release_on_failure=None)  # type: ignore[attr-defined]
                report.repaired.append(f"rebuilt views of {reservation_id} from its lock ({_describe(lock)})")


def _describe(r: Reservation) -> str:
    return f"book {r.book_id}, user {r.user_id}, at {r.reserved_at:%Y-%m-%d %H:%M:%S.%f}"[:-3]
