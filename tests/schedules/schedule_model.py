"""A model of what Cassandra promises, implementing the repository's store interfaces in memory, so the schedule
search runs the real lock table, runner, use cases and audit (app/repository/) on it.

- Locks (`ModelLocks`, a `LockTable`): one row per book, linearizable per partition. `send` evaluates the
  transition's own condition (`Transition.failing`) on the current row and, if it holds, stores
  `Transition.result`; a refused update returns only the columns its condition names, a refused insert the whole
  row, as Cassandra does.
- Views (`ModelStore`, a `ReservationStore`): the three view tables with Cassandra's reconciliation: every cell keeps
  the write with the highest timestamp (ties: the greater value), a row deletion at `ts` shadows every cell and row
  marker written at `ts` or below, a row exists while its marker or one of its cells is live. `written` is the write
  time of `reserved_at`, `hinted` that of `moving_to`. A logged batch (`write_views`) applies whole or not at all;
  `delete_book_rows` is two plain writes sent together (two tasks, as `asyncio.gather` sends them in Cassandra's
  store), so either may land without the other. Every view write is blind (`blind=True` at its point): it reads
  nothing and only merges cells, row markers and deletions by write time, so two of them leave the same rows in
  either order (the search takes them to commute).
- Readers always exist (`reader` returns a `User`); the idempotency keys (`ModelKeys`) are conditional writes.

Every store call first awaits the scheduler (`Gate.point`), naming the partitions it reads or writes, then acts
atomically. A write's point may come back with a fault: FAIL (DatabaseUnavailable, nothing applied), APPLIED_LOST
(applied, then OutcomeUnknown), LOST (not applied, OutcomeUnknown). For a plain (non-conditional) write, LOST is
offered only where someone catches OutcomeUnknown; the use cases never do for view writes (only the lock runner and
the keys do), so there it would behave exactly as FAIL, and the search does not offer it twice.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from app.db import OutcomeUnknown
from app.models import DatabaseUnavailable, User
from app.repository.idempotency import Claim, KeyOutcome
from app.repository.locks import Element, Lock, LockState, Transition, token_of
from app.repository.store import VIEWS, ViewRow

ANY = "*"  # a partition key matching every partition of a table (a scan)

Part = tuple[Any, ...]  # (table, *key)


class Fault(enum.Enum):
    FAIL = "fails"  # DatabaseUnavailable, nothing applied
    APPLIED_LOST = "applies, answer lost"  # applied, then OutcomeUnknown
    LOST = "lost, not applied"  # not applied, OutcomeUnknown


LWT_FAULTS = (Fault.FAIL, Fault.APPLIED_LOST, Fault.LOST)
PLAIN_FAULTS = (Fault.FAIL, Fault.APPLIED_LOST)


class Gate(Protocol):
    """The scheduler, as the model sees it: every store call waits here for its turn."""

    async def point(
        self, label: str, parts: frozenset[Part], write: bool, faults: tuple[Fault, ...], *, blind: bool = False
    ) -> Fault | None: ...


def conflicts(a: frozenset[Part], a_writes: bool, b: frozenset[Part], b_writes: bool) -> bool:
    """Whether two store calls do not commute: one writes a partition the other reads or writes."""
    if not (a_writes or b_writes):
        return False
    for x in a:
        for y in b:
            if x[0] == y[0] and (x[1:] == y[1:] or ANY in (x[1], y[1])):
                return True
    return False


def _raise_before(fault: Fault | None, label: str) -> None:
    if fault is Fault.FAIL:
        raise DatabaseUnavailable(f"model: {label} failed")
    if fault is Fault.LOST:
        raise OutcomeUnknown(f"model: {label} lost (not applied)")


def _raise_after(fault: Fault | None, label: str) -> None:
    if fault is Fault.APPLIED_LOST:
        raise OutcomeUnknown(f"model: {label} applied, answer lost")


# -- names, so a schedule reads as a person would write it -----------------------------------------------------
class Names:
    """Short names for books and reservations in printed schedules."""

    def __init__(self) -> None:
        self.of: dict[Any, str] = {}

    def __call__(self, value: Any) -> str:
        if isinstance(value, UUID):
            return self.of.get(value, f"R{value.int}" if value.int < 1000 else str(value)[:8])
        return str(value)


# -- locks ----------------------------------------------------------------------------------------------------
class ModelLocks:
    """The lock table: one Lock per book, each partition linearizable."""

    def __init__(self, gate: Gate, names: Names) -> None:
        self.gate = gate
        self.name = names
        self.rows: dict[UUID, Lock] = {}

    async def read(self, book_id: UUID, *, serial: bool) -> Lock:
        await self.gate.point(f"read lock {self.name(book_id)}{' SERIAL' if serial else ''}", _lock(book_id), False, ())
        return self.rows.get(book_id, Lock(book_id, None))

    async def read_many(self, book_ids: Sequence[UUID]) -> list[Lock]:
        parts = frozenset(p for b in book_ids for p in _lock(b))
        await self.gate.point("read locks", parts, False, ())
        return [self.rows[b] for b in book_ids if b in self.rows]

    async def read_held_between(self, first: int, last: int) -> list[Lock] | None:
        await self.gate.point("read held locks", frozenset(p for b in self.rows for p in _lock(b)), False, ())
        return [lock for b, lock in self.rows.items() if lock.state is LockState.HELD and first <= token_of(b) <= last]

    async def read_waiting_for(self, user_id: int) -> list[Lock]:
        await self.gate.point(f"read locks {user_id} waits for", frozenset({("lock", ANY)}), False, ())
        return [lock for lock in self.rows.values() if lock.in_queue(user_id) is not None]

    async def read_resuming_by(self, at: datetime) -> list[Lock]:
        await self.gate.point("read resuming locks", frozenset({("lock", ANY)}), False, ())
        return [lock for lock in self.rows.values() if lock.resume_at is not None and lock.resume_at <= at]

    async def send(self, transition: Transition, book_id: UUID, values: dict[str, Any]) -> tuple[bool, Lock]:
        label = f"{transition.name} on lock {self.name(book_id)}"
        fault = await self.gate.point(label, _lock(book_id), True, LWT_FAULTS)
        _raise_before(fault, label)
        current = self.rows.get(book_id, Lock(book_id, None))
        if transition.failing(current, values):
            _raise_after(fault, label)  # (a refusal whose answer is lost: the runner reads it back)
            if transition.insert:
                return False, current
            # Cassandra answers the columns the condition names (a map's element: the whole map)
            columns = [c.column.column if isinstance(c.column, Element) else c.column for c in transition.when]
            named = {column: getattr(current, column) for column in columns}
            return False, Lock(book_id, named.pop("state", None), **named)
        self.rows[book_id] = transition.result(book_id, values, current)
        _raise_after(fault, label)
        return True, Lock(book_id, None)

    async def scan(self) -> AsyncIterator[list[Lock]]:
        await self.gate.point("scan locks", frozenset({("lock", ANY)}), False, ())
        yield [self.rows[book_id] for book_id in sorted(self.rows)]  # in the order of the keys (see ModelStore.rows)


def _lock(book_id: UUID) -> frozenset[Part]:
    return frozenset({("lock", book_id)})


# -- views ----------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One CQL row: its marker's write time, its cells (value, write time), and its row deletion's time."""

    marker: int | None = None
    cells: dict[str, tuple[Any, int]] = field(default_factory=dict)
    deleted_at: int | None = None

    def _live(self, ts: int | None) -> bool:
        return ts is not None and (self.deleted_at is None or ts > self.deleted_at)

    def insert(self, values: dict[str, Any], ts: int) -> None:
        self.marker = ts if self.marker is None else max(self.marker, ts)
        self.update(values, ts)

    def update(self, values: dict[str, Any], ts: int) -> None:
        for column, value in values.items():
            old = self.cells.get(column)
            if old is None or ts > old[1] or (ts == old[1] and _order(value) > _order(old[0])):
                self.cells[column] = (value, ts)

    def delete(self, ts: int) -> None:
        self.deleted_at = ts if self.deleted_at is None else max(self.deleted_at, ts)

    def exists(self) -> bool:
        return self._live(self.marker) or any(self._live(ts) for _, ts in self.cells.values())

    def get(self, column: str) -> tuple[Any, int | None]:
        cell = self.cells.get(column)
        if cell is None or not self._live(cell[1]):
            return None, None
        return cell


