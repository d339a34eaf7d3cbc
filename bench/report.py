"""python -m bench.report [LABEL=]FILE.json ... [--peer [LABEL=]FILE.json ...] [--out docs/]: docs/performance.md and
its charts.

Each file is one run of `python -m bench`, named by its label (by default the file's name): e.g. `before=`
the code before a change, `after=` the code with it. Every topology of every run becomes one section, and
each later run is compared row by row with the first run on the same node count.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.table import heading, markdown, spread
from toolkit.arguments import ArgumentParser
from toolkit.cli import CliError, run_cli

# The rows drawn on the charts: the reservation at each depth, and the reads through HTTP.
CHART_ROWS = (
    ("reserve", "lwt baseline"),
    ("reserve", "reserve (repository)"),
    ("reserve", "reserve (http)"),
    ("hot", "reserve (http)"),
    ("catalogue", "GET /api/books (http)"),
    ("reader", "GET /api/reservations (http)"),
)
# The rows compared between runs: what the service answers over HTTP, and the baselines they are measured against.
COMPARED_ROWS = (
    ("reserve", "lwt baseline"),
    ("reserve", "reserve (http)"),
    ("hot", "lwt baseline"),
    ("hot", "reserve (http)"),
    ("catalogue", "GET /api/books (http)"),
    ("reader", "GET /api/reservations (http)"),
)


@dataclass(frozen=True)
class Run:
    label: str
    path: Path
    report: dict[str, Any]


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m bench.report",
        description="Write performance.md (tables, machine, date, how to reproduce) and PNG charts of throughput "
        "and latency against concurrency from the --json output of `python -m bench`. Each later run is "
        "compared with the first.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="[LABEL=]FILE.json",
        help="output of python -m bench --json, optionally named (before=old.json after=new.json)",
    )
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="[LABEL=]FILE.json",
        help="output of python -m bench peer --json (this service against the naive peer), optionally named; may be "
        "given several times (before=..., after=...): a table per run and one chart of the ratios per test",
    )
    p.add_argument("--out", type=Path, default=Path("docs"), help="folder for performance.md and the PNGs (docs/)")
    p.add_argument(
        "--notes",
        type=Path,
        help="Markdown written by hand (what was changed, what the figures say), put after the headline table",
    )
    return p


# What the issue "Twice as fast as the naive implementation" asks of each stress test: ours / naive at least this.
PEER_TARGETS = {1: 2.0, 2: 2.0, 3: 1.3, 4: 1.3, 5: 2.0}


def load_peer(argument: str) -> Run:
    run = _read(argument)
    if not isinstance(run.report.get("tests"), list) or "workers" not in run.report:
        raise CliError(f"{run.path}: not the --json output of python -m bench peer")
    return run


def peer_section(runs: list[Run], chart_files: list[str]) -> list[str]:
    """Per peer run, each stress test: both apps' throughput, the ratio against the issue's target, the verdicts."""
    lines = [
        "## This service against the naive peer",
        "",
        "`python -m bench peer`: stress_test.py's five tests through the earlier system's endpoints, against this "
        "service and against the naive peer (bench/naive_peer.py, the earlier system's algorithm) on the same cluster, "
        "one after the other, same sizes. Figures are medians of the runs [lowest-highest]; each run's ratio is taken "
        "within that run. Throughput is requests per second (test 4: cycles, test 5: changes).",
        "",
        *(f"![{file}]({file})" for file in chart_files if file.startswith("peer-")),
        "",
    ]
    for run in runs:
        report = run.report
        lines += [
            f"### {run.label} (`{run.path.name}`): size {report['size']}, workers {report['workers']}, "
            f"{report['runs']} run(s) of each, on {', '.join(report.get('hosts') or ['?'])}",
            "",
            "| test | ours | naive | ours / naive | target | ours: violations | naive: violations |",
            "|---|---|---|---|---|---|---|",
        ]
        for test in report["tests"]:
            number, ratio = test["test"], test["ratio"]
            target = PEER_TARGETS.get(number)
            met = "" if target is None else (" (met)" if ratio["median"] >= target else "")
            lines.append(
                f"| {number} {test['title']} | {spread(test['ours']['throughput'], 1)} | "
                f"{spread(test['naive']['throughput'], 1)} | {spread(ratio, 2)}{met} | {target or '-'} | "
                f"{test['ours']['violations']} | {test['naive']['violations']} |"
            )
        lines.append("")
    return lines


def peer_chart(runs: list[Run], out: Path) -> list[str]:
    """Ours / naive per test, one bar per peer run (whiskers: the spread), with the issue's targets."""
    if not runs:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = sorted({t["test"] for run in runs for t in run.report["tests"]})
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, run in enumerate(runs):
        by_test = {t["test"]: t["ratio"] for t in run.report["tests"]}
        xs = [n + (i - (len(runs) - 1) / 2) * width for n in tests if n in by_test]
        medians = [by_test[n]["median"] for n in tests if n in by_test]
        low = [by_test[n]["median"] - by_test[n]["min"] for n in tests if n in by_test]
        high = [by_test[n]["max"] - by_test[n]["median"] for n in tests if n in by_test]
        ax.bar(xs, medians, width, yerr=[low, high], capsize=3, label=run.label, color=f"C{i}")
    for n in tests:
        if n in PEER_TARGETS:
            ax.hlines(PEER_TARGETS[n], n - 0.45, n + 0.45, colors="k", linestyles="--")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    highest = max(t["ratio"]["max"] for run in runs for t in run.report["tests"])
    ax.set_ylim(0, max(2.5, highest * 1.1))  # room above the targets for the legend
    ax.set_xticks(tests, [f"test {n}" for n in tests])
    ax.set_ylabel("throughput, ours / naive")
    ax.set_title("This service against the naive peer (dashed: the target)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", ncol=len(runs))
    fig.tight_layout()
    file = out / "peer-ratios.png"
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return [file.name]


