"""The scenario: two books X and Y, R1 held on X by reader 1 (made before the search, unscheduled), and the
operations the search interleaves, each on its own app instance (its own version clock and use cases):

    cancel    reader 1 cancels R1                    instance at  0 ms, settle time 1 h
    renew     reader 1 renews R1 (a move, no book)   instance at +2.5 ms
    move      reader 1 moves R1 to Y                 instance at +2.5 ms
    move2     the same move sent again               instance at -2.5 ms (another instance: a resend)
    reserveY  reader 2 reserves Y                    instance at -2.5 ms
    reserveX  reader 2 reserves X                    instance at  0 ms
    heal      reader 3 reserves Y                    instance at +1 h, settle time 0: a refused take heals/settles
    repair    one pass of Audit.audit(repair=True)   instance at +1 h, settle time 0
    withdraw  the librarian withdraws Y              instance at  0 ms
    lend      the desk marks X collected (R1 lent)   instance at +1 ms
    queue     reader 4 joins X's queue, suspends     instance at -1 ms
              the place a day, and resumes it

Requests' instances have a settle time of an hour (they leave every move in flight to the request making it); the
heal's and the repair's have 0 and a clock an hour ahead, so they act on everything they meet. Each instance's wall
clock advances 1 ms with each of its own store calls.

`legacy=True` runs the move of commit 7e91aca instead (`LegacyReservations`): the target taken as a plain HELD lock,
then the source given up, then the target confirmed; the heal is today's, which, like the old one, rebuilds views
from any HELD lock. That is the protocol of case 1, which the search must find.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import schedule_explorer
from schedule_explorer import CURRENT_OP, Scheduler, Step
from schedule_invariants import History, check_end, check_state, judge_outcome, reservation_of
from schedule_model import ANY, ModelKeys, ModelLocks, ModelStore, Names, Part, Row

import app.repository.locks as locks_module
import app.repository.reservations as reservations_module
from app.models import Conflict, NotFound, Reservation, UnknownBook
from app.repository.audit import Audit
from app.repository.clock import VersionClock
from app.repository.locks import LockRunner, LockState, T, Transition
from app.repository.reservations import Reservations

X = UUID("00000000-0000-0000-0000-00000000000a")
Y = UUID("00000000-0000-0000-0000-00000000000b")
BASE_US = 1_700_000_000_000_000  # the search's "now", in microseconds
STEP_US = 1_000
HOUR = 3600.0
EPOCH = datetime(1970, 1, 1)


async def _queue(instance: Instance) -> Any:
    """Reader 4 joins X's queue (a free X is simply reserved), suspends the place for a day, and resumes it."""
    joined = await instance.reservations.join(X, 4)
    if isinstance(joined, Reservation):
        return joined
    await instance.reservations.suspend(X, 4, reservations_module.now() + timedelta(days=1))
    return await instance.reservations.resume(X, 4)


@dataclass(frozen=True)
class OpSpec:
    name: str
    skew_us: int
    settle: float
    run: Callable[[SearchWorld, Instance], Coroutine[Any, Any, Any]]


@dataclass
class Instance:
    clock: VersionClock
    runner: LockRunner
    reservations: Reservations


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("cancel", 0, HOUR, lambda w, i: i.reservations.cancel(w.r1, 1)),
        OpSpec("renew", 2_500, HOUR, lambda w, i: i.reservations.renew_on(X, 1)),
        OpSpec("move", 2_500, HOUR, lambda w, i: i.reservations.move(w.r1, 1, Y)),
        OpSpec("move2", -2_500, HOUR, lambda w, i: i.reservations.move(w.r1, 1, Y)),
        OpSpec("reserveY", -2_500, HOUR, lambda w, i: i.reservations.reserve(Y, 2)),
        OpSpec("reserveX", 0, HOUR, lambda w, i: i.reservations.reserve(X, 2)),
        OpSpec("heal", int(HOUR * 1e6), 0, lambda w, i: i.reservations.reserve(Y, 3)),
        OpSpec("repair", int(HOUR * 1e6), 0, lambda w, i: Audit(i.runner, i.reservations).audit(repair=True)),
        OpSpec("withdraw", 0, HOUR, lambda w, i: i.reservations.withdraw(Y)),
        OpSpec("lend", 1_000, HOUR, lambda w, i: i.reservations.lend(X)),
        OpSpec("queue", -1_000, HOUR, lambda w, i: _queue(i)),
    )
}


