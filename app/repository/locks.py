"""A book's lock as one state machine: its named states, one table of transitions, and one runner.

The lock row `reservation_by_book_id` (one per book, created with it, never deleted) is the only truth about who
holds a book. Only the transitions below write it, each a lightweight transaction whose condition names the state
it leaves and includes `version < new` or `version = expected` with new > expected, so a lock's version strictly
grows with every transition, on every replica, whatever the app instances' clocks say (app/repository/clock.py).
`docs/reservation-protocol.md` has one row per transition and per state: its condition, the views written and at
which version, why every race with every other transition is safe, and the test that shows it.

States (`LockState`):
- FREE: nobody holds the book.
- HELD: a confirmed hold of `reservation_id`; the only state whose views exist. A held book the reader collected at
  the desk is on loan (`lent_at` set): only the desk's return ends that hold, never the reader's cancel or an expiry.
- INCOMING: the target of a move not yet confirmed: taken for `reservation_id`, coming from `move_from`, which it
  held at `move_from_version`. Nothing writes views for it. The move's fate is decided on the source lock.
- OUTGOING: the source of a move that is decided: `reservation_id` goes to `moved_to`. Nobody may take the book
  until the target is confirmed and the views follow; whoever meets it finishes the move.
- WITHDRAWN: the book was deleted.

The book's queue lives in the same row (`waiting`: each queued reader's entry, `Waiting`), so every rule of the queue
is a condition of one transition: a reader joins a held book only if they are neither its holder nor queued already
(JOIN), a take or a release needs an empty queue, and a hand-off (HELD to the next reader) or a promotion (a FREE lock
to the next reader, after a move left it) names the entry it takes. The entries' order is the order of the joins:
each join sets `queue_seq` above its value, and the entry carries it. A reader who suspends their place has their
entry moved to `suspended`, which hand-offs never read and takes do not ask to be empty, and back when they resume.

The runner (`LockRunner.run`) is the only code that sends a transition. It chooses the new version, sends it, and
on a lost answer reads the lock once at SERIAL, which completes or forever supersedes the unfinished Paxos round:
the transition applied if the lock shows the state it writes at a version one of its own sends proposed. A send
refused only because its version was not above the lock's (a clock behind) is sent again from the lock's version.
It answers applied (with the lock it made) or refused (with the lock it met); it raises DatabaseUnavailable when
Cassandra cannot say. Nothing else retries a lightweight transaction. A transition marked `refused_by_read` (a take,
a move's take of its target) may be looked at first (`LockRunner.look`): one QUORUM read of the lock, and a lock that
refuses it is the answer, with no Paxos round.

The store is an interface (`LockTable`): Cassandra's here (`CassandraLockTable`), and an in-memory model of what
Cassandra promises in the schedule search (tests/schedules/), which runs this same table and runner.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from cassandra import InvalidRequest, ReadFailure
from cassandra.metadata import Murmur3Token

from app import metrics
from app.db import Database, OutcomeUnknown
from app.models import DatabaseUnavailable, Place, Reservation
from app.repository.clock import VersionClock

log = logging.getLogger(__name__)

# A transition whose answer was lost, or whose version was too low, is sent again at most this often; a SERIAL read
# that times out under contention is tried again this often, with backoff, before the database is called unavailable.
ATTEMPTS = 5
# Rows per page of an indexed read of held locks (`read_held_between`): a catalogue page's span holds at most as many
# locks as the page has books.
HELD_PER_PAGE = 1000


class LockState(StrEnum):
    FREE = "free"
    HELD = "held"
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    WITHDRAWN = "withdrawn"


# Every column of the lock row but its key, in this order.
LOCK_FIELDS = (
    "state",
    "reservation_id",
    "user_id",
    "reserved_at",
    "version",
    "moved_to",
    "move_from",
    "move_from_version",
    "freed_at",
    "waiting",
    "queue_seq",
    "ready_until",
    "renewals",
    "handed_at",
    "suspended",
    "resume_at",
    "suspend_seq",
    "lent_at",
)


@dataclass(frozen=True)
class Waiting:
    """One reader in a book's queue: the reservation they will hold, and `joined`, the lock's `queue_seq` that their
    join set. Joins of one lock are linearizable and each sets `queue_seq` above its value, so entries sort in the
    order the readers joined, whatever the instances' clocks say; a position is counted when read, never stored."""

    user_id: int
    joined: int
    reservation_id: UUID
    suspended_until: datetime | None = None

    def cell(self) -> tuple[int, UUID, datetime | None]:
        """The entry as the lock row stores it (the map's value; the key is the reader)."""
        return (self.joined, self.reservation_id, self.suspended_until)


