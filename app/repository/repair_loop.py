"""The audit-and-repair, run in the background by one app instance at a time, under a lease.

Every instance of `python -m app` runs a `RepairLoop` (unless REPAIR_EVERY_SECONDS=0). Every third of the lease's
life (REPAIR_LEASE_SECONDS) it keeps the lease: the row `repair_lease('audit')`, taken with `INSERT ... IF NOT EXISTS
USING TTL`, renewed by its holder with `UPDATE ... USING TTL ... IF holder = ?`. So one instance holds it at a time,
and when the holder dies (killed, frozen, cut off) its row expires after the TTL and the next instance to try takes
it. The holder runs `Library.audit(repair=True)` REPAIR_EVERY_SECONDS after its last pass ended (at once on taking
the lease), only one pass at a time, keeping the lease through it; a clean stop releases the lease (`DELETE ...
IF holder = ?`).

The lease is about cost, never safety. A pass reads every lock and view in full, and one is enough; but two passes at
once (a holder that stalled past its TTL while another took over, an operator's own `audit(repair=True)`, the stress
tool's) are as harmless as one, because the repair decides nothing on its scans: it reads each lock again at SERIAL
right before writing, leaves alone any lock that changed within SETTLE_AFTER_SECONDS, and does only what a request
meeting that lock would do (app/repository/audit.py). Two repairers meeting the same lock do what two requests would,
which the lock's transitions already make safe. So the lease's statements have no part in the reservation protocol,
and what an instance believes about it (it holds the lease until its own clock says the TTL ran out since it last
renewed, even while Cassandra cannot answer) can be wrong at no risk but a pass run twice.

A pass that fails (too few replicas, a timeout) is logged at WARNING and tried again REPAIR_EVERY_SECONDS later; the
loop itself never stops on an error. Findings go to the log (a clean pass at INFO, violations and what was repaired at
WARNING) and to `RepairLoop.figures`, plain attributes that a metrics module reads; `RepairLoop.listeners` are
called after every pass with the figures and the report (None when the pass failed).

Cost: a pass reads the locks and the three views in pages of 1,000 (four scans, about four rows per held book and one
per free one), plus one SERIAL read per suspect it repairs; the README gives what it measured (`python -m bench
repair`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import uuid4

from app.db import Database, OutcomeUnknown
from app.models import AuditReport, DatabaseUnavailable
from app.repository.base import RepositoryBase

log = logging.getLogger(__name__)

LEASE_NAME = "audit"
# Lines of the repair's report that say a suspect was left for later, not mended (app/repository/audit.py).
_LEFT = ("not mended", "left to the request")


@dataclass(frozen=True)
class Lease:
    """The lease's row as a statement found or left it: its holder (None: nobody holds it) and when the holder's
    last pass ended (None: unknown)."""

    holder: str | None
    last_pass: datetime | None = None


class LeaseStore(Protocol):
    """The lease's row. Each call answers the row as the statement left it (after a take or renew that applied, the
    caller's own), whatever happened to the answer on its way back."""

    async def take(self, holder: str, seconds: int, last_pass: datetime | None) -> Lease: ...

    async def renew(self, holder: str, seconds: int, last_pass: datetime | None) -> Lease: ...

    async def release(self, holder: str) -> None: ...

    async def read(self, *, serial: bool = False) -> Lease: ...


_TAKE = "INSERT INTO {ks}.repair_lease (name, holder, until, last_pass) VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
_RENEW = "UPDATE {ks}.repair_lease USING TTL ? SET holder = ?, until = ?, last_pass = ? WHERE name = ? IF holder = ?"
_RELEASE = "DELETE FROM {ks}.repair_lease WHERE name = ? IF holder = ?"
_READ = "SELECT holder, last_pass FROM {ks}.repair_lease WHERE name = ?"


