"""python -m bench.naive_peer: the earlier system's algorithm, as a yardstick for this service's speed.

It exists to be measured against and beaten (`python -m bench peer`); the service never uses it, and nothing here
is a model to follow. It serves the earlier system's endpoints (../shared/README.md) in a keyspace of its own, as
that system did them:

- reserve (`POST /make_reservation`): `INSERT INTO reservation_by_book_id ... IF NOT EXISTS`, then a read of the
  book, then three plain inserts (`reservations` keyed by (user_id, book_id), `user_reservations`,
  `book_reservations`);
- update (`POST /update_reservation`): a read of the reservation, then three plain updates of `reserved_at`;
- remove (`POST /remove_reservation`): a read of `book_reservations`, the owner checked, three plain deletes and a
  plain `DELETE` of the lock row;
- `GET /api/books` (the first 100 books) and `GET /api/reservations` (every reservation), as bare JSON arrays.

Every statement runs at the driver's default consistency, on the synchronous driver in a pool of 4 threads. Its
flaws are the earlier system's, kept on purpose: a plain `DELETE` frees whatever holds the lock (a remove racing a
reserve of the same book can free the new holder's lock), a timeout's text reaches the client, and a failure
between the lock and the views leaves a book locked with no reservation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import tornado.web
from cassandra.cluster import Cluster, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement

from app.web.legacy import (
    ALREADY_RESERVED,
    INVALID_USER,
    MADE,
    NO_SUCH_BOOK,
    NOT_FOUND,
    NOT_OWNER,
    REMOVED,
    UPDATED,
)
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import run_cli, settings_from

DEFAULT_PORT = 8890
DEFAULT_KEYSPACE = "naive_peer"
THREADS = 4
FIRST_PAGE = 100


TABLES = (
    "CREATE TABLE IF NOT EXISTS books (book_id uuid PRIMARY KEY, title text, author text, genre text, "
    "published_year int)",
    "CREATE TABLE IF NOT EXISTS reservation_by_book_id (book_id uuid PRIMARY KEY, user_id int, reserved_at timestamp)",
    "CREATE TABLE IF NOT EXISTS reservations (user_id int, book_id uuid, reservation_id uuid, reserved_at timestamp, "
    "PRIMARY KEY ((user_id, book_id)))",
    "CREATE TABLE IF NOT EXISTS user_reservations (user_id int, book_id uuid, reservation_id uuid, "
    "reserved_at timestamp, PRIMARY KEY (user_id, book_id))",
    "CREATE TABLE IF NOT EXISTS book_reservations (book_id uuid PRIMARY KEY, user_id int, reservation_id uuid, "
    "reserved_at timestamp)",
)
DATA_TABLES = ("books", "reservation_by_book_id", "reservations", "user_reservations", "book_reservations")

STATEMENTS = {
    "lock": "INSERT INTO reservation_by_book_id (book_id, user_id, reserved_at) VALUES (?, ?, ?) IF NOT EXISTS",
    "book": "SELECT book_id FROM books WHERE book_id = ?",
    "insert_reservation": "INSERT INTO reservations (user_id, book_id, reservation_id, reserved_at) "
    "VALUES (?, ?, ?, ?)",
    "insert_user_row": "INSERT INTO user_reservations (user_id, book_id, reservation_id, reserved_at) "
    "VALUES (?, ?, ?, ?)",
    "insert_book_row": "INSERT INTO book_reservations (book_id, user_id, reservation_id, reserved_at) "
    "VALUES (?, ?, ?, ?)",
    "reservation": "SELECT reservation_id FROM reservations WHERE user_id = ? AND book_id = ?",
    "update_reservation": "UPDATE reservations SET reserved_at = ? WHERE user_id = ? AND book_id = ?",
    "update_user_row": "UPDATE user_reservations SET reserved_at = ? WHERE user_id = ? AND book_id = ?",
    "update_book_row": "UPDATE book_reservations SET reserved_at = ? WHERE book_id = ?",
    "book_row": "SELECT user_id FROM book_reservations WHERE book_id = ?",
    "delete_reservation": "DELETE FROM reservations WHERE user_id = ? AND book_id = ?",
    "delete_user_row": "DELETE FROM user_reservations WHERE user_id = ? AND book_id = ?",
    "delete_book_row": "DELETE FROM book_reservations WHERE book_id = ?",
    "delete_lock": "DELETE FROM reservation_by_book_id WHERE book_id = ?",
    "first_books": f"SELECT book_id, title, author, genre, published_year FROM books LIMIT {FIRST_PAGE}",
    "all_reservations": "SELECT reservation_id, book_id, user_id, reserved_at FROM reservations",
}


def create_keyspace(session: Session, keyspace: str, datacenter: str, replication: int) -> None:
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication}}}"
    )
    for cql in TABLES:
        session.execute(cql.replace("CREATE TABLE IF NOT EXISTS ", f"CREATE TABLE IF NOT EXISTS {keyspace}."))


class Peer:
    """The statements and the thread pool they run on: each request's steps, as the earlier system sent them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="naive")
        self.prepared: dict[str, PreparedStatement] = {k: session.prepare(cql) for k, cql in STATEMENTS.items()}

    async def run(self, name: str, *values: Any) -> list[Any]:
        statement = self.prepared[name].bind(values)
        result = await asyncio.get_running_loop().run_in_executor(self.pool, self.session.execute, statement)
        return list(result)

    async def reserve(self, book_id: uuid.UUID, user_id: int) -> str:
        now = datetime.now(UTC)
        [outcome] = await self.run("lock", book_id, user_id, now)
        if not outcome[0]:
            raise Refused(ALREADY_RESERVED)
        if not await self.run("book", book_id):
            await self.run("delete_lock", book_id)
            raise Refused(NO_SUCH_BOOK)
        reservation_id = uuid.uuid4()
        await self.run("insert_reservation", user_id, book_id, reservation_id, now)
        await self.run("insert_user_row", user_id, book_id, reservation_id, now)
        await self.run("insert_book_row", book_id, user_id, reservation_id, now)
        return MADE

    async def update(self, book_id: uuid.UUID, user_id: int) -> str:
        if not await self.run("reservation", user_id, book_id):
            raise Refused(NOT_FOUND)
        now = datetime.now(UTC)
        await self.run("update_reservation", now, user_id, book_id)
        await self.run("update_user_row", now, user_id, book_id)
        await self.run("update_book_row", now, book_id)
        return UPDATED

    async def remove(self, book_id: uuid.UUID, user_id: int) -> str:
        rows = await self.run("book_row", book_id)
        if not rows:
            raise Refused(NOT_FOUND)
        if rows[0].user_id != user_id:
            raise Refused(NOT_OWNER)
        await self.run("delete_reservation", user_id, book_id)
        await self.run("delete_user_row", user_id, book_id)
        await self.run("delete_book_row", book_id)
        await self.run("delete_lock", book_id)
        return REMOVED


