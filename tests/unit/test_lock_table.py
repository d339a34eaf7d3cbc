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


@pytest.mark.parametrize("t", T.ALL, ids=lambda t: t.name)
def test_each_entry_names_the_states_it_leaves_and_says_what_it_does_to_the_views(t: Transition) -> None:
    assert t.views, t.name
    if t.insert:
        assert t.leaves == (None,)
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
    assert [p.name for p in order][-2:] == ["book_id", NEW]
    confirm, order = table._cql["confirm"]
    assert "IF state = 'incoming' AND reservation_id = ? AND move_from_version = ? AND version = ?" in confirm
    assert order[-1].name == EXPECTED


def test_every_transition_into_free_records_when_and_clears_only_what_its_state_set() -> None:
    into_free = [t for t in T.ALL if t.sets.get("state") == LockState.FREE.value and not t.insert and t is not T.REVIVE]
    assert {t.name for t in into_free} == {"release", "release exactly", "abandon", "finish out"}
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
    assert T.TAKE.only_version_too_low(free, {NEW: 40})
    assert not T.TAKE.failing(free, {NEW: 60})
    held = Lock(free.book_id, LockState.HELD, uuid4(), 1, None, 50)
    assert not T.TAKE.only_version_too_low(held, {NEW: 40})


def test_a_read_refuses_a_take_on_what_a_paxos_round_would_refuse_and_never_on_the_version() -> None:
    """`refuses` is what the QUORUM look before a take answers on (rule 7 of docs/reservation-protocol.md): the
    conditions of the state, never `version < new`, which only makes the runner send again higher."""
    book, someone = uuid4(), uuid4()
    assert {t.name for t in T.ALL if t.refused_by_read} == {"take", "move in"}
    assert T.TAKE.refuses(Lock(book, LockState.HELD, someone, 1, None, 10), {})
    assert T.TAKE.refuses(Lock(book, LockState.WITHDRAWN, version=10), {})
    assert T.TAKE.refuses(Lock(book, None), {})  # no such book
    assert T.TAKE.refuses(Lock(book, LockState.INCOMING, someone, 1, None, 10), {})  # settled by the use case
    assert not T.TAKE.refuses(Lock(book, LockState.FREE, version=10**18), {})  # however high its version
