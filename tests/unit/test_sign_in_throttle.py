"""The throttle on PIN guessing, as pure decisions (app/repository/accounts.py): when a pool of a card takes its next
PIN check, how many tries are left, and which pool a device token counts in. Its counting in Cassandra, on every
instance at once, is tests/integration/test_sign_in.py's."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from app.models import InvalidInput, User
from app.repository.accounts import UNKNOWN_CLIENTS, DeviceTokens, attempts_left, lock_end
from app.repository.base import Seal
from app.rules import (
    DAY_WINDOW_IN_LOCKOUTS,
    LOCKOUT_SECONDS,
    MAX_SIGN_INS_PER_DAY,
    check_device_token,
    check_pin_as_typed,
)

NOW = datetime(2026, 11, 23, 14, 5)
WINDOW = timedelta(seconds=LOCKOUT_SECONDS)
DAY = WINDOW * DAY_WINDOW_IN_LOCKOUTS


def ago(*seconds: float) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


def test_five_checks_in_a_window_then_a_lock_until_the_oldest_leaves_it() -> None:
    assert lock_end(ago(10, 20, 30, 40), NOW, LOCKOUT_SECONDS) is None
    assert attempts_left(ago(0, 10, 20, 30), NOW, LOCKOUT_SECONDS) == 1  # the sign-in page warns now
    five = ago(10, 20, 30, 40, 50)
    assert attempts_left(five, NOW, LOCKOUT_SECONDS) == 0
    assert lock_end(five, NOW, LOCKOUT_SECONDS) == NOW - timedelta(seconds=50) + WINDOW
    # Older attempts no longer count in the window.
    assert lock_end(ago(10, 20, 30, 40, LOCKOUT_SECONDS + 1), NOW, LOCKOUT_SECONDS) is None


def test_at_most_twenty_checks_a_day() -> None:
    # Four rounds of five, each a window apart: the fifth round waits for the oldest of the day to age out.
    spread = [float(n * (LOCKOUT_SECONDS + 60) + k) for n in range(4) for k in range(5)]
    assert len(spread) == MAX_SIGN_INS_PER_DAY
    end = lock_end(ago(*spread), NOW, LOCKOUT_SECONDS)
    assert end == NOW - timedelta(seconds=max(spread)) + DAY


def test_the_worst_case_rate_is_the_daily_limit() -> None:
    """A guesser who always waits for the next allowed check gets MAX_SIGN_INS_PER_DAY in any day, whatever the
    order: simulated minute by minute over three days."""
    checked: list[datetime] = []
    at = NOW
    for _ in range(3 * 24 * 60):
        if lock_end(sorted(checked, reverse=True), at, LOCKOUT_SECONDS) is None:
            checked.append(at)
        at += timedelta(minutes=1)
    for start in checked:
        in_a_day = [t for t in checked if start <= t < start + DAY]
        assert len(in_a_day) <= MAX_SIGN_INS_PER_DAY
    assert len(checked) <= 3 * MAX_SIGN_INS_PER_DAY


def test_a_device_token_counts_apart_only_for_its_own_card_and_generation() -> None:
    seal = Seal("k")
    devices = DeviceTokens(seal)
    card = User(7, "Ada", "a@example.org", NOW, generation=uuid4())
    token = devices.new(card)
    assert devices.pool(token, card).startswith("device:")
    assert devices.pool(devices.new(card), card) != devices.pool(token, card)  # each device its own pool
    reused = User(7, "New Ada", "n@example.org", NOW, generation=uuid4())  # the number handed out again
    other = User(8, "Bob", "b@example.org", NOW, generation=card.generation)
    for stranger in (None, "", "forged.token", token[:-1], DeviceTokens(Seal("x")).new(card)):
        assert devices.pool(stranger, card) == UNKNOWN_CLIENTS
    assert devices.pool(token, reused) == UNKNOWN_CLIENTS
    assert devices.pool(token, other) == UNKNOWN_CLIENTS
    assert devices.pool(token, None) == UNKNOWN_CLIENTS  # no such card


@given(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
def test_a_pin_or_device_token_with_an_unpaired_surrogate_is_refused(surrogate: str) -> None:
    for check, field in ((check_pin_as_typed, "pin"), (check_device_token, "device")):
        for value in (surrogate, f"12{surrogate}34"):
            try:
                check(value)
            except InvalidInput as error:
                assert error.field == field
            else:
                raise AssertionError(f"{field} {value!r} was accepted")
