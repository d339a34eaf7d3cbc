"""Start, stop and inspect the local Cassandra nodes.

Layout, all under one git-ignored folder (`.cassandra/` at the top of the project, or `$CLUSTER_HOME`):

    lib/                 Cassandra's jars, copied there by Maven once
    1-node/node1/        the single local node (the app's default)
    3-node/node{1,2,3}/  the 3-node cluster (the distributed tests)
    2-dc/node{1,2,3,4}/  two datacenters of two nodes each: dc1 is nodes 1-2, dc2 nodes 3-4
        conf/ data/ commitlog/ hints/ saved_caches/ logs/system.log  pid  log.offset

The topologies keep separate data; only one runs at a time because they share addresses and ports.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
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
    def __init__(self, topology: config.Topology, index: int) -> None:
        self.topology = topology
        self.index = index
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

    def launch(self, java: str) -> None:
        for sub in ("conf", "data", "commitlog", "hints", "saved_caches", "cdc_raw", "logs", "triggers", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        yaml = self.dir / "conf" / "cassandra.yaml"
        yaml.write_text(config.cassandra_yaml(self.topology, self.index, self.dir))
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
            *config.FAST_START_OPTIONS,
            f"-Dcassandra.config=file://{yaml}",
            f"-Dcassandra.storagedir={self.dir}",
            f"-Dcassandra.logdir={self.dir / 'logs'}",
            f"-Dcassandra.triggers_dir={self.dir / 'triggers'}",
            f"-Dlogback.configurationFile={logback}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.jmx.local.port={7199 + 100 * (self.index - 1)}",
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


def _nodes(topology: config.Topology) -> list[Node]:
    return [Node(topology, i) for i in range(1, topology.size + 1)]


def running_topology() -> config.Topology | None:
    """The topology that has a node running, or None when nothing runs."""
    for topology in config.TOPOLOGIES:
        if any(node.pid() for node in _nodes(topology)):
            return topology
    return None


def running_size() -> int | None:
    """How many nodes the running cluster has (1, 3, or 4 in two datacenters), or None when nothing runs."""
    topology = running_topology()
    return topology.size if topology else None


def running_datacenters() -> dict[str, list[str]]:
    """The running cluster's datacenters and their nodes' addresses ({} when nothing runs)."""
    topology = running_topology()
    if topology is None:
        return {}
    return {dc: [config.node_address(i) for i in topology.nodes_in(dc)] for dc in topology.datacenters}


def _configured_topology() -> config.Topology | None:
    """The running cluster's topology, else the one most recently started."""
    topology = running_topology()
    if topology:
        return topology
    started = [(n.dir.stat().st_mtime, t.name) for t in config.TOPOLOGIES if (n := Node(t, 1)).dir.exists()]
    return next(t for t in config.TOPOLOGIES if t.name == max(started)[1]) if started else None


def _require_cluster() -> config.Topology:
    topology = _configured_topology()
    if topology is None:
        raise ClusterError("no cluster has been started here; run `python -m cluster up` first")
    return topology


def _node(index: int) -> Node:
    topology = _require_cluster()
    if not 1 <= index <= topology.size:
        raise ClusterError(f"node {index} does not exist: the cluster has {topology.size} node(s)")
    return Node(topology, index)


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
    """The local topology of `nodes` nodes in one datacenter (1 or 3), or two datacenters of two nodes each."""
    if datacenters == 2:
        return config.TWO_DATACENTERS
    if datacenters != 1:
        raise ClusterError(f"--dcs must be 1 or 2, not {datacenters}")
    for topology in (config.ONE_NODE, config.THREE_NODES):
        if topology.size == nodes:
            return topology
    raise ClusterError(f"--nodes must be 1 or 3, not {nodes}")


def _describe(topology: config.Topology) -> str:
    if len(topology.datacenters) == 1:
        return f"a {topology.size}-node cluster"
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
    members = _nodes(topology)
    to_start = [node for node in members if node.pid() is None]
    if not to_start:
        progress(f"{_describe(topology)} is already running; reusing it")
    else:
        java = find_java()
        _check_memory(len(to_start))
        for node in to_start:
            _check_ports(node)
        fetch_jars(progress)
        for node in to_start:
            where = f" in {node.datacenter}" if len(topology.datacenters) > 1 else ""
            progress(f"starting node {node.index} on {node.address}{where} (log: {node.log})")
            node.launch(java)
            if node.index == 1 and len(to_start) > 1:
                # The others learn the ring from the seed at start-up and give up if it does not answer.
                _wait_for_seed(node, timeout, progress)
    _wait_until_up(members, timeout, progress)
    return contact_points()


def _wait_for_seed(seed: Node, timeout: float, progress: Progress) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(seed.address, config.STORAGE_PORT):
        if seed.pid() is None:
            raise ClusterError(
                f"node 1 ({seed.address}) stopped while starting; last lines of {seed.log}:\n{seed.tail()}"
            )
        if time.monotonic() > deadline:
            raise ClusterError(
                f"node 1 did not open its storage port in {timeout:.0f}s; last lines of {seed.log}:\n{seed.tail()}"
            )
        time.sleep(0.3)
    progress("node 1 (the seed) is listening; starting the others")


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


def start_node(index: int, timeout: float = 180, progress: Progress = _quiet) -> None:
    """Start one stopped node and wait until it and every running node see each other UP."""
    node = _node(index)
    if node.pid() is None:
        _check_ports(node)
        progress(f"starting node {node.index} on {node.address}")
        node.launch(find_java())
    members = [n for n in _nodes(node.topology) if n.pid() is not None]
    _wait_until_up(members, timeout, progress)


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
    size = running_size() or 1
    return [config.node_address(i) for i in range(1, size + 1)]
