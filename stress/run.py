"""One stress run from start to verdict: prepare the data, send the requests (injecting the faults asked for:
a node stopped or crashed, app instances frozen, the audit repairing beside the traffic), read back the final
state, check the history and the audit, clean up, and sum it all up."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
import secrets
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import aiohttp

from app.db import Database
from app.models import Conflict, LibraryError, NotFound
from app.repository import Library
from app.rules import MAX_PAGE_SIZE
from bench import naive_peer
from stress.client import Client, History, LegacyClient, Op
from stress.faults import Fleet, Pauses, Repairs
from stress.history import FinalState, check, unfinished
from stress.scenarios import SELF_COUNTED, TESTS, Context, Test, prepare_changes
from toolkit.cli import CliError, bearer, retrying, run_bounded
from toolkit.progress import Progress
from toolkit.stats import percentile

SETUP_CONCURRENCY = 32
# The run's readers get card numbers from a random block of 10,000 above one billion: far from the seeder's
# 1..N and the app's seven-digit numbers, and apart from any other run's block.
USER_BLOCKS = (1_000_000_000, 10_000)
STRESS_NAMESPACE = UUID("9d3b1c52-47e1-5a0e-8f6b-5c2a9e7d4b13")
MAX_VIOLATIONS_SHOWN = 25


@dataclass(frozen=True)
class Options:
    test: int
    size: int
    workers: int
    url: str
    seed: int
    keep: bool = False
    json_path: Path | None = None
    stop_node: int | None = None
    at: float = 0.0
    down_for: float = 20.0
    time_limit: float = 600.0
    request_timeout: float = 30.0
    crash: bool = False  # the stopped node is killed (SIGKILL), as in a crash, instead of shut down
    urls: tuple[str, ...] = ()  # several instances of the app: requests go to each in turn (default: url alone)
    pause_every: float | None = None  # freeze an instance (of a Fleet) for 0.2-2 s about this often
    repair_every: float | None = None  # run audit(repair=True) this often during the run
    history_path: Path | None = None  # every request the clients sent, one JSON object a line
    legacy: bool = False  # the earlier system's endpoints (stress.client.LegacyClient) instead of the API
    # The app is the bench's naive peer (bench/naive_peer.py), whose data is in this keyspace: its books are written
    # there, it has no readers, and nothing is audited (it keeps no lock versions to audit).
    naive_keyspace: str | None = None


@dataclass
class Fixture:
    tag: str
    books: list[UUID]
    users: list[int]


@dataclass
class Outage:
    node: int
    at: float
    down_for: float
    crash: bool = False
    stopped_at: float | None = None  # when the stop was asked for, on the history's clock
    stop_took: float | None = None
    back_at: float | None = None  # when the node served again and saw its peers
    error: str | None = None

    async def run(self, history: History) -> None:
        import cluster

        try:
            await asyncio.sleep(max(0.0, self.at - history.now()))
            self.stopped_at = history.now()
            await asyncio.to_thread(cluster.stop_node, self.node, self.crash)
            self.stop_took = history.now() - self.stopped_at
            await asyncio.sleep(self.down_for)
        except asyncio.CancelledError:
            if self.stopped_at is None:
                raise  # the run ended before --at: nothing was stopped, nothing to restore
        except cluster.ClusterError as error:
            self.error = str(error)
        if self.stopped_at is not None:
            # Restarted whatever happened above: a stress test must leave the cluster as it found it.
            try:
                await asyncio.to_thread(cluster.start_node, self.node)
                self.back_at = history.now()
            except cluster.ClusterError as error:
                self.error = f"node {self.node} could not be restarted: {error}"


@dataclass
class Report:
    test: int
    title: str
    size: int
    workers: int
    url: str
    seed: int
    seconds: float = 0.0
    requests: int = 0
    successes: int = 0
    conflicts: int = 0
    refused: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    throughput: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    outage: dict[str, Any] | None = None
    instances: list[dict[str, Any]] = field(default_factory=list)  # the app instances and their requests
    pauses: dict[str, Any] | None = None
    repairs: dict[str, Any] | None = None
    ids: str = ""  # how reservation ids were chosen: "idempotency keys", or by the client on an older app
    audit: dict[str, Any] = field(default_factory=dict)
    history: dict[str, int] = field(default_factory=dict)
    # The reservations whose last request got no definite answer (stress.history.unfinished): what such a request
    # left half-way is the repair's to mend, so the audit may name them.
    unfinished: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    cut_short: bool = False

    @property
    def verdict(self) -> str:
        return "FAIL" if self.violations else "PASS"


# -- figures -----------------------------------------------------------------------------------------
def figures(ops: list[Op]) -> dict[str, Any]:
    outcomes = Counter(op.outcome for op in ops)
    latencies = sorted(op.latency * 1000 for op in ops)
    return {
        "requests": len(ops),
        "successes": outcomes["ok"],
        "conflicts": outcomes["conflict"],
        "refused": outcomes["refused"],
        "errors": dict(Counter(op.error or "unknown" for op in ops if op.outcome == "error").most_common()),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p95": round(percentile(latencies, 95), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(latencies[-1], 1) if latencies else 0.0,
        },
    }


def longest_gap(ops: list[Op], start: float, end: float) -> float:
    """The longest stretch inside [start, end] in which no request succeeded: what readers felt as an outage."""
    times = sorted(op.received for op in ops if op.outcome == "ok" and start <= op.received <= end)
    edges = [start, *times, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False)) if len(edges) > 1 else 0.0


# -- data --------------------------------------------------------------------------------------------
def new_fixture(books: int, users: int) -> Fixture:
    """The run's own books (ids from a random tag) and readers (card numbers from a random block)."""
    tag = secrets.token_hex(4)
    base = USER_BLOCKS[0] + secrets.randbelow(100_000) * USER_BLOCKS[1]
    return Fixture(tag, [uuid5(STRESS_NAMESPACE, f"{tag}/{i}") for i in range(books)], [base + i for i in range(users)])


