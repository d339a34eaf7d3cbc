"""What the command-line tools (seeder, bench, stress_test.py, unreserve_all.py) share: connecting to the same
Cassandra the app uses, running many writes with bounded concurrency, and one-line errors instead of
tracebacks."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

from app.db import Database
from app.models import DatabaseUnavailable, LibraryError
from app.settings import Settings

T = TypeVar("T")

# Exit status of a tool that could not do its work (bad input, no database); 1 is kept for "ran, found violations".
EXIT_ERROR = 2
RETRY_ATTEMPTS = 5


class CliError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosts",
        help="Cassandra contact points, comma-separated (default: $CASSANDRA_HOSTS, else the local cluster's nodes)",
    )
    parser.add_argument("--keyspace", help="keyspace (default: $CASSANDRA_KEYSPACE, else library)")


def settings_from(args: argparse.Namespace) -> Settings:
    """The app's own settings from the environment, with --hosts/--keyspace on top, so a tool always names the
    same database as the app started with the same environment."""
    try:
        settings = Settings.from_env()
    except ValueError as error:
        raise CliError(str(error)) from error
    hosts = [h.strip() for h in (args.hosts or "").split(",") if h.strip()] or settings.cassandra_hosts
    if not hosts:
        # The app starts the local cluster itself when no host is named; a tool only looks for a running one.
        import cluster

        hosts = cluster.contact_points()
    # Like the app: the replication follows these hosts unless CASSANDRA_REPLICATION chose it.
    return dataclasses.replace(settings.with_hosts(hosts), keyspace=args.keyspace or settings.keyspace)


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    try:
        db = await Database.connect(settings)
    except DatabaseUnavailable as error:
        raise CliError(f"{error} (is Cassandra running? `python -m cluster status`)") from error
    except ValueError as error:  # a setting only the database can check (app/db.py: choose_serial_consistency)
        raise CliError(str(error)) from error
    try:
        yield db
    finally:
        db.close()


def keyspace_exists(db: Database, keyspace: str) -> bool:
    return keyspace in db.cluster.metadata.keyspaces


async def retrying(call: Callable[[], Awaitable[T]], attempts: int = RETRY_ATTEMPTS) -> T:
    """Retries an idempotent call while Cassandra is briefly unavailable (a node restarting, a timeout)."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except DatabaseUnavailable:
            if attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0.1, 0.3) * 2**attempt)
    raise AssertionError("not reached")


async def run_bounded(items: Iterable[T], work: Callable[[T], Awaitable[Any]], concurrency: int) -> None:
    """Runs `work` on every item with at most `concurrency` calls in flight. Items are pulled lazily, so a
    generator of a million rows never sits in memory; the first failure stops the other workers."""
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def bearer(token: str) -> dict[str, str]:
    """The header that signs an HTTP request in with a session token (POST /api/session, `Library.session_for_tool`)."""
    return {"Authorization": f"Bearer {token}"}


def run_cli(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Runs a tool's async main and exits with its status; expected failures become one line on stderr."""
    # The driver logs every failed request as a warning; a tool reports failures in its own words instead.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    # The driver logs a traceback of its own before raising what the tool turns into one line.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    try:
        status = asyncio.run(main())
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        status = EXIT_ERROR
    except LibraryError as error:
        print(f"error: {error}", file=sys.stderr)
        status = EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    sys.exit(status)
