"""The repository layer: everything the service reads and writes in Cassandra.

`Library` is the one object the web layer, the seeder and the tools talk to; each part lives in
its own module: the catalogue and readers, the reservations with their locks, and the audit.
"""

from __future__ import annotations

from app.db import Database
from app.repository.audit import AuditRepository
from app.repository.catalogue import CatalogueRepository
from app.repository.reservations import ReservationRepository


class Library(CatalogueRepository, ReservationRepository, AuditRepository):
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ks = db.settings.keyspace


__all__ = ["Library"]
