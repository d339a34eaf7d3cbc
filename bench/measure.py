"""Timing: run one operation many times with bounded concurrency and sum it up as figures.

Every operation returns its outcome (`ok`, `conflict`, or raises); the clock covers the whole batch of
operations, so throughput is completed operations per wall-clock second, errors included.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.stats import percentile

Operation = Callable[[int], Awaitable[str]]


@dataclass
class Figures:
    group: str  # reserve, hot, catalogue, reader, breakdown: ratios compare rows of one group
    name: str
    layer: str  # driver, repository, http
    concurrency: int
    ops: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    baseline: bool = False
    ratio: float | None = None  # throughput / the group's baseline throughput at the same concurrency

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def figures(
    group: str,
    name: str,
    layer: str,
    concurrency: int,
    seconds: float,
    latencies: list[float],
    outcomes: Counter[str],
    errors: Counter[str],
    *,
    baseline: bool = False,
) -> Figures:
    ordered = sorted(latencies)
    ops = len(ordered)
    return Figures(
        group=group,
        name=name,
        layer=layer,
        concurrency=concurrency,
        ops=ops,
        seconds=round(seconds, 4),
        throughput=round(ops / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentile(ordered, 50) * 1000, 2),
        p99_ms=round(percentile(ordered, 99) * 1000, 2),
        mean_ms=round(sum(ordered) / ops * 1000, 2) if ops else 0.0,
        outcomes=dict(outcomes),
        errors=dict(errors),
        baseline=baseline,
    )


async def _drive(
    op: Operation,
    indices: range,
    concurrency: int,
    latencies: list[float],
    outcomes: Counter[str],
    errors: Counter[str],
) -> None:
    iterator = iter(indices)

    async def worker() -> None:
        for i in iterator:
            started = time.perf_counter()
            try:
                outcome = await op(i)
            except Exception as error:  # a failed request is a figure of the run, not the end of it
                outcome = "error"
                errors[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)
            outcomes[outcome] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(
    group: str,
    name: str,
    layer: str,
    op: Operation,
    *,
    ops: int,
    concurrency: int,
    warmup: int,
    baseline: bool = False,
) -> Figures:
    """`op(i)` for i in 0..ops-1, `concurrency` at a time, after `warmup` untimed calls (i = ops..ops+warmup-1)
    that fill connection pools and prepared-statement caches, so the first timed calls pay no set-up."""
    if warmup:
        await _drive(op, range(ops, ops + warmup), concurrency, [], Counter(), Counter())
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    await _drive(op, range(ops), concurrency, latencies, outcomes, errors)
    seconds = time.perf_counter() - started
    return figures(group, name, layer, concurrency, seconds, latencies, outcomes, errors, baseline=baseline)


def _chain(
    start: Callable[[int], Any], outcome_of: Callable[[Any], str], indices: range, concurrency: int
) -> tuple[float, list[float], Counter[str], Counter[str]]:
    lock = threading.Lock()
    done = threading.Event()
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    pending = iter(indices)
    remaining = [len(indices)]

    def launch() -> None:
        with lock:
            i = next(pending, None)
        if i is None:
            return
        started = time.perf_counter()

        def finish(outcome: str, error: str | None) -> None:
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                outcomes[outcome] += 1
                if error:
                    errors[error] += 1
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()
            launch()

        try:
            future = start(i)
        except Exception as error:  # the driver refused to send it (no host): count it and go on
            finish("error", type(error).__name__)
            return
        future.add_callbacks(
            lambda rows: finish(outcome_of(rows), None), lambda error: finish("error", type(error).__name__)
        )

    began = time.perf_counter()
    if not indices:
        return 0.0, latencies, outcomes, errors
    for _ in range(concurrency):
        launch()
    done.wait()
    return time.perf_counter() - began, latencies, outcomes, errors


def measure_callbacks(
    group: str,
    name: str,
    start: Callable[[int], Any],
    outcome_of: Callable[[Any], str],
    *,
    ops: int,
    concurrency: int,
    warmup: int,
) -> Figures:
    """The driver on its own, without asyncio: `start(i)` returns a ResponseFuture, and each answer's callback
    (on the driver's I/O thread) sends the next request. What a client gets with no event loop in between.
    Blocks: call it in a thread."""
    _chain(start, outcome_of, range(ops, ops + warmup), concurrency)
    seconds, latencies, outcomes, errors = _chain(start, outcome_of, range(ops), concurrency)
    return figures(group, name, "driver", concurrency, seconds, latencies, outcomes, errors)


def bridge(future: Any) -> asyncio.Future[Any]:
    """The least an asyncio program can do with the driver: hand each answer to the loop's thread."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(rows: Any, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(rows)

    future.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(settle, rows, None),
        lambda error: loop.call_soon_threadsafe(settle, None, error),
    )
    return done
