"""What many reserve/cancel cycles on one book leave behind for the reads: `python -m bench --tombstones N`.

N cycles on one book by two readers, two at a time, one reader each (each cycle reserves, waiting for the
other reader's cancel while it holds the book, then cancels), through the repository. Then the book's
reservations and each reader's are read 50 times each, and so are those of a book and a reader that were
never reserved: their medians, their ratio, the tombstone cells Cassandra reports for the same reads (from
the query trace), and whether a node logged a tombstone warning meanwhile.

It imports nothing from `app`: it takes the repository, its Conflict and a driver session as arguments, so a
script can run it against an older revision's repository too (with that revision's `app` on sys.path).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from app.rules import DEFAULT_PAGE_SIZE

READS = 50
WARMUP_READS = 10
CONCURRENCY = 2
STALL_SECONDS = 120  # no cycle completed for this long: something holds the book that no worker will free
CANCEL_TRIES = 20
BOOK_PAGE = 100  # what Library.book_reservations asks for
READER_PAGE = DEFAULT_PAGE_SIZE  # Library.user_reservations' default page
TOMBSTONE_CELLS = re.compile(r"(\d+) tombstone cells")

Progress = Callable[[str], None]


def traced_read(session: Any, cql: str, fetch_size: int) -> dict[str, Any]:
    """One read with tracing on: the most tombstone cells any trace event reports, and the warnings Cassandra sent
    back to the client with the answer. A read Cassandra refuses (too many tombstones) is reported, not raised."""
    from cassandra.query import SimpleStatement

    try:
        result = session.execute(SimpleStatement(cql, fetch_size=fetch_size), trace=True)
    except Exception as error:  # TombstoneOverwhelmingException reaches the client as a ReadFailure
        return {"tombstone_cells": None, "client_warnings": [], "error": f"{type(error).__name__}: {error}"[:300]}
    trace = result.get_query_trace(max_wait_sec=10)
    counts = [int(m.group(1)) for e in trace.events if (m := TOMBSTONE_CELLS.search(e.description or ""))]
    warnings = list(result.response_future.warnings or [])
    return {"tombstone_cells": max(counts, default=0), "client_warnings": warnings, "error": None}


class NodeLogs:
    """The nodes' system.log files, read from where they stood when this was made."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.offsets = {p: p.stat().st_size for p in paths if p.exists()}

    def tombstone_warnings(self, keyspace: str) -> list[str]:
        """The lines about tombstones that name this keyspace (other runs may share the nodes)."""
        found = []
        for path, offset in self.offsets.items():
            with path.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            found += [
                line.strip()[:400] for line in text.splitlines() if "tombstone" in line.lower() and keyspace in line
            ]
        return found


async def _timed(reads: dict[str, Callable[[], Awaitable[Any]]], times: int) -> dict[str, dict[str, Any]]:
    """Each read `WARMUP_READS` times untimed, then `times` rounds in which every read runs once; a read that fails
    (the old schema's, past tombstone_failure_threshold) is reported and left out of the later rounds."""
    latencies: dict[str, list[float]] = {label: [] for label in reads}
    errors: dict[str, str | None] = dict.fromkeys(reads)
    for label, read in reads.items():
        for _ in range(WARMUP_READS):
            try:
                await read()
            except Exception as e:
                errors[label] = f"{type(e).__name__}: {e}"[:300]
                break
    for _ in range(times):
        for label, read in reads.items():
            if errors[label]:
                continue
            started = time.perf_counter()
            try:
                await read()
            except Exception as e:
                errors[label] = f"{type(e).__name__}: {e}"[:300]
                continue
            latencies[label].append(time.perf_counter() - started)
    return {
        label: {
            "reads": len(values),
            "median_ms": round(statistics.median(values) * 1000, 3) if values else None,
            "read_error": errors[label],
        }
        for label, values in latencies.items()
    }


