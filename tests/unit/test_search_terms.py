"""The pure rules of catalogue search (app/search.py): terms, query words, sorting, facets and pages."""

from __future__ import annotations

import uuid

import pytest

from app.models import Book, InvalidInput
from app.search import (
    MAX_QUERY_WORDS,
    MAX_TERM,
    Sort,
    facet,
    fold,
    page_of,
    query_terms,
    search_terms,
    sort_books,
)


def book(title: str, author: str = "Kimberly Evans", genre: str = "Fiction", year: int | None = 2000) -> Book:
    return Book(uuid.uuid4(), title, author, genre, year)


def test_fold_removes_case_and_accents() -> None:
    assert fold("Évans") == "evans"
    assert fold("STRAßE") == "strasse"
    assert fold("Søren Kierkegaard") == "soren kierkegaard"
    assert fold("Ærø") == "aero"


def test_a_book_is_found_by_words_and_prefixes_of_title_author_and_genre() -> None:
    terms = search_terms(book("Rivers of the Night", "Kimberly Évans", "Science fiction"))
    for typed in ("riv", "river", "rivers", "night", "ni", "evans", "ev", "kimberly", "science", "sci", "fiction"):
        assert typed in terms
    assert "r" not in terms  # a prefix starts at two letters
    assert "iver" not in terms  # beginnings of words, not middles


def test_a_long_word_is_cut_and_a_long_query_word_is_cut_the_same_way() -> None:
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis"
    terms = search_terms(book(word))
    assert max(len(t) for t in terms) == MAX_TERM
    assert query_terms(word) == [word.lower()[:MAX_TERM]]
    assert query_terms(word)[0] in terms


def test_query_words_are_folded_and_every_one_must_match() -> None:
    assert query_terms("River  NIGHT river") == ["river", "night"]
    assert query_terms("Évans") == ["evans"]
    assert query_terms("a river") == ["river"]
    assert query_terms("volume 3") == ["volume", "3"]
    assert query_terms("j") == ["j"]
    assert query_terms("  ,.;  ") == []


def test_too_many_words_is_a_sentence() -> None:
    with pytest.raises(InvalidInput, match="at most"):
        query_terms(" ".join(f"word{i}" for i in range(MAX_QUERY_WORDS + 1)))


def test_sort_orders() -> None:
    a = book("apple", "Zed Adams", year=1990)
    b = book("Banana", "Amy Young", year=None)
    c = book("Éclair", "Bob Brown", year=2020)
    assert sort_books([c, b, a], Sort.TITLE) == [a, b, c]
    assert sort_books([c, b, a], Sort.AUTHOR) == [a, c, b]  # by surname: Adams, Brown, Young
    assert sort_books([a, b, c], Sort.NEWEST) == [c, a, b]  # no year last
    assert sort_books([c, b, a], Sort.OLDEST) == [a, c, b]


def test_sort_parses_or_says_what_it_accepts() -> None:
    assert Sort.parse(None) is Sort.TITLE
    assert Sort.parse("newest") is Sort.NEWEST
    with pytest.raises(InvalidInput, match="Title \\(A–Z\\)"):
        Sort.parse("price")


def test_facets_count_values_alike_in_case_and_accents_as_one() -> None:
    books = [book("x", genre="Poetry"), book("y", genre="poetry"), book("z", genre="Drama")]
    assert [(f.value, f.count) for f in facet(books, "genre")] == [("Poetry", 2), ("Drama", 1)]


def test_pages_never_end_empty_and_a_page_beyond_the_last_is_the_last() -> None:
    books = [book(f"Title {i:02}") for i in range(45)]
    first = page_of(books, bound=1000, order=Sort.TITLE, page=1, page_size=20)
    assert (first.total, first.exact, first.pages, first.has_previous, first.has_next) == (45, True, 3, False, True)
    last = page_of(books, bound=1000, order=Sort.TITLE, page=99, page_size=20)
    assert last.page == 3 and len(last.books) == 5 and not last.has_next and last.has_previous
    assert (last.first_number, last.last_number) == (41, 45)
    exactly_full = page_of(books[:40], bound=1000, order=Sort.TITLE, page=3, page_size=20)
    assert exactly_full.pages == 2 and exactly_full.page == 2 and len(exactly_full.books) == 20
    nothing = page_of([], bound=1000, order=Sort.TITLE, page=5, page_size=20)
    assert (nothing.page, nothing.pages, nothing.books, nothing.first_number) == (1, 1, [], 0)


def test_more_than_the_bound_is_not_an_exact_count() -> None:
    books = [book(f"T{i}") for i in range(11)]
    result = page_of(books, bound=10, order=Sort.TITLE, page=1, page_size=20)
    assert result.total == 10 and not result.exact and len(result.books) == 10
