"""python -m bench limits: what the per-reader limit costs reserving, in the same run.

On the running cluster, in keyspace --keyspace: --books books, each reserved once per row through `Library.reserve`
(the service's reserve, without HTTP), --concurrency at a time, by the bench's readers in turn (each reader holding
fewer than --limit at once, so no reserve is refused for the limit), with no limit and with a limit of --limit
reservations per reader (HOLD_LIMIT_READY: a seat of the reader's claimed before the take and confirmed after it,
two more lightweight transactions and a read; app/repository/seats.py), one after the other, each run starting with
the other row, --runs times. Before each row the reservations of the last are cancelled (untimed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from app.db import Database
from app.repository import Library
from app.repository.seats import READY
from app.rules import replication_for
from app.schema import apply_schema
from app.settings import Settings
from bench.measure import Figures, measure
from bench.peer import cluster_hosts
from bench.repair import DATA_TABLES, READERS, cancel_all, prepare, rows_of_reserves
from bench.table import median_spread, spread
from toolkit.arguments import ArgumentParser, number


async def one_row(library: Library, books: list[Any], mode: str, limit: int, concurrency: int) -> Figures:
    library.reservations.limits = {READY: limit} if limit else {}
    held: dict[int, tuple[Any, int]] = {}
    warmup = concurrency

    async def reserve(i: int) -> str:
        user = 1 + i % READERS
        made = await library.reserve(books[i % len(books)], user)
        held[i] = (made.reservation_id, user)
        return "ok"

    try:
        return await measure(
            "limits", mode, "repository", reserve, ops=len(books) - warmup, concurrency=concurrency, warmup=warmup
        )
    finally:
        await cancel_all(library, held)


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench limits",
        description=(
            "What the per-reader limit costs reserving: Library.reserve's throughput with no limit and with one, in "
            "the same run, on the running cluster. Prints each row's median over the runs, its spread, and its "
            "ratio to no limit in the same run."
        ),
        epilog="Its data goes to keyspace --keyspace (default bench_limits), emptied at the start.",
    )
    rows_of_reserves(p)
    p.add_argument("--limit", type=number(int, 1, 1000), default=10, help="reservations per reader (default 10)")
    p.add_argument("--keyspace", default="bench_limits", help="keyspace (default bench_limits)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures and the summary")
    return p


async def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.books // READERS >= args.limit:
        parser().error(f"--books {args.books} gives each of the {READERS} readers {args.limit} or more: raise --limit")
    hosts = cluster_hosts()
    settings = Settings(
        cassandra_hosts=hosts, keyspace=args.keyspace, replication_factor=replication_for(hosts), seed_demo_data=False
    )
    db = await Database.connect(settings)
    try:
        await apply_schema(db, settings)
        for table in (*DATA_TABLES, "users", "reader_seats"):
            await db.execute_raw(f"TRUNCATE {args.keyspace}.{table}")
        library = Library(db)
        print(f"writing {args.books} books...", file=sys.stderr, flush=True)
        books = await prepare(library, args.books)
        modes = [("no limit", 0), (f"limit {args.limit}", args.limit)]
        runs: list[list[Figures]] = []
        for run in range(1, args.runs + 1):
            print(f"run {run} of {args.runs}...", file=sys.stderr, flush=True)
            order = [(run - 1 + k) % len(modes) for k in range(len(modes))]
            measured = {i: await one_row(library, books, *modes[i], args.concurrency) for i in order}
            runs.append([measured[i] for i in range(len(modes))])
    finally:
        db.close()
    rows: list[dict[str, Any]] = [
        {
            "mode": mode,
            "throughput": median_spread([run[i].throughput for run in runs]),
            "p50_ms": median_spread([run[i].p50_ms for run in runs]),
            "p99_ms": median_spread([run[i].p99_ms for run in runs]),
            "ratio": median_spread([run[i].throughput / run[0].throughput for run in runs if run[0].throughput]),
            "errors": sum(sum(run[i].errors.values()) for run in runs),
        }
        for i, (mode, _) in enumerate(modes)
    ]
    print(f"Library.reserve on {args.books} books, concurrency {args.concurrency}, {args.runs} run(s): median [range]")
    print(f"{'':<14} {'reserves/s':>22} {'p50 ms':>22} {'p99 ms':>22} {'/ no limit':>20} errors")
    for row in rows:
        print(
            f"{row['mode']:<14} {spread(row['throughput'], 1):>22} {spread(row['p50_ms'], 2):>22} "
            f"{spread(row['p99_ms'], 2):>22} {spread(row['ratio'], 3):>20} {row['errors']}"
        )
    if args.json:
        document = {
            "books": args.books,
            "concurrency": args.concurrency,
            "limit": args.limit,
            "runs": [[f.to_json() for f in run] for run in runs],
            "summary": rows,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0