class Refused(Exception):
    """One of the earlier system's error sentences."""


class ChangeHandler(tornado.web.RequestHandler):
    """The three POST endpoints: always 200 and a JSON object, as the earlier system answered."""

    def initialize(self, peer: Peer, action: Callable[[Peer], Any]) -> None:
        self.peer = peer
        self.action = action

    async def post(self) -> None:
        try:
            body = tornado.escape.json_decode(self.request.body)
            book_id = uuid.UUID(str(body["book_id"]))
        except (ValueError, KeyError, TypeError):
            self.write({"error": NO_SUCH_BOOK})
            return
        user_id = body.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            self.write({"error": INVALID_USER})
            return
        try:
            self.write({"message": await self.action(self.peer)(book_id, user_id)})
        except Refused as refusal:
            self.write({"error": str(refusal)})
        except Exception as error:  # noqa: BLE001 - the earlier system passed the driver's text on
            self.write({"error": str(error)})


class HealthHandler(tornado.web.RequestHandler):
    """200 once serving: what `app.launcher.running_app_process` waits for."""

    def get(self) -> None:
        self.write({"status": "ok"})


class BooksHandler(tornado.web.RequestHandler):
    def initialize(self, peer: Peer) -> None:
        self.peer = peer

    async def get(self) -> None:
        rows = await self.peer.run("first_books")
        books = [{**row._asdict(), "book_id": str(row.book_id)} for row in rows]
        self.set_header("Content-Type", "application/json")
        self.write(tornado.escape.json_encode(books))


