"""The repository layer: everything the service reads and writes in Cassandra.

`Library` is the one object the web layer, the seeder and the tools talk to; each part lives in
its own module: the catalogue and readers, the reservations with their locks, and the audit.
"""

from __future__ import annotations

from app.db import Database
from app.repository.audit import AuditRepository
from app.repository.base import PageTokens
from app.repository.catalogue import CatalogueRepository
from app.repository.reservations import ReservationRepository


class Library(CatalogueRepository, ReservationRepository, AuditRepository):
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ks = db.settings.keyspace
        self.pages = PageTokens(db.settings.page_token_secret or f"library-page-token:{self.ks}")

    async def ping(self) -> None:
        """A single-partition read of the service's keyspace at the configured consistency: it fails exactly
        when the reservations' reads would (too few replicas up), unlike a ping of one node's system tables."""
        await self.db.execute(self.cql("SELECT version FROM {ks}.schema_version WHERE version = 1"))


__all__ = ["Library"]
