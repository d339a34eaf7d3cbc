"""The seeder on real Cassandra: the same seed twice writes the same rows (nothing duplicated), and a catalogue
CSV is imported whole, or, if any line is wrong, not at all with the line and column named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest
from tool_support import fresh_keyspace, run_tool, tool_env

from app.db import Database
from app.demo_data import demo_books, demo_readers
from app.repository import Library
from app.settings import Settings
from seeder import seed

KEYSPACE = "test_seeder"
HEADER = "book_id,title,author,genre,published_year\n"


@pytest.fixture(scope="module")
async def seeder_db(settings: Settings) -> AsyncIterator[Database]:
    db = await fresh_keyspace(settings, KEYSPACE)
    yield db
    db.close()


async def count(db: Database, table: str) -> int:
    return (await db.execute_raw(f"SELECT count(*) FROM {KEYSPACE}.{table}")).one().count


async def test_seeding_twice_duplicates_nothing(seeder_db: Database) -> None:
    library = Library(seeder_db)
    first = await seed(library, books=40, users=10, seed=7)
    again = await seed(library, books=40, users=10, seed=7)
    assert (first.books, first.users) == (again.books, again.users) == (40, 10)
    assert await count(seeder_db, "books") == 40
    assert await count(seeder_db, "users") == 10
    book = next(iter(demo_books(1, 7)))
    assert (await library.get_book(book.book_id)).title == book.title
    assert (await library.get_user(1)).name == next(iter(demo_readers(1, 7))).name

    # Another seed is another catalogue; readers keep their card numbers 1..N.
    await seed(library, books=5, users=10, seed=8)
    assert await count(seeder_db, "books") == 45
    assert await count(seeder_db, "users") == 10


async def test_csv_import_through_the_command(seeder_db: Database, cassandra_hosts: list[str], tmp_path: Path) -> None:
    given = UUID("0b8f9f0e-8f43-4c8a-9f3e-0a1d2b3c4d5e")
    path = tmp_path / "catalogue.csv"
    path.write_text(
        HEADER + f"{given},Dune,Frank Herbert,Science Fiction,1965\n"
        ',"War and Peace, Volume 1",Leo Tolstoy,Historical Fiction,\n'
        "\n"
    )
    env = tool_env(cassandra_hosts, KEYSPACE)
    before = await count(seeder_db, "books")
    for _ in range(2):  # the second import rewrites the same two rows
        result = await asyncio.to_thread(run_tool, ["-m", "seeder", "--csv", str(path), "--users", "0"], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"seeded 2 books and 0 users into keyspace {KEYSPACE} in ")
        assert "rows/s" in result.stdout
    assert await count(seeder_db, "books") == before + 2
    dune = await Library(seeder_db).get_book(given)
    assert (dune.title, dune.author, dune.genre, dune.published_year) == (
        "Dune",
        "Frank Herbert",
        "Science Fiction",
        1965,
    )


def test_a_bad_csv_imports_nothing_and_says_why(cassandra_hosts: list[str], tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_text(HEADER + ",Dune,Frank Herbert,SF,1965\n,Emma,Jane Austen,,1815\n")
    # No database is touched: the file is checked before connecting, so even an unreachable host is fine.
    result = run_tool(
        ["-m", "seeder", "--csv", str(path), "--hosts", "127.0.0.254"], tool_env(cassandra_hosts, KEYSPACE)
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: catalogue.csv line 3, column genre: must not be empty",
        f"error: {path}: nothing was imported",
    ]
    assert result.stdout == ""


def test_csv_and_books_together_are_refused(cassandra_hosts: list[str], tmp_path: Path) -> None:
    result = run_tool(["-m", "seeder", "--csv", "x.csv", "--books", "3"], tool_env(cassandra_hosts, KEYSPACE))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: give either --books or --csv, not both"