class CassandraLease(RepositoryBase):
    """The `repair_lease` table, written only with lightweight transactions. A take or renew whose answer was lost
    is read back once at SERIAL, as every conditional write of the repository is: the row names its holder, so it
    tells whether the write applied. A release whose answer was lost is left to the TTL."""

    def __init__(self, db: Database, name: str = LEASE_NAME) -> None:
        super().__init__(db)
        self.name = name

    async def take(self, holder: str, seconds: int, last_pass: datetime | None) -> Lease:
        params = [self.name, holder, _until(seconds), last_pass, seconds]
        return await self._conditional(_TAKE, params, holder, last_pass)

    async def renew(self, holder: str, seconds: int, last_pass: datetime | None) -> Lease:
        params = [seconds, holder, _until(seconds), last_pass, self.name, holder]
        return await self._conditional(_RENEW, params, holder, last_pass)

    async def release(self, holder: str) -> None:
        try:
            await self.db.execute(self.cql(_RELEASE), [self.name, holder], write=True)
        except DatabaseUnavailable as error:
            log.warning("could not release the repair lease (%s); it ends with its TTL", error)

    async def read(self, *, serial: bool = False) -> Lease:
        consistency = self.db.serial_consistency if serial else None
        row = (await self.db.execute(self.cql(_READ), [self.name], consistency=consistency)).one()
        return Lease(None) if row is None else Lease(row.holder, row.last_pass)

    async def _conditional(self, cql: str, params: list[object], holder: str, last_pass: datetime | None) -> Lease:
        try:
            result = await self.db.execute(self.cql(cql), params, write=True)
        except OutcomeUnknown:
            return await self.read(serial=True)
        if result.was_applied:
            return Lease(holder, last_pass)
        # A condition that failed answers the row as it is (a refused take: the whole row; a refused renew: the
        # column its condition names).
        row = result.one()
        return Lease(getattr(row, "holder", None), getattr(row, "last_pass", None))


def _until(seconds: int) -> datetime:
    return datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=seconds)


