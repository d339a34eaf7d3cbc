"""Creates the keyspace and tables of app/schema.cql, idempotently; run at start-up.

A keyspace written by schema version 1 (a lock row only while a book was reserved, views keyed by
reservation id) is upgraded in place: the new columns are added, the two views whose keys changed are
dropped and made anew, and `upgrade_locks` then gives every book its lock row and rebuilds the views from
the locks.

A keyspace of version 1 or 2 (title words in `title_words`) gets `search_terms` written for every book
(`CatalogueRepository.backfill_search_terms`), then loses `title_words` and its index. Version 3 is recorded only
once the backfill has finished, so a start-up interrupted half-way backfills again at the next one. Stop the
instances of the earlier version first: they still write `title_words`.

The lock's move states (`incoming`, `outgoing`) and their columns (`move_from`, `move_from_version`, `freed_at`) are
added to an existing keyspace by `_add_missing_columns`; nothing needs rewriting, since every lock written before is
`free`, `held` or `withdrawn`. Stop the instances of the earlier version first all the same: they do not know the new
states, and would answer "no such book" for a book a move is taking.

Issue 20 added `users.generation` and `sessions.generation` (added to existing tables by `_add_missing_columns`),
`pin_attempts` (the throttle, replacing `sign_in_attempts`, which is left in an older keyspace unused) and
`shared_secrets`. A card made before has no generation, and its sessions (none either) still count; a session issued
by an earlier version has none and counts only while its card has none. Stop the instances of the earlier version:
they trust the role a session row holds, and would not lift locks.

Version 4 (issue 23) adds `users.search_terms` with its index, and `book_history`. A keyspace of an earlier version
gets the terms written for every card (`ReaderRepository.backfill_search_terms`, each only while the card still has
the name and e-mail they are made of), and version 4 is recorded only once that has finished. Stop the instances of
the earlier version first: they would write cards without terms, which the desk's search would not find.

Issue 24 added `repair_lease`, the background repair's lease: a new table, made by its CREATE TABLE IF NOT EXISTS in
any keyspace, with nothing to rewrite, so the schema version stays 4. Instances of the earlier version run no
background repair and never read it.

Issue 22 added the book's queue to the lock row (`waiting`, `queue_seq`, added to an existing table by
`_add_missing_columns`) and an SAI index on the queue's keys: nothing to rewrite (every lock has an empty queue), so
the schema version stays 4. Stop the instances of the earlier version first all the same: their take and release
do not ask for an empty queue, and would give a book away past the readers waiting for it. It also added the pickup
window (`ready_until`, `renewals` on the lock, `ready_until` on the three views: a hold made before has none, and never
expires) and `reader_seats`, the per-reader limits (a new table; holds made before have no seat, so a reader's first
holds under a new limit may exceed it by those until they end).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from app.db import Database
from app.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).with_name("schema.cql")
SCHEMA_VERSION = 4
# The version that brought the books' search terms (their backfill runs on a keyspace that has not recorded it).
BOOK_TERMS_VERSION = 3
# The tables that hold the service's data, for tools that empty or scan a keyspace (not `shared_secrets`: emptying
# it under running instances would give the next one to start other keys than theirs; nor `repair_lease`, which holds
# no data, only who repairs now).
DATA_TABLES = (
    "books",
    "users",
    "reservation_by_book_id",
    "reservations",
    "user_reservations",
    "book_reservations",
    "reservation_keys",
    "sessions",
    "user_sessions",
    "pin_attempts",
    "staff_actions",
    "book_history",
    "reader_seats",
    "reader_history",
)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
# Version 1 -> 2: views whose keys changed, made anew (columns added to other tables are added by
# `_add_missing_columns`, which compares every table with the file).
_V1_REKEYED_VIEWS = ("user_reservations", "book_reservations")
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) \((.*)\)", re.S)
_COLUMN = re.compile(r"^\s*(\w+) ([a-z<>, ]+?),?\s*$")


def statements(settings: Settings) -> list[str]:
    if not _IDENTIFIER.match(settings.keyspace):
        raise ValueError(f"keyspace name {settings.keyspace!r} is not a valid Cassandra identifier")
    replication = settings.replication()
    for datacenter, replicas in replication.items():
        if not _IDENTIFIER.match(datacenter.replace("-", "_")):
            raise ValueError(f"datacenter name {datacenter!r} is not valid")
        if replicas < 1:
            raise ValueError(f"the replication factor of {datacenter} must be at least 1")
    text = "\n".join(line for line in SCHEMA_FILE.read_text().splitlines() if not line.lstrip().startswith("--"))
    text = text.format(
        keyspace=settings.keyspace,
        replication=", ".join(f"'{datacenter}': {replicas}" for datacenter, replicas in replication.items()),
    )
    return [s.strip() for s in text.split(";") if s.strip()]


async def _columns(db: Database, keyspace: str, table: str) -> set[str]:
    result = await db.execute(
        "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?", [keyspace, table]
    )
    return {row.column_name for row in result.rows}


async def _upgrade_v1_tables(db: Database, keyspace: str) -> bool:
    """Brings version-1 tables to version 2's shape; True if there were any."""
    lock_columns = await _columns(db, keyspace, "reservation_by_book_id")
    if not lock_columns or "version" in lock_columns:
        return False
    log.warning("keyspace %s holds schema version 1: upgrading it to version %d", keyspace, SCHEMA_VERSION)
    for view in _V1_REKEYED_VIEWS:
        await db.execute_raw(f"DROP TABLE IF EXISTS {keyspace}.{view}")
    return True


