"""The pages' words (app/web/wording.py): refusals without field names or ids, books by their titles, dates as
the library says them, counts that agree, what a search did with what was typed, a book's history."""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import pytest

from app.models import (
    Book,
    BookEvent,
    Conflict,
    ConflictKind,
    Forbidden,
    InvalidInput,
    LibraryError,
    NotFound,
    UnknownBook,
)
from app.rules import check_email, check_text, check_year
from app.search import MAX_QUERY_CHARS, TypedQuery, query_terms
from app.web.parsing import parse_uuid
from app.web.wording import (
    PAGE_EXPIRED,
    card_words,
    count,
    error_words,
    history_words,
    query_notes,
    too_many_books,
    too_many_readers,
    too_short,
    unsearchable,
    when,
)

BOOK = UUID("11111111-2222-3333-4444-555555555555")
RESERVATION = UUID("66666666-7777-8888-9999-000000000000")
DUNE = Book(BOOK, "Dune", "Frank Herbert", "Science fiction", 1965)
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-", re.I)


def refused(check: object, *args: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        check(*args)  # type: ignore[operator]
    return caught.value


def test_a_conflict_names_the_book_by_its_title_from_the_fields() -> None:
    assert error_words(Conflict.book_held(BOOK), book=DUNE) == "“Dune” is already reserved by another reader."
    assert error_words(Conflict.book_held_by_caller(BOOK, RESERVATION), book=DUNE) == "You already hold “Dune”."
    reworded = Conflict("taken", kind=ConflictKind.BOOK_HELD, book_id=BOOK)  # the sentence is never read
    assert error_words(reworded, book=DUNE) == "“Dune” is already reserved by another reader."


def test_a_refused_move_says_the_reservation_is_unchanged() -> None:
    assert (
        error_words(Conflict.book_held(BOOK), book=DUNE, moving=True)
        == "“Dune” is already reserved by another reader; your reservation is unchanged."
    )
    assert "not moved" in error_words(Conflict.reservation_changed(RESERVATION), book=DUNE, moving=True)


def test_a_conflict_about_another_book_does_not_borrow_this_ones_title() -> None:
    other = UUID(int=7)
    assert error_words(Conflict.book_held(other), book=DUNE) == "That book is already reserved by another reader."


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (refused(check_text, "x" * 400, "q"), "Your search can be at most 300 characters long."),
        (refused(check_text, " ", "title"), "The title cannot be empty."),
        (refused(check_email, "nobody"), "The e-mail address must look like name@example.org."),
        (refused(check_year, 99999), "The year must be a year such as 1999, not in the future."),
        (refused(parse_uuid, "nope", "book_id"), "The book's address is not one this library gave out."),
        (refused(query_terms, " ".join(f"w{i}" for i in range(20))), "Search for at most 8 words at a time."),
        (InvalidInput("page is not a page token", field="page"), PAGE_EXPIRED),
        (UnknownBook(BOOK), "That book is no longer in the catalogue."),
        (NotFound.reservation(RESERVATION), "That reservation no longer exists: it may have been cancelled already."),
        (Forbidden.not_owner(RESERVATION), "That reservation belongs to another reader."),
        (
            Conflict.book_in_use(BOOK, RESERVATION),
            "That book is reserved or readers are in its queue, so it cannot be deleted yet.",
        ),
    ],
)
def test_refusals_in_a_readers_words(error: LibraryError, expected: str) -> None:
    words = error_words(error)
    assert words == expected
    assert not UUID_TEXT.search(words)


def test_no_error_the_domain_can_raise_shows_an_id() -> None:
    errors = [
        NotFound.reservation_cancelled(RESERVATION),
        NotFound.reservation_cancelled_while_changed(RESERVATION),
        NotFound.book_or_reader(BOOK, 3),
        Conflict.book_was_held(BOOK),
        Conflict.reservation_changed(RESERVATION),
        Conflict.reader_in_use(3),
        LibraryError(f"something about {BOOK}"),
    ]
    for error in errors:
        assert not UUID_TEXT.search(error_words(error)), error


