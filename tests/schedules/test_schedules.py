"""The schedule search's CI scope (no Cassandra): see schedule_explorer.py for the search, schedule_model.py for the
model of Cassandra, schedule_invariants.py for what is checked, schedule_scenario.py for the operations.

- Every pair of the operations: every schedule (sleep sets), each also with every single fault of every write.
- The triples of TRIPLES (26 of the 84): every schedule with up to two preemptions, each also with every single
  fault.
- The legacy move (commit 7e91aca): the search finds case 1.
- Every triple, in the long series only (`make test-schedules-all`).

The pairs and triples run in worker processes, one per core; conftest.py prints the number of schedules and the time.
"""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import pytest
from schedule_scenario import OPS, explore

TOTALS: dict[str, float] = {"schedules": 0, "cut": 0, "seconds": 0.0, "searches": 0, "wall": 0.0}

PAIRS = list(itertools.combinations(OPS, 2))
# The triples CI runs, each every schedule with up to two preemptions and every single fault (cancel+move+heal,
# which needs no fault to find its bug, runs with them too): each found a bug in the first version of the lock state
# machine (docs/reservation-protocol.md), or covers withdraw and the heal. About 3 minutes on two free cores with the
# pairs. The dearer ones are in the long series (`make test-schedules-all`): move+move2+cancel (173,114 schedules),
# which found the late-send bug, cancel+move+repair (151,165), cancel+move+reserveX (95,145) and renew+move+cancel
# (95,365), all clean on the commit that fixed them.
TRIPLES: list[tuple[tuple[str, ...], bool]] = [
    (("cancel", "move", "heal"), True),  # a heal half-way through a move's source rows, then a cancel
    (("cancel", "renew", "reserveX"), True),  # a lost release answer, then a late renew's views
    (("move", "move2", "heal"), True),  # a late send finishing a decision it did not take
    (("move", "reserveY", "withdraw"), True),
    (("renew", "reserveY", "heal"), True),
]
# And, as far as the 5 minutes go, the cheapest of the other 79 triples (at most 11,000 schedules each, 133,294 in
# all, about 1 minute on two cores): 26 of the 84 triples run in CI, the other 58 in the long series.
TRIPLES += [
    (triple, True)
    for triple in (
        ("renew", "reserveX", "withdraw"),
        ("reserveX", "heal", "withdraw"),
        ("reserveY", "reserveX", "withdraw"),
        ("reserveY", "heal", "withdraw"),
        ("renew", "heal", "withdraw"),
        ("renew", "reserveY", "withdraw"),
        ("reserveY", "reserveX", "heal"),
        ("renew", "reserveX", "heal"),
        ("renew", "reserveY", "reserveX"),
        ("reserveY", "repair", "withdraw"),
        ("cancel", "renew", "withdraw"),
        ("move2", "reserveY", "withdraw"),
        ("cancel", "reserveX", "withdraw"),
        ("renew", "repair", "withdraw"),
        ("cancel", "heal", "withdraw"),
        ("cancel", "reserveY", "withdraw"),
        ("reserveX", "heal", "repair"),
        ("move", "reserveX", "withdraw"),
        ("move2", "reserveX", "withdraw"),
        ("renew", "reserveX", "repair"),
        ("cancel", "repair", "withdraw"),
    )
]


def _search(job: tuple[tuple[str, ...], int | None, bool]) -> Any:
    ops, bound, faults = job
    return explore(ops, bound=bound, faults=faults)


def _run_all(jobs: list[tuple[tuple[str, ...], int | None, bool]]) -> list[Any]:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=get_context("fork")) as pool:
        summaries = list(pool.map(_search, jobs))
    TOTALS["wall"] += time.perf_counter() - started
    for s in summaries:
        TOTALS["schedules"] += s.schedules
        TOTALS["cut"] += s.blocked
        TOTALS["seconds"] += s.seconds
        TOTALS["searches"] += 1
    return summaries


def _assert_clean(summaries: list[Any]) -> None:
    failures = [s.failure.describe() for s in summaries if s.failure is not None]
    assert not failures, "\n\n".join(failures)


def test_every_pair_every_schedule_with_single_faults() -> None:
    _assert_clean(_run_all([(pair, None, True) for pair in PAIRS]))


def test_triples_up_to_two_preemptions_with_single_faults() -> None:
    _assert_clean(_run_all([(triple, 2, faults) for triple, faults in TRIPLES]))


def test_legacy_move_case_1_is_found() -> None:
    """Case 1 (the old move), with one preemption (move -> cancel): R holds X; the move takes Y as a plain HELD
    lock; the reader cancels R; a heal (reader 3's reserve of Y, settle 0) rebuilds R's views on Y: the cancelled R is
    listed again."""
    summary = explore(("move", "cancel", "heal"), bound=1, faults=False, legacy=True)
    assert summary.failure is not None, "the search missed case 1"
    print(summary.failure.describe())
    assert any(v.startswith("S1:") and "on Y" in v for v in summary.failure.violations)
    labels = [(summary.failure.names[s.op], s.label) for s in summary.failure.steps]
    assert ("move", "take on lock Y") in labels
    assert any(op == "heal" and label.startswith("write views of R1 on Y") for op, label in labels)


@pytest.mark.parametrize(
    ("ops", "faults"), [(("cancel", "move", "reserveX"), False), (("move", "reserveY", "withdraw"), True)]
)
def test_sleep_sets_under_the_bound_meet_every_state(ops: tuple[str, ...], faults: bool) -> None:
    """The reduction loses nothing: with sleep sets, a bounded search meets every state that the search of every
    schedule within the bound meets. Plain sleep sets do not (an asleep choice skipped whatever the preemptions of the
    order explored instead): with one preemption they miss 173 of the 609 states of cancel+move+reserveX, and 444 of the
    1,484 of move+reserveY+withdraw with single faults."""
    every = explore(ops, bound=1, faults=faults, sleep_sets=False, record_states=True)
    reduced = explore(ops, bound=1, faults=faults, record_states=True)
    assert every.failure is None and reduced.failure is None
    assert reduced.schedules + reduced.blocked < every.schedules
    missed = every.states - reduced.states
    assert not missed, f"{len(missed)} of {len(every.states)} states missed, e.g. {sorted(missed)[0]}"


# Every triple, every schedule with up to two preemptions and every single fault: about 50 minutes on two cores, so
# not in CI (`make test-schedules-all`, which sets SCHEDULES_ALL=1); its figures are in the closing note of the issue
# that brought the search.
@pytest.mark.skipif(not os.environ.get("SCHEDULES_ALL"), reason="the long series: make test-schedules-all")
def test_every_triple_up_to_two_preemptions_with_single_faults() -> None:
    _assert_clean(_run_all([(triple, 2, True) for triple in itertools.combinations(OPS, 3)]))