async def prepare(library: Library, books: int, users: int) -> Fixture:
    fixture = new_fixture(books, users)
    tag = fixture.tag
    progress = Progress(books + users, "preparing")

    async def add_book(i: int) -> None:
        book_id = fixture.books[i]
        await retrying(
            lambda: library.create_book(f"Stress {tag} book {i}", "Stress Test", "stress-test", 2000, book_id=book_id)
        )
        progress.advance()

    async def add_user(user_id: int) -> None:
        await retrying(
            lambda: library.import_user(f"Stress reader {user_id}", f"stress.{tag}.{user_id}@example.org", user_id)
        )
        progress.advance()

    try:
        await run_bounded(range(books), add_book, SETUP_CONCURRENCY)
        await run_bounded(fixture.users, add_user, SETUP_CONCURRENCY)
    finally:
        progress.close()
    return fixture


async def prepare_naive(db: Database, keyspace: str, books: int, users: int) -> Fixture:
    """The naive peer's data: its tables emptied (its keyspace is the bench's own), then the run's books written
    to its books table; its readers need no rows (any whole number is a reader there)."""
    fixture = new_fixture(books, users)
    for table in naive_peer.DATA_TABLES:
        cql = f"TRUNCATE {keyspace}.{table}"
        await retrying(functools.partial(db.execute_raw, cql))
    insert = f"INSERT INTO {keyspace}.books (book_id, title, author, genre, published_year) VALUES (?, ?, ?, ?, ?)"
    progress = Progress(books, "preparing")

    async def add_book(i: int) -> None:
        values = (fixture.books[i], f"Stress {fixture.tag} book {i}", "Stress Test", "stress-test", 2000)
        await retrying(lambda: db.execute(insert, values, write=True))
        progress.advance()

    try:
        await run_bounded(range(books), add_book, SETUP_CONCURRENCY)
    finally:
        progress.close()
    return fixture


async def legacy_snapshot(client: LegacyClient, fixture: Fixture) -> FinalState:
    """The run's reservations as the earlier system's listing shows them, named by the client's intents; a book's
    lock is taken to hold what is listed on it (those endpoints show no lock)."""
    books = set(fixture.books)
    rows = {client.intent_for(user, book): book for user, book in await client.every_reservation() if book in books}
    return FinalState(rows, {book: intent for intent, book in rows.items()})


