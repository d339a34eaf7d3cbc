"""Start, stop and inspect the local Cassandra nodes.

Layout, all under one git-ignored folder (`.cassandra/` at the top of the project, or `$CLUSTER_HOME`):

    lib/                 Cassandra's jars, copied there by Maven once
    1-node/node1/        the single local node (the app's default)
    3-node/node{1,2,3}/  the 3-node cluster (the distributed tests); N-node/ for `up --nodes N`, N up to 5
    2-dc/node{1,2,3,4}/  two datacenters of two nodes each: dc1 is nodes 1-2, dc2 nodes 3-4
        conf/ data/ commitlog/ hints/ saved_caches/ logs/system.log  pid  log.offset
    3-node/members.json  which nodes the cluster has now, with their tokens, once `add` or `decommission` changed it

The topologies keep separate data; only one runs at a time because they share addresses and ports.
A topology's members are its nodes as created (node 1 to N, balanced tokens) until `add` (a node bootstraps into the
running cluster) or `decommission` (a node streams its data away and leaves) changes them; members.json then
remembers them, so that `status`, `stop`, `start`, `down` and the next `up` know the cluster as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cluster import config

PACKAGE_DIR = Path(__file__).resolve().parent
POM = PACKAGE_DIR / "pom.xml"
HOME = Path(os.environ.get("CLUSTER_HOME", PACKAGE_DIR.parent / ".cassandra")).resolve()
LIB_DIR = HOME / "lib"

# Each node needs its heap plus off-heap memory, thread stacks and metaspace.
MEMORY_PER_NODE_BYTES = 1536 * 1024 * 1024
READY_LINE = "Starting listening for CQL clients"
PEER_EVENT = re.compile(r"(?:InetAddress|Node) /?(127\.0\.0\.\d+)(?::\d+)? is now (UP|DOWN)")

Progress = Callable[[str], None]


class ClusterError(Exception):
    """Something the user can act on; the CLI prints it as one line."""


@dataclass(frozen=True)
class Member:
    """One node of a topology: its number (it listens on 127.0.0.index), its token, and whether it bootstrapped into
    the running cluster (added by `add`) rather than being there from the start."""

    index: int
    token: int
    bootstrap: bool = False


@dataclass(frozen=True)
class Change:
    """What `add` or `decommission` did: to which node, its token, and how long it took."""

    node: int
    token: int
    seconds: float


@dataclass(frozen=True)
class NodeStatus:
    index: int
    address: str
    pid: int | None
    up: bool
    log: Path
    datacenter: str


def _quiet(_: str) -> None:
    pass


class Node:
    def __init__(
        self,
        topology: config.Topology,
        index: int,
        token: int | None = None,
        bootstrap: bool = False,
        seeds: list[int] | None = None,
    ) -> None:
        self.topology = topology
        self.index = index
        self.token = topology.initial_token(index) if token is None else token
        self.bootstrap = bootstrap
        self.seeds = seeds or topology.seeds()
        self.address = config.node_address(index)
        self.datacenter = topology.datacenter_of(index)
        self.dir = HOME / topology.name / f"node{index}"
        self.log = self.dir / "logs" / "system.log"
        self.stdout = self.dir / "logs" / "stdout.log"
        self._pid_file = self.dir / "pid"
        self._offset_file = self.dir / "log.offset"

    # -- process --------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of this node's JVM, if it is alive (a stale pid file is ignored)."""
        try:
            pid = int(self._pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"CassandraDaemon" in cmdline and str(self.dir).encode() in cmdline else None

    def serves_cql(self) -> bool:
        return _port_open(self.address, config.NATIVE_PORT)

    def launch(self, java: str, joining: bool = False) -> None:
        """Start the node's JVM; `joining`: it is about to bootstrap into the running cluster (JOINING_OPTIONS)."""
        for sub in ("conf", "data", "commitlog", "hints", "saved_caches", "cdc_raw", "logs", "triggers", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        yaml = self.dir / "conf" / "cassandra.yaml"
        yaml.write_text(
            config.cassandra_yaml(
                self.topology, self.index, self.dir, token=self.token, bootstrap=self.bootstrap, seeds=self.seeds
            )
        )
        # Read from the class path by GossipingPropertyFileSnitch (conf/ is on it, below); SimpleSnitch ignores it.
        (self.dir / "conf" / "cassandra-rackdc.properties").write_text(
            config.rackdc_properties(self.topology, self.index)
        )
        logback = self.dir / "conf" / "logback.xml"
        logback.write_text(config.logback_xml(self.log))
        # Only log lines written after this start count when we wait for this node.
        self._offset_file.write_text(str(self.log.stat().st_size if self.log.exists() else 0))
        heap = config.heap_size()
        jamm = next(LIB_DIR.glob("jamm-*.jar"), None)
        command = [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *config.JVM17_OPTIONS,
            *([f"-javaagent:{jamm}"] if jamm else []),
            *(config.JOINING_OPTIONS if joining else config.FAST_START_OPTIONS),
            f"-Dcassandra.config=file://{yaml}",
            f"-Dcassandra.storagedir={self.dir}",
            f"-Dcassandra.logdir={self.dir / 'logs'}",
            f"-Dcassandra.triggers_dir={self.dir / 'triggers'}",
            f"-Dlogback.configurationFile={logback}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.jmx.local.port={config.jmx_port(self.index)}",
            f"-Djava.io.tmpdir={self.dir / 'tmp'}",
            "-cp",
            f"{self.dir / 'conf'}{os.pathsep}{LIB_DIR}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        with open(self.stdout, "ab") as out:
            # A session of its own: Ctrl-C in the shell that ran `up` must not stop the nodes.
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
            )
        self._pid_file.write_text(str(process.pid))
        # Until the fork has exec'd java, /proc shows the parent's command line; wait for the JVM.
        deadline = time.monotonic() + 10
        while self.pid() is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def terminate(self, kill: bool = False, timeout: float = 60) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            _reap(pid)
            time.sleep(0.2)
        # A dying process loses its command line before its sockets: wait for the ports, so a start right after
        # this does not find them taken.
        ports_free_by = time.monotonic() + 10
        while self.serves_cql() or _port_open(self.address, config.STORAGE_PORT):
            if time.monotonic() > ports_free_by:
                break
            time.sleep(0.1)

    # -- log ------------------------------------------------------------------------------
    def recent_log(self) -> str:
        """The log written since this node's last start."""
        try:
            offset = int(self._offset_file.read_text())
        except (OSError, ValueError):
            offset = 0
        try:
            with open(self.log, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines: int = 25) -> str:
        text = self.recent_log() or _read(self.stdout)
        return "\n".join(text.splitlines()[-lines:])

    def peers_seen_up(self) -> set[str]:
        state: dict[str, str] = {}
        for address, event in PEER_EVENT.findall(self.recent_log()):
            state[address] = event
        return {address for address, event in state.items() if event == "UP"}

    def is_ready(self) -> bool:
        return READY_LINE in self.recent_log() and self.serves_cql()

    def started_to_leave(self) -> bool:
        """Whether the running JVM has Cassandra's default ring delay (config.JOINING_OPTIONS), which a decommission
        waits before it streams."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(OSError):
            return config.JOINING_OPTIONS[0].encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return False

    def wipe(self) -> None:
        """Delete what this node stored (its logs stay): a node that left the ring must rejoin as a new one."""
        for sub in ("data", "commitlog", "hints", "saved_caches", "cdc_raw", "tmp"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        for file in (self._pid_file, self._offset_file):
            file.unlink(missing_ok=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _reap(pid: int) -> None:
    # Nodes started by this process are its children; collect them so they do not linger as zombies.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- membership ---------------------------------------------------------------------------------
def _members_file(topology: config.Topology) -> Path:
    return HOME / topology.name / "members.json"


def members(topology: config.Topology) -> list[Member]:
    """The topology's nodes: as `add` and `decommission` left them (members.json), else as it was created."""
    path = _members_file(topology)
    try:
        recorded = json.loads(path.read_text())
        found = [Member(int(m["index"]), int(m["token"]), bool(m.get("bootstrap", False))) for m in recorded["nodes"]]
    except FileNotFoundError:
        return [Member(i, topology.initial_token(i)) for i in range(1, topology.size + 1)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ClusterError(
            f"{path} cannot be read ({error}): fix it, or delete it to go back to the nodes as created"
        ) from None
    return sorted(found, key=lambda m: m.index)


def _remember(topology: config.Topology, nodes: list[Member]) -> None:
    path = _members_file(topology)
    path.parent.mkdir(parents=True, exist_ok=True)
    recorded = {"nodes": [{"index": m.index, "token": m.token, "bootstrap": m.bootstrap} for m in nodes]}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(recorded, indent=2) + "\n")
    partial.replace(path)


def _seeds(topology: config.Topology, nodes: list[Member]) -> list[int]:
    """Whom a node gossips with first. Two datacenters keep one seed each. In one datacenter: the first member that
    was there from the start (a node that bootstraps must not be a seed: a seed never bootstraps), else the first
    member."""
    if len(topology.datacenters) > 1:
        return topology.seeds()
    original = [m.index for m in nodes if not m.bootstrap]
    return (original or [m.index for m in nodes])[:1]


def _nodes(topology: config.Topology) -> list[Node]:
    return _nodes_of(topology, members(topology))


def _nodes_of(topology: config.Topology, nodes: list[Member]) -> list[Node]:
    seeds = _seeds(topology, nodes)
    return [Node(topology, m.index, m.token, m.bootstrap, seeds) for m in nodes]


def running_topology() -> config.Topology | None:
    """The topology that has a node running, or None when nothing runs."""
    for topology in config.TOPOLOGIES:
        if any(node.pid() for node in _nodes(topology)):
            return topology
    return None


def running_size() -> int | None:
    """How many nodes the running cluster has (1 to 5, 4 in two datacenters), or None when nothing runs."""
    topology = running_topology()
    return len(members(topology)) if topology else None


def running_datacenters() -> dict[str, list[str]]:
    """The running cluster's datacenters and their nodes' addresses ({} when nothing runs)."""
    topology = running_topology()
    if topology is None:
        return {}
    nodes = _nodes(topology)
    return {dc: [n.address for n in nodes if n.datacenter == dc] for dc in topology.datacenters}


def _started_at(topology: config.Topology) -> float | None:
    """When the topology was last started or changed: its members.json (written by `up`, `add`, `decommission`),
    else, in a folder from before members.json, its node 1."""
    for marker in (_members_file(topology), HOME / topology.name / "node1"):
        with contextlib.suppress(OSError):
            return marker.stat().st_mtime
    return None


def _configured_topology() -> config.Topology | None:
    """The running cluster's topology, else the one most recently started."""
    topology = running_topology()
    if topology:
        return topology
    started = [(at, t.name) for t in config.TOPOLOGIES if (at := _started_at(t)) is not None]
    return next(t for t in config.TOPOLOGIES if t.name == max(started)[1]) if started else None


def _require_cluster() -> config.Topology:
    topology = _configured_topology()
    if topology is None:
        raise ClusterError("no cluster has been started here; run `python -m cluster up` first")
    return topology


def _node(index: int) -> Node:
    nodes = {n.index: n for n in _nodes(_require_cluster())}
    if index not in nodes:
        raise ClusterError(f"node {index} is not in the cluster: its nodes are {_listing(nodes)}")
    return nodes[index]


def _listing(indices: Iterable[int]) -> str:
    return ", ".join(str(i) for i in sorted(indices))


# -- prerequisites --------------------------------------------------------------------------------
def find_java() -> str:
    """A JDK that Cassandra 5.0 runs on (11 or 17): $JAVA_HOME, `java` on PATH, then /usr/lib/jvm."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*1[17]*/bin/java"))
    found = []
    for java in candidates:
        version = _java_major(java)
        if version in (11, 17):
            return java
        if version:
            found.append(f"{java} is {version}")
    if not candidates:
        raise ClusterError("java not found: install OpenJDK 17 (apt-get install openjdk-17-jdk-headless)")
    raise ClusterError(f"Cassandra 5.0 needs JDK 11 or 17 ({'; '.join(found) or 'no usable java'})")


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def fetch_jars(progress: Progress = _quiet) -> Path:
    """Cassandra's jars from Maven Central, once: a second call downloads nothing."""
    stamp = LIB_DIR / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if _read(stamp) == digest:
        return LIB_DIR
    mvn = shutil.which("mvn")
    if not mvn:
        raise ClusterError("mvn not found: install Maven (apt-get install maven)")
    progress("fetching Cassandra's jars with Maven (once; about 70 MB)...")
    staging = HOME / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise ClusterError(f"Maven could not fetch Cassandra's jars:\n{tail}")
    shutil.rmtree(LIB_DIR, ignore_errors=True)
    staging.rename(LIB_DIR)
    stamp.write_text(digest)
    jars = list(LIB_DIR.glob("*.jar"))
    size = sum(j.stat().st_size for j in jars) / 1e6
    progress(f"fetched {len(jars)} jars ({size:.0f} MB) into {LIB_DIR}")
    return LIB_DIR


def _check_memory(nodes: int) -> None:
    available = 0
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    needed = nodes * MEMORY_PER_NODE_BYTES
    if available and available < needed:
        raise ClusterError(
            f"too little memory: {nodes} node(s) need about {needed / 2**30:.1f} GiB, "
            f"{available / 2**30:.1f} GiB is available (CLUSTER_HEAP sets a smaller heap)"
        )


def _check_ports(node: Node) -> None:
    for port in (config.NATIVE_PORT, config.STORAGE_PORT):
        if _port_open(node.address, port):
            raise ClusterError(
                f"port {port} on {node.address} is in use by another process; "
                "stop whatever listens there (another Cassandra?) and try again"
            )


# -- operations ---------------------------------------------------------------------------------
def topology_for(nodes: int = 1, datacenters: int = 1) -> config.Topology:
    """The local topology of `nodes` nodes in one datacenter (1 to 5), or two datacenters of two nodes each."""
    if datacenters == 2:
        return config.TWO_DATACENTERS
    if datacenters != 1:
        raise ClusterError(f"--dcs must be 1 or 2, not {datacenters}")
    for topology in config.SINGLE_DATACENTER:
        if topology.size == nodes:
            return topology
    raise ClusterError(f"--nodes must be between 1 and {config.MAX_NODES}, not {nodes}")


def _describe(topology: config.Topology) -> str:
    if len(topology.datacenters) == 1:
        now = len(members(topology))
        grown = f" (now {now} nodes)" if now != topology.size else ""
        return f"a {topology.size}-node cluster{grown}"
    return f"a cluster of {len(topology.datacenters)} datacenters ({topology.size} nodes)"


def start(nodes: int = 1, timeout: float = 300, progress: Progress = _quiet, datacenters: int = 1) -> list[str]:
    """Start (or reuse) a cluster of `nodes` nodes, or of two datacenters of two nodes each (`datacenters=2`);
    return its contact points once all are UP."""
    topology = topology_for(nodes, datacenters)
    running = running_topology()
    if running and running != topology:
        raise ClusterError(
            f"{_describe(running)} is running; stop it first with `python -m cluster down` (its data is kept)"
        )
    cluster_nodes = _nodes(topology)
    to_start = [node for node in cluster_nodes if node.pid() is None]
    if not to_start:
        progress(f"{_describe(topology)} is already running; reusing it")
    else:
        java = find_java()
        _check_memory(len(to_start))
        for node in to_start:
            _check_ports(node)
        fetch_jars(progress)
        _remember(topology, members(topology))  # also marks this topology as the one started last
        for node in to_start:
            where = f" in {node.datacenter}" if len(topology.datacenters) > 1 else ""
            progress(f"starting node {node.index} on {node.address}{where} (log: {node.log})")
            node.launch(java)
            if node.index == node.seeds[0] and len(to_start) > 1:
                # The others learn the ring from the seed at start-up and give up if it does not answer.
                _wait_for_seed(node, timeout, progress)
    _wait_until_up(cluster_nodes, timeout, progress)
    return contact_points()


def _wait_for_seed(seed: Node, timeout: float, progress: Progress) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(seed.address, config.STORAGE_PORT):
        if seed.pid() is None:
            raise ClusterError(
                f"node {seed.index} ({seed.address}) stopped while starting; last lines of {seed.log}:\n{seed.tail()}"
            )
        if time.monotonic() > deadline:
            raise ClusterError(
                f"node {seed.index} did not open its storage port in {timeout:.0f}s; "
                f"last lines of {seed.log}:\n{seed.tail()}"
            )
        time.sleep(0.3)
    progress(f"node {seed.index} (the seed) is listening; starting the others")


def _wait_until_up(members: list[Node], timeout: float, progress: Progress) -> None:
    started = time.monotonic()
    deadline = started + timeout
    last_report = ""
    while True:
        for node in members:
            if node.pid() is None:
                raise ClusterError(
                    f"node {node.index} ({node.address}) stopped while starting; "
                    f"last lines of {node.log}:\n{node.tail()}"
                )
        ready = [node for node in members if node.is_ready()]
        addresses = {node.address for node in members}
        healthy = [n for n in ready if addresses - {n.address} <= n.peers_seen_up()]
        if len(healthy) == len(members):
            progress(
                f"{len(members)} node(s) UP after {time.monotonic() - started:.0f}s: " + ", ".join(sorted(addresses))
            )
            return
        report = f"waiting: {len(ready)}/{len(members)} serving CQL, {len(healthy)}/{len(members)} see all peers UP"
        if report != last_report:
            progress(f"{report} ({time.monotonic() - started:.0f}s)")
            last_report = report
        if time.monotonic() > deadline:
            laggard = next(n for n in members if n not in healthy)
            raise ClusterError(
                f"node {laggard.index} was not ready after {timeout:.0f}s; "
                f"last lines of {laggard.log}:\n{laggard.tail()}"
            )
        time.sleep(0.5)


def stop(wipe: bool = False, progress: Progress = _quiet) -> None:
    """Stop every node; with `wipe`, delete the data of every topology too (the jars stay)."""
    for topology in config.TOPOLOGIES:
        for node in _nodes(topology):
            if node.pid() is not None:
                progress(f"stopping node {node.index} ({node.address})")
                node.terminate()
    if wipe:
        for topology in config.TOPOLOGIES:
            shutil.rmtree(HOME / topology.name, ignore_errors=True)
        progress(f"deleted the data under {HOME}")


def stop_node(index: int, kill: bool = False) -> None:
    """Stop one node: SIGTERM (Cassandra drains), or SIGKILL with `kill` to simulate a crash."""
    _node(index).terminate(kill=kill)


def start_node(index: int, timeout: float = 180, progress: Progress = _quiet, *, alone: bool = False) -> None:
    """Start one stopped node and wait until it and every running node see each other UP; `alone`, only until it
    serves CQL (the others may be unreachable: a test's cut-off datacenter)."""
    node = _node(index)
    if node.pid() is None:
        _check_ports(node)
        progress(f"starting node {node.index} on {node.address}")
        node.launch(find_java())
    running = [n for n in _nodes(node.topology) if n.pid() is not None]
    if not alone:
        _wait_until_up(running, timeout, progress)
        return
    deadline = time.monotonic() + timeout
    while not node.is_ready():
        if node.pid() is None or time.monotonic() > deadline:
            raise ClusterError(f"node {node.index} did not serve CQL; last lines of {node.log}:\n{node.tail()}")
        time.sleep(0.3)


def status() -> list[NodeStatus]:
    topology = _configured_topology()
    if topology is None:
        return []
    return [
        NodeStatus(n.index, n.address, n.pid(), n.pid() is not None and n.serves_cql(), n.log, n.datacenter)
        for n in _nodes(topology)
    ]


def contact_points() -> list[str]:
    """The addresses of the running cluster's nodes (all of them, UP or not)."""
    topology = running_topology()
    if topology is None:
        return [config.node_address(1)]
    return [n.address for n in _nodes(topology)]


# -- growing and shrinking ------------------------------------------------------------------------
STREAM_SOURCE_LINE = "Bootstrap: range "  # RangeStreamer's "range R exists on N for keyspace K", one per range
RING_LINE = re.compile(r"^([UD][NLJM])\s+(\S+)\s.*?\b([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\b", re.M)


@dataclass(frozen=True)
class RingEntry:
    state: str  # nodetool status's two letters: U/D (up, down) and N/L/J/M (normal, leaving, joining, moving)
    host_id: str


def ring(index: int) -> dict[str, RingEntry]:
    """The ring as node `index` sees it (`nodetool status`): each address's state and host id."""
    result = nodetool(index, ["status"])
    if result.returncode != 0:
        raise ClusterError(f"nodetool status on node {index} failed: {_nodetool_error(result)}")
    return {address: RingEntry(state, host) for state, address, host in RING_LINE.findall(result.stdout)}


def _running_single_datacenter() -> config.Topology:
    topology = running_topology()
    if topology is None:
        raise ClusterError("no cluster is running; start one first (`python -m cluster up --nodes 3`)")
    if len(topology.datacenters) > 1:
        raise ClusterError("the two datacenters keep two nodes each; `add` and `decommission` change one datacenter")
    return topology


def add(
    token: int | None = None, timeout: float = 600, progress: Progress = _quiet, *, node: int | None = None
) -> Change:
    """Bootstrap a new node into the running cluster of one datacenter: `node`, else the lowest free node number,
    with `token`, else one that bisects the largest range; it streams its ranges from the others. Returns once the
    node serves CQL and every other node has it NORMAL in its ring; the cluster then remembers it. A node
    decommissioned earlier comes back this way, wiped, as a new node (with its old token, if given)."""
    topology = _running_single_datacenter()
    current = members(topology)
    nodes = _nodes(topology)
    stopped = [n.index for n in nodes if n.pid() is None]
    if stopped:
        raise ClusterError(
            f"node(s) {_listing(stopped)} are stopped: start them first (`python -m cluster start N`), "
            "a new node streams its ranges from the nodes that hold them"
        )
    free = [i for i in range(1, config.MAX_NODES + 1) if i not in {m.index for m in current}]
    if not free:
        raise ClusterError(f"the cluster has {config.MAX_NODES} nodes already, as many as this machine runs")
    if node is not None and node not in free:
        raise ClusterError(f"node {node} is in the cluster already: its nodes are {_listing(m.index for m in current)}")
    index = free[0] if node is None else node
    owners = {m.token: m.index for m in current}
    if token is None:
        token = config.bisecting_token(list(owners))
    elif token in owners:
        raise ClusterError(f"token {token} is node {owners[token]}'s already")
    java = find_java()
    _check_memory(1)
    fetch_jars(progress)
    joined = sorted([*current, Member(index, token, bootstrap=True)], key=lambda m: m.index)
    new = next(n for n in _nodes_of(topology, joined) if n.index == index)
    _check_ports(new)
    new.wipe()  # a node that left the ring earlier must come back as a new one, with nothing of its old data
    _remember(topology, joined)
    progress(f"adding node {new.index} on {new.address} with token {token}, bootstrapping (log: {new.log})")
    started = time.monotonic()
    try:
        new.launch(java, joining=True)
        _wait_until_up([*nodes, new], timeout, progress)
        _wait_for_normal(new, nodes, started + timeout)
        if STREAM_SOURCE_LINE not in new.recent_log():
            # Every ring has keyspaces replicated to several nodes (system_distributed, system_auth): a bootstrap that
            # found no range to fetch did not know the ring, and the node would serve its ranges empty.
            raise ClusterError(
                f"node {new.index} joined without streaming anything (it did not see the ring in time); "
                f"taking it out again. See {new.log}"
            )
    except BaseException:
        # Not a member after all: stopped, taken out of the others' ring, wiped and forgotten, so that `add` can be
        # tried again.
        new.terminate(kill=True)
        _remove_from_ring(new, nodes)
        new.wipe()
        _remember(topology, current)
        raise
    seconds = time.monotonic() - started
    progress(f"node {new.index} ({new.address}) joined: bootstrapped and NORMAL on every node in {seconds:.1f}s")
    return Change(new.index, token, seconds)


def _wait_for_normal(node: Node, peers: list[Node], deadline: float) -> None:
    """Until every peer's ring has the node Up and Normal: its ranges are its own there, and the clients' drivers
    hear of it from them."""
    waiting = list(peers)
    while True:
        waiting = [p for p in waiting if (entry := ring(p.index).get(node.address)) is None or entry.state != "UN"]
        if not waiting:
            return
        if node.pid() is None:
            raise ClusterError(f"node {node.index} stopped while joining; last lines of {node.log}:\n{node.tail()}")
        if time.monotonic() > deadline:
            raise ClusterError(f"node(s) {_listing(p.index for p in waiting)} do not have node {node.index} UN in time")
        time.sleep(1)


def _remove_from_ring(node: Node, peers: list[Node]) -> None:
    """`nodetool removenode` for a node that died joining or just after: the others stream its ranges among
    themselves again. Best effort: what fails is left for the user, with the command that would do it."""
    live = [p for p in peers if p.pid() is not None]
    if not live:
        return
    try:
        entry = ring(live[0].index).get(node.address)
        if entry is not None:
            result = nodetool(live[0].index, ["removenode", entry.host_id], timeout=300)
            if result.returncode != 0:
                raise ClusterError(_nodetool_error(result))
    except ClusterError as error:
        print(
            f"cluster: node {node.index} may still be in the ring ({error}); `nodetool removenode` its host id",
            file=sys.stderr,
        )


def decommission(index: int, timeout: float = 900, progress: Progress = _quiet) -> Change:
    """Decommission one node of the running cluster (Cassandra streams its data to the nodes that take over its
    ranges), then stop it, wipe it and forget it. Cassandra refuses when too few nodes would be left for a keyspace's
    replication factor."""
    topology = _running_single_datacenter()
    current = members(topology)
    nodes = {n.index: n for n in _nodes(topology)}
    if index not in nodes:
        raise ClusterError(f"node {index} is not in the cluster: its nodes are {_listing(nodes)}")
    if len(nodes) == 1:
        raise ClusterError(f"node {index} is the cluster's only node: `python -m cluster down` stops it")
    node = nodes[index]
    if node.pid() is None:
        raise ClusterError(
            f"node {index} is stopped: it must run to hand its data over (`python -m cluster start {index}`)"
        )
    if crowded := _replication_beyond(index, len(nodes) - 1):
        # Checked before the restart below: Cassandra would refuse only once the node had been restarted for it.
        raise ClusterError(
            f"node {index} cannot leave: {'; '.join(crowded)}, and {len(nodes) - 1} nodes would be left. "
            "Lower that replication first (ALTER KEYSPACE ... WITH replication = ...), or add a node"
        )
    started = time.monotonic()
    if not node.started_to_leave():
        # Started with the fast-start 1 s ring delay, it would wait only 4 s (the batchlog timeout) between saying it
        # leaves and streaming its data away: on a busy machine a coordinator that has not heard it by then writes its
        # ranges to it and not to their next owner, and those writes are lost when it goes (seen: acknowledged
        # reservations missing after node 2 left under stress). Restarted with Cassandra's default, it waits 30 s.
        progress(f"restarting node {index} with Cassandra's 30 s ring delay, for the others to hear that it leaves")
        node.terminate()
        node.launch(find_java(), joining=True)
        _wait_until_up([n for n in nodes.values() if n.pid() is not None], timeout, progress)
    progress(f"decommissioning node {index} ({node.address}): streaming its data to the others")
    result = nodetool(index, ["decommission"], timeout)
    if result.returncode != 0:
        raise ClusterError(f"node {index} was not decommissioned: {_nodetool_error(result)}")
    seconds = time.monotonic() - started
    node.terminate()
    node.wipe()
    _remember(topology, [m for m in current if m.index != index])
    progress(f"node {index} ({node.address}) left the ring in {seconds:.1f}s; stopped, wiped and forgotten")
    return Change(index, node.token, seconds)


_KEYSPACE_REPLICATION = re.compile(r"^\s+(\S+) -> Replication class: \S+ \{(.*)\}\s*$", re.MULTILINE)


def _replication_beyond(index: int, nodes_left: int) -> list[str]:
    """The keyspaces asking for more replicas than `nodes_left` ("keyspace k asks for 4 replicas"), from nodetool
    describecluster on node `index`; empty when it cannot tell (Cassandra then decides, as it always does)."""
    result = nodetool(index, ["describecluster"])
    return keyspaces_beyond(result.stdout, nodes_left) if result.returncode == 0 else []


def keyspaces_beyond(describecluster: str, nodes_left: int) -> list[str]:
    """`_replication_beyond` from nodetool describecluster's text ("\tks -> Replication class: NetworkTopologyStrategy
    {datacenter1=3}")."""
    crowded = []
    for keyspace, options in _KEYSPACE_REPLICATION.findall(describecluster):
        factors = [int(value) for _, _, value in (o.partition("=") for o in options.split(", ")) if value.isdigit()]
        if factors and max(factors) > nodes_left:
            crowded.append(f"keyspace {keyspace} asks for {max(factors)} replicas")
    return crowded


def nodetool(index: int, arguments: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Cassandra's nodetool (org.apache.cassandra.tools.NodeTool from the jars) against one node's JMX port."""
    tools = HOME / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    logback = tools / "logback.xml"
    logback.write_text(config.TOOLS_LOGBACK)
    command = [
        find_java(),
        "-Xmx256m",
        *config.JVM17_OPTIONS,
        f"-Dlogback.configurationFile={logback}",
        f"-Duser.home={tools}",  # nodetool keeps its history under ~/.cassandra
        "-cp",
        f"{LIB_DIR}/*",
        "org.apache.cassandra.tools.NodeTool",
        "-h",
        "127.0.0.1",
        "-p",
        str(config.jmx_port(index)),
        *arguments,
    ]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"nodetool {' '.join(arguments)} on node {index} did not finish in {timeout:.0f}s") from None


def _nodetool_error(result: subprocess.CompletedProcess[str]) -> str:
    """nodetool's own message (`error: ...` or `nodetool: ...`), else the last line it wrote other than its pointer
    to `nodetool help`."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    for prefix in ("error:", "nodetool:"):
        for line in lines:
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    lines = [line for line in lines if not line.startswith("See 'nodetool help'")]
    return lines[-1] if lines else f"nodetool exited with {result.returncode}"
