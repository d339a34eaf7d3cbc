"""The domain: what a book, a reader and a reservation are, and the ways an operation can fail.

The web layer turns each error into its HTTP status; nothing here knows about HTTP or Cassandra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid5

T = TypeVar("T")

# Reservation ids are assigned by the service. A client that wants to retry a reserve safely sends an idempotency
# key; the id is then derived from the reader, the book and the key, so a key can never name another reader's
# reservation, nor one reader's reservation of another book. (The key's length limit is in app/rules.py.)
RESERVATION_NAMESPACE = UUID("5b0f6f2e-8f0c-4a47-9d6a-0c7f1e2a9b31")


def reservation_id_for(user_id: int, book_id: UUID, idempotency_key: str) -> UUID:
    """The id the service gives the reservation of `book_id` by `user_id` made with `idempotency_key`."""
    return uuid5(RESERVATION_NAMESPACE, f"{user_id}/{book_id}/{idempotency_key}")


@dataclass(frozen=True)
class Book:
    book_id: UUID
    title: str
    author: str
    genre: str
    published_year: int | None


class Role(StrEnum):
    """What a card may do: a reader acts on their own reservations; a librarian on the catalogue, the readers and
    anyone's reservations (app/access.py)."""

    READER = "reader"
    LIBRARIAN = "librarian"


@dataclass(frozen=True)
class User:
    """A card: a reader, or a librarian (`role`). `active` is False once staff deactivated it: it keeps its
    reservations but cannot sign in. `has_pin`: whether a PIN was set, so the card can sign in. `generation`: made at
    random with the card, so a card deleted and made again under the same number is told apart from it (sessions
    and devices are bound to it); None for a card made before cards had one."""

    user_id: int
    name: str
    email: str
    joined_at: datetime | None
    role: Role = Role.READER
    active: bool = True
    has_pin: bool = False
    generation: UUID | None = None


@dataclass(frozen=True)
class Reservation:
    reservation_id: UUID
    book_id: UUID
    user_id: int
    reserved_at: datetime
    ready_until: datetime | None = None  # the end of its pickup window (None: made before holds had one, or on loan)
    lent_at: datetime | None = None  # when the reader collected the book at the desk (None: not collected)


@dataclass(frozen=True)
class Place:
    """A reader's place in a book's queue: the reservation they will hold when the book comes to them, their
    position (from 1, counting suspended places before it), how many are in the queue in all, and the date their
    place is suspended until (None: active; a suspended place is skipped until then, and keeps its position)."""

    reservation_id: UUID
    book_id: UUID
    user_id: int
    position: int
    waiting: int
    suspended_until: datetime | None = None


class BookEvent(StrEnum):
    """What happened to a book's reservation."""

    RESERVED = "reserved"
    RENEWED = "renewed"
    MOVED_HERE = "moved here"  # a reservation of another book moved to this one
    MOVED_AWAY = "moved away"  # this book's reservation moved to another book
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class HistoryLine:
    """A line of a book's reservation history (app/repository/history.py)."""

    happened_at: datetime  # UTC
    event: BookEvent
    reservation_id: UUID | None
    user_id: int | None  # the reader whose reservation it was
    by_id: int | None  # who did it: that reader, or a librarian at the desk


class HoldEnd(StrEnum):
    """How a reader's hold ended, for their history of past holds."""

    CANCELLED = "cancelled"
    EXPIRED = "expired"  # its pickup window passed
    LEFT = "left"  # a place in a queue, given up before the book came
    COLLECTED = "collected"  # the reader took the book home (it is on loan until returned)
    RETURNED = "returned"  # the loan of a collected book ended at the desk


@dataclass(frozen=True)
class PastHold:
    """A line of a reader's history of past holds (app/repository/history.py)."""

    ended_at: datetime  # UTC
    outcome: HoldEnd
    reservation_id: UUID
    book_id: UUID
    since: datetime | None  # when it began (None: a place in a queue)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; `next_page` is an opaque token for the following page, None at the end."""

    items: list[T]
    next_page: str | None = None


@dataclass
class AuditReport:
    """What `audit()` found: each violation is one line a person can read."""

    locks: int = 0
    reservations: int = 0
    violations: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations


