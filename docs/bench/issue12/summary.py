"""The issue-12 comparison: median and spread over run1-3.json, each `python -m bench --nodes 1 --before 6913424
--ops 200` (the code before sign-in, measured in the same run as the code after it, which sends a bearer token on
every request), with this revision's own "token check (repository)" row: the one Cassandra read a token costs."""

import json
from pathlib import Path

RUNS = [json.loads(path.read_text())["topologies"][0] for path in sorted(Path(__file__).parent.glob("run*.json"))]


def spread(values: list[float], digits: int = 2) -> str:
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.{digits}f} [{ordered[0]:.{digits}f}-{ordered[-1]:.{digits}f}]"


print(f"{len(RUNS)} runs; median [min-max]")
for c in (1, 8, 32):
    for name in ("lwt baseline", "reserve (repository)", "token check (repository)", "reserve (http)"):
        rows = [
            next(r for r in run["results"] if (r["group"], r["name"], r["concurrency"]) == ("reserve", name, c))
            for run in RUNS
        ]
        print(
            f"  c={c:<2} {name:<26} ops/s {spread([r['throughput'] for r in rows], 1)}  "
            f"p50 ms {spread([r['p50_ms'] for r in rows])}"
        )
print("after/before of the same run")
for op in ("reserve", "cancel", "move", "reserve+key"):
    for c in (1, 8, 32):
        rows = [
            next(r for r in run["before_after"]["rows"] if (r["operation"], r["concurrency"]) == (op, c))
            for run in RUNS
        ]
        print(
            f"  {op:<11} c={c:<2} throughput {spread([r['throughput_after_over_before'] for r in rows])}  "
            f"p50 {spread([r['p50_after_over_before'] for r in rows])}  "
            f"p50 ms {spread([r['before_p50_ms'] for r in rows])} -> {spread([r['after_p50_ms'] for r in rows])}"
        )
