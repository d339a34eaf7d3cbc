"""Creates the keyspace and tables of app/schema.cql, idempotently; run at start-up."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from app.db import Database
from app.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).with_name("schema.cql")
SCHEMA_VERSION = 1
# The tables that hold the service's data, for tools that empty or scan a keyspace.
DATA_TABLES = ("books", "users", "reservation_by_book_id", "reservations", "user_reservations", "book_reservations")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


def statements(settings: Settings) -> list[str]:
    if not _IDENTIFIER.match(settings.keyspace):
        raise ValueError(f"keyspace name {settings.keyspace!r} is not a valid Cassandra identifier")
    if not _IDENTIFIER.match(settings.local_datacenter.replace("-", "_")):
        raise ValueError(f"datacenter name {settings.local_datacenter!r} is not valid")
    if settings.replication_factor < 1:
        raise ValueError("the replication factor must be at least 1")
    text = "\n".join(line for line in SCHEMA_FILE.read_text().splitlines() if not line.lstrip().startswith("--"))
    text = text.format(
        keyspace=settings.keyspace,
        datacenter=settings.local_datacenter,
        replication_factor=settings.replication_factor,
    )
    return [s.strip() for s in text.split(";") if s.strip()]


async def apply_schema(db: Database, settings: Settings) -> None:
    # The driver waits for every node to agree on the schema after each of these statements.
    for statement in statements(settings):
        await db.execute_raw(statement)
    await db.execute(
        f"INSERT INTO {settings.keyspace}.schema_version (version, applied_at) VALUES (?, toTimestamp(now()))",
        [SCHEMA_VERSION],
    )
    log.info(
        "schema version %d applied to keyspace %s (replication %d)",
        SCHEMA_VERSION,
        settings.keyspace,
        settings.replication_factor,
    )
