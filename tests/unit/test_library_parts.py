"""`Library` as a facade over its parts, without a database: each part is given the one database, clock and set
of page tokens of its instance, and every operation callers use is the part's own method."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from app.repository import Library
from app.settings import Settings

OPERATIONS = {
    "catalogue": "get_book list_books search_books matching_books create_book update_book delete_book",
    "readers": (
        "get_user list_users matching_users create_user import_user register_card update_user delete_user set_pin"
    ),
    "accounts": (
        "sign_in checked_pin issue_session caller_for sign_out revoke_sessions record_staff_action staff_actions"
    ),
    "listings": (
        "get_reservation holder holders list_reservations some_reservations each_reservation user_reservations"
        " book_reservations"
    ),
    "history": "book_history",
    "reservations": "reserve move cancel",
    "auditor": "upgrade_locks",
}


def library(**settings: Any) -> Library:
    db: Any = SimpleNamespace(settings=dataclasses.replace(Settings(), keyspace="unit_ks", **settings))
    return Library(db, wall_ns=lambda: 1_000_000_000)


def test_each_operation_is_its_parts_own_method() -> None:
    lib = library()
    for part_name, names in OPERATIONS.items():
        part = getattr(lib, part_name)
        for name in names.split():
            operation = getattr(lib, name)
            assert operation.__self__ is part and operation.__func__ is getattr(type(part), name), name


def test_the_parts_share_the_instances_database_clock_and_page_tokens() -> None:
    lib = library(settle_after_seconds=0.5)
    parts = (lib.catalogue, lib.auditor)
    assert all(part.db is lib.db and part.ks == "unit_ks" and part.clock is lib.clock for part in parts)
    assert lib.listings.db is lib.db and lib.reservations.clock is lib.clock and lib.locks.clock is lib.clock
    assert lib.catalogue.pages is lib.pages and lib.listings.pages is lib.pages
    assert lib.catalogue.reservations is lib.reservations and lib.auditor.reservations is lib.reservations
    assert lib.catalogue.listings is lib.listings and lib.history.db is lib.db
    assert lib.reservations.locks is lib.locks and lib.listings.locks is lib.locks and lib.auditor.locks is lib.locks
    assert lib.readers.pages is lib.pages and lib.readers.listings is lib.listings
    assert lib.accounts.readers is lib.readers
    assert lib.readers.db is lib.db and lib.accounts.db is lib.db
    assert lib.reservations.settle_after_seconds == 0.5
    assert lib.clock.wall_us() == 1_000_000


def test_a_pause_set_on_the_library_reaches_the_reservations() -> None:
    lib = library()

    async def hold(_name: str, _facts: dict[str, Any]) -> None:
        return None

    lib.steps["reserve.locked"] = hold
    assert lib.reservations.steps["reserve.locked"] is hold


def test_two_instances_have_parts_of_their_own() -> None:
    a, b = library(), library()
    assert a.reservations is not b.reservations and a.clock is not b.clock and a.steps is not b.steps
