"""python -m bench statements: the statements each kind of request sends to Cassandra, this service against the naive
peer (bench/naive_peer.py), counted rather than estimated.

Both apps are served in this process on the running cluster, each in a keyspace of its own, and each one's single
way to the driver is wrapped to count what passes through it (this service's `Database.execute`, the peer's
`Peer.run`): the app's own code runs unchanged. Every kind of request is sent --requests times, one at a time,
and the table gives the statements per request by kind. The kinds differ in cost (docs/performance-notes.md has
each one's Cassandra CPU on this cluster): a lightweight transaction is four round trips of Paxos among the
replicas, a logged batch writes a batchlog to two other nodes first, a read of many keys asks one partition per key.
This service reads and writes at QUORUM, the peer at the driver's default, LOCAL_ONE.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement, SimpleStatement
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from app.db import Database
from app.repository import Library
from app.schema import apply_schema
from app.settings import Settings
from app.web import make_app
from app.web.guards import http_server
from bench import naive_peer
from bench.peer import cluster_hosts
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import bearer, open_database

# The kinds of statement, cheapest first as measured on this cluster (docs/performance-notes.md, issue 21).
KINDS = (
    "read",
    "range read",
    "read of many keys",
    "write",
    "unlogged batch",
    "logged batch",
    "read at SERIAL",
    "transaction",
)
SHORT = {
    "read": "read",
    "range read": "range",
    "read of many keys": "IN",
    "write": "write",
    "unlogged batch": "batch",
    "logged batch": "logged",
    "read at SERIAL": "serial",
    "transaction": "LWT",
}
# The tables both apps' keyspaces share by name, emptied before the requests (the peer's are all of its own).
EMPTIED = ("books", "reservation_by_book_id", "reservations", "user_reservations", "book_reservations")
CATALOGUE = 120  # books: more than the first page of 100 that GET /api/books answers
SERIAL = (ConsistencyLevel.SERIAL, ConsistencyLevel.LOCAL_SERIAL)


def kind_of(statement: Any, consistency: int | None = None) -> str:
    """Which of KINDS a statement is, from its CQL text (or its batch type) and the consistency it is sent at."""
    if isinstance(statement, BatchStatement):
        return "logged batch" if statement.batch_type == BatchType.LOGGED else "unlogged batch"
    text = _text(statement).upper()
    words = " ".join(text.split())
    if words.startswith("SELECT"):
        if consistency in SERIAL or getattr(statement, "consistency_level", None) in SERIAL:
            return "read at SERIAL"
        where = words.partition(" WHERE ")[2]
        if " IN ?" in f" {where}" or " IN (" in f" {where}":
            return "read of many keys"
        if not where or "TOKEN(" in where or " CONTAINS " in f" {where}":
            return "range read"
        return "read"
    return "transaction" if " IF " in words else "write"


def _text(statement: Any) -> str:
    if isinstance(statement, str):
        return statement
    if isinstance(statement, BoundStatement):
        return str(statement.prepared_statement.query_string)
    if isinstance(statement, PreparedStatement | SimpleStatement):
        return str(statement.query_string)
    raise TypeError(f"not a statement: {type(statement).__name__}")


@dataclasses.dataclass
class Tally:
    """Statements counted by kind, for the request being measured."""

    counts: Counter[str] = dataclasses.field(default_factory=Counter)

    def add(self, statement: Any, consistency: int | None = None) -> None:
        self.counts[kind_of(statement, consistency)] += 1

    def take(self) -> Counter[str]:
        taken, self.counts = self.counts, Counter()
        return taken


def count_ours(db: Database, tally: Tally) -> None:
    """Every statement this service's code sends goes through `Database.execute`: wrapped on this instance."""
    execute = db.execute

    async def counted(statement: Any, params: Any = None, **options: Any) -> Any:
        tally.add(statement, options.get("consistency"))
        return await execute(statement, params, **options)

    db.execute = counted  # type: ignore[method-assign]


def count_naive(peer: naive_peer.Peer, tally: Tally) -> None:
    run = peer.run

    async def counted(name: str, *values: Any) -> list[Any]:
        tally.add(peer.prepared[name])
        return await run(name, *values)

    peer.run = counted  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def serving(app: Application, settings: Settings | None = None) -> AsyncIterator[str]:
    sockets = bind_sockets(0, "127.0.0.1")
    server = http_server(app, settings) if settings is not None else HTTPServer(app)
    server.add_sockets(sockets)
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    finally:
        server.stop()
        await server.close_all_connections()


