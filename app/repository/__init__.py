"""The repository layer: everything the service reads and writes in Cassandra.

`Library` is the one object the web layer, the seeder and the tools talk to; each part lives in
its own module: the catalogue and readers, the reservations with their locks, and the audit.
"""

from __future__ import annotations

from collections.abc import Callable

from app.db import Database
from app.repository.audit import AuditRepository
from app.repository.base import PageTokens
from app.repository.catalogue import CatalogueRepository
from app.repository.clock import VersionClock
from app.repository.reservations import ReservationRepository, Step
from app.schema import SCHEMA_VERSION


class Library(CatalogueRepository, ReservationRepository, AuditRepository):
    def __init__(self, db: Database, *, wall_ns: Callable[[], int] | None = None) -> None:
        """`wall_ns` replaces the wall clock the lock versions start from (tests give instances skewed clocks)."""
        self.db = db
        self.ks = db.settings.keyspace
        self.pages = PageTokens(db.settings.page_token_secret or f"library-page-token:{self.ks}")
        self.clock = VersionClock(wall_ns) if wall_ns else VersionClock()
        # Named points inside operations where a test may pause one (see ReservationRepository._step).
        self.steps: dict[str, Step] = {}

    async def ping(self) -> None:
        """A single-partition read of the service's keyspace at the configured consistency: it fails exactly
        when the reservations' reads would (too few replicas up), unlike a ping of one node's system tables."""
        await self.db.execute(self.cql("SELECT version FROM {ks}.schema_version WHERE version = ?"), [SCHEMA_VERSION])


__all__ = ["Library"]