class LibraryError(Exception):
    """Base of the errors an operation reports to its caller.

    An error carries its facts as fields: the book, reader and reservation it is about (None where it is about
    none of them). `str(error)` is the sentence the API answers, made from those fields by the constructors
    here; scripts compare these sentences, so they do not change. Whoever words an error otherwise (the pages
    name a book by its title) does so from the fields, never by reading or editing the sentence.
    """

    def __init__(
        self,
        message: str,
        *,
        book_id: UUID | None = None,
        user_id: int | None = None,
        reservation_id: UUID | None = None,
    ) -> None:
        super().__init__(message)
        self.book_id = book_id
        self.user_id = user_id
        self.reservation_id = reservation_id

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy or a pickle is rebuilt from the sentence and the fields, not by calling the constructor with the
        # sentence (UnknownBook(book_id) would take the sentence for a book id).
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(kind: type[LibraryError], args: tuple[Any, ...], fields: dict[str, Any]) -> LibraryError:
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(fields)
    return error


class NotFound(LibraryError):
    """Something the request names does not exist (any more). `cancelled`: a reservation known to have existed,
    cancelled since."""

    def __init__(
        self,
        message: str,
        *,
        book_id: UUID | None = None,
        user_id: int | None = None,
        reservation_id: UUID | None = None,
        cancelled: bool = False,
    ) -> None:
        super().__init__(message, book_id=book_id, user_id=user_id, reservation_id=reservation_id)
        self.cancelled = cancelled

    @staticmethod
    def reservation(reservation_id: UUID) -> NotFound:
        return NotFound(f"reservation {reservation_id} does not exist", reservation_id=reservation_id)

    @staticmethod
    def reservation_cancelled(reservation_id: UUID) -> NotFound:
        """A retried keyed reserve: the first request made the reservation, and it was cancelled since."""
        return NotFound(
            f"reservation {reservation_id} was made and has since been cancelled",
            reservation_id=reservation_id,
            cancelled=True,
        )

    @staticmethod
    def reservation_cancelled_while_changed(reservation_id: UUID) -> NotFound:
        """A move overtaken by a cancel of the reservation it was moving."""
        return NotFound(
            f"reservation {reservation_id} was cancelled while it was being changed",
            reservation_id=reservation_id,
            cancelled=True,
        )

    @staticmethod
    def not_waiting(book_id: UUID, user_id: int) -> NotFound:
        return NotFound(f"user {user_id} is not in the queue for book {book_id}", book_id=book_id, user_id=user_id)

    @staticmethod
    def book_or_reader(book_id: UUID, user_id: int) -> NotFound:
        """A retried keyed reserve whose first request found the book or the reader missing (it recorded which of
        the two it was not); neither UnknownBook nor UnknownReader, as either may be the one."""
        return NotFound(f"book {book_id} or user {user_id} does not exist", book_id=book_id, user_id=user_id)


class UnknownBook(NotFound):
    """No such book (or it was deleted)."""

    def __init__(self, book_id: UUID) -> None:
        super().__init__(f"book {book_id} does not exist", book_id=book_id)


