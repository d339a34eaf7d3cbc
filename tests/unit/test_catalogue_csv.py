"""The catalogue CSV reader, without Cassandra: every problem of a file is named by line and column, and a wrong
header says which columns are missing and which are unknown (tests/integration/test_seeder.py imports files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seeder import CatalogueError, read_catalogue

HEADER = "book_id,title,author,genre,published_year\n"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not-a-uuid,Dune,Frank Herbert,SF,1965\n", "line 2, column book_id: 'not-a-uuid' is not a UUID"),
        (",Dune,Frank Herbert,SF,nineteen\n", "line 2, column published_year: 'nineteen' is not a whole year"),
        (",Dune,Frank Herbert,SF,1965\n,,Anon,SF,1900\n", "line 3, column title: must not be empty"),
        (",Dune,Frank Herbert,SF\n", "line 2: 4 fields, the header has 5"),
        (
            "0b8f9f0e-8f43-4c8a-9f3e-0a1d2b3c4d5e,A,B,C,1\n0b8f9f0e-8f43-4c8a-9f3e-0a1d2b3c4d5e,D,E,F,2\n",
            "line 3, column book_id: 0b8f9f0e-8f43-4c8a-9f3e-0a1d2b3c4d5e already appears on line 2",
        ),
    ],
)
def test_csv_problems_name_line_and_column(body: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_text(HEADER + body)
    with pytest.raises(CatalogueError) as caught:
        read_catalogue(path)
    assert f"catalogue.csv {problem}" in caught.value.problems


def test_csv_with_a_wrong_header(tmp_path: Path) -> None:
    path = tmp_path / "books.csv"
    path.write_text("id,title,author,genre,year\n")
    with pytest.raises(CatalogueError) as caught:
        read_catalogue(path)
    assert caught.value.problems == [
        "books.csv line 1: the header must be book_id,title,author,genre,published_year "
        "(missing column(s) book_id, published_year; unknown column(s) id, year)"
    ]
