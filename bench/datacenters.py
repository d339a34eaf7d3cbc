"""python -m bench datacenters: what a reservation costs in two datacenters, at the SERIAL the service runs there,
against LOCAL_SERIAL (which can double-book across datacenters) and against the alternative, a home datacenter per
book (LOCAL_SERIAL in the book's own datacenter, always).

On the local cluster of `python -m cluster up --dcs 2` (dc1 on nodes 1-2, dc2 on nodes 3-4, two replicas in each).
Every way reserves distinct free books through `Library.reserve` (the service's reserve, without HTTP) from an
instance in dc2, `--concurrency` at a time, in the same run, one after another, --runs times:

- LOCAL_SERIAL: Paxos among dc2's two replicas. The baseline, and unsafe here (tests/integration/
  test_two_datacenters.py shows the double booking).
- SERIAL: Paxos among a majority of all four replicas, so three, one of them in the other datacenter.
- home datacenter: each book belongs to one datacenter (half to each here), and every transaction on it runs at
  LOCAL_SERIAL there: an instance in dc2 sends a dc1 book's work to dc1. Safe as long as nothing ever runs a
  transaction on a book outside its home; not what the service does (docs/scaling.md says why).

All four nodes share this machine's loopback, so a round trip between the datacenters costs what one inside a
datacenter does: the figures are the extra replicas' work, not distance. docs/scaling.md adds what a real link's
round trip adds to each way.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from cassandra import ConsistencyLevel

import cluster
from app.db import Database
from app.models import Conflict
from app.repository import Library
from app.schema import apply_schema
from app.settings import Settings
from bench.measure import Figures, measure
from bench.table import median_spread, spread
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import CliError

WAYS = ("LOCAL_SERIAL", "SERIAL", "home datacenter")
READERS = 200  # cards the reserves are spread over (a reader's listing stays short)
DATA_TABLES = ("books", "reservation_by_book_id", "reservations", "user_reservations", "book_reservations")


def settings_for(datacenters: dict[str, list[str]], keyspace: str, local: str, serial: int) -> Settings:
    other = next(dc for dc in datacenters if dc != local)
    return Settings(
        cassandra_hosts=datacenters[local],
        keyspace=keyspace,
        local_datacenter=local,
        replication_factor=2,
        replication_chosen=True,
        remote_replication=((other, 2),),
        serial_consistency=serial,
        # The bench measures LOCAL_SERIAL across datacenters on purpose: it never serves anyone.
        accept_double_booking_risk_of_local_serial=True,
        seed_demo_data=False,
    )


class Libraries:
    """One Library per datacenter and serial consistency, each on its own connection, as instances would be."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, int], Library] = {}

    async def get(self, datacenters: dict[str, list[str]], keyspace: str, local: str, serial: int) -> Library:
        key = (local, serial)
        if key not in self.open:
            self.open[key] = Library(await Database.connect(settings_for(datacenters, keyspace, local, serial)))
        return self.open[key]

    def close(self) -> None:
        for library in self.open.values():
            library.db.close()


async def prepare(library: Library, books: int) -> list[UUID]:
    ids = [uuid4() for _ in range(books)]
    for i, book_id in enumerate(ids):
        await library.create_book(f"Bench book {i}", "Bench", "bench", 2000, book_id=book_id)
    for card in range(1, READERS + 1):
        await library.import_user(f"Bench reader {card}", f"bench.{card}@example.org", card)
    return ids


async def one_run(
    datacenters: dict[str, list[str]], keyspace: str, libraries: Libraries, ops: int, concurrency: int
) -> list[Figures]:
    """Each way once, on books of its own."""
    setup = await libraries.get(datacenters, keyspace, "dc2", ConsistencyLevel.SERIAL)
    for table in DATA_TABLES:
        await setup.db.execute_raw(f"TRUNCATE {keyspace}.{table}")
    results = []
    for way in WAYS:
        books = await prepare(setup, ops + concurrency)
        if way == "home datacenter":
            # Even books are dc1's, odd ones dc2's: each reserved at LOCAL_SERIAL in its own datacenter.
            targets = [
                await libraries.get(datacenters, keyspace, dc, ConsistencyLevel.LOCAL_SERIAL) for dc in ("dc1", "dc2")
            ]
        else:
            targets = [await libraries.get(datacenters, keyspace, "dc2", ConsistencyLevel.name_to_value[way])]

        async def reserve(i: int, books: list[UUID] = books, targets: list[Library] = targets) -> str:
            try:
                await targets[i % len(targets)].reserve(books[i], 1 + i % READERS)
            except Conflict:
                return "conflict"
            return "ok"

        results.append(
            await measure(
                "datacenters", way, "repository", reserve, ops=ops, concurrency=concurrency, warmup=concurrency
            )
        )
    return results