class UnknownReader(NotFound):
    """No such reader (or one being deleted)."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} does not exist", user_id=user_id)


class ConflictKind(StrEnum):
    """What a Conflict is about."""

    BOOK_HELD = "book_held"  # a reservation holds the book (the caller's own, if `held_by_caller`)
    BOOK_WAS_HELD = "book_was_held"  # a retried keyed reserve: the book was held when the first request came
    BOOK_IN_USE = "book_in_use"  # a book a reservation holds cannot be deleted
    ALREADY_WAITING = "already_waiting"  # a reader is in a book's queue once
    PLACE_SUSPENDED = "place_suspended"  # the reader's place in the book's queue is suspended: resume it first
    ON_LOAN = "on_loan"  # the book is on loan to the reader: only the desk's return ends it
    NOT_ON_LOAN = "not_on_loan"  # a collection or return of a book nobody holds ready, or that is not on loan
    ALREADY_LENT = "already_lent"  # a collection of a book on loan already
    RENEWED_ENOUGH = "renewed_enough"  # a hold renewed as often as allowed
    LIMIT_REACHED = "limit_reached"  # a reader holds (or waits for) as many books as the library allows
    RESERVATION_CHANGED = "reservation_changed"  # a move overtaken by another change of the reservation
    READER_CLOSING = "reader_closing"  # the reader is being deleted
    READER_CHANGED = "reader_changed"  # a deletion overtaken by another change or deletion of the reader
    READER_IN_USE = "reader_in_use"  # a reader holding reservations cannot be deleted
    READER_WAITING = "reader_waiting"  # a reader waiting in a book's queue cannot be deleted
    NO_FREE_CARD = "no_free_card"  # no free card number was found for a new reader
    CARD_TAKEN = "card_taken"  # a new reader asked for a card number that is another reader's
    OTHER = "other"


class Conflict(LibraryError):
    """The book is held by another reservation, or a row still in use cannot be deleted, or another request
    changed what this one read. `kind` says which; `held_by_caller`: the book is held by the caller's own
    reservation (`reservation_id`)."""

    def __init__(
        self,
        message: str,
        *,
        kind: ConflictKind = ConflictKind.OTHER,
        held_by_caller: bool = False,
        book_id: UUID | None = None,
        user_id: int | None = None,
        reservation_id: UUID | None = None,
    ) -> None:
        super().__init__(message, book_id=book_id, user_id=user_id, reservation_id=reservation_id)
        self.kind = kind
        self.held_by_caller = held_by_caller

    @staticmethod
    def book_held(book_id: UUID) -> Conflict:
        return Conflict(
            f"book {book_id} is already reserved by another reader", kind=ConflictKind.BOOK_HELD, book_id=book_id
        )

    @staticmethod
    def book_held_by_caller(book_id: UUID, reservation_id: UUID | None) -> Conflict:
        return Conflict(
            f"you already hold book {book_id} (reservation {reservation_id})",
            kind=ConflictKind.BOOK_HELD,
            held_by_caller=True,
            book_id=book_id,
            reservation_id=reservation_id,
        )

    @staticmethod
    def book_was_held(book_id: UUID) -> Conflict:
        return Conflict(
            f"book {book_id} was already reserved by another reader when this request was first made",
            kind=ConflictKind.BOOK_WAS_HELD,
            book_id=book_id,
        )

    @staticmethod
    def already_waiting(book_id: UUID, place: int) -> Conflict:
        return Conflict(
            f"you are already in the queue for book {book_id} (number {place})",
            kind=ConflictKind.ALREADY_WAITING,
            book_id=book_id,
        )

    @staticmethod
    def place_suspended(book_id: UUID, until: datetime | None) -> Conflict:
        return Conflict(
            f"your place in the queue for book {book_id} is suspended until {until:%Y-%m-%d %H:%M} UTC; resume it "
            "first" if until else f"your place in the queue for book {book_id} is suspended; resume it first",
            kind=ConflictKind.PLACE_SUSPENDED,
            book_id=book_id,
        )

    @staticmethod
    def on_loan(book_id: UUID, reservation_id: UUID | None) -> Conflict:
        return Conflict(
            f"book {book_id} is on loan (reservation {reservation_id}): it is returned at the desk",
            kind=ConflictKind.ON_LOAN,
            book_id=book_id,
            reservation_id=reservation_id,
        )

    @staticmethod
    def already_lent(book_id: UUID) -> Conflict:
        return Conflict(f"book {book_id} is on loan already", kind=ConflictKind.ALREADY_LENT, book_id=book_id)

    @staticmethod
    def not_on_loan(book_id: UUID) -> Conflict:
        return Conflict(f"book {book_id} is not on loan", kind=ConflictKind.NOT_ON_LOAN, book_id=book_id)

    @staticmethod
    def nothing_to_collect(book_id: UUID) -> Conflict:
        return Conflict(f"nobody holds book {book_id} ready to collect", kind=ConflictKind.NOT_ON_LOAN, book_id=book_id)

    @staticmethod
    def limit_reached(user_id: int, kind: str, limit: int) -> Conflict:
        what = f"holds {limit} reservations" if kind == "ready" else f"waits in {limit} queues"
        return Conflict(
            f"user {user_id} {what}, the most allowed at once",
            kind=ConflictKind.LIMIT_REACHED,
            user_id=user_id,
        )

    @staticmethod
    def renewed_enough(reservation_id: UUID, most: int) -> Conflict:
        return Conflict(
            f"reservation {reservation_id} has been renewed {most} times, the most allowed",
            kind=ConflictKind.RENEWED_ENOUGH,
            reservation_id=reservation_id,
        )

    @staticmethod
    def book_in_use(book_id: UUID, reservation_id: UUID | None) -> Conflict:
        return Conflict(
            f"book {book_id} is reserved (reservation {reservation_id}); cancel it first",
            kind=ConflictKind.BOOK_IN_USE,
            book_id=book_id,
            reservation_id=reservation_id,
        )

    @staticmethod
    def reservation_changed(reservation_id: UUID) -> Conflict:
        return Conflict(
            f"reservation {reservation_id} was changed by another request meanwhile; it was not moved",
            kind=ConflictKind.RESERVATION_CHANGED,
            reservation_id=reservation_id,
        )

    @staticmethod
    def reader_closing(user_id: int) -> Conflict:
        return Conflict(
            f"user {user_id} is being deleted; try again", kind=ConflictKind.READER_CLOSING, user_id=user_id
        )

    @staticmethod
    def reader_changed(user_id: int) -> Conflict:
        return Conflict(
            f"user {user_id} was changed or is being deleted by another request; try again",
            kind=ConflictKind.READER_CHANGED,
            user_id=user_id,
        )

    @staticmethod
    def reader_in_use(user_id: int) -> Conflict:
        return Conflict(
            f"user {user_id} holds reservations; cancel them first", kind=ConflictKind.READER_IN_USE, user_id=user_id
        )

    @staticmethod
    def reader_waiting(user_id: int) -> Conflict:
        return Conflict(
            f"user {user_id} is waiting in the queue for books; leave those queues first",
            kind=ConflictKind.READER_WAITING,
            user_id=user_id,
        )

    @staticmethod
    def card_taken(user_id: int) -> Conflict:
        return Conflict(
            f"card {user_id} belongs to another reader already", kind=ConflictKind.CARD_TAKEN, user_id=user_id
        )

    @staticmethod
    def no_free_card() -> Conflict:
        return Conflict("could not find a free card number; try again", kind=ConflictKind.NO_FREE_CARD)


class Forbidden(LibraryError):
    """The caller may not do this: the reservation or account is another reader's, or it is staff work."""

    @staticmethod
    def not_owner(reservation_id: UUID) -> Forbidden:
        return Forbidden(f"reservation {reservation_id} belongs to another reader", reservation_id=reservation_id)

    @staticmethod
    def another_reader() -> Forbidden:
        return Forbidden("you can only act on your own card; a librarian can act for other readers")

    @staticmethod
    def staff_only() -> Forbidden:
        return Forbidden("only a librarian can do this")


