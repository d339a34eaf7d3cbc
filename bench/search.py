"""The catalogue search of issue 14 in the bench (`--search N`): how long a reader's search takes on a catalogue of N
seeded books, and how big each book's set of search terms is.

The catalogue is the seeder's (`seeder.load.seed`, the app's demo generator), written once into a keyspace of its
own (KEYSPACE_search) and kept: a marker row records the number of books seeded, so a later run with the same N
reuses it and only a different N writes it anew. Before the timed rows its memtables are flushed (nodetool), so
every run reads SSTables and their on-disk indexes, whatever the previous run left in memory.

Each query of `QUERIES` is timed four ways:
- `CQL rows (db)`: the statement `search_books` sends (`Database.execute`, the same paging), its rows only: what
  Cassandra and the driver cost, without the Python work on the rows (books made, counted, faceted, sorted);
- `search_books`: `Library.search_books(q, genre=)`, what the catalogue page calls: up to RESULT_BOUND + 1 matching
  rows read, then counted, faceted, sorted and paged in Python;
- `list_books`: `Library.list_books(q=, genre=, page_size=20)`, the API's token-paged variant: one page of 20;
- `GET /api/books`: the same page over HTTP from `python -m app`, with each book's availability (one more read).
Against `Library.get_book`, a point read of one book (the group's baseline) and `GET /api/books/{id}`.

Every timed call checks what it got against the books Python finds in the same data (`survey`): a search whose
count differs from the expected one is an outcome `mismatch`, not an `ok`.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.db import Database
from app.demo_data import DEFAULT_SEED, book_id_for
from app.models import Book
from app.repository import Library
from app.repository.base import SCAN_PAGE
from app.repository.catalogue import BOOK_COLUMNS, _book_conditions
from app.schema import DATA_TABLES, apply_schema
from app.search import RESULT_BOUND, fold, query_terms, search_terms
from app.settings import Settings
from bench.measure import Figures
from bench.workloads import Workloads
from toolkit.stats import percentile

GROUP = "search"
KEYSPACE_SUFFIX = "_search"
HTTP_PAGE = 20  # the page size of the list_books and HTTP rows, the bench's usual catalogue page
MARKER = "catalogue"
MARKER_DDL = (
    "CREATE TABLE IF NOT EXISTS {ks}.bench_seeded "
    "(name text PRIMARY KEY, books int, seed int, seconds double, finished_at timestamp)"
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Query:
    """One reader's query: `label` names its rows, `q` and `genre` are what the reader typed and chose."""

    label: str
    q: str
    genre: str | None = None

    def http_params(self) -> dict[str, str]:
        params = {"q": self.q, "page_size": str(HTTP_PAGE)}
        if self.genre:
            params["genre"] = self.genre
        return params


# Picked from the seeded catalogue (app/demo_data.py, seed 42), so that each finds what its kind finds there: at
# 100,000 books "ma" matches 17,181 books and "riv" 6,660 (both past the bound of 1,000), "simpson" 92 (a surname
# of the median frequency), "silent river" 141, "riv" in Poetry 551; the empty query is the whole catalogue.
QUERIES: tuple[Query, ...] = (
    Query("2-letter prefix 'ma'", "ma"),
    Query("3-letter prefix 'riv'", "riv"),
    Query("surname 'simpson'", "simpson"),
    Query("two words 'silent river'", "silent river"),
    Query("'riv' + genre Poetry", "riv", "Poetry"),
    Query("browse (empty query)", ""),
)


# -- the data, in Python: terms per book, and what each query should find ---------------------------
@dataclass(frozen=True)
class Survey:
    """Each book's set of search terms summed up (count, and bytes: the UTF-8 length of the terms, the set's payload
    without Cassandra's per-cell overhead), and how many books each query matches."""

    books: int
    terms_mean: float
    terms_p50: int
    terms_max: int
    bytes_mean: float
    bytes_p50: int
    bytes_max: int
    bytes_total: int
    matches: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def matches(query: Query, book: Book, terms: set[str]) -> bool:
    """Whether the search finds `book` (whose search terms are `terms`): every term of the query is one of them, and
    the genre, if one is chosen, is the book's, in any case (the genre index is case-insensitive)."""
    if query.genre is not None and fold(query.genre.strip()) != fold(book.genre):
        return False
    return all(term in terms for term in query_terms(query.q))