async def cycles(
    library: Any, conflict: type[Exception], book: UUID, readers: Sequence[int], count: int, progress: Progress
) -> dict[str, Any]:
    """`count` reserve/cancel cycles on `book`, `CONCURRENCY` at a time, the readers taking turns."""
    pending = iter(range(count))
    tally: Counter[str] = Counter()
    # The two workers take turns: a refused reserve waits for the other's cancel rather than hammer the lock, and a
    # worker that has just cancelled lets the other take the book before it tries again, so both readers make
    # half the cycles, and each reserve races the other reader's cancel.
    changed = asyncio.Condition()
    made, cancels = [0], [0]
    step = max(1, min(count // 10, 2000))
    started = last_cycle = time.monotonic()

    async def until(condition: Callable[[], bool]) -> None:
        async with changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait_for(condition), 1.0)

    async def bump(counter: list[int]) -> None:
        async with changed:
            counter[0] += 1
            changed.notify_all()

    async def held_by(reader: int) -> Any:
        """After a reserve that failed without an answer: the reservation it made anyway, if it made one."""
        with contextlib.suppress(Exception):
            holder = await library.holder(book, serial=True)
            if holder is not None and holder.user_id == reader:
                return holder
        return None

    async def reserve(reader: int) -> Any:
        while time.monotonic() - last_cycle < STALL_SECONDS:
            seen = cancels[0]
            try:
                return await library.reserve(book, reader)
            except conflict as refusal:
                # "you already hold": an earlier reserve of this worker failed without an answer but took it.
                if "already hold" in str(refusal) and (held := await held_by(reader)) is not None:
                    tally["held already, from a reserve that failed"] += 1
                    return held
                tally["refused while the other held it"] += 1
                await until(lambda seen=seen: cancels[0] > seen)  # type: ignore[misc]
            except Exception as error:
                tally[f"reserve {type(error).__name__}"] += 1
                if (held := await held_by(reader)) is not None:
                    return held
                await asyncio.sleep(0.01)
        raise RuntimeError(f"no cycle completed for {STALL_SECONDS} s: {dict(tally)}")

    async def cancel(reservation_id: UUID, reader: int) -> None:
        for attempt in range(CANCEL_TRIES):
            try:
                await library.cancel(reservation_id, reader)
                return
            except Exception as error:
                tally[f"cancel {type(error).__name__}"] += 1
                holder = await held_by(reader)
                if holder is None or holder.reservation_id != reservation_id:
                    return  # no longer holds the book: the failed cancel did its work, or there was none to do
                await asyncio.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"reservation {reservation_id} could not be cancelled: {dict(tally)}")

    async def worker(reader: int) -> None:
        # Each worker keeps its reader, so a reservation of that reader found on the book is this worker's own.
        nonlocal last_cycle
        for _ in pending:
            held = await reserve(reader)
            await bump(made)
            await cancel(held.reservation_id, reader)
            mark = made[0]
            await bump(cancels)
            tally["cycles"] += 1
            tally[f"cycles of reader {reader}"] += 1
            last_cycle = time.monotonic()
            if tally["cycles"] % step == 0:
                rate = tally["cycles"] / (last_cycle - started)
                progress(f"  tombstones: {tally['cycles']}/{count} cycles ({rate:.0f}/s)")
            await until(lambda mark=mark: made[0] > mark)  # type: ignore[misc]

    await asyncio.gather(*(worker(readers[w % len(readers)]) for w in range(CONCURRENCY)))
    seconds = time.monotonic() - started
    return {"seconds": round(seconds, 1), "cycles_per_s": round(count / seconds, 1), "tally": dict(tally)}


