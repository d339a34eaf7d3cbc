"""The scheduler and the stateless search over the await points of the real code.

The operations run on the search's event loop (`SearchLoop`, a bare queue of callbacks) as asyncio tasks, and every
store call of the model (tests/schedules/schedule_model.py) waits at `Scheduler.point`. When every live task is
blocked there (nothing left in the loop's queue), the search picks which pending store call runs next, and whether it
fails (one fault per schedule at most), then the invariants are checked (`World.check`).

The search is a depth-first search over the schedules (the stack of `Node`s) that keeps no set of the states met and
cannot copy a coroutine: after a backtrack, the next run starts from the node it backtracked to (`_resume`). The
operations that took no step at or below that node in the last run are still where they were there, blocked at the
same store call. The others start again and replay their own steps of the path, each against the store as it was
when the step first ran (every node keeps a snapshot of what the operations share, `World.snapshot`): a store call
acts on its own partitions only, so the operation gets the same answers and comes to the same state, and the replay
is checked to meet the same calls. A state met in an earlier run is not checked again. Preemption bounding (CHESS)
limits the schedules: switching away from an operation that could continue (one of its store calls is pending) costs
one preemption; switching after an operation finished is free. `bound=None`: no bound.

What the search must keep: every state that some schedule within the bound reaches is met (the invariants are checked
on every state, not only at the end). A persistent-set or DPOR search (Flanagan and Godefroid 2005; Abdulla et al.,
"Source sets", 2017) would not do: it meets one schedule of each class of equivalent complete schedules, not every
state between (two operations of two steps on two partitions: one schedule, 5 of their 9 states). The search uses
sleep sets, which keep every state, and makes them skip more:

- Independence, in the state where two choices meet (`independent`): a and b are independent when running them in
  either order gives the same state, and each call's operation the same answer. So are two calls on different
  partitions; a call that fails before it reaches the store (FAIL, LOST: it reads and writes nothing) and any other;
  two writes of view rows (`blind`: each cell keeps its latest write by write time, whatever the order); and two
  calls on one partition neither of which changed what it stores (reads, a refused conditional write, a write older
  than what is there). Whether a write changed anything is measured as it runs (`World.stored` before and after).
- Sleep sets (Godefroid): after the subtree of a choice t is explored, t sleeps in the subtrees of its later
  siblings until a choice that is not independent of t runs. Running an asleep t would only reach states met below t
  already, in another order of independent steps. For an asleep t, whether it changes anything is what it did where
  it was explored: whatever ran since left its partitions as they were (or, for a view write, shadowed more of it:
  then it changes less, never more, since view cells only keep their latest write).
- Under the bound, sleep sets as they stand miss states (Coons, Musuvathi, McKinley, "Bounded partial-order
  reduction", OOPSLA 2013): the order explored below t may cost more preemptions than the order skipped, and be
  beyond the bound. So an asleep t is skipped only when the order explored cannot cost more, for any continuation
  (`Explorer._explored_no_dearer`); otherwise it runs again.
- Below an asleep t that ran again, t and the steps after it that are independent of the steps t was asleep over
  (`Block`) could have run before those steps instead: that order was explored below t where it first ran. A choice
  x there is skipped when the order explored (the block, then the steps passed, then x) costs no more preemptions
  than the order at hand (`Explorer._block_covers`).

Why every state within the bound is still met: by induction on the runs' order, every schedule within the bound from
a node is met, as a path of the search or as a path of equal states from an earlier node: a choice the search does
not take there is beyond the bound; or asleep, and the same states follow it, at no more preemptions, below the node
where it was explored (an earlier sibling of an ancestor); or covered by a block, and the same states follow it below
the node where the block's first choice was explored. A run that meets only skipped choices ends there ("cut short"):
the state it reached is checked, and every way on was met elsewhere.

Steps commute exactly, not only in what they store: each operation runs on its own instance, whose clock advances
with that operation's own steps only (plus its skew), ids are numbered per operation, and scans return rows in the
order of their keys, so neither a version, a time, an id nor an order depends on another operation's progress except
through what it reads. `test_schedules.py` compares the states met with those of every schedule within the bound.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from schedule_model import Fault, Part, conflicts

UNSENT = frozenset({Fault.FAIL, Fault.LOST})  # the call raises before it reads or writes anything

CURRENT_OP: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_op", default=None)


@dataclass
class Pending:
    key: tuple[int, int]  # (operation, its n-th store call): stable across replays
    op: int
    label: str
    parts: frozenset[Part]
    write: bool
    blind: bool  # a write of view cells, each kept by write time (schedule_model.ModelStore): two commute
    faults: tuple[Fault, ...]
    future: asyncio.Future[Fault | None]


@dataclass(frozen=True, eq=False)
class Option:
    """One choice: run this pending store call, with this fault (None: as asked). A call keeps its key while it
    waits, so an option asleep at one node is the same option at the next: options are equal by key and fault."""

    key: tuple[int, int]
    op: int
    fault: Fault | None
    parts: frozenset[Part]
    write: bool
    blind: bool
    _hash: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.key, self.fault)))  # sleep sets look options up all the time

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Option) and self.key == other.key and self.fault is other.fault

    def __hash__(self) -> int:
        return self._hash


def independent(a: Option, a_changed: bool, b: Option, b_changed: bool) -> bool:
    """Whether a and b, both enabled in a state, give the same state in either order, each call's operation getting
    the same answer. `a_changed`, `b_changed`: whether each changed what its partitions store there (for one not run
    yet, whether it writes at all)."""
    if a.key == b.key:
        return False  # two faults of one call are alternatives, not two steps
    if a.fault in UNSENT or b.fault in UNSENT:
        return True  # raises before it reaches the store (and after a fault no other is offered: two never meet)
    if a.blind and b.blind:
        return True  # each view cell keeps its latest write, whichever lands first
    return not conflicts(a.parts, a_changed, b.parts, b_changed)


@dataclass
class Step:
    op: int
    label: str
    fault: Fault | None
    preemption: bool


class SearchLoop(asyncio.AbstractEventLoop):
    """The event loop the search runs on: a queue of callbacks and nothing else (no selector, no timers, no
    handles), which is all the model's operations use, since none waits on I/O or time. It is a third of the cost of
    a step on asyncio's own loop, which polls its selector between every two rounds of callbacks. `run_ready` runs
    callbacks until none is left: every task is then blocked at a store call of the model, or done."""

    def __init__(self) -> None:
        self._ready: deque[tuple[Callable[..., Any], tuple[Any, ...], contextvars.Context | None]] = deque()
        self._closed = False
        self.tasks: dict[int, list[asyncio.Task[Any]]] = {}  # by operation: every task it made (gather's too)

    def run_ready(self) -> None:
        ready = self._ready
        while ready:
            callback, args, context = ready.popleft()
            if context is None:
                callback(*args)
            else:
                context.run(callback, *args)

    def run_until_complete(self, future: Any) -> Any:
        task = self.create_task(future)
        self.run_ready()
        if not task.done():
            raise RuntimeError("a task is blocked outside the store: the search's loop has nothing else to run")
        return task.result()

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None) -> Any:
        self._ready.append((callback, args, context))

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None, context: contextvars.Context | None = None) -> Any:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        op = CURRENT_OP.get() if context is None else context.get(CURRENT_OP)
        if op is not None:
            self.tasks.setdefault(op, []).append(task)
        return task

    def stop(self, op: int) -> None:
        """Cancels every task of the operation, and lets them unwind."""
        for task in self.tasks.pop(op, []):
            task.cancel()
        self.run_ready()

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        raise AssertionError(f"unhandled in the search's loop: {context}")

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True


class Scheduler:
    """The gate every store call of the model waits at (`schedule_model.Gate`). `free`: calls pass at once (the
    setup before the schedule, and the final repair after it)."""

    def __init__(self, loop: SearchLoop) -> None:
        self.loop = loop
        self.free = True
        self.pending: dict[tuple[int, int], Pending] = {}  # by key: an operation may wait at two calls at once
        self.calls: dict[int, int] = {}  # per operation: store calls registered so far
        self.steps: dict[int, int] = {}  # per operation: store calls granted so far (its clock's progress)

    async def point(
        self, label: str, parts: frozenset[Part], write: bool, faults: tuple[Fault, ...], *, blind: bool = False
    ) -> Fault | None:
        op = CURRENT_OP.get()
        if self.free or op is None:
            return None
        n = self.calls.get(op, 0)
        self.calls[op] = n + 1
        future: asyncio.Future[Fault | None] = self.loop.create_future()
        self.pending[(op, n)] = Pending((op, n), op, label, parts, write, blind, faults, future)
        return await future

    def grant(self, option: Option) -> Pending:
        pending = self.pending.pop(option.key)
        self.steps[pending.op] = self.steps.get(pending.op, 0) + 1
        pending.future.set_result(option.fault)
        return pending

    def forget(self, op: int) -> None:
        """The operation starts again: none of its calls is pending, none was made."""
        for key in [key for key, p in self.pending.items() if p.op == op]:
            self.pending.pop(key).future.cancel()
        self.calls.pop(op, None)
        self.steps.pop(op, None)


class World(Protocol):
    """A scenario's world, through a search: the model, the operations and their history (schedule_invariants.py).
    What the operations share (the store, what clients were told, the outcomes) is `snapshot`; the rest is each
    operation's own (its coroutine, its instance and clock, the ids it drew)."""

    op_names: list[str]

    async def setup(self) -> None: ...

    def start(self, op: int) -> Coroutine[Any, Any, Any]:
        """The operation from its beginning, with what is its own as if it had never run."""
        ...

    def snapshot(self) -> object: ...

    def restore(self, snapshot: object, *, store_only: bool = False) -> None:
        """Puts back a snapshot (a copy of it: it may be restored again)."""
        ...

    def on_step(self, step: Step) -> None: ...

    def on_done(self, op: int, outcome: Any) -> None: ...

    def check(self, faulted: bool) -> list[str]: ...

    def stored(self, parts: frozenset[Part]) -> object: ...

    async def at_end(self, faulted: bool) -> list[str]: ...


