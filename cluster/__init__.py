"""A real Apache Cassandra on this machine, started by the project itself.

`python -m cluster up --nodes 3` from a shell, or from Python (tests, the app):

    import cluster
    cluster.start(nodes=3)          # returns when every node serves CQL and sees the others UP
    cluster.stop_node(2); cluster.start_node(2)
    cluster.contact_points()        # ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    cluster.add()                   # node 4 bootstraps into the running cluster: Change(node=4, token=..., seconds=...)
    cluster.decommission(4)         # node 4 streams its data away, leaves the ring, and is stopped and forgotten
"""

from cluster.manager import (
    Change,
    ClusterError,
    Member,
    NodeStatus,
    add,
    contact_points,
    decommission,
    members,
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
    "Change",
    "ClusterError",
    "Member",
    "NodeStatus",
    "add",
    "contact_points",
    "decommission",
    "members",
    "running_datacenters",
    "running_size",
    "running_topology",
    "start",
    "start_node",
    "status",
    "stop",
    "stop_node",
]
