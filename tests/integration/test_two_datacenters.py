"""Two datacenters, an app instance in each, racing for the same books: on the local cluster of
`python -m cluster up --dcs 2` (dc1 on nodes 1-2, dc2 on nodes 3-4, two replicas in each). `make test` runs this
module on its own after the other passes; on any other cluster it is skipped.

- Both instances send every book's two reserves at the same instant, and stress tests 1 and 3 run through both:
  0 double bookings at SERIAL, which the service chooses by itself for a keyspace in two datacenters.
- The same race at LOCAL_SERIAL double-books (each datacenter runs its own Paxos): the race tests something.
- dc1 is cut off mid-run (its nodes frozen): dc2's instance answers 503 to a reserve rather than guessing, its
  catalogue still reads, and when dc1 is back the run ends with 0 violations and the audit clean.

Why frozen nodes and not a network cut: every internode connection here leaves from 127.0.0.1 (Cassandra binds no
source address), so no packet filter can tell dc1's traffic from dc2's; and this machine has no iptables or
netem. From dc2, a frozen dc1 is a dc1 that stopped answering, as behind a cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from tool_support import PROJECT_DIR, fresh_keyspace

import cluster
from app.launcher import running_app
from app.repository import Library
from app.settings import Settings
from stress.run import Options, execute
from toolkit.cli import bearer

pytestmark = pytest.mark.two_datacenters

KEYSPACE = "test_two_datacenters"
REPLICATION = "dc1:2,dc2:2"
RACED_BOOKS = 40  # books raced for at once, one reserve from each datacenter
CUT_BOOKS = 5  # books reserved through dc2 while dc1 is cut off, then through dc1
EXPIRED_AFTER = 3.0  # seconds both datacenters stay frozen between the turns: longer than the write timeout
LOCAL_SERIAL = {"CASSANDRA_SERIAL_CONSISTENCY": "LOCAL_SERIAL", "ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL": "1"}


@pytest.fixture(scope="module")
def datacenters() -> dict[str, list[str]]:
    found = cluster.running_datacenters()
    if len(found) < 2:
        pytest.skip("needs the local cluster of two datacenters (python -m cluster up --dcs 2)")
    return found


@pytest.fixture(scope="module")
async def library(datacenters: dict[str, list[str]]) -> AsyncIterator[Library]:
    """The test's own connection, in dc1, at the SERIAL the database chooses for this keyspace."""
    settings = Settings(
        cassandra_hosts=datacenters["dc1"],
        keyspace=KEYSPACE,
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
    cards = [900_000 + uuid.uuid4().int % 90_000 for _ in range(count)]
    for card in cards:
        await library.import_user(f"Reader {card}", f"reader.{card}@example.org", card)
    return cards


async def reserve(http: aiohttp.ClientSession, url: str, staff: dict[str, str], card: int, book: uuid.UUID) -> int:
    body = {"book_id": str(book), "user_id": card, "idempotency_key": str(uuid.uuid4())}
    async with http.post(f"{url}/api/reservations", json=body, headers=staff) as response:
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
    # Every book went to exactly one of the two (a 503 would leave it to nobody; none is expected on a quiet run).
    assert all(sorted(statuses) == [201, 409] for statuses in answers.values()), answers
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
    """A split brain, one side at a time: dc1 is cut off (its nodes frozen) while a reader reserves books through
    dc2; then dc2 is cut off instead, and another reader reserves the same books through dc1. The answers: dc2's
    during its turn, dc2's catalogue page then, and dc1's during its turn.

    Between the turns both are frozen for longer than Cassandra's write timeout (2 s), so that whatever one side
    sent the other meanwhile is expired when it is read, and nothing reaches dc1 from dc2 during dc1's turn: the
    two sides see only their own replicas, as across a cut that lasts."""
    books = await new_books(library, CUT_BOOKS)
    readers = await new_readers(library, 2)
    dc1, dc2 = datacenters["dc1"], datacenters["dc2"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as http:
        try:
            freeze(dc1, signal.SIGSTOP)
            await asyncio.sleep(1)
            dc2_turn = list(await asyncio.gather(*(reserve(http, urls[1], staff, readers[1], b) for b in books)))
            async with http.get(f"{urls[1]}/api/books?page_size=5", headers=staff) as response:
                catalogue = response.status
            freeze(dc2, signal.SIGSTOP)
            await asyncio.sleep(EXPIRED_AFTER)
            freeze(dc1, signal.SIGCONT)
            dc1_turn = list(await asyncio.gather(*(reserve(http, urls[0], staff, readers[0], b) for b in books)))
        finally:
            freeze(dc1 + dc2, signal.SIGCONT)
    return dc2_turn, catalogue, dc1_turn


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
    assert acknowledged_twice(during, after) == CUT_BOOKS, (during, after)
    # Put right what it broke (the lock keeps one of the two), so that later runs on this keyspace audit clean.
    await library.audit(repair=True)
