"""Faults a stress run can inject beside its traffic: app instances of its own (some with a wrong clock),
instances frozen for a moment, and the audit repairing the tables all along. Stopping or crashing a
Cassandra node is `Outage` in stress/run.py.

A frozen instance (SIGSTOP, then SIGCONT) is what a long garbage-collection pause or an overloaded host
looks like from outside: its connections stay open, its requests stall, then it carries on with whatever
it was doing, late. A skewed instance (stress/skew/sitecustomize.py) writes with timestamps from a clock
that is ahead or behind, as a host whose clock drifted would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.launcher import PROJECT_DIR, running_app
from app.models import LibraryError
from app.repository import Library

SKEW_DIR = Path(__file__).resolve().parent / "skew"
LOG_DIR = PROJECT_DIR / "artifacts" / "logs"
MARKER = "STRESS_INSTANCE"  # in each instance's environment, to find its process
PAUSE_SECONDS = (0.2, 2.0)
EXAMPLES_KEPT = 10


def skews_for(instances: int, skew: float) -> list[float]:
    """Instance 2 runs `skew` seconds ahead, instance 3 as far behind; the others keep the true time."""
    return [skew if i == 2 else -skew if i == 3 else 0.0 for i in range(1, instances + 1)]


@dataclass
class Instance:
    number: int  # 1-based, as the summary names it
    url: str
    pid: int
    skew: float
    log: Path


class Fleet:
    """`count` processes of `python -m app` on free ports against one keyspace, started together; stopped as
    Ctrl-C would stop them when the `with` block ends (after being woken if one was frozen)."""

    def __init__(
        self, hosts: list[str], keyspace: str, count: int, skew: float = 0.0, env: dict[str, str] | None = None
    ) -> None:
        self.hosts, self.keyspace, self.count, self.skew = hosts, keyspace, count, skew
        self.env = env or {}  # what the test needs of the app (test 7: a short pickup window)
        self.instances: list[Instance] = []
        self._stack = contextlib.ExitStack()
        self._tag = secrets.token_hex(4)

    @property
    def urls(self) -> list[str]:
        return [i.url for i in self.instances]

    def _start(self, number: int, skew: float) -> Instance:
        marker = f"{self._tag}/{number}"
        # No background repair in the instances (running_app's default): the run's verdict is the audit of what the
        # requests left, and the repair beside the traffic is --repair-every's, counted in the summary.
        env = {MARKER: marker, "LOG_LEVEL": "WARNING", **self.env}
        if skew:
            env.update(LIBRARY_CLOCK_SKEW=repr(skew), PYTHONPATH=f"{SKEW_DIR}{os.pathsep}{PROJECT_DIR}")
        log = LOG_DIR / f"stress-{self._tag}-instance-{number}.log"
        manager = running_app(self.hosts, self.keyspace, log, extra_env=env)
        url = manager.__enter__()
        with self._lock:
            self._stack.push(manager.__exit__)
        return Instance(number, url, _find_process(marker), skew, log)

    def __enter__(self) -> Fleet:
        self._lock = threading.Lock()
        skews = skews_for(self.count, self.skew)
        try:
            with ThreadPoolExecutor(self.count) as pool:
                futures = [pool.submit(self._start, n, skews[n - 1]) for n in range(1, self.count + 1)]
                self.instances = [f.result() for f in futures]
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for instance in self.instances:
            with contextlib.suppress(ProcessLookupError):
                os.kill(instance.pid, signal.SIGCONT)
        self._stack.close()

    def describe(self) -> list[dict[str, Any]]:
        return [{"number": i.number, "url": i.url, "skew": i.skew, "log": str(i.log)} for i in self.instances]


def _find_process(marker: str) -> int:
    """The pid of this process's child whose environment carries `marker` (running_app does not hand it out)."""
    wanted = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if ppid == os.getpid() and wanted in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except (OSError, StopIteration, ValueError):
            continue
    raise RuntimeError(f"the app process started as {marker} was not found")


# -- freezing instances --------------------------------------------------------------------------------
@dataclass
class Pauses:
    every: float
    count: int = 0
    seconds: float = 0.0
    by_instance: Counter[int] = field(default_factory=Counter)
    longest: float = 0.0

    async def run(self, instances: list[Instance], rng: random.Random) -> None:
        """Until cancelled: wait about `every` seconds, freeze one instance at random for 0.2-2 s, wake it."""
        while True:
            await asyncio.sleep(self.every * rng.uniform(0.5, 1.5))
            victim = rng.choice(instances)
            length = rng.uniform(*PAUSE_SECONDS)
            try:
                os.kill(victim.pid, signal.SIGSTOP)
            except ProcessLookupError:
                return
            try:
                await asyncio.sleep(length)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim.pid, signal.SIGCONT)
            self.count += 1
            self.seconds += length
            self.longest = max(self.longest, length)
            self.by_instance[victim.number] += 1

    def figures(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "count": self.count,
            "seconds": round(self.seconds, 2),
            "longest": round(self.longest, 2),
            "by_instance": dict(sorted(self.by_instance.items())),
        }


# -- repairing beside the traffic ------------------------------------------------------------------------
@dataclass
class Repairs:
    every: float
    audits: int = 0  # audit(repair=True) calls that finished
    found: int = 0  # of them, how many saw a violation
    violations_seen: int = 0
    repaired: Counter[str] = field(default_factory=Counter)  # by kind: the repair line without its ids
    examples: list[str] = field(default_factory=list)  # the first repairs, in full, with when they happened
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    async def run(self, library: Library, stop: asyncio.Event, now: Callable[[], float]) -> None:
        """`audit(repair=True)` every `every` seconds until `stop` is set; an audit under way is let finish, so
        the run never leaves a half-done repair behind."""
        while not stop.is_set():
            started = now()
            try:
                report = await library.audit(repair=True)
            except LibraryError as error:
                self.failed += 1
                self.failures[type(error).__name__] += 1
            else:
                self.audits += 1
                if report.violations:
                    self.found += 1
                    self.violations_seen += len(report.violations)
                for line in dict.fromkeys(report.repaired):  # one line per repair, not one per table it touched
                    self.repaired[_kind(line)] += 1
                    if len(self.examples) < EXAMPLES_KEPT:
                        self.examples.append(f"audit started at {started:.3f}s: {line}")
                if report.violations and not report.repaired and len(self.examples) < EXAMPLES_KEPT:
                    self.examples.append(f"audit started at {started:.3f}s, repaired nothing: {report.violations[0]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)

    def figures(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "audits": self.audits,
            "found_something": self.found,
            "violations_seen": self.violations_seen,
            "repaired": sum(self.repaired.values()),
            "repaired_by_kind": dict(self.repaired.most_common()),
            "examples": self.examples,
            "failed": self.failed,
            "failures": dict(self.failures),
        }


def _kind(line: str) -> str:
    """A repair line with its ids and times left out, to count repairs by kind."""
    words = [("…" if any(c.isdigit() for c in w) and len(w) >= 8 else w) for w in line.split()]
    kept = [w for i, w in enumerate(words) if w != "…" or (i and words[i - 1] != "…")]
    return " ".join(kept)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
