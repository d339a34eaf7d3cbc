"""What the bench measures on one cluster: the same reservation at three depths (the bare driver, the
repository, HTTP), on distinct books and on one hot book, the read path, and reserve and cancel taken apart.

Each workload gets fresh books made before its clock starts, so every timed reservation is a first
reservation of its book (distinct) or a race for a book all its calls share (hot).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import aiohttp
from cassandra.query import PreparedStatement

from app.db import Database
from app.models import Conflict, Reservation
from app.repository import Library
from app.repository.base import now
from app.repository.locks import Lock, LockState, T
from bench.measure import Figures, bridge, measure, measure_callbacks
from toolkit.cli import bearer, run_bounded

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
        self._headers: dict[str, str] = {}
        # Each bench reader's own token: the HTTP rows reserve and read as the reader does, not as the desk.
        self.reader_headers: dict[int, dict[str, str]] = {}
        self.reader_tokens: dict[int, str] = {}

    # -- set-up ------------------------------------------------------------------------------
    async def authenticate(self) -> None:
        """Tokens, before the first request: a librarian's for the set-up requests (books, readers), and each bench
        reader's own, which the HTTP rows send as that reader does. An older revision's app ignores them."""
        self._headers = bearer(await self.library.session_for_tool("Bench"))
        self.reader_tokens = await self.library.sessions_for_readers(list(range(FIRST_READER, FIRST_READER + READERS)))
        self.reader_headers = {user_id: bearer(token) for user_id, token in self.reader_tokens.items()}

    async def setup(self) -> None:
        await self.db.execute_raw(BASELINE_DDL.replace("{ks}", self.ks))
        users = range(FIRST_READER, FIRST_READER + READERS)
        await run_bounded(
            users, lambda u: self.library.import_user(f"Bench reader {u}", f"reader{u}@bench.test", u), 16
        )
        # Tokens once the readers' cards exist: a session is bound to its card (app/repository/accounts.py).
        await self.authenticate()
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
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60), headers=self._headers
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
        headers = self.reader_headers.get(user)
        async with self.http().post(f"{self.url}/api/reservations", json=body, headers=headers) as response:
            await response.read()
            return _http_outcome(response.status)

    async def _http_get(self, path: str, params: dict[str, str], reader: int | None = None) -> str:
        headers = self.reader_headers.get(reader) if reader is not None else None
        async with self.http().get(f"{self.url}{path}", params=params, headers=headers) as response:
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
        # What signing in adds to every API request: the bearer token's session read (Library.caller_for), which
        # the reserve (http) row below pays once per request on top of the repository's reserve.
        await self._row(
            "reserve",
            "token check (repository)",
            "repository",
            lambda i: self._check_token(self._reader(i)),
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

    async def _check_token(self, user: int) -> str:
        caller = await self.library.caller_for(self.reader_tokens[user])
        return "ok" if caller is not None and caller.user_id == user else "error"

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
                    "/api/reservations", {"user_id": str(self._reader(i)), "page_size": str(PAGE_SIZE)}, self._reader(i)
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

    # -- reserve and cancel taken apart --------------------------------------------------------
    async def breakdown(self, concurrency: int) -> None:
        """The parts of `Library.reserve` and `Library.cancel`, each alone and some left out, beside the bare
        transaction reached three ways. It calls the repository's private steps on purpose: they are what reserve
        and cancel are made of, and a renamed step should break this bench rather than let it measure something
        else. Each step row runs on books of its own, so a step that writes never meets another's rows."""
        lib = self.library.reservations  # the part whose private steps reserve and cancel are made of
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

        async def reserve_steps(books: list[UUID], i: int, *, check: bool, reread: bool) -> str:
            """reserve without the key: the reader read before the lock (`check`), the lock, the view batch, the
            reader read again after the views (`reread`)."""
            book, user = books[i], self._reader(i)
            if check:
                await lib._active_reader(user)
            try:
                lock = await lib._take(book, uuid4(), user)
            except Conflict:
                return "conflict"
            await lib.store.write_views(lock)
            if reread:
                await lib.store.reader(user)
            return "ok"

        async def view_batch(books: list[UUID], i: int) -> str:
            # The batch alone, for a lock state no transaction wrote: views of a book nobody took, at a fresh version.
            await lib.store.write_views(
                Lock(books[i], LockState.HELD, uuid4(), self._reader(i), now(), lib.clock.next())
            )
            return "ok"

        async def take(books: list[UUID], i: int) -> str:
            try:
                await lib._take(books[i], uuid4(), self._reader(i))
            except Conflict:
                return "conflict"
            return "ok"

        async def claim(books: list[UUID], i: int) -> str:
            return "ok" if await lib.keys.claim(uuid4(), self._reader(i), books[i]) else "conflict"

        async def reader_read(_: list[UUID], i: int) -> str:
            await lib.store.reader(self._reader(i))
            return "ok"

        async def keyed(books: list[UUID], i: int) -> str:
            try:
                await lib.reserve(books[i], self._reader(i), uuid4().hex)
            except Conflict:
                return "conflict"
            return "ok"

        variants: list[tuple[str, Callable[[list[UUID], int], Any]]] = [
            ("reserve: full", lambda books, i: self._repo_reserve(books[i], self._reader(i))),
            ("reserve: with idempotency key", keyed),
            ("reserve: no reader re-read", lambda books, i: reserve_steps(books, i, check=True, reread=False)),
            ("reserve: lock and views only", lambda books, i: reserve_steps(books, i, check=False, reread=False)),
            ("step: reader check", reader_read),
            ("step: lock (repository)", take),
            ("step: view batch", view_batch),
            ("step: idempotency key claim", claim),
        ]
        for name, step in variants:
            books = await self.books(n)
            await self._row("breakdown", name, "repository", functools.partial(step, books), concurrency=concurrency)
        await self._cancel_breakdown(concurrency)

    async def _cancel_breakdown(self, concurrency: int) -> None:
        """cancel: the reservation's row read, its lock read at SERIAL, the release, the deletes of its views."""
        lib = self.library.reservations

        async def held() -> list[Reservation]:
            books = await self.books(self.ops + self.warmup)
            made: list[Reservation | None] = [None] * len(books)

            async def reserve(i: int) -> None:
                made[i] = await lib.reserve(books[i], self._reader(i))

            await run_bounded(range(len(books)), reserve, SETUP_CONCURRENCY)
            return [r for r in made if r is not None]

        async def cancel(r: Reservation) -> str:
            await lib.cancel(r.reservation_id, r.user_id)
            return "ok"

        async def lock_read(r: Reservation) -> str:
            await lib.locks.read(r.book_id, serial=True)
            return "ok"

        async def release(r: Reservation) -> str:
            released = await lib.locks.run(T.RELEASE, r.book_id, reservation_id=r.reservation_id)
            return "ok" if released.applied else "conflict"

        async def delete_views(r: Reservation) -> str:
            version = lib.clock.next()
            await lib.store.delete_book_rows(r.user_id, r.book_id, version)
            await lib.store.delete_reservation_row(r.reservation_id, version)
            return "ok"

        async def row_read(r: Reservation) -> str:
            await self.library.get_reservation(r.reservation_id)
            return "ok"

        steps: list[tuple[str, Callable[[Reservation], Any]]] = [
            ("cancel: full", cancel),
            ("cancel step: reservation read", row_read),
            ("cancel step: lock read (serial)", lock_read),
            ("cancel step: release", release),
            ("cancel step: view deletes", delete_views),
        ]
        for name, step in steps:
            made = await held()

            def on_each(i: int, made: list[Reservation] = made, step: Callable[[Reservation], Any] = step) -> Any:
                return step(made[i])

            await self._row("breakdown", name, "repository", on_each, concurrency=concurrency)


def _http_outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 409:
        return "conflict"
    return f"http {status}"
