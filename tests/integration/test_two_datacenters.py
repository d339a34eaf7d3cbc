"""Two datacenters, an app instance in each, racing for the same books: on the local cluster of
`python -m cluster up --dcs 2` (dc1 on nodes 1-2, dc2 on nodes 3-4, two replicas in each). `make test` runs this
module on its own after the other passes; on any other cluster it is skipped.

- Both instances send every book's two reserves at the same instant, and stress tests 1 and 3 run through both:
  0 double bookings at SERIAL, which the service chooses by itself for a keyspace in two datacenters.
- A split brain, one side at a time (dc1 cut off while dc2 reserves, then dc2 cut off while dc1 reserves the same
  books), with stress test 3 running through it: each side answers 503 rather than guessing, dc2's catalogue
  still reads, and the run ends with 0 violations and the audit clean.
- The same split brain at LOCAL_SERIAL, forced, double-books every book: the test is one the broken setting fails.
- LOCAL_SERIAL on such a keyspace, without the risk accepted by name, stops the service at start-up in one line.

Why stopped nodes, not a network cut: every internode connection here leaves from 127.0.0.1 (Cassandra binds no
source address), so no packet filter can tell dc1's traffic from dc2's, and this machine has no iptables or
netem. From dc2, a dc1 whose nodes are down or frozen is a dc1 that stopped answering, as behind a cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from cassandra import ConsistencyLevel
from tool_support import PROJECT_DIR, fresh_keyspace

import cluster
from app.launcher import running_app
from app.models import DatabaseUnavailable
from app.repository import Library
from app.settings import Settings
from stress.run import Options, execute
from toolkit.cli import bearer

pytestmark = pytest.mark.two_datacenters

KEYSPACE = "test_two_datacenters"
REPLICATION = "dc1:2,dc2:2"
RACED_BOOKS = 40  # books raced for at once, one reserve from each datacenter
CUT_BOOKS = 5  # books reserved through dc2 while dc1 is cut off, then through dc1
ANSWERS: list[str] = []  # the refusals' words, for a failure's message
LOCAL_SERIAL = {"CASSANDRA_SERIAL_CONSISTENCY": "LOCAL_SERIAL", "ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL": "1"}


@pytest.fixture(scope="module")
def datacenters() -> dict[str, list[str]]:
    found = cluster.running_datacenters()
    if len(found) < 2:
        pytest.skip("needs the local cluster of two datacenters (python -m cluster up --dcs 2)")
    return found


@pytest.fixture(scope="module")
async def library(datacenters: dict[str, list[str]]) -> AsyncIterator[Library]:
    """The test's own connection, in dc1, at the SERIAL the database chooses for this keyspace. It reads at QUORUM
    of all four replicas: it checks what both datacenters wrote, and right after a cut dc1's own replicas may not
    have dc2's writes yet (they arrive as hints): the service's LOCAL_QUORUM listings lag there, its locks do not
    (docs/scaling.md)."""
    settings = Settings(
        cassandra_hosts=datacenters["dc1"],
        keyspace=KEYSPACE,
        consistency=ConsistencyLevel.QUORUM,
        local_datacenter="dc1",
        replication_factor=2,
        replication_chosen=True,
        remote_replication=(("dc2", 2),),
        seed_demo_data=False,
    )
    db = await fresh_keyspace(settings, KEYSPACE)
    yield Library(db)
    db.close()


@pytest.fixture(scope="module")
async def staff(library: Library) -> dict[str, str]:
    return bearer(await library.session_for_tool("Two-datacenter test"))


@contextlib.contextmanager
def instances(
    datacenters: dict[str, list[str]], tmp: Path, extra_env: dict[str, str] | None = None
) -> Iterator[list[str]]:
    """`python -m app` in each datacenter, talking to its own datacenter's nodes only."""
    with contextlib.ExitStack() as stack:
        urls = []
        for dc, hosts in datacenters.items():
            env = {"CASSANDRA_LOCAL_DC": dc, "CASSANDRA_REPLICATION": REPLICATION, **(extra_env or {})}
            urls.append(stack.enter_context(running_app(hosts, KEYSPACE, tmp / f"app-{dc}.log", extra_env=env)))
        yield urls


async def new_books(library: Library, count: int) -> list[uuid.UUID]:
    books = [uuid.uuid4() for _ in range(count)]
    for i, book in enumerate(books):
        await library.create_book(f"Raced book {i}", "Two Datacenters", "test", 2001, book_id=book)
    return books


async def new_readers(library: Library, count: int) -> list[int]:
    cards = random.sample(range(900_000, 990_000), count)
    for card in cards:
        await library.import_user(f"Reader {card}", f"reader.{card}@example.org", card)
    return cards


