"""python -m bench: throughput and latency of reserving, next to the bare lightweight transaction."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.run import Options, execute
from bench.table import render
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import CliError, run_cli

DEFAULT_CONCURRENCY = "1,8,32"
DEFAULT_OPS = 500


def concurrency_list(text: str) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a whole number") from None
        if not 1 <= value <= 1024:
            raise argparse.ArgumentTypeError(f"{value} must be between 1 and 1024")
        values.append(value)
    return values


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench",
        description=(
            "Measure reserving a book at three depths (a bare INSERT ... IF NOT EXISTS through the driver, "
            "Library.reserve, POST /api/reservations against `python -m app`), on distinct books and on one hot "
            "book, and the read path (a catalogue page, a reader's reservations). Prints throughput, p50/p99 "
            "latency and the ratio to the baseline measured in the same run."
        ),
        epilog=(
            "`python -m bench peer` measures this service against the naive peer instead, and `python -m bench "
            "statements` counts the statements each kind of request sends to Cassandra, in each; `python -m bench "
            "datacenters` prices a reservation in two datacenters at SERIAL, and `python -m bench repair` what the "
            "background repair costs reserving, and `python -m bench limits` what the per-reader limit does (see "
            "their --help). "
            "Without $CASSANDRA_HOSTS the bench starts the local cluster of each topology (`python -m cluster`), "
            "stopping the other first. With it, it measures that cluster only. Its data goes to keyspace "
            "--keyspace (default bench), emptied at the start."
        ),
    )
    p.add_argument(
        "--nodes",
        choices=("1", "3", "both"),
        help="local topology to measure (default: both; with $CASSANDRA_HOSTS, that cluster)",
    )
    p.add_argument(
        "--concurrency",
        type=concurrency_list,
        default=concurrency_list(DEFAULT_CONCURRENCY),
        metavar="N,N,...",
        help=f"requests in flight, one pass each (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--ops", type=number(int, 1), default=DEFAULT_OPS, help=f"timed operations per row (default {DEFAULT_OPS})"
    )
    p.add_argument(
        "--warmup", type=number(int, 0), help="untimed operations before each row (default: a tenth of --ops, <= 50)"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write every figure and the machine to FILE")
    p.add_argument("--keyspace", default="bench", help="the bench's keyspace, emptied first (default bench)")
    p.add_argument(
        "--breakdown",
        action="store_true",
        help=(
            "also take reserve and cancel apart: reader check, lock, view batch, reader re-read, idempotency key "
            "claim; reservation read, lock read at SERIAL, release, view deletes; and the asyncio bridge"
        ),
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also profile the app under HTTP load with pyinstrument; the session and a text report go to DIR",
    )
    p.add_argument(
        "--before",
        metavar="REV",
        help=(
            "also measure the app of git revision REV (from a temporary git worktree, in keyspace KEYSPACE_before) "
            "beside this one: HTTP reserve, cancel, move and the catalogue's first page at each concurrency, "
            "with ratios after/before"
        ),
    )
    p.add_argument(
        "--tombstones",
        type=number(int, 1),
        metavar="N",
        help=(
            "also run N reserve/cancel cycles on one book by two readers, then time the reads of that book's and "
            "those readers' reservations against untouched ones, with the tombstone cells Cassandra reports"
        ),
    )
    p.add_argument(
        "--search",
        type=number(int, 1),
        metavar="N",
        help=(
            "also measure the catalogue search on N seeded books (seeded once into keyspace KEYSPACE_search, then "
            "reused): Library.search_books, Library.list_books(q=) and GET /api/books?q= for a mix of reader queries, "
            "against Library.get_book; and the search terms per book and the table's size on disk"
        ),
    )
    p.add_argument(
        "--index-cost",
        type=number(int, 1),
        metavar="N",
        help=(
            "also measure what the search index costs the seeder: N books written by seeder.seed into fresh "
            "keyspaces with the index, with it dropped, and without the terms or the index; books/s of each and the "
            "ratio to the last"
        ),
    )
    p.add_argument(
        "--skip-usual",
        action="store_true",
        help=(
            "leave out the usual rows (reserve, hot, reads): only what --breakdown, --before, --tombstones, --search "
            "and --index-cost ask"
        ),
    )
    return p


def options_from(args: argparse.Namespace) -> Options:
    hosts = [h.strip() for h in os.environ.get("CASSANDRA_HOSTS", "").split(",") if h.strip()]
    if hosts:
        if args.nodes == "both":
            raise CliError("--nodes both needs the local clusters; unset CASSANDRA_HOSTS to let the bench start them")
        if args.nodes is not None and int(args.nodes) != len(hosts):
            raise CliError(f"--nodes {args.nodes}, but CASSANDRA_HOSTS names {len(hosts)} host(s)")
        topologies = [len(hosts)]
    else:
        topologies = [1, 3] if args.nodes in (None, "both") else [int(args.nodes)]
        topologies = _running_first(topologies)
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CliError(f"--json {args.json}: cannot create its folder ({error.strerror})") from None
    if args.skip_usual and not (args.before or args.tombstones or args.breakdown or args.search or args.index_cost):
        raise CliError(
            "--skip-usual leaves nothing to measure without --before, --tombstones, --breakdown, --search or "
            "--index-cost"
        )
    warmup = args.warmup if args.warmup is not None else min(50, args.ops // 10)
    return Options(
        topologies=topologies,
        concurrency=args.concurrency,
        ops=args.ops,
        warmup=warmup,
        keyspace=args.keyspace,
        hosts=hosts or None,
        breakdown=args.breakdown,
        profile=args.profile,
        before=args.before,
        tombstones=args.tombstones,
        skip_usual=args.skip_usual,
        search=args.search,
        index_cost=args.index_cost,
    )


def _running_first(topologies: list[int]) -> list[int]:
    """The topology already running is measured first: one cluster restart fewer."""
    import cluster

    running = cluster.running_size()
    return sorted(topologies, key=lambda n: n != running)


async def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["peer"]:
        from bench import peer

        return await peer.main(argv[1:])
    if argv[:1] == ["statements"]:
        from bench import statements

        return await statements.main(argv[1:])
    if argv[:1] == ["datacenters"]:
        from bench import datacenters

        return await datacenters.main(argv[1:])
    if argv[:1] == ["repair"]:
        from bench import repair

        return await repair.main(argv[1:])
    if argv[:1] == ["limits"]:
        from bench import limits

        return await limits.main(argv[1:])
    args = parser().parse_args(argv)
    options = options_from(args)
    report = await execute(options, lambda message: print(message, file=sys.stderr, flush=True))
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
