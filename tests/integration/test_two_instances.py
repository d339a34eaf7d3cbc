"""Two processes of the service on one cluster behave as one: 200 concurrent reservations for 20 books,
sent half to each instance, give exactly 20 reservations, and the audit finds nothing wrong."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
from tool_support import fresh_keyspace

from app.models import Book, User
from app.repository import Library
from app.rules import replication_for
from app.settings import Settings
from toolkit.cli import bearer

KEYSPACE = "test_two_instances"
BOOKS = 20
READERS = 100
REQUESTS = 200


async def test_two_instances_never_double_book(cassandra_hosts: list[str], spawn_app: Callable[..., str]) -> None:
    settings = Settings(
        cassandra_hosts=cassandra_hosts, keyspace=KEYSPACE, replication_factor=replication_for(cassandra_hosts)
    )
    # The schema is created once, before the instances start: two processes creating the same tables at the
    # same moment could give Cassandra two table ids for one table.
    db = await fresh_keyspace(settings, KEYSPACE)
    try:
        library = Library(db)
        books = [await library.create_book(f"Contended {i}", "Author", "Fiction", 2000) for i in range(BOOKS)]
        readers = [await library.create_user(f"Reader {i}", f"r{i}@example.org", user_id=i + 1) for i in range(READERS)]

        instances = [spawn_app(KEYSPACE), spawn_app(KEYSPACE)]
        # Each reader signs in as themselves; a token issued anywhere works on both instances.
        tokens = await library.sessions_for_readers([r.user_id for r in readers])
        results, wall = await _reserve_concurrently(instances, books, readers, tokens)

        by_status = Counter(status for _, status, _ in results)
        per_instance = {url: Counter(s for u, s, _ in results if u == url) for url in instances}
        latencies = sorted(t for _, _, t in results)
        report = await library.audit()
        held = await asyncio.gather(*(library.holder(b.book_id) for b in books))

        print(
            f"\ntwo instances, {REQUESTS} concurrent reservations for {BOOKS} books by {READERS} readers:"
            f"\n  statuses: {dict(sorted(by_status.items()))}"
            + "".join(f"\n  {url}: {dict(sorted(c.items()))}" for url, c in per_instance.items())
            + f"\n  wall time {wall:.2f} s, latency median {statistics.median(latencies) * 1000:.0f} ms,"
            f" p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
            f"\n  audit: {report.locks} locks, {report.reservations} reservations, clean={report.clean}"
        )
        assert by_status[201] == BOOKS, by_status
        assert by_status[409] == REQUESTS - BOOKS, by_status
        assert all(h is not None for h in held)
        assert report.clean, report.violations
        assert (report.locks, report.reservations) == (BOOKS, BOOKS)

        # One service: what one instance did, the other sees and can undo.
        async with aiohttp.ClientSession(headers=bearer(await library.session_for_tool("Two instances"))) as http:
            reservation = held[0]
            assert reservation is not None
            for url in instances:
                async with http.get(f"{url}/api/reservations/{reservation.reservation_id}") as response:
                    assert response.status == 200
            async with http.delete(
                f"{instances[1]}/api/reservations/{reservation.reservation_id}",
                params={"user_id": str(reservation.user_id)},
            ) as response:
                assert response.status == 204
            async with http.get(f"{instances[0]}/api/books/{reservation.book_id}") as response:
                assert (await response.json())["available"] is True
    finally:
        db.close()


async def _reserve_concurrently(
    instances: list[str], books: list[Book], readers: list[User], tokens: dict[int, str]
) -> tuple[list[tuple[str, int, float]], float]:
    """Every request at once, alternating between the instances; each result is (instance, status, seconds)."""

    async def one(http: aiohttp.ClientSession, i: int) -> tuple[str, int, float]:
        url = instances[i % len(instances)]
        reader = readers[i % READERS].user_id
        body = {"book_id": str(books[i % BOOKS].book_id)}
        started = time.monotonic()
        async with http.post(f"{url}/api/reservations", json=body, headers=bearer(tokens[reader])) as response:
            await response.read()
            return url, response.status, time.monotonic() - started

    connector = aiohttp.TCPConnector(limit=REQUESTS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        started = time.monotonic()
        results = await asyncio.gather(*(one(http, i) for i in range(REQUESTS)))
        return list(results), time.monotonic() - started