@dataclass(frozen=True)
class Lock:
    """One book's lock row. `state` None: no row (the book does not exist, or never had a lock). After a refused
    transition, only the columns its condition names are known (Cassandra returns those); the others are None."""

    book_id: UUID
    state: LockState | None
    reservation_id: UUID | None = None
    user_id: int | None = None
    reserved_at: datetime | None = None
    version: int | None = None
    moved_to: UUID | None = None  # OUTGOING: the book the reservation is going to
    move_from: UUID | None = None  # INCOMING: the book the reservation comes from ...
    move_from_version: int | None = None  # ... which it held at this version when the move began
    freed_at: int | None = None  # the version of the last transition into FREE: every state before it has ended
    waiting: tuple[Waiting, ...] = ()  # the queue, in the order of the joins
    queue_seq: int | None = None  # the `joined` of the last join (None: nobody ever joined)
    ready_until: datetime | None = None  # HELD: the end of the pickup window (None: a hold made before it existed)
    renewals: int | None = None  # HELD: how often the hold was renewed
    handed_at: int | None = None  # the version of the last hand-off: every hold it ended ended at or below it
    suspended: tuple[Waiting, ...] = ()  # the queue's suspended entries, skipped by hand-offs, in the order of joins
    resume_at: datetime | None = None  # the earliest end of a suspension here (the sweep finds it by its index)
    suspend_seq: int | None = None  # raised by each change of `suspended`, which each requires as read
    lent_at: datetime | None = None  # HELD: when the reader collected the book at the desk (on loan until returned)

    def holds(self, reservation_id: UUID) -> bool:
        """A confirmed hold of this reservation."""
        return self.state is LockState.HELD and self.reservation_id == reservation_id

    def involves(self, reservation_id: UUID) -> bool:
        """Held by the reservation, or in a move's in-between state for it."""
        return self.reservation_id == reservation_id and self.state in IN_USE

    @property
    def in_between(self) -> bool:
        return self.state in (LockState.INCOMING, LockState.OUTGOING)

    def reservation(self) -> Reservation:
        assert self.reservation_id is not None and self.user_id is not None and self.reserved_at is not None
        return Reservation(
            self.reservation_id, self.book_id, self.user_id, self.reserved_at, self.ready_until, self.lent_at
        )

    def expired(self, at: datetime) -> bool:
        """A hold whose pickup window ended before `at`."""
        return self.state is LockState.HELD and self.ready_until is not None and self.ready_until < at

    def queued(self, user_id: int) -> Waiting | None:
        """The reader's active entry in the book's queue (not suspended)."""
        return next((entry for entry in self.waiting if entry.user_id == user_id), None)

    def suspension(self, user_id: int) -> Waiting | None:
        """The reader's suspended entry in the book's queue."""
        return next((entry for entry in self.suspended if entry.user_id == user_id), None)

    def in_queue(self, user_id: int) -> Waiting | None:
        """The reader's entry, active or suspended."""
        return self.queued(user_id) or self.suspension(user_id)

    @property
    def queue(self) -> tuple[Waiting, ...]:
        """Every entry, active or suspended, in the order of the joins: a suspended reader keeps their place."""
        return tuple(sorted(self.waiting + self.suspended, key=lambda w: w.joined))

    def position(self, user_id: int) -> int | None:
        """The reader's place in the queue, from 1, counting the suspended entries before it."""
        return next((n for n, entry in enumerate(self.queue, 1) if entry.user_id == user_id), None)

    def due(self, at: datetime) -> tuple[Waiting, ...]:
        """The suspended entries whose suspension ended before `at`."""
        return tuple(w for w in self.suspended if w.suspended_until is not None and w.suspended_until <= at)

    def next_in_line(self) -> Waiting | None:
        """Whom the book goes to when its holder lets it go."""
        return self.waiting[0] if self.waiting else None

    def element(self, column: str, key: Any) -> Any:
        """A map column's value at `key`, as Cassandra compares it in a condition (None: no such element)."""
        assert column in _QUEUE_MAPS, column
        entry = self.queued(key) if column == "waiting" else self.suspension(key)
        return entry.cell() if entry is not None else None


# The lock's two maps of queue entries (reader -> Waiting.cell()): the active ones, and the suspended ones.
_QUEUE_MAPS = ("waiting", "suspended")


IN_USE = (LockState.HELD, LockState.INCOMING, LockState.OUTGOING)


def lock_from_row(book_id: UUID, row: Any) -> Lock:
    if row is None:
        return Lock(book_id, None)
    values: dict[str, Any] = {name: getattr(row, name, None) for name in LOCK_FIELDS}
    state = values.pop("state")
    values["waiting"] = queue_of(values["waiting"])
    values["suspended"] = queue_of(values["suspended"])
    return Lock(book_id, LockState(state) if state else None, **values)


def place_in(lock: Lock, user_id: int) -> Place:
    """The reader's place in the lock's queue (a suspended entry keeps its place, and says until when)."""
    entry, position = lock.in_queue(user_id), lock.position(user_id)
    assert entry is not None and position is not None
    return Place(entry.reservation_id, lock.book_id, user_id, position, len(lock.queue), entry.suspended_until)


def queue_of(cells: dict[int, tuple[int, UUID, datetime | None]] | None) -> tuple[Waiting, ...]:
    """The `waiting` map as read (reader -> (joined, reservation, suspended until)), in the order of the joins."""
    return tuple(sorted((Waiting(user_id, *cell) for user_id, cell in (cells or {}).items()), key=lambda w: w.joined))


# -- the table of transitions -------------------------------------------------------------------------------------
# A value in a condition or an assignment is a literal (a state, None) or one of these names, bound when it is run:
NEW = "new"  # the version the runner chooses
EXPECTED = "expected"  # the version a transition requires the lock to be at


@dataclass(frozen=True)
class Param:
    """A value given when the transition is run (NEW and EXPECTED are the runner's)."""

    name: str


