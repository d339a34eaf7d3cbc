"""The issue-14 figures: median and spread over run1-3.json, each
`python -m bench --skip-usual --search 100000 --index-cost 40000 --concurrency 1,32 --ops 500` on one node: the
catalogue search on 100,000 seeded books (the statement alone, the repository and HTTP, against the point read
Library.get_book), the search terms per book, and the seeder's books/s with the search index, with it dropped, and
without the terms or the index. Prints Markdown rows."""

import json
from pathlib import Path

REPORTS = [json.loads(path.read_text()) for path in sorted(Path(__file__).parent.glob("run*.json"))]
RUNS = [report["topologies"][0] for report in REPORTS]


def spread(values: list[float], digits: int = 1) -> str:
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.{digits}f} [{ordered[0]:.{digits}f}–{ordered[-1]:.{digits}f}]"


def row(run: dict, name: str, c: int) -> dict:
    return next(r for r in run["results"] if (r["group"], r["name"], r["concurrency"]) == ("search", name, c))


print(f"{len(RUNS)} runs; median [min–max]")
for report in REPORTS:
    print(
        f"  {report['started_at']}: load average {report['load_average']['start']} -> {report['load_average']['end']}"
    )
survey = RUNS[0]["search"]["survey"]
print(
    f"\nterms per book: mean {survey['terms_mean']}, p50 {survey['terms_p50']}, max {survey['terms_max']}; "
    f"bytes: mean {survey['bytes_mean']}, p50 {survey['bytes_p50']}, max {survey['bytes_max']}"
)
for run in RUNS:
    disk = run["search"]["disk"]
    print(f"  on disk: {disk['sstables']} SSTables, {disk['bytes']}")

names = ["get_book (repository)", "GET /api/books/{id} (http)"]
names += [
    f"{label}: {kind}"
    for label in survey["matches"]
    for kind in ("CQL rows (db)", "search_books", "list_books", "GET /api/books")
]
print("\n| row | matches | c=1 p50 ms | c=1 p99 ms | c=1 ops/s | c=32 p50 ms | c=32 p99 ms | c=32 ops/s |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for name in names:
    label = name.split(":")[0]
    matched = f"{survey['matches'][label]:,}" if label in survey["matches"] else ""
    cells = []
    for c in (1, 32):
        rows = [row(run, name, c) for run in RUNS]
        ratio = "" if rows[0]["baseline"] else f" (×{spread([r['ratio'] for r in rows], 3).split()[0]})"
        cells += [
            spread([r["p50_ms"] for r in rows], 2),
            spread([r["p99_ms"] for r in rows], 2),
            spread([r["throughput"] for r in rows]) + ratio,
        ]
    print(f"| {name} | {matched} | " + " | ".join(cells) + " |")
print("(×: ops/s / get_book's ops/s at the same concurrency, median of the three runs' own ratios)")

print("\n| variant | seeder books/s | ratio | row writes/s | ratio | books table on disk, MB |")
print("|---|--:|--:|--:|--:|--:|")
for i, variant in enumerate(RUNS[0]["index_cost"]["variants"]):
    vs = [run["index_cost"]["variants"][i] for run in RUNS]
    disk = [v["disk"]["total_bytes"] / 1e6 for v in vs if v["disk"]]
    print(
        f"| {variant['name']} | {spread([v['seeder']['books_per_s'] for v in vs])} | "
        f"{spread([v['seeder_ratio'] for v in vs], 2)} | {spread([v['row_writes']['books_per_s'] for v in vs])} | "
        f"{spread([v['row_writes_ratio'] for v in vs], 2)} | {spread(disk) if disk else '-'} |"
    )
for run in RUNS:
    cost = run["index_cost"]
    print(f"  index cost load average {cost['load_average_start']} -> {cost['load_average_end']}")
