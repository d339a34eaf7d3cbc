"""`python -m bench` and `python -m bench.report` at a tiny size on the session's cluster. Only the shape of
what they print and write is checked: timing belongs in the bench's own figures, never in a test's verdict."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tool_support import PROJECT_DIR, run_tool, tool_env

KEYSPACE = "test_bench"
RESULT_KEYS = {
    "group",
    "name",
    "layer",
    "concurrency",
    "ops",
    "seconds",
    "throughput",
    "p50_ms",
    "p99_ms",
    "mean_ms",
    "outcomes",
    "errors",
    "baseline",
    "ratio",
}


@pytest.fixture(scope="module")
def bench_run(cassandra_hosts: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    figures = out / "bench.json"
    args = ["-m", "bench", "--ops", "50", "--concurrency", "4", "--breakdown", "--json", str(figures)]
    result = run_tool([*args, "--keyspace", KEYSPACE], tool_env(cassandra_hosts, KEYSPACE), timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout, json.loads(figures.read_text()), figures


def test_the_bench_prints_figures_and_ratios(bench_run: tuple[str, dict, Path]) -> None:
    out, _, _ = bench_run
    assert "ops/s" in out and "p50 ms" in out and "p99 ms" in out and "ratio" in out
    for row in ("lwt baseline", "reserve (repository)", "reserve (http)", "GET /api/books (http)"):
        assert row in out
    assert "baseline" in out


def test_the_json_holds_every_figure_and_the_machine(bench_run: tuple[str, dict, Path], node_count: int) -> None:
    _, report, _ = bench_run
    assert {"schema", "started_at", "finished_at", "command", "options", "machine", "topologies"} <= set(report)
    assert {"cores", "memory_bytes", "cpu", "python", "cassandra_driver"} <= set(report["machine"])
    (topology,) = report["topologies"]
    assert topology["nodes"] == node_count
    assert topology["cassandra_version"].startswith("5.")
    assert topology["paxos_variant"] in ("v1", "v2")
    results = topology["results"]
    assert {r["group"] for r in results} == {"reserve", "hot", "catalogue", "reader", "breakdown"}
    for r in results:
        assert set(r) == RESULT_KEYS
        assert r["ops"] == 50 and r["concurrency"] == 4
        assert r["baseline"] or r["ratio"] is not None
    # One book raced for by every call: exactly one reservation wins, at every depth.
    for r in results:
        if r["group"] == "hot":
            assert r["outcomes"].get("ok") == 1, r


def test_the_report_writes_the_document_and_charts(bench_run: tuple[str, dict, Path], tmp_path: Path) -> None:
    _, report, figures = bench_run
    nodes = report["topologies"][0]["nodes"]
    runs = [f"before={figures}", f"after={figures}"]
    notes = tmp_path / "notes.md"
    notes.write_text("What was changed, by hand.\n")
    args = ["-m", "bench.report", *runs, "--notes", str(notes), "--out", str(tmp_path)]
    result = run_tool(args, tool_env([], KEYSPACE), timeout=120)
    assert result.returncode == 0, result.stderr
    document = (tmp_path / "performance.md").read_text()
    assert "HTTP reserve throughput / bare LWT baseline" in document
    assert "## after against before" in document and f"| {nodes} | reserve | reserve (http) | 4 |" in document
    assert "How to reproduce" in document and "## Machine" in document
    assert "What was changed, by hand." in document
    charts = sorted(p.name for p in tmp_path.glob("*.png"))
    per_run = [f"{kind}-{run}-{nodes}node.png" for kind in ("latency", "throughput") for run in ("after", "before")]
    assert charts == sorted([*per_run, f"runs-{nodes}node.png"])
    assert f"![runs-{nodes}node.png](runs-{nodes}node.png)" in document
    assert all((tmp_path / c).read_bytes().startswith(b"\x89PNG") for c in charts)


def test_the_report_refuses_two_runs_of_one_label(bench_run: tuple[str, dict, Path], tmp_path: Path) -> None:
    _, _, figures = bench_run
    result = run_tool(["-m", "bench.report", str(figures), str(figures)], tool_env([], KEYSPACE), timeout=60)
    assert result.returncode == 2 and "two runs have the same label" in result.stderr


def test_before_and_tombstones_at_a_tiny_size(cassandra_hosts: list[str], tmp_path: Path) -> None:
    """--before runs another revision's app from a worktree of its own (here HEAD, so as not to depend on history
    the clone may lack) and removes the worktree; --tombstones reports its reads. Shapes only, never timings."""
    figures = tmp_path / "bench.json"
    args = ["-m", "bench", "--skip-usual", "--before", "HEAD", "--tombstones", "6", "--ops", "5", "--concurrency", "2"]
    env = tool_env(cassandra_hosts, KEYSPACE)
    worktrees = subprocess.run(["git", "worktree", "list"], capture_output=True, text=True, cwd=PROJECT_DIR).stdout
    result = run_tool([*args, "--keyspace", KEYSPACE, "--json", str(figures)], env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert (
        subprocess.run(["git", "worktree", "list"], capture_output=True, text=True, cwd=PROJECT_DIR).stdout == worktrees
    )
    (topology,) = json.loads(figures.read_text())["topologies"]
    names = {r["name"] for r in topology["results"]}
    for side in ("before", "after"):
        assert {f"{side}: {op} (http)" for op in ("reserve", "cancel", "move", "catalogue")} <= names
    assert "after: reserve+key (http)" in names and "lwt baseline" in names
    for r in topology["results"]:
        assert r["outcomes"] == {"ok": 5}, r
    rows = topology["before_after"]["rows"]
    assert {r["operation"] for r in rows} == {"reserve", "cancel", "move", "catalogue", "reserve+key"}
    assert all(r["throughput_after_over_before"] is not None for r in rows)
    tombstones = topology["tombstones"]
    assert tombstones["cycles"] == 6 and tombstones["tally"]["cycles"] == 6
    assert set(tombstones["reads"]) >= {"book", "untouched book", "reader A", "reader B", "untouched reader"}
    assert all(r["reads"] == 50 and r["median_ms"] is not None for r in tombstones["reads"].values())
    assert "after/before" in result.stdout and "tombstone cells" in result.stdout


def test_search_and_index_cost_at_a_tiny_size(cassandra_hosts: list[str], tmp_path: Path) -> None:
    """--search seeds a catalogue into a keyspace of its own (and reuses it the next time), checks every search's
    count against the books Python finds, and --index-cost writes through the seeder into three keyspaces. Shapes
    only, never timings."""
    figures = tmp_path / "bench.json"
    args = ["-m", "bench", "--skip-usual", "--search", "300", "--index-cost", "120", "--ops", "5", "--concurrency", "2"]
    env = tool_env(cassandra_hosts, KEYSPACE)
    for attempt in (1, 2):
        result = run_tool([*args, "--keyspace", KEYSPACE, "--json", str(figures)], env, timeout=400)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        report = json.loads(figures.read_text())
        (topology,) = report["topologies"]
        search = topology["search"]
        if attempt == 2:  # the first run seeded it, unless an earlier session did
            assert search["seeded_now"] is False
        assert search["keyspace"] == f"{KEYSPACE}_search" and search["books"] == 300
    assert set(report["load_average"]) == {"start", "end"}
    survey = search["survey"]
    assert survey["books"] == 300 and 0 < survey["terms_p50"] <= survey["terms_max"]
    assert survey["matches"]["browse (empty query)"] == 300
    rows = [r for r in topology["results"] if r["group"] == "search"]
    assert {r["group"] for r in topology["results"]} == {"search"}
    names = {r["name"] for r in rows}
    assert {"get_book (repository)", "GET /api/books/{id} (http)"} <= names
    for label in survey["matches"]:
        kinds = ("CQL rows (db)", "search_books", "list_books", "GET /api/books")
        assert {f"{label}: {kind}" for kind in kinds} <= names
    for r in rows:
        assert r["outcomes"] == {"ok": 5}, r  # every search found what Python finds in the same books
        assert r["baseline"] or r["ratio"] is not None
    cost = topology["index_cost"]
    assert [v["name"] for v in cost["variants"]] == ["with index", "index dropped", "no terms, no index"]
    for v in cost["variants"]:
        assert v["seeder"]["books"] == 120 and v["seeder"]["books_per_s"] > 0
        assert v["row_writes"]["books"] == 120 and v["seeder_ratio"] is not None
    assert "search terms per book" in result.stdout and "index cost:" in result.stdout


def test_statements_are_counted_for_each_request_of_both_apps(cassandra_hosts: list[str], tmp_path: Path) -> None:
    """bench statements at a tiny size: every kind of request answered as it should be, and the counts say what the
    protocol says (a refused reserve is one read and no transaction, rule 7; every change of ours is one)."""
    counts = tmp_path / "statements.json"
    args = ["-m", "bench", "statements", "--requests", "2", "--keyspace", f"{KEYSPACE}_statements"]
    result = run_tool([*args, "--json", str(counts)], tool_env(cassandra_hosts, KEYSPACE), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    figures = json.loads(counts.read_text())
    ours = {row["request"]: row for row in figures["ours"]}
    naive = {row["request"]: row for row in figures["naive"]}
    assert set(naive) < set(ours)
    free, held = "POST /make_reservation, a free book", "POST /make_reservation, a book another holds"
    for rows in (ours, naive):
        assert rows[free]["answers"] == {"done": 2} and rows[held]["answers"] == {"refused": 2}
        assert rows["POST /update_reservation"]["answers"] == rows["POST /remove_reservation"]["answers"] == {"done": 2}
    assert ours[held]["per_request"] == {"read": 1}
    assert naive[held]["per_request"] == {"transaction": 1}
    for request in (free, "POST /update_reservation", "POST /remove_reservation", "POST /api/reservations (signed in)"):
        assert ours[request]["per_request"]["transaction"] == 1, ours[request]
    assert ours["POST /api/reservations (signed in)"]["answers"] == {"201": 2}
    assert ours["DELETE /api/reservations/{id}"]["answers"] == {"204": 2}
    assert "statements per request" in result.stdout