@dataclass(frozen=True)
class Element:
    """A map column's element, `column[key]`, in a condition or an assignment (None assigned: removed)."""

    column: str
    key: Any  # a Param


@dataclass(frozen=True)
class Condition:
    column: str | Element
    op: str  # '=', '!=' or '<'
    value: Any  # a literal, or a Param

    def holds(self, lock: Lock, values: dict[str, Any]) -> bool:
        """Cassandra's own evaluation: a missing row has every column null, and so has an empty map; `null < x` is
        false; `null != x` is true."""
        current = _current(lock, self.column, values)
        wanted = _bind(self.value, values)
        if self.op == "=":
            return bool(current == wanted)
        if self.op == "!=":
            return bool(current != wanted)
        return current is not None and wanted is not None and current < wanted

    @property
    def below_new(self) -> bool:
        """`column < new`: it only ever fails for a version too low, and the runner then sends again, higher."""
        return self.op == "<" and self.value == Param(NEW)


@dataclass(frozen=True)
class Transition:
    """One entry of the table: its name, the states it leaves from, its condition, the row it leaves (its
    assignments), and what the use case that runs it does to the views (`views`, and docs/reservation-protocol.md,
    which says why each race is safe). `insert`: the row is created if there is none (`IF NOT EXISTS`).
    `refused_by_read`: the use cases look at the lock with a QUORUM read before sending it (`LockRunner.look`), and a
    lock that `refuses` the transition is the answer, without a Paxos round (for the transitions that mostly meet a
    book someone holds: a take, a move's take of its target). The refusal is as linearizable as a refused Paxos round
    (docs/reservation-protocol.md, rule 7)."""

    name: str
    leaves: tuple[LockState | None, ...]
    when: tuple[Condition, ...]
    sets: dict[Any, Any] = field(default_factory=dict)  # a column's name, or a map's Element
    insert: bool = False
    views: str = ""
    refused_by_read: bool = False

    def refuses(self, lock: Lock, values: dict[str, Any]) -> bool:
        """Whether `lock` refuses this transition whatever version the runner would choose: a condition other than
        `version < new` fails on it (that one only ever makes the runner send again, higher)."""
        return any(not c.holds(lock, values) for c in self.when if not c.below_new)

    def failing(self, lock: Lock, values: dict[str, Any]) -> list[Condition]:
        if self.insert:
            return [] if lock.state is None else [Condition("state", "=", None)]
        return [c for c in self.when if not c.holds(lock, values)]

    def only_version_too_low(self, lock: Lock, values: dict[str, Any]) -> bool:
        failing = self.failing(lock, values)
        return bool(failing) and all(c.below_new for c in failing)

    @property
    def stamp(self) -> str | None:
        """The column this transition sets to the new version it proposes (`version`, or a join's `queue_seq`): the
        runner tells its own lost send by it. None: it sets none (leave); a lost answer is never taken as its own."""
        stamped = [column for column, value in self.sets.items() if value == Param(NEW) and isinstance(column, str)]
        return "version" if "version" in stamped else next(iter(stamped), None)

    def result(self, book_id: UUID, values: dict[str, Any], before: Lock | None) -> Lock:
        """The lock this transition leaves; the columns it does not set are kept from `before`, the lock it left."""
        base = before if before is not None else Lock(book_id, None)
        assigned = {column: _bind(value, values) for column, value in self.sets.items() if isinstance(column, str)}
        maps = {name: {entry.user_id: entry for entry in getattr(base, name)} for name in _QUEUE_MAPS}
        for column, value in self.sets.items():
            if isinstance(column, Element):
                user_id, cell = _bind(column.key, values), _bind(value, values)
                if cell is None:
                    maps[column.column].pop(user_id, None)
                else:
                    maps[column.column][user_id] = Waiting(user_id, *cell)
        for name, entries in maps.items():
            assigned[name] = tuple(sorted(entries.values(), key=lambda w: w.joined))
        state = assigned.pop("state", base.state)
        return replace(base, book_id=book_id, state=LockState(state) if state else None, **assigned)

    def made(self, lock: Lock, values: dict[str, Any]) -> bool:
        """Whether `lock` is the state this transition writes with these values, its version aside (the runner checks
        that the version is one it proposed): the columns it sets, and those its condition pins and it keeps (whose
        reservation it is). A state nobody owns (FREE, WITHDRAWN) never says whose transition made it: two requests
        can propose the same version, so such a match is never taken as this request's own."""
        if self.sets.get("state") in (LockState.FREE.value, LockState.WITHDRAWN.value) or self.stamp is None:
            return False
        values = {**values, NEW: getattr(lock, self.stamp)}  # a join's entry carries the version it proposed
        wanted = {
            column: _bind(value, values)
            for column, value in self.sets.items()
            if column != self.stamp and column not in _NOT_IDENTITY
        }
        kept = {c.column: _bind(c.value, values) for c in self.when if c.op == "=" and c.column not in self.sets}
        kept.pop("version", None)
        return all(_current(lock, column, values) == value for column, value in (wanted | kept).items())


# Columns a transition sets that say nothing of whose transition it was, and that a refusal's answer (the columns its
# condition names) does not carry: `made` leaves them out, or it would never know its own take in a refused answer.
_NOT_IDENTITY = frozenset({"ready_until", "renewals", "handed_at", "lent_at"})


