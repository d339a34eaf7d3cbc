"""Each instance's sweep of holds whose pickup window has passed, and of suspended places in queues whose date has
come (`Reservations.sweep`), in the background.

No lease, unlike the repair: every hold a sweep ends is ended only from the exact state it read (a conditional
release or hand-off at that version), so sweeps on any number of instances at once end each hold once and cost only
their reads. Nothing waits on a sweep to be correct, only to be prompt: a hold past its window stays the reader's
until something ends it, and a reserve or join that meets it ends it first. The worst-case delay between a window's
end and its hold's end is the sweep's interval plus one sweep's duration (with several instances, less); the same
bounds the delay of a suspended place's return to the queue (found through the index on the lock's `resume_at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Sweeper:
    """`sweep` every `every` seconds, from `start()` until `stop()`."""

    def __init__(self, sweep: Callable[[], Awaitable[int]], every: float) -> None:
        self.sweep = sweep
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        log.info("holds past their pickup window, and suspensions that ended, are swept every %g s", self.every)
        self._task = asyncio.create_task(self._run(), name="hold sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                ended = await self.sweep()
                if ended:
                    log.info("ended %d hold(s) whose pickup window had passed", ended)
            except Exception:  # the loop outlives any failed sweep; the next one tries again
                log.exception("the sweep of expired holds failed")
            await asyncio.sleep(self.every)
