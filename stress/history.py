"""Checks what the clients saw against the rules, using only what they can know for certain.

For each reservation the checker rebuilds the stretches of time in which its state was certain: from the
moment an acknowledgement arrived (reserved on book B, moved to B, refused so still on B, cancelled) until
the moment any later request about it was sent. While a request is in flight, or after one got no
answer, the state is unknown and nothing is claimed. This is conservative: a violation is reported only
when two certain facts contradict each other, never because of timing the clients could not observe.

A move or cancel without an answer (a timeout, a 5xx) may still land at any later time: the app may be
frozen with the request read, or a move left half-way is finished by whoever meets it. Seen in an adversarial
run (seed 204): a move to A timed out on a frozen instance, its retry moved the reservation to A, the next
move took it to B, and then the frozen instance woke and moved it from B to A, as asked. So after such a
request, a later acknowledgement says "on B, or wherever that request asked" (`Stretch.also`): it is not
certain, except a cancel's, which is final (the protocol lets nothing bring a cancelled reservation back).
The end still checks that the reservation is on one of those books, so an acknowledged one is never lost.

The rules:
- no two reservations are certainly holding the same book at the same time;
- at the end, a reservation certainly present is in the database on its book, and one certainly
  cancelled is gone;
- a read whose whole duration fell inside a certain stretch shows that state: the reservation listed on
  its book, or absent once it was cancelled or moved away;
- a reserve acknowledged under an idempotency key answers with the reservation the key names, on the book
  asked for.

Reserves made under an idempotency key (the service derives the reservation id from it) are judged by the
key's promise: a retry returns the reservation if it exists, 409 if the first attempt was refused, 404 if it
was made and has since been cancelled, and 503 while the first attempt is still in progress. So a 409 or a
404 is final: the reservation does not exist at the answer and no attempt of that key may make it later,
even one that was sent earlier and got no answer. A 503 says nothing. Without a key (an app from before
them) a refusal after an attempt without an answer is not certain: that attempt may still land.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

from stress.client import Op

GONE = None


@dataclass(frozen=True)
class Stretch:
    reservation_id: UUID
    start: float
    end: float  # math.inf: nothing was asked about the reservation afterwards
    book: UUID | None  # GONE (None): certainly cancelled
    # Where an earlier move or cancel without an answer may yet take it (GONE: a cancel); empty: `book` is certain.
    also: frozenset[UUID | None] = frozenset()

    @property
    def certain(self) -> bool:
        return not self.also


@dataclass(frozen=True)
class FinalState:
    """What the database holds at the end, for the run's own books and readers."""

    rows: dict[UUID, UUID]  # reservation_id -> book_id, from the readers' reservation listings
    locks: dict[UUID, UUID]  # book_id -> reservation_id, from the lock table


def _state_after(op: Op, before: UUID | None, known_before: bool) -> tuple[bool, UUID | None]:
    """(certain?, state) once `op`'s answer arrived."""
    outcome = op.outcome
    if op.kind in ("reserve", "move", "renew") and outcome == "ok":
        return op.result_book is not None, op.result_book
    if op.kind == "cancel" and (outcome == "ok" or op.status == 404):
        return True, GONE
    if op.kind == "move" and op.status == 404:
        return True, GONE
    if op.kind == "reserve" and outcome in ("conflict", "refused"):
        # Our id did not get the book; it was never created, so it is as good as gone.
        return True, GONE
    if op.kind in ("move", "renew") and outcome in ("conflict", "refused"):
        # A refused change leaves the reservation exactly as it was.
        return known_before, before
    return False, None


def stretches(ops: list[Op]) -> list[Stretch]:
    by_reservation: dict[UUID, list[Op]] = defaultdict(list)
    for op in ops:
        if op.changes_state and op.reservation_id is not None:
            by_reservation[op.reservation_id].append(op)
    result: list[Stretch] = []
    for reservation_id, mine in by_reservation.items():
        mine.sort(key=lambda o: o.received)
        known, state, unanswered = False, None, False
        may_land: set[UUID | None] = set()  # what the moves and cancels without an answer so far asked for
        for i, op in enumerate(mine):
            known, state = _state_after(op, state, known)
            if op.kind == "reserve" and state is GONE and unanswered and not op.keyed:
                # Without a key an earlier attempt without an answer may still land after this refusal: no certainty.
                known = False
            unanswered = unanswered or op.outcome == "error"
            if op.outcome == "error" and op.kind in ("move", "cancel"):
                may_land.add(op.book_id if op.kind == "move" else GONE)
            if not known:
                continue
            # Certain until the next request about it was sent; empty if one was already in flight.
            later = [o.sent for o in mine[i + 1 :]]
            end = min(later) if later else math.inf
            also = frozenset() if state is GONE else frozenset(may_land - {state})
            if end > op.received:
                result.append(Stretch(reservation_id, op.received, end, state, also))
    return result


def unfinished(ops: list[Op]) -> set[UUID]:
    """The reservations whose last request that changes state got no definite answer, however many attempts it had:
    whatever that request did half-way (a cancel that freed the book but not yet its views, a reserve that took the
    book but wrote no view) is left for the audit's repair, as in service the repair loop finds it."""
    last: dict[UUID, Op] = {}
    for op in sorted(ops, key=lambda o: o.received):
        if op.changes_state and op.reservation_id is not None and op.attempt > 0:
            last[op.reservation_id] = op
    return {reservation_id for reservation_id, op in last.items() if op.outcome == "error"}