async def snapshot(library: Library, fixture: Fixture) -> tuple[FinalState, dict[UUID, int]]:
    """The run's reservations as the database has them now; also each one's reader, for the clean-up."""
    rows: dict[UUID, UUID] = {}
    owner: dict[UUID, int] = {}
    locks: dict[UUID, UUID] = {}

    async def read_user(user_id: int) -> None:
        page: str | None = None
        while True:
            result = await retrying(
                functools.partial(library.user_reservations, user_id, page_size=MAX_PAGE_SIZE, page=page)
            )
            for r in result.items:
                rows[r.reservation_id] = r.book_id
                owner[r.reservation_id] = r.user_id
            page = result.next_page
            if page is None:
                return

    async def read_lock(book_id: UUID) -> None:
        holder = await retrying(lambda: library.holder(book_id))
        if holder is not None:
            locks[book_id] = holder.reservation_id
            owner.setdefault(holder.reservation_id, holder.user_id)

    await run_bounded(fixture.users, read_user, SETUP_CONCURRENCY)
    await run_bounded(fixture.books, read_lock, SETUP_CONCURRENCY)
    return FinalState(rows, locks), owner


async def clean_up(library: Library, fixture: Fixture, owner: dict[UUID, int]) -> list[str]:
    """Cancels the run's reservations and deletes its books and readers; returns what could not be removed."""
    problems: list[str] = []
    progress = Progress(len(owner) + len(fixture.books) + len(fixture.users), "cleaning up")

    async def quietly(call: Any, what: str) -> None:
        try:
            await retrying(call)
        except NotFound:
            pass  # already gone: that is what clean-up wants
        except (Conflict, LibraryError) as error:
            problems.append(f"could not remove {what}: {error}")
        progress.advance()

    async def leave_queues(user_id: int) -> None:
        # Tests 6 and 7 leave readers waiting when their time ran out; a reader who waits cannot be deleted.
        for place in await retrying(lambda: library.places(user_id)):
            try:
                await retrying(lambda: library.leave(place.book_id, user_id))  # noqa: B023 (awaited at once)
            except LibraryError as error:
                problems.append(f"could not take reader {user_id} out of the queue for {place.book_id}: {error}")

    try:
        await run_bounded(fixture.users, leave_queues, 32)
        await run_bounded(
            owner.items(), lambda item: quietly(lambda: library.cancel(*item), f"reservation {item[0]}"), 32
        )
        await run_bounded(fixture.books, lambda b: quietly(lambda: library.delete_book(b), f"book {b}"), 32)
        await run_bounded(fixture.users, lambda u: quietly(lambda: library.delete_user(u), f"user {u}"), 32)
    finally:
        progress.close()
    return problems


# -- the run -------------------------------------------------------------------------------------------
async def preflight(session: aiohttp.ClientSession, url: str, path: str = "/api/books?page_size=1") -> int:
    try:
        async with session.get(url.rstrip("/") + path) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        raise CliError(f"cannot reach the app at {url}: {reason} (is `python -m app` running?)") from None