async def reserve(http: aiohttp.ClientSession, url: str, staff: dict[str, str], card: int, book: uuid.UUID) -> int:
    body = {"book_id": str(book), "user_id": card, "idempotency_key": str(uuid.uuid4())}
    async with http.post(f"{url}/api/reservations", json=body, headers=staff) as response:
        if response.status >= 400:  # said with the test's failure, if it fails
            ANSWERS.append(f"{url} book {book}: {response.status} {(await response.text())[:200]}")
        return response.status


async def race(library: Library, staff: dict[str, str], urls: list[str]) -> dict[uuid.UUID, list[int]]:
    """Every book reserved at the same instant by two readers, one through each datacenter's instance; the
    answers for each book."""
    books = await new_books(library, RACED_BOOKS)
    readers = await new_readers(library, 2)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def both(book: uuid.UUID) -> tuple[uuid.UUID, list[int]]:
            answers = await asyncio.gather(
                *(reserve(http, u, staff, r, book) for u, r in zip(urls, readers, strict=True))
            )
            return book, list(answers)

        return dict(await asyncio.gather(*(both(book) for book in books)))


def double_booked(answers: dict[uuid.UUID, list[int]]) -> list[uuid.UUID]:
    return [book for book, statuses in answers.items() if sum(200 <= s < 300 for s in statuses) > 1]


# -- SERIAL: the service's choice for a keyspace in two datacenters ----------------------------------------------
async def test_two_datacenters_racing_for_every_book_never_double_book(
    library: Library, staff: dict[str, str], datacenters: dict[str, list[str]], tmp_path: Path
) -> None:
    with instances(datacenters, tmp_path) as urls:
        answers = await race(library, staff, urls)
    logs = [(tmp_path / f"app-{dc}.log").read_text() for dc in datacenters]
    assert all("lightweight transactions at SERIAL" in log for log in logs), logs[0][-2000:]
    assert double_booked(answers) == []
    # The race raced: one reader got the book and the other was refused, for most books. A 503 (a transaction that
    # timed out under the contention, its outcome left to whoever next reads the lock) is allowed, never a guess.
    assert all(set(statuses) <= {201, 409, 503} for statuses in answers.values()), answers
    assert sum(sorted(statuses) == [201, 409] for statuses in answers.values()) >= RACED_BOOKS // 2, answers
    report = await library.audit()
    assert report.clean, report.violations


@pytest.mark.parametrize("test", [1, 3])
async def test_stress_through_both_datacenters_passes(
    test: int, library: Library, datacenters: dict[str, list[str]], tmp_path: Path
) -> None:
    with instances(datacenters, tmp_path) as urls:
        options = Options(test=test, size=30, workers=6, url=urls[0], urls=tuple(urls), seed=test, time_limit=240)
        report = await execute(options, library)
    assert report.violations == [], report.violations
    assert report.audit["clean"]
    assert {i["requests"] > 0 for i in report.instances} == {True}, report.instances


