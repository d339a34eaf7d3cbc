"""The local Cassandra that `cluster/` starts is a real, replicated, fault-tolerant database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from cassandra import ConsistencyLevel, Unavailable
from cassandra.cluster import Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement

import cluster

QUORUM = ConsistencyLevel.QUORUM


def _session_on(host: str) -> tuple[Cluster, Session]:
    """A session that sends every request to one node, so that node coordinates it."""
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]), consistency_level=QUORUM)
    c = Cluster([host], protocol_version=5, execution_profiles={"default": profile})
    return c, c.connect()


def test_one_node_create_keyspace_write_and_read(cassandra_hosts: list[str], driver_session: Session) -> None:
    # The schema goes through the session that knows every node, so the driver waits until all agree on it.
    # Kept between runs (see conftest.py on why keyspaces are not dropped); the value is new each time.
    driver_session.execute(
        "CREATE KEYSPACE IF NOT EXISTS test_one_replica "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    driver_session.execute("CREATE TABLE IF NOT EXISTS test_one_replica.kv (k int PRIMARY KEY, v text)")
    c, session = _session_on(cassandra_hosts[0])
    with c:
        value = uuid.uuid4().hex
        session.execute("INSERT INTO test_one_replica.kv (k, v) VALUES (1, %s)", [value])
        assert session.execute("SELECT v FROM test_one_replica.kv WHERE k = 1").one().v == value


@pytest.fixture(scope="module")
def replicated(driver_session: Session) -> Iterator[str]:
    """Keyspace `library` (the service's), replicated to all three nodes, with a scratch table."""
    driver_session.execute(
        "CREATE KEYSPACE IF NOT EXISTS library WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"
    )
    table = "library.cluster_check"
    driver_session.execute(f"CREATE TABLE IF NOT EXISTS {table} (k uuid PRIMARY KEY, v int)")
    yield table


@pytest.mark.three_nodes
def test_keyspace_library_replicates_to_datacenter1(driver_session: Session, replicated: str) -> None:
    row = driver_session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'library'"
    ).one()
    assert row.replication["class"].endswith("NetworkTopologyStrategy")
    assert row.replication["datacenter1"] == "3"


@pytest.mark.three_nodes
def test_quorum_write_is_read_back_at_quorum_from_every_node(cassandra_hosts: list[str], replicated: str) -> None:
    key = uuid.uuid4()
    writer, session = _session_on(cassandra_hosts[0])
    with writer:
        session.execute(
            SimpleStatement(f"INSERT INTO {replicated} (k, v) VALUES (%s, 42)", consistency_level=QUORUM), [key]
        )
    for host in cassandra_hosts:
        reader, session = _session_on(host)
        with reader:
            stmt = SimpleStatement(f"SELECT v FROM {replicated} WHERE k = %s", consistency_level=QUORUM)
            assert session.execute(stmt, [key]).one().v == 42, host


@pytest.mark.three_nodes
def test_lightweight_transaction_applies_once(driver_session: Session, replicated: str) -> None:
    key = uuid.uuid4()
    insert = SimpleStatement(
        f"INSERT INTO {replicated} (k, v) VALUES (%s, %s) IF NOT EXISTS",
        consistency_level=QUORUM,
        serial_consistency_level=ConsistencyLevel.SERIAL,
    )
    assert driver_session.execute(insert, [key, 1]).was_applied
    second = driver_session.execute(insert, [key, 2])
    assert not second.was_applied
    assert second.one().v == 1


def _write_and_lwt(session: Session, table: str) -> uuid.UUID:
    key = uuid.uuid4()
    session.execute(SimpleStatement(f"INSERT INTO {table} (k, v) VALUES (%s, 7)", consistency_level=QUORUM), [key])
    lwt = SimpleStatement(
        f"UPDATE {table} SET v = 8 WHERE k = %s IF v = 7",
        consistency_level=QUORUM,
        serial_consistency_level=ConsistencyLevel.SERIAL,
    )
    assert session.execute(lwt, [key]).was_applied
    return key


@pytest.mark.three_nodes
@pytest.mark.faults
def test_quorum_survives_one_node_down_and_refuses_with_two_down(cassandra_hosts: list[str], replicated: str) -> None:
    written: list[uuid.UUID] = []
    client, session = _session_on(cassandra_hosts[0])
    try:
        cluster.stop_node(3)
        written.append(_write_and_lwt(session, replicated))  # 2 of 3 replicas: quorum holds

        cluster.stop_node(2)
        with pytest.raises((Unavailable, NoHostAvailable)) as refused:
            _write_and_lwt(session, replicated)
        if isinstance(refused.value, NoHostAvailable):  # the driver wraps the coordinator's answer
            assert any(isinstance(e, Unavailable) for e in refused.value.errors.values())
    finally:
        client.shutdown()
        cluster.start_node(2)
        cluster.start_node(3)

    # Healed: every node answers and every acknowledged write is there at QUORUM.
    writer, session = _session_on(cassandra_hosts[2])
    with writer:
        written.append(_write_and_lwt(session, replicated))
    for host in cassandra_hosts:
        reader, session = _session_on(host)
        with reader:
            for key in written:
                stmt = SimpleStatement(f"SELECT v FROM {replicated} WHERE k = %s", consistency_level=QUORUM)
                assert session.execute(stmt, [key]).one().v == 8


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cluster", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(bool(os.environ.get("CASSANDRA_HOSTS")), reason="the cluster was not started by cluster/")
def test_cli_up_reuses_the_running_cluster_and_status_shows_it(cassandra_hosts: list[str]) -> None:
    up = _cli("up", "--nodes", str(len(cassandra_hosts)))
    assert up.returncode == 0, up.stderr
    assert "already running; reusing it" in up.stdout
    assert f"CASSANDRA_HOSTS={','.join(cassandra_hosts)}" in up.stdout
    status = _cli("status").stdout.splitlines()
    assert [line.split()[1] for line in status] == cassandra_hosts
    assert all(" UP " in line for line in status)
    other = _cli("up", "--nodes", "1" if len(cassandra_hosts) == 3 else "3")
    assert other.returncode == 1 and "cluster is running; stop it first" in other.stderr
    assert "Traceback" not in other.stderr
