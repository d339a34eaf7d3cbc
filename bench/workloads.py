"""What the bench measures on one cluster: the same reservation at three depths (the bare driver, the
repository, HTTP), on distinct books and on one hot book, the read path, and reserve taken apart.

Each workload gets fresh books made before its clock starts, so every timed reservation is a first
reservation of its book (distinct) or a race for a book all its calls share (hot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import aiohttp
from cassandra.query import PreparedStatement

from app.db import Database
from app.models import Conflict, Reservation
from app.repository import Library
from app.repository.base import now, write_time
from app.repository.reservations import VIEW_INSERTS
from bench.measure import Figures, bridge, measure, measure_callbacks
from seeder.common import run_bounded

BASELINE_TABLE = "lwt_baseline"
BASELINE_DDL = "CREATE TABLE IF NOT EXISTS {ks}.lwt_baseline (k uuid PRIMARY KEY, v int)"
BASELINE_INSERT = "INSERT INTO {ks}.lwt_baseline (k, v) VALUES (?, ?) IF NOT EXISTS"
CATALOGUE_READ = "SELECT book_id, title, author, genre, published_year FROM {ks}.books"
READER_READ = "SELECT reservation_id, book_id, user_id, reserved_at FROM {ks}.user_reservations WHERE user_id = ?"
PAGE_SIZE = 20
READERS = 100  # reservations are spread over this many readers, so no reader's partition is the hot spot
FIRST_READER = 1
SETUP_CONCURRENCY = 64
WARM_CLUSTER_OPS = 400

Progress = Callable[[str], None]


def lwt_outcome(rows: Any) -> str:
    """`[applied]` is the first column of a lightweight transaction's answer."""
    return "ok" if rows and rows[0][0] else "conflict"