# -- LOCAL_SERIAL: the race above is one that can be lost ----------------------------------------------------------
def test_local_serial_across_datacenters_is_refused_at_start_up(
    library: Library, datacenters: dict[str, list[str]]
) -> None:
    env = {
        **os.environ,
        "CASSANDRA_HOSTS": ",".join(datacenters["dc2"]),
        "CASSANDRA_LOCAL_DC": "dc2",
        "CASSANDRA_KEYSPACE": KEYSPACE,
        "CASSANDRA_REPLICATION": REPLICATION,
        "CASSANDRA_SERIAL_CONSISTENCY": "LOCAL_SERIAL",
        "SEED_DEMO_DATA": "0",
        "PYTHONPATH": str(PROJECT_DIR),
    }
    env.pop("ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL", None)
    result = subprocess.run(
        [sys.executable, "-m", "app"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "the keyspace is replicated to dc1, dc2" in last and "ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL=1" in last
    assert "Traceback" not in result.stderr


# -- a datacenter cut off ------------------------------------------------------------------------------------------
def freeze(addresses: list[str], how: signal.Signals) -> None:
    for node in cluster.status():
        if node.address in addresses and node.pid:
            os.kill(node.pid, how)


async def cut_then_race(
    library: Library, staff: dict[str, str], datacenters: dict[str, list[str]], urls: list[str]
) -> tuple[list[int], int, list[int]]:
    """A split brain, one side at a time. dc1 is cut off while a reader reserves books through dc2; then dc2 is
    cut off instead, and another reader reserves the same books through dc1. The answers: dc2's during its turn,
    dc2's catalogue page then, and dc1's during its turn.

    dc1 is cut off by killing its nodes, so that nothing dc2 sends it meanwhile can wait in a socket's buffer for
    it to wake (a frozen node's kernel keeps taking its messages, and a reset socket still hands them over); it is
    back, from its own commit log, while dc2 is frozen. Each side sees only its own replicas, as across a cut."""
    books = await new_books(library, CUT_BOOKS)
    readers = await new_readers(library, 2)
    dc1, dc2 = datacenters["dc1"], datacenters["dc2"]
    nodes = {node.address: node.index for node in cluster.status()}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as http:
        try:
            for address in dc1:
                await asyncio.to_thread(cluster.stop_node, nodes[address], True)
            dc2_turn = list(await asyncio.gather(*(reserve(http, urls[1], staff, readers[1], b) for b in books)))
            async with http.get(f"{urls[1]}/api/books?page_size=5", headers=staff) as response:
                catalogue = response.status
            freeze(dc2, signal.SIGSTOP)
            for address in dc1:
                await asyncio.to_thread(cluster.start_node, nodes[address], alone=True)
            await reachable(http, urls[0], staff)
            dc1_turn = list(await asyncio.gather(*(reserve(http, urls[0], staff, readers[0], b) for b in books)))
        finally:
            freeze(dc2, signal.SIGCONT)
            for address in dc1:  # every node back, and every node seeing the others UP
                await asyncio.to_thread(cluster.start_node, nodes[address])
            await reconnected(library)
    return dc2_turn, catalogue, dc1_turn


async def reconnected(library: Library, within: float = 60) -> None:
    """Until the test's own driver reaches dc1's restarted nodes again (it reconnects on its own time)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await library.db.execute(f"SELECT book_id FROM {KEYSPACE}.reservation_by_book_id LIMIT 1")
            return
        except DatabaseUnavailable:
            assert asyncio.get_running_loop().time() < deadline, "the test's driver did not reconnect to dc1"
            await asyncio.sleep(0.5)


async def reachable(http: aiohttp.ClientSession, url: str, staff: dict[str, str], within: float = 60) -> None:
    """Until the instance reads its catalogue again: its driver reconnects to restarted nodes on its own time."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with http.get(f"{url}/api/books?page_size=1", headers=staff) as response:
            if response.status == 200:
                return
        assert asyncio.get_running_loop().time() < deadline, f"{url} still cannot read: {response.status}"
        await asyncio.sleep(0.5)


def acknowledged_twice(during: list[int], after: list[int]) -> int:
    return sum(200 <= a < 300 and 200 <= b < 300 for a, b in zip(during, after, strict=True))


async def test_a_datacenter_cut_off_mid_run_answers_503_and_nothing_double_books(
    library: Library, staff: dict[str, str], datacenters: dict[str, list[str]], tmp_path: Path
) -> None:
    with instances(datacenters, tmp_path) as urls:
        # Stress test 3 through both datacenters all along, the cut in its middle.
        options = Options(test=3, size=150, workers=4, url=urls[0], urls=tuple(urls), seed=7, time_limit=300)
        run = asyncio.create_task(execute(options, library))
        await asyncio.sleep(4)
        during, catalogue, after = await cut_then_race(library, staff, datacenters, urls)
        cut_mid_run = not run.done()
        report = await run
    # Either side holds two replicas of four, no majority: each refuses (503), never guesses.
    assert during == [503] * CUT_BOOKS, during
    assert after == [503] * CUT_BOOKS, after
    assert catalogue == 200  # dc2's own replicas still answer reads (LOCAL_QUORUM)
    assert acknowledged_twice(during, after) == 0
    assert cut_mid_run, "the stress run ended before dc1 was back: make it longer"
    assert report.violations == [], report.violations
    assert report.audit["clean"]


async def test_the_same_cut_at_local_serial_double_books(
    library: Library, staff: dict[str, str], datacenters: dict[str, list[str]], tmp_path: Path
) -> None:
    """What the test above guards against: at LOCAL_SERIAL, forced, the cut-off side guesses."""
    with instances(datacenters, tmp_path, LOCAL_SERIAL) as urls:
        during, _, after = await cut_then_race(library, staff, datacenters, urls)
    logs = [(tmp_path / f"app-{dc}.log").read_text() for dc in datacenters]
    assert all("lightweight transactions at LOCAL_SERIAL" in log for log in logs)
    assert during == [201] * CUT_BOOKS, during  # each side went ahead on its own replicas
    assert acknowledged_twice(during, after) == CUT_BOOKS, (during, after, ANSWERS[-CUT_BOOKS:])
    # Put right what it broke (the lock keeps one of the two), so that later runs on this keyspace audit clean.
    await library.audit(repair=True)


# -- the bench's price of SERIAL, in short -------------------------------------------------------------------------
def test_bench_datacenters_prices_the_three_ways(datacenters: dict[str, list[str]], tmp_path: Path) -> None:
    figures = tmp_path / "datacenters.json"
    args = ["-m", "bench", "datacenters", "--ops", "12", "--concurrency", "3", "--runs", "1", "--json", str(figures)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    done = subprocess.run(
        [sys.executable, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(figures.read_text())["summary"]
    assert [row["way"] for row in rows] == ["LOCAL_SERIAL", "SERIAL", "home datacenter"]
    assert all(row["errors"] == 0 and row["conflicts"] == 0 and row["throughput"]["median"] > 0 for row in rows)
    assert "home datacenter" in done.stdout and "/ LOCAL_SERIAL" in done.stdout
