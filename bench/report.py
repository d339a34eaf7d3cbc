"""python -m bench.report FILE.json [FILE.json ...] [--out docs/]: docs/performance.md and its charts.

Several files may be given (e.g. a Paxos v1 run and a v2 run): each topology of each file becomes one
section, named by its node count and Paxos variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.table import heading, markdown
from seeder.common import CliError, run_cli

# The rows drawn on the charts: the reservation at each depth, and the reads through HTTP.
CHART_ROWS = (
    ("reserve", "lwt baseline"),
    ("reserve", "reserve (repository)"),
    ("reserve", "reserve (http)"),
    ("hot", "reserve (http)"),
    ("catalogue", "GET /api/books (http)"),
    ("reader", "GET /api/reservations (http)"),
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.report",
        description="Write performance.md (tables, machine, date, how to reproduce) and PNG charts of throughput "
        "and latency against concurrency from the --json output of `python -m bench`.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.json", help="output of python -m bench --json")
    p.add_argument("--out", type=Path, default=Path("docs"), help="folder for performance.md and the PNGs (docs/)")
    return p


def load(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text())
    except OSError as error:
        raise CliError(f"{path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(report, dict) or report.get("schema") != 1 or not isinstance(report.get("topologies"), list):
        raise CliError(f"{path}: not the --json output of python -m bench")
    return report


def label(topology: dict[str, Any]) -> str:
    return f"{topology['nodes']} node{'s' if topology['nodes'] != 1 else ''}, paxos {topology['paxos_variant']}"


def slug(topology: dict[str, Any]) -> str:
    # Set by `main` when two files hold the same topology, so that their charts do not overwrite each other.
    return topology.get("_slug") or f"{topology['nodes']}node-paxos-{topology['paxos_variant']}"


def name_uniquely(topologies: list[dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for topology in topologies:
        base = slug(topology)
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            topology["_slug"] = f"{base}-run{seen[base]}"


def series(topology: dict[str, Any], group: str, name: str, key: str) -> tuple[list[int], list[float]]:
    points = sorted((r["concurrency"], r[key]) for r in topology["results"] if (r["group"], r["name"]) == (group, name))
    return [c for c, _ in points], [v for _, v in points]


def charts(topologies: list[dict[str, Any]], out: Path) -> list[str]:
    """One throughput and one latency chart per topology; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on CI or a server
    import matplotlib.pyplot as plt

    names = []
    for topology in topologies:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for group, name in CHART_ROWS:
            x, y = series(topology, group, name, "throughput")
            if x:
                ax.plot(x, y, marker="o", label=f"{group}: {name}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (requests in flight)")
        ax.set_ylabel("ops/s")
        ax.set_title(f"Throughput, {label(topology)}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        file = f"throughput-{slug(topology)}.png"
        fig.tight_layout()
        fig.savefig(out / file, dpi=110)
        plt.close(fig)
        names.append(file)

        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, (group, name) in enumerate(CHART_ROWS[:3]):
            color = f"C{i}"
            for key, style in (("p50_ms", "--"), ("p99_ms", "-")):
                x, y = series(topology, group, name, key)
                if x:
                    ax.plot(x, y, style, color=color, marker="o", label=f"{name} {key[:3]}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency (requests in flight)")
        ax.set_ylabel("latency, ms (log)")
        ax.set_title(f"Reserve latency p50 (dashed) and p99, {label(topology)}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        file = f"latency-{slug(topology)}.png"
        fig.tight_layout()
        fig.savefig(out / file, dpi=110)
        plt.close(fig)
        names.append(file)
    return names


def headline(topology: dict[str, Any]) -> str:
    """HTTP reserve throughput over the bare LWT at each concurrency: the issue's figure of merit."""
    parts = []
    for c, ratio in zip(*series(topology, "reserve", "reserve (http)", "ratio"), strict=True):
        parts.append(f"{ratio:.2f} at {c}")
    return ", ".join(parts) or "-"


def paxos_comparison(topologies: list[dict[str, Any]]) -> list[str]:
    """v2 against v1 on the same node count, row by row, where the documents hold both."""
    by_key = {(t["nodes"], t["paxos_variant"]): t for t in topologies}
    lines: list[str] = []
    for nodes in sorted({t["nodes"] for t in topologies}):
        v1, v2 = by_key.get((nodes, "v1")), by_key.get((nodes, "v2"))
        if v1 is None or v2 is None:
            continue
        if not lines:
            lines += [
                "## Paxos v1 and v2",
                "",
                "Throughput (ops/s) and p99 (ms) of the same rows in two runs, one per variant (where a file "
                "list holds one topology twice, the later run); v2/v1 > 1: v2 is faster. Each run's own ratios "
                "to its baseline are in its section below.",
                "",
                "| nodes | group | row | c | v1 ops/s | v2 ops/s | v2/v1 | v1 p99 | v2 p99 | v2 outcomes |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
        old = {(r["group"], r["name"], r["concurrency"]): r for r in v1["results"]}
        for r in v2["results"]:
            o = old.get((r["group"], r["name"], r["concurrency"]))
            if o is None or r["group"] not in ("reserve", "hot"):
                continue
            speedup = r["throughput"] / o["throughput"] if o["throughput"] else 0.0
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
            lines.append(
                f"| {nodes} | {r['group']} | {r['name']} | {r['concurrency']} | {o['throughput']:.1f} | "
                f"{r['throughput']:.1f} | {speedup:.2f} | {o['p99_ms']:.1f} | {r['p99_ms']:.1f} | {outcomes} |"
            )
    return [*lines, ""] if lines else []


def document(reports: list[tuple[Path, dict[str, Any]]], chart_files: list[str]) -> str:
    first = reports[0][1]
    machine = first["machine"]
    topologies = [t for _, r in reports for t in r["topologies"]]
    lines = [
        "# Performance",
        "",
        "Generated by `python -m bench.report` from "
        + ", ".join(f"`{p}`" for p, _ in reports)
        + ". Every ratio compares a row with the baseline of its group measured in the same run, on the same "
        "cluster, at the same concurrency: the bare `INSERT ... IF NOT EXISTS` through the driver for the "
        "reservations, a bare prepared `SELECT` page for the reads. Absolute figures belong to this machine; the "
        "ratios are the service's own overhead.",
        "",
        "## HTTP reserve throughput / bare LWT baseline",
        "",
        "| topology | ratio at each concurrency |",
        "|---|---|",
    ]
    lines += [f"| {label(t)} | {headline(t)} |" for t in topologies]
    lines += ["", *paxos_comparison(topologies)]
    lines += [
        "",
        "## Machine",
        "",
        f"- {machine['cores']} cores ({machine['cpu'] or 'cpu unknown'}), {machine['memory_gib']} GiB; "
        f"{machine['platform']}",
        f"- Python {machine['python']}, cassandra-driver {machine['cassandra_driver']}, "
        f"{machine['heap_per_node']} heap per Cassandra node",
        "- Cassandra, the app and the bench's client all share these cores: the figures are those of a whole "
        "system on one machine, not of Cassandra alone. On it the same row measured in two runs differs by up to "
        "a third (compaction, GC, a freshly started JVM): compare ratios within a run, and repeat a run before "
        "trusting a difference between runs.",
        "",
        "## Runs",
        "",
    ]
    for path, report in reports:
        lines.append(
            f"- `{path.name}`: {report['started_at']} to {report['finished_at']} (UTC), `{report['command']}`; "
            f"{report['options']['ops']} timed operations per row after {report['options']['warmup']} untimed"
        )
    lines += [
        "",
        "## How to reproduce",
        "",
        "```sh",
        "python -m bench --nodes both --concurrency 1,8,32 --ops 500 --breakdown --json artifacts/bench/v1.json",
        "python -m cluster down && CLUSTER_PAXOS=v2 python -m cluster up --nodes 3",
        "python -m bench --nodes 3 --breakdown --json artifacts/bench/v2.json",
        "python -m cluster down && python -m cluster up --nodes 3   # back to the default, Paxos v1",
        "python -m bench.report artifacts/bench/v1.json artifacts/bench/v2.json --out docs",
        "```",
        "",
        "Rows: `reserve` (distinct books), `hot` (every call races for one book: one `ok`, the rest `conflict`), "
        "`catalogue` (a page of 20 books), `reader` (a reader's reservations), `breakdown` (reserve taken apart; "
        "its baseline is the same bare transaction through the smallest asyncio bridge). c is the concurrency.",
        "",
    ]
    for path, report in reports:
        for topology in report["topologies"]:
            lines += section(topology, path, chart_files)
    return "\n".join(lines)


def section(topology: dict[str, Any], path: Path, chart_files: list[str]) -> list[str]:
    lines = [f"## {heading(topology)} (`{path.name}`)", ""]
    lines += [f"![{file}]({file})" for file in chart_files if file.endswith(f"-{slug(topology)}.png")]
    lines += ["", markdown(topology), ""]
    profile = topology.get("profile")
    if profile and "app_inclusive" in profile:
        lines += [
            f"Profile of the app under HTTP load (pyinstrument, event-loop thread): {profile['busy_s']} s busy "
            f"of {profile['sampled_s']} s sampled, {profile['cpu_s']} s CPU. The service's own functions by "
            "busy time:",
            "",
            "| function | s | share of busy |",
            "|---|---|---|",
        ]
        lines += [
            f"| `{item['frame']}` | {item['seconds']} | {item['share_of_busy']:.1%} |"
            for item in profile["app_inclusive"][:12]
        ]
        lines.append("")
    return lines


async def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    reports = [(path, load(path)) for path in args.files]
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"--out {args.out}: cannot create it ({error.strerror})") from None
    topologies = [t for _, r in reports for t in r["topologies"]]
    name_uniquely(topologies)
    chart_files = charts(topologies, args.out)
    target = args.out / "performance.md"
    target.write_text(document(reports, chart_files))
    print(f"wrote {target} and {len(chart_files)} charts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
