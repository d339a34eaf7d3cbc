"""Reading a catalogue file of the earlier system (`book_id,title,author,genre,published_year`).

The whole file is checked before anything is written, so a bad file imports nothing rather than half of
itself. Every problem is reported with its line and column, the way a person would look it up.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID, uuid5

from app.models import Book
from app.rules import MIN_YEAR, latest_year, max_length, year_in_range

COLUMNS = ("book_id", "title", "author", "genre", "published_year")
MAX_ERRORS_SHOWN = 20
# Rows without a book_id get one derived from their content, so importing the same file twice adds nothing.
CONTENT_ID_NAMESPACE = UUID("0c0e6a55-8a7d-5f34-b1f6-3e2d1c9b8a70")


class CatalogueError(Exception):
    """The file cannot be imported; `problems` holds one line per problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if problems else "the catalogue cannot be imported")
        self.problems = problems


def read_catalogue(path: Path) -> list[Book]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse(path.name, handle)
    except FileNotFoundError as error:
        raise CatalogueError([f"{path}: no such file"]) from error
    except IsADirectoryError as error:
        raise CatalogueError([f"{path}: is a directory, not a CSV file"]) from error
    except UnicodeDecodeError as error:
        raise CatalogueError([f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"]) from error
    except OSError as error:
        raise CatalogueError([f"{path}: {error.strerror}"]) from error


def _parse(name: str, lines: Iterable[str]) -> list[Book]:
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise CatalogueError([f"{name} line 1: {error}"]) from error
    if header is None:
        raise CatalogueError([f"{name}: the file is empty; expected the header {','.join(COLUMNS)}"])
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        detail = "; ".join(
            part
            for part in (
                f"missing column(s) {', '.join(missing)}" if missing else "",
                f"unknown column(s) {', '.join(unknown)}" if unknown else "",
                "a column appears twice" if len(set(header)) != len(header) else "",
            )
            if part
        )
        raise CatalogueError([f"{name} line 1: the header must be {','.join(COLUMNS)} ({detail})"])

    problems: list[str] = []
    books: list[Book] = []
    first_line_of: dict[UUID, int] = {}
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(f"{name} line {reader.line_num}: {error}")
            break  # the reader cannot resynchronise after broken quoting
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # blank lines, common at the end of hand-edited files
        if len(fields) != len(header):
            problems.append(f"{name} line {line}: {len(fields)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, fields, strict=True))
        book, row_problems = _book(row)
        problems.extend(f"{name} line {line}, column {column}: {message}" for column, message in row_problems)
        if book is None:
            continue
        if book.book_id in first_line_of:
            problems.append(
                f"{name} line {line}, column book_id: {book.book_id} already appears on line "
                f"{first_line_of[book.book_id]}"
            )
            continue
        first_line_of[book.book_id] = line
        books.append(book)
    if problems:
        raise CatalogueError(problems)
    return books


def _book(row: dict[str, str]) -> tuple[Book | None, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    texts: dict[str, str] = {}
    for column in ("title", "author", "genre"):
        value = row[column].strip()
        if not value:
            problems.append((column, "must not be empty"))
        elif len(value) > max_length(column):
            problems.append((column, f"is {len(value)} characters long; at most {max_length(column)} are allowed"))
        texts[column] = value

    year: int | None = None
    raw_year = row["published_year"].strip()
    if raw_year:
        try:
            year = int(raw_year)
        except ValueError:
            problems.append(("published_year", f"{raw_year!r} is not a whole year"))
        else:
            if not year_in_range(year):
                problems.append(("published_year", f"{year} is outside {MIN_YEAR}..{latest_year()}"))

    raw_id = row["book_id"].strip()
    book_id: UUID | None = None
    if raw_id:
        try:
            book_id = UUID(raw_id)
        except ValueError:
            problems.append(("book_id", f"{raw_id!r} is not a UUID"))
    if problems:
        return None, problems
    if book_id is None:
        book_id = uuid5(CONTENT_ID_NAMESPACE, "\x1f".join((texts["title"], texts["author"], raw_year)))
    return Book(book_id, texts["title"], texts["author"], texts["genre"], year), []
