"""A move's in-between states, each made to happen on purpose, on real Cassandra; and a randomised run of moves,
cancels, renews and reserves with pauses at every step of a move, over three instances with skewed clocks and a
repair beside them.

The issue: "A move is three lightweight transactions on two locks, and its in-between states are not states of
anything." Each case test below makes one of its four reproductions happen. They assert only what readers can see
(an acknowledged cancel stays cancelled in every listing and lock, no book is in two readers' lists, the lock and
the views tell the same book), never how a move gets there, so they hold for any correct design of the move. The
helpers (instances, pauses, failing batches, the consistency check) are those of test_interleavings.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from cassandra.query import BatchStatement
from test_interleavings import Pause, assert_consistent, books, fail_batches, instance, readers

from app.db import OutcomeUnknown
from app.models import Conflict, DatabaseUnavailable, NotFound, Reservation, User, reservation_id_for
from app.repository import Library

# Every named step of a move, in the order a move reaches them (today's code has only the second and the third).
MOVE_STEPS = ("move.hinted", "move.target_taken", "move.source_released", "move.confirmed", "move.views_written")
# What a paused or failed move may end in; the invariants, not the move's answer, are the verdict.
MOVE_ENDS = (Reservation, Conflict, NotFound, DatabaseUnavailable)


async def outcome(call: Awaitable[Any]) -> Any:
    """The call's result, or the library error it raised (anything else, a hang of a minute too, propagates)."""
    try:
        return await asyncio.wait_for(call, 60)
    except (Conflict, NotFound, DatabaseUnavailable) as error:
        return error


def statement_texts(library: Library, statement: Any) -> list[str]:
    """The CQL of a statement as `Database.execute` receives it; of a batch, that of each statement in it (a bound
    statement added to a batch keeps only its prepared id, which the driver's registry of prepared statements maps
    back to its text)."""
    if isinstance(statement, BatchStatement):
        registry = library.db.cluster._prepared_statements
        texts = []
        for is_prepared, added, _params in statement._statements_and_parameters:
            prepared = registry.get(added) if is_prepared else None
            texts.append(prepared.query_string if prepared is not None else str(added))
        return texts
    return [getattr(getattr(statement, "prepared_statement", None), "query_string", None) or str(statement)]


_SETS_MOVING_TO = re.compile(r"^\s*(UPDATE|INSERT\s+INTO)\s+\S*\breservations\b.*\bmoving_to\b", re.I | re.S)


def sets_moving_to(cql: str) -> bool:
    """A write of the `reservations` table that sets `moving_to` (the move's mark of where it is going)."""
    return bool(_SETS_MOVING_TO.search(cql))


def lose_answer(
    monkeypatch: pytest.MonkeyPatch, library: Library, matches: Callable[[str], bool], *, applied: bool
) -> list[str]:
    """The first statement of `library` whose CQL (or one of whose batch's statements) `matches` gets no answer:
    OutcomeUnknown, after really applying it if `applied`. Returns the CQL of the statement hit, once it is."""
    real = library.db.execute
    hit: list[str] = []

    async def execute(statement: Any, *args: Any, **kwargs: Any) -> Any:
        texts = statement_texts(library, statement)
        if not hit and any(matches(text) for text in texts):
            hit.extend(texts)
            if applied:
                await real(statement, *args, **kwargs)
            raise OutcomeUnknown("injected: the write timed out, its answer was lost")
        return await real(statement, *args, **kwargs)

    monkeypatch.setattr(library.db, "execute", execute)
    return hit