def _current(lock: Lock, column: str | Element, values: dict[str, Any]) -> Any:
    """A column's value as a condition compares it: a map's element, and an empty map as null."""
    if isinstance(column, Element):
        return lock.element(column.column, _bind(column.key, values))
    current = getattr(lock, column)
    return None if current == () else current


def _bind(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, tuple):  # a map element's value (a queue entry)
        return tuple(_bind(v, values) for v in value)
    return values[value.name] if isinstance(value, Param) else value


def _is(state: LockState | None) -> Condition:
    return Condition("state", "=", state.value if state else None)


def _version_below_new() -> Condition:
    return Condition("version", "<", Param(NEW))


def _version_is_expected() -> Condition:
    return Condition("version", "=", Param(EXPECTED))


_RID, _UID, _AT = Param("reservation_id"), Param("user_id"), Param("reserved_at")
# Every transition into HELD, and a renewal, sets the pickup window and the count of renewals.
_WINDOW = {"ready_until": Param("ready_until"), "renewals": Param("renewals")}
_FROM, _FROM_VERSION, _TO = Param("move_from"), Param("move_from_version"), Param("moved_to")
# Each transition into FREE nulls only what its source state has set: every null is a tombstone cell that reads of
# the row step over, so a reserve/cancel cycle leaves three, as before the move's columns existed. It also records
# its version in `freed_at`, which later takes leave alone: a request that lost the answer of its own release can
# still delete what it released at a version above every state that ended (Reservations.cancel).
_NOBODY = {"reservation_id": None, "user_id": None, "reserved_at": None, "freed_at": Param(NEW)}
# On a refused take, Cassandra returns the columns the condition names: these name who holds the book (a free lock
# has them all null, since every transition into FREE clears them).
_FREE_OF_ANYONE = (
    Condition("reservation_id", "=", None),
    Condition("user_id", "=", None),
    Condition("reserved_at", "=", None),
    Condition("move_from", "=", None),
    Condition("move_from_version", "=", None),
)
_HELD_BY = (_is(LockState.HELD), Condition("reservation_id", "=", _RID))
# Nobody waits for the book: a take, a move's take, a release and a withdrawal need it, so only the queue's own
# transitions (hand off, promote) give a book to anyone while a reader waits for it.
_NOBODY_WAITING = Condition("waiting", "=", None)
# The queue's entries, by the reader they belong to: the joining or leaving reader's, and the next reader's.
_ENTRY = Element("waiting", _UID)
_SUSPENDED_ENTRY = Element("suspended", _UID)
# The queue's own transitions that change only an entry leave any state a lock row can be in.
_ANY_STATE = tuple(LockState)
# A reader with a suspended place may not take the book past it (nor join twice): they resume it instead.
_NOT_SUSPENDED = Condition(_SUSPENDED_ENTRY, "=", None)
_NOBODY_SUSPENDED = Condition("suspended", "=", None)
# Every change of `suspended` requires it exactly as read (by `suspend_seq`, which each raises by one) and sets
# `resume_at`, the earliest end of the suspensions it leaves, computed from that read: so `resume_at` is always exact,
# and the sweep's indexed read of `resume_at <= now` finds every suspension that has ended, on any lock.
_SUSPENSIONS_AS_READ = Condition("suspend_seq", "=", Param("suspend_seq_read"))
_NEXT_SUSPENSIONS = {"resume_at": Param("resume_at"), "suspend_seq": Param("suspend_seq")}
# A reader's cancel never ends a loan: the book is at their home until the desk takes it back (RETURN).
_NOT_LENT = Condition("lent_at", "=", None)
_NEXT_UID, _NEXT_RID = Param("next_user_id"), Param("next_reservation_id")
_NEXT_ENTRY = Element("waiting", _NEXT_UID)
# The next reader's entry exactly as read: whoever hands the book on gives it to the reader the lock names first,
# and a reader who left (or was handed the book already) meanwhile makes it fail.
_NEXT_IS = Condition(_NEXT_ENTRY, "=", Param("next_entry"))
# A hand-off also records its version in `handed_at`, as a release does in `freed_at`: a cancel that lost its answer
# (or failed after it) deletes the old holder's reader row above every state of theirs that ended (Reservations.
# _remove_released).
_TO_NEXT: dict[Any, Any] = {"reservation_id": _NEXT_RID, "user_id": _NEXT_UID, "reserved_at": _AT, **_WINDOW}
_TO_NEXT["handed_at"] = Param(NEW)
_TO_NEXT[_NEXT_ENTRY] = None  # the next reader leaves the queue as they take the book
# One INCOMING state exactly (its version): a late send of the same move can take the target again, with the same
# reservation and source, after the decided take ended; the decision must never confirm, nor an abandon end, that one.
_INCOMING_FOR = (
    _is(LockState.INCOMING),
    Condition("reservation_id", "=", _RID),
    Condition("move_from_version", "=", _FROM_VERSION),
    _version_is_expected(),
)


