"""One real Cassandra for the whole test session.

`CASSANDRA_HOSTS=127.0.0.1,...` reuses a cluster that is already running (nothing is started or
stopped); otherwise the cluster of `CLUSTER_NODES` nodes (3 by default) is started through
`cluster.start()`, or reused if it already runs, and left running for the next session.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from cassandra.cluster import Cluster, Session
from tool_support import PROJECT_DIR, fresh_keyspace
from tornado.netutil import bind_sockets

import cluster
from app.db import Database
from app.launcher import running_app
from app.repository import Library
from app.rules import replication_for
from app.settings import Settings
from app.web import make_app
from app.web.guards import http_server
from toolkit.cli import bearer


@pytest.fixture(scope="session")
def cassandra_hosts() -> list[str]:
    if os.environ.get("CASSANDRA_HOSTS"):
        return [h.strip() for h in os.environ["CASSANDRA_HOSTS"].split(",") if h.strip()]
    nodes = int(os.environ.get("CLUSTER_NODES", "3"))
    return cluster.start(nodes=nodes, progress=lambda m: print(f"[cluster] {m}"))


@pytest.fixture(scope="session")
def node_count(cassandra_hosts: list[str]) -> int:
    return len(cassandra_hosts)


@pytest.fixture(autouse=True)
def _skip_without_three_nodes(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("three_nodes") and len(request.getfixturevalue("cassandra_hosts")) < 3:
        pytest.skip("needs the 3-node cluster (CLUSTER_NODES=3)")


@pytest.fixture(scope="session")
def driver_session(cassandra_hosts: list[str]) -> Iterator[Session]:
    """A plain driver session on the whole cluster, for tests of Cassandra itself."""
    with Cluster(cassandra_hosts, protocol_version=5) as c:
        yield c.connect()


# -- the service's own layers on the real cluster -------------------------------------------------
TEST_KEYSPACE = "test_library"


@pytest.fixture(scope="session")
def settings(cassandra_hosts: list[str]) -> Settings:
    """Settings for the tests' keyspace, replicated to every node."""
    return Settings(
        cassandra_hosts=cassandra_hosts,
        keyspace=TEST_KEYSPACE,
        replication_factor=replication_for(cassandra_hosts),
        seed_demo_data=False,
    )


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The tests' keyspace, emptied at the start of the session. It is kept, not dropped: dropping keyspaces
    over and over while nodes are killed and restarted trips Cassandra's commit log ("Unknown CF") and leaves
    a node refusing every later schema change."""
    db = await fresh_keyspace(settings, settings.keyspace)
    yield db
    db.close()


@pytest.fixture(scope="session")
def library(database: Database) -> Library:
    return Library(database)


@pytest.fixture(scope="session")
async def staff_headers(library: Library) -> dict[str, str]:
    """The tests' librarian (the tools' card, no PIN): sent with a request, it may act for any reader."""
    return bearer(await library.session_for_tool("Test librarian"))


# -- the web service, in this process, on the tests' keyspace -------------------------------------------
@pytest.fixture(scope="session")
async def web_url(library: Library, settings: Settings) -> AsyncIterator[str]:
    """The Tornado app served on a free port of 127.0.0.1, in the tests' event loop."""
    sockets = bind_sockets(0, "127.0.0.1")
    server = http_server(make_app(library, settings), settings)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    await server.close_all_connections()


@pytest.fixture(scope="session")
def spawn_app(cassandra_hosts: list[str]) -> Iterator[Callable[..., str]]:
    """Starts `python -m app` as its own process on a free port, as a user would; returns its base URL once
    /health answers 200. Every process is stopped with SIGINT (Ctrl-C) at the end of the session; logs go to
    artifacts/logs/."""
    logs = PROJECT_DIR / "artifacts" / "logs"
    numbers = itertools.count(1)
    with contextlib.ExitStack() as running:

        def spawn(keyspace: str, *, seed: bool = False, extra_env: dict[str, str] | None = None) -> str:
            log_path = logs / f"app-{keyspace}-{next(numbers)}.log"
            return running.enter_context(
                running_app(cassandra_hosts, keyspace, log_path, seed_demo_data=seed, extra_env=extra_env)
            )

        yield spawn
