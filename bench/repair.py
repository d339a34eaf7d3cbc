"""python -m bench repair: what the background repair costs reserving, in the same run.

On the running cluster, in keyspace --keyspace: --books books, each reserved once per row through `Library.reserve`
(the service's reserve, without HTTP), --concurrency at a time, with no repair loop, with a `RepairLoop` at the
default pace (REPAIR_EVERY_SECONDS=60, and never in a pass more than REPAIR_TIME_SHARE of the time) and with one
every --aggressive seconds that is not held to that share (passes back to back: what a pass costs), one after
another (each run starting with another of them), --runs times. The loop runs in the same process and on the same
connection as the reserves, as it does in an app instance. Before each row the reservations of the last are
cancelled (untimed) and the loop has finished its first pass (the one it runs on taking the lease), so what a row
shows is the passes that fall inside it; each row says how many did, how long one took, and the share of the row's
time the loop was in a pass ("busy"). Between rows the catalogue is the same size, so every pass reads the same
--books locks and up to as many reservations in each of the three views.

On a shared machine the rows' throughput varies by more than the default pace costs, and a row of it (seconds long)
rarely holds a pass of a loop that waits a minute between them. So the bench derives that cost from the same run
(`default_cost`): what passes back to back cost reserving, scaled by the share of the time a pass runs at the default
pace, pass / (gap + pass).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from app.db import Database
from app.models import Conflict
from app.repository import Library
from app.repository.repair_loop import REPAIR_TIME_SHARE, gap_after
from app.rules import replication_for
from app.schema import apply_schema
from app.settings import Settings
from bench.measure import Figures, measure
from bench.peer import cluster_hosts
from bench.table import median_spread, spread
from toolkit.arguments import ArgumentParser, number

DEFAULT_EVERY = Settings().repair_every_seconds
READERS = 200
DATA_TABLES = ("books", "reservation_by_book_id", "reservations", "user_reservations", "book_reservations")


@dataclasses.dataclass
class Row:
    mode: str
    figures: Figures
    passes: int  # passes that ended inside the timed reserves
    pass_seconds: float | None  # the last pass's duration
    busy: float  # the share of the row's time the loop spent in passes (its passes inside it times their duration)


async def prepare(library: Library, books: int) -> list[UUID]:
    ids = [uuid4() for _ in range(books)]
    gate = asyncio.Semaphore(16)

    async def book(i: int) -> None:
        async with gate:
            await library.create_book(f"Bench book {i}", "Bench", "bench", 2000, book_id=ids[i])

    async def reader(card: int) -> None:
        async with gate:
            await library.import_user(f"Bench reader {card}", f"bench.{card}@example.org", card)

    await asyncio.gather(*(book(i) for i in range(books)), *(reader(c) for c in range(1, READERS + 1)))
    return ids


async def cancel_all(library: Library, held: dict[int, tuple[UUID, int]]) -> None:
    gate = asyncio.Semaphore(16)

    async def one(reservation_id: UUID, user_id: int) -> None:
        async with gate:
            await library.cancel(reservation_id, user_id)

    await asyncio.gather(*(one(r, u) for r, u in held.values()))
    held.clear()


async def one_row(
    library: Library,
    books: list[UUID],
    mode: str,
    every: float | None,
    concurrency: int,
    lease_seconds: int,
    share: float = REPAIR_TIME_SHARE,
) -> Row:
    held: dict[int, tuple[UUID, int]] = {}
    warmup = concurrency
    ops = len(books) - warmup

    async def reserve(i: int) -> str:
        user = 1 + i % READERS
        try:
            made = await library.reserve(books[i % len(books)], user)
        except Conflict:
            return "conflict"
        held[i] = (made.reservation_id, user)
        return "ok"

    loop = None
    if every is not None:
        loop = library.repair_loop(every=every, lease_seconds=lease_seconds, holder=f"bench {mode}", share=share)
        first_pass = asyncio.Event()
        loop.listeners.append(lambda _figures, _report: first_pass.set())
        loop.start()
        await first_pass.wait()
    before = loop.figures.passes if loop else 0
    try:
        figures = await measure("repair", mode, "repository", reserve, ops=ops, concurrency=concurrency, warmup=warmup)
    finally:
        if loop is not None:
            await loop.stop()
    passes = (loop.figures.passes - before) if loop else 0
    await cancel_all(library, held)
    pass_seconds = loop.figures.last_pass_seconds if loop else None
    busy = min(1.0, passes * (pass_seconds or 0.0) / figures.seconds) if figures.seconds else 0.0
    return Row(mode, figures, passes, pass_seconds, busy)


def summarize(runs: list[list[Row]]) -> list[dict[str, Any]]:
    rows = []
    for index, first in enumerate(runs[0]):
        mine = [run[index] for run in runs]
        ratios = [
            run[index].figures.throughput / run[0].figures.throughput for run in runs if run[0].figures.throughput
        ]
        seconds = [r.pass_seconds for r in mine if r.pass_seconds is not None]
        rows.append(
            {
                "mode": first.mode,
                "throughput": median_spread([r.figures.throughput for r in mine]),
                "p50_ms": median_spread([r.figures.p50_ms for r in mine]),
                "p99_ms": median_spread([r.figures.p99_ms for r in mine]),
                "ratio": median_spread(ratios),
                "passes": [r.passes for r in mine],
                "pass_seconds": median_spread(seconds) if seconds else None,
                "busy": median_spread([r.busy for r in mine]),
                "errors": sum(sum(r.figures.errors.values()) for r in mine),
            }
        )
    return rows


def default_cost(rows: list[dict[str, Any]], every: float) -> dict[str, float] | None:
    """What the default pace costs reserving, from this run's rows: back to back, passes cost reserves `1 - ratio`
    of their throughput (the unthrottled row, busy nearly all the time); at the default pace a pass runs
    pass / (gap + pass) of the time, the gap being REPAIR_EVERY_SECONDS or more (`gap_after`); so the cost is about
    the product. A row of the default pace rarely holds a pass (a row lasts seconds, the gap a minute): its own ratio
    is mostly the machine's noise."""
    default, back_to_back = rows[1], rows[2]
    durations = [row["pass_seconds"]["median"] for row in (default, back_to_back) if row["pass_seconds"] is not None]
    if not durations or not back_to_back["busy"]["median"]:
        return None
    # The longer of the two: the default row's pass is mostly the one it ran on taking the lease, before its row,
    # over views the last row's cancels emptied; the back-to-back passes ran with the row's reservations held.
    seconds = max(durations)
    busy_at_default = seconds / (gap_after(seconds, every) + seconds)
    # The unthrottled row's cost, scaled to a loop busy all the time.
    full_cost = max(0.0, 1 - back_to_back["ratio"]["median"]) / back_to_back["busy"]["median"]
    return {
        "pass_seconds": round(seconds, 3),
        "busy_at_default": round(busy_at_default, 4),
        "cost_when_busy": round(full_cost, 3),
        "cost_at_default": round(full_cost * busy_at_default, 4),
    }


