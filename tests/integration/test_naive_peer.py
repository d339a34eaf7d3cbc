"""The bench's naive peer (bench/naive_peer.py), as a process on the real cluster: it answers the earlier system's
contract word for word (../shared/README.md), in a keyspace of its own, so the same legacy client can measure it
beside the service."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from cassandra.cluster import Session
from tool_support import run_tool, tool_env

from app.launcher import running_app
from app.web import legacy
from bench import naive_peer

KEYSPACE = "test_naive_peer"


async def post(http: aiohttp.ClientSession, url: str, path: str, book: Any, user: Any) -> dict[str, Any]:
    async with http.post(f"{url}{path}", json={"book_id": str(book), "user_id": user}) as response:
        assert response.status == 200  # the earlier system answered every request with 200
        answer: dict[str, Any] = await response.json()
        return answer


async def test_the_naive_peer_answers_the_earlier_contract(
    cassandra_hosts: list[str], driver_session: Session, tmp_path: Path
) -> None:
    book, other_book = uuid.uuid4(), uuid.uuid4()
    module = ("bench.naive_peer", "--keyspace", KEYSPACE, "--hosts", ",".join(cassandra_hosts))
    with running_app(cassandra_hosts, KEYSPACE, tmp_path / "peer.log", module=module) as url:
        for table in naive_peer.DATA_TABLES:
            driver_session.execute(f"TRUNCATE {KEYSPACE}.{table}")
        for b in (book, other_book):
            driver_session.execute(
                f"INSERT INTO {KEYSPACE}.books (book_id, title, author, genre, published_year) "
                "VALUES (%s, 'Peer Book', 'Someone', 'Fiction', 1999)",
                (b,),
            )
        async with aiohttp.ClientSession() as http:
            assert await post(http, url, "/make_reservation", book, 7) == {"message": legacy.MADE}
            assert await post(http, url, "/make_reservation", book, 8) == {"error": legacy.ALREADY_RESERVED}
            assert await post(http, url, "/make_reservation", uuid.uuid4(), 8) == {"error": legacy.NO_SUCH_BOOK}
            assert await post(http, url, "/make_reservation", other_book, "x") == {"error": legacy.INVALID_USER}
            assert await post(http, url, "/update_reservation", book, 7) == {"message": legacy.UPDATED}
            assert await post(http, url, "/update_reservation", book, 8) == {"error": legacy.NOT_FOUND}
            assert await post(http, url, "/remove_reservation", book, 8) == {"error": legacy.NOT_OWNER}
            async with http.get(f"{url}/api/reservations") as response:
                listed = await response.json()
            assert [(r["book_id"], r["user_id"]) for r in listed] == [(str(book), 7)]
            async with http.get(f"{url}/api/books") as response:
                assert {b["book_id"] for b in await response.json()} == {str(book), str(other_book)}
            assert await post(http, url, "/remove_reservation", book, 7) == {"message": legacy.REMOVED}
            assert await post(http, url, "/remove_reservation", book, 7) == {"error": legacy.NOT_FOUND}
            # The book is free again: the plain DELETE of the lock row freed it.
            assert await post(http, url, "/make_reservation", book, 8) == {"message": legacy.MADE}
            made = await asyncio.gather(*(post(http, url, "/make_reservation", other_book, u) for u in range(20)))
            assert sum(a.get("message") == legacy.MADE for a in made) == 1


def test_bench_peer_runs_every_test_on_both_apps(cassandra_hosts: list[str], tmp_path: Path) -> None:
    """`python -m bench peer`, small: both apps started, each test run against each after a warm-up, a verdict for
    each, ours clean, and the slowest ratio last."""
    figures = tmp_path / "peer.json"
    args = ["-m", "bench", "peer", "--size", "30", "--workers", "4", "--runs", "1", "--json", str(figures)]
    done = run_tool(args, tool_env(cassandra_hosts, "test_bench_peer"), timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("slowest ratio vs naive: ")
    result = json.loads(figures.read_text())
    assert [row["test"] for row in result["tests"]] == [1, 2, 3, 4, 5]
    for row in result["tests"]:
        assert row["ours"]["violations"] == 0, row["ours"]["first_violation"]
        assert row["ratio"]["median"] > 0
    assert {(run["app"], run["test"]) for run in result["every_run"]} == {
        (app, test) for app in ("ours", "naive") for test in range(1, 6)
    }