class Workloads:
    def __init__(self, db: Database, library: Library, url: str, *, ops: int, warmup: int, progress: Progress) -> None:
        self.db = db
        self.library = library
        self.url = url
        self.ops = ops
        self.warmup = warmup
        self.progress = progress
        self.ks = db.settings.keyspace
        self.results: list[Figures] = []
        self._prepared: dict[str, PreparedStatement] = {}
        self._http: aiohttp.ClientSession | None = None

    # -- set-up ------------------------------------------------------------------------------
    async def setup(self) -> None:
        await self.db.execute_raw(BASELINE_DDL.replace("{ks}", self.ks))
        users = range(FIRST_READER, FIRST_READER + READERS)
        await run_bounded(
            users, lambda u: self.library.create_user(f"Bench reader {u}", f"reader{u}@bench.test", u), 16
        )
        # A catalogue to page through before any reservation is made.
        await self.books(200)
        # A freshly started (or idle) Cassandra answers its first few hundred transactions slowly (JIT, caches):
        # warm it once, untimed, so that the first row measured does not pay for it.
        warm = min(WARM_CLUSTER_OPS, 4 * self.ops)  # a tiny run (the tests) needs no more than its own size
        keys = [uuid4() for _ in range(warm)]
        await run_bounded(range(warm), lambda i: self._bare_lwt(keys[i], i), 8)
        books = await self.books(warm // 4)
        await run_bounded(range(len(books)), lambda i: self._repo_reserve(books[i], self._reader(i)), 8)

    async def books(self, count: int) -> list[UUID]:
        ids = [uuid4() for _ in range(count)]
        await run_bounded(
            ids,
            lambda b: self.library.create_book(f"Bench book {b.hex[:8]}", "Bench Author", "bench", 2000, b),
            SETUP_CONCURRENCY,
        )
        return ids

    def prepared(self, cql: str) -> PreparedStatement:
        text = cql.replace("{ks}", self.ks)
        if text not in self._prepared:
            self._prepared[text] = self.db.session.prepare(text)
        return self._prepared[text]

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            # No connection limit of its own: the workers' count is the concurrency; keep-alive as a browser would.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _record(self, result: Figures) -> Figures:
        self.results.append(result)
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
        self.progress(
            f"  {result.group:<9} {result.name:<26} c={result.concurrency:<3} {result.throughput:>8.1f} ops/s  "
            f"p50 {result.p50_ms:>7.2f} ms  p99 {result.p99_ms:>7.2f} ms  ({counts})"
        )
        return result

    async def _measure(
        self,
        group: str,
        name: str,
        layer: str,
        op: Callable[[int], Any],
        *,
        concurrency: int,
        warmup: int | None = None,
        baseline: bool = False,
    ) -> Figures:
        """One row at this bench's size: `self.ops` timed calls after `warmup` untimed ones (the bench's own
        warm-up unless given)."""
        return await measure(
            group,
            name,
            layer,
            op,
            ops=self.ops,
            concurrency=concurrency,
            warmup=self.warmup if warmup is None else warmup,
            baseline=baseline,
        )

    async def _row(
        self,
        group: str,
        name: str,
        layer: str,
        op: Callable[[int], Any],
        *,
        concurrency: int,
        warmup: int | None = None,
        baseline: bool = False,
    ) -> Figures:
        """A measured row of the table: printed and kept for --json."""
        figures = await self._measure(group, name, layer, op, concurrency=concurrency, warmup=warmup, baseline=baseline)
        return self._record(figures)

    def _reader(self, i: int) -> int:
        return FIRST_READER + i % READERS

    # -- operations at each depth ------------------------------------------------------------
    async def _bare_lwt(self, key: UUID, value: int) -> str:
        rows = await bridge(self.db.session.execute_async(self.prepared(BASELINE_INSERT), (key, value)))
        return lwt_outcome(rows)

    async def _repo_reserve(self, book: UUID, user: int) -> str:
        try:
            await self.library.reserve(book, user)
        except Conflict:
            return "conflict"
        return "ok"

    async def _http_reserve(self, book: UUID, user: int) -> str:
        body = {"book_id": str(book), "user_id": user}
        async with self.http().post(f"{self.url}/api/reservations", json=body) as response:
            await response.read()
            return _http_outcome(response.status)

    async def _http_get(self, path: str, params: dict[str, str]) -> str:
        async with self.http().get(f"{self.url}{path}", params=params) as response:
            await response.read()
            return _http_outcome(response.status)

    # -- the table's rows --------------------------------------------------------------------
    async def reserve_distinct(self, concurrency: int) -> None:
        n = self.ops + self.warmup
        keys = [uuid4() for _ in range(n)]
        await self._row(
            "reserve",
            "lwt baseline",
            "driver",
            lambda i: self._bare_lwt(keys[i], i),
            concurrency=concurrency,
            baseline=True,
        )
        books = await self.books(n)
        await self._row(
            "reserve",
            "reserve (repository)",
            "repository",
            lambda i: self._repo_reserve(books[i], self._reader(i)),
            concurrency=concurrency,
        )
        books = await self.books(n)
        await self._row(
            "reserve",
            "reserve (http)",
            "http",
            lambda i: self._http_reserve(books[i], self._reader(i)),
            concurrency=concurrency,
        )

    async def reserve_hot(self, concurrency: int) -> None:
        """Every call races for one book: one wins, the rest must be refused (or fail under contention)."""
        key = uuid4()
        await self._row(
            "hot",
            "lwt baseline",
            "driver",
            lambda i: self._bare_lwt(key, i),
            concurrency=concurrency,
            warmup=0,
            baseline=True,
        )
        book = (await self.books(1))[0]
        await self._row(
            "hot",
            "reserve (repository)",
            "repository",
            lambda i: self._repo_reserve(book, self._reader(i)),
            concurrency=concurrency,
            warmup=0,
        )
        book = (await self.books(1))[0]
        await self._row(
            "hot",
            "reserve (http)",
            "http",
            lambda i: self._http_reserve(book, self._reader(i)),
            concurrency=concurrency,
            warmup=0,
        )

    async def reads(self, concurrency: int) -> None:
        catalogue = self.prepared(CATALOGUE_READ)
        reader = self.prepared(READER_READ)

        async def bare_page(statement: PreparedStatement, params: tuple[Any, ...]) -> str:
            bound = statement.bind(params)
            bound.fetch_size = PAGE_SIZE
            await bridge(self.db.session.execute_async(bound))
            return "ok"

        async def repo_catalogue(_: int) -> str:
            await self.library.list_books(page_size=PAGE_SIZE)
            return "ok"

        async def repo_reader(i: int) -> str:
            await self.library.user_reservations(self._reader(i), page_size=PAGE_SIZE)
            return "ok"

        rows: list[tuple[str, str, str, Callable[[int], Any], bool]] = [
            ("catalogue", "select page (driver)", "driver", lambda i: bare_page(catalogue, ()), True),
            ("catalogue", "list_books (repository)", "repository", repo_catalogue, False),
            (
                "catalogue",
                "GET /api/books (http)",
                "http",
                lambda i: self._http_get("/api/books", {"page_size": str(PAGE_SIZE)}),
                False,
            ),
            ("reader", "select page (driver)", "driver", lambda i: bare_page(reader, (self._reader(i),)), True),
            ("reader", "user_reservations (repo)", "repository", repo_reader, False),
            (
                "reader",
                "GET /api/reservations (http)",
                "http",
                lambda i: self._http_get(
                    "/api/reservations", {"user_id": str(self._reader(i)), "page_size": str(PAGE_SIZE)}
                ),
                False,
            ),
        ]
        for group, name, layer, op, is_baseline in rows:
            await self._row(group, name, layer, op, concurrency=concurrency, baseline=is_baseline)

    async def http_load(self, concurrency: int) -> None:
        """Only the HTTP rows: reservations on distinct books, catalogue pages, a reader's reservations. The
        load the app is profiled under."""
        books = await self.books(self.ops)
        await self._measure(
            "profile",
            "reserve (http)",
            "http",
            lambda i: self._http_reserve(books[i], self._reader(i)),
            concurrency=concurrency,
            warmup=0,
        )
        await self._measure(
            "profile",
            "GET /api/books (http)",
            "http",
            lambda i: self._http_get("/api/books", {"page_size": str(PAGE_SIZE)}),
            concurrency=concurrency,
            warmup=0,
        )
        await self._measure(
            "profile",
            "GET /api/reservations (http)",
            "http",
            lambda i: self._http_get(
                "/api/reservations", {"user_id": str(self._reader(i)), "page_size": str(PAGE_SIZE)}
            ),
            concurrency=concurrency,
            warmup=0,
        )

    # -- reserve taken apart -----------------------------------------------------------------
    async def breakdown(self, concurrency: int) -> None:
        """The parts of `Library.reserve`, each alone and each left out, beside the bare transaction reached three
        ways. It calls the repository's private steps on purpose: they are what reserve is made of, and a
        renamed step should break this bench rather than let it measure something else."""
        lib = self.library
        n = self.ops + self.warmup
        insert = self.prepared(BASELINE_INSERT)
        lwt_cql = BASELINE_INSERT.replace("{ks}", self.ks)

        keys = [uuid4() for _ in range(n)]
        self._record(
            await asyncio.to_thread(
                measure_callbacks,
                "breakdown",
                "lwt: driver callbacks",
                lambda i: self.db.session.execute_async(insert, (keys[i], i)),
                lwt_outcome,
                ops=self.ops,
                concurrency=concurrency,
                warmup=self.warmup,
            )
        )
        keys = [uuid4() for _ in range(n)]
        await self._row(
            "breakdown",
            "lwt: asyncio bridge",
            "driver",
            lambda i: self._bare_lwt(keys[i], i),
            concurrency=concurrency,
            baseline=True,
        )
        keys = [uuid4() for _ in range(n)]

        async def db_lwt(i: int) -> str:
            result = await self.db.execute(lwt_cql, [keys[i], i], write=True)
            return "ok" if result.was_applied else "conflict"

        await self._row("breakdown", "lwt: Database.execute", "db", db_lwt, concurrency=concurrency)

        async def steps(books: list[UUID], i: int, *, checks: bool, lock: bool, views: str) -> str:
            book, user = books[i], self._reader(i)
            if checks:
                await lib._require_book_and_user(book, user)
            if not lock and views == "none":
                return "ok"
            reservation_id = uuid4()
            written_at = write_time()
            held = Reservation(reservation_id, book, user, now())
            if lock:
                held = await lib._take_lock(book, reservation_id, user, held.reserved_at)
                if held.reservation_id != reservation_id:
                    return "conflict"
            if views == "batch":
                await lib._write_views_or_undo(held, release_on_failure=book if lock else None, written_at=written_at)
            elif views == "parallel":
                await self._parallel_views(held, written_at)
            return "ok"

        variants = [
            ("reserve: full", None),
            # How reserve ran before it sent the existence checks along with the lock.
            ("reserve: checks, then lock", {"checks": True, "lock": True, "views": "batch"}),
            ("reserve: no existence checks", {"checks": False, "lock": True, "views": "batch"}),
            ("reserve: no logged batch", {"checks": True, "lock": True, "views": "none"}),
            ("reserve: views as 3 writes", {"checks": True, "lock": True, "views": "parallel"}),
            ("step: existence checks", {"checks": True, "lock": False, "views": "none"}),
            ("step: lock (repository)", {"checks": False, "lock": True, "views": "none"}),
            ("step: logged batch", {"checks": False, "lock": False, "views": "batch"}),
        ]
        for name, shape in variants:
            books = await self.books(n)
            if shape is None:
                op = lambda i, books=books: self._repo_reserve(books[i], self._reader(i))  # noqa: E731
            else:
                op = lambda i, books=books, shape=shape: steps(books, i, **shape)  # noqa: E731
            await self._row("breakdown", name, "repository", op, concurrency=concurrency)

    async def _parallel_views(self, r: Reservation, written_at: int) -> None:
        """The alternative to the logged batch: the three view rows as plain writes at once (no batchlog)."""
        values = (
            [r.reservation_id, r.book_id, r.user_id, r.reserved_at, written_at],
            [r.user_id, r.reservation_id, r.book_id, r.reserved_at, written_at],
            [r.book_id, r.reservation_id, r.user_id, r.reserved_at, written_at],
        )
        await asyncio.gather(
            *(
                self.db.execute(self.library.cql(cql), params, write=True)
                for cql, params in zip(VIEW_INSERTS, values, strict=True)
            )
        )


def _http_outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 409:
        return "conflict"
    return f"http {status}"
