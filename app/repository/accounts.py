"""Signing in and out: sessions, the sign-in lockout, and the log of what librarians did at the desk.

Every instance of the service reads and writes these rows in Cassandra at the configured consistency (a quorum),
so a token issued by one instance is accepted by all, a revoke ends it on all, and a lockout counts the attempts
made on all of them.

The lockout counts attempts, not failures, and each attempt is written before it is counted: `sign_in` inserts
an attempt row, then reads the card's newest rows. Why that bounds guessing even with many attempts at once:
order the attempts by when their read starts. Each attempt's write finished before its own read started, so the
k-th read starts after the writes of attempts 1..k finished, and a quorum read sees every write a quorum
acknowledged before it began: the k-th attempt counts at least k rows. So at most MAX_FAILED_SIGN_INS attempts
in any LOCKOUT_SECONDS are ever checked against the PIN, however many are sent at once, to however many
instances. A success clears the card's attempts; the partition is the card number as typed, so the answer is
the same for a card that does not exist.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid1

from cassandra.util import datetime_from_uuid1

from app.access import Caller
from app.credentials import new_token, pin_matches, token_digest
from app.db import Database
from app.models import Role, TooManyAttempts, Unauthenticated, User
from app.repository.base import RepositoryBase, now
from app.repository.readers import ReaderRepository
from app.rules import MAX_FAILED_SIGN_INS, SESSION_SECONDS

# How many days back the staff screen's log of desk actions reaches.
STAFF_LOG_DAYS = 7


@dataclass(frozen=True)
class StaffAction:
    acted_at: Any  # datetime (UTC)
    librarian_id: int
    librarian_name: str
    action: str
    user_id: int | None
    book_id: UUID | None
    reservation_id: UUID | None
    detail: str


class AccountRepository(RepositoryBase):
    def __init__(self, db: Database, readers: ReaderRepository) -> None:
        super().__init__(db)
        self.readers = readers
        self.lockout_seconds = db.settings.lockout_seconds

    # -- signing in ----------------------------------------------------------------------------------
    async def sign_in(self, card: int, pin: str) -> tuple[str, Caller]:
        """A new session for the card if `pin` is its PIN: the token (given to the client once, never stored) and who
        it signs in. Refused alike for a wrong PIN, an unknown card, a card without a PIN and a deactivated one
        (Unauthenticated); refused without looking at the PIN while the card is locked (TooManyAttempts)."""
        user = await self.checked_pin(card, pin)
        caller = Caller(user.user_id, user.role, user.name)
        return await self.issue_session(caller), caller

    async def checked_pin(self, card: int, pin: str) -> User:
        """The card, if `pin` is its PIN and it may sign in; each call is an attempt the lockout counts (module
        docstring), so guessing through any door (signing in, changing the PIN) is limited alike."""
        await self.db.execute(
            self.cql("INSERT INTO {ks}.sign_in_attempts (card, attempted_at) VALUES (?, ?) USING TTL ?"),
            [card, uuid1(), self.lockout_seconds],
            write=True,
        )
        attempts = await self.db.execute(
            self.cql("SELECT attempted_at FROM {ks}.sign_in_attempts WHERE card = ? LIMIT ?"),
            [card, MAX_FAILED_SIGN_INS + 1],
        )
        if len(attempts.rows) > MAX_FAILED_SIGN_INS:
            oldest = datetime_from_uuid1(attempts.rows[-1].attempted_at).replace(tzinfo=None)
            waited = (now() - oldest).total_seconds()
            raise TooManyAttempts(max(1, int(self.lockout_seconds - waited)))
        found = await self.readers.pin_hash(card)
        user, stored = found if found is not None else (None, None)
        matches = await asyncio.to_thread(pin_matches, stored, pin)
        if user is None or not matches or not user.active:
            raise Unauthenticated.wrong_card_or_pin()
        await self.db.execute(self.cql("DELETE FROM {ks}.sign_in_attempts WHERE card = ?"), [card], write=True)
        return user

    async def issue_session(self, caller: Caller, *, ttl_seconds: int = SESSION_SECONDS) -> str:
        """A new session for `caller` without a PIN, lasting `ttl_seconds`: for sign-in above, and for tools that
        already hold the database (the stress test, the bench), which are trusted with everything anyway."""
        token = new_token()
        digest = token_digest(token)
        # The card's list first, then the session: a session exists only once a revoke can find it. Two plain
        # writes rather than a logged batch, which needs two live peers besides the coordinator.
        await self.db.execute(
            self.cql("INSERT INTO {ks}.user_sessions (user_id, token_digest, issued_at) VALUES (?, ?, ?) USING TTL ?"),
            [caller.user_id, digest, now(), ttl_seconds],
            write=True,
        )
        await self.db.execute(
            self.cql(
                "INSERT INTO {ks}.sessions (token_digest, user_id, role, name, issued_at) VALUES (?, ?, ?, ?, ?)"
                " USING TTL ?"
            ),
            [digest, caller.user_id, caller.role.value, caller.name, now(), ttl_seconds],
            write=True,
        )
        return token

    async def caller_for(self, token: str) -> Caller | None:
        """Who a token signs in; None for a token that was never issued, has expired or was revoked."""
        row = (
            await self.db.execute(
                self.cql("SELECT user_id, role, name FROM {ks}.sessions WHERE token_digest = ?"), [token_digest(token)]
            )
        ).one()
        if row is None:
            return None
        return Caller(row.user_id, Role(row.role), row.name or "")

    async def sign_out(self, token: str) -> None:
        """Ends the session of `token` (a token that has ended already is no error)."""
        digest = token_digest(token)
        row = (
            await self.db.execute(self.cql("SELECT user_id FROM {ks}.sessions WHERE token_digest = ?"), [digest])
        ).one()
        await self.db.execute(self.cql("DELETE FROM {ks}.sessions WHERE token_digest = ?"), [digest], write=True)
        if row is not None:
            await self.db.execute(
                self.cql("DELETE FROM {ks}.user_sessions WHERE user_id = ? AND token_digest = ?"),
                [row.user_id, digest],
                write=True,
            )

    async def revoke_sessions(self, user_id: int) -> int:
        """Ends every session of the card, on every instance; answers how many there were. A sign-in that finishes
        while this runs keeps its new session: it came after the revoke, as a fresh sign-in would."""
        rows = (
            await self.db.execute(self.cql("SELECT token_digest FROM {ks}.user_sessions WHERE user_id = ?"), [user_id])
        ).rows
        for row in rows:
            await self.db.execute(
                self.cql("DELETE FROM {ks}.sessions WHERE token_digest = ?"), [row.token_digest], write=True
            )
            await self.db.execute(
                self.cql("DELETE FROM {ks}.user_sessions WHERE user_id = ? AND token_digest = ?"),
                [user_id, row.token_digest],
                write=True,
            )
        return len(rows)

    # -- what librarians did ---------------------------------------------------------------------------
    async def record_staff_action(
        self,
        librarian: Caller,
        action: str,
        detail: str,
        *,
        user_id: int | None = None,
        book_id: UUID | None = None,
        reservation_id: UUID | None = None,
    ) -> None:
        """A line in the staff log. Which of a librarian's actions get one is the service's rule (app/service.py)."""
        acted_at = uuid1()
        day = datetime_from_uuid1(acted_at).date()
        await self.db.execute(
            self.cql(
                "INSERT INTO {ks}.staff_actions (day, acted_at, librarian_id, librarian_name, action, user_id, book_id,"
                " reservation_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            [day, acted_at, librarian.user_id, librarian.name, action, user_id, book_id, reservation_id, detail],
            write=True,
        )

    async def staff_actions(self, *, limit: int = 100) -> list[StaffAction]:
        """The newest desk actions of the last STAFF_LOG_DAYS days, newest first."""
        today = now().date()
        days = [today - timedelta(days=n) for n in range(STAFF_LOG_DAYS)]
        results = await asyncio.gather(*(self._actions_of(day, limit) for day in days))
        actions = [a for day_actions in results for a in day_actions]
        return actions[:limit]

    async def _actions_of(self, day: date, limit: int) -> list[StaffAction]:
        result = await self.db.execute(
            self.cql(
                "SELECT acted_at, librarian_id, librarian_name, action, user_id, book_id, reservation_id, detail"
                " FROM {ks}.staff_actions WHERE day = ? LIMIT ?"
            ),
            [day, limit],
        )
        return [
            StaffAction(
                datetime_from_uuid1(r.acted_at).replace(tzinfo=None),
                r.librarian_id,
                r.librarian_name or "",
                r.action,
                r.user_id,
                r.book_id,
                r.reservation_id,
                r.detail or "",
            )
            for r in result.rows
        ]