def test_dates_read_as_the_library_says_them_in_its_time_zone() -> None:
    stored = datetime(2026, 11, 23, 14, 5, 59)  # naive UTC, as Cassandra returns a timestamp
    assert when(stored, "UTC") == "23 November 2026, 14:05"
    assert when(stored, "Europe/Helsinki") == "23 November 2026, 16:05"
    assert when(datetime(2026, 7, 1, 23, 30), "America/New_York") == "1 July 2026, 19:30"
    assert when(None, "UTC") == ""


def test_counts_agree_with_their_number() -> None:
    assert count(1, "book") == "1 book"
    assert count(0, "book") == "0 books"
    assert count(1000, "reader") == "1,000 readers"
    assert count(2, "book available now", "books available now") == "2 books available now"


def test_a_search_says_what_it_did_with_what_was_typed() -> None:
    assert "two letters" in too_short(TypedQuery.of("j")) and "“j”" in too_short(TypedQuery.of("j"))
    assert query_notes(TypedQuery.of("river")) == []
    (cut,) = query_notes(TypedQuery.of("r" * (MAX_QUERY_CHARS + 1)))
    assert f"{MAX_QUERY_CHARS}" in cut and "beginning" in cut
    (dropped,) = query_notes(TypedQuery.of(" ".join(f"w{i}" for i in range(10))))
    assert dropped == "Only the first 8 words were searched: 2 words left out."


def test_a_books_history_in_the_desks_words() -> None:
    names = {12: "Rosa Reader", 90: "Lev Desk"}
    rosa, lev = card_words(names, 12), card_words(names, 90)
    assert history_words(BookEvent.RESERVED, rosa) == "Rosa Reader (card 12) reserved it."
    assert (
        history_words(BookEvent.RESERVED, rosa, lev)
        == "Lev Desk (card 90) reserved it for Rosa Reader (card 12) at the desk."
    )
    assert (
        history_words(BookEvent.CANCELLED, rosa, lev)
        == "Lev Desk (card 90) cancelled the reservation of Rosa Reader (card 12) at the desk."
    )
    assert history_words(BookEvent.RENEWED, rosa) == "Rosa Reader (card 12) renewed their reservation."
    assert (
        history_words(BookEvent.MOVED_AWAY, card_words(names, 7)) == "Card 7 moved their reservation to another book."
    )
    assert "here from another book" in history_words(BookEvent.MOVED_HERE, rosa)


def test_a_box_with_nothing_to_search_says_so_and_a_searchable_one_says_nothing() -> None:
    said = unsearchable(TypedQuery.of("!!!"), "“ro” finds Rosa and Ross")
    assert said is not None and "“!!!”" in said and "no letters or digits" in said and "Rosa" in said
    assert "two letters" in (unsearchable(TypedQuery.of("j")) or "")
    assert unsearchable(TypedQuery.of("river")) is None and unsearchable(TypedQuery.of("")) is None


def test_the_desks_filters_say_how_much_they_kept_in_words_that_agree() -> None:
    assert too_many_readers("ro", 50).startswith("More than 50 readers match “ro”: these are the reservations of 50")
    assert too_many_books("the", 1000).startswith("More than 1,000 books match “the”: only their first 1,000")


def test_a_place_in_a_queue_in_words() -> None:
    from uuid import uuid4

    from app.models import Place
    from app.web.wording import ordinal, place_words

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"
    ]  # fmt: skip
    book = uuid4()
    assert place_words(Place(uuid4(), book, 1, 1, 1)) == "next in line"
    assert place_words(Place(uuid4(), book, 1, 1, 3)) == "next in line (3 readers waiting)"
    assert place_words(Place(uuid4(), book, 1, 2, 4)) == "2nd of 4 in the queue"
