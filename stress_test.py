"""python stress_test.py <1-5> --size N --workers W: hammer the HTTP API, then prove nothing went wrong.

Every run ends with a verdict: the audit of the reservation tables and a check of the history the clients
saw. Exit status 0 is PASS, 1 means violations were found, 2 that the run could not be made.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from app.repository import Library
from seeder.common import (
    CliError,
    add_database_arguments,
    keyspace_exists,
    number,
    open_database,
    run_cli,
    settings_from,
)
from stress.run import Options, execute, summary, write_json
from stress.scenarios import TESTS

DEFAULT_URL = "http://localhost:8888"


def parser() -> argparse.ArgumentParser:
    tests = "\n".join(f"  {t.number}  {t.title}" for t in TESTS.values())
    p = argparse.ArgumentParser(
        prog="python stress_test.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Stress the reservation API, then check that nothing went wrong: the audit of the tables, and the "
            "history the clients saw (no two holds of a book overlap; every acknowledged reservation not "
            "cancelled is present; nothing cancelled is). Prints PASS or the violations; exits 1 on any.\n\n"
            f"tests:\n{tests}"
        ),
        epilog=(
            "Each test writes its own books and readers straight to Cassandra (the database the app uses: "
            "$CASSANDRA_HOSTS and $CASSANDRA_KEYSPACE, or --hosts/--keyspace) and removes them afterwards "
            "unless --keep."
        ),
    )
    p.add_argument("test", type=int, choices=sorted(TESTS), help="which test to run (1-5)")
    p.add_argument("--size", type=number(int, 1), default=100, help="requests, books, cycles or changes (default 100)")
    p.add_argument("--workers", type=number(int, 1), default=10, help="concurrent clients (default 10)")
    p.add_argument("--url", default=os.environ.get("STRESS_URL", DEFAULT_URL), help=f"the app (default {DEFAULT_URL})")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures and the verdict to FILE")
    p.add_argument("--seed", type=int, default=1, help="seed of the clients' random choices (default 1)")
    p.add_argument("--keep", action="store_true", help="leave the test's books, readers and reservations in place")
    p.add_argument("--stop-node", type=number(int, 1), metavar="N", help="stop node N of the local cluster mid-run")
    p.add_argument(
        "--at", type=number(float, 0), default=None, metavar="SECONDS", help="when to stop it, after the start"
    )
    p.add_argument(
        "--down-for", type=number(float, 0), default=20.0, metavar="SECONDS", help="how long it stays down (default 20)"
    )
    p.add_argument(
        "--time-limit",
        type=number(float, 0),
        default=600.0,
        metavar="SECONDS",
        help="give up after this long (default 600)",
    )
    p.add_argument(
        "--request-timeout", type=number(float, 0), default=30.0, metavar="SECONDS", help="per request (default 30)"
    )
    add_database_arguments(p)
    return p


def options_from(args: argparse.Namespace) -> Options:
    if args.workers > 1000:
        raise CliError("--workers must be at most 1000")
    if (args.stop_node is None) != (args.at is None):
        raise CliError("--stop-node and --at go together: --stop-node N --at SECONDS")
    if not args.url.startswith(("http://", "https://")):
        raise CliError(f"--url {args.url!r} must start with http:// or https://")
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CliError(f"--json {args.json}: cannot create its folder ({error.strerror})") from None
    return Options(
        test=args.test,
        size=args.size,
        workers=args.workers,
        url=args.url,
        seed=args.seed,
        keep=args.keep,
        json_path=args.json,
        stop_node=args.stop_node,
        at=args.at or 0.0,
        down_for=args.down_for,
        time_limit=args.time_limit or 600.0,
        request_timeout=args.request_timeout or 30.0,
    )


def check_node(index: int) -> None:
    """--stop-node works on the project's own local cluster only (`python -m cluster`)."""
    import cluster

    size = cluster.running_size()
    if not size:
        raise CliError("--stop-node needs the local cluster of `python -m cluster up --nodes 3`; none is running")
    if index > size:
        raise CliError(f"--stop-node {index}: the local cluster has {size} node(s)")
    if size < 3:
        raise CliError(f"--stop-node on a {size}-node cluster leaves no quorum; use `python -m cluster up --nodes 3`")


async def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = options_from(args)
    if options.stop_node is not None:
        check_node(options.stop_node)
    settings = settings_from(args)
    async with open_database(settings) as db:
        if not keyspace_exists(db, settings.keyspace):
            raise CliError(f"keyspace {settings.keyspace} does not exist: start the app or run `python -m seeder`")
        report = await execute(options, Library(db))
    print(summary(report))
    if options.json_path is not None:
        write_json(report, options.json_path)
    return 1 if report.violations else 0


if __name__ == "__main__":
    run_cli(main)
