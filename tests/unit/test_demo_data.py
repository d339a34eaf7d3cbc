"""The one generator of made-up books and readers (app.demo_data): the app's demo catalogue and the seeder's data
are the same rows. No database: the app's demo seeding is run against a stand-in for the repository."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, cast
from uuid import UUID

from app.demo_data import DEFAULT_SEED, DEMO_BOOKS, DEMO_READERS, book_id_for, demo_books, demo_readers, seed_if_empty
from app.models import Page
from app.repository import Library
from seeder.__main__ import parser as seeder_parser


class RecordingLibrary:
    """Just what seed_if_empty calls of Library."""

    def __init__(self, books: list[Any] | None = None) -> None:
        self.books: list[tuple[Any, ...]] = list(books or [])
        self.users: list[tuple[Any, ...]] = []

    async def list_books(self, *, page_size: int) -> Page[Any]:
        return Page(self.books[:page_size])

    async def list_users(self, *, page_size: int) -> Page[Any]:
        return Page(self.users[:page_size])

    async def create_book(
        self, title: str, author: str, genre: str, published_year: int | None, book_id: UUID | None = None
    ) -> None:
        self.books.append((book_id, title, author, genre, published_year))

    async def import_user(self, name: str, email: str, user_id: int) -> None:
        self.users.append((user_id, name, email))


def test_the_same_seed_makes_the_same_rows_and_a_larger_run_extends_a_smaller_one() -> None:
    assert list(demo_books(30, 5)) == list(demo_books(30, 5))
    assert list(demo_books(10, 5)) == list(demo_books(30, 5))[:10]
    assert list(demo_readers(4, 5)) == list(demo_readers(9, 5))[:4]
    assert {b.book_id for b in demo_books(10, 5)}.isdisjoint(b.book_id for b in demo_books(10, 6))
    assert [b.book_id for b in demo_books(3, 5)] == [book_id_for(5, i) for i in range(3)]
    assert [r.user_id for r in demo_readers(3, 5)] == [1, 2, 3]


def test_books_read_like_a_catalogue() -> None:
    books = list(demo_books(DEMO_BOOKS))
    authors = Counter(b.author for b in books)
    assert len(authors) < DEMO_BOOKS // 2, "authors write several books, so following one finds more"
    assert len({b.genre for b in books}) >= 8
    assert all(b.title and 1850 <= (b.published_year or 0) <= 2024 for b in books)
    assert all("@" in r.email for r in demo_readers(DEMO_READERS))


def test_titles_take_the_article_their_noun_needs() -> None:
    titles = [b.title for b in demo_books(2000)]
    assert not [t for t in titles if re.match(r"A [AEIOU]", t)], "a vowel takes “An”: “An Orchard in May”"
    assert not [t for t in titles if re.match(r"An [^AEIOU]", t)]
    assert any(t.startswith("An Orchard in ") for t in titles) and any(t.startswith("A Harbor in ") for t in titles)


async def test_the_app_demo_is_what_the_seeder_writes_by_default() -> None:
    library = RecordingLibrary()
    assert await seed_if_empty(cast(Library, library))
    assert library.books == [
        (b.book_id, b.title, b.author, b.genre, b.published_year) for b in demo_books(DEMO_BOOKS, DEFAULT_SEED)
    ]
    assert library.users == [(r.user_id, r.name, r.email) for r in demo_readers(DEMO_READERS, DEFAULT_SEED)]
    assert [u[0] for u in library.users] == list(range(1, DEMO_READERS + 1))
    assert seeder_parser().parse_args([]).seed == DEFAULT_SEED


async def test_the_demo_is_written_into_an_empty_database_only() -> None:
    library = RecordingLibrary(books=["a book already there"])
    assert not await seed_if_empty(cast(Library, library))
    assert library.books == ["a book already there"] and library.users == []
