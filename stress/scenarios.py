"""The seven stress tests: what each needs, what its clients do, and what it must find at the end.

Each test is bounded twice: by its request count (from --size) and by the run's deadline. Test-specific
checks come on top of the checks every test gets (stress/history.py and the audit).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from app.repository import Library
from stress.client import Client, History, Op
from stress.history import FinalState
from toolkit.cli import run_bounded
from toolkit.stats import percentile

# Test 2: the share of each request kind while a reader holds something, and the most one reader holds.
MIX = (("reserve", 25), ("cancel", 25), ("move", 20), ("renew", 5), ("read_user", 10), ("read_book", 10), ("books", 5))
# Through the earlier system's endpoints (`Context.legacy`), which have no move and no listing by reader or book:
# their shares go to renewing (its update) and to the books page.
MIX_LEGACY = (("reserve", 25), ("cancel", 25), ("renew", 25), ("books", 25))
MAX_HELD = 3
# The tests the earlier system's endpoints can run (--legacy, the naive peer): 6 and 7 need the queue, which it lacks.
LEGACY_TESTS = (1, 2, 3, 4, 5)
# The units of the tests that advance their progress themselves (`Context.tick`), not one request at a time.
SELF_COUNTED = ("cycles", "turns", "joins")
# Test 4: attempts allowed per completed cycle before the test gives up (losing races is expected, often).
ATTEMPTS_PER_CYCLE = 50


@dataclass
class Context:
    size: int
    workers: int
    seed: int
    client: Client
    history: History
    library: Library
    books: list[UUID]
    users: list[int]
    deadline: float  # on the history's clock
    issued: int = 0
    cut_short: bool = False
    notes: list[str] = field(default_factory=list)
    # Test 5: each reservation's book before the run.
    start_book: dict[UUID, UUID] = field(default_factory=dict)
    cycles: Counter[int] = field(default_factory=Counter)
    tick: Callable[[], None] = lambda: None  # advances the progress bar, for tests counted in cycles
    # The client speaks the earlier system's endpoints (stress.client.LegacyClient): no move, and no listing but
    # every reservation, so the tests ask only what those endpoints can answer.
    legacy: bool = False
    # Tests 6 and 7: each reader's holds through the queue, as they saw them.
    turns: list[Any] = field(default_factory=list)

    def take(self, limit: int | None = None) -> bool:
        """Claims one more request of the test's budget; False once it is spent or time is up."""
        if self.history.now() >= self.deadline:
            self.cut_short = True
            return False
        if self.issued >= (self.size if limit is None else limit):
            return False
        self.issued += 1
        return True

    def rng(self, stream: str) -> random.Random:
        return random.Random(f"{self.seed}/{stream}")


@dataclass(frozen=True)
class Test:
    number: int
    title: str
    books: Callable[[int, int], int]  # (size, workers) -> books to create
    users: Callable[[int, int], int]
    total: Callable[[int], int]  # the progress bar's unit count
    unit: str
    run: Callable[[Context], Awaitable[None]]
    check: Callable[[Context, FinalState], list[str]]
    # What the app's copies need to run this test (`--instances`): test 7's short pickup window.
    app_env: dict[str, str] = field(default_factory=dict)


# -- 1: one reader, the same reservation, many times at once ---------------------------------------
async def run_same(ctx: Context) -> None:
    book, user = ctx.books[0], ctx.users[0]

    async def one(_: int) -> None:
        if ctx.take():
            await ctx.client.reserve(user, book)

    await run_bounded(range(ctx.size), one, ctx.workers)


def check_same(ctx: Context, final: FinalState) -> list[str]:
    book = ctx.books[0]
    acknowledged = {op.reservation_id for op in _final_ops(ctx.history, "reserve") if op.outcome == "ok"}
    present = [r for r, b in final.rows.items() if b == book]
    violations = []
    if len(acknowledged) > 1:
        violations.append(f"{len(acknowledged)} different reservations of book {book} were acknowledged")
    if len(present) != 1:
        violations.append(f"{len(present)} reservations of book {book} exist at the end, not exactly one")
    elif acknowledged and present[0] not in acknowledged:
        violations.append(f"the reservation left ({present[0]}) is not the one acknowledged")
    ctx.notes.append(f"acknowledged {len(acknowledged)}, present at the end {len(present)}")
    return violations