async def measure_tombstones(
    library: Any,
    session: Any,
    keyspace: str,
    count: int,
    *,
    conflict: type[Exception],
    make_book: Callable[[UUID], Awaitable[Any]],
    make_reader: Callable[[int], Awaitable[Any]],
    first_reader: int,
    node_logs: Sequence[Path] = (),
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """The whole measurement; its figures as a dict (for --json and the printed summary)."""
    book, untouched_book = uuid4(), uuid4()
    pair = [first_reader, first_reader + 1]
    untouched_reader = first_reader + 2
    for b in (book, untouched_book):
        await make_book(b)
    for r in (*pair, untouched_reader):
        await make_reader(r)
    progress(f"tombstones: {count} reserve/cancel cycles on book {book} by readers {pair[0]} and {pair[1]}")
    whole_run = NodeLogs(node_logs)
    done = await cycles(library, conflict, book, pair, count, progress)

    result = await read_back(
        library, session, keyspace, book, untouched_book, pair, untouched_reader, node_logs=node_logs
    )
    in_cycles = len(whole_run.tombstone_warnings(keyspace)) - result["tombstone_warnings_logged"]
    return {
        "cycles": count,
        "book": str(book),
        "readers": pair,
        **done,
        **result,
        "tombstone_warnings_during_cycles": in_cycles,
    }


async def read_back(
    library: Any,
    session: Any,
    keyspace: str,
    book: UUID,
    untouched_book: UUID,
    pair: Sequence[int],
    untouched_reader: int,
    *,
    node_logs: Sequence[Path] = (),
) -> dict[str, Any]:
    """The reads after the cycles: each target warmed up, then read in turns with the others (so that neither the
    order nor a moment of load favours one), then read once more with tracing on."""
    logs = NodeLogs(node_logs)
    targets: list[tuple[str, Callable[[], Awaitable[Any]], str, int]] = [
        ("book", lambda: library.book_reservations(book), f"book_reservations WHERE book_id = {book}", BOOK_PAGE),
        (
            "untouched book",
            lambda: library.book_reservations(untouched_book),
            f"book_reservations WHERE book_id = {untouched_book}",
            BOOK_PAGE,
        ),
    ]
    for label, reader in (("reader A", pair[0]), ("reader B", pair[1]), ("untouched reader", untouched_reader)):
        targets.append(
            (
                label,
                lambda reader=reader: library.user_reservations(reader),  # type: ignore[misc]
                f"user_reservations WHERE user_id = {reader}",
                READER_PAGE,
            )
        )
    targets.append(
        ("lock of the book", lambda: library.holder(book), f"reservation_by_book_id WHERE book_id = {book}", 1)
    )
    timings = await _timed({label: read for label, read, _, _ in targets}, READS)
    reads: dict[str, Any] = {}
    for label, _, where, fetch_size in targets:
        traced = await asyncio.to_thread(traced_read, session, f"SELECT * FROM {keyspace}.{where}", fetch_size)
        reads[label] = {**timings[label], **traced}
    for label, base in (("book", "untouched book"), ("reader A", "untouched reader"), ("reader B", "untouched reader")):
        a, b = reads[label]["median_ms"], reads[base]["median_ms"]
        reads[label]["ratio_to_untouched"] = round(a / b, 2) if a and b else None
    await asyncio.sleep(1)  # the nodes' log lines are written a moment after the answer
    warnings = logs.tombstone_warnings(keyspace)
    return {
        "reads": reads,
        "node_logs_read": [str(p) for p in logs.offsets],
        "tombstone_warnings_logged": len(warnings),
        "tombstone_warning_sample": warnings[:3],
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"tombstones after {result['cycles']} reserve/cancel cycles on one book "
        f"({result['seconds']} s, {result['cycles_per_s']} cycles/s; {result['tally']})",
        f"  {'read':<18} {'median ms':>10} {'x untouched':>12} {'tombstone cells':>16}  client warnings / error",
    ]
    for label, r in result["reads"].items():
        ratio = r.get("ratio_to_untouched")
        cells = r["tombstone_cells"]
        note = r.get("read_error") or r["error"] or "; ".join(r["client_warnings"])[:120] or "-"
        median = "-" if r["median_ms"] is None else f"{r['median_ms']:.2f}"
        lines.append(
            f"  {label:<18} {median:>10} {'' if ratio is None else f'{ratio:.2f}':>12} "
            f"{'-' if cells is None else cells:>16}  {note}"
        )
    logs = result["node_logs_read"]
    if logs:
        lines.append(
            f"  tombstone warnings in the nodes' logs: {result['tombstone_warnings_logged']} during the reads, "
            f"{result['tombstone_warnings_during_cycles']} during the cycles"
        )
        lines += [f"    {w}" for w in result["tombstone_warning_sample"]]
    else:
        lines.append("  tombstone warnings in the nodes' logs: unknown (no local node logs found)")
    return "\n".join(lines)
