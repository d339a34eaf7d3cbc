"""Each stress test at a small size against the real app (a subprocess) on real Cassandra: PASS and exit 0 (test 7
against a copy the tool starts with a pickup window of seconds).
Also: a corrupted database makes a run FAIL with exit 1, and unreserve_all.py empties what a run kept."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tool_support import fresh_keyspace, run_tool, tool_env

from app.db import Database
from app.launcher import running_app
from app.repository import Library
from app.settings import Settings

KEYSPACE = "test_stress"
# (size, workers): enough to make the requests collide, small enough for CI on two cores.
SIZES = {1: (20, 5), 2: (40, 4), 3: (20, 4), 4: (10, 2), 5: (20, 4), 6: (30, 6), 7: (20, 4)}
# Test 7 needs the app's holds to expire in seconds: the tool starts its own copy, with the window the test asks for.
OWN_APP = {7}


@pytest.fixture(scope="module")
async def stress_db(settings: Settings) -> AsyncIterator[Database]:
    db = await fresh_keyspace(settings, KEYSPACE)
    yield db
    db.close()


@pytest.fixture(scope="module")
def app_url(stress_db: Database, cassandra_hosts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # No background repair (running_app's default): the stress tool's verdict is the audit of what the requests left.
    log = tmp_path_factory.mktemp("app") / "app.log"
    with running_app(cassandra_hosts, KEYSPACE, log) as url:
        yield url


def stress(test: int, url: str, hosts: list[str], *extra: str) -> tuple[int, str, str]:
    size, workers = SIZES[test]
    app = ["--instances", "1"] if test in OWN_APP else ["--url", url]
    args = ["stress_test.py", str(test), "--size", str(size), "--workers", str(workers), *app, *extra]
    result = run_tool([*args, "--time-limit", "120"], tool_env(hosts, KEYSPACE))
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("test", sorted(SIZES))
def test_stress_test_passes(test: int, app_url: str, cassandra_hosts: list[str], tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    status, out, err = stress(test, app_url, cassandra_hosts, "--json", str(report_path))
    assert status == 0, out + err[-3000:]
    assert out.rstrip().endswith("PASS")
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "PASS"
    assert report["violations"] == []
    assert report["requests"] >= SIZES[test][0]
    assert report["audit"]["clean"]
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max"}


async def test_a_corrupted_database_fails_the_run(
    app_url: str, cassandra_hosts: list[str], stress_db: Database
) -> None:
    book, reservation = uuid.uuid4(), uuid.uuid4()
    lock = f"{KEYSPACE}.reservation_by_book_id"
    await stress_db.execute_raw(
        f"INSERT INTO {lock} (book_id, state, reservation_id, user_id, reserved_at, version) "
        f"VALUES ({book}, 'held', {reservation}, 7, toTimestamp(now()), 1)"
    )
    try:
        status, out, _ = await asyncio.to_thread(stress, 1, app_url, cassandra_hosts)
    finally:
        await stress_db.execute_raw(f"DELETE FROM {lock} WHERE book_id = {book}")
    assert status == 1
    assert "FAIL" in out
    assert f"audit: lock on book {book} holds reservation {reservation}, missing from reservations" in out


async def test_unreserve_all_cancels_what_a_run_kept(
    app_url: str, cassandra_hosts: list[str], stress_db: Database
) -> None:
    status, out, err = await asyncio.to_thread(stress, 3, app_url, cassandra_hosts, "--keep")
    assert status == 0, out + err[-3000:]
    library = Library(stress_db)
    assert len((await library.list_reservations(page_size=200)).items) == SIZES[3][0]

    result = await asyncio.to_thread(run_tool, ["unreserve_all.py", "--yes"], tool_env(cassandra_hosts, KEYSPACE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"removed {SIZES[3][0]} reservations from keyspace {KEYSPACE}"
    assert (await library.list_reservations(page_size=200)).items == []
    report = await library.audit()
    assert report.clean and report.locks == 0


def test_unreserve_all_asks_before_cancelling(cassandra_hosts: list[str], stress_db: Database) -> None:
    result = run_tool(["unreserve_all.py"], tool_env(cassandra_hosts, KEYSPACE))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: no terminal to confirm on: pass --yes to cancel every reservation without asking"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stress_test.py", "1", "--stop-node", "2"], "error: --stop-node and --at go together"),
        (["stress_test.py", "1", "--url", "localhost:8888"], "must start with http:// or https://"),
        (["stress_test.py", "1", "--url", "http://127.0.0.1:9"], "error: cannot reach the app at http://127.0.0.1:9"),
        (["stress_test.py", "1", "--size", "0"], "must be at least 1"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], message: str, cassandra_hosts: list[str]) -> None:
    result = run_tool(args, tool_env(cassandra_hosts, KEYSPACE), timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
