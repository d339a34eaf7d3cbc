"""The catalogue's search on Cassandra's own indexes (app/search.py), in a seeded catalogue of its own keyspace:
what readers type ("riv", "evans", "Évans", "river night") finds what they expect, and only that; several words
narrow; facets, sort and count are over the whole result, pages end without an empty one; the terms follow
every write of the book (edit, delete)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from tool_support import fresh_keyspace

from app.models import Book
from app.repository import Library
from app.search import Sort, words
from app.settings import Settings
from seeder.load import seed

KEYSPACE = "test_search"
SEEDED_BOOKS = 400

# Books a reader has in mind, added to the seeded catalogue: (title, author, genre, year).
KNOWN = [
    ("The River at Night", "Erica Ferencik", "Thriller", 2017),
    ("Night Rivers", "Kimberly Evans", "Poetry", 2001),
    ("Riverside Gardens", "Kimberly Évans", "Gardening", 1999),
    ("A Winter Night", "Tom Devans", "Fiction", 2010),
    ("Driving Lessons", "Ana Rivera", "Comedy", 1985),
    ("The Quiet River", "Ann Lee", "Thriller", None),
]


@pytest.fixture(scope="module")
async def catalogue(settings: Settings) -> AsyncIterator[tuple[Library, dict[str, Book]]]:
    db = await fresh_keyspace(settings, KEYSPACE)
    library = Library(db)
    await seed(library, books=SEEDED_BOOKS, users=0)
    known = {}
    for title, author, genre, year in KNOWN:
        known[title] = await library.create_book(title, author, genre, year)
    yield library, known
    db.close()


def titles(books: list[Book]) -> set[str]:
    return {b.title for b in books}


def matches(book: Book, typed: str) -> bool:
    """The rule, said independently of the index: each typed word begins a word of title, author or genre."""
    found = words(f"{book.title} {book.author} {book.genre}")
    return all(any(w.startswith(t) for w in found) for t in words(typed))


async def everything(library: Library, q: str, **filters: str) -> list[Book]:
    result = await library.search_books(q, page_size=200, **filters)
    assert result.exact and result.pages == 1
    return result.books


# "Driving Lessons" is by Ana Rivera: found by its author, not by "driving" (a word's middle never matches).
RIV = {"The River at Night", "Night Rivers", "Riverside Gardens", "The Quiet River", "Driving Lessons"}


@pytest.mark.parametrize(
    ("typed", "expected", "not_expected"),
    [
        ("riv", RIV, set()),
        ("evans", {"Night Rivers", "Riverside Gardens"}, {"A Winter Night"}),
        ("Évans", {"Night Rivers", "Riverside Gardens"}, {"A Winter Night"}),
        ("EVAN", {"Night Rivers", "Riverside Gardens"}, {"A Winter Night"}),  # a beginning, not a middle
        ("river night", {"The River at Night", "Night Rivers"}, {"Riverside Gardens", "A Winter Night"}),
        ("thriller riv", {"The River at Night", "The Quiet River"}, {"Night Rivers"}),
    ],
)
async def test_what_readers_type_finds_what_they_expect(
    catalogue: tuple[Library, dict[str, Book]], typed: str, expected: set[str], not_expected: set[str]
) -> None:
    library, _ = catalogue
    found = await everything(library, typed)
    assert expected <= titles(found)
    assert not (not_expected & titles(found))
    wrong = [b for b in found if not matches(b, typed)]
    assert not wrong, f"{typed!r} found books it should not: {wrong[:3]}"


async def test_the_index_finds_every_match_a_full_read_finds(catalogue: tuple[Library, dict[str, Book]]) -> None:
    """Nothing is missed: against the whole catalogue read without the index, for prefixes of seeded words."""
    library, _ = catalogue
    whole = []
    page = None
    while True:
        got = await library.list_books(page_size=200, page=page)
        whole += got.items
        page = got.next_page
        if not page:
            break
    assert len(whole) == SEEDED_BOOKS + len(KNOWN)
    samples = sorted({w[:3] for b in whole[:40] for w in words(b.title) if len(w) >= 3})[:12]
    for typed in samples:
        expected = {b.book_id for b in whole if matches(b, typed)}
        found = await library.search_books(typed, bound=2000, page_size=200)
        assert found.total == len(expected), typed
        assert {b.book_id for b in await all_pages(library, typed)} == expected, typed


async def all_pages(library: Library, typed: str) -> list[Book]:
    books, page = [], 1
    while True:
        result = await library.search_books(typed, page=page, page_size=50, bound=2000)
        assert result.books, "no page of a search is empty"
        books += result.books
        if not result.has_next:
            return books
        page += 1


async def test_facets_sort_count_and_pages(catalogue: tuple[Library, dict[str, Book]]) -> None:
    library, _ = catalogue
    result = await library.search_books("riv", sort=Sort.NEWEST, page_size=2)
    assert result.total >= 5 and result.exact and result.pages == -(-result.total // 2)
    assert ("Thriller", 2) in [(f.value, f.count) for f in result.genres] or any(
        f.value == "Thriller" and f.count >= 2 for f in result.genres
    )
    years = [b.published_year for b in await all_pages_sorted(library, "riv", Sort.NEWEST)]
    known_years = [y for y in years if y is not None]
    assert known_years == sorted(known_years, reverse=True) and years[-1] is None  # no year comes last
    narrowed = await library.search_books("riv", genre="thriller")
    assert titles(narrowed.books) >= {"The River at Night", "The Quiet River"}
    assert all(b.genre == "Thriller" for b in narrowed.books)
    beyond = await library.search_books("riv", page=999, page_size=2)
    assert beyond.page == beyond.pages and beyond.books  # the last page, never an empty one
    capped = await library.search_books("", bound=50)
    assert capped.total == 50 and not capped.exact  # "more than 50"


async def all_pages_sorted(library: Library, typed: str, order: Sort) -> list[Book]:
    books, page = [], 1
    while True:
        result = await library.search_books(typed, sort=order, page=page, page_size=3)
        books += result.books
        if not result.has_next:
            return books
        page += 1


async def test_the_terms_follow_every_write_of_the_book(settings: Settings) -> None:
    db = await fresh_keyspace(dataclasses.replace(settings), KEYSPACE + "_writes")
    try:
        library = Library(db)
        book = await library.create_book("Orchard Keeper", "Cormac Mc", "Novel", 1965)
        assert titles((await library.search_books("orch")).books) == {"Orchard Keeper"}
        await library.update_book(book.book_id, title="Blood Meridian")
        assert not (await library.search_books("orch")).books
        assert titles((await library.search_books("meridian cormac")).books) == {"Blood Meridian"}
        await library.delete_book(book.book_id)
        assert not (await library.search_books("meridian")).books
    finally:
        db.close()
