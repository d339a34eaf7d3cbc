"""The domain: what a book, a reader and a reservation are, and the ways an operation can fail.

The web layer turns each error into its HTTP status; nothing here knows about HTTP or Cassandra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
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


@dataclass(frozen=True)
class User:
    user_id: int
    name: str
    email: str
    joined_at: datetime | None


@dataclass(frozen=True)
class Reservation:
    reservation_id: UUID
    book_id: UUID
    user_id: int
    reserved_at: datetime


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
    """Base of the errors an operation reports to its caller; the message is for people."""


class NotFound(LibraryError):
    pass


class UnknownBook(NotFound):
    """No such book (or it was deleted)."""


class UnknownReader(NotFound):
    """No such reader (or one being deleted)."""


class Conflict(LibraryError):
    """The book is held by another reservation, or a row still in use cannot be deleted."""


class Forbidden(LibraryError):
    """The reservation belongs to another reader."""


class InvalidInput(LibraryError):
    """A value the caller sent is malformed; `field` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DatabaseUnavailable(LibraryError):
    """Cassandra could not reach the required consistency (too few replicas, or a timeout)."""