def survey(books: Iterable[Book], queries: Sequence[Query] = QUERIES) -> Survey:
    """One pass over `books`: the size of each one's search terms, and the matches of each query."""
    counts: list[int] = []
    sizes: list[int] = []
    found = dict.fromkeys((q.label for q in queries), 0)
    for book in books:
        terms = search_terms(book)
        counts.append(len(terms))
        sizes.append(sum(len(term.encode()) for term in terms))
        for query in queries:
            if matches(query, book, terms):
                found[query.label] += 1
    counts.sort()
    sizes.sort()
    return Survey(
        books=len(counts),
        terms_mean=round(statistics.fmean(counts), 2) if counts else 0.0,
        terms_p50=int(percentile(counts, 50)),
        terms_max=counts[-1] if counts else 0,
        bytes_mean=round(statistics.fmean(sizes), 1) if sizes else 0.0,
        bytes_p50=int(percentile(sizes, 50)),
        bytes_max=sizes[-1] if sizes else 0,
        bytes_total=sum(sizes),
        matches=found,
    )


def expected_page(matched: int, *, bound: int = RESULT_BOUND, page: int = HTTP_PAGE) -> tuple[int, bool, int]:
    """What a search that matches `matched` books answers: search_books' count and whether it is exact, and the
    length of list_books' first page of `page`."""
    return min(matched, bound), matched <= bound, min(matched, page)


# -- the catalogue in Cassandra ---------------------------------------------------------------------
async def prepare_catalogue(db: Database, settings: Settings, books: int, progress: Progress) -> dict[str, Any]:
    """The keyspace of `settings` holding exactly the first `books` seeded books: reused if a marker says a run wrote
    them, else emptied and seeded with `seeder.load.seed` (its progress bar on stderr)."""
    from seeder.load import DEFAULT_CONCURRENCY, seed

    ks = settings.keyspace
    await apply_schema(db, settings)
    await db.execute_raw(MARKER_DDL.replace("{ks}", ks))
    marker = (await db.execute(f"SELECT books, seed, seconds FROM {ks}.bench_seeded WHERE name = ?", [MARKER])).one()
    if marker is not None and marker.books == books and marker.seed == DEFAULT_SEED:
        progress(f"search: reusing the {books:,} books seeded into keyspace {ks} by an earlier run")
        return {"keyspace": ks, "books": books, "seeded_now": False, "seed_seconds": marker.seconds}
    progress(
        f"search: seeding {books:,} books into keyspace {ks} (seeder.load.seed, concurrency {DEFAULT_CONCURRENCY})"
    )
    await db.execute(f"DELETE FROM {ks}.bench_seeded WHERE name = ?", [MARKER])
    for table in DATA_TABLES:
        await db.execute_raw(f"TRUNCATE {ks}.{table}")
    result = await seed(Library(db), books=books, users=0, show_progress=True)
    await db.execute(
        f"INSERT INTO {ks}.bench_seeded (name, books, seed, seconds, finished_at) "
        "VALUES (?, ?, ?, ?, toTimestamp(now()))",
        [MARKER, books, DEFAULT_SEED, result.seconds],
    )
    rate = result.books / result.seconds if result.seconds else 0.0
    progress(f"search: seeded {result.books:,} books in {result.seconds:.0f} s ({rate:,.0f} books/s)")
    return {
        "keyspace": ks,
        "books": books,
        "seeded_now": True,
        "seed_seconds": round(result.seconds, 1),
        "seed_books_per_s": round(rate, 1),
        "seed_concurrency": DEFAULT_CONCURRENCY,
    }


