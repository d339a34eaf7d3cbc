"""Signing in and out: sessions, the throttle on PIN guessing, and the log of what librarians did at the desk.

Every instance of the service reads and writes these rows in Cassandra at the configured consistency (a quorum),
so a token issued by one instance is accepted by all, a revoke ends it on all, and the throttle counts the attempts
made on all of them.

**Sessions** are bound to the card's life: a session row holds the card's `generation` (random, made with the card),
and `caller_for` reads the card at every request and accepts the session only while the card exists with that
generation and is active. Who the caller is (role, name) comes from the card, not from the session, so a librarian
made a reader (or deleted) is no longer staff at the next request. Deleting or deactivating a card also deletes its
sessions (the service's rule), but even a session that escaped that (a sign-in that finished while the card was
being deleted) signs nobody in once the card is gone, and a card made again under the same number has another
generation.

**The throttle** (the README's "Guessing PINs" says what it allows). PIN checks are counted per card and per *pool*:
the card's devices, each one a pool of its own (a browser or API client that signed in to this card before holds
a device token, sealed for the card's generation), and every other client together (`UNKNOWN_CLIENTS`). In a pool,
at most MAX_FAILED_SIGN_INS attempts in any LOCKOUT_SECONDS and MAX_SIGN_INS_PER_DAY in a day are checked against
the PIN; more are refused (429) without looking at the PIN. A stranger's guesses fill the unknown clients' pool
only, so the holder still signs in on a device they have used before, and, signed in, still changes their PIN (the
current PIN typed for that counts in a pool of the card's sessions, `SIGNED_IN`); a librarian's new PIN (or the
holder's own) lifts every lock of the card (`lift_locks`).

Each attempt is written before it is counted: an attempt inserts its row into its pool, then reads the pool's
newest rows. Why that bounds guessing even with many attempts at once: order the attempts whose PIN was checked by
when their read started. Each one's write finished before its own read started, so the k-th read starts after the
writes of checked attempts 1..k finished, and a quorum read sees every write a quorum acknowledged before it began:
the k-th checked attempt counts at least k rows. So at most the limit is ever checked, however many attempts are
sent at once, to however many instances. An attempt to a pool that is locked already is refused before it writes
anything, so hammering a locked card neither makes its lock last longer nor leaves a row or a tombstone per request
(the pool is read newest first: a tombstone per refused attempt would pile up right where every read starts, until
Cassandra refuses the read). Only an attempt that raced past that first read and is refused after writing deletes
its row again (the bound counts only checked attempts). A success clears a pool of the card's own (a device's, the
sessions'); in the unknown clients' pool it takes back its own attempt only, so the holder's signing in never hands
a stranger fresh guesses. The partition is the card number as typed, so the answers are the same for a card that
does not exist.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid1, uuid4

from cassandra.util import datetime_from_uuid1

from app.access import Caller
from app.credentials import new_token, pin_matches, token_digest
from app.db import Database
from app.models import TooManyAttempts, Unauthenticated, User
from app.repository.base import RepositoryBase, Seal, now
from app.repository.readers import ReaderRepository
from app.rules import (
    DAY_WINDOW_IN_LOCKOUTS,
    MAX_DEVICE_TOKEN,
    MAX_FAILED_SIGN_INS,
    MAX_SIGN_INS_PER_DAY,
    SESSION_SECONDS,
    check_pin_as_typed,
)

# How many days back the staff screen's log of desk actions reaches.
STAFF_LOG_DAYS = 7
# The pool of every client a card does not know (no device token of this card).
UNKNOWN_CLIENTS = "any"
# The pool of the card's signed-in sessions: the current PIN typed to change it (`checked_pin`).
SIGNED_IN = "signed-in"


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


@dataclass(frozen=True)
class SignIn:
    """A sign-in that worked: the session's token (given to the client once, never stored), who it signs in, and
    the device token the client sends back at its next sign-in to this card (its own pool of the throttle)."""

    token: str
    caller: Caller
    device: str


class DeviceTokens:
    """A device token names one client (a browser, an API client) that signed in to a card: the card, its generation
    and a random id, sealed, so nobody can make one for a card they have never signed in to."""

    SCOPE = "device"

    def __init__(self, seal: Seal) -> None:
        self.seal = seal

    def new(self, user: User) -> str:
        return self.seal.seal(json.dumps([user.user_id, str(user.generation), uuid4().hex]).encode(), self.SCOPE)

    def pool(self, token: str | None, user: User | None) -> str:
        """The pool a sign-in to `user`'s card counts in: the device's own, for a token sealed for this very card
        (number and generation), else the unknown clients'."""
        if not token or user is None:
            return UNKNOWN_CLIENTS
        payload = self.seal.open(token, self.SCOPE, max_length=MAX_DEVICE_TOKEN)
        try:
            card, generation, device = json.loads(payload) if payload is not None else (None, None, None)
        except (ValueError, TypeError):
            return UNKNOWN_CLIENTS
        if card != user.user_id or generation != str(user.generation) or not isinstance(device, str):
            return UNKNOWN_CLIENTS
        return f"device:{device}"