# -- the legacy move (commit 7e91aca), for the proof that the search finds case 1 ------------------------------
# The old move gave the source up as a free lock that remembers where the reservation went.
LEGACY_MOVE_AWAY = Transition(
    "move away (legacy)",
    (LockState.HELD,),
    T.RELEASE_EXACT.when,
    {**T.RELEASE_EXACT.sets, "moved_to": T.MOVE_OUT.sets["moved_to"]},
)


class LegacyReservations(Reservations):
    """Today's use cases with the move of commit 7e91aca: take the target (free -> HELD, a plain take), hint, give
    the source up, confirm the target above it, write the views; when the source cannot be given up, release the
    target at the version taken, without deleting any view of it."""

    async def move(self, reservation_id: UUID, user_id: int, new_book_id: UUID | None = None) -> Reservation:
        row = await self._owned(reservation_id, user_id)
        source = await self.locate(row, quick=True)
        if row.book_id != source.book_id:
            await self.store.delete_if_naming(reservation_id, user_id, row.book_id)
        if new_book_id is None or new_book_id == source.book_id:
            return await self._renew(source)
        assert source.version is not None
        taken = await self.locks.run(
            T.TAKE,
            new_book_id,
            above=source.version,
            reservation_id=reservation_id,
            user_id=user_id,
            reserved_at=reservations_module.now(),
            **self.window(),
        )
        if not taken.applied:
            met = taken.lock
            if met.state in (None, LockState.WITHDRAWN):
                raise UnknownBook(new_book_id)
            if met.state is LockState.HELD:
                await self._heal_beside(met)
            raise self._taken(new_book_id, met, user_id)
        target = taken.lock
        await self.store.hint(reservation_id, new_book_id, source.version)
        away = await self.locks.run(
            LEGACY_MOVE_AWAY,
            source.book_id,
            before=source,
            expected=source.version,
            reservation_id=reservation_id,
            moved_to=new_book_id,
        )
        if not away.applied:
            await self.locks.run(T.RELEASE_EXACT, new_book_id, expected=target.version, reservation_id=reservation_id)
            await self.locate(row)  # NotFound if a cancel got there first
            raise Conflict.reservation_changed(reservation_id)
        away_version = away.lock.version
        assert away_version is not None
        confirmed = await self.locks.run(
            T.RESTAMP,
            new_book_id,
            before=target,
            above=away_version,
            expected=target.version,
            reservation_id=reservation_id,
            reserved_at=target.reserved_at,
            ready_until=target.ready_until,
            renewals=target.renewals,
        )
        if not confirmed.applied:
            await self.store.delete_book_rows(user_id, source.book_id, away_version)
            now_held = await self.locks.read(new_book_id, serial=True)
            if now_held.holds(reservation_id):
                return now_held.reservation()
            raise NotFound.reservation_cancelled_while_changed(reservation_id)
        await self.store.write_views(confirmed.lock, came_from=source.book_id, drop_at=away_version)
        return confirmed.lock.reservation()


# -- one run ----------------------------------------------------------------------------------------------------
_current: SearchWorld | None = None  # the world of the schedule running in this process