# -- the timed rows ------------------------------------------------------------------------------------
class SearchWorkloads(Workloads):
    """The search rows, on the search keyspace's Library and the app serving it. No set-up of its own: the catalogue
    is seeded, and /api/books is public."""

    def __init__(
        self,
        db: Database,
        library: Library,
        url: str,
        *,
        ops: int,
        warmup: int,
        progress: Progress,
        books: int,
        expected: dict[str, int],
        queries: Sequence[Query] = QUERIES,
    ) -> None:
        super().__init__(db, library, url, ops=ops, warmup=warmup, progress=progress)
        self.catalogue_size = books
        self.expected = expected
        self.queries = queries

    def _book(self, i: int) -> Any:
        # Spread over the whole catalogue, not its first books (7919 is prime, so every book is reached in turn).
        return book_id_for(DEFAULT_SEED, (i * 7919) % self.catalogue_size)

    async def _http_json(self, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.http().get(f"{self.url}{path}", params=params) as response:
            body = await response.json() if response.status == 200 else await response.read()
            return response.status, body

    async def run(self, concurrency: int) -> list[Figures]:
        """Every row at one concurrency: the point reads first (the baseline), then each query at each depth."""
        rows: list[Figures] = []

        async def point_read(i: int) -> str:
            book = await self.library.get_book(self._book(i))
            return "ok" if book.book_id == self._book(i) else "mismatch"

        async def point_http(i: int) -> str:
            status, body = await self._http_json(f"/api/books/{self._book(i)}")
            if status != 200:
                return f"http {status}"
            return "ok" if body.get("book_id") == str(self._book(i)) else "mismatch"

        rows.append(
            await self._row(
                GROUP, "get_book (repository)", "repository", point_read, concurrency=concurrency, baseline=True
            )
        )
        rows.append(await self._row(GROUP, "GET /api/books/{id} (http)", "http", point_http, concurrency=concurrency))
        for query in self.queries:
            rows += await self._query_rows(query, concurrency)
        return rows

    async def _query_rows(self, query: Query, concurrency: int) -> list[Figures]:
        total, exact, first_page = expected_page(self.expected[query.label])
        # The repository's own statement (its private WHERE builder on purpose: a change there must show here).
        where, params = _book_conditions(query.q, query.genre, None)
        statement = f"SELECT {BOOK_COLUMNS} FROM {self.ks}.books{where} LIMIT {RESULT_BOUND + 1}"
        rows_read = min(self.expected[query.label], RESULT_BOUND + 1)

        async def cql_rows(_: int) -> str:
            count, state = 0, None
            while True:
                result = await self.db.execute(
                    statement, params, page_size=min(RESULT_BOUND + 1, SCAN_PAGE), paging_state=state
                )
                count += len(result.rows)
                state = result.paging_state
                if not state:
                    return "ok" if count == rows_read else "mismatch"

        async def search(_: int) -> str:
            result = await self.library.search_books(query.q, genre=query.genre)
            return "ok" if (result.total, result.exact) == (total, exact) else "mismatch"

        async def listing(_: int) -> str:
            page = await self.library.list_books(q=query.q, genre=query.genre, page_size=HTTP_PAGE)
            return "ok" if len(page.items) == first_page else "mismatch"

        async def over_http(_: int) -> str:
            status, body = await self._http_json("/api/books", query.http_params())
            if status != 200:
                return f"http {status}"
            return "ok" if len(body) == first_page else "mismatch"

        return [
            await self._row(GROUP, f"{query.label}: CQL rows (db)", "db", cql_rows, concurrency=concurrency),
            await self._row(GROUP, f"{query.label}: search_books", "repository", search, concurrency=concurrency),
            await self._row(GROUP, f"{query.label}: list_books", "repository", listing, concurrency=concurrency),
            await self._row(GROUP, f"{query.label}: GET /api/books", "http", over_http, concurrency=concurrency),
        ]


def render(search: dict[str, Any]) -> str:
    """The search section of the bench's printout: the catalogue, its terms, what each query matches, the disk."""
    s = search["survey"]
    lines = [
        f"search: {search['books']:,} seeded books in keyspace {search['keyspace']}"
        + (f" (seeded in this run: {search['seed_books_per_s']:,.0f} books/s)" if search.get("seeded_now") else ""),
        f"  search terms per book: mean {s['terms_mean']:.1f}, p50 {s['terms_p50']}, max {s['terms_max']}; "
        f"bytes per book (UTF-8, without Cassandra's per-cell overhead): mean {s['bytes_mean']:.0f}, "
        f"p50 {s['bytes_p50']}, max {s['bytes_max']}; {s['bytes_total'] / 1e6:.1f} MB in all",
        f"  matches in the data (search_books reads at most {RESULT_BOUND + 1:,} rows):",
    ]
    for label, matched in s["matches"].items():
        total, exact, _ = expected_page(matched)
        shown = f"{total:,}" if exact else f"more than {RESULT_BOUND:,} (reads {RESULT_BOUND + 1:,})"
        lines.append(f"    {label:<28} {matched:>7,}  -> search_books counts {shown}")
    disk = search.get("disk")
    if disk:
        parts = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in disk["bytes"].items())
        lines.append(
            f"  on disk (node 1, {disk['sstables']} SSTable(s)): {parts}; total {disk['total_bytes'] / 1e6:.1f} MB"
        )
    else:
        lines.append("  on disk: not measured (needs the local cluster's data folder)")
    lines.append(f"  flushed before timing: {'yes' if search.get('flushed') else 'no (nodetool not available)'}")
    return "\n".join(lines)