class Scenario(Protocol):
    name: str

    def build(self, scheduler: Scheduler) -> World: ...


# An asleep option: the depth of the node where it was explored, whether it changed anything there and whether its
# operation went on after it (it does the same wherever it stays asleep).
Asleep = tuple[int, bool, bool]


@dataclass(frozen=True)
class Block:
    """Below an asleep option t that ran again: t was explored at the node at `origin`, then the path ran `passed`
    (each step with whether it changed anything), all independent of t; t ran after them, then the steps of `ops`
    (t's operation first), each independent of every step of `passed` and of another operation. The block could have
    run before `passed`: that order starts with t at `origin`, explored already."""

    origin: int
    passed: tuple[tuple[Option, bool], ...]
    passed_ops: tuple[int, ...]
    ops: tuple[int, ...]


@dataclass
class Node:
    calls: tuple[tuple[tuple[int, int], str], ...]  # the store calls pending here: a replay must meet the same
    options: list[Option]
    last_op: int | None
    preemptions: int
    faulted: bool
    state: object  # the world's snapshot here, to resume from
    sleep: dict[Option, Asleep] = field(default_factory=dict)
    block: Block | None = None  # the block this node is in, if any
    done: list[Option] = field(default_factory=list)
    chosen: Option | None = None
    step: Step | None = None  # the chosen option's step, as it ran
    changed: dict[Option, bool] = field(default_factory=dict)  # each option run here: whether it changed anything
    goes_on: dict[Option, bool] = field(default_factory=dict)  # and whether its operation had a call pending after

    last_runs: bool = field(init=False)  # whether the operation that ran last could go on: leaving it preempts it

    def __post_init__(self) -> None:
        self.last_runs = self.last_op is not None and self.runs(self.last_op)

    def costs(self, option: Option) -> int:
        return 1 if self.last_runs and option.op != self.last_op else 0

    def runs(self, op: int) -> bool:
        """Whether the operation has a store call pending here (it has not finished)."""
        return any(o.op == op for o in self.options)


