"""The stress tests' checker on made-up histories: it must report real contradictions and nothing that the
clients' timing leaves open."""

from __future__ import annotations

from uuid import UUID, uuid4

from stress.client import Op
from stress.history import FinalState, check, unfinished

BOOK, OTHER = uuid4(), uuid4()


def reserve(r: UUID, sent: float, received: float, status: int = 201, book: UUID = BOOK, user: int = 1) -> Op:
    return Op("reserve", user, book, r, sent, received, status, result_book=book if status == 201 else None)


def cancel(r: UUID, sent: float, received: float, status: int | None = 204, user: int = 1) -> Op:
    return Op("cancel", user, None, r, sent, received, status, error=None if status else "timeout")


def read_book(sent: float, received: float, seen: list[tuple[UUID, UUID]]) -> Op:
    return Op("read_book", None, BOOK, None, sent, received, 200, seen=seen)


def test_a_clean_handover_passes() -> None:
    a, b = uuid4(), uuid4()
    ops = [reserve(a, 0, 1), cancel(a, 2, 3), reserve(b, 2.5, 4, user=2), read_book(5, 6, [(b, BOOK)])]
    violations, figures = check(ops, FinalState({b: BOOK}, {BOOK: b}))
    assert violations == []
    assert figures["certain_holds"] == 2


def test_two_certain_holders_at_once_are_reported() -> None:
    a, b = uuid4(), uuid4()
    ops = [reserve(a, 0, 1), reserve(b, 1.5, 2, user=2), cancel(a, 3, 4)]
    violations, _ = check(ops, FinalState({b: BOOK}, {BOOK: b}))
    assert len(violations) == 1
    assert "two holders at once" in violations[0]


def test_a_hold_whose_cancel_was_already_sent_is_not_certain() -> None:
    # a's cancel was on its way when b got the book: the server may well have released a first.
    a, b = uuid4(), uuid4()
    ops = [reserve(a, 0, 1), cancel(a, 2, 5), reserve(b, 2.1, 3, user=2)]
    assert check(ops, FinalState({b: BOOK}, {BOOK: b}))[0] == []


def test_an_acknowledged_reservation_missing_at_the_end() -> None:
    a = uuid4()
    violations, _ = check([reserve(a, 0, 1)], FinalState({}, {}))
    assert violations == [f"reservation {a}, acknowledged on book {BOOK}, is missing at the end"]


def test_a_cancelled_reservation_still_present() -> None:
    a = uuid4()
    violations, _ = check([reserve(a, 0, 1), cancel(a, 2, 3)], FinalState({a: BOOK}, {BOOK: a}))
    assert violations == [f"reservation {a} was cancelled at 3.000s but is still present"]


def test_a_cancel_without_an_answer_may_have_applied_or_not() -> None:
    a = uuid4()
    ops = [reserve(a, 0, 1), cancel(a, 2, 3, status=None)]
    assert check(ops, FinalState({a: BOOK}, {BOOK: a}))[0] == []
    assert check(ops, FinalState({}, {}))[0] == []


def test_reads_must_show_what_was_certain() -> None:
    a = uuid4()
    ops = [reserve(a, 0, 1), read_book(2, 3, []), cancel(a, 4, 5), read_book(6, 7, [(a, BOOK)])]
    violations, _ = check(ops, FinalState({}, {}))
    assert violations == [
        f"the read of book {BOOK} sent at 2.000s does not list reservation {a} on book {BOOK}, though it certainly was",
        f"the read of book {BOOK} sent at 6.000s lists reservation {a}, which was no longer there",
    ]


def test_a_refused_move_leaves_the_reservation_where_it_was() -> None:
    a = uuid4()
    move = Op("move", 1, OTHER, a, 2, 3, 409, message="book is already reserved by another reader")
    violations, _ = check([reserve(a, 0, 1), move], FinalState({a: BOOK}, {BOOK: a}))
    assert violations == []
    violations, _ = check([reserve(a, 0, 1), move], FinalState({a: OTHER}, {OTHER: a}))
    assert violations == [f"reservation {a}, acknowledged on book {BOOK}, is on book {OTHER} at the end"]


def move(r: UUID, book: UUID, sent: float, received: float, status: int | None = 200, user: int = 1) -> Op:
    ok = status == 200
    return Op(
        "move",
        user,
        book,
        r,
        sent,
        received,
        status,
        error=None if status else "timeout",
        result_book=book if ok else None,
    )


def test_a_move_without_an_answer_may_land_after_later_acknowledged_moves() -> None:
    # Seed 204 of the adversarial run: a move to OTHER timed out on a frozen instance; its retry moved the reservation
    # to OTHER, the next move took it to THIRD; then the frozen instance woke and moved it back to OTHER, as asked.
    # Another reader then took THIRD. Nobody held a book twice, and nothing acknowledged was lost.
    a, b, third = uuid4(), uuid4(), uuid4()
    ops = [
        reserve(a, 0, 1),
        move(a, OTHER, 2, 3.5, status=None),
        move(a, OTHER, 3.6, 3.7),
        move(a, third, 3.8, 3.9),
        reserve(b, 4.0, 4.1, book=third, user=2),
    ]
    assert check(ops, FinalState({a: OTHER, b: third}, {OTHER: a, third: b}))[0] == []
    # Still checked: the reservation is on one of the books it may be on at the end, never lost.
    violations, _ = check(ops, FinalState({b: third}, {third: b}))
    assert violations == [f"reservation {a}, acknowledged on book {third}, is missing at the end"]
    violations, _ = check(ops, FinalState({a: BOOK, b: third}, {BOOK: a, third: b}))
    assert violations == [f"reservation {a}, acknowledged on book {third}, is on book {BOOK} at the end"]


def test_a_cancel_stays_final_after_a_move_without_an_answer() -> None:
    a = uuid4()
    ops = [reserve(a, 0, 1), move(a, OTHER, 2, 3.5, status=None), cancel(a, 4, 5), read_book(6, 7, [(a, BOOK)])]
    violations, _ = check(ops, FinalState({a: OTHER}, {OTHER: a}))
    assert violations == [
        f"reservation {a} was cancelled at 5.000s but is still present",
        f"the read of book {BOOK} sent at 6.000s lists reservation {a}, which was no longer there",
    ]


def test_unfinished_names_the_reservations_whose_last_request_got_no_answer() -> None:
    gave_up, answered_later, read_after, fine = uuid4(), uuid4(), uuid4(), uuid4()
    ops = [
        reserve(gave_up, 0, 1),
        cancel(gave_up, 2, 3, status=None),
        cancel(gave_up, 3.5, 4, status=503),  # its retry failed too: the request ended without an answer
        reserve(answered_later, 0, 1, status=None),
        reserve(answered_later, 1.5, 2),  # the retry's answer is definite
        reserve(read_after, 0, 1),
        cancel(read_after, 2, 3, status=None),
        read_book(4, 5, []),  # a read after it changes nothing: still unanswered
        reserve(fine, 0, 1),
    ]
    assert unfinished(ops) == {gave_up, read_after}
