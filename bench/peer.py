"""python -m bench peer: this service against the naive peer (bench/naive_peer.py), the earlier system's algorithm,
on the same cluster, through the same client.

Both apps are started on the running cluster, each in a keyspace of its own. After an untimed warm-up of each,
stress_test.py's five tests run against each through the earlier system's endpoints (`--legacy`, `--naive-peer`),
one after the other with the same sizes, in alternating order from run to run; each run of a test is a process of
its own, as a user would start it, with its verdict (the history check, and for this service the audit). Every
figure is the median of the runs with their spread, and each run's ratio is taken within that run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.schema import apply_schema
from app.settings import Settings
from bench.run import PROJECT_DIR, cpu_seconds, machine, running_app
from bench.table import median_spread, spread
from stress.scenarios import LEGACY_TESTS, TESTS
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import CliError, open_database

APPS = ("ours", "naive")
# This service's tables a stress run fills, emptied before each of its tests as the naive peer's are (stress/run.py,
# `prepare_naive`): a stress run deletes its books and readers one by one through the library, as a user would, and a
# table of deleted rows is slower to page through than an empty one (a hundred-book page of the catalogue read
# 270 ms after nine tests' deletions, 20 ms on the peer's truncated table), which would slow each test by the ones
# before it. The shared secrets and the schema's version stay: the running app holds the first.
EMPTIED_BEFORE_EACH_TEST = (
    "books",
    "users",
    "sessions",
    "user_sessions",
    "pin_attempts",
    "staff_actions",
    "book_history",
    "reservation_by_book_id",
    "reservations",
    "user_reservations",
    "book_reservations",
    "reservation_keys",
)
STRESS_TIMEOUT = 1800  # seconds for one stress run, beyond its own --time-limit
WARMUP_TEST = 2  # every kind of request


@dataclass(frozen=True)
class PeerOptions:
    size: int
    workers: int
    runs: int
    tests: list[int]
    keyspace: str
    warmup: int
    json: Path | None
    logs: Path = PROJECT_DIR / "artifacts" / "bench"


def tests_list(text: str) -> list[int]:
    tests = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) not in LEGACY_TESTS:
            choices = ", ".join(map(str, LEGACY_TESTS))
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a test: choose from {choices}")
        tests.append(int(part))
    return tests


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench peer",
        description=(
            "Measure this service against the naive peer (the earlier system's algorithm, bench/naive_peer.py) on "
            "the running cluster: stress_test.py's tests through the earlier system's endpoints, against each app "
            "with the same sizes, after an untimed warm-up of each. Prints, per test, each app's time, throughput "
            "and p50/p99 latency, the ratio ours / naive and each history check's verdict, as the median of the "
            "runs and their spread; the last line is the slowest ratio."
        ),
        epilog=(
            "The cluster is $CASSANDRA_HOSTS, else the local one (`python -m cluster up`), which must be running. "
            "This service's data goes to keyspace --keyspace, the peer's to KEYSPACE_naive; both are emptied as "
            "the runs go. Each stress run's log and JSON go to artifacts/bench/peer-*/."
        ),
    )
    p.add_argument("--size", type=number(int, 1), default=1000, help="each test's --size (default 1000)")
    p.add_argument("--workers", type=number(int, 1, 1000), default=20, help="each test's --workers (default 20)")
    p.add_argument("--runs", type=number(int, 1, 20), default=3, help="runs of every test on each app (default 3)")
    p.add_argument(
        "--tests",
        type=tests_list,
        default=list(LEGACY_TESTS),
        metavar="N,N,...",
        help="which tests (default all five the earlier system's endpoints can run)",
    )
    p.add_argument(
        "--warmup", type=number(int, 0), help="the warm-up's size, test 2 on each app (default: a tenth of --size)"
    )
    p.add_argument("--keyspace", default="bench_peer", help="this service's keyspace (default bench_peer)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures to FILE")
    return p


def options_from(args: argparse.Namespace) -> PeerOptions:
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CliError(f"--json {args.json}: cannot create its folder ({error.strerror})") from None
    warmup = args.warmup if args.warmup is not None else max(1, args.size // 10)
    return PeerOptions(args.size, args.workers, args.runs, args.tests, args.keyspace, warmup, args.json)


def cluster_hosts() -> list[str]:
    hosts = [h.strip() for h in os.environ.get("CASSANDRA_HOSTS", "").split(",") if h.strip()]
    if hosts:
        return hosts
    import cluster

    if not cluster.running_size():
        raise CliError("no cluster is running: start one (`python -m cluster up --nodes 3`) or set CASSANDRA_HOSTS")
    return cluster.contact_points()


def cassandra_pids(hosts: list[str]) -> list[int]:
    """The pids of the nodes of `hosts` when they are this machine's local cluster (`python -m cluster`), for the CPU
    they use; none for a cluster of other machines."""
    import cluster

    return [node.pid for node in cluster.status() if node.pid is not None and node.address in hosts]


def _used(before: list[float | None], after: list[float | None]) -> float | None:
    """CPU seconds used by a group of processes between two readings; None if one of them went away meanwhile."""
    pairs = list(zip(before, after, strict=True))
    if not pairs:
        return None
    used = 0.0
    for b, a in pairs:
        if b is None or a is None:
            return None
        used += a - b
    return used


def stress(
    test: int, app: str, url: str, size: int, workers: int, keyspace: str, folder: Path, label: str, hosts: list[str]
) -> dict[str, Any]:
    """One stress_test.py run as its own process; its JSON report, with its exit status."""
    json_path = folder / f"{label}.json"
    flag = "--naive-peer" if app == "naive" else "--legacy"
    command = [sys.executable, "stress_test.py", str(test), "--size", str(size), "--workers", str(workers)]
    command += ["--url", url, flag, "--keyspace", keyspace, "--json", str(json_path)]
    env = {**os.environ, "CASSANDRA_HOSTS": ",".join(hosts), "PYTHONPATH": str(PROJECT_DIR)}
    with (folder / f"{label}.log").open("w") as log:
        done = subprocess.run(
            command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=STRESS_TIMEOUT
        )
    if not json_path.exists():
        raise CliError(f"stress test {test} against {app} did not finish (exit {done.returncode}); see {log.name}")
    report: dict[str, Any] = json.loads(json_path.read_text())
    report["exit_status"] = done.returncode
    return report


def summarize(runs: list[dict[str, Any]], tests: list[int]) -> list[dict[str, Any]]:
    """Per test: each app's figures and the ratio ours / naive, as the median of the runs and their spread."""
    rows = []
    for test in tests:
        mine = [r for r in runs if r["test"] == test]
        row: dict[str, Any] = {"test": test, "title": TESTS[test].title, "unit": TESTS[test].unit}
        for app in APPS:
            reports = [r["report"] for r in mine if r["app"] == app]
            row[app] = {
                "seconds": median_spread([r["seconds"] for r in reports]),
                # The test's own units (requests, books, cycles, changes) per second: both apps do the same work, while
                # their request counts differ (a lost race is a cheap extra request).
                "throughput": median_spread([TESTS[test].total(r["size"]) / max(r["seconds"], 0.01) for r in reports]),
                "p50_ms": median_spread([r["latency_ms"].get("p50", 0.0) for r in reports]),
                "p99_ms": median_spread([r["latency_ms"].get("p99", 0.0) for r in reports]),
                "violations": sum(len(r["violations"]) for r in reports),
                "errors": sum(sum(r["errors"].values()) for r in reports),
                "requests": sum(r["requests"] for r in reports),
                "first_violation": next((r["violations"][0] for r in reports if r["violations"]), None),
                "cpu_ms_per_request": {kind: _per_request(reports, kind) for kind in ("app", "cassandra")},
            }
        ratios = []  # each run's ratio of throughputs, ours / naive: its naive time over ours
        for run in sorted({r["run"] for r in mine}):
            ours = next(r["report"]["seconds"] for r in mine if r["run"] == run and r["app"] == "ours")
            naive = next(r["report"]["seconds"] for r in mine if r["run"] == run and r["app"] == "naive")
            ratios.append(naive / max(ours, 0.01))
        row["ratio"] = median_spread(ratios)
        rows.append(row)
    return rows