class T:
    """The transitions, by name. docs/reservation-protocol.md has a row for each."""

    OPEN = Transition(
        "open", (None,), (), {"state": LockState.FREE.value, "version": Param(NEW)}, insert=True, views="none"
    )
    REVIVE = Transition(
        "revive",
        (LockState.WITHDRAWN,),
        (_is(LockState.WITHDRAWN), _version_below_new()),
        {"state": LockState.FREE.value, "version": Param(NEW)},
        views="none",
    )
    WITHDRAW = Transition(
        "withdraw",
        (LockState.FREE,),
        (_is(LockState.FREE), _version_below_new(), *_FREE_OF_ANYONE, _NOBODY_WAITING, _NOBODY_SUSPENDED),
        {"state": LockState.WITHDRAWN.value, "version": Param(NEW)},
        views="none",
    )
    TAKE = Transition(
        "take",
        (LockState.FREE,),
        (_is(LockState.FREE), _version_below_new(), *_FREE_OF_ANYONE, _NOBODY_WAITING, _NOT_SUSPENDED),
        {
            "state": LockState.HELD.value,
            "reservation_id": _RID,
            "user_id": _UID,
            "reserved_at": _AT,
            **_WINDOW,
            "version": Param(NEW),
        },
        views="the reservation's three rows, at the new version",
        refused_by_read=True,
    )
    RELEASE = Transition(
        "release",
        (LockState.HELD,),
        (*_HELD_BY, _NOT_LENT, _version_below_new(), _NOBODY_WAITING),
        {**_NOBODY, "state": LockState.FREE.value, "version": Param(NEW)},
        views="the reservation's three rows deleted at the new version",
    )
    RELEASE_EXACT = Transition(
        "release exactly",
        (LockState.HELD,),
        (*_HELD_BY, _NOT_LENT, _version_is_expected(), _NOBODY_WAITING),
        {**_NOBODY, "state": LockState.FREE.value, "version": Param(NEW)},
        views="the reservation's three rows deleted at the new version",
    )
    RESTAMP = Transition(
        "restamp",
        (LockState.HELD,),
        (*_HELD_BY, _NOT_LENT, _version_is_expected()),
        {"reserved_at": _AT, **_WINDOW, "version": Param(NEW)},
        views="the reservation's three rows rewritten at the new version",
    )
    MOVE_IN = Transition(
        "move in",
        (LockState.FREE,),
        (_is(LockState.FREE), _version_below_new(), *_FREE_OF_ANYONE, _NOBODY_WAITING, _NOT_SUSPENDED),
        {"state": LockState.INCOMING.value, "reservation_id": _RID, "user_id": _UID, "reserved_at": _AT, **_WINDOW}
        | {"move_from": _FROM, "move_from_version": _FROM_VERSION, "version": Param(NEW)},
        views="none: an INCOMING state is never shown",
        refused_by_read=True,
    )
    MOVE_OUT = Transition(
        "move out",
        (LockState.HELD,),
        (*_HELD_BY, _NOT_LENT, _version_is_expected()),
        {"state": LockState.OUTGOING.value, "moved_to": _TO, "version": Param(NEW)},
        views="none yet: the source's rows go when the move finishes",
    )
    CONFIRM = Transition(
        "confirm",
        (LockState.INCOMING,),
        _INCOMING_FOR,
        {"state": LockState.HELD.value, "move_from": None, "move_from_version": None, "version": Param(NEW)},
        views="the reservation's three rows on the target at the new version, the source as its hint, the source's "
        "reader and book rows deleted at the source's OUTGOING version (one batch)",
    )
    ABANDON = Transition(
        "abandon",
        (LockState.INCOMING,),
        _INCOMING_FOR,
        {**_NOBODY, "move_from": None, "move_from_version": None, "state": LockState.FREE.value, "version": Param(NEW)},
        views="the target's reader and book rows deleted at the new version",
    )
    FINISH_OUT = Transition(
        "finish out",
        (LockState.OUTGOING,),
        (_is(LockState.OUTGOING), Condition("reservation_id", "=", _RID), _version_below_new()),
        {**_NOBODY, "moved_to": None, "state": LockState.FREE.value, "version": Param(NEW)},
        views="none (deleted with the confirm's views, which come first)",
    )

    # The queue. Joining and leaving change `waiting` only: the hold's version stays, so a join never fails a
    # transition conditioned on the exact version of a hold (a fence, an undo, a move's decision).
    JOIN = Transition(
        "join",
        (LockState.HELD,),
        (_is(LockState.HELD), Condition("user_id", "!=", _UID), Condition(_ENTRY, "=", None), _NOT_SUSPENDED)
        + (Condition("queue_seq", "<", Param(NEW)),),
        {_ENTRY: (Param(NEW), _RID, None), "queue_seq": Param(NEW)},
        views="none: the queue is read from the lock",
    )
    JOIN_FIRST = Transition(  # the first join a lock row ever has (`queue_seq` null, which `<` never holds for)
        "join first",
        (LockState.HELD,),
        (_is(LockState.HELD), Condition("user_id", "!=", _UID), Condition(_ENTRY, "=", None), _NOT_SUSPENDED)
        + (Condition("queue_seq", "=", None),),
        {_ENTRY: (Param(NEW), _RID, None), "queue_seq": Param(NEW)},
        views="none: the queue is read from the lock",
    )
    LEAVE = Transition(
        "leave",
        _ANY_STATE,
        (Condition(_ENTRY, "=", Param("entry")),),
        {_ENTRY: None},
        views="none",
    )
    HAND_OFF = Transition(
        "hand off",
        (LockState.HELD,),
        (*_HELD_BY, _NOT_LENT, _NEXT_IS, _version_below_new()),
        {**_TO_NEXT, "version": Param(NEW)},
        views="the next reader's three rows written and the old holder's reader and reservation rows deleted, at the "
        "new version (one batch)",
    )
    HAND_OFF_EXACT = Transition(  # a reserve that takes back what it made, while someone joined the queue meanwhile
        "hand off exactly",
        (LockState.HELD,),
        (*_HELD_BY, _NOT_LENT, _NEXT_IS, _version_is_expected()),
        {**_TO_NEXT, "version": Param(NEW)},
        views="as hand off",
    )
    PROMOTE = Transition(  # a free lock with a queue: a move's source freed, whose queue waits
        "promote",
        (LockState.FREE,),
        (_is(LockState.FREE), _NEXT_IS, _version_below_new()),
        {**_TO_NEXT, "state": LockState.HELD.value, "version": Param(NEW)},
        views="the next reader's three rows, at the new version",
    )
    # Suspending keeps the reader's place (their entry, with its `joined`) in the other map, which hand-offs and
    # promotions never read, and which a take, a move's take and a release do not ask to be empty: a book whose only
    # readers are suspended is free for anyone. Like joining and leaving, these leave the hold's version alone.
    SUSPEND = Transition(
        "suspend",
        (LockState.FREE, LockState.HELD, LockState.INCOMING, LockState.OUTGOING),
        (Condition(_ENTRY, "=", Param("entry")), _SUSPENSIONS_AS_READ),
        {_ENTRY: None, _SUSPENDED_ENTRY: Param("suspended_entry"), **_NEXT_SUSPENSIONS},
        views="none",
    )
    RESUME = Transition(
        "resume",
        _ANY_STATE,
        (Condition(_SUSPENDED_ENTRY, "=", Param("entry")), _SUSPENSIONS_AS_READ),
        {_SUSPENDED_ENTRY: None, _ENTRY: Param("resumed_entry"), **_NEXT_SUSPENSIONS},
        views="none (a free book it leaves with a reader waiting is then promoted)",
    )
    LEAVE_SUSPENDED = Transition(
        "leave suspended",
        _ANY_STATE,
        (Condition(_SUSPENDED_ENTRY, "=", Param("entry")), _SUSPENSIONS_AS_READ),
        {_SUSPENDED_ENTRY: None, **_NEXT_SUSPENSIONS},
        views="none",
    )

    # The loan. A ready hold the reader collects at the desk is lent: it no longer expires (no `ready_until`), and a
    # reader's cancel (release, hand off) never ends it; only the desk's return does, from the exact state it read.
    LEND = Transition(
        "lend",
        (LockState.HELD,),
        (*_HELD_BY, _NOT_LENT, _version_is_expected()),
        {"lent_at": Param("lent_at"), "ready_until": None, "version": Param(NEW)},
        views="the reservation's three rows rewritten (on loan) at the new version",
    )
    RETURN = Transition(
        "return",
        (LockState.HELD,),
        (*_HELD_BY, _version_is_expected(), _NOBODY_WAITING),
        {**_NOBODY, "lent_at": None, "state": LockState.FREE.value, "version": Param(NEW)},
        views="the reservation's three rows deleted at the new version",
    )
    RETURN_HAND_OFF = Transition(
        "return and hand off",
        (LockState.HELD,),
        (*_HELD_BY, _NEXT_IS, _version_is_expected()),
        {**_TO_NEXT, "lent_at": None, "version": Param(NEW)},
        views="as hand off",
    )

    # Schema version 1 -> 2 only: a lock row of version 1 (a reservation and no state) becomes a held lock.
    ADOPT = Transition(
        "adopt",
        (None,),
        (_is(None), Condition("reservation_id", "=", _RID)),
        {"state": LockState.HELD.value, "version": Param(NEW)},
        views="the reservation's three rows, at the new version",
    )

    ALL = (
        OPEN,
        REVIVE,
        WITHDRAW,
        TAKE,
        RELEASE,
        RELEASE_EXACT,
        RESTAMP,
        MOVE_IN,
        MOVE_OUT,
        CONFIRM,
        ABANDON,
        FINISH_OUT,
        JOIN,
        JOIN_FIRST,
        LEAVE,
        HAND_OFF,
        HAND_OFF_EXACT,
        PROMOTE,
        SUSPEND,
        RESUME,
        LEAVE_SUSPENDED,
        LEND,
        RETURN,
        RETURN_HAND_OFF,
        ADOPT,
    )