def render(rows: list[dict[str, Any]], books: int, concurrency: int, runs: int) -> str:
    lines = [
        f"Library.reserve on {books} books, concurrency {concurrency}, {runs} run(s): median [lowest-highest]",
        f"{'repair loop':<28} {'reserves/s':>22} {'p99 ms':>22} {'/ off':>20} {'passes':>10} {'a pass, s':>20} "
        f"{'busy':>20} errors",
    ]
    for row in rows:
        passes = ",".join(str(p) for p in row["passes"])
        seconds = spread(row["pass_seconds"], 2) if row["pass_seconds"] else "-"
        lines.append(
            f"{row['mode']:<28} {spread(row['throughput'], 1):>22} {spread(row['p99_ms'], 2):>22} "
            f"{spread(row['ratio'], 3):>20} {passes:>10} {seconds:>20} {spread(row['busy'], 3):>20} {row['errors']}"
        )
    cost = default_cost(rows, DEFAULT_EVERY)
    if cost is not None:
        lines.append(
            f"back to back, passes cost reserving {cost['cost_when_busy']:.1%} of its throughput (scaled to a loop "
            f"busy all the time); at the default pace a pass of {cost['pass_seconds']:.2f} s runs "
            f"{cost['busy_at_default']:.1%} of the time, so the default pace costs about {cost['cost_at_default']:.2%}"
        )
    return "\n".join(lines)


