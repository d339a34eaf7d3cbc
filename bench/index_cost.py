"""What the search index costs the writes (`--index-cost N`): the seeder's books/s into three fresh keyspaces.

- `with index`: the schema as it is (search_terms written with every book, indexed by `books_search_terms`);
- `index dropped`: the same schema after `DROP INDEX books_search_terms`, the terms still written;
- `no terms, no index`: the index dropped, and the book's row written without `search_terms`, as before issue 14.

Each keyspace gets the same N books through the seeder's own code path (`seeder.load.seed` with its catalogue
argument, so `Library.create_book`: the book's row, then its lock's `INSERT ... IF NOT EXISTS`), at the seeder's
concurrency. The row's write alone (`CatalogueRepository._write_book`, without the lock's lightweight transaction) is
timed too, on N other books, because the transaction costs more than the row and hides part of the difference.

The keyspaces are kept between runs and emptied (TRUNCATE) before and after, so every run starts from empty tables.

A machine's load drifts during minutes of writes, so the variants are not measured one after the other: the books
are cut into SLICES slices, and each round writes one slice into every keyspace, the round's first keyspace changing
from round to round. A variant's rate is its books over the seconds of its slices. The genre and author indexes are
in every keyspace; the other tables (locks, and all the rest of the schema) too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.db import Database
from app.demo_data import DEFAULT_SEED, demo_books
from app.models import Book
from app.repository import Library
from app.repository.catalogue import BOOK_COLUMNS, CatalogueRepository
from app.schema import DATA_TABLES, apply_schema
from app.settings import Settings
from bench import storage
from toolkit.cli import run_bounded

SLICES = 4
WARMUP_BOOKS = 500  # untimed, per keyspace, before the first slice: prepared statements, connections, the JIT
ROW_SEED = DEFAULT_SEED + 1  # the books of the row-only writes: other ids than the seeder's
WARMUP_SEED = DEFAULT_SEED + 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Variant:
    name: str
    suffix: str  # of the keyspace: KEYSPACE_<suffix>
    index: bool  # books_search_terms kept
    terms: bool  # search_terms written

    def keyspace(self, base: str) -> str:
        return f"{base}_{self.suffix}"


VARIANTS: tuple[Variant, ...] = (
    Variant("with index", "idx", index=True, terms=True),
    Variant("index dropped", "noidx", index=False, terms=True),
    Variant("no terms, no index", "noterms", index=False, terms=False),
)
REFERENCE = "no terms, no index"  # the write without the feature: the ratios' denominator


def slices(count: int, parts: int) -> list[range]:
    """0..count-1 cut into `parts` consecutive ranges as even as can be (the first ones one longer), none empty."""
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append(range(start, end))
        start = end
    return out


def rounds(variants: int, parts: int) -> list[list[tuple[int, int]]]:
    """The order of the (variant, slice) writes: round k writes slice k into every variant, starting with variant
    k mod `variants`, so no variant is always first (just after a quiet moment) or last."""
    return [[((k + j) % variants, k) for j in range(variants)] for k in range(parts)]


async def _write_row_without_terms(catalogue: CatalogueRepository, book: Book) -> None:
    """The book's row as written before issue 14: the same statement without `search_terms`."""
    await catalogue.db.execute(
        catalogue.cql(f"INSERT INTO {{ks}}.books ({BOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"),
        [book.book_id, book.title, book.author, book.genre, book.published_year, catalogue.clock.next()],
        write=True,
    )


async def _empty(db: Database, keyspace: str) -> None:
    for table in DATA_TABLES:
        await db.execute_raw(f"TRUNCATE {keyspace}.{table}")


async def _fresh(db: Database, settings: Settings, variant: Variant) -> Library:
    """The variant's keyspace, empty: created if missing, else truncated (not dropped and made again: the tests'
    clusters keep their keyspaces, as tests/integration/conftest.py says why), its search index dropped if the
    variant has none."""
    ks = settings.keyspace
    await apply_schema(db, settings)
    await _empty(db, ks)
    if not variant.index:
        await db.execute_raw(f"DROP INDEX IF EXISTS {ks}.books_search_terms")
    library = Library(db)
    if not variant.terms:
        catalogue = library.catalogue

        async def write_book(book: Book) -> None:
            await _write_row_without_terms(catalogue, book)

        # create_book calls self._write_book: this instance, and only it, writes the row without the terms.
        catalogue._write_book = write_book  # type: ignore[method-assign]
    return library


@dataclass
class _Tally:
    books: int = 0
    seconds: float = 0.0
    slices: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, books: int, seconds: float) -> float:
        self.books += books
        self.seconds += seconds
        rate = books / seconds if seconds else 0.0
        self.slices.append({"books": books, "seconds": round(seconds, 3), "books_per_s": round(rate, 1)})
        return rate

    def to_json(self) -> dict[str, Any]:
        rate = self.books / self.seconds if self.seconds else 0.0
        return {
            "books": self.books,
            "seconds": round(self.seconds, 2),
            "books_per_s": round(rate, 1),
            "slices": self.slices,
        }


