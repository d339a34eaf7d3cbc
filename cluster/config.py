"""Per-node configuration files: cassandra.yaml, logback.xml and the JVM options.

Tuned the way Cassandra's own test tooling (ccm) tunes test clusters: one token per node with
balanced initial tokens, no bootstrap at creation (a node added later bootstraps, with a token that bisects the
largest range), small heaps. What matters for correctness stays at
Cassandra's defaults (the commit log, hinted handoff), except one: lightweight transactions run on
Paxos v2: the whole test suite passes under it, and docs/performance.md measures it about twice as
fast as v1 on a contended book.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLUSTER_NAME = "library"
DATACENTER = "datacenter1"  # SimpleSnitch names every node's datacenter this way
STORAGE_PORT = 7000
NATIVE_PORT = 9042
MAX_NODES = 5
MURMUR3_MIN_TOKEN = -(2**63)


@dataclass(frozen=True)
class Topology:
    """The nodes of one local cluster: how many in each datacenter, numbered 1, 2, ... across them in order (node
    i listens on 127.0.0.i). Each topology keeps its data in a folder of its own, `name`."""

    name: str
    nodes_per_datacenter: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.nodes_per_datacenter)

    @property
    def datacenters(self) -> list[str]:
        """One datacenter keeps SimpleSnitch's name for it; two are dc1 and dc2, as the snitch file says."""
        if len(self.nodes_per_datacenter) == 1:
            return [DATACENTER]
        return [f"dc{i}" for i in range(1, len(self.nodes_per_datacenter) + 1)]

    def datacenter_of(self, index: int) -> str:
        if len(self.nodes_per_datacenter) == 1 and index >= 1:
            return DATACENTER  # a node added to the cluster later (`python -m cluster add`) joins the one datacenter
        first = 1
        for name, count in zip(self.datacenters, self.nodes_per_datacenter, strict=True):
            if index < first + count:
                return name
            first += count
        raise ValueError(f"node {index} is not in a cluster of {self.size}")

    def nodes_in(self, datacenter: str) -> list[int]:
        return [i for i in range(1, self.size + 1) if self.datacenter_of(i) == datacenter]

    def seeds(self) -> list[int]:
        """The first node of each datacenter: a datacenter whose seed is elsewhere cannot gossip on its own."""
        return [self.nodes_in(dc)[0] for dc in self.datacenters]

    def initial_token(self, index: int) -> int:
        """Balanced single tokens in each datacenter (the Murmur3 range split evenly among its nodes), the
        second datacenter's offset by 100 so no two nodes share one, as ccm does."""
        dc = self.datacenter_of(index)
        members = self.nodes_in(dc)
        step = 2**64 // len(members)
        return MURMUR3_MIN_TOKEN + members.index(index) * step + 100 * self.datacenters.index(dc)


ONE_NODE = Topology("1-node", (1,))
THREE_NODES = Topology("3-node", (3,))
TWO_DATACENTERS = Topology("2-dc", (2, 2))
# `up --nodes N` in one datacenter, N = 1..MAX_NODES; the 1- and 3-node ones keep the folders they always had.
SINGLE_DATACENTER = tuple(
    {1: ONE_NODE, 3: THREE_NODES}.get(n, Topology(f"{n}-node", (n,))) for n in range(1, MAX_NODES + 1)
)
TOPOLOGIES = (*SINGLE_DATACENTER, TWO_DATACENTERS)
MURMUR3_RING = 2**64


def bisecting_token(tokens: list[int]) -> int:
    """The token halfway along the largest range between the given nodes' tokens (the ring wraps), as ccm gives a
    node it adds: the new node takes over half of the most loaded node's primary range."""
    if not tokens:
        raise ValueError("no tokens to bisect")
    ordered = sorted(tokens)
    # Each range runs from one token to the next; the last wraps round to the first.
    following = ordered[1:] + ordered[:1]
    ranges = [(b - a if b > a else b - a + MURMUR3_RING, a) for a, b in zip(ordered, following, strict=True)]
    width, start = max(ranges, key=lambda r: (r[0], -r[1]))
    middle = start + width // 2
    return (middle - MURMUR3_MIN_TOKEN) % MURMUR3_RING + MURMUR3_MIN_TOKEN