async def _add_missing_columns(db: Database, statement: str) -> None:
    """A table that exists but lacks columns the file names (made by an earlier version) gets them added."""
    match = _CREATE_TABLE.match(statement)
    if match is None:
        return
    keyspace, table, body = match.groups()
    existing = await _columns(db, keyspace, table)
    if not existing:
        return
    wanted = [m.groups() for line in body.splitlines() if (m := _COLUMN.match(line)) and m.group(1) != "PRIMARY"]
    missing = [f"{name} {kind}" for name, kind in wanted if name not in existing and "PRIMARY KEY" not in kind]
    if missing:
        log.warning("adding columns to %s.%s: %s", keyspace, table, ", ".join(missing))
        await db.execute_raw(f"ALTER TABLE {keyspace}.{table} ADD ({', '.join(missing)})")


async def _recorded(db: Database, keyspace: str, version: int = SCHEMA_VERSION) -> bool:
    """Whether schema `version` was applied to the keyspace in full (its data upgrade included)."""
    if not await _columns(db, keyspace, "schema_version"):
        return False
    result = await db.execute(f"SELECT version FROM {keyspace}.schema_version WHERE version = ?", [version])
    return result.one() is not None


async def _drop_title_words(db: Database, keyspace: str) -> None:
    """Version 2's word index, replaced by `search_terms` (dropped after the backfill, never before)."""
    if "title_words" in await _columns(db, keyspace, "books"):
        log.warning("schema upgrade: dropping books.title_words, replaced by search_terms")
        await db.execute_raw(f"DROP INDEX IF EXISTS {keyspace}.books_title_words")
        await db.execute_raw(f"ALTER TABLE {keyspace}.books DROP title_words")


async def apply_schema(db: Database, settings: Settings) -> None:
    from app.repository import Library  # the data's upgrade is the repository's business

    # The driver waits for every node to agree on the schema after each of these statements.
    all_statements = statements(settings)
    keyspace = settings.keyspace
    await db.execute_raw(all_statements[0])  # the keyspace
    recorded = await _recorded(db, keyspace)
    books_have_terms = recorded or await _recorded(db, keyspace, BOOK_TERMS_VERSION)
    upgrading = await _upgrade_v1_tables(db, keyspace)
    for statement in all_statements[1:]:
        await _add_missing_columns(db, statement)
        await db.execute_raw(statement)
    if upgrading:
        upgraded = await Library(db).upgrade_locks()
        log.warning("schema upgrade: %s", upgraded)
    if not books_have_terms:
        # Every book gets its search terms (an empty catalogue costs one empty read).
        written = await Library(db).catalogue.backfill_search_terms()
        if written:
            log.warning("schema upgrade: search terms written for %d books", written)
        await _drop_title_words(db, keyspace)
    if not recorded:
        # Every card gets its search terms, for the desk's "find a reader" (no readers: one empty read).
        written = await Library(db).readers.backfill_search_terms()
        if written:
            log.warning("schema upgrade: search terms written for %d readers", written)
    await db.execute(
        f"INSERT INTO {keyspace}.schema_version (version, applied_at) VALUES (?, toTimestamp(now()))",
        [SCHEMA_VERSION],
    )
    log.info(
        "schema version %d applied to keyspace %s (replication %s, if it made the keyspace)",
        SCHEMA_VERSION,
        settings.keyspace,
        ", ".join(f"{dc} {n}" for dc, n in settings.replication().items()),
    )
