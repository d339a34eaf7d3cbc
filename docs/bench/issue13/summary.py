"""The issue-13 comparison: median and spread over run1-3.json, each `python -m bench --nodes 1 --before ee5d472`
(the code before the restructuring, measured in the same run as the code after it)."""

import json
import statistics
from pathlib import Path

RUNS = [json.loads(path.read_text()) for path in sorted(Path(__file__).parent.glob("run*.json"))]
ROWS = [{(r["group"], r["name"], r["concurrency"]): r for r in run["topologies"][0]["results"]} for run in RUNS]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


print(f"{len(RUNS)} runs; after/before of the same run, median [min-max]")
for op in ("reserve", "cancel", "move"):
    for c in (1, 8, 32):
        pairs = [
            (rows[("revisions", f"after: {op} (http)", c)], rows[("revisions", f"before: {op} (http)", c)])
            for rows in ROWS
        ]
        p50 = [a["p50_ms"] / b["p50_ms"] for a, b in pairs]
        throughput = [a["throughput"] / b["throughput"] for a, b in pairs]
        print(f"  {op:8} c={c:<3} p50 {spread(p50)}   ops/s {spread(throughput)}")