def load(argument: str) -> Run:
    run = _read(argument)
    if run.report.get("schema") != 1 or not isinstance(run.report.get("topologies"), list):
        raise CliError(f"{run.path}: not the --json output of python -m bench")
    return run


def _read(argument: str) -> Run:
    given, _, file = argument.rpartition("=")
    path = Path(file)
    name = given or path.stem
    if not name.replace("-", "").replace("_", "").isalnum():
        raise CliError(f"{argument}: a label is letters, digits, - and _ (it names the chart files)")
    try:
        report = json.loads(path.read_text())
    except OSError as error:
        raise CliError(f"{path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(report, dict):
        raise CliError(f"{path}: not the --json output of a bench")
    return Run(name, path, report)


def node_count(nodes: int) -> str:
    return f"{nodes} node{'s' if nodes != 1 else ''}"


def cluster_label(topology: dict[str, Any]) -> str:
    return f"{node_count(topology['nodes'])}, paxos {topology['paxos_variant']}"


def label(run: Run, topology: dict[str, Any]) -> str:
    return f"{run.label}: {cluster_label(topology)}"


def slug(run: Run, topology: dict[str, Any]) -> str:
    return f"{run.label}-{topology['nodes']}node"


def series(topology: dict[str, Any], group: str, name: str, key: str) -> tuple[list[int], list[float]]:
    points = sorted((r["concurrency"], r[key]) for r in topology["results"] if (r["group"], r["name"]) == (group, name))
    return [c for c, _ in points], [v for _, v in points]


def charts(runs: list[Run], out: Path) -> list[str]:
    """One throughput and one latency chart per topology of each run; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on CI or a server
    import matplotlib.pyplot as plt

    names = []
    for run in runs:
        for topology in run.report["topologies"]:
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for group, name in CHART_ROWS:
                x, y = series(topology, group, name, "throughput")
                if x:
                    ax.plot(x, y, marker="o", label=f"{group}: {name}")
            ax.set_ylabel("ops/s")
            ax.set_title(f"Throughput, {label(run, topology)}")
            names.append(_save(fig, ax, out / f"throughput-{slug(run, topology)}.png"))

            fig, ax = plt.subplots(figsize=(7, 4.2))
            for i, (group, name) in enumerate(CHART_ROWS[:3]):
                for key, style in (("p50_ms", "--"), ("p99_ms", "-")):
                    x, y = series(topology, group, name, key)
                    if x:
                        ax.plot(x, y, style, color=f"C{i}", marker="o", label=f"{name} {key[:3]}")
            ax.set_yscale("log")
            ax.set_ylabel("latency, ms (log)")
            ax.set_title(f"Reserve latency p50 (dashed) and p99, {label(run, topology)}")
            names.append(_save(fig, ax, out / f"latency-{slug(run, topology)}.png"))
    for nodes in sorted({t["nodes"] for run in runs for t in run.report["topologies"]}):
        measured = [(run, t) for run in runs for t in run.report["topologies"] if t["nodes"] == nodes]
        if len(measured) < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, (run, topology) in enumerate(measured):
            for (group, name), style in ((("reserve", "reserve (http)"), "-"), (("reserve", "lwt baseline"), ":")):
                x, y = series(topology, group, name, "throughput")
                if x:
                    ax.plot(
                        x,
                        y,
                        style,
                        color=f"C{i}",
                        marker="o",
                        label=f"{run.label} (paxos {topology['paxos_variant']}): {name}",
                    )
        ax.set_ylabel("ops/s")
        ax.set_title(f"HTTP reserve (solid) and bare LWT (dotted), {node_count(nodes)}, by run")
        names.append(_save(fig, ax, out / f"runs-{nodes}node.png"))
    return names


def _save(fig: Any, ax: Any, file: Path) -> str:
    """What every chart shares: concurrency on a log axis, a grid, a legend; written to `file`, then closed."""
    import matplotlib.pyplot as plt

    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrency (requests in flight)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return file.name


def headline(runs: list[Run]) -> list[str]:
    """HTTP reserve throughput over the bare LWT at each concurrency: the figure of merit, one line per topology."""
    lines = ["| run | topology | HTTP reserve / bare LWT at each concurrency |", "|---|---|---|"]
    measured = [(run, t) for run in runs for t in run.report["topologies"]]
    for run, topology in sorted(measured, key=lambda m: -m[1]["nodes"]):  # stable: runs keep their order
        ratios = zip(*series(topology, "reserve", "reserve (http)", "ratio"), strict=True)
        figures = ", ".join(f"{ratio:.2f} at {c}" for c, ratio in ratios) or "-"
        lines.append(f"| {run.label} | {cluster_label(topology)} | {figures} |")
    return lines


def comparison(first: Run, later: Run) -> list[str]:
    """The later run against the first, row by row, on each node count both measured."""
    lines = [
        f"## {later.label} against {first.label}",
        "",
        f"Throughput (ops/s), p99 (ms) and the ratio to the same run's baseline; {later.label}/{first.label} > 1: "
        f"{later.label} is faster.",
        "",
        f"| nodes | group | row | c | {first.label} ops/s | {later.label} ops/s | {later.label}/{first.label} "
        f"| {first.label} p99 | {later.label} p99 | {first.label} ratio | {later.label} ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    old_topologies = {t["nodes"]: t for t in first.report["topologies"]}
    for topology in later.report["topologies"]:
        old_topology = old_topologies.get(topology["nodes"])
        if old_topology is None:
            continue
        old = {(r["group"], r["name"], r["concurrency"]): r for r in old_topology["results"]}
        new = {(r["group"], r["name"], r["concurrency"]): r for r in topology["results"]}
        compared = {k for k in new.keys() & old.keys() if k[:2] in COMPARED_ROWS}
        for key in sorted(compared, key=lambda k: (COMPARED_ROWS.index(k[:2]), k[2])):
            o, r = old[key], new[key]
            speedup = r["throughput"] / o["throughput"] if o["throughput"] else 0.0
            lines.append(
                f"| {topology['nodes']} | {r['group']} | {r['name']} | {r['concurrency']} | {o['throughput']:.1f} | "
                f"{r['throughput']:.1f} | {speedup:.2f} | {o['p99_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{_ratio(o)} | {_ratio(r)} |"
            )
    return [*lines, ""]


def _ratio(result: dict[str, Any]) -> str:
    return "baseline" if result["baseline"] else f"{result['ratio']:.2f}"


def document(
    runs: list[Run], chart_files: list[str], notes: str = "", invocation: str = "", peers: list[Run] | None = None
) -> str:
    machine = runs[0].report["machine"]
    lines = [
        "# Performance",
        "",
        "Generated by `python -m bench.report` from "
        + ", ".join(f"`{run.path.name}` ({run.label})" for run in runs)
        + ". Every ratio compares a row with the baseline of its group measured in the same run, on the same "
        "cluster, at the same concurrency: the bare `INSERT ... IF NOT EXISTS` through the driver for the "
        "reservations, a bare prepared `SELECT` page for the reads. Absolute figures belong to this machine; the "
        "ratios are the service's own overhead.",
        "",
        "## HTTP reserve throughput / bare LWT baseline",
        "",
        *headline(runs),
        "",
        *(f"![{file}]({file})" for file in chart_files if file.startswith("runs-")),
        "",
    ]
    if peers:
        lines += peer_section(peers, chart_files)
    if notes:
        lines += [notes.strip(), ""]
    for later in runs[1:]:
        lines += comparison(runs[0], later)
    lines += [
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
    for run in runs:
        report = run.report
        lines.append(
            f"- {run.label}, `{run.path.name}`: {report['started_at']} to {report['finished_at']} (UTC), "
            f"`{report['command']}`; {report['options']['ops']} timed operations per row after "
            f"{report['options']['warmup']} untimed"
        )
    lines += [
        "",
        "## How to reproduce",
        "",
        "Each run's exact command is listed under Runs. Between runs that differ in checkout or Paxos variant "
        "(`CLUSTER_PAXOS=v1`), stop the cluster with `python -m cluster down`: a run reuses a running cluster. "
        "This document came from:",
        "",
        "```sh",
        f"python -m bench.report {invocation}",
        "```",
        "",
        "Rows: `reserve` (distinct books), `hot` (every call races for one book: one `ok`, the rest `conflict`), "
        "`catalogue` (a page of 20 books), `reader` (a reader's reservations), `breakdown` (reserve taken apart; "
        "its baseline is the same bare transaction through the smallest asyncio bridge). c is the concurrency.",
        "",
    ]
    for run in runs:
        for topology in run.report["topologies"]:
            lines += section(run, topology, chart_files)
    return "\n".join(lines)


def section(run: Run, topology: dict[str, Any], chart_files: list[str]) -> list[str]:
    lines = [f"## {run.label}: {heading(topology)} (`{run.path.name}`)", ""]
    lines += [f"![{file}]({file})" for file in chart_files if file.endswith(f"-{slug(run, topology)}.png")]
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
    runs = [load(argument) for argument in args.files]
    peers = [load_peer(argument) for argument in args.peer]
    if len({run.label for run in runs}) < len(runs) or len({run.label for run in peers}) < len(peers):
        raise CliError("two runs have the same label: name them, e.g. before=old.json after=new.json")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"--out {args.out}: cannot create it ({error.strerror})") from None
    try:
        notes = args.notes.read_text() if args.notes else ""
    except OSError as error:
        raise CliError(f"--notes {args.notes}: {error.strerror}") from None
    chart_files = charts(runs, args.out) + peer_chart(peers, args.out)
    target = args.out / "performance.md"
    invocation = shlex.join(sys.argv[1:] if argv is None else argv)
    target.write_text(document(runs, chart_files, notes, invocation, peers))
    print(f"wrote {target} and {len(chart_files)} charts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
