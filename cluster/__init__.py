"""A real Apache Cassandra on this machine, started by the project itself.

`python -m cluster up --nodes 3` from a shell, or from Python (tests, the app):

    import cluster
    cluster.start(nodes=3)          # returns when every node serves CQL and sees the others UP
    cluster.stop_node(2); cluster.start_node(2)
    cluster.contact_points()        # ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
"""

from cluster.manager import (
    ClusterError,
    NodeStatus,
    contact_points,
    running_datacenters,
    running_size,
    running_topology,
    start,
    start_node,
    status,
    stop,
    stop_node,
)

__all__ = [
    "ClusterError",
    "NodeStatus",
    "contact_points",
    "running_datacenters",
    "running_size",
    "running_topology",
    "start",
    "start_node",
    "status",
    "stop",
    "stop_node",
]