def _per_request(reports: list[dict[str, Any]], kind: str) -> dict[str, float] | None:
    """The CPU milliseconds a kind of process (the app, the Cassandra nodes together) used per request of the
    test, median and spread; None when it could not be read (a cluster of other machines)."""
    used = [r.get("cpu_seconds", {}).get(kind) for r in reports]
    values = [1000 * u / max(r["requests"], 1) for u, r in zip(used, reports, strict=True) if u is not None]
    return median_spread(values) if values else None


def render(rows: list[dict[str, Any]], options: PeerOptions) -> str:
    lines = [
        f"this service against the naive peer: size {options.size}, workers {options.workers}, {options.runs} run(s) "
        "each; medians [spread]",
    ]
    for row in rows:
        lines.append(f"test {row['test']}: {row['title']}")
        for app in APPS:
            f = row[app]
            verdict = "PASS" if not f["violations"] else f"{f['violations']} violations, e.g. {f['first_violation']}"
            cpu = [f"{kind} {spread(v, 2)} ms" for kind, v in f["cpu_ms_per_request"].items() if v is not None]
            lines.append(
                f"  {app:<6} {spread(f['seconds'], 1)} s, {spread(f['throughput'], 1)} {row['unit']}/s, "
                f"p50 {spread(f['p50_ms'], 1)} ms, p99 {spread(f['p99_ms'], 1)} ms, errors {f['errors']}; {verdict}"
                + (f"; CPU per request: {', '.join(cpu)}" if cpu else "")
            )
        lines.append(f"  ratio ours / naive {spread(row['ratio'], 2)}")
    slowest = min(rows, key=lambda r: r["ratio"]["median"])
    lines.append(f"slowest ratio vs naive: {slowest['ratio']['median']:.2f} (test {slowest['test']})")
    return "\n".join(lines)