@dataclass
class Failure:
    scenario: str
    violations: list[str]
    steps: list[Step]
    names: list[str]
    outcomes: dict[int, Any]

    def describe(self) -> str:
        lines = [f"schedule search '{self.scenario}' found a violation:"]
        lines += [f"  ! {v}" for v in self.violations]
        lines.append("  the schedule (step: operation: store call):")
        for i, s in enumerate(self.steps, 1):
            fault = f"  <-- FAULT: {s.fault.value}" if s.fault else ""
            switch = "  (preemption)" if s.preemption else ""
            lines.append(f"  {i:3}. {self.names[s.op]:>9}: {s.label}{fault}{switch}")
        lines.append("  outcomes: " + "; ".join(f"{self.names[i]} -> {_show(o)}" for i, o in self.outcomes.items()))
        return "\n".join(lines)


def _show(outcome: Any) -> str:
    if isinstance(outcome, BaseException):
        return f"{type(outcome).__name__}({outcome})"
    return type(outcome).__name__ if outcome is not None else "done"


@dataclass
class Summary:
    scenario: str
    schedules: int = 0  # complete schedules run
    blocked: int = 0  # runs cut short because every enabled choice was skipped (met elsewhere)
    seconds: float = 0.0
    failure: Failure | None = None
    stats: dict[str, int] = field(default_factory=dict)
    states: set[str] | None = None  # every state met, when the scenario records them