async def execute(options: Options, library: Library, fleet: Fleet | None = None) -> Report:
    test = TESTS[options.test]
    urls = list(options.urls) or [options.url]
    report = Report(test.number, test.title, options.size, options.workers, ", ".join(urls), options.seed)
    timeout = aiohttp.ClientTimeout(total=options.request_timeout)
    connector = aiohttp.TCPConnector(limit=max(options.workers, 2) + 4)
    naive = options.naive_keyspace
    # Set-up and reads that are no reader's go as a librarian; each reader's requests carry their own token.
    headers = bearer(await library.session_for_tool("Stress test")) if naive is None else {}
    books, users = test.books(options.size, options.workers), test.users(options.size, options.workers)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, headers=headers) as session:
        for url in urls:
            await preflight(session, url, "/api/books" if options.legacy else "/api/books?page_size=1")
        if naive is None:
            fixture = await prepare(library, books, users)
        else:
            fixture = await prepare_naive(library.db, naive, books, users)
        owner: dict[UUID, int] = {}
        try:
            if naive is None:
                status = await preflight(session, options.url, f"/api/books/{fixture.books[0]}")
                if status == 404:
                    raise CliError(
                        f"the app at {options.url} does not see the books just written to keyspace "
                        f"{library.ks}: start it with the same CASSANDRA_KEYSPACE (or pass --keyspace)"
                    )
            history, ctx, outage, run_seconds = await _run(
                options, test, library, session, fixture, urls, report, fleet
            )
            if naive is None:
                final, owner = await snapshot(library, fixture)  # `owner`: the clean-up's, by the app's own ids
            if isinstance(ctx.client, LegacyClient):
                final = await legacy_snapshot(ctx.client, fixture)  # in the client's names, as the checker needs
        except BaseException:
            if not options.keep and naive is None:
                _, owner = await snapshot(library, fixture)
                for problem in await clean_up(library, fixture, owner):
                    print(f"warning: {problem}", file=sys.stderr)
            raise
    requests = [op for op in history.ops if op.attempt > 0]
    _fill(report, requests, run_seconds, outage)
    per_instance = Counter(op.instance for op in requests)
    errors_at = Counter(op.instance for op in requests if op.outcome == "error")
    descriptions = fleet.describe() if fleet is not None else [{"number": n, "url": u} for n, u in enumerate(urls, 1)]
    for index, description in enumerate(descriptions):
        description.update(requests=per_instance[index], errors=errors_at[index])
    report.instances = descriptions
    report.cut_short = ctx.cut_short
    if ctx.cut_short:
        report.violations.append(
            f"the run did not finish within --time-limit {options.time_limit:g}s: {ctx.issued} requests were sent"
        )
    if outage is not None and outage.error:
        report.violations.append(f"outage: {outage.error}")
    if options.history_path is not None:
        write_history(history.ops, options.history_path)
    violations, report.history = check(history.ops, final)
    report.unfinished = sorted(str(r) for r in unfinished(history.ops))
    report.violations.extend(violations)
    report.violations.extend(test.check(ctx, final))
    report.notes.extend(ctx.notes)
    if naive is not None:
        report.notes.append("not audited: the naive peer keeps no lock versions to check the views against")
        return report
    audit = await retrying(library.audit)
    report.audit = {
        "clean": audit.clean,
        "locks": audit.locks,
        "reservations": audit.reservations,
        "violations": len(audit.violations),
    }
    report.violations.extend(f"audit: {v}" for v in audit.violations)
    if options.keep:
        report.notes.append(
            f"kept the run's data: books titled 'Stress {fixture.tag} book N', readers {fixture.users[0]} and up"
        )
    else:
        report.notes.extend(await clean_up(library, fixture, owner))
    return report


