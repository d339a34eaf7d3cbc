"""The bench's parts that need no Cassandra: the profile summary, the arithmetic of the search figures, and bad options
as one line with exit status 2 (tests/integration/test_bench.py runs the bench itself at a tiny size)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import uuid4

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType, SimpleStatement
from tool_support import run_in_process, tool_env

from app.models import Book
from bench.statements import kind_of

KEYSPACE = "test_bench"


def test_the_profile_summary_leaves_idle_time_out(tmp_path: Path) -> None:
    from pyinstrument import Profiler

    from bench.profile import top_costs

    profiler = Profiler(interval=0.001)
    profiler.start()
    sum(i * i for i in range(300_000))
    profiler.stop()
    session_file = tmp_path / "s.pyisession"
    profiler.last_session.save(str(session_file))
    summary = top_costs(session_file, tmp_path)
    assert summary["busy_s"] > 0 and summary["self"]
    assert Path(summary["text"]).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "1,x"], "'x' is not a whole number"),
        (["--ops", "0"], "0 must be at least 1"),
        (["--nodes", "both"], "--nodes both needs the local clusters"),
        (["--skip-usual"], "--skip-usual leaves nothing to measure"),
        (["--search", "0"], "0 must be at least 1"),
        (["statements", "--requests", "0"], "0 must be between 1 and 60"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    env = tool_env(["127.0.0.1"], KEYSPACE)
    result = run_in_process(["-m", "bench", *args], env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# -- the search figures (bench.search, bench.index_cost, bench.storage): the pure parts ---------------------------
def _book(title: str, author: str = "Ann Lee", genre: str = "Poetry") -> Book:
    return Book(uuid4(), title, author, genre, 2000)


def test_the_survey_counts_terms_bytes_and_matches() -> None:
    from app.search import search_terms
    from bench.search import Query, survey

    books = [_book("River"), _book("The Silent River", "Mary Simpson", "Mystery"), _book("Ça va", "Zoë Émile")]
    queries = [
        Query("riv", "riv"),
        Query("two words", "silent river"),
        Query("riv in poetry", "riv", "poetry"),
        Query("folded", "emile"),
        Query("browse", ""),
        Query("nothing", "zzz"),
    ]
    result = survey(books, queries)
    counts = sorted(len(search_terms(b)) for b in books)
    assert result.books == 3
    assert (result.terms_p50, result.terms_max) == (counts[1], counts[2])
    assert result.terms_mean == round(sum(counts) / 3, 2)
    # "river ann lee poetry" -> river, ri, riv, rive; ann, an; lee, le; poetry and its 4 prefixes
    assert len(search_terms(books[0])) == 4 + 2 + 2 + 5
    assert result.bytes_total == sum(len(t.encode()) for b in books for t in search_terms(b))
    assert result.matches == {"riv": 2, "two words": 1, "riv in poetry": 1, "folded": 1, "browse": 3, "nothing": 0}


def test_an_empty_catalogue_surveys_to_zeros() -> None:
    from bench.search import survey

    result = survey([])
    assert (result.books, result.terms_max, result.bytes_total) == (0, 0, 0)
    assert set(result.matches.values()) == {0}


def test_what_a_search_should_answer_stops_at_the_bound() -> None:
    from bench.search import expected_page

    assert expected_page(0) == (0, True, 0)
    assert expected_page(92) == (92, True, 20)
    assert expected_page(1000) == (1000, True, 20)
    assert expected_page(1001) == (1000, False, 20)
    assert expected_page(17_181) == (1000, False, 20)


def test_the_bench_queries_match_the_seeded_catalogue_as_their_comments_say() -> None:
    """The query mix is meant to cover a bound-hitting prefix, a narrow surname, a narrowing second word: checked on
    the first 5,000 seeded books, so a change of the demo generator that empties a query is noticed."""
    from app.demo_data import demo_books
    from bench.search import QUERIES, survey

    found = survey(demo_books(5_000)).matches
    assert all(found[q.label] > 0 for q in QUERIES), found
    assert found["browse (empty query)"] == 5_000
    assert found["2-letter prefix 'ma'"] > found["3-letter prefix 'riv'"] > found["two words 'silent river'"]
    assert found["'riv' + genre Poetry"] < found["3-letter prefix 'riv'"]


def test_slices_cover_every_book_once_and_rounds_rotate_the_first_variant() -> None:
    from bench.index_cost import rounds, slices

    cut = slices(10, 4)
    assert [len(r) for r in cut] == [3, 3, 2, 2]
    assert [i for r in cut for i in r] == list(range(10))
    assert slices(2, 4) == [range(0, 1), range(1, 2)]
    order = rounds(3, 4)
    assert [r[0][0] for r in order] == [0, 1, 2, 0]
    assert all(sorted(v for v, _ in r) == [0, 1, 2] and {s for _, s in r} == {k} for k, r in enumerate(order))


def test_sstable_files_are_told_apart_by_index() -> None:
    from bench.storage import component, pending_compactions, sizes

    assert component("da-1-bti-Data.db") == "table"
    assert component("da-1-bti-SAI+aa+books_search_terms+TermsData.db") == "sai:books_search_terms"
    assert component("da-1-bti-SAI+aa+GroupComplete.db") == "sai (per sstable)"
    files = [("da-1-bti-Data.db", 10), ("da-1-bti-SAI+aa+books_genre+Meta.db", 2), ("da-2-bti-Data.db", 5)]
    assert sizes(files) == {"sai:books_genre": 2, "table": 15}
    assert pending_compactions("pending tasks: 3\n") == 3
    assert pending_compactions("pending tasks: 0\n- ks.books: 0\n") == 0
    assert pending_compactions("") == 0


def test_the_peer_table_gives_each_apps_cpu_per_request() -> None:
    import os

    from bench.peer import PeerOptions, _used, render, summarize
    from bench.run import cpu_seconds

    def report(seconds: float, app_cpu: float | None, nodes_cpu: float | None) -> dict[str, object]:
        return {
            "seconds": seconds,
            "size": 100,
            "requests": 200,
            "latency_ms": {"p50": 5.0, "p99": 9.0},
            "violations": [],
            "errors": {},
            "cpu_seconds": {"app": app_cpu, "cassandra": nodes_cpu},
        }

    runs = [
        {"run": 1, "test": 4, "app": "ours", "report": report(2.0, 0.4, 1.0)},
        {"run": 1, "test": 4, "app": "naive", "report": report(4.0, 0.2, None)},
    ]
    rows = summarize(runs, [4])
    assert rows[0]["ours"]["cpu_ms_per_request"]["app"]["median"] == pytest.approx(2.0)  # 0.4 s over 200 requests
    assert rows[0]["ours"]["cpu_ms_per_request"]["cassandra"]["median"] == pytest.approx(5.0)
    assert rows[0]["naive"]["cpu_ms_per_request"]["cassandra"] is None  # not readable: left out, not zero
    text = render(rows, PeerOptions(100, 4, 1, [4], "k", 10, None))
    assert "CPU per request: app 2.00 [2.00-2.00] ms, cassandra 5.00 [5.00-5.00] ms" in text
    assert "ratio ours / naive 2.00" in text
    assert _used([1.0, 2.0], [1.5, 3.0]) == pytest.approx(1.5)
    assert _used([1.0], [None]) is None and _used([], []) is None
    used = cpu_seconds(os.getpid())
    assert used is not None and used > 0
    assert cpu_seconds(2**22 + 12345) is None  # above the kernel's pid limit: no such process


def test_the_report_puts_each_peer_run_against_the_issues_targets(tmp_path: Path) -> None:
    from bench.report import main as report_main

    kept = Path(__file__).parents[2] / "docs" / "bench"
    status = asyncio.run(
        report_main(
            [
                f"before={kept / 'before.json'}",
                "--peer",
                f"first={kept / 'issue21' / 'peer-before.json'}",
                "--out",
                str(tmp_path),
            ]
        )
    )
    assert status == 0
    page = (tmp_path / "performance.md").read_text()
    assert "## This service against the naive peer" in page and "![peer-ratios.png](peer-ratios.png)" in page
    assert "| 4 two readers cancel and re-reserve the same book | 21.0 [16.8-23.5] | 19.1 [18.7-19.7] | 1.07" in page
    assert (tmp_path / "peer-ratios.png").stat().st_size > 0


def test_each_statement_is_counted_as_the_kind_it_costs_like() -> None:
    assert kind_of("SELECT state FROM ks.reservation_by_book_id WHERE book_id = ?") == "read"
    assert kind_of("SELECT state FROM ks.reservation_by_book_id WHERE book_id = ?", ConsistencyLevel.SERIAL) == (
        "read at SERIAL"
    )
    assert kind_of("SELECT state FROM ks.reservation_by_book_id WHERE book_id IN ?") == "read of many keys"
    assert kind_of("SELECT title FROM ks.books LIMIT 101") == "range read"
    assert kind_of("SELECT title FROM ks.books WHERE token(book_id) > ? LIMIT 101") == "range read"
    assert kind_of("SELECT * FROM ks.locks WHERE token(book_id) >= ? AND token(book_id) <= ? AND state = 'held'") == (
        "range read"
    )
    assert kind_of("SELECT title FROM ks.books WHERE search_terms CONTAINS ?") == "range read"
    assert kind_of("UPDATE ks.reservation_by_book_id SET state = 'held' WHERE book_id = ? IF state = 'free'") == (
        "transaction"
    )
    assert kind_of("INSERT INTO ks.reservation_by_book_id (book_id) VALUES (?) IF NOT EXISTS") == "transaction"
    assert kind_of(SimpleStatement("DELETE FROM ks.reservations USING TIMESTAMP ? WHERE reservation_id = ?")) == (
        "write"
    )
    assert kind_of(BatchStatement(batch_type=BatchType.LOGGED)) == "logged batch"
    assert kind_of(BatchStatement(batch_type=BatchType.UNLOGGED)) == "unlogged batch"