# Every transition's lost answers are exported from the start, at 0 (app/metrics.py says why).
for _transition in T.ALL:
    for _resolved in (metrics.APPLIED, metrics.NOT_APPLIED):
        metrics.LOST_ANSWERS.labels(_transition.name, _resolved)


def token_of(book_id: UUID) -> int:
    """The book's token, as Cassandra places its partitions (Murmur3): the order of an unfiltered catalogue page."""
    return int(Murmur3Token.hash_fn(book_id.bytes))


# -- the store ----------------------------------------------------------------------------------------------------
class LockTable(Protocol):
    """Where locks live: Cassandra, or the schedule search's model of it."""

    async def read(self, book_id: UUID, *, serial: bool) -> Lock: ...

    async def read_many(self, book_ids: Sequence[UUID]) -> list[Lock]: ...

    async def read_held_between(self, first: int, last: int) -> list[Lock] | None:
        """The HELD locks of the books whose token lies in [first, last], read at QUORUM through the index on the
        lock's state; None while the index cannot answer (still building, or missing from a keyspace made before it)."""
        ...

    async def read_waiting_for(self, user_id: int) -> list[Lock]:
        """The locks of the books whose queue the reader is in (active or suspended), read at QUORUM through the
        indexes on the queue maps' keys."""
        ...

    async def read_resuming_by(self, at: datetime) -> list[Lock]:
        """The locks with a suspension that ends at or before `at`, read through the index on `resume_at`."""
        ...

    async def send(self, transition: Transition, book_id: UUID, values: dict[str, Any]) -> tuple[bool, Lock]:
        """Sends the transition once: (applied, the lock it met if refused). Raises OutcomeUnknown when the answer
        was lost, DatabaseUnavailable when it certainly did not apply."""
        ...

    def scan(self) -> Any:
        """Every lock, a page (list of Lock) at a time: an async iterator."""
        ...