@contextlib.asynccontextmanager
async def move_paused_at(
    mover: Library, step: str, r: Reservation, to: uuid.UUID
) -> AsyncIterator[asyncio.Task[Reservation]]:
    """The move of `r` to `to` on `mover`, held at `step` for the body of the block; released (and waited for) when
    the block ends, whichever way it ends."""
    pause = Pause(mover, step)
    task = asyncio.create_task(mover.move(r.reservation_id, r.user_id, to))
    reached = asyncio.create_task(pause.reached.wait())
    try:
        await asyncio.wait([task, reached], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not pause.reached.is_set():
            raise AssertionError(f"the move never reached {step}: {await outcome(task)!r}")
        yield task
    finally:
        pause.go.set()
        reached.cancel()
        await asyncio.wait([task], timeout=60)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the block's caller reads the outcome, or has failed already


def named(shelf: dict[uuid.UUID, str]) -> Callable[[uuid.UUID | None], str]:
    return lambda book_id: shelf.get(book_id, str(book_id)) if book_id is not None else "no book"


async def listed(library: Library, user_id: int) -> list[Reservation]:
    return (await library.user_reservations(user_id, page_size=200)).items


async def assert_gone(
    library: Library,
    r: Reservation,
    book_ids: list[uuid.UUID],
    *,
    when: str,
    locks: bool = True,
    name: Callable[[uuid.UUID | None], str] = str,
) -> None:
    """What an acknowledged cancel of `r` promises: GET is 404, the reader's list and every book's list leave it out,
    and (with `locks`) no lock of these books holds it."""
    rid = r.reservation_id
    with contextlib.suppress(NotFound):
        found = await library.get_reservation(rid)
        raise AssertionError(f"{when}: GET of the cancelled reservation answers it, on {name(found.book_id)}")
    mine = [name(x.book_id) for x in await listed(library, r.user_id) if x.reservation_id == rid]
    assert not mine, f"{when}: the reader's list shows the cancelled reservation again, on {mine}"
    for book_id in book_ids:
        on_book = [x for x in await library.book_reservations(book_id) if x.reservation_id == rid]
        assert not on_book, f"{when}: book {name(book_id)}'s list shows the cancelled reservation"
    if locks:
        for book_id in book_ids:
            held = await library.holder(book_id, serial=True)
            assert held is None or held.reservation_id != rid, (
                f"{when}: book {name(book_id)}'s lock still holds the cancelled reservation"
            )


async def assert_no_book_in_two_lists(
    library: Library,
    users: list[User],
    book_ids: list[uuid.UUID],
    *,
    when: str,
    name: Callable[[uuid.UUID | None], str] = str,
) -> None:
    lists = {u.user_id: {x.book_id for x in await listed(library, u.user_id)} for u in users}
    for book_id in book_ids:
        whose = [user_id for user_id, theirs in lists.items() if book_id in theirs]
        assert len(whose) <= 1, f"{when}: book {name(book_id)} is in the lists of readers {whose}"


async def take_freed_book(
    library: Library, taker: Library, book_id: uuid.UUID, candidates: list[User]
) -> Reservation | None:
    """Whoever of `candidates` does not hold `book_id` yet reserves it, if no reservation holds it: a free book must
    be reservable. Returns the reservation made, or None if the book was held (by someone else than the canceller)."""
    if await library.holder(book_id, serial=True) is not None:
        return None
    holders = {x.user_id for x in await library.book_reservations(book_id)}
    taker_user = next(u for u in candidates if u.user_id not in holders)
    got = await outcome(taker.reserve(book_id, taker_user.user_id))
    assert isinstance(got, Reservation), f"a book no reservation holds was refused to another reader: {got!r}"
    return got


# -- 1 and 2: a cancel while a move has taken its target but not yet given up its source ---------------------------
async def _cancel_during_a_move(library: Library, mend: Callable[[Library, User, uuid.UUID], Awaitable[Any]]) -> None:
    x, y = (b.book_id for b in await books(library, 2))
    name = named({x: "X", y: "Y"})
    owner, other, third = await readers(library, 3)
    both = [x, y]
    r = await library.reserve(x, owner.user_id)
    mover, settled = instance(library), instance(library, settle_after=0)  # for `settled`, every lock is old
    async with move_paused_at(mover, "move.target_taken", r, y) as moving:
        await library.cancel(r.reservation_id, owner.user_id)  # 204
        await assert_gone(library, r, both, when="at the cancel's answer", locks=False, name=name)
        await asyncio.sleep(0.05)  # both locks are now older than `settled`'s settle time
        await mend(settled, other, y)
        await assert_gone(
            library, r, both, when="after the heal or repair, the move still paused", locks=False, name=name
        )
    moved = await outcome(moving)
    assert isinstance(moved, MOVE_ENDS), moved
    await assert_gone(library, r, both, when=f"after the paused move ended ({moved!r})", name=name)
    await take_freed_book(library, settled, y, [other, third])
    await assert_no_book_in_two_lists(library, [owner, other, third], both, when="after Y was taken again", name=name)
    await settled.audit(repair=True)
    await assert_gone(library, r, both, when="after a repair pass", name=name)
    await assert_no_book_in_two_lists(library, [owner, other, third], both, when="after a repair pass", name=name)
    await assert_consistent(library, both)


async def test_1_a_cancel_during_a_move_is_not_undone_by_the_heal_of_its_target(library: Library) -> None:
    """Issue case 1: a move X -> Y paused right after it took Y; the reader cancels (204, list empty). Another
    reader's reserve of Y met Y's lock held by R and healed it: R's views were rebuilt on Y, the reader's list
    showed R again while GET R was 404; the move then failed and released Y without deleting those views, and
    another reader's reserve of Y put Y in two readers' lists."""

    async def heal(settled: Library, other: User, y: uuid.UUID) -> None:
        result = await outcome(settled.reserve(y, other.user_id))
        assert isinstance(result, Reservation | Conflict), result

    await _cancel_during_a_move(library, heal)


async def test_2_a_cancel_during_a_move_is_not_undone_by_a_repair_pass(library: Library) -> None:
    """Issue case 2: as case 1, with `audit(repair=True)` instead of the heal rebuilding R's views on Y."""

    async def repair(settled: Library, _other: User, _y: uuid.UUID) -> None:
        await settled.audit(repair=True)

    await _cancel_during_a_move(library, repair)


# -- 3: the mark of where the move is going gets no answer ----------------------------------------------------------
@pytest.mark.parametrize("applied", [False, True], ids=["not-applied", "applied"])
async def test_3_a_move_whose_moving_to_write_times_out_locks_no_book_for_good(
    library: Library, monkeypatch: pytest.MonkeyPatch, applied: bool
) -> None:
    """Issue case 3: the write setting `moving_to` timed out (OutcomeUnknown) after the move had taken Y; the reader
    cancelled R and X was freed, but Y stayed held by R forever: every reserve of Y was a Conflict, and every heal
    and repair pass rebuilt R into the reader's list. Wherever a design writes `moving_to`, its first write here
    gets no answer (`applied`: it was applied nonetheless)."""
    x, y = (b.book_id for b in await books(library, 2))
    name = named({x: "X", y: "Y"})
    owner, other = await readers(library, 2)
    both = [x, y]
    r = await library.reserve(x, owner.user_id)
    mover = instance(library)
    hit = lose_answer(monkeypatch, mover, sets_moving_to, applied=applied)
    moved = await outcome(mover.move(r.reservation_id, owner.user_id, y))
    monkeypatch.undo()
    assert hit, f"the move wrote no moving_to: {moved!r}"
    assert isinstance(moved, MOVE_ENDS), moved

    await library.cancel(r.reservation_id, owner.user_id)  # 204
    await assert_gone(library, r, both, when="at the cancel's answer", locks=False, name=name)
    settled = instance(library, settle_after=0)
    await asyncio.sleep(0.05)
    taken = await outcome(settled.reserve(y, other.user_id))  # a Conflict heals what holds Y
    assert isinstance(taken, Reservation | Conflict), taken
    await assert_gone(
        library, r, both, when="after another reader's reserve of Y (and its heal)", locks=False, name=name
    )
    if isinstance(taken, Conflict):
        await settled.audit(repair=True)
        await assert_gone(library, r, both, when="after a repair pass", locks=False, name=name)
        taken = await outcome(settled.reserve(y, other.user_id))
        held = await library.holder(y, serial=True)
        assert isinstance(taken, Reservation), (
            f"Y is refused to another reader after the cancel and a repair pass ({taken!r}); its lock holds "
            f"{'the cancelled reservation' if held and held.reservation_id == r.reservation_id else held}"
        )
    await assert_gone(library, r, both, when="after another reader took Y", name=name)
    await assert_no_book_in_two_lists(library, [owner, other], both, when="after another reader took Y", name=name)
    await settled.audit(repair=True)
    await assert_gone(library, r, both, when="after a last repair pass", name=name)
    await assert_consistent(library, both)


# -- 4: the view batch of a move fails ------------------------------------------------------------------------------
async def test_4_a_move_whose_views_fail_leaves_the_lock_and_the_views_on_one_book(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue case 4: the move's view batch failed (DatabaseUnavailable). The lock said R was on b2; GET R and the
    reader's list said b1, and b1 was free: another reader took b1, and b1 was in both readers' lists."""
    b1, b2 = (b.book_id for b in await books(library, 2))
    name = named({b1: "b1", b2: "b2"})
    owner, other = await readers(library, 2)
    both = [b1, b2]
    r = await library.reserve(b1, owner.user_id)
    mover = instance(library)
    failures = fail_batches(monkeypatch, mover)
    moved = await outcome(mover.move(r.reservation_id, owner.user_id, b2))
    monkeypatch.undo()
    assert failures, f"the move wrote no batch: {moved!r}"
    assert isinstance(moved, MOVE_ENDS), moved

    # Another request touches b1: it may get the book (if R is not on it) or a Conflict (if it is).
    settled = instance(library, settle_after=0)
    await asyncio.sleep(0.05)
    taken = await outcome(settled.reserve(b1, other.user_id))
    assert isinstance(taken, Reservation | Conflict), taken
    holding = []
    for book_id in both:
        held = await library.holder(book_id, serial=True)
        if held is not None and held.reservation_id == r.reservation_id:
            holding.append(book_id)
    assert len(holding) <= 1, "the reservation holds both books' locks"
    if holding:
        (where,) = holding
        seen = await outcome(library.get_reservation(r.reservation_id))
        seen_on = seen.book_id if isinstance(seen, Reservation) else seen
        assert seen_on == where, f"the lock says the reservation holds {name(where)}; GET says {name(seen_on)}"
        mine = [name(x.book_id) for x in await listed(library, owner.user_id) if x.reservation_id == r.reservation_id]
        assert mine == [name(where)], f"the lock says the reservation holds {name(where)}; the reader's list {mine}"
    else:  # the move lost the reservation: then nothing may show it
        await assert_gone(library, r, both, when="with no lock holding the reservation", name=name)
    await assert_no_book_in_two_lists(
        library, [owner, other], both, when="after another reader's reserve of b1", name=name
    )
    await settled.audit(repair=True)
    await assert_no_book_in_two_lists(library, [owner, other], both, when="after a repair pass", name=name)
    await assert_consistent(library, both)


# -- a randomised run of everything at once ---------------------------------------------------------------------
SEEDS = [1, 2, 3]
SHELF, READERS = 6, 3
OPERATIONS, TIME_LIMIT = 250, 16.0  # per seed, whichever comes first
SETTLE_AFTER = 0.2
MOST_PAUSE = 0.3


class Run:
    """One seed's run: its instances, its shelf and readers, and the history the readers saw."""

    def __init__(self, library: Library, seed: int, shelf: list[uuid.UUID], people: list[User]) -> None:
        self.library, self.seed, self.shelf, self.people = library, seed, shelf, people
        self.name = named({b: f"b{i}" for i, b in enumerate(shelf)})
        self.apps = [instance(library, skew=s, settle_after=SETTLE_AFTER) for s in (0.0, 0.5, -0.5)]
        self.started = time.monotonic()
        self.operations = 0
        self.stop = asyncio.Event()
        self.events: list[str] = []
        # (acknowledged, next request about it sent, book, reservation): the reservation surely held the book then.
        self.holds: list[tuple[float, float, uuid.UUID, uuid.UUID]] = []
        self.cancelled: dict[int, dict[uuid.UUID, Reservation]] = {u.user_id: {} for u in people}
        self.made: dict[int, set[uuid.UUID]] = {u.user_id: set() for u in people}
        self.counts: dict[str, int] = {}
        self.racing: dict[asyncio.Task[Any], asyncio.Queue[str]] = {}  # moves a cancel races: the steps they reach
        for i, app in enumerate(self.apps):
            pauses = random.Random(seed * 100 + 50 + i)
            for step in MOVE_STEPS:
                app.steps[step] = self._pause(pauses)

    def _pause(self, rng: random.Random) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
        async def pause(step: str, _facts: dict[str, Any]) -> None:
            # A move a cancel is waiting to race (found by its task, whatever the step tells): told it is here.
            task = asyncio.current_task()
            steps = self.racing.get(task) if task is not None else None
            if steps is not None:
                await steps.put(step)
            await asyncio.sleep(rng.uniform(0, MOST_PAUSE))

        return pause

    def note(self, who: int, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:7.3f} reader {who}: {what}")

    def said(self, result: Any) -> str:
        if isinstance(result, Reservation):
            return f"{result.reservation_id} on {self.name(result.book_id)}"
        return f"{type(result).__name__}: {result}"

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def more(self) -> bool:
        self.operations += 1
        return not self.stop.is_set() and self.operations <= OPERATIONS and time.monotonic() - self.started < TIME_LIMIT

    async def gone(self, r: Reservation, *, when: str, locks: bool = True) -> None:
        await assert_gone(self.library, r, self.shelf, when=when, locks=locks, name=self.name)
        listed_now = {x.reservation_id for x in await listed(self.library, r.user_id)}
        again = listed_now & self.cancelled[r.user_id].keys()
        assert not again, f"{when}: the reader's list shows reservations cancelled earlier: {again}"

    async def cancel(self, via: Library, r: Reservation) -> str:
        """A careful client's cancel: asked again while the answer is unknown. 'acked', '404' or 'unknown'."""
        for attempt in range(5):
            result = await outcome(via.cancel(r.reservation_id, r.user_id))
            if result is None:
                return "acked"
            if isinstance(result, NotFound):
                return "acked" if attempt else "404"  # after an unknown answer: that attempt had cancelled it
            await asyncio.sleep(0.2)
        return "unknown"

    async def reserve(self, via: Library, book_id: uuid.UUID, user_id: int, key: str) -> Reservation | None:
        self.made[user_id].add(reservation_id_for(user_id, book_id, key))
        for _ in range(5):
            result = await outcome(via.reserve(book_id, user_id, key))
            if isinstance(result, Reservation):
                return result
            if isinstance(result, Conflict | NotFound):
                return None
            await asyncio.sleep(0.2)  # unknown: the key tells on the next try
        return None

    async def reader(self, k: int, user: User) -> None:
        rng = random.Random(self.seed * 100 + k)
        who = user.user_id
        mine: Reservation | None = None
        sure: float | None = None  # since when `mine` is certain (acknowledged)

        def sent() -> None:  # a request about `mine` is sent: its certain hold ends
            nonlocal sure
            if mine is not None and sure is not None:
                self.holds.append((sure, time.monotonic(), mine.book_id, mine.reservation_id))
            sure = None

        for n in itertools.count():
            if not self.more():
                break
            via = rng.choice(self.apps)
            if mine is None:
                book_id = rng.choice(self.shelf)
                mine = await self.reserve(via, book_id, who, f"seed{self.seed}-{n}")
                sure = time.monotonic() if mine is not None else None
                self.note(who, f"reserve {self.name(book_id)} -> {self.said(mine) if mine else 'refused'}")
                continue
            roll = rng.random()
            target = rng.choice([b for b in self.shelf if b != mine.book_id])
            if roll < 0.5:
                renew = roll < 0.12
                was_sure = sure is not None
                sent()
                result = await outcome(via.move(mine.reservation_id, who, None if renew else target))
                what = "renew" if renew else f"move {self.name(mine.book_id)} -> {self.name(target)}"
                self.note(who, f"{what} of {mine.reservation_id} -> {self.said(result)}")
                self.count(f"{what.split()[0]} {type(result).__name__}")
                if isinstance(result, Reservation):
                    mine, sure = result, time.monotonic()
                elif isinstance(result, Conflict):
                    sure = time.monotonic() if was_sure else None  # not moved: as it was
                elif isinstance(result, NotFound):
                    mine = None
                else:  # unknown: a careful client asks where it is
                    found = await outcome(self.library.get_reservation(mine.reservation_id))
                    mine = found if isinstance(found, Reservation) else None
            elif roll < 0.75:
                sent()
                said = await self.cancel(via, mine)
                self.note(who, f"cancel {mine.reservation_id} on {self.name(mine.book_id)} -> {said}")
                self.count(f"cancel {said}")
                if said == "acked":
                    self.cancelled[who][mine.reservation_id] = mine
                    await self.gone(mine, when="right after a cancel")
                mine = None
            else:  # the reader cancels while their own move is at work
                sent()
                moving = asyncio.create_task(via.move(mine.reservation_id, who, target))
                try:
                    mine = await self._cancel_during(moving, mine, target, rng)
                finally:  # waited for, whatever happens (a failed check included)
                    await asyncio.wait([moving], timeout=60)
                    if moving.done() and not moving.cancelled():
                        moving.exception()
            await asyncio.sleep(rng.uniform(0, 0.02))
        sent()

    async def _cancel_during(
        self, moving: asyncio.Task[Reservation], mine: Reservation, target: uuid.UUID, rng: random.Random
    ) -> Reservation | None:
        """The reader's cancel of `mine`, sent while `moving` (its move to `target`) is paused at the first or the
        second step it reaches (or once it has ended, if it reaches fewer); returns the reader's reservation after
        both."""
        who = mine.user_id
        steps: asyncio.Queue[str] = self.racing.setdefault(moving, asyncio.Queue())
        at = "the end"
        for _ in range(rng.choice((1, 2))):
            reached = asyncio.create_task(steps.get())
            await asyncio.wait([moving, reached], return_when=asyncio.FIRST_COMPLETED)
            if not reached.done():
                reached.cancel()
                at = "the end"
                break
            at = reached.result()
        del self.racing[moving]
        await asyncio.sleep(rng.uniform(0, 0.05))
        said = await self.cancel(rng.choice(self.apps), mine)
        what = f"cancel {mine.reservation_id} at {at} of its move {self.name(mine.book_id)} -> {self.name(target)}"
        self.note(who, f"{what} -> {said}")
        self.count(f"cancel-during-move {said}")
        if said == "acked":
            self.cancelled[who][mine.reservation_id] = mine
            await self.gone(mine, when="right after a cancel during a move", locks=False)
        moved = await outcome(moving)
        self.note(who, f"  the move it raced -> {self.said(moved)}")
        assert isinstance(moved, MOVE_ENDS), moved
        if said == "acked":
            await self.gone(mine, when=f"after the move a cancel raced ended ({self.said(moved)})")
            return None
        return moved if isinstance(moved, Reservation) else None  # refused or unanswered: where the move left it

    async def repairing(self) -> int:
        passes = 0
        while not self.stop.is_set():
            with contextlib.suppress(DatabaseUnavailable):
                await self.apps[0].audit(repair=True)
                passes += 1
            await asyncio.sleep(0.2)
        return passes

    def two_sure_holders(self) -> list[str]:
        by_book: dict[uuid.UUID, list[tuple[float, float, uuid.UUID]]] = {}
        for start, end, book_id, rid in self.holds:
            by_book.setdefault(book_id, []).append((start, end, rid))
        found = []
        for book_id, spans in by_book.items():
            for (s1, e1, r1), (s2, e2, r2) in itertools.combinations(spans, 2):
                if r1 != r2 and s1 < e2 and s2 < e1:
                    found.append(f"book {self.name(book_id)}: {r1} over {s1:.3f}-{e1:.3f}, {r2} over {s2:.3f}-{e2:.3f}")
        return found


async def _play(run: Run) -> None:
    repairer = asyncio.create_task(run.repairing())

    async def reader(k: int, user: User) -> None:
        try:
            await run.reader(k, user)
        finally:
            run.stop.set()  # one reader's failure ends the run

    results = await asyncio.gather(*(reader(k, u) for k, u in enumerate(run.people)), return_exceptions=True)
    run.stop.set()
    passes = await repairer
    for result in results:
        if isinstance(result, BaseException):
            raise result
    print(f"\nseed {run.seed}: {run.operations} operations, {passes} repair passes beside them")
    print(f"seed {run.seed}: outcomes {sorted(run.counts.items())}")

    two = run.two_sure_holders()
    assert not two, f"two readers surely held one book at the same time: {two}"
    library, shelf = run.library, run.shelf
    last = instance(library, settle_after=0)
    await last.audit(repair=True)
    await assert_consistent(library, shelf)
    for cancelled in run.cancelled.values():
        for r in cancelled.values():
            await run.gone(r, when="at the end, after a repair pass")
    # Every reservation ever made is cancelled by its reader: then no book may stay held, nor any list show one.
    for user_id, ids in run.made.items():
        for rid in ids - run.cancelled[user_id].keys():
            with contextlib.suppress(NotFound):
                await library.cancel(rid, user_id)
    await last.audit(repair=True)
    for book_id in shelf:
        held = await library.holder(book_id, serial=True)
        assert held is None, f"book {run.name(book_id)} stays held by {held} after every reservation was cancelled"
    for user in run.people:
        left = await listed(library, user.user_id)
        assert left == [], f"reader {user.user_id}'s list after every reservation was cancelled: {left}"
    await assert_consistent(library, shelf)


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_moves_cancels_renews_and_reserves_with_pauses_and_repair(library: Library, seed: int) -> None:
    """A few hundred random operations by three readers on six books through three instances (clocks 0, +0.5 and
    -0.5 s; settle time 0.2 s), every step of every move paused 0-0.3 s at random, repair every 0.2 s beside them,
    and now and then a reader's cancel sent while their own move is at work. After every acknowledged cancel, nothing
    shows the reservation and no lock holds it; no book ever has two certain holders; at the end, after one repair
    pass, the audit is clean, and once everything is cancelled every book is free and every list empty."""
    run = Run(library, seed, [b.book_id for b in await books(library, SHELF)], await readers(library, READERS))
    try:
        await _play(run)
    except AssertionError as failure:
        print(f"\nseed {seed} failed; the last of its history:\n" + "\n".join(run.events[-60:]))
        raise AssertionError(f"seed {seed}: {failure}") from failure