async def _run(
    options: Options,
    test: Test,
    library: Library,
    session: aiohttp.ClientSession,
    fixture: Fixture,
    urls: list[str],
    report: Report,
    fleet: Fleet | None,
) -> tuple[History, Context, Outage | None, float]:
    history = History()
    # Every reader acts as themselves, with a token of their own, as through the API a reader does (the naive peer
    # has no readers: any whole number is one).
    tokens = await library.sessions_for_readers(list(fixture.users)) if options.naive_keyspace is None else {}
    kind = LegacyClient if options.legacy or options.naive_keyspace is not None else Client
    client = kind(session, urls, history, deadline=math.inf, tokens=tokens)
    ctx = Context(
        options.size,
        options.workers,
        options.seed,
        client,
        history,
        library,
        fixture.books,
        fixture.users,
        math.inf,
        legacy=options.legacy,
    )
    if isinstance(client, LegacyClient):
        report.ids = "named by the client (the earlier system's endpoints return none)"
    else:
        try:
            keyed = await client.probe_ids(fixture.users[0], fixture.books[0])
        except RuntimeError as error:
            raise CliError(f"the app at {urls[0]} could not make a first reservation: {error}") from None
        report.ids = "idempotency keys" if keyed else "named by the client (the app ignores idempotency keys)"
    for op in history.ops:
        op.attempt = 0  # the probe is not part of the run's figures
    if test.number == 5:
        await prepare_changes(ctx)
        # The run's clock starts now; what the preparation recorded lies before zero.
        shift = history.now()
        history.started += shift
        for op in history.ops:
            op.sent -= shift
            op.received -= shift
    progress = Progress(test.total(options.size), f"test {test.number}")
    counts: Counter[str] = Counter()

    def status_line() -> str:
        return f"ok {counts['ok']} conflict {counts['conflict']} error {counts['error']}"

    def on_op(op: Op) -> None:
        counts[op.outcome] += 1
        # A retry is not new work; tests counted in their own units (cycles, turns) advance from the test itself.
        progress.advance(1 if test.unit not in SELF_COUNTED and op.attempt == 1 else 0, extra=status_line())

    client.on_op.append(on_op)
    ctx.tick = lambda: progress.advance(extra=status_line())
    ctx.deadline = client.deadline = options.time_limit
    outage = None
    outage_task = None
    if options.stop_node is not None:
        outage = Outage(options.stop_node, options.at, options.down_for, options.crash)
        outage_task = asyncio.create_task(outage.run(history))
    pauses = pause_task = None
    if options.pause_every is not None and fleet is not None:
        pauses = Pauses(options.pause_every)
        rng = random.Random(f"{options.seed}/pauses")
        pause_task = asyncio.create_task(pauses.run(fleet.instances, rng))
    repairs = repair_task = None
    stop_repairs = asyncio.Event()
    if options.repair_every is not None:
        repairs = Repairs(options.repair_every)
        repair_task = asyncio.create_task(repairs.run(library, stop_repairs, history.now))
    try:
        await test.run(ctx)
    finally:
        progress.close()
        run_seconds = history.now()
        if pause_task is not None and pauses is not None:
            pause_task.cancel()
            await asyncio.gather(pause_task, return_exceptions=True)
            report.pauses = pauses.figures()
        if repair_task is not None and repairs is not None:
            stop_repairs.set()
            await asyncio.gather(repair_task, return_exceptions=True)
            report.repairs = repairs.figures()
        if outage_task is not None and outage is not None:
            if outage.stopped_at is None:
                outage_task.cancel()
            else:
                print(f"waiting for node {outage.node} to be back before checking", file=sys.stderr)
            await asyncio.gather(outage_task, return_exceptions=True)
    return history, ctx, outage, run_seconds


def _fill(report: Report, requests: list[Op], seconds: float, outage: Outage | None) -> None:
    overall = figures(requests)
    report.seconds = round(seconds, 2)
    report.requests = overall["requests"]
    report.successes = overall["successes"]
    report.conflicts = overall["conflicts"]
    report.refused = overall["refused"]
    report.errors = overall["errors"]
    report.latency_ms = overall["latency_ms"]
    report.throughput = round(len(requests) / seconds, 1) if seconds > 0 else 0.0
    if outage is None:
        return
    if outage.stopped_at is None:
        report.outage = {"node": outage.node, "stopped": False, "crash": outage.crash}
        report.notes.append(f"the run ended before --at {outage.at:g}s: no node was stopped")
        return
    end = outage.back_at if outage.back_at is not None else max((op.received for op in requests), default=0.0)
    during = [op for op in requests if outage.stopped_at <= op.sent <= end]
    report.outage = {
        "node": outage.node,
        "stopped": True,
        "crash": outage.crash,
        "stopped_at": round(outage.stopped_at, 2),
        "stop_took": round(outage.stop_took or 0.0, 2),
        "back_at": round(outage.back_at, 2) if outage.back_at is not None else None,
        "longest_without_success": round(longest_gap(requests, outage.stopped_at, min(end, seconds)), 2),
        **figures(during),
    }


# -- output --------------------------------------------------------------------------------------------
def _errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {n}" for kind, n in errors.items()) or "none"


def _latency_text(latency: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.1f} ms" for k, v in latency.items())


