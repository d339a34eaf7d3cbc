"""A progress bar on stderr, shared by the seeder, the stress tests, the bench and unreserve_all.

On a terminal it redraws one line in place; in a log (CI, docker-compose) it writes a plain line every
few seconds instead, so the log shows that work goes on without filling up with carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30
TERMINAL_REDRAW_SECONDS = 0.1
LOG_LINE_SECONDS = 5.0


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(0, total)
        self.label = label
        self.done = 0
        self.extra = ""
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._interactive = self.stream.isatty()
        self._last_draw = 0.0
        self._closed = False

    def advance(self, n: int = 1, extra: str | None = None) -> None:
        self.done += n
        if extra is not None:
            self.extra = extra
        now = time.monotonic()
        interval = TERMINAL_REDRAW_SECONDS if self._interactive else LOG_LINE_SECONDS
        if now - self._last_draw >= interval:
            self._last_draw = now
            self._draw(now)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = int(fraction * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            left = (self.total - self.done) / rate if rate > 0 and self.done < self.total else 0.0
            line = (
                f"{self.label} [{bar}] {self.done}/{self.total} {fraction:4.0%} "
                f"{rate:,.0f}/s {elapsed:5.1f}s elapsed, ~{left:.0f}s left"
            )
        else:
            line = f"{self.label} {self.done} done {rate:,.0f}/s {elapsed:5.1f}s elapsed"
        return f"{line} {self.extra}".rstrip()

    def _draw(self, now: float) -> None:
        if self._interactive:
            self.stream.write("\r\x1b[K" + self._line(now))
        else:
            self.stream.write(self._line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state once and end the line; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._draw(time.monotonic())
        if self._interactive:
            self.stream.write("\n")
            self.stream.flush()
