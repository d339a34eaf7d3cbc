"""The pure rules of search (app/search.py): terms of books and readers, query words and what a page makes of a
typed query, sorting, facets and numbered pages of the catalogue and of the staff's lists."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.models import Book, InvalidInput, Reservation, User
from app.search import (
    FACET_SIZE,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_TERM,
    ReservationOrder,
    Sort,
    TypedQuery,
    facet,
    fold,
    numbered,
    page_of,
    query_terms,
    reader_terms,
    search_terms,
    sort_books,
    sort_readers,
    sort_reservations,
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


def test_a_read_that_found_more_stays_not_exact_after_filtering() -> None:
    # "Available now": the read found more than the bound, the filter left 3; 3 is not the whole answer.
    left = [book(f"T{i}") for i in range(3)]
    result = page_of(left, bound=10, order=Sort.TITLE, page=1, page_size=20, more=True, looked_at=10)
    assert (result.total, result.exact, result.looked_at, len(result.books)) == (3, False, 10, 3)
    assert page_of(left, bound=10, order=Sort.TITLE, page=1, page_size=20).exact


def test_facets_keep_every_value_with_its_count() -> None:
    books = [book(f"t{i}", author=f"Author {i:02}") for i in range(18)] + [book("x", author="Author 05")]
    authors = facet(books, "author")
    assert len(authors) == 18 > FACET_SIZE  # every author, none cut: the page shows the rest behind "Show all"
    assert (authors[0].value, authors[0].count) == ("Author 05", 2)
    assert sum(f.count for f in authors) == 19


def test_a_reader_is_found_by_the_words_of_name_and_e_mail_and_their_beginnings() -> None:
    terms = reader_terms("Rosa María Reader", "rosa.reader@example.org")
    for typed in ("ro", "ros", "rosa", "maria", "mar", "reader", "rea", "example", "exa", "org"):
        assert typed in terms
    # The address as typed, or its beginning, is its words: each one a term.
    for typed in ("rosa.reader@example.org", "rosa.reader@exa", "Rosa.R", "ROSA READ"):
        assert set(query_terms(typed)) <= terms, typed
    assert "r" not in terms and "eader" not in terms


def test_a_typed_query_is_cut_and_said_so_never_refused() -> None:
    assert TypedQuery.of("  river  ") == TypedQuery("river")
    long = TypedQuery.of("x" * (MAX_QUERY_CHARS + 100))
    assert long.cut and len(long.text) == MAX_QUERY_CHARS
    many = TypedQuery.of(" ".join(f"word{i}" for i in range(MAX_QUERY_WORDS + 3)))
    assert many.dropped == 3 and len(many.terms) == MAX_QUERY_WORDS
    assert TypedQuery.of(None) == TypedQuery("")


def test_what_holds_no_word_is_not_searched_at_all() -> None:
    for typed in ("!!!", "—", "@", " - / "):
        query = TypedQuery.of(typed)
        assert query.wordless and query.unsearchable and query.searched == "", typed
    for typed in ("", "   ", "ri", "12", "j"):
        assert not TypedQuery.of(typed).wordless, typed
    assert TypedQuery.of("j").unsearchable and not TypedQuery.of("ri").unsearchable


def test_one_letter_is_too_short_to_search_but_a_digit_is_not() -> None:
    for typed in ("j", "J", "é", "a b"):
        assert TypedQuery.of(typed).too_short and TypedQuery.of(typed).terms == [], typed
    for typed in ("jo", "3", "a river", ""):
        assert not TypedQuery.of(typed).too_short, typed
    assert TypedQuery.of("a river").searched == "river"


def test_numbered_pages_of_any_list() -> None:
    items = list(range(45))
    second = numbered(items, bound=1000, page=2, page_size=20)
    assert (second.items, second.total, second.exact, second.pages) == (list(range(20, 40)), 45, True, 3)
    assert second.has_previous and second.has_next and (second.first_number, second.last_number) == (21, 40)
    over = numbered(list(range(11)), bound=10, page=1, page_size=20)
    assert over.total == 10 and not over.exact


def test_newest_first_reads_a_naive_time_as_utc_whatever_the_machines_time_zone() -> None:
    book = uuid.uuid4()
    naive = Reservation(uuid.uuid4(), book, 1, datetime(2026, 3, 1, 12, 0))  # UTC, as Cassandra gives it back
    aware = Reservation(uuid.uuid4(), book, 1, datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=1))))
    assert sort_reservations([aware, naive], ReservationOrder.NEWEST) == [naive, aware]


def test_readers_are_filed_by_surname() -> None:
    a = User(3, "Zoe Adams", "z@example.org", None)
    b = User(1, "Amy Young", "a@example.org", None)
    c = User(2, "Bob Évans", "b@example.org", None)
    d = User(4, "Ann Adams", "n@example.org", None)
    assert [u.user_id for u in sort_readers([b, c, a, d])] == [4, 3, 2, 1]


def test_reservations_newest_first_or_by_title() -> None:
    books = [uuid.uuid4() for _ in range(3)]
    old = Reservation(uuid.uuid4(), books[0], 1, datetime(2026, 1, 1))
    new = Reservation(uuid.uuid4(), books[1], 1, datetime(2026, 3, 1))
    gone = Reservation(uuid.uuid4(), books[2], 1, datetime(2026, 2, 1))
    titles = {books[0]: "Apple", books[1]: "Éclair"}  # the third book was deleted
    assert sort_reservations([old, gone, new], ReservationOrder.NEWEST, titles) == [new, gone, old]
    assert sort_reservations([new, gone, old], ReservationOrder.TITLE, titles) == [old, new, gone]
    assert ReservationOrder.parse("title") is ReservationOrder.TITLE
    assert ReservationOrder.parse("price") is ReservationOrder.NEWEST  # a hand-edited address: the default