def _faults_text(report: Report) -> list[str]:
    lines = []
    if len(report.instances) > 1 or any(i.get("skew") for i in report.instances):
        parts = [
            f"{i['number']}: {i['requests']} requests, {i['errors']} errors"
            + (f", clock {i['skew']:+g} s" if i.get("skew") else "")
            for i in report.instances
        ]
        lines.append(f"  instances    {len(report.instances)} ({'; '.join(parts)})")
    p = report.pauses
    if p is not None:
        spread = ", ".join(f"instance {n}: {c}" for n, c in p["by_instance"].items()) or "none"
        lines.append(
            f"  pauses       {p['count']} freezes (SIGSTOP), about every {p['every']:g}s, "
            f"{p['seconds']:.1f}s in all, longest {p['longest']:.1f}s ({spread})"
        )
    r = report.repairs
    if r is not None:
        kinds = ", ".join(f"{n}x {kind}" for kind, n in list(r["repaired_by_kind"].items())[:3])
        lines.append(
            f"  repairs      {r['audits']} audit(repair=True), about every {r['every']:g}s; "
            f"{r['found_something']} found something ({r['violations_seen']} violations seen), "
            f"{r['repaired']} lines of repair report"
            + (f" ({kinds})" if kinds else "")
            + (f", {r['failed']} failed ({_errors_text(r['failures'])})" if r["failed"] else "")
        )
        lines += [f"    {example}" for example in r["examples"][:5]]
    return lines


def summary(report: Report) -> str:
    lines = [
        f"test {report.test}: {report.title}",
        f"  size {report.size}, workers {report.workers}, seed {report.seed}, against {report.url}",
        *([f"  ids          {report.ids}"] if report.ids else []),
        f"  requests     {report.requests} in {report.seconds:.1f} s ({report.throughput:.1f}/s)",
        f"  successes    {report.successes}",
        f"  conflicts    {report.conflicts}",
        f"  refused      {report.refused}",
        f"  errors       {sum(report.errors.values())} ({_errors_text(report.errors)})",
        f"  latency      {_latency_text(report.latency_ms)}",
    ]
    lines += _faults_text(report)
    o = report.outage
    if o and o.get("stopped"):
        back = f"back at {o['back_at']:.1f}s" if o.get("back_at") is not None else "NOT back"
        how = "killed (a crash)" if o.get("crash") else "stopped"
        lines += [
            f"  outage       node {o['node']} {how} at {o['stopped_at']:.1f}s (took {o['stop_took']:.1f}s), {back}",
            f"    during it  {o['requests']} requests: {o['successes']} successes, {o['conflicts']} conflicts, "
            f"{o['refused']} refused, errors {_errors_text(o['errors'])}",
            f"    latency    {_latency_text(o['latency_ms'])}; longest stretch without a success "
            f"{o['longest_without_success']:.1f}s",
        ]
    a = report.audit
    if a:
        audit_text = "clean" if a.get("clean") else f"{a.get('violations')} violations"
        lines.append(f"  audit        {audit_text} ({a.get('locks')} locks, {a.get('reservations')} reservations)")
    h = report.history
    lines.append(
        f"  history      {h.get('operations')} operations, {h.get('certain_holds')} certain holds, "
        f"{h.get('reads_checked')} reads checked"
    )
    lines += [f"  {note}" for note in report.notes]
    if report.violations:
        lines.append(f"FAIL: {len(report.violations)} violations")
        lines += [f"  - {v}" for v in report.violations[:MAX_VIOLATIONS_SHOWN]]
        if len(report.violations) > MAX_VIOLATIONS_SHOWN:
            lines.append(f"  ... and {len(report.violations) - MAX_VIOLATIONS_SHOWN} more (all of them in --json)")
    else:
        lines.append("PASS")
    return "\n".join(lines)


def write_history(ops: list[Op], path: Path) -> None:
    """Every attempt, in the order sent: enough to replay a violation's interleaving by hand."""
    with path.open("w") as out:
        for op in sorted(ops, key=lambda o: o.sent):
            data = {k: v for k, v in asdict(op).items() if v is not None}
            data["sent"], data["received"] = round(op.sent, 4), round(op.received, 4)
            out.write(json.dumps(data, default=str) + "\n")


def write_json(report: Report, path: Path) -> None:
    data = asdict(report)
    data["verdict"] = report.verdict
    path.write_text(json.dumps(data, indent=2) + "\n")