def _order(value: Any) -> tuple[str, str]:
    """Which of two values written at one time wins: the greater, in a total order (by its text, then its repr), so
    that two writes at one time leave the same cell in either order. Cassandra's comparison of the values' bytes is
    total too, though not this order ("10" < "9" here): only the totality matters to the search."""
    return ("", "") if value is None else (str(value), repr(value))


class ModelStore:
    """The three views, the move hint and the readers (`ReservationStore`)."""

    def __init__(self, gate: Gate, names: Names) -> None:
        self.gate = gate
        self.name = names
        self.tables: dict[str, dict[Any, Row]] = {table: {} for table in VIEWS}

    # what is there, as Cassandra would return it -----------------------------------------------------------
    def row(self, table: str, key: Any) -> ViewRow | None:
        found = self.tables[table].get(key)
        if found is None or not found.exists():
            return None
        reserved_at, written = found.get("reserved_at")
        version = found.get("version")[0]
        until = found.get("ready_until")[0]
        window = {"ready_until": until, "lent_at": found.get("lent_at")[0]}
        if table == "reservations":
            book_id = found.get("book_id")[0]
            if book_id is None:
                return None  # only a move's hint is left of it
            moving_to, hinted = found.get("moving_to")
            user_id = found.get("user_id")[0]
            return ViewRow(key, book_id, user_id, reserved_at, version, written, moving_to, hinted, **window)
        if table == "user_reservations":
            user_id, book_id = key
            return ViewRow(found.get("reservation_id")[0], book_id, user_id, reserved_at, version, written, **window)
        return ViewRow(
            found.get("reservation_id")[0], key, found.get("user_id")[0], reserved_at, version, written, **window
        )

    def rows(self, table: str) -> list[ViewRow]:
        """The table's rows in the order of their keys, as Cassandra scans in the order of the partitions' tokens: in
        the order they were first written, two writes of two partitions, which commute, would leave two orders, and the
        audit (which mends rows in the order it scans them) would tell them apart."""
        return [r for key in sorted(self.tables[table]) if (r := self.row(table, key)) is not None]

    def _at(self, table: str, key: Any) -> Row:
        """The row to write: a copy, put in place of the row there, which is never changed after it is stored (the
        search keeps snapshots of the tables that share their rows)."""
        old = self.tables[table].get(key)
        row = Row() if old is None else Row(old.marker, dict(old.cells), old.deleted_at)
        self.tables[table][key] = row
        return row

    # writes ------------------------------------------------------------------------------------------------
    async def write_views(self, lock: Lock, *, came_from: UUID | None = None, drop_at: int | None = None) -> None:
        r, v = lock.reservation(), lock.version
        assert v is not None
        parts = {("reservations", r.reservation_id), ("user_reservations", r.user_id, r.book_id)}
        parts.add(("book_reservations", r.book_id))
        label = f"write views of {self.name(r.reservation_id)} on {self.name(r.book_id)} at {v}"
        if came_from is not None:
            label += f", hint {self.name(came_from)}"
        if came_from is not None and drop_at is not None:
            parts |= {("user_reservations", r.user_id, came_from), ("book_reservations", came_from)}
            label += f", drop {self.name(came_from)} at {drop_at}"
        fault = await self.gate.point(label, frozenset(parts), True, PLAIN_FAULTS, blind=True)
        _raise_before(fault, label)  # a logged batch: whole, or not at all
        common = {"reserved_at": r.reserved_at, "ready_until": r.ready_until, "lent_at": r.lent_at, "version": v}
        self._at("reservations", r.reservation_id).insert({"book_id": r.book_id, "user_id": r.user_id} | common, v)
        self._at("user_reservations", (r.user_id, r.book_id)).insert({"reservation_id": r.reservation_id} | common, v)
        self._at("book_reservations", r.book_id).insert(
            {"reservation_id": r.reservation_id, "user_id": r.user_id} | common, v
        )
        if came_from is not None:
            self._at("reservations", r.reservation_id).update({"moving_to": came_from}, v)
            if drop_at is not None:
                self._at("user_reservations", (r.user_id, came_from)).delete(drop_at)
                self._at("book_reservations", came_from).delete(drop_at)
        _raise_after(fault, label)

    async def _delete(self, table: str, key: Any, at: int) -> None:
        parts = frozenset({(table, *key) if isinstance(key, tuple) else (table, key)})
        shown = "/".join(self.name(k) for k in key) if isinstance(key, tuple) else self.name(key)
        label = f"delete {table} row {shown} at {at}"
        fault = await self.gate.point(label, parts, True, PLAIN_FAULTS, blind=True)
        _raise_before(fault, label)
        self._at(table, key).delete(at)
        _raise_after(fault, label)

    async def delete_book_rows(self, user_id: int, book_id: UUID, version: int) -> None:
        # two plain writes sent together, as Cassandra's store sends them: either may land without the other
        await asyncio.gather(
            self._delete("user_reservations", (user_id, book_id), version),
            self._delete("book_reservations", book_id, version),
        )

    async def delete_user_row(self, user_id: int, book_id: UUID, version: int) -> None:
        await self._delete("user_reservations", (user_id, book_id), version)

    async def delete_reservation_row(self, reservation_id: UUID, version: int) -> None:
        await self._delete("reservations", reservation_id, version)

    async def delete_if_naming(self, reservation_id: UUID, user_id: int, book_id: UUID) -> None:
        book_row, user_row = await self._read_two(book_id, user_id)
        if book_row is not None and book_row.reservation_id == reservation_id:
            assert book_row.written is not None
            await self._delete("book_reservations", book_id, book_row.written)
        if user_row is not None and user_row.reservation_id == reservation_id:
            assert user_row.written is not None
            await self._delete("user_reservations", (user_id, book_id), user_row.written)

    async def _read_two(self, book_id: UUID, user_id: int) -> tuple[ViewRow | None, ViewRow | None]:
        parts = frozenset({("book_reservations", book_id), ("user_reservations", user_id, book_id)})
        await self.gate.point(f"read book and user rows of {self.name(book_id)}", parts, False, ())
        return self.row("book_reservations", book_id), self.row("user_reservations", (user_id, book_id))

    async def hint(self, reservation_id: UUID, book_id: UUID, at: int) -> None:
        label = f"hint {self.name(reservation_id)} moving to {self.name(book_id)} at {at}"
        fault = await self.gate.point(
            label, frozenset({("reservations", reservation_id)}), True, PLAIN_FAULTS, blind=True
        )
        _raise_before(fault, label)
        self._at("reservations", reservation_id).update({"moving_to": book_id}, at)
        _raise_after(fault, label)

    async def delete_row(self, table: str, row: ViewRow, at: int) -> None:
        keys: dict[str, Any] = {
            "reservations": row.reservation_id,
            "user_reservations": (row.user_id, row.book_id),
            "book_reservations": row.book_id,
        }
        await self._delete(table, keys[table], at)

    # reads -------------------------------------------------------------------------------------------------
    async def reservation_row(self, reservation_id: UUID) -> ViewRow | None:
        parts = frozenset({("reservations", reservation_id)})
        await self.gate.point(f"read reservations row {self.name(reservation_id)}", parts, False, ())
        return self.row("reservations", reservation_id)

    async def book_row(self, book_id: UUID) -> ViewRow | None:
        parts = frozenset({("book_reservations", book_id)})
        await self.gate.point(f"read book_reservations row {self.name(book_id)}", parts, False, ())
        return self.row("book_reservations", book_id)

    async def user_row(self, user_id: int, book_id: UUID) -> ViewRow | None:
        parts = frozenset({("user_reservations", user_id, book_id)})
        await self.gate.point(f"read user_reservations row {user_id}/{self.name(book_id)}", parts, False, ())
        return self.row("user_reservations", (user_id, book_id))

    async def reader(self, user_id: int) -> User | None:
        await self.gate.point(f"read reader {user_id}", frozenset({("users", user_id)}), False, ())
        return User(user_id, "", "", JOINED)

    async def card(self, user_id: int) -> tuple[User | None, bool]:
        return await self.reader(user_id), False

    async def scan(self, table: str) -> AsyncIterator[list[ViewRow]]:
        await self.gate.point(f"scan {table}", frozenset({(table, ANY)}), False, ())
        yield self.rows(table)