# One request of a kind, the i-th; answers what came back: the HTTP status, or for the earlier system's endpoints
# (every answer a 200) "made" or "refused".
Request = Callable[[aiohttp.ClientSession, int], Awaitable[str]]


@dataclasses.dataclass(frozen=True)
class Side:
    """One app as the requests see it: its URL, its books and readers, and how to reach it."""

    url: str
    books: list[UUID]
    readers: list[int]
    headers: dict[int, dict[str, str]]


def legacy_requests(side: Side, n: int) -> list[tuple[str, Request]]:
    """The earlier system's endpoints, as the peer bench's stress tests send them: reader A reserves n free books,
    reader B asks for the same books, A renews and cancels them; then the first page of books."""
    a, b = side.readers[0], side.readers[1]

    def change(path: str, reader: int) -> Request:
        async def send(http: aiohttp.ClientSession, i: int) -> str:
            body = {"book_id": str(side.books[i]), "user_id": reader}
            async with http.post(f"{side.url}{path}", json=body) as response:
                answer = await response.json(content_type=None)
                return "done" if "message" in answer else "refused"

        return send

    async def books(http: aiohttp.ClientSession, i: int) -> str:
        async with http.get(f"{side.url}/api/books") as response:
            await response.read()
            return str(response.status)

    return [
        ("POST /make_reservation, a free book", change("/make_reservation", a)),
        ("POST /make_reservation, a book another holds", change("/make_reservation", b)),
        ("POST /update_reservation", change("/update_reservation", a)),
        ("POST /remove_reservation", change("/remove_reservation", a)),
        ("GET /api/books (first 100 books)", books),
    ]


def api_requests(side: Side, n: int) -> list[tuple[str, Request]]:
    """This service's own API, signed in as the reader: reserve, a reader's reservations, renew, cancel."""
    reader = side.readers[2]
    made: list[str] = []
    books = side.books[n : 2 * n]

    async def reserve(http: aiohttp.ClientSession, i: int) -> str:
        body = {"book_id": str(books[i])}
        async with http.post(f"{side.url}/api/reservations", json=body, headers=side.headers[reader]) as response:
            answer = await response.json()
            made.append(answer.get("reservation_id", ""))
            return str(response.status)

    async def mine(http: aiohttp.ClientSession, i: int) -> str:
        params = {"user_id": str(reader)}
        async with http.get(f"{side.url}/api/reservations", params=params, headers=side.headers[reader]) as response:
            await response.read()
            return str(response.status)

    async def renew(http: aiohttp.ClientSession, i: int) -> str:
        url = f"{side.url}/api/reservations/{made[i]}"
        async with http.patch(url, json={}, headers=side.headers[reader]) as response:
            await response.read()
            return str(response.status)

    async def cancel(http: aiohttp.ClientSession, i: int) -> str:
        async with http.delete(f"{side.url}/api/reservations/{made[i]}", headers=side.headers[reader]) as response:
            await response.read()
            return str(response.status)

    return [
        ("POST /api/reservations (signed in)", reserve),
        ("GET /api/reservations?user_id= (own)", mine),
        ("PATCH /api/reservations/{id} (renew)", renew),
        ("DELETE /api/reservations/{id}", cancel),
    ]


async def measure(side: Side, requests: list[tuple[str, Request]], tally: Tally, n: int) -> list[dict[str, Any]]:
    rows = []
    async with aiohttp.ClientSession() as http:
        for name, send in requests:
            tally.take()
            statuses: Counter[str] = Counter()
            for i in range(n):
                statuses[await send(http, i)] += 1
            counts = tally.take()
            rows.append(
                {
                    "request": name,
                    "per_request": {kind: counts[kind] / n for kind in KINDS if counts[kind]},
                    "statements": sum(counts.values()) / n,
                    "answers": dict(sorted(statuses.items())),
                }
            )
    return rows


