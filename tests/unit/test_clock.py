"""The lock versions' clock, without Cassandra: it never goes back, and never proposes a version at or below one
it has seen, whatever the wall clock does."""

from __future__ import annotations

from app.repository.clock import VersionClock


def test_versions_grow_even_when_the_wall_clock_stands_still_or_goes_back() -> None:
    wall = [5_000_000_000]
    clock = VersionClock(lambda: wall[0])
    first = clock.next()
    assert first == 5_000_000
    assert clock.next() == first + 1  # the wall clock did not move
    wall[0] -= 1_000_000_000  # it went back a second
    assert clock.next() == first + 2


def test_a_clock_behind_proposes_above_every_version_it_has_seen() -> None:
    behind = VersionClock(lambda: 1_000)  # a microsecond of wall time: far behind everybody
    assert behind.next(7_000_000) == 7_000_001
    behind.observe(9_000_000)
    assert behind.next() == 9_000_001
    assert behind.next(None, 3) == 9_000_002


def test_a_clock_ahead_stays_with_the_wall() -> None:
    ahead = VersionClock(lambda: 2_000_000_000_000)
    assert ahead.next(5) == 2_000_000_000
    assert ahead.wall_us() == 2_000_000_000
