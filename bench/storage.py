"""What a table takes on disk, for the bench's search figures: memtables flushed with nodetool (run from the jars the
local cluster runs on, over the node's local JMX port), compactions waited for, then the files of the table counted
under the local cluster's data folder, the Storage-Attached Index components of each index apart.

All of it needs the local cluster (`python -m cluster`, $CLUSTER_HOME); against another cluster the helpers say so
(None, or False) and the bench goes on without the figures.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NODETOOL_TIMEOUT = 300
COMPACTION_WAIT = 600  # seconds to wait for the compactions a flush starts
_PENDING = re.compile(r"pending tasks:\s*(\d+)", re.I)


def nodetool(args: list[str], node: int = 1, timeout: float = NODETOOL_TIMEOUT) -> str | None:
    """`nodetool ARGS` against node `node` of the local cluster (the cluster tool's own runner, `cluster.manager`);
    its output, or None when it cannot be run here (no jars, no java, the node's JMX port not answering)."""
    from cluster.manager import LIB_DIR, ClusterError
    from cluster.manager import nodetool as run

    if not any(LIB_DIR.glob("cassandra-all-*.jar")):
        return None
    try:
        result = run(node, args, timeout)
    except (ClusterError, OSError):  # no java, or it did not finish in time
        return None
    return result.stdout if result.returncode == 0 else None


def flush(keyspace: str, nodes: int) -> bool:
    """Writes every memtable of `keyspace` to SSTables on each node, then waits until no compaction is pending, so
    that what is measured next reads SSTables and their on-disk indexes. False if nodetool could not be run."""
    for node in range(1, nodes + 1):
        if nodetool(["flush", keyspace], node) is None:
            return False
    deadline = time.monotonic() + COMPACTION_WAIT
    for node in range(1, nodes + 1):
        while time.monotonic() < deadline:
            out = nodetool(["compactionstats"], node)
            if out is None or pending_compactions(out) == 0:
                break
            time.sleep(2)
    return True


def pending_compactions(compactionstats: str) -> int:
    """The pending tasks `nodetool compactionstats` reports (0 if it names none)."""
    match = _PENDING.search(compactionstats)
    return int(match.group(1)) if match else 0


def component(file_name: str) -> str:
    """What an SSTable file belongs to: `table` for the table's own components (data, primary index, filters,
    statistics), `sai:<index>` for one Storage-Attached Index's files, `sai (per sstable)` for the SAI files all of a
    table's indexes share (row ids to primary keys)."""
    if "-SAI+" not in file_name and "-SAI_" not in file_name:
        return "table"
    parts = file_name.split("+")
    return f"sai:{parts[2]}" if len(parts) >= 4 else "sai (per sstable)"


def sizes(files: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Bytes per component (`component`) of the (file name, size) pairs of one table's folder."""
    totals: dict[str, int] = {}
    for name, size in files:
        key = component(name)
        totals[key] = totals.get(key, 0) + size
    return dict(sorted(totals.items()))


def table_on_disk(keyspace: str, table: str, nodes: int) -> dict[str, Any] | None:
    """Bytes on disk of `keyspace.table` on node 1 of the local cluster of `nodes` nodes, by component, with the
    number of SSTables; None if its folder is not on this machine."""
    from cluster.manager import HOME

    folders = sorted((HOME / f"{nodes}-node" / "node1" / "data" / keyspace).glob(f"{table}-*"))
    if not folders:
        return None
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file() and "snapshots" not in p.parts]
    live = [p for p in files if "backups" not in p.parts]
    by_component = sizes((p.name, p.stat().st_size) for p in live)
    return {
        "node": 1,
        "sstables": sum(1 for p in live if p.name.endswith("-Data.db")),
        "bytes": by_component,
        "total_bytes": sum(by_component.values()),
        "folder": str(Path(folders[0]).relative_to(HOME)),
    }
