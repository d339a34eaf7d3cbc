"""python -m cluster: run Apache Cassandra locally, one to five nodes or two datacenters; grow and shrink it."""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig

import cluster
from cluster import config
from toolkit.arguments import ArgumentParser, number


def _print(message: str) -> None:
    print(message, flush=True)


def _cqlsh(node: int, extra: list[str]) -> int:
    statuses = {s.index: s for s in cluster.status()}
    if node not in statuses or not statuses[node].up:
        raise cluster.ClusterError(f"node {node} is not running; `python -m cluster status` shows the nodes")
    # The cqlsh installed with this interpreter's packages (.venv/bin/cqlsh), not whichever one PATH finds first.
    exe = os.path.join(sysconfig.get_path("scripts"), "cqlsh")
    if not os.access(exe, os.X_OK):
        raise cluster.ClusterError(f"cqlsh not found at {exe}: run `make setup`")
    os.execv(exe, [exe, config.node_address(node), str(config.NATIVE_PORT), *extra])
    return 0  # not reached


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m cluster",
        description="Run Apache Cassandra 5.0 on this machine: one node on 127.0.0.1, up to five on "
        "127.0.0.1-127.0.0.5, or two datacenters of two nodes each (dc1 on 127.0.0.1-2, dc2 on 127.0.0.3-4); "
        "add a node to the running cluster or decommission one. Data and logs live under .cassandra/ "
        "(or $CLUSTER_HOME).",
        epilog="Exit status: 0 done, 2 a mistake in the command line, 1 the cluster could not do it (the message "
        "says why), 130 interrupted.",
    )
    node = number(int, 1, config.MAX_NODES)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start the cluster (or reuse the running one) and wait until it is ready",
        description="Start the cluster, or reuse the one already running, and wait until every node is UP.",
    )
    up.add_argument(
        "--nodes",
        type=int,
        choices=range(1, config.MAX_NODES + 1),
        metavar="{1-5}",
        help="how many nodes, in one datacenter, with balanced tokens (default 1; a cluster grown or shrunk by add "
        "or decommission comes back with the nodes it has now)",
    )
    up.add_argument(
        "--dcs",
        type=int,
        choices=(1, 2),
        default=1,
        help="datacenters: 2 starts dc1 (nodes 1-2) and dc2 (nodes 3-4), each node's datacenter read by its snitch",
    )
    up.add_argument("--timeout", type=number(float, 1), default=300, help="seconds to wait for the nodes (default 300)")
    down = commands.add_parser("down", help="stop every node", description="Stop every node.")
    down.add_argument("--wipe", action="store_true", help="also delete all data (the jars stay cached)")
    commands.add_parser(
        "status",
        help="show each node: address, pid, UP/DOWN, log path",
        description="Show each node: address, pid, UP/DOWN, log path.",
    )
    stop = commands.add_parser(
        "stop", help="stop one node (for fault tests)", description="Stop one node (for fault tests)."
    )
    stop.add_argument("node", type=node, help=f"node number, 1-{config.MAX_NODES}")
    stop.add_argument("--kill", action="store_true", help="SIGKILL instead of a clean shutdown (a crash)")
    start = commands.add_parser(
        "start",
        help="start one stopped node and wait until it is UP",
        description="Start one stopped node and wait until it is UP.",
    )
    start.add_argument("node", type=node, help=f"node number, 1-{config.MAX_NODES}")
    add = commands.add_parser(
        "add",
        help="bootstrap a new node into the running cluster and wait until it is NORMAL",
        description="Start a new node (the lowest free number unless --node says) with auto_bootstrap: it streams "
        "its ranges from the others. "
        "Waits until it serves CQL and every node has it NORMAL, then prints how long it took. One datacenter only.",
    )
    add.add_argument(
        "--node",
        type=node,
        help="the new node's number (default: the lowest free one); a node decommissioned earlier comes back this "
        "way, as a new node with nothing of its old data",
    )
    add.add_argument(
        "--token",
        type=number(int, config.MURMUR3_MIN_TOKEN, 2**63 - 1),
        help="the new node's token (default: the middle of the largest range, as ccm picks it)",
    )
    add.add_argument(
        "--timeout", type=number(float, 1), default=600, help="seconds to wait for the bootstrap (default 600)"
    )
    decommission = commands.add_parser(
        "decommission",
        help="decommission one node: it streams its data to the others and leaves; then it is stopped and wiped",
        description="Run Cassandra's decommission on one node (nodetool, through its JMX port), which hands its "
        "ranges to the nodes that take them over; then stop the node, delete its data and forget it. Cassandra "
        "refuses when fewer nodes would be left than a keyspace's replicas. Prints how long it took.",
    )
    decommission.add_argument("node", type=node, help=f"node number, 1-{config.MAX_NODES}")
    decommission.add_argument(
        "--timeout", type=number(float, 1), default=900, help="seconds to wait for the decommission (default 900)"
    )
    cqlsh = commands.add_parser("cqlsh", help="open cqlsh against a node", description="Open cqlsh against a node.")
    cqlsh.add_argument("node", type=node, nargs="?", default=1, help="node number (default 1)")
    cqlsh.add_argument("cqlsh_args", nargs=argparse.REMAINDER, help="passed on to cqlsh, e.g. -e 'DESCRIBE KEYSPACES'")
    return p


def main(argv: list[str] | None = None) -> int:
    """0 done; 2 (from argparse) a mistake in the command line; 1 a ClusterError: the cluster could not do it."""
    p = parser()
    args = p.parse_args(argv)

    try:
        if args.command == "up":
            if args.dcs == 2 and args.nodes is not None:
                p.error("--dcs 2 runs two nodes in each datacenter: leave out --nodes")
            points = cluster.start(nodes=args.nodes or 1, datacenters=args.dcs, timeout=args.timeout, progress=_print)
            datacenters = cluster.running_datacenters()
            if len(datacenters) > 1:
                for dc, hosts in datacenters.items():
                    _print(f"{dc}: CASSANDRA_HOSTS={','.join(hosts)} CASSANDRA_LOCAL_DC={dc}")
            _print(f"ready: CASSANDRA_HOSTS={','.join(points)}")
        elif args.command == "down":
            cluster.stop(wipe=args.wipe, progress=_print)
            _print("all nodes stopped")
        elif args.command == "status":
            rows = cluster.status()
            if not rows:
                _print("no cluster has been started here; run `python -m cluster up`")
            for s in rows:
                _print(
                    f"node{s.index}  {s.address:<10} {s.datacenter:<11} pid {str(s.pid or '-'):<8} "
                    f"{'UP' if s.up else 'DOWN':<5} {s.log}"
                )
        elif args.command == "stop":
            cluster.stop_node(args.node, kill=args.kill)
            _print(f"node {args.node} stopped")
        elif args.command == "start":
            cluster.start_node(args.node, progress=_print)
        elif args.command == "add":
            change = cluster.add(token=args.token, timeout=args.timeout, progress=_print, node=args.node)
            _print(f"node {change.node} added (token {change.token}) in {change.seconds:.1f}s")
        elif args.command == "decommission":
            change = cluster.decommission(args.node, timeout=args.timeout, progress=_print)
            _print(f"node {change.node} decommissioned in {change.seconds:.1f}s")
        elif args.command == "cqlsh":
            return _cqlsh(args.node, args.cqlsh_args)
    except cluster.ClusterError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "cluster: interrupted; nodes already started keep running (`python -m cluster down` stops them)",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