async def execute(options: PeerOptions) -> dict[str, Any]:
    hosts = cluster_hosts()
    settings = dataclasses.replace(Settings.from_env().with_hosts(hosts), keyspace=options.keyspace)
    settings = dataclasses.replace(settings, seed_demo_data=False)
    naive_keyspace = f"{options.keyspace}_naive"
    async with open_database(settings) as db:
        await apply_schema(db, settings)  # the app's schema, before the app starts (two creators race)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = options.logs / f"peer-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    peer_module = ("bench.naive_peer", "--keyspace", naive_keyspace, "--hosts", ",".join(hosts))
    naive_settings = dataclasses.replace(settings, keyspace=naive_keyspace)
    nodes = cassandra_pids(hosts)
    with contextlib.ExitStack() as stack:
        apps = {
            "ours": stack.enter_context(running_app(settings, folder / "app.log")),
            "naive": stack.enter_context(running_app(naive_settings, folder / "naive_peer.log", module=peer_module)),
        }
        keyspaces = {"ours": options.keyspace, "naive": naive_keyspace}

        def one(test: int, app: str, size: int, label: str) -> dict[str, Any]:
            print(f"{label}: test {test} against {app}", file=sys.stderr, flush=True)
            pids = {"app": [apps[app].pid], "cassandra": nodes}
            before = {kind: [cpu_seconds(pid) for pid in group] for kind, group in pids.items()}
            report = stress(test, app, apps[app].url, size, options.workers, keyspaces[app], folder, label, hosts)
            report["cpu_seconds"] = {
                kind: _used(before[kind], [cpu_seconds(pid) for pid in group]) for kind, group in pids.items()
            }
            return report

        async def then(test: int, app: str, size: int, label: str) -> dict[str, Any]:
            if app == "ours":
                await empty_tables(settings, options.keyspace)
            return await asyncio.to_thread(one, test, app, size, label)

        for app in APPS:
            await then(WARMUP_TEST, app, options.warmup, f"warmup-{app}")
        for run in range(1, options.runs + 1):
            order = APPS if run % 2 else tuple(reversed(APPS))  # neither app always runs on a cluster just busied
            for test in options.tests:
                for app in order:
                    report = await then(test, app, options.size, f"run{run}-test{test}-{app}")
                    runs.append({"run": run, "test": test, "app": app, "report": report})
    rows = summarize(runs, options.tests)
    return {
        "size": options.size,
        "workers": options.workers,
        "runs": options.runs,
        "hosts": hosts,
        "machine": machine(),
        "logs": str(folder),
        "tests": rows,
        "every_run": runs,
    }


async def empty_tables(settings: Settings, keyspace: str) -> None:
    """EMPTIED_BEFORE_EACH_TEST, truncated (every node must be up, as for the naive peer's)."""
    async with open_database(settings) as db:
        for table in EMPTIED_BEFORE_EACH_TEST:
            await db.execute_raw(f"TRUNCATE {keyspace}.{table}")


async def main(argv: list[str]) -> int:
    options = options_from(parser().parse_args(argv))
    result = await execute(options)
    print(render(result["tests"], options))
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {options.json}", file=sys.stderr)
    return 0 if all(row["ours"]["violations"] == 0 for row in result["tests"]) else 1