class Explorer:
    def __init__(
        self, scenario: Scenario, *, bound: int | None, faults: bool, limit: int | None = None, sleep_sets: bool = True
    ) -> None:
        self.scenario = scenario
        self.bound = bound
        self.faults = faults
        self.limit = limit
        self.sleep_sets = sleep_sets  # False: every schedule within the bound (the test of the reduction)
        self.stack: list[Node] = []
        self.path: list[int] = []  # the operation of each step of the run, as far as it went
        self.world: World | None = None
        self.scheduler: Scheduler | None = None
        self.main: dict[int, asyncio.Task[Any]] = {}  # each operation's task

    def run(self) -> Summary:
        summary = Summary(self.scenario.name)
        started = time.process_time()
        loop = SearchLoop()
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(loop)  # what the code under search finds as its running loop
        try:
            while True:
                outcome = self._one(loop)
                if isinstance(outcome, Failure):
                    summary.failure = outcome
                    break
                if outcome:
                    summary.schedules += 1
                else:
                    summary.blocked += 1
                if self.limit is not None and summary.schedules >= self.limit:
                    break
                if not self._backtrack():
                    break
        finally:
            for op in list(loop.tasks):
                loop.stop(op)
            asyncio.events._set_running_loop(outer)
            loop.close()
        summary.seconds = time.process_time() - started
        return summary

    def _backtrack(self) -> bool:
        while self.stack:
            node = self.stack[-1]
            assert node.chosen is not None
            node.done.append(node.chosen)
            node.chosen = self._first_allowed(node, len(self.stack) - 1)
            if node.chosen is not None:
                return True
            self.stack.pop()
        return False

    def _first_allowed(self, node: Node, depth: int) -> Option | None:
        for option in node.options:
            if option in node.done:
                continue
            if self.bound is not None and node.preemptions + node.costs(option) > self.bound:
                continue
            if self.sleep_sets:
                asleep = node.sleep.get(option)
                if asleep is not None and self._explored_no_dearer(option, asleep, depth, node):
                    continue
                if node.block is not None and self._block_covers(option, node):
                    continue
            return option
        return None

    def _explored_no_dearer(self, option: Option, asleep: Asleep, depth: int, node: Node) -> bool:
        """Whether the schedules an asleep option stands for were explored at no more preemptions.

        The option t was explored at the node at `origin` (prefix p); since then the path ran v1..vk, each independent
        of t. Running t now (p v1..vk t w) gives the same states as p t v1..vk w, which the search met below t at
        `origin` if that schedule was within the bound. Without a bound it always was. With one, it was when
        p t v1..vk w costs no more preemptions than p v1..vk t w, for every w: both orders pay the same after their
        first step of w, so the two are compared on the steps between, for each operation w may start with (whether
        t's operation goes on after t is what it did where t was explored, unless that operation took a step since, as
        one with concurrent calls can: then both are tried)."""
        if self.bound is None:
            return True
        origin, _, goes_on = asleep
        start = self.stack[origin]
        last = start.last_op
        last_runs = start.last_runs
        between = [self.stack[i].chosen.op for i in range(origin, depth)]  # type: ignore[union-attr]
        later = {o.op for o in node.options if o.key != option.key}  # operations with another call pending
        for goes_on_now in (goes_on,) if option.op not in between else (False, True):
            future = later | {option.op} if goes_on_now else later
            for first in [*future, None]:
                current = _preemptions(last, last_runs, [*between, option.op], first, future)
                if start.preemptions + current > self.bound:
                    continue  # beyond the bound in this order: nothing to cover
                if _preemptions(last, last_runs, [option.op, *between], first, future) > current:
                    return False
        return True

    def _block_covers(self, option: Option, node: Node) -> bool:
        """Whether the schedules from this node that start with `option` were explored below the block's first
        option, where it ran at `block.origin`, at no more preemptions.

        The path from there ran v (`block.passed`), then the block b; running x now (v b x w) gives the same states,
        from x on, as b v x w, which the search met below the block's first option at `block.origin`, within the
        bound when it costs no more preemptions. The two orders cost the same from x on, so they are compared up to
        x. (A second form, b x v w when x is independent of v too, never skipped a run in the searches measured, so it
        is not kept: a rule nothing exercises is a rule nothing tests.)"""
        block = node.block
        assert block is not None and self.bound is not None
        start = self.stack[block.origin]
        last = start.last_op
        last_runs = start.last_runs
        pending = {o.op for o in node.options}
        current = _preemptions(last, last_runs, [*block.passed_ops, *block.ops], option.op, pending)
        return _preemptions(last, last_runs, [*block.ops, *block.passed_ops], option.op, pending) <= current

    def _sleep_below(self, parent: Node, depth: int) -> dict[Option, Asleep]:
        """The sleep set of the child of `parent` (at `depth`) through its chosen option: what sleeps at the parent
        or was explored there before, if independent of the option chosen."""
        chosen = parent.chosen
        assert chosen is not None
        changed = parent.changed[chosen]
        explored = {**parent.sleep, **{o: (depth, parent.changed[o], parent.goes_on[o]) for o in parent.done}}
        return {o: asleep for o, asleep in explored.items() if independent(o, asleep[1], chosen, changed)}

    def _block_below(self, parent: Node, depth: int) -> Block | None:
        """The block the child of `parent` (at `depth`) is in: one starts where an asleep option ran again, and
        grows while the steps after it could have run before the steps it was asleep over."""
        chosen = parent.chosen
        assert chosen is not None
        asleep = parent.sleep.get(chosen)
        if asleep is not None:  # (an asleep option is chosen only to run again under the bound)
            origin = asleep[0]
            passed = tuple((n.chosen, n.changed[n.chosen]) for n in self.stack[origin:depth])  # type: ignore[index]
            passed_ops = tuple(o.op for o, _ in passed)  # type: ignore[union-attr]
            # (an operation that stepped since t was explored, by a concurrent call, cannot be moved before itself)
            return None if chosen.op in passed_ops else Block(origin, passed, passed_ops, (chosen.op,))
        block = parent.block
        if block is None or chosen.op in block.passed_ops:
            return None
        # Moved before the steps passed, a view write they shadowed would change what it did not change here.
        changed = parent.changed[chosen] or chosen.blind
        if not all(independent(chosen, changed, o, c) for o, c in block.passed):
            return None
        return Block(block.origin, block.passed, block.passed_ops, (*block.ops, chosen.op))

    def _options(self, pending: list[Pending], last_op: int | None, faulted: bool) -> list[Option]:
        options = []
        for p in pending:
            options.append(Option(p.key, p.op, None, p.parts, p.write, p.blind))
            if self.faults and not faulted:
                options += [Option(p.key, p.op, f, p.parts, p.write, p.blind) for f in p.faults]
        # The operation that ran last continues first, and without a fault: the search meets the schedules with the
        # fewest preemptions and faults first, so the first violation found is a short one.
        return sorted(options, key=lambda o: (o.op != last_op, o.fault is not None, o.key))

    def _start(self, loop: SearchLoop, op: int) -> None:
        world, scheduler = self.world, self.scheduler
        assert world is not None and scheduler is not None
        scheduler.forget(op)
        context = contextvars.copy_context()
        context.run(CURRENT_OP.set, op)
        self.main[op] = loop.create_task(_operation(world, op, world.start(op)), context=context)

    def _resume(self, loop: SearchLoop) -> int:
        """Puts the world in the state of the deepest node of the stack, whose chosen option is to run next, and
        returns its depth; the first time, builds the world.

        The operations that took no step at or below that node in the last run are where they were there, blocked
        at the same store call: they stay as they are. The others start again and replay their own steps of the
        path, each against the store as it was when the step first ran (the node's snapshot): a store call acts on
        its partitions only, so it gets the same answer, and the operation comes to the same state."""
        if self.world is None:
            self.scheduler = Scheduler(loop)
            self.world = self.scenario.build(self.scheduler)
            loop.run_until_complete(self.world.setup())
            self.scheduler.free = False
            for op in range(len(self.world.op_names)):
                self._start(loop, op)
            loop.run_ready()
            return 0
        world, scheduler = self.world, self.scheduler
        assert scheduler is not None
        scheduler.free = False
        depth = len(self.stack) - 1
        moved = set(self.path[depth:])
        del self.path[depth:]
        for op in sorted(moved):
            loop.stop(op)
            self._start(loop, op)
        loop.run_ready()  # each runs to its first store call
        for i, node in enumerate(self.stack[:depth]):
            option, step = node.chosen, node.step
            assert option is not None and step is not None
            if option.op in moved:
                world.restore(node.state, store_only=True)
                waiting = scheduler.pending.get(option.key)
                if waiting is None or waiting.label != step.label:
                    raise AssertionError(f"replay diverged at step {i + 1}: the code is not deterministic")
                scheduler.grant(option)
                loop.run_ready()
        world.restore(self.stack[depth].state)
        return depth

    def _one(self, loop: SearchLoop) -> bool | Failure:
        """One schedule: True when complete, False when cut short (every choice skipped), or the Failure."""
        depth = self._resume(loop)
        world, scheduler = self.world, self.scheduler
        assert world is not None and scheduler is not None
        steps = [n.step for n in self.stack[:depth] if n.step is not None]
        if depth < len(self.stack):
            here = self.stack[depth]
            last_op, preemptions, faulted = here.last_op, here.preemptions, here.faulted
        else:
            last_op, preemptions, faulted = None, 0, False
        while True:
            loop.run_ready()  # every operation is now blocked at a store call, or done
            # A state met in an earlier run was checked in that run.
            violations = world.check(faulted) if depth >= len(self.stack) else []
            if violations:
                return Failure(self.scenario.name, violations, steps, world.op_names, _outcomes(world))
            pending = sorted(scheduler.pending.values(), key=lambda p: p.key)
            if depth >= len(self.stack) > 0 and self.sleep_sets:
                parent = self.stack[depth - 1]
                assert parent.chosen is not None
                parent.goes_on[parent.chosen] = any(p.op == parent.chosen.op for p in pending)
            if not pending:
                assert all(t.done() for t in self.main.values()), "a task is blocked outside the store"
                break
            calls = tuple((p.key, p.label) for p in pending)
            if depth < len(self.stack):
                node = self.stack[depth]
                if node.calls != calls:
                    raise AssertionError(f"replay diverged at step {depth + 1}: the code is not deterministic")
            else:
                options = self._options(pending, last_op, faulted)
                node = Node(calls, options, last_op, preemptions, faulted, world.snapshot())
                if depth > 0 and self.sleep_sets:
                    parent = self.stack[depth - 1]
                    node.sleep = self._sleep_below(parent, depth - 1)
                    if self.bound is not None:
                        node.block = self._block_below(parent, depth - 1)
                node.chosen = self._first_allowed(node, depth)
                if node.chosen is None:
                    return False
                self.stack.append(node)
            option = node.chosen
            assert option is not None
            cost = node.costs(option)
            # The first time an option runs at a node: whether it changed what its partitions store.
            measure = self.sleep_sets and option not in node.changed
            writes = option.write and option.fault not in UNSENT
            before = world.stored(option.parts) if measure and writes else None
            granted = scheduler.grant(option)
            if measure:
                loop.run_ready()  # the call acts, and its operation runs on to its next store call
                node.changed[option] = writes and world.stored(option.parts) != before
            node.step = Step(option.op, granted.label, option.fault, cost > 0)
            steps.append(node.step)
            self.path.append(option.op)
            world.on_step(node.step)
            preemptions += cost
            faulted = faulted or option.fault is not None
            last_op = option.op
            depth += 1
        scheduler.free = True
        violations = loop.run_until_complete(world.at_end(faulted))
        if violations:
            return Failure(self.scenario.name, violations, steps, world.op_names, _outcomes(world))
        return True


def _preemptions(last: int | None, last_runs: bool, ops: list[int], then: int | None, future: set[int]) -> int:
    """The preemptions of a run of steps (their operations, in order) after a step of `last`, followed by a step of
    `then` (None: the schedule ends); `future`: the operations that still have steps after the run."""
    count = 0
    prev, prev_runs = last, last_runs
    for i, op in enumerate(ops):
        if prev is not None and prev != op and prev_runs:
            count += 1
        prev, prev_runs = op, op in ops[i + 1 :] or op in future
    if then is not None and prev != then and prev_runs:
        count += 1
    return count


def _outcomes(world: World) -> dict[int, Any]:
    return dict(getattr(world, "outcomes", {}))


async def _operation(world: World, i: int, coroutine: Coroutine[Any, Any, Any]) -> None:
    try:
        outcome = await coroutine
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # noqa: BLE001 - every outcome is judged by the world
        outcome = error
    world.on_done(i, outcome)