class ReservationsHandler(tornado.web.RequestHandler):
    def initialize(self, peer: Peer) -> None:
        self.peer = peer

    async def get(self) -> None:
        rows = await self.peer.run("all_reservations")
        listed = [
            {
                "reservation_id": str(r.reservation_id),
                "book_id": str(r.book_id),
                "user_id": r.user_id,
                "reserved_at": r.reserved_at.isoformat() if r.reserved_at else None,
            }
            for r in rows
        ]
        self.set_header("Content-Type", "application/json")
        self.write(tornado.escape.json_encode(listed))


def make_app(peer: Peer) -> tornado.web.Application:
    def change(action: Callable[[Peer], Any]) -> dict[str, Any]:
        return {"peer": peer, "action": action}

    return tornado.web.Application(
        [
            (r"/make_reservation", ChangeHandler, change(lambda p: p.reserve)),
            (r"/update_reservation", ChangeHandler, change(lambda p: p.update)),
            (r"/remove_reservation", ChangeHandler, change(lambda p: p.remove)),
            (r"/api/books", BooksHandler, {"peer": peer}),
            (r"/api/reservations", ReservationsHandler, {"peer": peer}),
            (r"/health", HealthHandler),
        ]
    )


def connect(hosts: list[str], datacenter: str, keyspace: str, replication: int) -> tuple[Cluster, Session]:
    cluster = Cluster(hosts, load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=datacenter)))
    session = cluster.connect()
    create_keyspace(session, keyspace, datacenter, replication)
    session.set_keyspace(keyspace)
    return cluster, session


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench.naive_peer",
        description=(
            "Serve the earlier system's endpoints with the earlier system's algorithm (one INSERT ... IF NOT EXISTS, "
            "then plain reads and writes at the driver's default consistency, on the synchronous driver), in a "
            "keyspace of its own: the naive peer `python -m bench peer` measures this service against. Not for use."
        ),
        epilog="Its keyspace and tables are created when missing; its books are whatever is in its own books table.",
    )
    p.add_argument(
        "--hosts",
        help="Cassandra contact points, comma-separated (default: $CASSANDRA_HOSTS, else the local cluster's nodes)",
    )
    p.add_argument(
        "--keyspace",
        default=DEFAULT_KEYSPACE,
        help=f"its own keyspace, never the app's (default {DEFAULT_KEYSPACE})",
    )
    p.add_argument(
        "--port",
        type=number(int, 1, 65535),
        default=int(os.environ.get("PORT") or DEFAULT_PORT),
        help=f"port (default: $PORT, else {DEFAULT_PORT})",
    )
    return p


async def serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    loop = asyncio.get_running_loop()
    hosts, keyspace = settings.cassandra_hosts, settings.keyspace
    cluster, session = await loop.run_in_executor(
        None, connect, hosts, settings.local_datacenter, keyspace, settings.replication_factor
    )
    try:
        peer = await loop.run_in_executor(None, Peer, session)
        make_app(peer).listen(args.port, address="127.0.0.1")
        print(f"naive peer on http://127.0.0.1:{args.port}/ (keyspace {keyspace})", flush=True)
        await asyncio.Event().wait()
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    arguments = parser().parse_args()
    run_cli(lambda: serve(arguments))