class SearchWorld:
    def __init__(self, scenario: SearchScenario, scheduler: Scheduler) -> None:
        self.scenario = scenario
        self.scheduler = scheduler
        self.specs = [OPS[name] for name in scenario.ops]
        self.op_names = list(scenario.ops)
        self.names = Names()
        self.names.of.update({X: "X", Y: "Y"})
        self.locks = ModelLocks(scheduler, self.names)
        self.store = ModelStore(scheduler, self.names)
        self.keys = ModelKeys(scheduler, self.names, CURRENT_OP.get)
        self.history = History(strict=scenario.strict, views_only=scenario.legacy)
        self.outcomes: dict[int, Any] = {}
        self.judged: set[int] = set()
        self.ids = 0  # ids drawn outside the operations (the setup's R1)
        self.drawn: dict[int, int] = {}  # per operation: ids it drew
        self.r1 = UUID(int=0)
        self.setup_clock = VersionClock(lambda: (BASE_US - 1_000_000) * 1000)
        self.instances = [self._instance(i, spec) for i, spec in enumerate(self.specs)]

    def _instance(self, op: int, spec: OpSpec) -> Instance:
        def wall_ns() -> int:
            return (BASE_US + spec.skew_us + self.scheduler.steps.get(op, 0) * STEP_US) * 1000

        return self.make(VersionClock(wall_ns), spec.settle)

    def make(self, clock: VersionClock, settle: float) -> Instance:
        runner = LockRunner(self.locks, clock)
        kind = LegacyReservations if self.scenario.legacy else Reservations
        return Instance(clock, runner, kind(runner, self.store, self.keys, clock, settle_after_seconds=settle))

    # hooks the patched app modules call -----------------------------------------------------------------------
    def uuid4(self) -> UUID:
        """An id numbered per operation, not in the order drawn: two operations that draw between steps that commute
        (reserveY and reserveX each draw after reading their reader) get the same ids in either order, as the search's
        reduction assumes. One counter for all drew them in schedule order: the two orders stored different ids, and
        sleep sets met only one of them (6 of the 21 states of reserveY+reserveX without faults were missed)."""
        op = CURRENT_OP.get()
        if op is None:
            self.ids += 1
            rid = UUID(int=self.ids)
        else:
            self.drawn[op] = n = self.drawn.get(op, 0) + 1
            rid = UUID(int=(op + 1) << 64 | n)
        self.names.of[rid] = "R1" if op is None else f"R({self.op_names[op]})"
        return rid

    def now(self) -> datetime:
        op = CURRENT_OP.get()
        clock = self.setup_clock if op is None else self.instances[op].clock
        return EPOCH + timedelta(milliseconds=clock.wall_us() // 1000)

    # the World protocol ----------------------------------------------------------------------------------------
    async def setup(self) -> None:
        """R1 reserved on X by reader 1, through the use cases, once for the search (every run resumes from a state
        the search saved, `snapshot`)."""
        global _current
        _current = self
        setup = self.make(self.setup_clock, HOUR)
        await setup.reservations.open(X)
        await setup.reservations.open(Y)
        self.r1 = (await setup.reservations.reserve(X, 1)).reservation_id
        self.history.acked.add(self.r1)

    def start(self, op: int) -> Coroutine[Any, Any, Any]:
        """The operation from its beginning: a new instance (its clock starts again with its steps), no ids drawn."""
        self.drawn.pop(op, None)
        self.keys.attempts.pop(op, None)
        self.instances[op] = self._instance(op, self.specs[op])
        return self.specs[op].run(self, self.instances[op])

    def snapshot(self) -> object:
        """What the operations share: the store, what clients were told, the outcomes (and which were judged), and
        the ids drawn outside the operations (by the final audit)."""
        h = self.history
        store = (dict(self.locks.rows), _copy_tables(self.store.tables), dict(self.keys.claims))
        return (
            store,
            set(h.acked),
            set(h.cancel_sent),
            set(h.cancelled),
            dict(self.outcomes),
            set(self.judged),
            self.ids,
        )

    def restore(self, snapshot: object, *, store_only: bool = False) -> None:
        """Puts a copy of the snapshot back; the checks' counts (`History.undecidable`...) start again: they count
        what each run met."""
        store, acked, cancel_sent, cancelled, outcomes, judged, ids = snapshot  # type: ignore[misc]
        rows, tables, claims = store
        self.locks.rows, self.store.tables, self.keys.claims = dict(rows), _copy_tables(tables), dict(claims)
        if store_only:
            return
        h = self.history
        h.acked, h.cancel_sent, h.cancelled = set(acked), set(cancel_sent), set(cancelled)
        h.undecidable = h.outgoing_after_cancel = 0
        self.outcomes, self.judged, self.ids = dict(outcomes), set(judged), ids

    def on_step(self, step: Step) -> None:
        if self.op_names[step.op] == "cancel":
            self.history.cancel_sent.add(self.r1)

    def on_done(self, op: int, outcome: Any) -> None:
        self.outcomes[op] = outcome
        rid = reservation_of(outcome)
        if rid is not None:
            self.history.acked.add(rid)
        if self.op_names[op] == "cancel" and outcome is None:
            self.history.cancelled.add(self.r1)

    def check(self, faulted: bool) -> list[str]:
        out = []
        for op, outcome in self.outcomes.items():
            if op not in self.judged:
                self.judged.add(op)
                problem = judge_outcome(self.op_names[op], outcome, faulted)
                if problem:
                    out.append(problem)
        if self.scenario.states is not None:
            self.scenario.states.add(self.fingerprint(faulted))
        return out + check_state(self.locks, self.store, self.history, self.names)

    def stored(self, parts: frozenset[Part]) -> object:
        """What these partitions store now, exactly (write times and deletions included), to compare before and
        after a step: the search's reduction treats a write that changed nothing as a read."""
        return [self._stored(part) for part in parts]  # (one set, before and after: the same order)

    def _stored(self, part: Part) -> object:
        table, key = part[0], part[1:]
        if table == "lock":
            rows: dict[Any, Any] = self.locks.rows
        elif table == "reservation_keys":
            rows = self.keys.claims
        elif table == "users":
            return None  # readers are never written
        else:
            rows = self.store.tables[table]
        if ANY in key:
            return dict(rows)
        return rows.get(key[0] if len(key) == 1 else key)  # (a write stores a new row, lock or claim: this one stays)

    def fingerprint(self, faulted: bool) -> str:
        """The whole state as text: what is stored (write times and deletions included), what clients were told,
        which store call each operation waits at, and whether the schedule's one fault is spent (an outcome is judged
        by it, and no fault can follow)."""
        views = sorted(
            (table, repr(key), row.marker, sorted(row.cells.items(), key=repr), row.deleted_at)
            for table, rows in self.store.tables.items()
            for key, row in rows.items()
        )
        told = (sorted(self.history.acked), sorted(self.history.cancel_sent), sorted(self.history.cancelled))
        outcomes = sorted((op, f"{type(o).__name__}: {o}") for op, o in self.outcomes.items())
        waiting = sorted((p.key, p.label) for p in self.scheduler.pending.values())
        locks = sorted(self.locks.rows.items(), key=repr)
        return repr((locks, views, sorted(self.keys.claims.items(), key=repr), told, outcomes, waiting, faulted))

    async def at_end(self, faulted: bool) -> list[str]:
        """The end state judged: once per distinct end state of the search (many schedules end alike: steps that
        commute, in another order). The key is everything the final audit and `check_end` read (the rows in the order
        they were first written, finer than needed: the scans sort them), so a state met again is judged exactly as
        the first time."""
        key = hashlib.blake2b(self._end_state(faulted).encode(), digest_size=16).digest()
        judged = self.scenario.ends.get(key)
        if judged is None:
            judged = self.scenario.ends[key] = await self._judge_end(faulted)
        unclean_before, violations = judged
        self.scenario.stats["unclean before repair"] += unclean_before
        if unclean_before and not faulted:
            self.scenario.stats["unclean before repair, no fault"] += 1
        self.scenario.stats["undecidable incoming seen"] += bool(self.history.undecidable)
        self.scenario.stats["outgoing source after cancel seen"] += bool(self.history.outgoing_after_cancel)
        return violations

    def _end_state(self, faulted: bool) -> str:
        views = [(t, [(k, vars(r)) for k, r in rows.items()]) for t, rows in self.store.tables.items()]
        h = self.history
        told = (sorted(h.acked), sorted(h.cancel_sent), sorted(h.cancelled))
        return repr((faulted, list(self.locks.rows.items()), views, list(self.keys.claims.items()), told, self.ids))

    async def _judge_end(self, faulted: bool) -> tuple[bool, list[str]]:
        final = self.make(VersionClock(lambda: (BASE_US + int(2 * HOUR * 1e6)) * 1000), 0)
        audit = Audit(final.runner, final.reservations)
        before = await audit.audit()
        await audit.audit(repair=True)
        await audit.audit(repair=True)
        report = await audit.audit()
        return bool(before.violations), check_end(self.locks, self.store, self.history, report, self.names)


def _copy_tables(tables: dict[str, dict[Any, Row]]) -> dict[str, dict[Any, Row]]:
    """A copy of the view tables, sharing their rows: a write stores a new row (`ModelStore._at`), as it stores a new
    lock or claim."""
    return {t: dict(rows) for t, rows in tables.items()}


class SearchScenario:
    """A set of operations to interleave (schedule_explorer.Scenario)."""

    def __init__(
        self, ops: tuple[str, ...], *, legacy: bool = False, strict: bool = True, record_states: bool = False
    ) -> None:
        self.ops = ops
        self.legacy = legacy
        self.strict = strict
        self.name = "+".join(ops) + (" (legacy move)" if legacy else "")
        self.states: set[str] | None = set() if record_states else None  # every state met (`SearchWorld.fingerprint`)
        self.ends: dict[bytes, tuple[bool, list[str]]] = {}  # each end state met: its judgement (`SearchWorld.at_end`)
        self.stats: dict[str, int] = {
            "unclean before repair": 0,
            "unclean before repair, no fault": 0,
            "undecidable incoming seen": 0,
            "outgoing source after cancel seen": 0,
        }

    def build(self, scheduler: Scheduler) -> SearchWorld:
        return SearchWorld(self, scheduler)


async def _no_backoff(attempt: int) -> None:
    return None


@contextlib.contextmanager
def search_patches() -> Iterator[None]:
    """Ids and times from the schedule's world (so every replay is the same), and no sleeping between attempts."""
    saved = (reservations_module.uuid4, reservations_module.now, locks_module.backoff)

    def uuid4() -> UUID:
        assert _current is not None
        return _current.uuid4()

    def now() -> datetime:
        assert _current is not None
        return _current.now()

    reservations_module.uuid4 = uuid4  # type: ignore[assignment]
    reservations_module.now = now  # type: ignore[assignment]
    locks_module.backoff = _no_backoff  # type: ignore[assignment]
    try:
        yield
    finally:
        reservations_module.uuid4, reservations_module.now, locks_module.backoff = saved  # type: ignore[assignment]


def explore(
    ops: tuple[str, ...],
    *,
    bound: int | None,
    faults: bool,
    legacy: bool = False,
    strict: bool = True,
    sleep_sets: bool = True,
    record_states: bool = False,
) -> Any:
    """One search; with `record_states`, the summary's `states` holds the fingerprint of every state it met."""
    with search_patches():
        scenario = SearchScenario(ops, legacy=legacy, strict=strict, record_states=record_states)
        summary = schedule_explorer.Explorer(scenario, bound=bound, faults=faults, sleep_sets=sleep_sets).run()
        summary.stats = scenario.stats
        summary.states = scenario.states
        return summary
