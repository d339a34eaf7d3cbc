"""The audit catches states the repository never leaves behind, written here by hand with raw CQL: a lock
without its reservation, and a reservation present in one view only. Repair then rebuilds from the locks."""

from __future__ import annotations

import uuid

from app.db import Database
from app.repository import Library

USER = 2_000_004_242  # far from the card numbers other tests hand out


async def test_a_lock_without_its_reservation(library: Library, database: Database) -> None:
    ks = database.settings.keyspace
    book, reservation = uuid.uuid4(), uuid.uuid4()
    await database.execute_raw(
        f"INSERT INTO {ks}.reservation_by_book_id (book_id, reservation_id, user_id, reserved_at) "
        f"VALUES ({book}, {reservation}, {USER}, toTimestamp(now()))"
    )
    try:
        report = await library.audit()
        assert not report.clean
        for view in ("reservations", "user_reservations", "book_reservations"):
            assert f"lock on book {book} holds reservation {reservation}, missing from {view}" in report.violations

        # The lock is the truth: repair writes the missing views, and the audit is clean for this book again.
        repaired = await library.audit(repair=True)
        assert any(str(reservation) in line for line in repaired.repaired)
        assert not [v for v in (await library.audit()).violations if str(book) in v or str(reservation) in v]
    finally:
        await _remove(database, book, reservation)


async def test_a_reservation_in_one_view_only(library: Library, database: Database) -> None:
    ks = database.settings.keyspace
    book, reservation = uuid.uuid4(), uuid.uuid4()
    await database.execute_raw(
        f"INSERT INTO {ks}.user_reservations (user_id, reservation_id, book_id, reserved_at) "
        f"VALUES ({USER}, {reservation}, {book}, toTimestamp(now()))"
    )
    try:
        report = await library.audit()
        assert any(
            v.startswith(f"user_reservations has reservation {reservation} (book {book}, user {USER},")
            and v.endswith("without a lock")
            for v in report.violations
        ), report.violations

        # Nothing backs it: repair deletes the stray row.
        await library.audit(repair=True)
        rows = await database.execute_raw(
            f"SELECT reservation_id FROM {ks}.user_reservations "
            f"WHERE user_id = {USER} AND reservation_id = {reservation}"
        )
        assert rows.rows == []
    finally:
        await _remove(database, book, reservation)


async def test_a_view_that_disagrees_with_its_lock(library: Library, database: Database) -> None:
    user = await library.create_user("Audit Reader", "audit@example.org", user_id=USER)
    book = await library.create_book("Corrupted", "Nobody", "Test", 2000)
    reserved = await library.reserve(book.book_id, user.user_id)
    other_book = uuid.uuid4()
    ks = database.settings.keyspace
    await database.execute_raw(
        f"UPDATE {ks}.reservations SET book_id = {other_book} WHERE reservation_id = {reserved.reservation_id}"
    )
    try:
        report = await library.audit()
        assert any(
            v.startswith(f"reservations has reservation {reserved.reservation_id} as book {other_book}")
            for v in report.violations
        ), report.violations
    finally:
        await library.audit(repair=True)
        await library.cancel(reserved.reservation_id, user.user_id)
        await library.delete_book(book.book_id)


async def _remove(database: Database, book: uuid.UUID, reservation: uuid.UUID) -> None:
    """Whatever the test or the repair left, so that later tests audit a clean keyspace."""
    ks = database.settings.keyspace
    await database.execute_raw(f"DELETE FROM {ks}.reservation_by_book_id WHERE book_id = {book}")
    await database.execute_raw(f"DELETE FROM {ks}.reservations WHERE reservation_id = {reservation}")
    await database.execute_raw(
        f"DELETE FROM {ks}.user_reservations WHERE user_id = {USER} AND reservation_id = {reservation}"
    )
    await database.execute_raw(
        f"DELETE FROM {ks}.book_reservations WHERE book_id = {book} AND reservation_id = {reservation}"
    )
