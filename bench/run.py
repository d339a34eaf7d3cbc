"""One bench run: for each topology, bring the cluster up (or use the one named by CASSANDRA_HOSTS), start
the app as a user would, run the workloads at each concurrency, and put the ratios on the figures."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cassandra

from app import launcher
from app.db import Database
from app.repository import Library
from app.rules import replication_for
from app.schema import DATA_TABLES, apply_schema
from app.settings import Settings
from bench.measure import Figures
from bench.workloads import Workloads
from toolkit.cli import CliError, open_database

PROJECT_DIR = Path(__file__).resolve().parents[1]
APP_START_TIMEOUT = 180
TOMBSTONE_READERS = 1_000_001  # card numbers of the tombstone readers, far from the bench's own

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    topologies: list[int]  # node counts, in the order they are measured
    concurrency: list[int]
    ops: int
    warmup: int
    keyspace: str
    hosts: list[str] | None  # an existing cluster to measure instead of the local ones
    breakdown: bool = False
    profile: Path | None = None  # folder for the profile of the app under HTTP load
    before: str | None = None  # a git revision whose app is measured beside this one's (bench.revision)
    tombstones: int | None = None  # reserve/cancel cycles on one book before reading it (bench.tombstones)
    skip_usual: bool = False  # only what --before, --tombstones, --search and --index-cost ask for
    search: int | None = None  # books seeded for the search rows (bench.search)
    index_cost: int | None = None  # books per keyspace for the search index's cost on writes (bench.index_cost)
    logs: Path = PROJECT_DIR / "artifacts" / "bench"


@dataclass
class Topology:
    nodes: int
    hosts: list[str]
    replication: int
    cassandra_version: str = ""
    paxos_variant: str = ""
    results: list[Figures] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    before_after: dict[str, Any] | None = None
    tombstones: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    index_cost: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "hosts": self.hosts,
            "replication": self.replication,
            "cassandra_version": self.cassandra_version,
            "paxos_variant": self.paxos_variant,
            "seconds": round(self.seconds, 1),
            "results": [r.to_json() for r in self.results],
            "profile": self.profile,
            "before_after": self.before_after,
            "tombstones": self.tombstones,
            "search": self.search,
            "index_cost": self.index_cost,
        }


def machine() -> dict[str, Any]:
    cpu = ""
    memory = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cassandra_driver": cassandra.__version__,
        "heap_per_node": os.environ.get("CLUSTER_HEAP", "1G"),
    }


def add_ratios(results: list[Figures]) -> None:
    """Each row against its group's baseline at the same concurrency, measured in the same run."""
    baselines = {(r.group, r.concurrency): r.throughput for r in results if r.baseline}
    for r in results:
        base = baselines.get((r.group, r.concurrency))
        r.ratio = round(r.throughput / base, 3) if base else None


# -- the cluster ----------------------------------------------------------------------------------
def local_cluster(nodes: int, progress: Progress) -> list[str]:
    """The local cluster of `nodes` nodes, started if needed; the other topology is stopped first, as both
    use the same addresses and ports."""
    import cluster

    running = cluster.running_size()
    if running and running != nodes:
        progress(f"stopping the {running}-node cluster to start the {nodes}-node one")
        cluster.stop(progress=progress)
    try:
        return cluster.start(nodes=nodes, progress=progress)
    except cluster.ClusterError as error:
        raise CliError(f"cannot start the {nodes}-node cluster: {error}") from error


async def describe_cluster(db: Database) -> tuple[str, str]:
    """Cassandra's version and the Paxos variant the nodes run (from the settings virtual table)."""
    version = (await db.execute_raw("SELECT release_version FROM system.local")).one()
    try:
        row = (await db.execute_raw("SELECT value FROM system_views.settings WHERE name = 'paxos_variant'")).one()
        paxos = row.value if row else "unknown"
    except Exception:  # an older Cassandra without the virtual table
        paxos = "unknown"
    return (version.release_version if version else "unknown"), paxos


async def empty_keyspace(db: Database, settings: Settings) -> None:
    await apply_schema(db, settings)
    await db.execute_raw(f"CREATE TABLE IF NOT EXISTS {settings.keyspace}.lwt_baseline (k uuid PRIMARY KEY, v int)")
    for table in (*DATA_TABLES, "lwt_baseline"):
        await db.execute_raw(f"TRUNCATE {settings.keyspace}.{table}")


# -- the app --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunningApp:
    url: str
    pid: int  # for the CPU it uses (`cpu_seconds`)