async def measure_ours(settings: Settings, n: int) -> list[dict[str, Any]]:
    async with open_database(settings) as db:
        await apply_schema(db, settings)
        for table in EMPTIED:
            await db.execute_raw(f"TRUNCATE {settings.keyspace}.{table}")
        library = Library(db)
        books = [
            (await library.create_book(f"Book {i}", "An Author", "Fiction", 2000)).book_id for i in range(CATALOGUE)
        ]
        readers = [910_001, 910_002, 910_003]
        for user_id in readers:  # (an upsert: a card left by an earlier run is written again)
            await library.import_user(f"Bench reader {user_id}", f"reader{user_id}@bench.test", user_id)
        tokens = await library.sessions_for_readers(readers)
        side = Side("", books, readers, {u: bearer(t) for u, t in tokens.items()})
        tally = Tally()
        count_ours(db, tally)
        async with serving(make_app(library, settings), settings) as url:
            side = dataclasses.replace(side, url=url)
            return await measure(side, legacy_requests(side, n) + api_requests(side, n), tally, n)


async def measure_naive(settings: Settings, n: int) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    cluster, session = await loop.run_in_executor(
        None,
        naive_peer.connect,
        settings.cassandra_hosts,
        settings.local_datacenter,
        settings.keyspace,
        settings.replication_factor,
    )
    try:
        for table in EMPTIED:
            await loop.run_in_executor(None, session.execute, f"TRUNCATE {table}")
        insert = session.prepare(
            "INSERT INTO books (book_id, title, author, genre, published_year) VALUES (?, ?, ?, ?, ?)"
        )
        books = [uuid4() for _ in range(CATALOGUE)]
        for i, book in enumerate(books):
            await loop.run_in_executor(None, session.execute, insert, (book, f"Book {i}", "An Author", "Fiction", 2000))
        peer = naive_peer.Peer(session)
        tally = Tally()
        count_naive(peer, tally)
        async with serving(naive_peer.make_app(peer)) as url:
            side = Side(url, books, [1, 2, 3], {})
            return await measure(side, legacy_requests(side, n), tally, n)
    finally:
        cluster.shutdown()


def render(ours: list[dict[str, Any]], naive: list[dict[str, Any]], n: int) -> str:
    peer = {row["request"]: row for row in naive}
    lines = [
        f"statements per request, {n} requests of each kind, one at a time "
        "(this service at QUORUM, the naive peer at LOCAL_ONE)",
        "kinds: " + ", ".join(f"{SHORT[k]} = {k}" for k in KINDS),
        "",
        f"{'request':44} {'app':6} {'all':>5}  by kind",
    ]
    for row in ours:
        for app, figures in (("ours", row), ("naive", peer.get(row["request"]))):
            if figures is None:
                continue
            kinds = ", ".join(f"{v:g} {SHORT[k]}" for k, v in figures["per_request"].items())
            name = row["request"] if app == "ours" else ""
            answers = ", ".join(f"{s} {c}" for s, c in figures["answers"].items())
            lines.append(f"{name:44} {app:6} {figures['statements']:>5g}  {kinds}  (answers {answers})")
    return "\n".join(lines)


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench statements",
        description=(
            "Count the statements each kind of request sends to Cassandra, by kind (read, range read, read of many "
            "keys, write, batch, read at SERIAL, lightweight transaction): the earlier system's endpoints against "
            "this service and against the naive peer, and this service's own API signed in as a reader. Both apps "
            "are served in this process, their one way to the driver wrapped to count; requests go one at a time."
        ),
        epilog=(
            "The cluster is $CASSANDRA_HOSTS, else the local one (`python -m cluster up`). This service's data goes "
            "to keyspace --keyspace, the peer's to KEYSPACE_naive; both are emptied first."
        ),
    )
    p.add_argument(
        "--requests", type=number(int, 1, CATALOGUE // 2), default=20, help="requests of each kind (default 20)"
    )
    p.add_argument("--keyspace", default="bench_statements", help="this service's keyspace (default bench_statements)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the counts to FILE")
    return p


async def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    hosts = cluster_hosts()
    settings = dataclasses.replace(Settings.from_env().with_hosts(hosts), keyspace=args.keyspace, seed_demo_data=False)
    ours = await measure_ours(settings, args.requests)
    naive = await measure_naive(dataclasses.replace(settings, keyspace=f"{args.keyspace}_naive"), args.requests)
    print(render(ours, naive, args.requests))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"requests": args.requests, "ours": ours, "naive": naive}, indent=2) + "\n")
        print(f"counts written to {args.json}", file=sys.stderr)
    return 0
