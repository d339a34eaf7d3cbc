"""The lock's table of transitions as data, without Cassandra: each entry's declared states agree with its condition,
its CQL reads as the table says, and the runner's rule for a lost answer (app/repository/locks.py). The transitions'
races are tested on a real Cassandra (tests/integration/) and in the schedule search (tests/schedules/)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from app.repository.locks import EXPECTED, NEW, CassandraLockTable, Lock, LockState, T, Transition


def state_condition(t: Transition) -> Any:
    return next(c.value for c in t.when if c.column == "state")


QUEUE_ONLY = (T.JOIN, T.JOIN_FIRST, T.LEAVE, T.SUSPEND, T.RESUME, T.LEAVE_SUSPENDED)


@pytest.mark.parametrize("t", T.ALL, ids=lambda t: t.name)
def test_each_entry_names_the_states_it_leaves_and_says_what_it_does_to_the_views(t: Transition) -> None:
    assert t.views, t.name
    if t.insert:
        assert t.leaves == (None,)
        return
    if t in QUEUE_ONLY:
        # A join, leave, suspension or resumption changes the queue only: the hold's version stays, so no fence, undo
        # or move decision conditioned on the exact version of a hold fails because a reader joined or left its queue.
        assert "version" not in t.sets and not any(c.column == "version" for c in t.when), t.name
        return
    leaves = state_condition(t)
    assert [s.value if s else None for s in t.leaves] == [leaves], t.name
    if t is not T.ADOPT:  # a version-1 row has no version yet: null < v is false in Cassandra
        assert any(c.column == "version" for c in t.when), f"{t.name} does not order itself by version"
    assert "version" in t.sets, f"{t.name} leaves the version as it was"


def test_the_statements_read_as_the_table_says() -> None:
    table = CassandraLockTable(SimpleNamespace(settings=SimpleNamespace(keyspace="ks")))  # type: ignore[arg-type]
    take, order = table._cql["take"]
    assert take.startswith("UPDATE ks.reservation_by_book_id SET state = 'held', ")
    assert "IF state = 'free' AND version < ?" in take
    assert [p.name for p in order][-3:] == ["book_id", NEW, "user_id"]  # the taker's suspended place, last
    confirm, order = table._cql["confirm"]
    assert "IF state = 'incoming' AND reservation_id = ? AND move_from_version = ? AND version = ?" in confirm
    assert order[-1].name == EXPECTED


def test_every_transition_into_free_records_when_and_clears_only_what_its_state_set() -> None:
    into_free = [t for t in T.ALL if t.sets.get("state") == LockState.FREE.value and not t.insert and t is not T.REVIVE]
    assert {t.name for t in into_free} == {"release", "release exactly", "abandon", "finish out", "return"}
    for t in into_free:
        assert t.sets["freed_at"].name == NEW, t.name
    # A reserve/cancel cycle leaves three null cells (tombstones) on the lock row, not more.
    assert sorted(c for c, v in T.RELEASE.sets.items() if v is None) == ["reservation_id", "reserved_at", "user_id"]
    assert not [c for c, v in T.TAKE.sets.items() if v is None]


def test_a_lost_answer_counts_as_applied_only_for_a_state_that_names_the_same_reservation() -> None:
    book, mine, theirs = uuid4(), uuid4(), uuid4()
    held = Lock(book, LockState.HELD, theirs, 2, None, 10)
    assert not T.CONFIRM.made(held, {"reservation_id": mine, "move_from_version": 3})
    assert T.CONFIRM.made(Lock(book, LockState.HELD, mine, 1, None, 10), {"reservation_id": mine})
    # FREE is nobody's: it may be another request's release at the very version this one proposed.
    assert not T.RELEASE.made(Lock(book, LockState.FREE, version=10), {"reservation_id": mine})


def test_a_refusal_for_a_version_too_low_is_told_apart_from_a_state_that_changed() -> None:
    free = Lock(uuid4(), LockState.FREE, version=50)
    assert T.TAKE.only_version_too_low(free, {NEW: 40, "user_id": 1})
    assert not T.TAKE.failing(free, {NEW: 60, "user_id": 1})
    held = Lock(free.book_id, LockState.HELD, uuid4(), 1, None, 50)
    assert not T.TAKE.only_version_too_low(held, {NEW: 40, "user_id": 1})


def test_a_read_refuses_a_take_on_what_a_paxos_round_would_refuse_and_never_on_the_version() -> None:
    """`refuses` is what the QUORUM look before a take answers on (rule 7 of docs/reservation-protocol.md): the
    conditions of the state, never `version < new`, which only makes the runner send again higher."""
    book, someone = uuid4(), uuid4()
    assert {t.name for t in T.ALL if t.refused_by_read} == {"take", "move in"}
    taker = {"user_id": 2}
    assert T.TAKE.refuses(Lock(book, LockState.HELD, someone, 1, None, 10), taker)
    assert T.TAKE.refuses(Lock(book, LockState.WITHDRAWN, version=10), taker)
    assert T.TAKE.refuses(Lock(book, None), taker)  # no such book
    assert T.TAKE.refuses(Lock(book, LockState.INCOMING, someone, 1, None, 10), taker)  # settled by the use case
    assert not T.TAKE.refuses(Lock(book, LockState.FREE, version=10**18), taker)  # however high its version


def test_the_queue_is_ordered_by_its_joins_and_taken_only_by_the_queues_own_transitions() -> None:
    book, holder, first, second = uuid4(), uuid4(), uuid4(), uuid4()
    held = Lock(book, LockState.HELD, holder, 1, None, 10)
    values = {"user_id": 2, "reservation_id": first, NEW: 20}
    assert not T.JOIN_FIRST.refuses(held, values) and T.JOIN.refuses(held, values) is False
    assert T.JOIN.failing(held, values)  # queue_seq null: only the first join may run
    one = T.JOIN_FIRST.result(book, values, held)
    assert one.version == 10 and one.queue_seq == 20 and one.position(2) == 1
    assert T.JOIN.refuses(one, {"user_id": 2, "reservation_id": second, NEW: 30})  # once in a queue
    assert T.JOIN.refuses(one, {"user_id": 1, "reservation_id": second, NEW: 30})  # never the holder
    two = T.JOIN.result(book, {"user_id": 3, "reservation_id": second, NEW: 30}, one)
    assert [w.user_id for w in two.waiting] == [2, 3] and two.next_in_line() == two.queued(2)
    # With a reader waiting, nothing but a hand-off takes the book from its holder or gives a free one away.
    assert T.RELEASE.refuses(two, {"reservation_id": holder})
    free_with_queue = Lock(book, LockState.FREE, version=40, waiting=two.waiting, queue_seq=30)
    assert T.TAKE.refuses(free_with_queue, {"user_id": 4})
    assert T.MOVE_IN.refuses(free_with_queue, {"user_id": 4})
    entry = two.next_in_line()
    assert entry is not None
    hand = {"reservation_id": holder, "next_user_id": 2, "next_reservation_id": first, "next_entry": entry.cell()}
    hand |= {"reserved_at": None, "ready_until": None, "renewals": 0}
    handed = T.HAND_OFF.result(book, {**hand, NEW: 50}, two)
    assert handed.holds(first) and handed.user_id == 2 and [w.user_id for w in handed.waiting] == [3]
    assert T.HAND_OFF.refuses(handed, hand)  # a repeated or late hand-off does nothing
    assert T.HAND_OFF.made(handed, hand)
    assert T.PROMOTE.refuses(handed, {**hand, "next_user_id": 3})


def test_the_queue_statements_name_the_entry_they_change() -> None:
    table = CassandraLockTable(SimpleNamespace(settings=SimpleNamespace(keyspace="ks")))  # type: ignore[arg-type]
    join, _ = table._cql["join"]
    assert "SET waiting[?] = ?, queue_seq = ?" in join
    assert "IF state = 'held' AND user_id != ? AND waiting[?] = null AND suspended[?] = null AND queue_seq < ?" in join
    hand, _ = table._cql["hand off"]
    assert "IF state = 'held' AND reservation_id = ? AND lent_at = null AND waiting[?] = ? AND version < ?" in hand
    assert "AND waiting = null" in table._cql["take"][0] and "AND waiting = null" in table._cql["release"][0]


def test_a_lost_answer_is_recognised_with_an_empty_queue_as_cassandra_compares_it() -> None:
    """A take's condition asks `waiting = null`; the lock it made has an empty queue (no entries, as Cassandra stores
    an empty map: null). The runner's check of a lost answer must compare it so, or it takes its own take for a
    refusal (found by tests/integration/test_reservations.py's lost answers)."""
    book, mine = uuid4(), uuid4()
    values = {"reservation_id": mine, "user_id": 1, "reserved_at": None, "ready_until": None, "renewals": 0, NEW: 10}
    taken = T.TAKE.result(book, values, Lock(book, LockState.FREE, version=5))
    assert taken.waiting == () and T.TAKE.made(taken, values)


def test_a_take_is_known_as_its_own_from_a_refusals_answer_without_its_pickup_window() -> None:
    """A refused send answers only the columns its condition names: a take that a lost first send already made must
    still be recognised from that answer, though it does not carry the window it set (found by
    test_reservations' lost first send finished later)."""
    book, mine = uuid4(), uuid4()
    values = {"reservation_id": mine, "user_id": 1, "reserved_at": None, "ready_until": None, "renewals": 0, NEW: 10}
    values["ready_until"] = "2026-12-14"
    refused_answer = Lock(book, LockState.HELD, mine, 1, None, 10)  # no ready_until, no renewals
    assert T.TAKE.made(refused_answer, values)