def rows_of_reserves(p: ArgumentParser) -> None:
    """The options of a bench that reserves every book once per row (`one_row`), row against row, in runs: this one
    and `python -m bench limits`."""
    p.add_argument(
        "--books", type=number(int, 32, 100_000), default=1000, help="books, each reserved once per row (default 1000)"
    )
    p.add_argument("--concurrency", type=number(int, 1, 1024), default=16, help="reserves in flight (default 16)")
    p.add_argument("--runs", type=number(int, 1, 20), default=3, help="runs of every row (default 3)")


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench repair",
        description=(
            "What the background repair costs reserving: Library.reserve's throughput with no repair loop, with one "
            "at the default pace and with one every --aggressive seconds not held to the 5% share (passes back to "
            "back), in the same run, on the running cluster. Prints each row's median over the runs, its spread, its "
            "ratio to no loop in the same run, the passes that fell inside it, how long one took and the share of "
            "the row spent in passes; then the default pace's cost derived from them."
        ),
        epilog="Its data goes to keyspace --keyspace (default bench_repair), emptied at the start.",
    )
    rows_of_reserves(p)
    p.add_argument(
        "--aggressive",
        type=number(float, 0.1, 3600),
        default=1.0,
        help="the seconds between passes of the aggressive row (default 1)",
    )
    p.add_argument(
        "--lease-seconds",
        type=number(int, 3, 3600),
        default=Settings().repair_lease_seconds,
        help=f"the repair lease's TTL (default {Settings().repair_lease_seconds}, as the service's)",
    )
    p.add_argument("--keyspace", default="bench_repair", help="keyspace (default bench_repair)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures and the summary")
    return p


async def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    hosts = cluster_hosts()
    settings = Settings(
        cassandra_hosts=hosts, keyspace=args.keyspace, replication_factor=replication_for(hosts), seed_demo_data=False
    )
    db = await Database.connect(settings)
    try:
        await apply_schema(db, settings)
        for table in (*DATA_TABLES, "repair_lease"):
            await db.execute_raw(f"TRUNCATE {args.keyspace}.{table}")
        library = Library(db)
        print(f"writing {args.books} books...", file=sys.stderr, flush=True)
        books = await prepare(library, args.books)
        modes: list[tuple[str, float | None]] = [
            ("off", None),
            (f"every {DEFAULT_EVERY:g} s (default)", DEFAULT_EVERY),
            (f"every {args.aggressive:g} s, unthrottled", args.aggressive),
        ]
        runs: list[list[Row]] = []
        for run in range(1, args.runs + 1):
            print(f"run {run} of {args.runs}...", file=sys.stderr, flush=True)
            # Each run starts with another row, so that no row always has the cluster fresh (or tired).
            order = [(run - 1 + k) % len(modes) for k in range(len(modes))]
            measured: dict[int, Row] = {}
            for index in order:
                mode, every = modes[index]
                # The last row passes back to back: not held to REPAIR_TIME_SHARE, it shows what a pass costs.
                share = 1.0 if index == len(modes) - 1 else REPAIR_TIME_SHARE
                measured[index] = await one_row(
                    library, books, mode, every, args.concurrency, args.lease_seconds, share
                )
            runs.append([measured[index] for index in range(len(modes))])
    finally:
        db.close()
    rows = summarize(runs)
    print(render(rows, args.books, args.concurrency, args.runs))
    if args.json:
        document = {
            "books": args.books,
            "concurrency": args.concurrency,
            "runs": [[{**dataclasses.asdict(r), "figures": r.figures.to_json()} for r in run] for run in runs],
            "summary": rows,
            "default_cost": default_cost(rows, DEFAULT_EVERY),
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0