# -- 2: many readers, random requests over a small catalogue ----------------------------------------
async def run_random(ctx: Context) -> None:
    async def reader(index: int) -> None:
        user, rng = ctx.users[index], ctx.rng(f"reader {index}")
        held: dict[UUID, UUID] = {}  # what this reader believes it holds: reservation -> book
        while ctx.take():
            kind = "reserve" if not held else _weighted(rng, MIX_LEGACY if ctx.legacy else MIX)
            if kind == "reserve" and len(held) >= MAX_HELD:
                kind = "cancel"
            if kind == "reserve":
                op = await ctx.client.reserve(user, rng.choice(ctx.books))
                if op.outcome == "ok" and op.reservation_id and op.result_book:
                    held[op.reservation_id] = op.result_book
            elif kind in ("cancel", "move", "renew"):
                reservation_id = rng.choice(sorted(held))
                if kind == "cancel":
                    op = await ctx.client.cancel(reservation_id, user)
                elif kind == "move":
                    op = await ctx.client.move(reservation_id, user, rng.choice(ctx.books))
                else:
                    op = await ctx.client.renew(reservation_id, user)
                if op.result_book:
                    held[reservation_id] = op.result_book
                elif kind == "cancel" or op.status == 404:
                    held.pop(reservation_id, None)
            elif kind == "read_user":
                op = await ctx.client.user_reservations(user)
                if op.seen is not None and op.complete:
                    held = dict(op.seen)  # the server's word replaces what a lost answer left uncertain
            elif kind == "read_book":
                await ctx.client.book_reservations(rng.choice(ctx.books))
            else:
                await ctx.client.list_books()

    await asyncio.gather(*(reader(i) for i in range(len(ctx.users))))


