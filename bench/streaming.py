"""python -m bench.streaming: the app's memory while it streams every reservation as one JSON array.

`GET /api/reservations` without paging answers every reservation, as the earlier system did. It is written a
Cassandra page at a time, so the app's memory should not grow with the number of reservations. This writes N
reservation rows into a keyspace of its own (straight into the `reservations` table: the listing reads only
that), starts `python -m app` on it, and samples the app's resident memory (VmRSS) every 20 ms while a client
reads the whole listing, then prints the memory before, the peak during, and what the client received.
Measurement only: nothing here is a test's verdict.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from cassandra.concurrent import execute_concurrent_with_args

from app.db import Database
from app.launcher import running_app_process
from app.schema import apply_schema
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import CliError, add_database_arguments, run_cli, settings_from

DEFAULT_KEYSPACE = "bench_streaming"
LOG = Path("artifacts/logs/bench-streaming-app.log")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise CliError(f"no VmRSS for process {pid}")


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench.streaming",
        description="Measure the app's memory while GET /api/reservations streams N reservations.",
    )
    p.add_argument("--reservations", type=number(int, 1), default=100_000, help="how many (default 100000)")
    add_database_arguments(p)
    p.set_defaults(keyspace=DEFAULT_KEYSPACE)
    return p


async def fill(db: Database, keyspace: str, n: int) -> None:
    """N rows in `reservations`, and nothing else."""
    await db.execute_raw(f"TRUNCATE {keyspace}.reservations")
    insert = await db.prepare(
        f"INSERT INTO {keyspace}.reservations (reservation_id, book_id, user_id, reserved_at, version) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = [(uuid.uuid4(), uuid.uuid4(), i % 1000 + 1, at, 1) for i in range(n)]
    started = time.monotonic()
    for _ in range(10):  # writes that time out on a busy machine are sent again
        results = await asyncio.to_thread(
            execute_concurrent_with_args, db.session, insert, rows, concurrency=32, raise_on_first_error=False
        )
        rows = [row for row, (ok, _) in zip(rows, results, strict=True) if not ok]
        if not rows:
            break
    else:
        raise CliError(f"{len(rows)} rows could not be written")
    print(f"wrote {n} reservations in {time.monotonic() - started:.0f} s", flush=True)


async def read_all(url: str) -> tuple[int, int, float]:
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(f"{url}/api/reservations") as response:
        body = await response.read()
    return len(json.loads(body)), len(body), time.monotonic() - started


async def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings_from(args)
    db = await Database.connect(settings)
    try:
        await apply_schema(db, settings)
        await fill(db, settings.keyspace, args.reservations)
    finally:
        db.close()
    with running_app_process(settings.cassandra_hosts, settings.keyspace, LOG) as (url, process):
        started = rss_kib(process.pid)
        await read_all(url)  # once to warm up: prepared statements, the first connections
        before = rss_kib(process.pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kib(process.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        items, size, seconds = await read_all(url)
        done.set()
        sampler.join()
    print(
        f"streamed {items} reservations ({size / 1e6:.1f} MB of JSON) in {seconds:.1f} s; app memory (RSS): "
        f"{started / 1024:.1f} MiB once started, {before / 1024:.1f} MiB after a first full listing, "
        f"{peak / 1024:.1f} MiB at the peak of a second (+{(peak - before) / 1024:.1f} MiB)"
    )
    if items < args.reservations:
        raise CliError(f"the listing held {items} reservations, fewer than the {args.reservations} written")
    return 0


if __name__ == "__main__":
    run_cli(main)