def _limits(lockout_seconds: int) -> tuple[tuple[int, timedelta], ...]:
    """The throttle's limits on one pool: at most so many PIN checks in any window of so long."""
    return (
        (MAX_FAILED_SIGN_INS, timedelta(seconds=lockout_seconds)),
        (MAX_SIGN_INS_PER_DAY, timedelta(seconds=lockout_seconds * DAY_WINDOW_IN_LOCKOUTS)),
    )


def lock_end(attempts: list[datetime], at: datetime, lockout_seconds: int) -> datetime | None:
    """When a pool whose attempts (newest first) are `attempts` takes its next PIN check, or None if it takes one
    now: at most MAX_FAILED_SIGN_INS in any `lockout_seconds`, and MAX_SIGN_INS_PER_DAY in the day window."""
    ends = []
    for most, window in _limits(lockout_seconds):
        inside = [t for t in attempts if t > at - window]
        if len(inside) >= most:
            ends.append(inside[most - 1] + window)
    return max(ends) if ends else None


def attempts_left(attempts: list[datetime], at: datetime, lockout_seconds: int) -> int:
    """How many more attempts the pool takes before it locks, its attempts (newest first) being `attempts`."""
    return min(max(0, most - sum(1 for t in attempts if t > at - window)) for most, window in _limits(lockout_seconds))


def _refuse_until(locked_until: datetime | None, at: datetime) -> None:
    """A 429 (TooManyAttempts) while a pool is locked until `locked_until`; nothing when it is not locked."""
    if locked_until is not None:
        raise TooManyAttempts(max(1, int((locked_until - at).total_seconds())))


