"""Grow the 3-node cluster to four nodes and shrink it back, with stress test 2 running through the app all along.

Three replicas on four nodes: not every node holds every book any more. A fourth node bootstraps (`cluster.add`: it
streams its ranges from the others), the app's driver learns of it by itself (no restart) and sends it requests, then
the node is decommissioned (`cluster.decommission`: it streams its data back) and the driver forgets it. Stress
test 2 runs back to back meanwhile, each run checked on its own: no violation, nothing acknowledged lost, the audit
clean. The test prints how long the bootstrap and the decommission took and what the clients saw during each (errors,
p99), and leaves the cluster as it found it, three nodes, even when it fails.

Runs only on the local 3-node cluster as created (`python -m cluster up --nodes 3`); skipped on any other.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

import cluster
from app.repository import Library
from cluster import config
from stress.run import Options, Report, execute

pytestmark = [pytest.mark.three_nodes, pytest.mark.grow_shrink]

NEW_NODE = "127.0.0.4"
RUN_SIZE = 300  # requests in each stress run: a few seconds each, so that several fall within a bootstrap
WORKERS = 6
SETTLE_SECONDS = 4  # stress traffic on four nodes between the join and the decommission
DRIVER_WAIT_SECONDS = 60


@dataclass
class Run:
    started: float
    ended: float
    report: Report


@pytest.fixture
def three_nodes_as_created(cassandra_hosts: list[str]) -> list[cluster.Member]:
    """The running cluster is the local 3-node one, with its three nodes and no other."""
    running = cluster.running_topology()
    if running != config.THREE_NODES:
        pytest.skip("needs the local 3-node cluster (python -m cluster up --nodes 3)")
    nodes = cluster.members(running)
    if [m.index for m in nodes] != [1, 2, 3] or len(cassandra_hosts) != 3:
        pytest.skip("needs the local 3-node cluster with its three nodes as created (it has been grown or shrunk)")
    return nodes


def _driver_hosts(library: Library) -> dict[str, bool]:
    """The app's driver's view of the cluster: each node's address and whether the driver has it UP."""
    return {str(h.address): bool(h.is_up) for h in library.db.cluster.metadata.all_hosts()}


def _pooled(library: Library, address: str) -> bool:
    """Whether the app's driver has open connections to the node: its requests can go there."""
    for host, state in library.db.session.get_pool_state().items():
        if str(host.address) == address and state.get("open_count", 0) > 0:
            return True
    return False


def _coordinators(library: Library, requests: int = 40) -> set[str]:
    """The nodes that answered `requests` queries sent through the app's driver (no partition key: its load
    balancing takes the nodes in turn)."""
    return {
        str(library.db.session.execute("SELECT rpc_address FROM system.local").one().rpc_address)
        for _ in range(requests)
    }


async def _until(condition: Any, what: str, within: float = DRIVER_WAIT_SECONDS) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, f"{what} not within {within:.0f}s"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def _overlapping(runs: list[Run], start: float, end: float) -> list[Run]:
    return [r for r in runs if r.started < end and r.ended > start]


def _summary(runs: list[Run]) -> dict[str, Any]:
    errors: dict[str, int] = {}
    for r in runs:
        for kind, count in r.report.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "runs": len(runs),
        "requests": sum(r.report.requests for r in runs),
        "errors": errors,
        "worst_p99_ms": max((r.report.latency_ms.get("p99", 0.0) for r in runs), default=0.0),
        "worst_max_ms": max((r.report.latency_ms.get("max", 0.0) for r in runs), default=0.0),
    }


async def test_a_fourth_node_joins_and_leaves_under_stress(
    library: Library, web_url: str, three_nodes_as_created: list[cluster.Member]
) -> None:
    loop = asyncio.get_running_loop()
    phases: dict[str, tuple[float, float]] = {}
    changes: dict[str, cluster.Change] = {}
    seen: dict[str, float] = {}

    async def grow_and_shrink() -> None:
        await asyncio.sleep(2)  # the first run is under way
        began = loop.time()
        changes["add"] = await asyncio.to_thread(cluster.add, progress=lambda m: print(f"[cluster] {m}"))
        phases["bootstrap"] = (began, loop.time())
        # The driver hears of the new node from the cluster's events; the app is not restarted.
        seen["driver_has_it_up_s"] = await _until(
            lambda: _driver_hosts(library).get(NEW_NODE) is True, "the app's driver seeing node 4 UP"
        )
        seen["driver_pools_it_s"] = await _until(
            lambda: _pooled(library, NEW_NODE), "the app's driver connecting to node 4"
        )
        coordinators = await asyncio.to_thread(_coordinators, library)
        assert NEW_NODE in coordinators, f"the app's requests never reached node 4: {coordinators}"
        await asyncio.sleep(SETTLE_SECONDS)
        began = loop.time()
        changes["decommission"] = await asyncio.to_thread(
            cluster.decommission, 4, progress=lambda m: print(f"[cluster] {m}")
        )
        phases["decommission"] = (began, loop.time())
        seen["driver_forgets_it_s"] = await _until(
            lambda: NEW_NODE not in _driver_hosts(library), "the app's driver forgetting node 4"
        )

    change = asyncio.create_task(grow_and_shrink())
    runs: list[Run] = []
    try:
        # Stress test 2 back to back while the cluster grows and shrinks, and one more run on three nodes after.
        while not change.done() or len(runs) < 2 or runs[-1].started < phases.get("decommission", (0, 0))[1]:
            options = Options(test=2, size=RUN_SIZE, workers=WORKERS, url=web_url, seed=len(runs) + 1, time_limit=240)
            began = loop.time()
            report = await execute(options, library)
            runs.append(Run(began, loop.time(), report))
            assert report.violations == [], report.violations
            assert report.audit["clean"], report.audit
            if change.done() and change.exception() is not None:
                break
        await change
    finally:
        # A thread running add or decommission cannot be cancelled: let it finish before putting things back.
        await asyncio.gather(change, return_exceptions=True)
        await asyncio.to_thread(_back_to_three_nodes)

    bootstrap = _summary(_overlapping(runs, *phases["bootstrap"]))
    decommission = _summary(_overlapping(runs, *phases["decommission"]))
    steady = _summary(
        [r for r in runs if r not in _overlapping(runs, phases["bootstrap"][0], phases["decommission"][1])]
    )
    print(
        f"\nbootstrap of node 4: {changes['add'].seconds:.1f}s (token {changes['add'].token}); clients meanwhile: "
        f"{bootstrap}\ndecommission of node 4: {changes['decommission'].seconds:.1f}s; clients meanwhile: "
        f"{decommission}\nthe app's driver, seconds after each change returned: "
        f"{ {k: round(v, 2) for k, v in seen.items()} }\nruns before and after, on three nodes: {steady}"
    )
    assert bootstrap["runs"] >= 1 and decommission["runs"] >= 1, "no stress run overlapped a change: make runs longer"
    assert sum(r.report.successes for r in runs) > 0


def _back_to_three_nodes() -> None:
    """Whatever happened: node 4 decommissioned if it is still a member, so that the next test finds three nodes."""
    topology = cluster.running_topology()
    if topology is None:
        return
    if any(m.index == 4 for m in cluster.members(topology)):
        cluster.decommission(4)