def _last_try_next(attempts_left: int | None) -> bool:
    return attempts_left == 1


def _locked_now(attempts_left: int | None) -> bool:
    return attempts_left == 0


class Unauthenticated(LibraryError):
    """The request carries no valid credentials (none, expired, revoked, forged), or a sign-in was refused. A wrong
    card number and a wrong PIN get the same words, so the answer never tells whether a card exists.

    `attempts_left`: after a wrong PIN, how many more wrong ones this client may try before sign-in to the card is
    locked for it (the same count for a card that does not exist). `deactivated`: the PIN was right, but staff have
    deactivated the card; said only after a right PIN, so it tells a guesser nothing."""

    def __init__(self, message: str, *, attempts_left: int | None = None, deactivated: bool = False) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left
        self.deactivated = deactivated

    @property
    def last_try_next(self) -> bool:
        """A wrong PIN after which one more wrong one locks this client out: the moment to warn."""
        return _last_try_next(self.attempts_left)

    @property
    def locked_now(self) -> bool:
        """A wrong PIN that used up this client's tries: signing in is locked for it for a while."""
        return _locked_now(self.attempts_left)

    @staticmethod
    def sign_in_needed() -> Unauthenticated:
        return Unauthenticated("sign in first: send a bearer token from POST /api/session")

    @staticmethod
    def wrong_card_or_pin(attempts_left: int | None = None) -> Unauthenticated:
        message = "the card number or PIN is wrong"
        if _last_try_next(attempts_left):
            message += "; one more wrong PIN locks signing in to this card for a while"
        elif _locked_now(attempts_left):
            message += "; signing in to this card is now locked for a while"
        return Unauthenticated(message, attempts_left=attempts_left)

    @staticmethod
    def card_deactivated() -> Unauthenticated:
        return Unauthenticated("this card has been deactivated: please ask at the library's desk", deactivated=True)


class TooManyAttempts(LibraryError):
    """Sign-in for a card is locked for a while after repeated failures, whether or not the card exists. The lock
    is on the clients the card does not know: on a device the card has signed in on before, its holder can still
    sign in (app/repository/accounts.py), and a librarian's new PIN lifts every lock of the card."""

    def __init__(self, retry_after_seconds: int) -> None:
        minutes = max(1, -(-retry_after_seconds // 60))
        super().__init__(
            f"too many wrong PINs for this card: try again in {minutes} minute{'s' if minutes > 1 else ''}"
        )
        self.retry_after_seconds = retry_after_seconds


class InvalidInput(LibraryError):
    """A value the caller sent is malformed; `field` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OutOfRange(InvalidInput):
    """A well-formed value the rules refuse for what it says now: a suspension's end that has passed, or is too far
    ahead (a 422: the request is well formed, and the same one may be right another day)."""


class DatabaseUnavailable(LibraryError):
    """Cassandra could not reach the required consistency (too few replicas, or a timeout)."""
