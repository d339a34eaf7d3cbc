"""What every schedule must keep, checked after every step and at the end.

The history (`History`) records what clients were told: which reservations a reserve or move acknowledged, which
cancels were sent (the cancel ran its first store call) and which were acknowledged.

After every step:

(S1) Once a cancel of R is acknowledged, forever after: no lock is HELD for R, and no view row (of `reservations`,
     `user_reservations`, `book_reservations`, as a read returns it) names R. A lock may still be INCOMING for R, but
     only for a move that can never be decided: its source (`move_from`) is neither HELD by R at `move_from_version`
     nor OUTGOING for R. (It happens: a move that read R before the cancel, hinted and took its target after the
     cancel's `_end_moves_into` looked, then failed before abandoning it; whoever meets it, or the repair, abandons
     it. The search counts the runs that first met it.) A decided move's source may stay OUTGOING for R after
     the cancel released its target, until the paused move, whoever meets the source, or the repair finishes it
     (found by the search: a move paused after its confirm, then a cancel; `History.strict` forbids it, as S1 was
     first written); it may not while its target still involves R.
(S2) A reservation whose reserve or move was acknowledged and whose cancel has not been sent is held by exactly one
     lock: one HELD lock, or a decided move's pair, its source OUTGOING to a target that is INCOMING for it (or already
     HELD by it, after the confirm and before the source is freed). Any other INCOMING lock for it must be an
     undecided move (its source HELD by it at `move_from_version`) or one that can never be decided.
(S3) At most one lock is HELD for any reservation; at most one is OUTGOING.

At the end (every task done): the repair, with settle time 0, runs twice; then the audit finds nothing
(`report.violations == []`), every HELD lock's three view rows show it exactly, no lock is INCOMING or OUTGOING, and
(S2) still holds (a reservation acknowledged and never cancelled is HELD by exactly one lock).

Each operation must end in a Reservation (or its own result), Conflict, NotFound, Forbidden, or DatabaseUnavailable
once a fault was injected; anything else (an AssertionError, any other exception) is a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from schedule_model import ModelLocks, ModelStore

from app.models import AuditReport, Conflict, DatabaseUnavailable, Forbidden, NotFound, Reservation
from app.repository.locks import Lock, LockState
from app.repository.store import VIEWS

_ALLOWED = (Conflict, NotFound, Forbidden)


@dataclass
class History:
    acked: set[UUID] = field(default_factory=set)  # reservations a reserve or move acknowledged
    cancel_sent: set[UUID] = field(default_factory=set)
    cancelled: set[UUID] = field(default_factory=set)  # cancels acknowledged
    undecidable: int = 0  # checks that met an INCOMING lock for a cancelled reservation
    outgoing_after_cancel: int = 0  # checks that met a decided move's source still OUTGOING after the cancel
    strict: bool = False  # S1 as first written: no OUTGOING at all once the cancel is acknowledged
    # The legacy move holds its target HELD beside its source by design, until it resumes and releases it: of the
    # invariants, only what readers see applies to it (S1's views).
    views_only: bool = False


def judge_outcome(name: str, outcome: Any, faulted: bool) -> str | None:
    """None if the operation ended as an operation may; else what is wrong."""
    if not isinstance(outcome, BaseException):
        return None
    if isinstance(outcome, _ALLOWED):
        return None
    if isinstance(outcome, DatabaseUnavailable) and faulted:
        return None
    return f"{name} raised {type(outcome).__name__}: {outcome!r}"


def check_state(locks: ModelLocks, store: ModelStore, history: History, name: Callable[[Any], str]) -> list[str]:
    """(S1), (S2), (S3) on the state as it is now."""
    out: list[str] = []
    all_locks = list(locks.rows.values())
    by_book = locks.rows
    rids = {lock.reservation_id for lock in all_locks if lock.reservation_id is not None}
    for rid in rids | history.acked | history.cancelled:
        held = [lock for lock in all_locks if lock.holds(rid)]
        outgoing = [lock for lock in all_locks if lock.reservation_id == rid and lock.state is LockState.OUTGOING]
        incoming = [lock for lock in all_locks if lock.reservation_id == rid and lock.state is LockState.INCOMING]
        r = name(rid)
        if history.views_only and rid not in history.cancelled:
            continue
        if len(held) > 1 and not history.views_only:
            out.append(f"S3: {r} is HELD on {len(held)} books: {', '.join(name(x.book_id) for x in held)}")
        if len(outgoing) > 1:
            out.append(f"S3: {r} is OUTGOING on {len(outgoing)} books")
        if rid in history.cancelled:
            for table in VIEWS:
                for row in store.rows(table):
                    if row.reservation_id == rid:
                        out.append(f"S1: cancel of {r} acknowledged, yet {table} has its row on {name(row.book_id)}")
            if history.views_only:
                continue
            for lock in held:
                out.append(f"S1: cancel of {r} acknowledged, yet lock {name(lock.book_id)} is HELD for it")
            for lock in outgoing:
                target = by_book.get(lock.moved_to) if lock.moved_to is not None else None
                if history.strict or (target is not None and target.involves(rid)):
                    out.append(f"S1: cancel of {r} acknowledged, yet lock {name(lock.book_id)} is OUTGOING for it")
                else:
                    history.outgoing_after_cancel += 1
            for lock in incoming:
                if _decidable(lock, by_book):
                    out.append(f"S1: cancel of {r} acknowledged, yet {name(lock.book_id)} is INCOMING for a live move")
                else:
                    history.undecidable += 1
        elif rid in history.acked and rid not in history.cancel_sent:
            out += _held_once(rid, held, outgoing, incoming, by_book, name)
    return out


def _decidable(incoming: Lock, by_book: dict[UUID, Lock]) -> bool:
    """Whether the move whose target is `incoming` may still be decided (or was): its source still HELD by the
    reservation at the version the move began from, or OUTGOING for it."""
    assert incoming.move_from is not None
    source = by_book.get(incoming.move_from)
    if source is None:
        return False
    held_then = source.holds(incoming.reservation_id) and source.version == incoming.move_from_version  # type: ignore[arg-type]
    return held_then or (source.state is LockState.OUTGOING and source.reservation_id == incoming.reservation_id)


def _held_once(
    rid: UUID,
    held: list[Lock],
    outgoing: list[Lock],
    incoming: list[Lock],
    by_book: dict[UUID, Lock],
    name: Callable[[Any], str],
) -> list[str]:
    r = name(rid)
    if not held and not outgoing:
        return [f"S2: {r} was acknowledged and never cancelled, yet no lock holds it"]
    if outgoing:
        source = outgoing[0]
        target = by_book.get(source.moved_to) if source.moved_to is not None else None
        ok = (
            target is not None and target.reservation_id == rid and target.state in (LockState.INCOMING, LockState.HELD)
        )
        if not ok:
            return [f"S2: {r} is OUTGOING on {name(source.book_id)} to a target that is not its own"]
        if held and held[0].book_id != target.book_id:  # type: ignore[union-attr]
            return [f"S2: {r} is OUTGOING on {name(source.book_id)} and HELD on {name(held[0].book_id)}"]
    for lock in incoming:
        moving_out = any(o.moved_to == lock.book_id for o in outgoing)
        if not moving_out and by_book.get(lock.move_from) is None:  # type: ignore[arg-type]
            return [f"S2: {r} is INCOMING on {name(lock.book_id)} from no source"]
    return []


def check_end(
    locks: ModelLocks, store: ModelStore, history: History, report: AuditReport, name: Callable[[Any], str]
) -> list[str]:
    """The end state, after two repair passes: `report` is the audit that followed them."""
    out = [f"end: audit after two repairs: {v}" for v in report.violations]
    for lock in locks.rows.values():
        if lock.in_between:
            out.append(f"end: lock {name(lock.book_id)} is still {lock.state} for {name(lock.reservation_id)}")
        if lock.state is LockState.HELD:
            assert lock.reservation_id is not None and lock.user_id is not None
            rows = {
                "reservations": store.row("reservations", lock.reservation_id),
                "user_reservations": store.row("user_reservations", (lock.user_id, lock.book_id)),
                "book_reservations": store.row("book_reservations", lock.book_id),
            }
            for table, row in rows.items():
                if row is None or not row.shows(lock):
                    shown = "nothing" if row is None else f"{name(row.reservation_id)} at version {row.version}"
                    out.append(
                        f"end: {table} shows {shown} for lock {name(lock.book_id)} "
                        f"HELD by {name(lock.reservation_id)} at {lock.version}"
                    )
    for rid in history.acked - history.cancel_sent:
        if sum(lock.holds(rid) for lock in locks.rows.values()) != 1:
            out.append(f"end: S2: {name(rid)} was acknowledged and never cancelled, yet is not HELD by one lock")
    return out


def reservation_of(outcome: Any) -> UUID | None:
    return outcome.reservation_id if isinstance(outcome, Reservation) else None