@contextlib.contextmanager
def running_app(
    settings: Settings, log_path: Path, *, profile_to: Path | None = None, module: tuple[str, ...] = ("app",)
) -> Iterator[RunningApp]:
    """`python -m app` (or `module`: the naive peer) on a free port (under pyinstrument when `profile_to` is given),
    through app.launcher; a failure to start is a one-line error. SIGINT at the end lets the app (and the profiler)
    finish cleanly."""
    profiler = ["-m", "pyinstrument", "-r", "pyisession", "-o", str(profile_to)] if profile_to else None
    with contextlib.ExitStack() as stack:
        try:
            url, process = stack.enter_context(
                launcher.running_app_process(
                    settings.cassandra_hosts,
                    settings.keyspace,
                    log_path,
                    timeout=APP_START_TIMEOUT,
                    stop_timeout=60,
                    extra_env={"CASSANDRA_REPLICATION": str(settings.replication_factor)},
                    python_args=profiler,
                    module=module,
                )
            )
        except RuntimeError as error:
            raise CliError(f"{str(error).splitlines()[0]}; see {log_path}") from error
        yield RunningApp(url, process.pid)


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user and system) the process has used so far; None once it is gone. CPU time, unlike wall time,
    does not grow when other work shares the cores."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_topology(options: Options, base: Settings, hosts: list[str], progress: Progress) -> Topology:
    started = time.monotonic()
    settings = dataclasses.replace(
        base,
        cassandra_hosts=hosts,
        keyspace=options.keyspace,
        replication_factor=replication_for(hosts),
        seed_demo_data=False,
    )
    topology = Topology(nodes=len(hosts), hosts=hosts, replication=settings.replication_factor)
    async with open_database(settings) as db:
        topology.cassandra_version, topology.paxos_variant = await describe_cluster(db)
        progress(
            f"{len(hosts)} node(s) {','.join(hosts)}: Cassandra {topology.cassandra_version}, "
            f"paxos {topology.paxos_variant}, replication {settings.replication_factor}, keyspace {settings.keyspace}"
        )
        await empty_keyspace(db, settings)
        library = Library(db)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        log_path = options.logs / f"app-{len(hosts)}node-{stamp}.log"
        with running_app(settings, log_path) as app:
            work = Workloads(db, library, app.url, ops=options.ops, warmup=options.warmup, progress=progress)
            try:
                await work.setup()
                for concurrency in options.concurrency:
                    progress(f"concurrency {concurrency}")
                    if not options.skip_usual:
                        await work.reserve_distinct(concurrency)
                        await work.reserve_hot(concurrency)
                        await work.reads(concurrency)
                    if options.breakdown:
                        await work.breakdown(concurrency)
                if options.before is not None:
                    topology.before_after = await before_after(options, settings, db, work, app.url, progress)
            finally:
                await work.close()
        if options.profile is not None:
            topology.profile = await profile_app(options, settings, db, library, progress)
        if options.tombstones:
            topology.tombstones = await tombstones(options, settings, db, library, progress)
        topology.results = work.results
        if options.search:
            topology.search, rows = await search(options, settings, progress)
            topology.results += rows
        if options.index_cost:
            from bench.index_cost import measure_index_cost, render

            progress(f"index cost: load average {load_average()}")
            topology.index_cost = await measure_index_cost(settings, options.index_cost, progress)
            progress(render(topology.index_cost))
    add_ratios(topology.results)
    topology.seconds = time.monotonic() - started
    return topology


async def before_after(
    options: Options, settings: Settings, db: Database, work: Workloads, url: str, progress: Progress
) -> dict[str, Any]:
    """The app of revision --before, from a git worktree of its own, beside this one's: HTTP reserve, cancel and
    move on each, at each concurrency, with the same bare-LWT baseline."""
    from bench.revision import compare

    assert options.before is not None
    return await compare(options.before, options.concurrency, settings, db, work, url, options.logs, progress)


async def tombstones(
    options: Options, settings: Settings, db: Database, library: Library, progress: Progress
) -> dict[str, Any]:
    from app.models import Conflict
    from bench.tombstones import measure_tombstones, render

    assert options.tombstones
    result = await measure_tombstones(
        library,
        db.session,
        settings.keyspace,
        options.tombstones,
        conflict=Conflict,
        make_book=lambda b: library.create_book(f"Tombstone book {b.hex[:8]}", "Bench Author", "bench", 2000, b),
        make_reader=lambda u: library.import_user(f"Tombstone reader {u}", f"t{u}@bench.test", u),
        first_reader=TOMBSTONE_READERS,
        node_logs=node_logs(len(settings.cassandra_hosts)),
        progress=progress,
    )
    progress(render(result))
    return result


