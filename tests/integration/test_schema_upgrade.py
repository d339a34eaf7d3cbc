"""A keyspace written by schema version 1 (the code before issue 10) is upgraded in place at start-up: every book
gets its lock, a reserved book's lock keeps its reservation with a version, and the views are rebuilt from the
locks, so the reservation can be read and cancelled afterwards; every book gets its search terms (version 3), so the
old catalogue is found by the search box, and `title_words` is gone; and every card gets its terms (version 4), so
the desk finds an old reader by name or e-mail."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

from app.db import Database
from app.repository import Library
from app.schema import apply_schema
from app.settings import Settings

V1_SCHEMA = Path(__file__).with_name("schema_v1.cql")  # app/schema.cql as of version 1, kept for this test
KEYSPACE = "test_upgrade_v1"


async def test_a_version_1_keyspace_is_upgraded_in_place(settings: Settings, database: Database) -> None:
    own = dataclasses.replace(settings, keyspace=KEYSPACE)
    await database.execute_raw(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
    text = "\n".join(line for line in V1_SCHEMA.read_text().splitlines() if not line.lstrip().startswith("--"))
    text = text.format(keyspace=KEYSPACE, datacenter=own.local_datacenter, replication_factor=own.replication_factor)
    for statement in (s.strip() for s in text.split(";") if s.strip()):
        await database.execute_raw(statement)
    reserved_book, free_book, reservation = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for book in (reserved_book, free_book):
        await database.execute_raw(
            f"INSERT INTO {KEYSPACE}.books (book_id, title, author, genre, published_year) "
            f"VALUES ({book}, 'Old Book', 'Old Author', 'Old', 1999)"
        )
    await database.execute_raw(
        f"INSERT INTO {KEYSPACE}.users (user_id, name, email, joined_at) VALUES (7, 'Old Reader', 'o@example.org', "
        "toTimestamp(now()))"
    )
    # What version 1 wrote for a reservation: the lock row, then the three views keyed by reservation id.
    await database.execute_raw(
        f"INSERT INTO {KEYSPACE}.reservation_by_book_id (book_id, reservation_id, user_id, reserved_at) "
        f"VALUES ({reserved_book}, {reservation}, 7, toTimestamp(now())) IF NOT EXISTS"
    )
    for table, key in (("reservations", ""), ("user_reservations", ""), ("book_reservations", "")):
        await database.execute_raw(
            f"INSERT INTO {KEYSPACE}.{table} (reservation_id, book_id, user_id, reserved_at{key}) "
            f"VALUES ({reservation}, {reserved_book}, 7, toTimestamp(now()))"
        )

    db = await Database.connect(own)
    try:
        await apply_schema(db, own)
        library = Library(db)
        report = await library.audit()
        assert report.clean, report.violations
        held = await library.get_reservation(reservation)
        assert held.book_id == reserved_book and held.user_id == 7
        assert (await library.user_reservations(7)).items == [held]
        assert await library.holder(free_book, serial=True) is None
        other = await library.reserve(free_book, 7)  # the free book got its lock
        await library.cancel(reservation, 7)
        await library.cancel(other.reservation_id, 7)
        assert (await library.audit()).clean
        found = await library.search_books("old auth")
        assert {b.book_id for b in found.books} == {reserved_book, free_book}
        columns = await db.execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'books'",
            [KEYSPACE],
        )
        assert "title_words" not in {r.column_name for r in columns.rows}
        for typed in ("old read", "o@example", "READER"):
            assert [u.user_id for u in await library.matching_users(typed)] == [7], typed
            assert [u.user_id for u in (await library.list_users(q=typed)).items] == [7], typed
        renamed = await library.update_user(7, name="Renamed Reader")
        assert await library.readers.backfill_search_terms() == 0  # a card with terms is left as it is
        assert [u.user_id for u in await library.matching_users("renamed")] == [renamed.user_id]
        assert await library.matching_users("old read") == []
        await apply_schema(db, own)  # a second start changes nothing
    finally:
        db.close()  # the keyspace stays until the next run drops it: see conftest.py on dropping keyspaces