def owners(ops: list[Op]) -> dict[UUID, int]:
    return {op.reservation_id: op.user_id for op in ops if op.reservation_id is not None and op.user_id is not None}


def check_holds(all_stretches: list[Stretch]) -> list[str]:
    """No book certainly held by two reservations at overlapping times."""
    violations: list[str] = []
    by_book: dict[UUID, list[Stretch]] = defaultdict(list)
    for s in all_stretches:
        if s.book is not GONE and s.certain:
            by_book[s.book].append(s)
    for book, held in by_book.items():
        held.sort(key=lambda s: s.start)
        latest: Stretch | None = None  # of the stretches seen so far, the one that ends last
        for s in held:
            if latest is not None and latest.reservation_id != s.reservation_id and latest.end > s.start:
                violations.append(
                    f"book {book} was held by reservation {latest.reservation_id} from {latest.start:.3f}s "
                    f"to {latest.end:.3f}s and by {s.reservation_id} from {s.start:.3f}s: two holders at once"
                )
            if latest is None or s.end > latest.end:
                latest = s
    return violations


def check_final(all_stretches: list[Stretch], final: FinalState) -> list[str]:
    violations: list[str] = []
    for s in all_stretches:
        if s.end != math.inf:
            continue
        r = s.reservation_id
        if s.book is GONE:
            if r in final.rows:
                violations.append(f"reservation {r} was cancelled at {s.start:.3f}s but is still present")
            elif r in final.locks.values():
                violations.append(f"reservation {r} was cancelled at {s.start:.3f}s but still locks a book")
        else:
            now_on = final.rows.get(r)
            if now_on != s.book and now_on not in s.also:
                where = f"on book {now_on}" if now_on is not None else "missing"
                violations.append(f"reservation {r}, acknowledged on book {s.book}, is {where} at the end")
            elif now_on is not None and final.locks.get(now_on) != r:
                violations.append(
                    f"reservation {r} is listed on book {now_on} but the book's lock holds {final.locks.get(now_on)}"
                )
    return violations


def check_reads(ops: list[Op], all_stretches: list[Stretch]) -> list[str]:
    violations: list[str] = []
    owner = owners(ops)
    by_reservation: dict[UUID, list[Stretch]] = defaultdict(list)
    on_book: dict[UUID, set[UUID]] = defaultdict(set)
    of_user: dict[int | None, set[UUID]] = defaultdict(set)
    for s in all_stretches:
        if not s.certain:
            continue
        by_reservation[s.reservation_id].append(s)
        if s.book is not GONE:
            on_book[s.book].add(s.reservation_id)
            of_user[owner.get(s.reservation_id)].add(s.reservation_id)
    reads = [op for op in ops if op.kind in ("read_user", "read_book") and op.seen is not None and op.complete]
    for read in reads:
        seen = dict(read.seen or [])
        # Only reservations that were ever certainly on this book (or the reader's), or that the read listed,
        # can contradict it.
        if read.kind == "read_book":
            relevant = on_book[read.book_id] if read.book_id is not None else set()
        else:
            relevant = of_user[read.user_id]
        for reservation_id in relevant | seen.keys():
            if read.kind == "read_user" and owner.get(reservation_id) != read.user_id:
                continue
            covering = next(
                (s for s in by_reservation.get(reservation_id, ()) if s.start <= read.sent and s.end >= read.received),
                None,
            )
            if covering is None:
                continue
            if read.kind == "read_user":
                expected = covering.book
            else:
                expected = read.book_id if covering.book == read.book_id else GONE
            listed = seen.get(reservation_id)
            subject = f"user {read.user_id}" if read.kind == "read_user" else f"book {read.book_id}"
            when = f"the read of {subject} sent at {read.sent:.3f}s"
            if expected is GONE and listed is not None:
                violations.append(f"{when} lists reservation {reservation_id}, which was no longer there")
            elif expected is not GONE and listed != expected:
                violations.append(
                    f"{when} does not list reservation {reservation_id} on book {expected}, though it certainly was"
                )
    return violations


def check_ids(ops: list[Op]) -> list[str]:
    """An acknowledged reserve under an idempotency key names the reservation the key stands for, on its book."""
    violations = []
    for op in ops:
        if op.kind != "reserve" or not op.keyed or op.outcome != "ok":
            continue
        if op.result_id != op.reservation_id:
            violations.append(
                f"a reserve of book {op.book_id} by user {op.user_id} sent at {op.sent:.3f}s was answered with "
                f"reservation {op.result_id}, not {op.reservation_id}, the one its idempotency key names"
            )
        elif op.result_book != op.book_id:
            violations.append(
                f"a reserve of book {op.book_id} sent at {op.sent:.3f}s was answered with reservation "
                f"{op.result_id} on book {op.result_book}"
            )
    return violations


def check(ops: list[Op], final: FinalState) -> tuple[list[str], dict[str, int]]:
    all_stretches = stretches(ops)
    violations = (
        check_ids(ops)
        + check_holds(all_stretches)
        + check_final(all_stretches, final)
        + check_reads(ops, all_stretches)
    )
    figures = {
        "operations": len(ops),
        "certain_holds": sum(1 for s in all_stretches if s.book is not GONE and s.certain),
        "reads_checked": sum(1 for op in ops if op.seen is not None and op.complete),
    }
    return violations, figures
