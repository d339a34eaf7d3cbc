"""Idempotency keys: a client that may retry a reserve sends a key; the reservation id is derived from reader, book
and key (app/models.py), and the first request with it claims it with `INSERT ... IF NOT EXISTS`. A retry finds the
claim and never takes the lock itself, so a late duplicate of a reserve cannot bring back a reservation cancelled
after it; it answers what became of the first request, from the outcome that request recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from uuid import UUID, uuid4

from app.db import Database, OutcomeUnknown
from app.models import DatabaseUnavailable

log = logging.getLogger(__name__)


class KeyOutcome(StrEnum):
    """What became of the first request with a key, as it recorded it."""

    CLAIMED = "claimed"  # at work (or dead before it recorded anything)
    MADE = "made"  # the reservation is complete: nothing can undo it any more
    TAKEN = "taken"  # refused: another reservation held the book
    MISSING = "missing"  # refused: no such book or reader
    UNDONE = "undone"  # failed, and took back all it wrote: a retry may make it again


@dataclass(frozen=True)
class Claim:
    outcome: KeyOutcome
    attempt: UUID  # the claiming request's own token


class KeyStore(Protocol):
    async def claim(self, reservation_id: UUID, user_id: int, book_id: UUID) -> bool: ...

    async def read(self, reservation_id: UUID) -> Claim | None: ...

    async def record(self, reservation_id: UUID, outcome: KeyOutcome) -> None: ...

    async def take_over(self, reservation_id: UUID, first: Claim) -> bool: ...


_CLAIM = (
    "INSERT INTO {ks}.reservation_keys (reservation_id, user_id, book_id, outcome, attempt) "
    "VALUES (?, ?, ?, 'claimed', ?) IF NOT EXISTS"
)
_READ = "SELECT outcome, attempt FROM {ks}.reservation_keys WHERE reservation_id = ?"
_RECORD = "UPDATE {ks}.reservation_keys SET outcome = ? WHERE reservation_id = ?"
_TAKE_OVER = (
    "UPDATE {ks}.reservation_keys SET outcome = 'claimed', attempt = ? WHERE reservation_id = ? "
    "IF outcome = 'undone' AND attempt = ?"
)


class CassandraKeys:
    """The `reservation_keys` table. A claim or take-over whose answer was lost is read back once at SERIAL: each
    request writes a token of its own, so the row tells whose it is. When the row shows neither, nothing was
    claimed, and the client is told to try again (with the same key)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.ks = db.settings.keyspace

    def cql(self, text: str) -> str:
        return text.replace("{ks}", self.ks)

    async def claim(self, reservation_id: UUID, user_id: int, book_id: UUID) -> bool:
        attempt = uuid4()
        return await self._conditional(_CLAIM, [reservation_id, user_id, book_id, attempt], reservation_id, attempt)

    async def take_over(self, reservation_id: UUID, first: Claim) -> bool:
        attempt = uuid4()
        return await self._conditional(_TAKE_OVER, [attempt, reservation_id, first.attempt], reservation_id, attempt)

    async def _conditional(self, cql: str, params: list[object], reservation_id: UUID, attempt: UUID) -> bool:
        try:
            return (await self.db.execute(self.cql(cql), params, write=True)).was_applied
        except OutcomeUnknown:
            claim = await self.read(reservation_id, serial=True)
            if claim is not None and claim.attempt == attempt:
                return True
            if claim is None or claim.outcome is KeyOutcome.UNDONE:
                raise DatabaseUnavailable(
                    "database unavailable: the reservation could not be confirmed; nothing was reserved"
                ) from None
            return False

    async def read(self, reservation_id: UUID, *, serial: bool = False) -> Claim | None:
        consistency = self.db.serial_consistency if serial else None
        row = (await self.db.execute(self.cql(_READ), [reservation_id], consistency=consistency)).one()
        return None if row is None else Claim(KeyOutcome(row.outcome), row.attempt)

    async def record(self, reservation_id: UUID, outcome: KeyOutcome) -> None:
        try:
            await self.db.execute(self.cql(_RECORD), [outcome.value, reservation_id], write=True)
        except DatabaseUnavailable:
            log.warning("could not record outcome %s of idempotency key of %s", outcome, reservation_id)