async def search(options: Options, settings: Settings, progress: Progress) -> tuple[dict[str, Any], list[Figures]]:
    """The catalogue search on --search seeded books, in a keyspace of its own (seeded once, then reused): the
    terms per book, the search rows at each concurrency (repository and HTTP, against a point read), the disk."""
    from app.demo_data import demo_books
    from bench import search as bench_search
    from bench import storage

    assert options.search
    own = dataclasses.replace(settings, keyspace=settings.keyspace + bench_search.KEYSPACE_SUFFIX)
    nodes = len(settings.cassandra_hosts)
    progress(f"search: the terms of {options.search:,} books and what each query matches, in Python")
    survey = bench_search.survey(demo_books(options.search))
    async with open_database(own) as db:
        found: dict[str, Any] = await bench_search.prepare_catalogue(db, own, options.search, progress)
        found["survey"] = survey.to_json()
        progress("search: flushing the catalogue to disk (nodetool) and waiting for compactions")
        found["flushed"] = await asyncio.to_thread(storage.flush, own.keyspace, nodes)
        found["disk"] = storage.table_on_disk(own.keyspace, "books", nodes)
        progress(bench_search.render(found))
        library = Library(db)
        with running_app(own, options.logs / f"app-search-{nodes}node.log") as app:
            work = bench_search.SearchWorkloads(
                db,
                library,
                app.url,
                ops=options.ops,
                warmup=options.warmup,
                progress=progress,
                books=options.search,
                expected=survey.matches,
            )
            rows: list[Figures] = []
            try:
                for concurrency in options.concurrency:
                    progress(f"search: concurrency {concurrency}, load average {load_average()}")
                    rows += await work.run(concurrency)
            finally:
                await work.close()
    return found, rows


def load_average() -> list[float]:
    """The machine's load average over 1, 5 and 15 minutes (`uptime`'s), for the record of a run."""
    return [round(x, 2) for x in os.getloadavg()]


def node_logs(nodes: int) -> list[Path]:
    """The system.log of each node of the local cluster of that size (under $CLUSTER_HOME), if it is there."""
    from cluster.manager import HOME

    return sorted((HOME / f"{nodes}-node").glob("node*/logs/system.log"))


async def profile_app(
    options: Options, settings: Settings, db: Database, library: Library, progress: Progress
) -> dict[str, Any]:
    """A second app, under pyinstrument, taking distinct reservations and catalogue pages over HTTP at the
    highest concurrency. Kept apart from the measured app: the profiler slows what it watches."""
    from bench.profile import top_costs

    assert options.profile is not None
    options.profile.mkdir(parents=True, exist_ok=True)
    session_file = options.profile / f"app-{len(settings.cassandra_hosts)}node.pyisession"
    concurrency = max(options.concurrency)
    progress(f"profiling the app under HTTP load (concurrency {concurrency}) into {session_file}")
    with running_app(settings, options.logs / "app-profiled.log", profile_to=session_file) as app:
        work = Workloads(db, library, app.url, ops=options.ops, warmup=0, progress=progress)
        try:
            await work.authenticate()
            await work.http_load(concurrency)
        finally:
            await work.close()
    # The profile is written as the app exits; wait for the file rather than assume.
    for _ in range(100):
        if session_file.exists():
            break
        await asyncio.sleep(0.1)
    return top_costs(session_file, options.profile)


async def execute(options: Options, progress: Progress) -> dict[str, Any]:
    base = Settings.from_env()
    started_at = datetime.datetime.now(datetime.UTC)
    load_at_start = load_average()
    topologies: list[Topology] = []
    for nodes in options.topologies:
        if options.hosts:
            hosts = options.hosts
        else:
            hosts = await asyncio.to_thread(local_cluster, nodes, progress)
        topologies.append(await measure_topology(options, base, hosts, progress))
    return {
        "schema": 1,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "options": {
            "topologies": options.topologies,
            "concurrency": options.concurrency,
            "ops": options.ops,
            "warmup": options.warmup,
            "keyspace": options.keyspace,
            "breakdown": options.breakdown,
            "before": options.before,
            "tombstones": options.tombstones,
            "skip_usual": options.skip_usual,
            "search": options.search,
            "index_cost": options.index_cost,
            "existing_cluster": bool(options.hosts),
        },
        "machine": machine(),
        "load_average": {"start": load_at_start, "end": load_average()},
        "topologies": [t.to_json() for t in topologies],
    }