def check_random(ctx: Context, final: FinalState) -> list[str]:
    kinds = Counter(op.kind for op in ctx.history.ops)
    ctx.notes.append("requests by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    ctx.notes.append(f"reservations present at the end: {len(final.rows)} on {len(ctx.books)} books")
    return []


# -- 3: two readers race for every book --------------------------------------------------------------
async def run_race(ctx: Context) -> None:
    per_reader = max(1, ctx.workers // 2)

    async def reader(index: int) -> None:
        order = list(ctx.books)
        ctx.rng(f"race order {index}").shuffle(order)
        user = ctx.users[index]

        async def one(book: UUID) -> None:
            if ctx.take(2 * ctx.size):
                await ctx.client.reserve(user, book)

        await run_bounded(order, one, per_reader)

    await asyncio.gather(reader(0), reader(1))


def check_race(ctx: Context, final: FinalState) -> list[str]:
    violations = []
    owner = {op.reservation_id: op.user_id for op in ctx.history.ops if op.reservation_id}
    per_book = Counter(final.rows.values())
    for book in ctx.books:
        if per_book[book] != 1:
            violations.append(f"book {book} has {per_book[book]} reservations at the end, not exactly one")
        elif (holder := final.locks.get(book)) is None or owner.get(holder) not in ctx.users[:2]:
            violations.append(f"book {book} is not locked by either reader's reservation")
    in_db = Counter(owner.get(r) for r in final.rows)
    acked = Counter(op.user_id for op in _final_ops(ctx.history, "reserve") if op.outcome == "ok")
    a, b = ctx.users[0], ctx.users[1]
    if in_db[a] + in_db[b] != ctx.size:
        violations.append(f"the two readers hold {in_db[a]} + {in_db[b]} books, not {ctx.size}")
    if acked[a] + acked[b] > ctx.size:
        violations.append(f"{acked[a]} + {acked[b]} reservations were acknowledged for {ctx.size} books")
    ctx.notes.append(
        f"split: reader A {in_db[a]}, reader B {in_db[b]} (acknowledged {acked[a]} + {acked[b]} = "
        f"{acked[a] + acked[b]} of {ctx.size})"
    )
    return violations


# -- 4: two readers cancel and re-reserve one book -----------------------------------------------------
async def run_cycles(ctx: Context) -> None:
    book = ctx.books[0]
    budget = ctx.size * ATTEMPTS_PER_CYCLE

    async def release_what_i_hold(user: int) -> None:
        # After a lost answer this reader may hold the book without knowing it; the other would wait forever.
        read = await ctx.client.user_reservations(user)
        for reservation_id, held_book in read.seen or []:
            if held_book == book:
                await ctx.client.cancel(reservation_id, user)

    async def reader(index: int) -> None:
        user, rng = ctx.users[index], ctx.rng(f"cycler {index}")
        while sum(ctx.cycles.values()) < ctx.size and ctx.take(budget):
            op = await ctx.client.reserve(user, book)
            if op.outcome == "conflict":
                await asyncio.sleep(rng.uniform(0, 0.005))
                continue
            if op.outcome != "ok" or op.reservation_id is None:
                await release_what_i_hold(user)
                continue
            if not ctx.legacy:  # (there, a listing is of every reservation: a cost the earlier tests never paid)
                await ctx.client.book_reservations(book)  # while held, the book must list exactly this reservation
            cancel = await ctx.client.cancel(op.reservation_id, user)
            if cancel.outcome == "ok":
                ctx.cycles[user] += 1
                ctx.tick()
            else:
                await release_what_i_hold(user)

    await asyncio.gather(reader(0), reader(1))
    if sum(ctx.cycles.values()) < ctx.size and not ctx.cut_short:
        ctx.cut_short = True


def check_cycles(ctx: Context, final: FinalState) -> list[str]:
    done = sum(ctx.cycles.values())
    a, b = ctx.users[0], ctx.users[1]
    conflicts = sum(1 for op in ctx.history.ops if op.kind == "reserve" and op.outcome == "conflict")
    ctx.notes.append(f"cycles: reader A {ctx.cycles[a]}, reader B {ctx.cycles[b]}; lost races {conflicts}")
    if done < ctx.size:
        return [f"only {done} of {ctx.size} reserve-cancel cycles completed"]
    return []


# -- 5: many reservations changed at once ------------------------------------------------------------
async def prepare_changes(ctx: Context) -> None:
    """`size` reservations on the first half of the books, made through the API before the run (the app assigns
    the ids); they enter the history as attempts before the run, so the checker knows where each one starts."""

    async def make(i: int) -> None:
        user, book = ctx.users[i % len(ctx.users)], ctx.books[i]
        op = await ctx.client.reserve(user, book)
        if op.outcome != "ok" or op.reservation_id is None:
            raise RuntimeError(f"could not make the reservations to change: {op.status} {op.error or op.message}")
        ctx.start_book[op.reservation_id] = book

    await run_bounded(range(ctx.size), make, 32)
    for op in ctx.history.ops:
        op.attempt = 0  # not part of the run's figures


async def run_changes(ctx: Context) -> None:
    rng = ctx.rng("changes")
    owner = {op.reservation_id: op.user_id for op in ctx.history.ops}
    plan = []
    for reservation_id in sorted(ctx.start_book):
        target = rng.choice(ctx.books)
        while target == ctx.start_book[reservation_id]:
            target = rng.choice(ctx.books)
        plan.append((reservation_id, target))
    rng.shuffle(plan)

    async def change(item: tuple[UUID, UUID]) -> None:
        reservation_id, target = item
        user = owner[reservation_id]
        if user is not None and ctx.take():
            if ctx.legacy:  # the earlier system's change was its update: the reservation renewed where it is
                await ctx.client.renew(reservation_id, user)
            else:
                await ctx.client.move(reservation_id, user, target)

    await run_bounded(plan, change, ctx.workers)


def check_changes(ctx: Context, final: FinalState) -> list[str]:
    violations = []
    last = {op.reservation_id: op for op in _final_ops(ctx.history, "renew" if ctx.legacy else "move")}
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for reservation_id, before in ctx.start_book.items():
        now = final.rows.get(reservation_id)
        if now is None:
            violations.append(f"reservation {reservation_id} (on book {before} before the run) was lost")
            continue
        op = last.get(reservation_id)
        if op is None:
            outcomes["not sent"] += 1
            continue
        outcomes[op.outcome] += 1
        if op.outcome in ("conflict", "refused"):
            if not op.message:
                violations.append(f"the change of {reservation_id} was refused ({op.status}) without a reason")
            reasons[_reason(op.message or "")] += 1
        elif op.outcome == "error" and now not in (before, op.book_id):
            violations.append(
                f"reservation {reservation_id}, changed without a definite answer, is on book {now}, "
                f"neither its old book {before} nor the new {op.book_id}"
            )
    ctx.notes.append(
        f"changes: applied {outcomes['ok']}, refused {outcomes['conflict'] + outcomes['refused']}, "
        f"no definite answer {outcomes['error']}, not sent {outcomes['not sent']}; "
        f"{len([r for r in ctx.start_book if r in final.rows])} of {len(ctx.start_book)} reservations present"
    )
    if reasons:
        ctx.notes.append("reasons given: " + "; ".join(f"{n}x {text}" for text, n in reasons.most_common(3)))
    return violations


# -- 6 and 7: queues ------------------------------------------------------------------------------------------
# How often a reader waiting in a queue looks whether the book has come (seconds, at random within): well under the
# pickup window of test 7, so no hold comes and goes unseen.
POLL = (0.05, 0.15)
NEITHER_FOR = 1.0
# Test 7: the pickup window and sweep the app's copies run with (Test.app_env), and the longest window the test
# accepts from an app it did not start.
EXPIRY_ENV = {"HOLD_PICKUP_SECONDS": "2", "HOLD_SWEEP_SECONDS": "0.5"}
LONGEST_WINDOW = 10.0


@dataclass
class Turn:
    """One reader's hold of one book through the queue, as that reader saw it: when the join was sent and answered,
    the bounds of when the book came to them (after `came_after`, the last look that did not show it, and before
    `came_by`, the first that did), and, for test 6, when they sent its cancel."""

    book: UUID
    user: int
    reservation_id: UUID
    joined_sent: float
    joined_received: float
    queued: bool  # False: the book was free, and the join reserved it
    came_after: float = 0.0
    came_by: float | None = None
    gone_by: float | None = None  # test 7: the first look that no longer showed the hold (it expired)
    cancel_sent: float | None = None
    left_queue: bool = False  # no longer in the queue, and not holding the book either (for NEITHER_FOR)
    neither_since: float | None = None  # when a look first saw neither the place nor the hold


async def _join(ctx: Context, user: int, book: UUID) -> Turn | None:
    op = await ctx.client.join(user, book)
    if op.outcome == "conflict":  # waits or holds already, perhaps by an attempt whose answer was lost: look
        places = await ctx.client.places(user)
        found = [r for r, b in places.seen or [] if b == book]
        if not found:
            return None
        return Turn(book, user, found[0], op.sent, places.received, True)
    if op.outcome != "ok" or op.result_id is None:
        return None
    return Turn(book, user, op.result_id, op.sent, op.received, op.joined == "waiting")


async def _look(
    ctx: Context, user: int, turns: list[Turn], *, until_gone: bool, joining: asyncio.Event | None = None
) -> None:
    """Polls the reader's places and reservations (two reads a look, for all of `turns` at once) until each book has
    come to them (test 6), or has come and its hold has ended (test 7, `until_gone`), or the run's time is up.
    `joining`: set once the reader has joined all it will (`turns` grows until then, and is looked at meanwhile: a
    hold of a book joined early may come and go while the reader still joins others)."""
    rng = ctx.rng(f"look {user}")

    def done(turn: Turn) -> bool:
        if until_gone:
            return turn.gone_by is not None or (turn.came_by is None and turn.left_queue)
        return turn.came_by is not None

    def finished() -> bool:
        return (joining is None or joining.is_set()) and all(done(t) for t in turns)

    while ctx.history.now() < ctx.deadline and not finished():
        places, held = await asyncio.gather(ctx.client.places(user), ctx.client.user_reservations(user))
        if places.outcome == "ok" and held.outcome == "ok":
            for turn in turns:
                waiting = (turn.reservation_id, turn.book) in (places.seen or [])
                holding = (turn.reservation_id, turn.book) in (held.seen or [])
                # A hand-off takes the reader out of the queue, then writes the views that list the hold: a look in
                # between sees neither. Only a look that sees neither for longer (NEITHER_FOR) says the reader left
                # the queue without the book.
                if waiting or holding:
                    turn.neither_since = None
                elif turn.neither_since is None:
                    turn.neither_since = min(places.sent, held.sent)
                elif max(places.received, held.received) - turn.neither_since > NEITHER_FOR:
                    turn.left_queue = True
                if holding and turn.came_by is None:
                    turn.came_by = max(places.received, held.received)
                elif not holding and turn.came_by is None:
                    turn.came_after = min(places.sent, held.sent)
                elif not holding and turn.gone_by is None:
                    turn.gone_by = held.received
        await asyncio.sleep(rng.uniform(*POLL))


async def run_queue_churn(ctx: Context) -> None:
    turns: list[Turn] = ctx.turns

    async def reader(index: int) -> None:
        user, rng = ctx.users[index], ctx.rng(f"queuer {index}")
        while ctx.take():
            turn = await _join(ctx, user, rng.choice(ctx.books))
            if turn is None:
                continue
            turns.append(turn)
            if turn.queued:
                await _look(ctx, user, [turn], until_gone=False)
            else:
                turn.came_after, turn.came_by = turn.joined_sent, turn.joined_received
            if turn.came_by is None:
                return  # the run's time is up while waiting
            await asyncio.sleep(rng.uniform(0, 0.02))  # holds it a moment
            turn.cancel_sent = ctx.history.now()
            await ctx.client.cancel(turn.reservation_id, user)
            ctx.tick()

    await asyncio.gather(*(reader(i) for i in range(len(ctx.users))))


async def run_expiry(ctx: Context) -> None:
    turns: list[Turn] = ctx.turns

    async def reader(index: int) -> None:
        user, rng = ctx.users[index], ctx.rng(f"waiter {index}")
        mine: list[Turn] = []
        joined_all = asyncio.Event()
        # nobody collects: every hold comes, waits out its window, and passes on, looked at from the first join on
        looking = asyncio.create_task(_look(ctx, user, mine, until_gone=True, joining=joined_all))
        while ctx.take():
            turn = await _join(ctx, user, rng.choice(ctx.books))
            ctx.tick()
            if turn is not None and all(t.reservation_id != turn.reservation_id for t in mine):
                if not turn.queued:  # reserved at once: it came with the answer
                    turn.came_after, turn.came_by = turn.joined_sent, turn.joined_received
                mine.append(turn)
                turns.append(turn)
        joined_all.set()
        await looking

    await asyncio.gather(*(reader(i) for i in range(len(ctx.users))))
    windows = [t for t in turns if not t.queued]
    ctx.notes.append(f"holds made free and left to expire: {len(windows)}; joined a queue: {len(turns) - len(windows)}")


def _order_violations(turns: list[Turn], *, released: str) -> list[str]:
    """Each book passes in the order its readers joined: when a reader's join was answered before another's was sent,
    the book comes to the first before the second (certainly: the second saw it before the first could have), and
    never to the second while the first, still waiting, is passed over."""
    violations = []
    by_book: dict[UUID, list[Turn]] = {}
    for turn in turns:
        if turn.queued:
            by_book.setdefault(turn.book, []).append(turn)
    for book, queued in by_book.items():
        for a in queued:
            for b in queued:
                if a is b or not a.joined_received < b.joined_sent or b.came_by is None:
                    continue
                if a.came_by is None and a.left_queue:
                    violations.append(
                        f"book {book}: reader {b.user} got it though reader {a.user}, who joined first, left the queue "
                        "without ever holding it: skipped"
                    )
                elif a.came_by is not None and b.came_by < a.came_after:
                    violations.append(
                        f"book {book}: reader {b.user} held it by {b.came_by:.3f}s, before reader {a.user} (who joined "
                        f"first) could have, after {a.came_after:.3f}s"
                    )
                elif released == "cancel" and a.cancel_sent is not None and b.came_by < a.cancel_sent:
                    violations.append(
                        f"book {book}: reader {b.user} held it by {b.came_by:.3f}s, before reader {a.user} (ahead of "
                        f"them) cancelled at {a.cancel_sent:.3f}s: two holders"
                    )
    return violations


def check_queue_churn(ctx: Context, final: FinalState) -> list[str]:
    turns: list[Turn] = ctx.turns
    violations = _order_violations(turns, released="cancel")
    queued = [t for t in turns if t.queued]
    came = [t for t in queued if t.came_by is not None]
    waits = sorted(t.came_by - t.joined_received for t in came if t.came_by is not None)
    handed = sorted(
        op.latency for op in ctx.history.ops if op.kind == "cancel" and op.outcome == "ok" and op.attempt > 0
    )
    ctx.notes.append(
        f"joins: {len(turns)} ({len(queued)} queued, {len(turns) - len(queued)} found the book free); "
        f"the book came to {len(came)} of the queued"
        + (f", after a median wait of {waits[len(waits) // 2]:.2f}s" if waits else "")
    )
    if handed:
        ctx.notes.append(
            f"cancels (each hands the book on before it answers when someone waits): p50 "
            f"{1000 * percentile(handed, 50):.0f} ms, p99 {1000 * percentile(handed, 99):.0f} ms"
        )
    if not ctx.cut_short:
        violations += [
            f"reader {t.user} waited for book {t.book} and it never came" for t in queued if t.came_by is None
        ]
    return violations


def check_expiry(ctx: Context, final: FinalState) -> list[str]:
    turns: list[Turn] = ctx.turns
    violations = _order_violations(turns, released="expiry")
    if turns and not any(t.gone_by is not None for t in turns):
        violations.append(
            "no hold expired during the run: the app must run with a short pickup window for this test "
            f"({' '.join(f'{k}={v}' for k, v in EXPIRY_ENV.items())}; --instances starts its copies so)"
        )
    elif not ctx.cut_short:
        for t in turns:
            if t.came_by is None:
                violations.append(f"reader {t.user} waited for book {t.book} and it never came")
            elif t.gone_by is None:
                violations.append(f"reader {t.user}'s hold of book {t.book} never expired")
        held = [b for b in ctx.books if final.locks.get(b) is not None]
        if held:
            violations.append(f"{len(held)} book(s) still held after every hold's window had passed")
    lasted = sorted(t.gone_by - t.came_by for t in turns if t.came_by is not None and t.gone_by is not None)
    if lasted:
        ctx.notes.append(
            f"holds lasted (seen by their reader) p50 {lasted[len(lasted) // 2]:.2f}s, longest {lasted[-1]:.2f}s"
        )
    return violations


# -- shared ----------------------------------------------------------------------------------------------
def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _final_ops(history: History, kind: str) -> list[Op]:
    """The last attempt of each request of this kind: the answer its client went on with. Requests made before
    the run (attempt 0: the probe of how ids are chosen, test 5's preparation) are not the test's."""
    last: dict[UUID, Op] = {}
    for op in history.ops:
        if op.kind == kind and op.reservation_id is not None and op.attempt > 0:
            previous = last.get(op.reservation_id)
            if previous is None or op.sent >= previous.sent:
                last[op.reservation_id] = op
    return list(last.values())


def _reason(message: str) -> str:
    # Ids differ in every message; the summary groups refusals by their wording.
    words = [w for w in message.split() if not any(c.isdigit() for c in w) or len(w) < 8]
    return " ".join(words)


TESTS: dict[int, Test] = {
    1: Test(
        1,
        "one reader makes the same reservation again and again, at once",
        lambda size, workers: 1,
        lambda size, workers: 1,
        lambda size: size,
        "requests",
        run_same,
        check_same,
    ),
    2: Test(
        2,
        "readers send random requests (reserve, cancel, change, read) over the catalogue",
        lambda size, workers: max(4, workers),
        lambda size, workers: workers,
        lambda size: size,
        "requests",
        run_random,
        check_random,
    ),
    3: Test(
        3,
        "two readers race to reserve every book",
        lambda size, workers: size,
        lambda size, workers: 2,
        lambda size: 2 * size,
        "requests",
        run_race,
        check_race,
    ),
    4: Test(
        4,
        "two readers cancel and re-reserve the same book",
        lambda size, workers: 1,
        lambda size, workers: 2,
        lambda size: size,
        "cycles",
        run_cycles,
        check_cycles,
    ),
    5: Test(
        5,
        "reservations are changed concurrently",
        lambda size, workers: 2 * size,
        lambda size, workers: min(size, workers),
        lambda size: size,
        "changes",
        run_changes,
        check_changes,
    ),
    6: Test(
        6,
        "readers queue for a few books while their holders cancel: each book passes in queue order",
        lambda size, workers: max(2, workers // 4),
        lambda size, workers: workers,
        lambda size: size,
        "turns",
        run_queue_churn,
        check_queue_churn,
    ),
    7: Test(
        7,
        "holders never collect: each book passes down its queue as pickup windows of 2 s expire",
        lambda size, workers: max(2, size // 5),
        lambda size, workers: workers,
        lambda size: size,
        "joins",
        run_expiry,
        check_expiry,
        EXPIRY_ENV,
    ),
}
