"""What the repository modules share: the database handle, paging tokens, clocks, row mapping."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC, datetime
from typing import Any

from app.db import Database
from app.models import Book, InvalidInput, Reservation

MAX_PAGE_SIZE = 200


class RepositoryBase:
    db: Database
    ks: str  # keyspace: every statement names its tables as {ks}.table

    def cql(self, text: str) -> str:
        return text.replace("{ks}", self.ks)


def now() -> datetime:
    """UTC at millisecond precision, naive, as Cassandra's timestamp stores and returns it."""
    t = datetime.now(UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def write_time() -> int:
    """A write timestamp in microseconds, as Cassandra's `USING TIMESTAMP` and the driver's own take them."""
    return time.time_ns() // 1000


def encode_page(paging_state: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(paging_state).decode().rstrip("=") if paging_state else None


def decode_page(token: str | None) -> bytes | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidInput("page is not a page token this service gave out", field="page") from error


def check_page_size(page_size: int) -> int:
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}", field="page_size")
    return page_size


def book_from_row(row: Any) -> Book:
    return Book(row.book_id, row.title, row.author, row.genre, row.published_year)


def reservation_from_row(row: Any) -> Reservation:
    return Reservation(row.reservation_id, row.book_id, row.user_id, row.reserved_at)