def make_holder_name() -> str:
    """This instance's name in the lease: the machine, the process and a random part (a restarted process that got
    the same pid is another holder)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid4().hex[:8]}"


# -- the decisions, pure, so the unit tier tests them without Cassandra or a clock --------------------------------
def renew_every(lease_seconds: int) -> float:
    """How often the loop keeps the lease: a third of its life, so two renewals can fail before it ends."""
    return lease_seconds / 3


def believed_held(held_until: float | None, now: float) -> bool:
    """Whether this instance holds the lease as far as it can tell: until the TTL it last wrote has run out,
    counted from before that write was sent (so never past the row's own expiry)."""
    return held_until is not None and now < held_until


# The most of the time the loop may spend in a pass: a pass reads every lock and view, and reserves go on beside it
# but slower, so a pass running this share of the time costs reserving at most about this share of its throughput.
REPAIR_TIME_SHARE = 0.05


def gap_after(last_pass_seconds: float | None, every: float, share: float = REPAIR_TIME_SHARE) -> float:
    """The time between the end of a pass and the start of the next: REPAIR_EVERY_SECONDS (`every`), or longer when
    the last pass took so long that it would run more than `share` of the time (a big catalogue: about 2.8 ms a book
    here with half of them held, so 60 s up to about 1,100 books, then 19 times a pass's duration, README
    "Performance"). `share` 1 never waits longer than `every`."""
    if last_pass_seconds is None or share >= 1:
        return every
    return max(every, last_pass_seconds * (1 - share) / share)


def pass_due(holding: bool, running: bool, last_end: float | None, now: float, gap: float) -> bool:
    """A pass starts when this instance holds the lease, none of its passes is under way, and the last one it ran
    ended `gap` seconds ago (`gap_after`; on taking the lease, at once: it cannot know when the last holder's pass
    was)."""
    return holding and not running and (last_end is None or now - last_end >= gap)


def repairs_and_deferrals(report: AuditReport) -> tuple[int, int]:
    """Of the repair's lines, how many mended something and how many left a suspect for later."""
    left = sum(1 for line in report.repaired if any(marker in line for marker in _LEFT))
    return len(report.repaired) - left, left


@dataclass
class RepairFigures:
    """What the loop has done, as plain numbers for the metrics and the log. Times are wall-clock seconds since
    the epoch (time.time()); counts are since the loop started."""

    holder: str
    started_at: float
    holding: bool = False
    leases_taken: int = 0
    leases_lost: int = 0
    lease_errors: int = 0
    passes: int = 0  # passes that completed
    failed_passes: int = 0
    violations_found: int = 0  # over every pass
    repairs_made: int = 0
    repairs_left: int = 0  # suspects a pass left for the next one (too young, or a read failed)
    last_violations: int = 0
    last_pass_seconds: float | None = None
    # When a pass of this keyspace last completed: this instance's, or the holder's, read off the lease's row.
    last_pass_ended_at: float | None = None
    running: bool = False

    def lag(self, now: float | None = None) -> float:
        """Seconds since the last completed pass known here (since the loop started, if none is)."""
        now = time.time() if now is None else now
        return now - (self.last_pass_ended_at if self.last_pass_ended_at is not None else self.started_at)


Listener = Callable[[RepairFigures, AuditReport | None], None]


class RepairLoop:
    """The background loop of one instance. `start()` runs it as an asyncio task, `stop()` ends it and releases
    the lease; `step()` is one tick of it (the lease kept, a pass started if due), for tests that drive it."""

    def __init__(
        self,
        audit: Callable[..., Awaitable[AuditReport]],
        lease: LeaseStore,
        *,
        every: float,
        lease_seconds: int,
        holder: str | None = None,
        share: float = REPAIR_TIME_SHARE,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if lease_seconds < 3:
            raise ValueError("a lease renewed every third of its life needs at least 3 seconds")
        self.audit = audit
        self.lease = lease
        self.every = every
        self.share = share
        self.lease_seconds = lease_seconds
        self.holder = holder or make_holder_name()
        self.clock = clock
        self.wall = wall
        self.figures = RepairFigures(self.holder, started_at=wall())
        self.listeners: list[Listener] = []
        self._held_until: float | None = None
        self._last_end: float | None = None
        self._pass: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # a stop, or a pass that ended
        self._unreachable = False

    # -- running it
    def start(self) -> None:
        log.info(
            "background repair: a pass every %g s (or more, so that passes take at most %g%% of the time) by the "
            "holder of the repair lease (TTL %d s, renewed every %g s); this instance is %s",
            self.every,
            100 * min(self.share, 1),
            self.lease_seconds,
            renew_every(self.lease_seconds),
            self.holder,
        )
        self._task = asyncio.create_task(self._run(), name="repair loop")

    async def stop(self) -> None:
        """Ends the loop: a pass under way is stopped (the repair may stop anywhere, as a request may), and the
        lease released, so another instance takes it at its next tick instead of after the TTL."""
        self._stop.set()
        self._wake.set()
        await self._cancel()
        if self.figures.holding:
            await self.lease.release(self.holder)
            self._set_holding(False, "released it")

    async def abandon(self) -> None:
        """Ends the loop without releasing the lease, as a killed instance would (for tests)."""
        self._stop.set()
        self._wake.set()
        await self._cancel()

    async def _cancel(self) -> None:
        for task in (self._task, self._pass):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.step()
            except Exception:  # the loop outlives any bug of a tick; the next one tries again
                log.exception("background repair: a tick failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wait())

    def _next_wait(self) -> float:
        """Until the lease is next kept, or the next pass is due if that is sooner (woken when a pass ends)."""
        wait = renew_every(self.lease_seconds)
        running = self._pass is not None and not self._pass.done()
        if self.figures.holding and not running and self._last_end is not None:
            wait = min(wait, max(0.0, self._last_end + self.gap() - self.clock()))
        return wait

    def gap(self) -> float:
        """The time from the end of the last pass to the next (`gap_after`)."""
        return gap_after(self.figures.last_pass_seconds, self.every, self.share)

    async def step(self) -> None:
        """One tick: the lease taken or renewed, then a pass started if one is due."""
        await self._keep_lease()
        running = self._pass is not None and not self._pass.done()
        if pass_due(self.figures.holding, running, self._last_end, self.clock(), self.gap()):
            self._pass = asyncio.create_task(self._one_pass(), name="repair pass")

    async def wait_for_pass(self) -> None:
        """Until the pass under way (if any) has ended (for tests and the bench)."""
        if self._pass is not None:
            await asyncio.shield(self._pass)

    # -- the lease
    async def _keep_lease(self) -> None:
        sent = self.clock()
        last_pass = _timestamp(self.figures.last_pass_ended_at)
        try:
            if believed_held(self._held_until, sent):
                row = await self.lease.renew(self.holder, self.lease_seconds, last_pass)
                if row.holder is None:  # it ran out before the renewal reached it: take it again
                    row = await self.lease.take(self.holder, self.lease_seconds, last_pass)
            else:
                row = await self.lease.take(self.holder, self.lease_seconds, last_pass)
        except DatabaseUnavailable as error:
            # No answer: hold on to what was believed until its own end. Wrong at worst by one pass run twice.
            self.figures.lease_errors += 1
            if not self._unreachable:
                log.warning("background repair: the lease could not be kept (%s); trying again", error)
                self._unreachable = True
            if not believed_held(self._held_until, self.clock()):
                self._held_until = None
                self._set_holding(False, "its TTL ran out while Cassandra did not answer")
            return
        self._unreachable = False
        if row.holder == self.holder:
            self._held_until = sent + self.lease_seconds
            self._set_holding(True, "took it")
            return
        self._held_until = None
        self._set_holding(False, f"{row.holder or 'nobody'} holds it")
        if row.last_pass is not None:  # the holder's last pass, off its row
            ended = row.last_pass.replace(tzinfo=UTC).timestamp()
            self.figures.last_pass_ended_at = max(ended, self.figures.last_pass_ended_at or ended)

    def _set_holding(self, holding: bool, why: str) -> None:
        if holding == self.figures.holding:
            return
        self.figures.holding = holding
        if holding:
            self.figures.leases_taken += 1
            log.info("background repair: this instance (%s) took the repair lease", self.holder)
        else:
            self.figures.leases_lost += 1
            log.info("background repair: this instance no longer holds the repair lease: %s", why)

    # -- a pass
    async def _one_pass(self) -> None:
        started = self.clock()
        self.figures.running = True
        report: AuditReport | None = None
        try:
            report = await self.audit(repair=True)
        except DatabaseUnavailable as error:
            self.figures.failed_passes += 1
            log.warning(
                "background repair: a pass failed after %.1f s (%s); the next one in %g s",
                self.clock() - started,
                error,
                self.gap(),
            )
        except Exception:
            self.figures.failed_passes += 1
            log.exception("background repair: a pass failed; the next one in %g s", self.gap())
        finally:
            self.figures.running = False
            self._last_end = self.clock()
            self._wake.set()
        if report is not None:
            self._count(report, self._last_end - started)
        for listener in self.listeners:
            try:
                listener(self.figures, report)
            except Exception:
                log.exception("background repair: a listener failed")

    def _count(self, report: AuditReport, seconds: float) -> None:
        made, left = repairs_and_deferrals(report)
        figures = self.figures
        figures.passes += 1
        figures.violations_found += len(report.violations)
        figures.repairs_made += made
        figures.repairs_left += left
        figures.last_violations = len(report.violations)
        figures.last_pass_seconds = seconds
        figures.last_pass_ended_at = self.wall()
        said = f"{report.locks} held locks, {report.reservations} reservations, {seconds:.2f} s"
        if report.clean:
            log.info("background repair: pass %d clean (%s)", figures.passes, said)
            return
        log.warning(
            "background repair: pass %d found %d violations, repaired %d, left %d for the next pass (%s)",
            figures.passes,
            len(report.violations),
            made,
            left,
            said,
        )
        for line in report.violations[:10]:
            log.warning("  found: %s", line)
        for line in report.repaired[:10]:
            log.warning("  repair: %s", line)


def _timestamp(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None, microsecond=0)


__all__ = ["CassandraLease", "Lease", "LeaseStore", "RepairFigures", "RepairLoop"]
