"""The domain errors, without a database: each carries its facts as fields, its sentence (what the API and the
earlier system's scripts see) is the one it always was, and the pages word a refusal from the fields alone."""

from __future__ import annotations

import copy
import pickle
from uuid import UUID

import pytest

from app.models import (
    Book,
    Conflict,
    ConflictKind,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    LibraryError,
    NotFound,
    UnknownBook,
    UnknownReader,
)
from app.web.base import describe, status_for

BOOK = UUID("6f1c1f0e-5b4f-4d0e-9a51-0b6c1ea9d0a4")
RESERVATION = UUID("0b8f9f0e-8f43-4c8a-9f3e-0a1d2b3c4d5e")
USER = 4242
DUNE = Book(BOOK, "Dune", "Frank Herbert", "Science fiction", 1965)


# (the error, its sentence exactly as the API answered it before the errors had fields, and its fields)
CASES = [
    (UnknownBook(BOOK), f"book {BOOK} does not exist", {"book_id": BOOK}),
    (UnknownReader(USER), f"user {USER} does not exist", {"user_id": USER}),
    (NotFound.reservation(RESERVATION), f"reservation {RESERVATION} does not exist", {"reservation_id": RESERVATION}),
    (
        NotFound.reservation_cancelled(RESERVATION),
        f"reservation {RESERVATION} was made and has since been cancelled",
        {"reservation_id": RESERVATION, "cancelled": True},
    ),
    (
        NotFound.reservation_cancelled_while_changed(RESERVATION),
        f"reservation {RESERVATION} was cancelled while it was being changed",
        {"reservation_id": RESERVATION, "cancelled": True},
    ),
    (
        NotFound.book_or_reader(BOOK, USER),
        f"book {BOOK} or user {USER} does not exist",
        {"book_id": BOOK, "user_id": USER},
    ),
    (
        Conflict.book_held(BOOK),
        f"book {BOOK} is already reserved by another reader",
        {"kind": ConflictKind.BOOK_HELD, "book_id": BOOK, "held_by_caller": False},
    ),
    (
        Conflict.book_held_by_caller(BOOK, RESERVATION),
        f"you already hold book {BOOK} (reservation {RESERVATION})",
        {"kind": ConflictKind.BOOK_HELD, "book_id": BOOK, "reservation_id": RESERVATION, "held_by_caller": True},
    ),
    (
        Conflict.book_was_held(BOOK),
        f"book {BOOK} was already reserved by another reader when this request was first made",
        {"kind": ConflictKind.BOOK_WAS_HELD, "book_id": BOOK},
    ),
    (
        Conflict.book_in_use(BOOK, RESERVATION),
        f"book {BOOK} is reserved (reservation {RESERVATION}); cancel it first",
        {"kind": ConflictKind.BOOK_IN_USE, "book_id": BOOK, "reservation_id": RESERVATION},
    ),
    (
        Conflict.reservation_changed(RESERVATION),
        f"reservation {RESERVATION} was changed by another request meanwhile; it was not moved",
        {"kind": ConflictKind.RESERVATION_CHANGED, "reservation_id": RESERVATION},
    ),
    (
        Conflict.reader_closing(USER),
        f"user {USER} is being deleted; try again",
        {"kind": ConflictKind.READER_CLOSING, "user_id": USER},
    ),
    (
        Conflict.reader_changed(USER),
        f"user {USER} was changed or is being deleted by another request; try again",
        {"kind": ConflictKind.READER_CHANGED, "user_id": USER},
    ),
    (
        Conflict.reader_in_use(USER),
        f"user {USER} holds reservations; cancel them first",
        {"kind": ConflictKind.READER_IN_USE, "user_id": USER},
    ),
    (
        Conflict.no_free_card(),
        "could not find a free card number; try again",
        {"kind": ConflictKind.NO_FREE_CARD},
    ),
    (
        Forbidden.not_owner(RESERVATION),
        f"reservation {RESERVATION} belongs to another reader",
        {"reservation_id": RESERVATION},
    ),
]


@pytest.mark.parametrize(("error", "sentence", "fields"), CASES, ids=[str(case[0]) for case in CASES])
def test_an_error_carries_its_fields_and_its_sentence_is_unchanged(
    error: LibraryError, sentence: str, fields: dict[str, object]
) -> None:
    assert str(error) == sentence
    for name in ("book_id", "user_id", "reservation_id"):
        assert getattr(error, name) == fields.get(name), name
    for name, value in fields.items():
        assert getattr(error, name) == value, name


@pytest.mark.parametrize(("error", "sentence", "fields"), CASES, ids=[str(case[0]) for case in CASES])
def test_the_api_answers_the_sentence(error: LibraryError, sentence: str, fields: dict[str, object]) -> None:
    status, body = describe(error, 500, "")
    assert body == {"error": sentence}
    assert status == status_for(error)


def test_each_error_keeps_its_class_and_so_its_status() -> None:
    """The statuses and the legacy endpoints' sentences are chosen by class: UnknownBook and UnknownReader must
    stay apart (the earlier system says "Book does not exist." or "Invalid user_id."), and a book or reader that a
    keyed retry cannot tell apart is neither."""
    assert isinstance(UnknownBook(BOOK), NotFound) and isinstance(UnknownReader(USER), NotFound)
    either = NotFound.book_or_reader(BOOK, USER)
    assert type(either) is NotFound
    assert [status_for(e) for e in (UnknownBook(BOOK), Conflict.book_held(BOOK), Forbidden.not_owner(RESERVATION))] == [
        404,
        409,
        403,
    ]


def test_errors_made_from_a_bare_sentence_still_work() -> None:
    """Tests and tools raise the categories with a sentence of their own (an injected outage, a status check)."""
    conflict = Conflict("x")
    assert str(conflict) == "x" and conflict.kind is ConflictKind.OTHER and not conflict.held_by_caller
    assert conflict.book_id is None and conflict.user_id is None and conflict.reservation_id is None
    assert str(NotFound("x")) == "x" and not NotFound("x").cancelled
    assert str(DatabaseUnavailable("injected")) == "injected"
    invalid = InvalidInput("page_size must be between 1 and 200", field="page_size")
    assert (str(invalid), invalid.field) == ("page_size must be between 1 and 200", "page_size")


@pytest.mark.parametrize(("error", "sentence", "fields"), CASES, ids=[str(case[0]) for case in CASES])
def test_a_copied_or_pickled_error_keeps_its_sentence_and_fields(
    error: LibraryError, sentence: str, fields: dict[str, object]
) -> None:
    for again in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(again) is type(error) and str(again) == sentence and again.__dict__ == error.__dict__