JOINED = datetime(2020, 1, 1)


# -- idempotency keys -----------------------------------------------------------------------------------------
class ModelKeys:
    """`reservation_keys`: conditional claims and take-overs, read back at SERIAL when an answer is lost (as
    CassandraKeys does), and plain outcome records."""

    def __init__(self, gate: Gate, names: Names, current_op: Callable[[], int | None] = lambda: None) -> None:
        self.gate = gate
        self.name = names
        self.current_op = current_op  # the operation drawing an attempt id (None: outside the operations)
        self.claims: dict[UUID, Claim] = {}
        self.attempts: dict[int | None, int] = {}  # per operation: attempt ids drawn

    def _attempt(self) -> UUID:
        """A claim's attempt id: counted, not random, so that every replay of a schedule stores the same; counted per
        operation, so that two operations drawing between steps that commute draw the same ids in either order."""
        op = self.current_op()
        self.attempts[op] = n = self.attempts.get(op, 0) + 1
        return UUID(int=(1 << 100) + ((0 if op is None else op + 1) << 32) + n)

    def _parts(self, reservation_id: UUID) -> frozenset[Part]:
        return frozenset({("reservation_keys", reservation_id)})

    async def claim(self, reservation_id: UUID, user_id: int, book_id: UUID) -> bool:
        attempt = self._attempt()
        return await self._conditional(reservation_id, attempt, lambda c: c is None)

    async def take_over(self, reservation_id: UUID, first: Claim) -> bool:
        attempt = self._attempt()
        return await self._conditional(
            reservation_id,
            attempt,
            lambda c: c is not None and c.outcome is KeyOutcome.UNDONE and c.attempt == first.attempt,
        )

    async def _conditional(self, reservation_id: UUID, attempt: UUID, condition: Any) -> bool:
        label = f"claim key of {self.name(reservation_id)}"
        fault = await self.gate.point(label, self._parts(reservation_id), True, LWT_FAULTS)
        try:
            _raise_before(fault, label)
            if not condition(self.claims.get(reservation_id)):
                _raise_after(fault, label)
                return False
            self.claims[reservation_id] = Claim(KeyOutcome.CLAIMED, attempt)
            _raise_after(fault, label)
            return True
        except OutcomeUnknown:
            claim = await self.read(reservation_id)
            if claim is not None and claim.attempt == attempt:
                return True
            if claim is None or claim.outcome is KeyOutcome.UNDONE:
                raise DatabaseUnavailable("model: the claim could not be confirmed") from None
            return False

    async def read(self, reservation_id: UUID) -> Claim | None:
        await self.gate.point(f"read key of {self.name(reservation_id)}", self._parts(reservation_id), False, ())
        return self.claims.get(reservation_id)

    async def record(self, reservation_id: UUID, outcome: KeyOutcome) -> None:
        label = f"record key of {self.name(reservation_id)} {outcome.value}"
        fault = await self.gate.point(label, self._parts(reservation_id), True, PLAIN_FAULTS)
        try:
            _raise_before(fault, label)
            claim = self.claims.get(reservation_id)
            attempt = claim.attempt if claim else self._attempt()
            self.claims[reservation_id] = replace(claim, outcome=outcome) if claim else Claim(outcome, attempt)
            _raise_after(fault, label)
        except DatabaseUnavailable:
            pass  # CassandraKeys logs and goes on


def in_use(locks: Iterable[Lock], reservation_id: UUID) -> list[Lock]:
    return [lock for lock in locks if lock.involves(reservation_id)]
