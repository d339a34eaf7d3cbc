"""The background repair's lease and schedule (app/repository/repair_loop.py), against an in-memory lease with a TTL
and a clock the test moves: who holds the lease, when another takes it over, when a pass runs, what the figures say.
The lease's statements on Cassandra and the repair itself are tested in tests/integration/test_repair_loop.py."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

from app.models import AuditReport, DatabaseUnavailable
from app.repository.repair_loop import (
    Lease,
    RepairLoop,
    believed_held,
    gap_after,
    pass_due,
    renew_every,
    repairs_and_deferrals,
)
from app.settings import Settings

TTL = 30
EVERY = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryLease:
    """One lease row with a TTL, on the test's clock: what Cassandra's conditional statements do to it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.holder: str | None = None
        self.expires = 0.0
        self.last_pass: datetime | None = None
        self.down = False

    def _live(self) -> str | None:
        return self.holder if self.holder is not None and self.clock() < self.expires else None

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable("database unavailable: 1 of the 2 replicas needed are up")

    async def take(self, holder: str, seconds: int, last_pass: datetime | None) -> Lease:
        self._check()
        if self._live() is None:
            self.holder, self.expires, self.last_pass = holder, self.clock() + seconds, last_pass
            return Lease(holder, last_pass)
        return Lease(self.holder, self.last_pass)

    async def renew(self, holder: str, seconds: int, last_pass: datetime | None) -> Lease:
        self._check()
        if self._live() == holder:
            self.expires, self.last_pass = self.clock() + seconds, last_pass
            return Lease(holder, last_pass)
        return Lease(self._live())

    async def release(self, holder: str) -> None:
        self._check()
        if self._live() == holder:
            self.holder = None

    async def read(self, *, serial: bool = False) -> Lease:
        return Lease(self._live(), self.last_pass)


class Audits:
    def __init__(self, report: AuditReport | None = None, clock: Clock | None = None, seconds: float = 0.0) -> None:
        self.calls = 0
        self.report = report or AuditReport()
        self.failing = False
        self.clock, self.seconds = clock, seconds  # each pass moves the test's clock on by `seconds`

    async def __call__(self, repair: bool = False) -> AuditReport:
        assert repair
        self.calls += 1
        if self.clock is not None:
            self.clock.now += self.seconds
        if self.failing:
            raise DatabaseUnavailable("database unavailable: the read timed out (ReadTimeout)")
        return self.report


def loop(name: str, lease: MemoryLease, clock: Clock, audits: Audits) -> RepairLoop:
    return RepairLoop(audits, lease, every=EVERY, lease_seconds=TTL, holder=name, clock=clock, wall=clock)


async def tick(*loops: RepairLoop) -> None:
    for each in loops:
        await each.step()
        await each.wait_for_pass()


def test_the_decisions() -> None:
    assert renew_every(30) == 10
    assert not believed_held(None, 5.0)
    assert believed_held(10.0, 9.9) and not believed_held(10.0, 10.0)
    assert pass_due(True, False, None, 0.0, EVERY)  # just took the lease: at once
    assert not pass_due(False, False, None, 0.0, EVERY)  # not the holder
    assert not pass_due(True, True, None, 0.0, EVERY)  # one pass at a time
    assert not pass_due(True, False, 100.0, 159.0, EVERY) and pass_due(True, False, 100.0, 160.0, EVERY)
    assert gap_after(None, EVERY) == EVERY and gap_after(1.6, EVERY) == EVERY  # a small catalogue: every 60 s
    assert gap_after(10.0, EVERY) == pytest.approx(190.0)  # 10 s passes: 10 / (10 + 190) = 5% of the time
    assert gap_after(10.0, EVERY, share=1) == EVERY  # the bench's back-to-back row
    report = AuditReport(
        repaired=[
            "rebuilt the views of r on book b",
            "book b: not mended, left for the next repair (database unavailable)",
            "book c: changed less than the settle time ago; left to the request at work on it",
        ]
    )
    assert repairs_and_deferrals(report) == (1, 2)


async def test_one_holder_at_a_time_and_a_takeover_after_the_ttl() -> None:
    clock = Clock()
    lease = MemoryLease(clock)
    audits_a, audits_b = Audits(), Audits()
    a, b = loop("a", lease, clock, audits_a), loop("b", lease, clock, audits_b)
    await tick(a, b)
    assert (a.figures.holding, b.figures.holding) == (True, False)
    assert (audits_a.calls, audits_b.calls) == (1, 0)  # the holder's pass at once, nobody else's

    # Renewed every third of the TTL for longer than the TTL: still a's, one pass per interval.
    for _ in range(9):
        clock.now += renew_every(TTL)
        await tick(a, b)
        assert (a.figures.holding, b.figures.holding) == (True, False)
    assert (audits_a.calls, audits_b.calls) == (2, 0)

    # a dies without a word: b takes the lease over once the TTL has run out, and runs a pass at once.
    died = clock.now
    while not b.figures.holding:
        clock.now += renew_every(TTL)
        await tick(b)
    assert clock.now - died <= TTL + renew_every(TTL)
    assert audits_b.calls == 1 and b.figures.leases_taken == 1


async def test_a_clean_stop_releases_the_lease_for_the_next_tick() -> None:
    clock = Clock()
    lease = MemoryLease(clock)
    a, b = loop("a", lease, clock, Audits()), loop("b", lease, clock, Audits())
    await tick(a, b)
    await a.stop()
    assert not a.figures.holding and lease.holder is None
    await tick(b)
    assert b.figures.holding


