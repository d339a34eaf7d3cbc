"""What the tests of the reservation core share (test_reservations.py, test_queue.py): new books, new readers on card
numbers of their own, the outcomes of calls made at once, and another instance of the service. A module of its own,
imported by one name everywhere: a test module imported by another is a second copy of itself, whose cards start
again at the same number (test_queue.py's readers then took test_reservations.py's cards)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from integration.cards import chosen_cards

from app.db import Database
from app.models import Book, Conflict, Forbidden, NotFound, User
from app.repository import Library

_user_ids = chosen_cards(1000)


async def new_book(library: Library, title: str = "A Tale of Two Cities") -> Book:
    return await library.create_book(title, "Charles Dickens", "Classic", 1859)


async def new_users(library: Library, n: int) -> list[User]:
    return list(
        await asyncio.gather(
            *[library.create_user(f"Reader {i}", f"reader{i}@example.org", user_id=next(_user_ids)) for i in range(n)]
        )
    )


async def outcomes(calls: list[Awaitable[Any]]) -> Counter[str]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    for r in results:
        if isinstance(r, Exception) and not isinstance(r, Conflict | NotFound | Forbidden):
            raise r
    return Counter(type(r).__name__ for r in results)


def settled(library: Library, settle_after: float = 0.0, **settings: Any) -> Library:
    """Another instance of the service on the same session, whose heal and repair act on states older than
    `settle_after` seconds (0: on everything), as a test of an old reservation needs; `settings`: any other setting
    of its own (a pickup window, limits, an SMTP server)."""
    db = library.db
    own = dataclasses.replace(db.settings, settle_after_seconds=settle_after, **settings)
    return Library(Database(db.cluster, db.session, own, db.serial_consistency))
