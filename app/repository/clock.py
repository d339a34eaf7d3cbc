"""Lock versions: a hybrid logical clock in microseconds.

A lock's `version` only grows: every transition of the lock is a lightweight transaction whose condition
includes `version < new` (or `version = the version read`, with new > read). The new version is taken from
this clock, which never goes back and is always above every version the process has seen, so it stays close
to the wall clock without trusting it: an instance whose clock is behind still proposes versions above what
it read, and when it proposes one too low anyway, the transaction fails, returns the row, and is tried again
from the version it returned. Clocks decide nothing; they only keep versions near real time, so that write
timestamps stay comparable with Cassandra's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class VersionClock:
    def __init__(self, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self._wall_ns = wall_ns
        self._last = 0

    def wall_us(self) -> int:
        return self._wall_ns() // 1000

    def next(self, *seen: int | None) -> int:
        """A version above the wall clock's present, every version seen, and every one given out before."""
        candidate = max(self.wall_us(), self._last + 1, *((v + 1) for v in seen if v is not None))
        self._last = candidate
        return candidate

    def observe(self, version: int | None) -> None:
        if version is not None and version > self._last:
            self._last = version