# Cassandra's conf/jvm17-server.options and conf/jvm-server.options, the parts a node needs on JDK 17.
JVM17_OPTIONS = [
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-Xss256k",
    "-XX:+PerfDisableSharedMem",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
    "-Djdk.attach.allowAttachSelf=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "--add-exports",
    "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports",
    "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports",
    "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports",
    "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports",
    "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports",
    "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens",
    "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens",
    "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.io=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens",
    "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util=ALL-UNNAMED",
]

# Start-up shortcuts for a local test cluster; none of them changes how reads and writes behave.
FAST_START_OPTIONS = [
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.superuser_setup_delay_ms=0",
    "-Dcassandra.ring_delay_ms=1000",
    "-Dcassandra.load_ring_state=true",
]

# A node that bootstraps, or decommissions, runs with these (a node to be decommissioned is restarted with them first).
# A node that bootstraps must know the whole ring before it picks the nodes to stream from: with the 1 s ring delay
# above, a node joining a busy machine once computed its ranges before gossip had told it of the other nodes' tokens,
# streamed nothing and joined empty (acknowledged writes were then missing from a quorum). It waits as long as
# Cassandra's default says (30 s) and lets gossip settle.
JOINING_OPTIONS = [
    "-Dcassandra.ring_delay_ms=30000",
    "-Dcassandra.load_ring_state=true",
]


def heap_size() -> str:
    """The heap of each node; `CLUSTER_HEAP` overrides it (e.g. `2G`)."""
    return os.environ.get("CLUSTER_HEAP", "1G")


def paxos_variant() -> str:
    """Paxos v2 (two round trips to the replicas where v1 takes four, and far fewer timeouts on a contended book),
    though Cassandra 5.0 still ships v1; `CLUSTER_PAXOS=v1` selects the old protocol, to compare."""
    return os.environ.get("CLUSTER_PAXOS", "v2")


def node_address(index: int) -> str:
    return f"127.0.0.{index}"


def snitch(topology: Topology) -> str:
    """SimpleSnitch for one datacenter (every node in datacenter1, as the keyspaces made before say);
    GossipingPropertyFileSnitch, which reads each node's cassandra-rackdc.properties, for two."""
    return "SimpleSnitch" if len(topology.datacenters) == 1 else "GossipingPropertyFileSnitch"


def rackdc_properties(topology: Topology, index: int) -> str:
    return f"dc={topology.datacenter_of(index)}\nrack=rack1\n"


def cassandra_yaml(
    topology: Topology,
    index: int,
    node_dir: Path,
    *,
    token: int | None = None,
    bootstrap: bool = False,
    seeds: list[int] | None = None,
) -> str:
    """A node of the topology as created (its balanced token, no bootstrap, the topology's seeds), or one added
    later: its own token, `bootstrap` (it streams its ranges from the others) and the members it gossips with
    first."""
    address = node_address(index)
    seed_list = ",".join(f"{node_address(i)}:{STORAGE_PORT}" for i in (seeds or topology.seeds()))
    return f"""\
# Written by `python -m cluster`; rewritten at every start of this node.
cluster_name: '{CLUSTER_NAME}'
num_tokens: 1
initial_token: {topology.initial_token(index) if token is None else token}
auto_bootstrap: {"true" if bootstrap else "false"}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: {snitch(topology)}
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seed_list}"
listen_address: {address}
rpc_address: {address}
storage_port: {STORAGE_PORT}
native_transport_port: {NATIVE_PORT}
start_native_transport: true
data_file_directories:
  - {node_dir / "data"}
commitlog_directory: {node_dir / "commitlog"}
hints_directory: {node_dir / "hints"}
saved_caches_directory: {node_dir / "saved_caches"}
cdc_raw_directory: {node_dir / "cdc_raw"}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
hinted_handoff_enabled: true
paxos_variant: {paxos_variant()}
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
concurrent_compactors: 1
auto_snapshot: false
storage_compatibility_mode: NONE
"""


def jmx_port(index: int) -> int:
    """Each node's JMX port, on 127.0.0.1 only (Cassandra's local JMX): nodetool reaches the node there."""
    return 7199 + 100 * (index - 1)


TOOLS_LOGBACK = """\
<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR" /></root>
</configuration>
"""


def logback_xml(log_file: Path) -> str:
    return f"""\
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{log_file}</file>
    <append>true</append>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE" />
  </root>
</configuration>
"""
