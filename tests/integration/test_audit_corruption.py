"""The audit catches states the repository never leaves behind, written here by hand with raw CQL: a lock
without its reservation, a reservation present in one view only, a view that disagrees with its lock. The
repair then mends each from the locks, and only after reading the lock again."""

from __future__ import annotations

import time
import uuid

from test_interleavings import instance

from app.db import Database
from app.repository import Library

USER = 2_000_004_242  # far from the card numbers other tests hand out


def settled(library: Library) -> Library:
    """An instance whose repair acts at once on whatever it verified (settle time 0)."""
    return instance(library, settle_after=0)


async def hold_by_hand(database: Database, book_id: uuid.UUID, user_id: int) -> uuid.UUID:
    """The book's lock set HELD by raw CQL for a new reservation of the reader, with none of its views (a version a
    millisecond old, below anything the repository writes next); returns the reservation's id."""
    reservation = uuid.uuid4()
    await database.execute_raw(
        f"UPDATE {database.settings.keyspace}.reservation_by_book_id SET state = 'held', "
        f"reservation_id = {reservation}, user_id = {user_id}, reserved_at = toTimestamp(now()), "
        f"version = {time.time_ns() // 1000 - 1000} WHERE book_id = {book_id}"
    )
    return reservation


async def _reader(library: Library) -> None:
    await library.import_user("Audit Reader", "audit@example.org", USER)


async def test_a_lock_without_its_reservation(library: Library, database: Database) -> None:
    await _reader(library)
    book = await library.create_book("Held by hand", "Nobody", "Test", 2000)
    reservation = await hold_by_hand(database, book.book_id, USER)
    report = await library.audit()
    for view in ("reservations", "user_reservations", "book_reservations"):
        assert f"lock on book {book.book_id} holds reservation {reservation}, missing from {view}" in report.violations

    # Younger than the settle time: the repair leaves it to the request that may still be writing it.
    untouched = await library.audit(repair=True)
    assert not any(line.startswith("rebuilt") for line in untouched.repaired), untouched.repaired
    # The lock is the truth: repair writes the missing views, and the audit is clean for this book again.
    repaired = await settled(library).audit(repair=True)
    assert any(str(reservation) in line for line in repaired.repaired)
    assert not [v for v in (await library.audit()).violations if str(book.book_id) in v]
    await library.cancel(reservation, USER)
    assert await library.holder(book.book_id, serial=True) is None


async def test_a_reservation_in_one_view_only(library: Library, database: Database) -> None:
    ks = database.settings.keyspace
    await _reader(library)
    book = await library.create_book("Listed by hand", "Nobody", "Test", 2000)
    reservation = uuid.uuid4()
    await database.execute_raw(
        f"INSERT INTO {ks}.user_reservations (user_id, book_id, reservation_id, reserved_at, version) "
        f"VALUES ({USER}, {book.book_id}, {reservation}, toTimestamp(now()), 1)"
    )
    report = await library.audit()
    assert any(
        v.startswith(f"user_reservations has reservation {reservation} (book {book.book_id}, user {USER},")
        and v.endswith("without a lock")
        for v in report.violations
    ), report.violations

    # Nothing backs it: repair deletes the stray row, at its own write time.
    await settled(library).audit(repair=True)
    rows = await database.execute_raw(
        f"SELECT reservation_id FROM {ks}.user_reservations WHERE user_id = {USER} AND book_id = {book.book_id}"
    )
    assert rows.rows == []


async def test_a_view_that_disagrees_with_its_lock(library: Library, database: Database) -> None:
    await _reader(library)
    book = await library.create_book("Corrupted", "Nobody", "Test", 2000)
    reserved = await library.reserve(book.book_id, USER)
    other_book = uuid.uuid4()
    ks = database.settings.keyspace
    await database.execute_raw(
        f"UPDATE {ks}.reservations SET book_id = {other_book} WHERE reservation_id = {reserved.reservation_id}"
    )
    report = await library.audit()
    assert any(
        v.startswith(f"reservations has reservation {reserved.reservation_id} as book {other_book}")
        for v in report.violations
    ), report.violations
    # The hand-made write is newer than the lock's version, so views rebuilt at that version would lose: the
    # repair moves the lock above it first, then rebuilds.
    repaired = await settled(library).audit(repair=True)
    assert await library.get_reservation(reserved.reservation_id) == reserved, repaired.repaired
    assert not [v for v in (await library.audit()).violations if str(book.book_id) in v]
    await library.cancel(reserved.reservation_id, USER)
    assert await library.holder(book.book_id, serial=True) is None
