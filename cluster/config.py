"""Per-node configuration files: cassandra.yaml, logback.xml and the JVM options.

Tuned the way Cassandra's own test tooling (ccm) tunes test clusters: one token per node with
balanced initial tokens, no bootstrap, small heaps. What matters for correctness stays at
Cassandra's defaults (the commit log, hinted handoff), except one: lightweight transactions run on
Paxos v2: the whole test suite passes under it, and docs/performance.md measures it about twice as
fast as v1 on a contended book.
"""

from __future__ import annotations

import os
from pathlib import Path

CLUSTER_NAME = "library"
DATACENTER = "datacenter1"  # SimpleSnitch names every node's datacenter this way
STORAGE_PORT = 7000
NATIVE_PORT = 9042
MAX_NODES = 3

# Balanced single tokens for up to three nodes (Murmur3 range split in three), as ccm does.
INITIAL_TOKENS = ("-9223372036854775808", "-3074457345618258603", "3074457345618258602")

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


def heap_size() -> str:
    """The heap of each node; `CLUSTER_HEAP` overrides it (e.g. `2G`)."""
    return os.environ.get("CLUSTER_HEAP", "1G")


def paxos_variant() -> str:
    """Paxos v2 (two round trips to the replicas where v1 takes four, and far fewer timeouts on a contended book),
    though Cassandra 5.0 still ships v1; `CLUSTER_PAXOS=v1` selects the old protocol, to compare."""
    return os.environ.get("CLUSTER_PAXOS", "v2")


def node_address(index: int) -> str:
    return f"127.0.0.{index}"


def cassandra_yaml(index: int, node_dir: Path) -> str:
    address = node_address(index)
    return f"""\
# Written by `python -m cluster`; rewritten at every start of this node.
cluster_name: '{CLUSTER_NAME}'
num_tokens: 1
initial_token: {INITIAL_TOKENS[index - 1]}
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{node_address(1)}:{STORAGE_PORT}"
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
