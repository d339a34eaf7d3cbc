"""The figures as a plain-text table (the bench's output) and as Markdown rows (the report's)."""

from __future__ import annotations

import statistics
from typing import Any

COLUMNS = ("group", "row", "c", "ops/s", "p50 ms", "p99 ms", "ratio", "outcomes")


def _outcomes(result: dict[str, Any]) -> str:
    parts = [f"{k} {v}" for k, v in sorted(result["outcomes"].items())]
    if result.get("errors"):
        parts.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(result["errors"].items())))
    return "; ".join(parts)


def rows(topology: dict[str, Any]) -> list[tuple[str, ...]]:
    ordered = sorted(topology["results"], key=lambda r: (_GROUP_ORDER.get(r["group"], 9), r["concurrency"]))
    return [
        (
            r["group"],
            r["name"],
            str(r["concurrency"]),
            f"{r['throughput']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            "baseline" if r["baseline"] else (f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"),
            _outcomes(r),
        )
        for r in ordered
    ]


_GROUP_ORDER = {"reserve": 0, "hot": 1, "catalogue": 2, "reader": 3, "breakdown": 4, "revisions": 5, "search": 6}


def heading(topology: dict[str, Any]) -> str:
    return (
        f"{topology['nodes']} node(s), Cassandra {topology['cassandra_version']}, paxos {topology['paxos_variant']}, "
        f"replication {topology['replication']}"
    )


def render(report: dict[str, Any]) -> str:
    out: list[str] = []
    for topology in report["topologies"]:
        table = [COLUMNS, *rows(topology)]
        widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
        out.append(heading(topology))
        for n, line in enumerate(table):
            # Names and outcomes read left to right; numbers line up on the right.
            pairs = enumerate(zip(line, widths, strict=True))
            cells = [cell.ljust(w) if i in (0, 1, 7) else cell.rjust(w) for i, (cell, w) in pairs]
            out.append("  ".join(cells).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        out.append("")
        if topology.get("before_after"):
            from bench.revision import render as render_before_after

            out += [render_before_after(topology["before_after"]), ""]
        if topology.get("tombstones"):
            from bench.tombstones import render as render_tombstones

            out += [render_tombstones(topology["tombstones"]), ""]
        if topology.get("search"):
            from bench.search import render as render_search

            out += [render_search(topology["search"]), ""]
        if topology.get("index_cost"):
            from bench.index_cost import render as render_index_cost

            out += [render_index_cost(topology["index_cost"]), ""]
    out.append(
        "ratio: throughput / the group's baseline at the same concurrency, in this run (the driver's bare statement; "
        "for search, Library.get_book)"
    )
    return "\n".join(out)


def markdown(topology: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows(topology)]
    return "\n".join(lines)


def median_spread(values: list[float]) -> dict[str, float]:
    """The figure `spread` prints: the median of the runs, the lowest and the highest."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def spread(figure: dict[str, float], digits: int) -> str:
    """A median with its spread over the runs, as every comparison here prints it: `median [lowest-highest]`."""
    return f"{figure['median']:.{digits}f} [{figure['min']:.{digits}f}-{figure['max']:.{digits}f}]"