def summarize(runs: list[list[Figures]]) -> list[dict[str, Any]]:
    rows = []
    for index, way in enumerate(WAYS):
        figures = [run[index] for run in runs]

        ratios = [run[index].throughput / run[0].throughput for run in runs if run[0].throughput]
        rows.append(
            {
                "way": way,
                "throughput": median_spread([f.throughput for f in figures]),
                "p50_ms": median_spread([f.p50_ms for f in figures]),
                "p99_ms": median_spread([f.p99_ms for f in figures]),
                "ratio": median_spread(ratios),
                "errors": sum(sum(f.errors.values()) for f in figures),
                "conflicts": sum(f.outcomes.get("conflict", 0) for f in figures),
            }
        )
    return rows


def render(rows: list[dict[str, Any]], ops: int, concurrency: int, runs: int) -> str:
    lines = [
        f"reserve from an instance in dc2, {ops} distinct books, concurrency {concurrency}, {runs} run(s): "
        "median [lowest-highest]",
        f"{'way':<16} {'reserves/s':>22} {'p50 ms':>20} {'p99 ms':>22} {'/ LOCAL_SERIAL':>20} errors",
    ]
    for row in rows:
        lines.append(
            f"{row['way']:<16} {spread(row['throughput'], 1):>22} {spread(row['p50_ms'], 2):>20} "
            f"{spread(row['p99_ms'], 2):>22} {spread(row['ratio'], 2):>20} {row['errors']}"
        )
    return "\n".join(lines)


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench datacenters",
        description=(
            "Reserve's throughput and latency in two datacenters at LOCAL_SERIAL (the baseline, unsafe there), at "
            "SERIAL (what the service runs) and with a home datacenter per book, on the local cluster of "
            "`python -m cluster up --dcs 2`. Prints each way's median over the runs, its spread, and its ratio to "
            "LOCAL_SERIAL in the same run."
        ),
        epilog="Its data goes to keyspace --keyspace (default bench_datacenters), emptied at the start of each run.",
    )
    p.add_argument("--ops", type=number(int, 1, 100_000), default=400, help="reserves per way and run (default 400)")
    p.add_argument("--concurrency", type=number(int, 1, 1024), default=16, help="reserves in flight (default 16)")
    p.add_argument("--runs", type=number(int, 1, 20), default=3, help="runs of every way (default 3)")
    p.add_argument("--keyspace", default="bench_datacenters", help="keyspace (default bench_datacenters)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures and the summary")
    return p


async def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    datacenters = cluster.running_datacenters()
    if len(datacenters) != 2:
        raise CliError("needs the local cluster of two datacenters: run `python -m cluster up --dcs 2` first")
    first = settings_for(datacenters, args.keyspace, "dc2", ConsistencyLevel.SERIAL)
    db = await Database.connect(first)
    try:
        await apply_schema(db, first)
    finally:
        db.close()
    libraries = Libraries()
    runs: list[list[Figures]] = []
    try:
        for run in range(1, args.runs + 1):
            print(f"run {run} of {args.runs}...", file=sys.stderr, flush=True)
            runs.append(await one_run(datacenters, args.keyspace, libraries, args.ops, args.concurrency))
    finally:
        libraries.close()
    rows = summarize(runs)
    print(render(rows, args.ops, args.concurrency, args.runs))
    if args.json:
        document = {
            "ops": args.ops,
            "concurrency": args.concurrency,
            "runs": [[dataclasses.asdict(f) for f in run] for run in runs],
            "summary": rows,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0
