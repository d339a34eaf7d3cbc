"""The background repair on a real cluster (app/repository/repair_loop.py): one holder of the lease at a time among
loops on separate connections and among `python -m app` processes, another taking over when the holder dies (a
task cancelled without a word, a process killed with SIGKILL); the loop repairing a corrupted view by itself; and
the lease and the passes going on through a node kill; and a short run of `python -m bench repair`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_audit_corruption import hold_by_hand
from tool_support import PROJECT_DIR, fresh_keyspace, run_tool, tool_env

import cluster
from app.db import Database
from app.launcher import running_app_process
from app.repository import Library
from app.repository.repair_loop import CassandraLease, gap_after
from app.settings import Settings

TTL = 3  # seconds: the shortest lease the settings take
EVERY = 1.0
SLACK = 3.0  # a loaded two-core machine: requests that take a second or two
USER = 2_000_004_343


@pytest.fixture
async def instances(settings: Settings, database: Database) -> AsyncIterator[list[Library]]:
    """Two instances on connections of their own (beside the tests' `database`, which makes the keyspace), whose
    repair acts on whatever it verified (settle time 0), and no lease left over from an earlier test."""
    own = dataclasses.replace(settings, settle_after_seconds=0)
    libraries = [Library(await Database.connect(own)) for _ in range(2)]
    await libraries[0].db.execute_raw(f"TRUNCATE {settings.keyspace}.repair_lease")
    yield libraries
    for library in libraries:
        library.db.close()


async def until(condition: Any, seconds: float, every: float = 0.1) -> float:
    """Waits until `condition()` is true; answers how long that took, or fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not so after {seconds:.0f} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def test_one_loop_holds_the_lease_and_the_other_takes_over_when_it_dies(instances: list[Library]) -> None:
    loops = [
        library.repair_loop(every=EVERY, lease_seconds=TTL, holder=f"loop-{i}") for i, library in enumerate(instances)
    ]
    lease = instances[0].repair_lease
    for loop in loops:
        loop.start()
    try:
        await until(lambda: any(loop.figures.holding for loop in loops), TTL + SLACK)
        for _ in range(20):  # 4 s: more than a TTL, renewed the while
            holding = [loop.holder for loop in loops if loop.figures.holding]
            assert len(holding) == 1, holding
            await asyncio.sleep(0.2)
        row = await lease.read(serial=True)
        (holder,) = [loop for loop in loops if loop.figures.holding]
        (other,) = [loop for loop in loops if loop is not holder]
        assert row.holder == holder.holder
        # Passes come EVERY s apart, or 19 times a pass's length apart once passes are long (REPAIR_TIME_SHARE): late
        # in a CI run the test keyspace's audit takes about half a second, and the second pass comes after 9 s.
        gap = gap_after(holder.figures.last_pass_seconds, EVERY)
        await until(lambda: holder.figures.passes >= 2, 2 * gap + SLACK)
        assert other.figures.passes == 0
        assert holder.figures.leases_taken == 1 and holder.figures.leases_lost == 0

        await holder.abandon()  # as if killed: the lease is not released
        took = await until(lambda: other.figures.holding, TTL + EVERY + SLACK)
        print(f"\ntaken over {took:.1f} s after the holder died (TTL {TTL} s, renewed every {TTL / 3:g} s)")
        await until(lambda: other.figures.passes >= 1, EVERY + SLACK)
        assert (await lease.read(serial=True)).holder == other.holder
    finally:
        for loop in loops:
            await loop.stop()
    assert (await lease.read(serial=True)).holder is None  # released on the way out


async def test_the_loop_repairs_a_corrupted_view_by_itself(instances: list[Library], database: Database) -> None:
    library = instances[0]
    await library.import_user("Repair Loop Reader", "repair.loop@example.org", USER)
    book = await library.create_book("Held by hand, mended by the loop", "Nobody", "Test", 2000)
    reservation = await hold_by_hand(database, book.book_id, USER)
    loop = library.repair_loop(every=EVERY, lease_seconds=TTL)
    heard: list[int] = []
    loop.listeners.append(lambda figures, report: heard.append(figures.repairs_made))
    loop.start()
    try:
        repaired = await until(lambda: loop.figures.repairs_made >= 1, 2 * EVERY + TTL + SLACK)
    finally:
        await loop.stop()
    print(f"\nrepaired {repaired:.1f} s after the loop started: {loop.figures}")
    assert loop.figures.violations_found >= 3 and heard
    assert (await library.get_reservation(reservation)).book_id == book.book_id
    assert not [v for v in (await library.audit()).violations if str(book.book_id) in v]
    await library.cancel(reservation, USER)


@pytest.mark.three_nodes
@pytest.mark.faults
async def test_the_lease_and_the_passes_go_on_through_a_node_kill(instances: list[Library], database: Database) -> None:
    """At the default TTL (30 s, renewed every 10 s) the lease outlives the time the failure detector takes to
    convict the killed node: QUORUM and SERIAL need two replicas of three. Passes that fail meanwhile are retried."""
    library = instances[0]
    loop = library.repair_loop(every=EVERY, lease_seconds=30)
    loop.start()
    try:
        await until(lambda: loop.figures.passes >= 1, 30)
        await asyncio.get_running_loop().run_in_executor(None, lambda: cluster.stop_node(3, kill=True))
        killed = time.monotonic()
        passes = loop.figures.passes
        await asyncio.sleep(25)  # about when the survivors convict the node here
        await until(lambda: loop.figures.passes >= passes + 3, 60)
        # Node 3 still down: a view corrupted now is mended by the loop.
        await library.import_user("Repair Loop Reader", "repair.loop@example.org", USER)
        book = await library.create_book("Mended with a node down", "Nobody", "Test", 2000)
        reservation = await hold_by_hand(database, book.book_id, USER)
        made = loop.figures.repairs_made
        await until(lambda: loop.figures.repairs_made > made, 2 * EVERY + 30)
        print(f"\nnode 3 down {time.monotonic() - killed:.0f} s: {loop.figures}")
        assert loop.figures.holding and loop.figures.leases_taken == 1 and loop.figures.leases_lost == 0
        assert (await library.get_reservation(reservation)).book_id == book.book_id
    finally:
        await asyncio.get_running_loop().run_in_executor(None, cluster.start_node, 3)
        await loop.stop()
    await library.cancel(reservation, USER)


async def test_two_app_processes_one_holder_and_a_takeover_after_sigkill(
    settings: Settings, cassandra_hosts: list[str]
) -> None:
    keyspace = "test_repair_apps"
    db = await fresh_keyspace(settings, keyspace)
    await db.execute_raw(f"TRUNCATE {keyspace}.repair_lease")
    lease = CassandraLease(db)
    env = {"REPAIR_EVERY_SECONDS": str(EVERY), "REPAIR_LEASE_SECONDS": str(TTL), "LOG_LEVEL": "INFO"}
    logs = PROJECT_DIR / "artifacts" / "logs"
    try:
        with (
            running_app_process(cassandra_hosts, keyspace, logs / "repair-app-1.log", extra_env=env) as (_, one),
            running_app_process(cassandra_hosts, keyspace, logs / "repair-app-2.log", extra_env=env) as (_, two),
        ):
            by_pid = {one.pid: one, two.pid: two}
            holders: set[str | None] = set()
            for _ in range(10):  # more than a TTL, renewed the while: always the same one
                holders.add((await lease.read(serial=True)).holder)
                await asyncio.sleep(0.5)
            (holder,) = holders
            assert holder is not None, holders
            pid = int(holder.split("/")[1])
            os.kill(by_pid[pid].pid, signal.SIGKILL)
            by_pid[pid].wait()
            (survivor,) = [p for p in by_pid if p != pid]
            started = time.monotonic()
            while True:
                now = (await lease.read(serial=True)).holder
                if now is not None and int(now.split("/")[1]) == survivor:
                    break
                assert time.monotonic() - started < TTL + EVERY + SLACK, now
                await asyncio.sleep(0.1)
            print(f"\nprocess {survivor} took the lease {time.monotonic() - started:.1f} s after {pid} was killed")
            survivor_log = logs / f"repair-app-{1 if survivor == one.pid else 2}.log"
            await until(lambda: "background repair: pass" in survivor_log.read_text(), EVERY + SLACK)
            assert "took the repair lease" in survivor_log.read_text()
    finally:
        db.close()


def test_bench_repair_prints_every_row_with_its_ratio(cassandra_hosts: list[str], tmp_path: Path) -> None:
    """`python -m bench repair` at a tiny size: only the shape of what it prints and writes is checked."""
    figures = tmp_path / "repair.json"
    args = ["-m", "bench", "repair", "--books", "40", "--runs", "1", "--lease-seconds", "3", "--json", str(figures)]
    result = run_tool([*args, "--keyspace", "test_bench_repair"], tool_env(cassandra_hosts, "test_bench_repair"))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    for row in ("off", "every 60 s (default)", "every 1 s, unthrottled"):
        assert row in result.stdout
    summary = json.loads(figures.read_text())["summary"]
    assert [row["mode"] for row in summary] == ["off", "every 60 s (default)", "every 1 s, unthrottled"]
    assert summary[0]["ratio"]["median"] == 1 and all(row["errors"] == 0 for row in summary)
    assert summary[1]["pass_seconds"] is not None
