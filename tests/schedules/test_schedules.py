"""The schedule search's CI scope (no Cassandra): see schedule_explorer.py for the search, schedule_model.py for the
model of Cassandra, schedule_invariants.py for what is checked, schedule_scenario.py for the operations.

- Every pair of the operations: every schedule, each also with every single fault of every write.
- The triples of TRIPLES (62 of the 84): every schedule with up to two preemptions, each also with every single
  fault.
- The reduction (sleep sets under the bound) meets every state the unreduced search meets.
- The legacy move (commit 7e91aca): the search finds case 1.
- Every triple, in the long series only (`make test-schedules-all`).

The pairs and triples run in worker processes, one per core, from one queue; conftest.py prints the number of
schedules and the time.
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

Job = tuple[tuple[str, ...], int | None]  # the operations, the preemption bound (None: none)

PAIRS = list(itertools.combinations(OPS, 2))
# The triples CI runs, each every schedule with up to two preemptions and every single fault: the 60 cheapest of the
# 84, and cancel+move+heal and move+move2+heal, which found bugs in the first version of the lock state machine
# (docs/reservation-protocol.md). Dearest first, so that the two workers end together; each with the runs its search
# took (complete schedules and runs cut short by sleep sets) at the commit that chose them. With the pairs, about
# 4 minutes on two free cores. The 22 dearer ones are in the long series (`make test-schedules-all`), among them
# cancel+move+move2 (78,321 runs), which found the late-send bug, cancel+move+repair (52,145), renew+move+cancel
# (44,695) and cancel+move+reserveX (37,532), all clean on the commit that fixed them.
TRIPLES: list[tuple[str, ...]] = [
    ("cancel", "move", "heal"),  # 31,350
    ("move", "move2", "heal"),  # 29,964
    ("cancel", "move", "withdraw"),  # 19,829
    ("cancel", "move2", "withdraw"),  # 19,829
    ("renew", "move", "reserveX"),  # 19,715
    ("renew", "move2", "reserveX"),  # 19,715
    ("renew", "move", "heal"),  # 17,420
    ("renew", "move2", "heal"),  # 17,420
    ("move", "move2", "withdraw"),  # 17,234
    ("move", "repair", "withdraw"),  # 15,239
    ("move2", "repair", "withdraw"),  # 15,239
    ("cancel", "reserveX", "repair"),  # 14,243
    ("renew", "move2", "reserveY"),  # 13,653
    ("renew", "move", "reserveY"),  # 13,623
    ("cancel", "reserveY", "repair"),  # 12,816
    ("cancel", "heal", "repair"),  # 12,816
    ("move", "reserveX", "heal"),  # 11,934
    ("move2", "reserveX", "heal"),  # 11,934
    ("cancel", "renew", "repair"),  # 11,896
    ("renew", "move", "withdraw"),  # 9,882
    ("renew", "move2", "withdraw"),  # 9,882
    ("move2", "reserveY", "heal"),  # 9,653
    ("move", "reserveY", "heal"),  # 9,633
    ("renew", "reserveY", "repair"),  # 8,712
    ("renew", "heal", "repair"),  # 8,712
    ("move2", "reserveY", "reserveX"),  # 8,423
    ("move", "reserveY", "reserveX"),  # 8,411
    ("reserveY", "heal", "repair"),  # 6,846
    ("move", "heal", "withdraw"),  # 6,795
    ("move2", "heal", "withdraw"),  # 6,795
    ("cancel", "renew", "reserveX"),  # 6,778
    ("move", "reserveX", "withdraw"),  # 6,198
    ("move2", "reserveX", "withdraw"),  # 6,198
    ("cancel", "renew", "reserveY"),  # 4,709
    ("cancel", "renew", "heal"),  # 4,709
    ("move2", "reserveY", "withdraw"),  # 4,323
    ("move", "reserveY", "withdraw"),  # 4,311
    ("renew", "reserveX", "repair"),  # 4,153
    ("cancel", "repair", "withdraw"),  # 4,129
    ("cancel", "reserveY", "heal"),  # 3,868
    ("cancel", "reserveY", "reserveX"),  # 3,792
    ("cancel", "reserveX", "heal"),  # 3,792
    ("reserveY", "reserveX", "repair"),  # 3,135
    ("reserveX", "heal", "repair"),  # 3,135
    ("renew", "repair", "withdraw"),  # 2,614
    ("cancel", "renew", "withdraw"),  # 2,466
    ("reserveY", "repair", "withdraw"),  # 2,460
    ("heal", "repair", "withdraw"),  # 2,460
    ("renew", "reserveY", "heal"),  # 2,182
    ("cancel", "reserveX", "withdraw"),  # 1,880
    ("reserveY", "reserveX", "heal"),  # 1,491
    ("cancel", "reserveY", "withdraw"),  # 1,362
    ("cancel", "heal", "withdraw"),  # 1,362
    ("renew", "reserveY", "reserveX"),  # 1,316
    ("renew", "reserveX", "heal"),  # 1,316
    ("reserveY", "heal", "withdraw"),  # 1,282
    ("renew", "reserveY", "withdraw"),  # 755
    ("renew", "heal", "withdraw"),  # 755
    ("renew", "reserveX", "withdraw"),  # 548
    ("reserveY", "reserveX", "withdraw"),  # 442
    ("reserveX", "heal", "withdraw"),  # 442
    ("reserveX", "repair", "withdraw"),  # 328
]


def _search(job: Job) -> Any:
    ops, bound = job
    return explore(ops, bound=bound, faults=True)


def _run_all(jobs: list[Job]) -> list[Any]:
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


@pytest.fixture(scope="module")
def ci_searches() -> dict[Job, Any]:
    """The pairs and the triples of TRIPLES, from one queue: the pairs first (none dearer than the dearest triples),
    then the triples, dearest first."""
    jobs: list[Job] = [(pair, None) for pair in PAIRS] + [(triple, 2) for triple in TRIPLES]
    return dict(zip(jobs, _run_all(jobs), strict=True))


def test_every_pair_every_schedule_with_single_faults(ci_searches: dict[Job, Any]) -> None:
    _assert_clean([ci_searches[(pair, None)] for pair in PAIRS])


def test_triples_up_to_two_preemptions_with_single_faults(ci_searches: dict[Job, Any]) -> None:
    _assert_clean([ci_searches[(triple, 2)] for triple in TRIPLES])


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


# The other 22 triples, every schedule with up to two preemptions and every single fault: with the CI scope, every
# triple, about 12 minutes on two cores, so not in CI (`make test-schedules-all`, which sets SCHEDULES_ALL=1); its
# figures are in the closing note of the issue that brought the search.
@pytest.mark.skipif(not os.environ.get("SCHEDULES_ALL"), reason="the long series: make test-schedules-all")
def test_every_other_triple_up_to_two_preemptions_with_single_faults() -> None:
    others = [triple for triple in itertools.combinations(OPS, 3) if triple not in TRIPLES]
    assert len(others) + len(TRIPLES) == 84
    _assert_clean(_run_all([(triple, 2) for triple in others]))