class AccountRepository(RepositoryBase):
    def __init__(self, db: Database, readers: ReaderRepository, seal: Seal) -> None:
        super().__init__(db)
        self.readers = readers
        self.devices = DeviceTokens(seal)
        self.lockout_seconds = db.settings.lockout_seconds
        self.day_seconds = self.lockout_seconds * DAY_WINDOW_IN_LOCKOUTS

    # -- signing in ----------------------------------------------------------------------------------
    async def sign_in(self, card: int, pin: str, device: str | None = None) -> SignIn:
        """A new session for the card if `pin` is its PIN (`device`: the token a client got at an earlier sign-in to
        this card). Refused alike for a wrong PIN, an unknown card and a card without a PIN (Unauthenticated, with
        the tries left); a deactivated card is told so, after its right PIN only; refused without looking at the
        PIN while this client's pool of the card is locked (TooManyAttempts)."""
        user, pool = await self._checked(card, pin, device)
        caller = Caller(user.user_id, user.role, user.name)
        token = await self.issue_session(caller)
        return SignIn(token, caller, device if pool != UNKNOWN_CLIENTS and device else self.devices.new(user))

    async def checked_pin(self, card: int, pin: str) -> User:
        """The card, if `pin` is its PIN and it may sign in: the current PIN a signed-in holder types to change it.
        Each call is an attempt the throttle counts (module docstring), so guessing through any door is limited
        alike; it counts in the pool of the card's own sessions (SIGNED_IN), which only a client signed in to the
        card can add to, so a stranger who has used up the unknown clients' pool cannot keep the holder from changing
        the PIN they fear is being guessed."""
        user, _ = await self._checked(card, pin, None, pool=SIGNED_IN)
        return user

    async def _checked(self, card: int, pin: str, device: str | None, *, pool: str = "") -> tuple[User, str]:
        pin = check_pin_as_typed(pin)
        found = await self.readers.pin_hash(card)
        user, stored = found if found is not None else (None, None)
        pool = pool or self.devices.pool(device, user)
        # A pool locked already is refused before anything is written (no row, so no tombstone: module docstring).
        await self._refuse_if_locked(card, pool)
        attempt = uuid1()
        await self.db.execute(
            self.cql("INSERT INTO {ks}.pin_attempts (card, pool, attempted_at) VALUES (?, ?, ?) USING TTL ?"),
            [card, pool, attempt, self.day_seconds],
            write=True,
        )
        at = now()
        before = [t for u, t in await self._attempts(card, pool) if u != attempt]
        try:
            _refuse_until(lock_end(before, at, self.lockout_seconds), at)
        except TooManyAttempts:
            # Raced past the first read and refused without a check: the row goes again, so a locked card's lock ends
            # when its checks age out.
            await self.db.execute(
                self.cql("DELETE FROM {ks}.pin_attempts WHERE card = ? AND pool = ? AND attempted_at = ?"),
                [card, pool, attempt],
                write=True,
            )
            raise
        matches = await asyncio.to_thread(pin_matches, stored, pin)
        if user is None or not matches:
            raise Unauthenticated.wrong_card_or_pin(attempts_left([at, *before], at, self.lockout_seconds))
        if pool == UNKNOWN_CLIENTS:
            # The right PIN takes back its own attempt only: the others in this pool may be a stranger's, and
            # clearing them would give the stranger a fresh 5 each time the holder signs in from a client the card
            # does not know (a new browser, an API client that does not send `device`).
            await self.db.execute(
                self.cql("DELETE FROM {ks}.pin_attempts WHERE card = ? AND pool = ? AND attempted_at = ?"),
                [card, pool, attempt],
                write=True,
            )
        else:  # a pool of the card's own device or sessions: every attempt in it was the holder's
            await self.db.execute(
                self.cql("DELETE FROM {ks}.pin_attempts WHERE card = ? AND pool = ?"), [card, pool], write=True
            )
        if not user.active:
            raise Unauthenticated.card_deactivated()  # the PIN was right: this tells a guesser nothing
        return user, pool

    async def _refuse_if_locked(self, card: int, pool: str) -> None:
        at = now()
        _refuse_until(lock_end([t for _, t in await self._attempts(card, pool)], at, self.lockout_seconds), at)

    async def _attempts(self, card: int, pool: str) -> list[tuple[UUID, datetime]]:
        """The pool's newest attempts, as many as any limit counts, newest first."""
        rows = await self.db.execute(
            self.cql("SELECT attempted_at FROM {ks}.pin_attempts WHERE card = ? AND pool = ? LIMIT ?"),
            [card, pool, max(MAX_FAILED_SIGN_INS, MAX_SIGN_INS_PER_DAY) + 1],
        )
        return [(r.attempted_at, datetime_from_uuid1(r.attempted_at).replace(tzinfo=None)) for r in rows.rows]

    async def sign_in_lock(self, card: int) -> datetime | None:
        """Until when (UTC) signing in to the card is locked for the clients it does not know, or None: what a
        stranger's guesses can do to a card, for the staff screens."""
        attempts = [t for _, t in await self._attempts(card, UNKNOWN_CLIENTS)]
        return lock_end(attempts, now(), self.lockout_seconds)

    async def lift_locks(self, card: int) -> None:
        """Forgets every attempt on the card, in every pool: a new PIN makes the guesses at the old one moot, and a
        card number handed out again starts with none."""
        await self.db.execute(self.cql("DELETE FROM {ks}.pin_attempts WHERE card = ?"), [card], write=True)

    async def issue_session(self, caller: Caller, *, ttl_seconds: int = SESSION_SECONDS) -> str:
        """A new session for the card of `caller` without a PIN, lasting `ttl_seconds`: for sign-in above, and for
        tools that already hold the database (the stress test, the bench), which are trusted with everything anyway.
        It is bound to the card as it is now (its generation); a card that does not exist gets none."""
        user = await self.readers.get_user(caller.user_id)
        token = new_token()
        digest = token_digest(token)
        # The card's list first, then the session: a session exists only once a revoke can find it. Two plain
        # writes rather than a logged batch, which needs two live peers besides the coordinator.
        await self.db.execute(
            self.cql("INSERT INTO {ks}.user_sessions (user_id, token_digest, issued_at) VALUES (?, ?, ?) USING TTL ?"),
            [user.user_id, digest, now(), ttl_seconds],
            write=True,
        )
        await self.db.execute(
            self.cql(
                "INSERT INTO {ks}.sessions (token_digest, user_id, generation, issued_at) VALUES (?, ?, ?, ?)"
                " USING TTL ?"
            ),
            [digest, user.user_id, user.generation, now(), ttl_seconds],
            write=True,
        )
        return token

    async def caller_for(self, token: str) -> Caller | None:
        """Who a token signs in, as their card says now; None for a token that was never issued, has expired or was
        revoked, and for one whose card has been deleted (or made again: another generation) or deactivated."""
        row = (
            await self.db.execute(
                self.cql("SELECT user_id, generation FROM {ks}.sessions WHERE token_digest = ?"), [token_digest(token)]
            )
        ).one()
        if row is None:
            return None
        user = await self.readers.find_user(row.user_id)
        if user is None or user.generation != row.generation or not user.active:
            return None
        return Caller(user.user_id, user.role, user.name)

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