async def test_the_holder_keeps_its_belief_while_cassandra_does_not_answer_until_the_ttl_ends() -> None:
    clock = Clock()
    lease = MemoryLease(clock)
    a = loop("a", lease, clock, Audits())
    await tick(a)
    lease.down = True
    clock.now += TTL - 1
    await tick(a)
    assert a.figures.holding and a.figures.lease_errors == 1
    clock.now += 2
    await tick(a)
    assert not a.figures.holding and a.figures.leases_lost == 1
    lease.down = False
    await tick(a)  # the row ran out too: taken again
    assert a.figures.holding and a.figures.leases_taken == 2


async def test_a_failed_pass_is_counted_and_tried_again_an_interval_later(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    audits = Audits()
    audits.failing = True
    a = loop("a", MemoryLease(clock), clock, audits)
    await tick(a)
    assert a.figures.failed_passes == 1 and a.figures.passes == 0
    assert "a pass failed" in caplog.text
    clock.now += EVERY - 1
    await tick(a)
    assert audits.calls == 1
    audits.failing = False
    clock.now += 1
    await tick(a)
    assert audits.calls == 2 and a.figures.passes == 1


async def test_findings_go_to_the_figures_the_listeners_and_the_log(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    report = AuditReport(
        locks=3,
        reservations=3,
        violations=["lock on book b holds reservation r, missing from reservations"],
        repaired=["rebuilt the views of r on book b", "book c: not mended, left for the next repair (x)"],
    )
    a = loop("a", MemoryLease(clock), clock, Audits(report))
    heard: list[tuple[int, AuditReport | None]] = []
    a.listeners.append(lambda figures, got: heard.append((figures.passes, got)))
    clock.now += 5  # the loop started 5 s before its first pass ended
    await tick(a)
    figures = a.figures
    assert (figures.passes, figures.violations_found, figures.repairs_made, figures.repairs_left) == (1, 1, 1, 1)
    assert figures.last_violations == 1 and figures.last_pass_seconds == 0
    assert figures.last_pass_ended_at == clock.now and figures.lag(clock.now + 7) == 7
    assert heard == [(1, report)]
    assert re.search(r"pass 1 found 1 violations, repaired 1, left 1", caplog.text)


async def test_an_instance_that_does_not_hold_the_lease_reads_the_last_pass_off_it() -> None:
    clock = Clock()
    clock.now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    lease = MemoryLease(clock)
    a, b = loop("a", lease, clock, Audits()), loop("b", lease, clock, Audits())
    await tick(a)
    assert b.figures.lag(clock.now) == 0  # since b started: it knows of no pass yet
    clock.now += renew_every(TTL)
    await tick(a, b)  # a's renewal writes when its pass ended; b's refused take answers it
    assert b.figures.last_pass_ended_at == a.figures.last_pass_ended_at


async def test_started_as_a_task_it_takes_the_lease_runs_a_pass_and_stops_cleanly() -> None:
    clock = Clock()
    lease = MemoryLease(clock)
    audits = Audits()
    a = RepairLoop(audits, lease, every=EVERY, lease_seconds=3, holder="a", clock=clock)
    a.start()
    for _ in range(100):
        if a.figures.passes:
            break
        await asyncio.sleep(0.01)
    assert a.figures.holding and a.figures.passes == 1
    await a.stop()
    assert lease.holder is None


def test_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env()
    assert (settings.repair_every_seconds, settings.repair_lease_seconds) == (60.0, 30)
    monkeypatch.setenv("REPAIR_EVERY_SECONDS", "0")
    monkeypatch.setenv("REPAIR_LEASE_SECONDS", "6")
    settings = Settings.from_env()
    assert (settings.repair_every_seconds, settings.repair_lease_seconds) == (0.0, 6)
    monkeypatch.setenv("REPAIR_EVERY_SECONDS", "0.5")
    assert Settings.from_env().repair_every_seconds == 0.5
    for bad, said in (("-1", "must be 0 or more seconds"), ("often", "is not a number of seconds")):
        monkeypatch.setenv("REPAIR_EVERY_SECONDS", bad)
        with pytest.raises(ValueError, match=said):
            Settings.from_env()
    monkeypatch.setenv("REPAIR_EVERY_SECONDS", "60")
    for bad, said in (("2", "at least 3 seconds"), ("0", "not a positive whole number"), ("1.5", "whole number")):
        monkeypatch.setenv("REPAIR_LEASE_SECONDS", bad)
        with pytest.raises(ValueError, match=said):
            Settings.from_env()


async def test_a_slow_pass_spaces_the_next_so_passes_take_at_most_five_percent_of_the_time() -> None:
    """Before: a catalogue whose pass took 10 s was read every 60 s, a sixth of the time, whatever its size."""
    clock = Clock()
    audits = Audits(clock=clock, seconds=10.0)
    slow = loop("a", MemoryLease(clock), clock, audits)
    await tick(slow)
    assert audits.calls == 1 and slow.figures.last_pass_seconds == pytest.approx(10.0)
    clock.now += EVERY
    await tick(slow)
    assert audits.calls == 1  # 60 s after a 10 s pass is too soon
    clock.now += 190.0 - EVERY
    await tick(slow)
    assert audits.calls == 2
