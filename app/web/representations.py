"""The JSON shapes of the API. Field names follow the earlier system's catalogue
(`book_id,title,author,genre,published_year`), so its scripts read our answers unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.access import Caller
from app.models import Book, PastHold, Place, Reservation, User


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    # Cassandra hands back naive UTC datetimes; say so explicitly rather than leave clients guessing.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def book_json(book: Book, available: bool | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "book_id": str(book.book_id),
        "title": book.title,
        "author": book.author,
        "genre": book.genre,
        "published_year": book.published_year,
    }
    if available is not None:
        data["available"] = available
    return data


def user_json(user: User) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "name": user.name,
        "email": user.email,
        "joined_at": timestamp(user.joined_at),
        "role": user.role.value,
        "active": user.active,
    }


def reservation_json(reservation: Reservation) -> dict[str, Any]:
    return {
        "reservation_id": str(reservation.reservation_id),
        "book_id": str(reservation.book_id),
        "user_id": reservation.user_id,
        "reserved_at": timestamp(reservation.reserved_at),
    }


def hold_json(reservation: Reservation) -> dict[str, Any]:
    """A reservation as the API shows it: with its pickup window's end, or when it was collected (on loan). The
    earlier system's endpoints keep `reservation_json`, their contract."""
    r = reservation
    return {
        **reservation_json(r),
        "ready_until": timestamp(r.ready_until) if r.ready_until else None,
        "lent_at": timestamp(r.lent_at) if r.lent_at else None,
    }


def place_json(place: Place) -> dict[str, Any]:
    """A reader's place in a book's queue: `status` 'waiting', beside a reservation's 'ready' (`joined_json`)."""
    return {
        "status": "waiting",
        "reservation_id": str(place.reservation_id),
        "book_id": str(place.book_id),
        "user_id": place.user_id,
        "position": place.position,
        "waiting": place.waiting,
        "suspended_until": timestamp(place.suspended_until) if place.suspended_until else None,
    }


def loan_json(loan: Reservation, status: str) -> dict[str, Any]:
    """A book collected at the desk ('on_loan'), or whose loan ended ('returned')."""
    return {"status": status, **hold_json(loan)}


def past_hold_json(line: PastHold) -> dict[str, Any]:
    return {
        "ended_at": timestamp(line.ended_at),
        "outcome": line.outcome.value,
        "reservation_id": str(line.reservation_id),
        "book_id": str(line.book_id),
        "since": timestamp(line.since),
    }


def joined_json(joined: Place | Reservation) -> dict[str, Any]:
    """What a join made: a place in the queue, or, for a book that was free, the reservation itself (`ready`)."""
    return place_json(joined) if isinstance(joined, Place) else {"status": "ready", **hold_json(joined)}


def caller_json(caller: Caller) -> dict[str, Any]:
    return {"user_id": caller.user_id, "name": caller.name, "role": caller.role.value}
