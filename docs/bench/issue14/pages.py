"""One-off check after run1-3 (not part of the bench): does search_books' second page (it reads LIMIT 1001 in pages
of 1000, so a broad search makes two round trips, the second for one row) cost anything worth changing, and how does
a broad search's time grow with the rows it reads? The statements of search_books on the seeded catalogue of
keyspace bench_search, 180 times each at concurrency 1, through the bare driver, interleaved. Run in the bench's
network namespace: `python docs/bench/issue14/pages.py` (its printout: pages.txt)."""

import statistics
import time

from cassandra.cluster import Cluster

COLUMNS = "book_id, title, author, genre, published_year"
session = Cluster(["127.0.0.1"], protocol_version=5).connect()
STATEMENTS = {
    "ma": session.prepare(f"SELECT {COLUMNS} FROM bench_search.books WHERE search_terms CONTAINS ? LIMIT 1001"),
    "browse": session.prepare(f"SELECT {COLUMNS} FROM bench_search.books LIMIT 1001"),
    "ma limit 101": session.prepare(
        f"SELECT {COLUMNS} FROM bench_search.books WHERE search_terms CONTAINS ? LIMIT 101"
    ),
}


def timed(name: str, fetch_size: int) -> tuple[float, int]:
    bound = STATEMENTS[name].bind(() if name == "browse" else ("ma",))
    bound.fetch_size = fetch_size
    started = time.perf_counter()
    rows = list(session.execute(bound))
    return (time.perf_counter() - started) * 1000, len(rows)


times: dict[tuple[str, int, int], list[float]] = {}
for _ in range(3):
    for name, fetch_size in [("ma", 1000), ("ma", 1001), ("browse", 1000), ("browse", 1001), ("ma limit 101", 1000)]:
        for _ in range(60):
            ms, rows = timed(name, fetch_size)
            times.setdefault((name, fetch_size, rows), []).append(ms)
for (name, fetch_size, rows), values in times.items():
    values.sort()
    print(
        f"{name:<13} page {fetch_size:>4}  rows {rows:>4}  p50 {values[len(values) // 2]:5.1f} ms  "
        f"mean {statistics.fmean(values):5.1f} ms  n={len(values)}"
    )
