"""`python -m app`: the service on http://localhost:$PORT/ (8888).

Without CASSANDRA_HOSTS it starts the single local Cassandra node of `cluster/`, or reuses whichever
local cluster already runs (the 3-node one of the tests included). It applies the schema, writes the
demo catalogue into an empty database (SEED_DEMO_DATA=0 turns that off), runs the background audit-and-repair
under the repair lease (app/repository/repair_loop.py; REPAIR_EVERY_SECONDS=0 turns it off), and serves until
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from cassandra import ConsistencyLevel

import cluster
from app import logs, metrics
from app.db import Database
from app.demo_data import demo_sign_ins, seed_if_empty
from app.models import DatabaseUnavailable
from app.repository import Library
from app.schema import apply_schema
from app.settings import Settings
from app.web import make_app
from app.web.guards import http_server
from app.web.monitoring import metrics_server
from toolkit.arguments import ArgumentParser

log = logging.getLogger("app")


def local_cluster_hosts() -> list[str]:
    """The contact points of the local cluster: the running one (1 or 3 nodes), else a single node started now."""
    size = cluster.running_size()
    if size:
        log.info("reusing the local %d-node Cassandra cluster", size)
        return cluster.start(nodes=size, progress=lambda m: log.info("cluster: %s", m))
    log.info("no local Cassandra is running: starting the single node (the first start takes a minute or two)")
    return cluster.start(nodes=1, progress=lambda m: log.info("cluster: %s", m))


async def resolve_settings(settings: Settings) -> Settings:
    if settings.cassandra_hosts:
        return settings
    # Starting Cassandra blocks for a while; it runs in a thread so that Ctrl-C still reaches the loop.
    hosts = await asyncio.get_running_loop().run_in_executor(None, local_cluster_hosts)
    return settings.with_hosts(hosts)


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    settings = await resolve_settings(settings)
    if stop.is_set():
        return
    db = await Database.connect(settings)
    try:
        log.info(
            "Cassandra %s, keyspace %s, replication of a new keyspace %s, consistency %s / %s, datacenter %s",
            ",".join(settings.cassandra_hosts),
            settings.keyspace,
            ", ".join(f"{dc} {n}" for dc, n in settings.replication().items()),
            ConsistencyLevel.value_to_name[settings.consistency],
            ConsistencyLevel.value_to_name[db.serial_consistency],
            settings.local_datacenter,
        )
        await apply_schema(db, settings)
        library = Library(db)
        await library.load_secrets()
        if settings.seed_demo_data:
            if not await seed_if_empty(library):
                log.info("the database already holds data; no demo data written")
            if not settings.production:
                lines = await demo_sign_ins(library)
                log.info("demo sign-ins (development only):\n  %s", "\n  ".join(lines))
        else:
            log.info("demo data off (SEED_DEMO_DATA=0)")

        server = http_server(make_app(library, settings), settings)
        server.listen(settings.http_port)
        log.info("serving on http://localhost:%d/ (debug %s); Ctrl-C stops", settings.http_port, settings.debug)
        admin = metrics_server(settings)
        repair = library.repair_loop() if settings.repair_every_seconds > 0 else None
        sweeper = library.sweeper() if settings.hold_sweep_seconds > 0 else None
        if sweeper is not None:
            sweeper.start()
        else:
            log.info("sweep of expired holds off on this instance (HOLD_SWEEP_SECONDS=0)")
        if repair is not None:
            repair.start()
            metrics.watch_repair(repair)
        else:
            log.info("background repair off on this instance (REPAIR_EVERY_SECONDS=0)")
        await stop.wait()
        log.info("stopping: no new connections, finishing the requests in flight")
        if admin is not None:
            admin.stop()
        server.stop()
        if repair is not None:
            await repair.stop()  # releases the lease: another instance takes it at once
        if sweeper is not None:
            await sweeper.stop()
        try:
            async with asyncio.timeout(5):
                await library.notices.drain()  # the notices of books handed on just now
        except TimeoutError:
            log.warning("some notices were still being sent after 5 s; not sent")
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=10)
        except TimeoutError:
            log.warning("some connections were still open after 10 s; closing anyway")
    finally:
        db.close()
        log.info("stopped")


def parser() -> ArgumentParser:
    return ArgumentParser(
        prog="python -m app",
        description="Serve the library reservation service on http://localhost:$PORT/ (8888). Without "
        "CASSANDRA_HOSTS it starts the single local Cassandra node (or reuses the running local cluster); it "
        "applies the schema, writes the demo catalogue into an empty database, and serves until Ctrl-C or SIGTERM.",
        epilog="Every setting is an environment variable: CASSANDRA_HOSTS, CASSANDRA_KEYSPACE, "
        "CASSANDRA_REPLICATION, PORT, SEED_DEMO_DATA, LOG_LEVEL and the others the README lists. Exit status: 0 "
        "stopped, 2 a bad option or setting, 1 Cassandra could not be started or reached.",
    )


def main(argv: list[str] | None = None) -> None:
    command_line = parser()
    command_line.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        command_line.error(f"bad setting: {error}")
    logs.configure(settings)
    try:
        asyncio.run(serve(settings))
    except cluster.ClusterError as error:
        raise SystemExit(f"cannot start Cassandra: {error}") from error
    except DatabaseUnavailable as error:
        raise SystemExit(str(error)) from error
    except ValueError as error:  # a setting only the database can check (app/db.py: choose_serial_consistency)
        command_line.error(f"bad setting: {error}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