_COLUMNS = "book_id, " + ", ".join(LOCK_FIELDS)


class CassandraLockTable:
    """The lock table in Cassandra: the only code that sends a lock statement."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.ks = db.settings.keyspace
        self._read = f"SELECT {_COLUMNS} FROM {self.ks}.reservation_by_book_id WHERE book_id = ?"
        self._read_many = f"SELECT {_COLUMNS} FROM {self.ks}.reservation_by_book_id WHERE book_id IN ?"
        self._read_held_between = (
            f"SELECT {_COLUMNS} FROM {self.ks}.reservation_by_book_id "
            f"WHERE token(book_id) >= ? AND token(book_id) <= ? AND state = '{LockState.HELD}'"
        )
        self._read_waiting_for = [
            f"SELECT {_COLUMNS} FROM {self.ks}.reservation_by_book_id WHERE {column} CONTAINS KEY ?"
            for column in _QUEUE_MAPS
        ]
        self._read_resuming_by = f"SELECT {_COLUMNS} FROM {self.ks}.reservation_by_book_id WHERE resume_at <= ?"
        self._cql = {t.name: self._render(t) for t in T.ALL}

    def _render(self, t: Transition) -> tuple[str, list[Param | tuple[Any, ...]]]:
        """The statement of a transition, with its literals (states, nulls) written out so it reads as the table
        says, and the names of its bound values in order."""
        order: list[Param | tuple[Any, ...]] = []

        def mark(value: Any) -> str:
            if isinstance(value, Param | tuple):  # a tuple: a map element's value, bound as one
                order.append(value)
                return "?"
            return "null" if value is None else f"'{value}'"

        def target(column: str | Element) -> str:
            return f"{column.column}[{mark(column.key)}]" if isinstance(column, Element) else column

        if t.insert:
            columns = ", ".join(["book_id", *t.sets])
            values = ", ".join(mark(value) for value in [Param("book_id"), *t.sets.values()])
            table = f"{self.ks}.reservation_by_book_id"
            return f"INSERT INTO {table} ({columns}) VALUES ({values}) IF NOT EXISTS", order
        in_order = sorted(t.sets.items(), key=lambda item: item[0] != "state")  # the state it leaves first
        assignments = ", ".join(f"{target(column)} = {mark(value)}" for column, value in in_order)
        key = mark(Param("book_id"))
        conditions = " AND ".join(f"{target(c.column)} {c.op} {mark(c.value)}" for c in t.when)
        return f"UPDATE {self.ks}.reservation_by_book_id SET {assignments} WHERE book_id = {key} IF {conditions}", order

    async def read(self, book_id: UUID, *, serial: bool) -> Lock:
        consistency = self.db.serial_consistency if serial else self.db.lock_consistency
        row = (await self.db.execute(self._read, [book_id], consistency=consistency)).one()
        return lock_from_row(book_id, row)

    async def read_many(self, book_ids: Sequence[UUID]) -> list[Lock]:
        result = await self.db.execute(self._read_many, [list(book_ids)])
        return [lock_from_row(row.book_id, row) for row in result.rows]

    async def read_held_between(self, first: int, last: int) -> list[Lock] | None:
        locks: list[Lock] = []
        try:
            async for rows in self.db.pages(self._read_held_between, [first, last], page_size=HELD_PER_PAGE):
                locks += [lock_from_row(row.book_id, row) for row in rows]
            return locks
        except InvalidRequest:  # no index on the state: a keyspace whose schema predates it
            return None
        except DatabaseUnavailable as error:
            if isinstance(error.__cause__, ReadFailure):  # a replica's index is still building
                return None
            raise

    async def read_waiting_for(self, user_id: int) -> list[Lock]:
        locks: dict[UUID, Lock] = {}
        # Active places, suspended ones, then active ones again: an entry moves between the two maps (a suspension,
        # a resumption), and one move between two reads is caught by the next, so a deletion of the reader never
        # misses a place (only a suspension and a resumption both within the reads could hide one).
        active, suspended = self._read_waiting_for
        for cql in (active, suspended, active):
            async for rows in self.db.pages(cql, [user_id], page_size=HELD_PER_PAGE):
                for row in rows:
                    lock = lock_from_row(row.book_id, row)
                    if lock.in_queue(user_id) is not None:  # (a later read may find the entry gone from both)
                        locks[lock.book_id] = lock
        return list(locks.values())

    async def read_resuming_by(self, at: datetime) -> list[Lock]:
        locks: list[Lock] = []
        async for rows in self.db.pages(self._read_resuming_by, [at], page_size=HELD_PER_PAGE):
            locks += [lock_from_row(row.book_id, row) for row in rows]
        return locks

    async def send(self, transition: Transition, book_id: UUID, values: dict[str, Any]) -> tuple[bool, Lock]:
        cql, order = self._cql[transition.name]
        bound = {**values, "book_id": book_id}
        result = await self.db.execute(
            cql, [_bind(v, bound) for v in order], write=True, consistency=self.db.lock_consistency
        )
        return result.was_applied, (Lock(book_id, None) if result.was_applied else lock_from_row(book_id, result.one()))

    async def scan(self) -> Any:
        async for rows in self.db.pages(f"SELECT {_COLUMNS} FROM {self.ks}.reservation_by_book_id", page_size=1000):
            yield [lock_from_row(row.book_id, row) for row in rows]


# -- the runner ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What became of a transition: `applied`, and `lock`, the lock it made (applied) or the one it met (refused)."""

    applied: bool
    lock: Lock


