"""The local cluster's growth and shrinking (`python -m cluster up --nodes N`, `add`, `decommission`) without
Cassandra: the tokens, the members a cluster remembers, and what a refusal of nodetool's says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cluster import config, manager


def test_up_to_five_nodes_in_one_datacenter_and_the_token_a_new_node_gets() -> None:
    """`up --nodes N` splits the ring evenly among N nodes; a node added later (`python -m cluster add`) takes the
    middle of the largest range, which wraps round the ring's end."""
    assert [t.size for t in config.SINGLE_DATACENTER] == [1, 2, 3, 4, 5]
    assert config.SINGLE_DATACENTER[2] is config.THREE_NODES and config.SINGLE_DATACENTER[0] is config.ONE_NODE
    four = config.SINGLE_DATACENTER[3]
    assert [four.initial_token(i) for i in range(1, 5)] == [-(2**63), -(2**62), 0, 2**62]
    assert four.datacenter_of(5) == config.DATACENTER  # an added node joins the one datacenter
    three = [config.THREE_NODES.initial_token(i) for i in (1, 2, 3)]
    fourth = config.bisecting_token(three)
    # The range that wraps round the ring's end, from node 3 to node 1, is the widest by one: it is halved.
    assert fourth == 6148914691236517205 and three[2] < fourth
    assert config.bisecting_token([*three, fourth]) not in (*three, fourth)
    # One node: its range is the whole ring, and the middle of it lies across the ring's end.
    assert config.bisecting_token([0]) == -(2**63)
    assert config.bisecting_token([2**63 - 1, -(2**63)]) == -1


def test_the_members_a_cluster_remembers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before `add` or `decommission`, a topology's members are its nodes as created; after, members.json says."""
    monkeypatch.setattr(manager, "HOME", tmp_path)
    three = config.THREE_NODES
    assert [(m.index, m.token, m.bootstrap) for m in manager.members(three)] == [
        (i, three.initial_token(i), False) for i in (1, 2, 3)
    ]
    grown = [*manager.members(three)[1:], manager.Member(4, 5, bootstrap=True)]
    manager._remember(three, grown)
    assert manager.members(three) == grown
    assert [n.address for n in manager._nodes(three)] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    # Node 1 left: the first node there from the start is the seed, never the one that bootstrapped.
    assert {tuple(n.seeds) for n in manager._nodes(three)} == {(2,)}
    (tmp_path / "3-node" / "members.json").write_text("{")
    with pytest.raises(manager.ClusterError, match="members.json cannot be read"):
        manager.members(three)


def test_nodetools_refusal_is_told_in_its_own_words() -> None:
    """`python -m cluster decommission` repeats why Cassandra refused, not nodetool's pointer to its help."""
    refused = subprocess.CompletedProcess(
        [],
        1,
        "nodetool: Unsupported operation: Not enough live nodes to maintain replication factor in keyspace library "
        "(RF = 3, N = 3). Perform a forceful decommission to ignore.\n"
        "See 'nodetool help' or 'nodetool help <command>'.\n",
        "",
    )
    assert manager._nodetool_error(refused).startswith("Unsupported operation: Not enough live nodes")
    assert manager._nodetool_error(subprocess.CompletedProcess([], 2, "", "error: No such node\n")) == "No such node"
    assert manager._nodetool_error(subprocess.CompletedProcess([], 3, "", "")) == "nodetool exited with 3"


def test_a_decommission_cassandra_would_refuse_is_refused_before_the_node_restarts() -> None:
    """nodetool describecluster's keyspaces (Cassandra 5.0's words), read before the node is restarted to leave."""
    described = (
        "Keyspaces:\n"
        "\tsystem_traces -> Replication class: SimpleStrategy {replication_factor=2}\n"
        "\tsystem_distributed -> Replication class: SimpleStrategy {replication_factor=3}\n"
        "\tlibrary -> Replication class: NetworkTopologyStrategy {datacenter1=3}\n"
        "\ttest_api_quorum -> Replication class: NetworkTopologyStrategy {datacenter1=7}\n"
        "\tsystem -> Replication class: LocalStrategy {}\n"
    )
    assert manager.keyspaces_beyond(described, 3) == ["keyspace test_api_quorum asks for 7 replicas"]
    assert manager.keyspaces_beyond(described, 2) == [
        "keyspace system_distributed asks for 3 replicas",
        "keyspace library asks for 3 replicas",
        "keyspace test_api_quorum asks for 7 replicas",
    ]
    assert manager.keyspaces_beyond("", 1) == []
