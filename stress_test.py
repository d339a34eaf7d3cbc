"""python stress_test.py <1-7> --size N --workers W: hammer the HTTP API, then prove nothing went wrong.

Every run ends with a verdict: the audit of the reservation tables and a check of the history the clients
saw. Exit status 0 is PASS, 1 means violations were found, 2 that the run could not be made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
from pathlib import Path

from app.repository import Library
from bench import naive_peer
from stress.faults import Fleet
from stress.run import Options, execute, summary, write_json
from stress.scenarios import LEGACY_TESTS, TESTS
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import (
    CliError,
    add_database_arguments,
    keyspace_exists,
    open_database,
    run_cli,
    settings_from,
)

DEFAULT_URL = "http://localhost:8888"


def parser() -> ArgumentParser:
    tests = "\n".join(f"  {t.number}  {t.title}" for t in TESTS.values())
    p = ArgumentParser(
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
            "unless --keep.\n\n"
            "Faults, which may be combined: --instances starts copies of the app itself (their logs go to "
            "artifacts/logs/); --skew gives two of them a wrong clock; --pause-every freezes one now and then; "
            "--repair-every repairs the tables while the requests run; --stop-node (with --crash) takes a "
            "Cassandra node away. The summary says what was injected."
        ),
    )
    p.add_argument(
        "test",
        type=int,
        choices=sorted(TESTS),
        help="which test to run (1-7; 6 and 7 are the queues: 7 needs the app's pickup window at 2 s, as its "
        "copies under --instances have)",
    )
    p.add_argument("--size", type=number(int, 1), default=100, help="requests, books, cycles or changes (default 100)")
    p.add_argument("--workers", type=number(int, 1), default=10, help="concurrent clients (default 10)")
    p.add_argument("--url", help=f"the app (default $STRESS_URL, else {DEFAULT_URL})")
    p.add_argument(
        "--instances",
        type=number(int, 1, 8),
        metavar="N",
        help="start N copies of the app (python -m app) on free ports against the keyspace, instead of using "
        "--url, and send the requests to each in turn; a retry goes to the next copy",
    )
    p.add_argument(
        "--skew",
        type=float,
        metavar="SECONDS",
        help="with --instances 2 or more: copy 2 runs with its clock SECONDS ahead, copy 3 (if any) as far behind",
    )
    p.add_argument(
        "--pause-every",
        type=number(float, 0.1),
        metavar="SECONDS",
        help="with --instances: about this often, freeze a random copy (SIGSTOP) for 0.2 to 2 seconds, then let "
        "it carry on (SIGCONT)",
    )
    p.add_argument(
        "--repair-every",
        type=number(float, 0),
        metavar="SECONDS",
        help="during the run, check and repair the tables (the audit with repair) again and again, this many "
        "seconds apart",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures and the verdict to FILE")
    p.add_argument(
        "--history", type=Path, metavar="FILE", help="also write every request sent and its answer to FILE (JSON lines)"
    )
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
        "--crash",
        action="store_true",
        help="with --stop-node: kill the node at once (SIGKILL), as in a crash, instead of shutting it down",
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
    p.add_argument(
        "--legacy",
        action="store_true",
        help="send the earlier system's requests (POST /make_reservation, /update_reservation, /remove_reservation; "
        "GET /api/reservations), which this service serves in development: the client names each reservation, "
        "test 5 renews instead of moving, and a read lists every reservation",
    )
    p.add_argument(
        "--naive-peer",
        action="store_true",
        help="the app at --url is the bench's naive peer (python -m bench.naive_peer): the run's books go to its "
        f"own keyspace (--keyspace, default {naive_peer.DEFAULT_KEYSPACE}), emptied first; it has no readers and "
        "nothing is audited. Implies --legacy",
    )
    add_database_arguments(p)
    return p


def options_from(args: argparse.Namespace) -> Options:
    if args.workers > 1000:
        raise CliError("--workers must be at most 1000")
    if (args.legacy or args.naive_peer) and args.test not in LEGACY_TESTS:
        raise CliError(
            f"test {args.test} needs the queue, which the earlier system's endpoints do not have: leave out --legacy"
        )
    if (args.stop_node is None) != (args.at is None):
        raise CliError("--stop-node and --at go together: --stop-node N --at SECONDS")
    if args.crash and args.stop_node is None:
        raise CliError("--crash says how to stop a node: use it with --stop-node N --at SECONDS")
    if args.instances is not None and args.url is not None:
        raise CliError("--instances starts its own copies of the app: leave out --url")
    if args.skew is not None and (args.instances or 0) < 2:
        raise CliError("--skew needs --instances 2 or more (copy 2 runs ahead, copy 3 behind)")
    if args.skew is not None and not 0 < abs(args.skew) <= 3600:
        raise CliError(f"--skew {args.skew:g}: give a number of seconds, not 0, at most 3600 either way")
    if args.pause_every is not None and args.instances is None:
        raise CliError("--pause-every freezes copies of the app this tool starts: add --instances N")
    if args.naive_peer and (args.instances or args.repair_every is not None):
        raise CliError("--naive-peer measures the peer at --url as it is: no --instances, no --repair-every")
    url = args.url or os.environ.get("STRESS_URL") or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url {url!r} must start with http:// or https://")
    for flag, path in (("--json", args.json), ("--history", args.history)):
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise CliError(f"{flag} {path}: cannot create its folder ({error.strerror})") from None
    return Options(
        test=args.test,
        size=args.size,
        workers=args.workers,
        url=url,
        seed=args.seed,
        keep=args.keep,
        json_path=args.json,
        stop_node=args.stop_node,
        at=args.at or 0.0,
        down_for=args.down_for,
        time_limit=args.time_limit or 600.0,
        request_timeout=args.request_timeout or 30.0,
        crash=args.crash,
        pause_every=args.pause_every,
        repair_every=args.repair_every,
        history_path=args.history,
        legacy=args.legacy or args.naive_peer,
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
    if args.naive_peer and not args.keyspace:
        args.keyspace = naive_peer.DEFAULT_KEYSPACE
    settings = settings_from(args)
    if args.naive_peer:
        options = dataclasses.replace(options, naive_keyspace=settings.keyspace)
    async with open_database(settings) as db:
        if not keyspace_exists(db, settings.keyspace):
            raise CliError(f"keyspace {settings.keyspace} does not exist: start the app or run `python -m seeder`")
        with contextlib.ExitStack() as stack:
            fleet = None
            if args.instances:
                fleet = Fleet(
                    settings.cassandra_hosts,
                    settings.keyspace,
                    args.instances,
                    args.skew or 0.0,
                    env=TESTS[args.test].app_env,
                )
                try:
                    await asyncio.to_thread(stack.enter_context, fleet)
                except RuntimeError as error:
                    raise CliError(f"could not start {args.instances} copies of the app: {error}") from None
                options = dataclasses.replace(options, urls=tuple(fleet.urls), url=fleet.urls[0])
            report = await execute(options, Library(db), fleet)
    print(summary(report))
    if options.json_path is not None:
        write_json(report, options.json_path)
    return 1 if report.violations else 0


if __name__ == "__main__":
    run_cli(main)