class LockRunner:
    """Runs transitions of the table against a lock table, choosing versions from the instance's clock."""

    def __init__(self, table: LockTable, clock: VersionClock) -> None:
        self.table = table
        self.clock = clock

    async def read(self, book_id: UUID, *, serial: bool = False) -> Lock:
        """The lock, at QUORUM or (serial) linearizably; a SERIAL read timing out under contention is tried again
        with backoff before the database is called unavailable."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                lock = await self.table.read(book_id, serial=serial)
                self.clock.observe(lock.version)
                return lock
            except DatabaseUnavailable:
                if not serial or attempt == ATTEMPTS:
                    raise
                await backoff(attempt)
        raise AssertionError("not reached")

    async def read_many(self, book_ids: Sequence[UUID]) -> list[Lock]:
        return await self.table.read_many(book_ids) if book_ids else []

    async def read_held_between(self, first: int, last: int) -> list[Lock] | None:
        """The held locks of the books with a token in [first, last] (`token_of`), from one indexed read; None when
        the index cannot answer, and the caller reads the locks by key instead."""
        return await self.table.read_held_between(first, last)

    async def read_waiting_for(self, user_id: int) -> list[Lock]:
        """The locks of the books whose queue the reader is in (one indexed read)."""
        return await self.table.read_waiting_for(user_id)

    async def read_resuming_by(self, at: datetime) -> list[Lock]:
        """The locks with a suspension that ends at or before `at` (one indexed read)."""
        return await self.table.read_resuming_by(at)

    async def look(self, transition: Transition, book_id: UUID, **values: Any) -> Outcome | None:
        """For a transition marked `refused_by_read`: the lock read at QUORUM, and the refusal if it refuses the
        transition (no Paxos round); None if the transition must be sent to find out."""
        assert transition.refused_by_read, transition.name
        met = await self.read(book_id)
        return Outcome(False, met) if transition.refuses(met, values) else None

    def scan(self) -> Any:
        """Every lock, a page at a time (an async iterator of lists), for the audit."""
        return self.table.scan()

    async def run(
        self,
        transition: Transition,
        book_id: UUID,
        *,
        before: Lock | None = None,
        above: int | None = None,
        **values: Any,
    ) -> Outcome:
        """Runs `transition` on the book's lock with these values (EXPECTED among them where the transition needs it),
        at a version above `above`, above EXPECTED and above everything this instance has seen. `before` is the lock
        the caller expects to leave: an applied outcome's lock is it with the transition's assignments."""
        seen = [above, values.get(EXPECTED)]
        proposed: set[int] = set()  # the versions of sends whose answer was lost
        for attempt in range(1, ATTEMPTS + 1):
            new = self.clock.next(*seen)
            values[NEW] = new
            lost = False
            try:
                applied, met = await self.table.send(transition, book_id, values)
                if applied:
                    return Outcome(True, transition.result(book_id, values, before))
            except OutcomeUnknown:
                proposed.add(new)
                met = await self.read(book_id, serial=True)
                lost = True
            stamp = transition.stamp
            ours = stamp is not None and getattr(met, stamp) in proposed and transition.made(met, values)
            if lost:
                resolved = metrics.APPLIED if ours else metrics.NOT_APPLIED
                metrics.LOST_ANSWERS.labels(transition.name, resolved).inc()
            if ours:
                # A send of ours whose answer was lost, finished by Paxos when this read or a later send came. Only
                # then: a match after a definite refusal alone is another's (two instances can propose one version).
                return Outcome(
                    True, transition.result(book_id, {**values, NEW: getattr(met, stamp or "version")}, before)
                )
            self.clock.observe(met.version)
            if transition.only_version_too_low(met, values):
                # our clock is behind the lock's: go again from its version (or its last join's)
                seen += [getattr(met, str(c.column)) for c in transition.failing(met, values)]
            elif transition.failing(met, values):
                return Outcome(False, met)
            # else: the lock still is as the transition requires, so our send never got there: send it again
            if attempt > 2:
                await backoff(attempt)
        raise DatabaseUnavailable("database unavailable: the change could not be confirmed; try again")


async def backoff(attempt: int) -> None:
    # Jittered and growing, so that contending clients stop colliding in the same Paxos round.
    await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
