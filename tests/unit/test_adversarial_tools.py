"""The adversarial runs' tools, without Cassandra: the skewed clock really applies to a process, the history
checker's reading of idempotency keys, and bad combinations of the fault options of stress_test.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from uuid import uuid4

import pytest
from tool_support import PROJECT_DIR, run_in_process, tool_env

from app.models import reservation_id_for
from stress.client import Op
from stress.history import FinalState, check

# -- the wrong clock, without Cassandra ---------------------------------------------------------------
CLOCKS = """
import json, time
from datetime import UTC, datetime
print(json.dumps({
    "time": time.time(),
    "time_ns": time.time_ns() / 1e9,
    "now": datetime.now(UTC).timestamp(),
    "utcnow": datetime.utcnow().replace(tzinfo=UTC).timestamp(),
    "naive_now": datetime.now().timestamp(),
    "monotonic": time.monotonic(),
    "isinstance": isinstance(datetime(2020, 1, 1), datetime) and isinstance(datetime.now(), datetime),
}))
"""


def clocks_with_skew(skew: str | None) -> tuple[float, dict[str, float]]:
    env = {k: v for k, v in os.environ.items() if k != "LIBRARY_CLOCK_SKEW"}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_DIR / "stress" / "skew"), str(PROJECT_DIR)])
    if skew is not None:
        env["LIBRARY_CLOCK_SKEW"] = skew
    before = time.time()
    result = subprocess.run(
        [sys.executable, "-c", CLOCKS], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr == ""  # no warning from extensions built against datetime's C type
    return before, json.loads(result.stdout)


@pytest.mark.parametrize("skew", [3600.0, -2.5])
def test_the_skew_moves_the_wall_clock_of_a_process(skew: float) -> None:
    before, seen = clocks_with_skew(repr(skew))
    after = time.time()
    for name in ("time", "time_ns", "now", "utcnow", "naive_now"):
        assert before + skew - 0.01 <= seen[name] <= after + skew + 0.01, (name, seen[name] - before)
    assert seen["isinstance"] is True


def test_without_the_variable_the_clock_is_true() -> None:
    before, seen = clocks_with_skew(None)
    after = time.time()
    for name in ("time", "time_ns", "now", "utcnow", "naive_now"):
        assert before - 0.01 <= seen[name] <= after + 0.01, name


# -- the checker and idempotency keys, without Cassandra ------------------------------------------------
BOOK = uuid4()


def keyed_reserve(key: str, sent: float, received: float, status: int | None, result_id: object = None) -> Op:
    rid = reservation_id_for(1, BOOK, key)
    ok = status is not None and 200 <= status < 300
    return Op(
        "reserve",
        1,
        BOOK,
        rid,
        sent,
        received,
        status,
        error=None if status and status < 500 else "timeout",
        result_book=BOOK if ok else None,
        result_id=(result_id or rid) if ok else None,
        keyed=True,
    )


def read_book(sent: float, received: float, seen: list) -> Op:
    return Op("read_book", None, BOOK, None, sent, received, 200, seen=seen)


@pytest.mark.parametrize("final_status", [409, 404])
def test_a_keyed_refusal_after_a_lost_attempt_is_final(final_status: int) -> None:
    """The key promises that no attempt of it makes the reservation once one was answered 409 (or 404): the
    reservation showing up afterwards is a violation, though the first attempt got no answer."""
    rid = reservation_id_for(1, BOOK, "k")
    ops = [keyed_reserve("k", 0, 1.5, None), keyed_reserve("k", 1.5, 2, final_status), read_book(3, 4, [(rid, BOOK)])]
    violations, _ = check(ops, FinalState({rid: BOOK}, {BOOK: rid}))
    assert any("was no longer there" in v for v in violations), violations
    assert any("but is still present" in v for v in violations), violations


def test_a_keyed_503_says_nothing() -> None:
    rid = reservation_id_for(1, BOOK, "k")
    ops = [keyed_reserve("k", 0, 1.5, None), keyed_reserve("k", 1.5, 2, 503), read_book(3, 4, [(rid, BOOK)])]
    violations, figures = check(ops, FinalState({rid: BOOK}, {BOOK: rid}))
    assert violations == []
    assert figures["certain_holds"] == 0


def test_an_acknowledgement_must_name_the_keys_reservation() -> None:
    other = uuid4()
    ops = [keyed_reserve("k", 0, 1, 201, result_id=other)]
    violations, _ = check(ops, FinalState({}, {}))
    assert any("not " + str(reservation_id_for(1, BOOK, "k")) in v for v in violations), violations


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--instances", "3", "--url", "http://127.0.0.1:9"], "error: --instances starts its own copies of the app"),
        (["--skew", "0.5"], "error: --skew needs --instances 2 or more"),
        (["--instances", "1", "--skew", "0.5"], "error: --skew needs --instances 2 or more"),
        (["--instances", "2", "--skew", "0"], "error: --skew 0: give a number of seconds"),
        (["--pause-every", "3"], "error: --pause-every freezes copies of the app this tool starts"),
        (["--crash"], "error: --crash says how to stop a node"),
        (["--instances", "9"], "must be between 1 and 8"),
        (["--pause-every", "0"], "must be at least 0.1"),
    ],
)
def test_bad_fault_options_are_one_clear_line(args: list[str], message: str) -> None:
    result = run_in_process(["stress_test.py", "2", *args], tool_env([], "unused"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]  # one line (argparse prints its usage above it)