async def measure_index_cost(
    base: Settings,
    books: int,
    progress: Progress,
    *,
    variants: Sequence[Variant] = VARIANTS,
    parts: int = SLICES,
) -> dict[str, Any]:
    """Seeder books/s (and row writes/s) into an empty keyspace per variant (KEYSPACE_idx, _noidx, _noterms), each
    emptied again at the end."""
    from seeder.load import DEFAULT_CONCURRENCY, seed

    seeded = list(demo_books(books))
    rows_only = list(demo_books(books, ROW_SEED))
    warmup = list(demo_books(min(WARMUP_BOOKS, books), WARMUP_SEED))
    nodes = len(base.cassandra_hosts)
    libraries: list[Library] = []
    databases: list[Database] = []
    seeder_tally = [_Tally() for _ in variants]
    row_tally = [_Tally() for _ in variants]
    load_start = os.getloadavg()
    try:
        for variant in variants:
            settings = dataclasses.replace(base, keyspace=variant.keyspace(base.keyspace))
            db = await Database.connect(settings)
            databases.append(db)
            libraries.append(await _fresh(db, settings, variant))
            progress(f"index cost: keyspace {settings.keyspace} ({variant.name}) ready; {len(warmup)} books untimed")
            await seed(libraries[-1], users=0, catalogue=warmup, concurrency=DEFAULT_CONCURRENCY)
        cut = slices(books, parts)
        for k, order in enumerate(rounds(len(variants), len(cut))):
            for v, s in order:
                part = [seeded[i] for i in cut[s]]
                result = await seed(libraries[v], users=0, catalogue=part, concurrency=DEFAULT_CONCURRENCY)
                rate = seeder_tally[v].add(result.books, result.seconds)
                progress(
                    f"index cost: round {k + 1}/{len(cut)}  {variants[v].name:<19} seeder {rate:7.1f} books/s "
                    f"({result.books} books, {result.seconds:.1f} s)"
                )
            for v, s in order:
                part = [rows_only[i] for i in cut[s]]
                catalogue = libraries[v].catalogue
                started = time.monotonic()
                await run_bounded(part, catalogue._write_book, DEFAULT_CONCURRENCY)
                rate = row_tally[v].add(len(part), time.monotonic() - started)
                progress(f"index cost: round {k + 1}/{len(cut)}  {variants[v].name:<19} row only {rate:7.1f} rows/s")
        disk: dict[str, Any] = {}
        for variant, db in zip(variants, databases, strict=True):
            ks = db.settings.keyspace
            flushed = await asyncio.to_thread(storage.flush, ks, nodes)
            disk[variant.name] = storage.table_on_disk(ks, "books", nodes) if flushed else None
    finally:
        for db in databases:
            try:
                await _empty(db, db.settings.keyspace)
            except Exception as error:  # the figures are taken; rows left behind are only space, emptied next time
                progress(f"index cost: could not empty {db.settings.keyspace}: {error}")
            db.close()
    reference = next((i for i, v in enumerate(variants) if v.name == REFERENCE), None)

    def ratio(tallies: list[_Tally], i: int) -> float | None:
        if reference is None or not tallies[reference].seconds or not tallies[i].seconds:
            return None
        mine = tallies[i].books / tallies[i].seconds
        theirs = tallies[reference].books / tallies[reference].seconds
        return round(mine / theirs, 3)

    return {
        "books": books,
        "slices": len(slices(books, parts)),
        "concurrency": DEFAULT_CONCURRENCY,
        "reference": REFERENCE,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "variants": [
            {
                "name": variant.name,
                "keyspace": variant.keyspace(base.keyspace),
                "index": variant.index,
                "terms": variant.terms,
                "seeder": seeder_tally[i].to_json(),
                "seeder_ratio": ratio(seeder_tally, i),
                "row_writes": row_tally[i].to_json(),
                "row_writes_ratio": ratio(row_tally, i),
                "disk": disk.get(variant.name),
            }
            for i, variant in enumerate(variants)
        ],
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"index cost: {result['books']:,} books per keyspace in {result['slices']} interleaved slices, "
        f"concurrency {result['concurrency']}; ratio: books/s / '{result['reference']}'",
        f"  {'variant':<19} {'seeder books/s':>14} {'ratio':>6} {'row writes/s':>13} {'ratio':>6} "
        f"{'books on disk':>14}",
    ]
    for v in result["variants"]:
        disk = v.get("disk")
        size = f"{disk['total_bytes'] / 1e6:.1f} MB" if disk else "-"
        seeder_ratio = f"{v['seeder_ratio']:.2f}" if v["seeder_ratio"] is not None else "-"
        row_ratio = f"{v['row_writes_ratio']:.2f}" if v["row_writes_ratio"] is not None else "-"
        lines.append(
            f"  {v['name']:<19} {v['seeder']['books_per_s']:>14.1f} {seeder_ratio:>6} "
            f"{v['row_writes']['books_per_s']:>13.1f} {row_ratio:>6} {size:>14}"
        )
    lines.append(
        f"  load average (1, 5, 15 min): {result['load_average_start']} at the start, "
        f"{result['load_average_end']} at the end"
    )
    return "\n".join(lines)
