"""python unreserve_all.py [--yes]: cancel every reservation, keeping the lock and the three views in step.

Each reservation is cancelled through the repository with its own reader's id, exactly as that reader's
cancel request would be: the lock is released only if it still carries the reservation's id, then the
views are deleted. The reservations are read one page at a time, so a large database is never held in
memory, and cancelled with bounded concurrency.
"""

from __future__ import annotations

import functools
import sys

from app.models import Forbidden, LibraryError, NotFound, Reservation
from app.repository import Library
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import (
    CliError,
    add_database_arguments,
    keyspace_exists,
    open_database,
    retrying,
    run_bounded,
    run_cli,
    settings_from,
)
from toolkit.progress import Progress

PAGE_SIZE = 200
DEFAULT_CONCURRENCY = 32
# Readers may reserve while this runs; it stops after this many passes rather than chase them forever.
MAX_ROUNDS = 5


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python unreserve_all.py",
        description=(
            "Cancel every reservation, keeping all four reservation tables consistent (each one is cancelled "
            "as its reader would cancel it). Asks for confirmation unless --yes; prints how many it removed."
        ),
        epilog="Cassandra is named by $CASSANDRA_HOSTS and $CASSANDRA_KEYSPACE, as for the app.",
    )
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--concurrency",
        type=number(int, 1, 1024),
        default=DEFAULT_CONCURRENCY,
        help=f"cancellations in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    add_database_arguments(p)
    return p


def confirmed(keyspace: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError("no terminal to confirm on: pass --yes to cancel every reservation without asking")
    answer = input(f"Cancel EVERY reservation in keyspace {keyspace}? Type 'yes' to go on: ")
    return answer.strip().lower() == "yes"


async def unreserve_all(library: Library, concurrency: int = DEFAULT_CONCURRENCY, show_progress: bool = True) -> int:
    """Cancels every reservation; returns how many this call removed. The table is read again from the start
    after each pass, since rows cancelled while paging through the same table can make the paging skip some."""
    removed = 0
    progress = Progress(0, "cancelling") if show_progress else None
    failures: list[str] = []

    async def cancel(reservation: Reservation) -> None:
        nonlocal removed
        try:
            await retrying(lambda: library.cancel(reservation.reservation_id, reservation.user_id))
            removed += 1
        except NotFound:
            pass  # cancelled meanwhile by its reader: not ours to count
        except Forbidden:
            # The row changed hands between the listing and the cancel; the next round sees its new owner.
            pass
        except LibraryError as error:
            failures.append(f"reservation {reservation.reservation_id}: {error}")
        if progress:
            progress.advance()

    try:
        for _ in range(MAX_ROUNDS):
            page: str | None = None
            seen_this_round = 0
            while True:
                result = await retrying(functools.partial(library.list_reservations, page_size=PAGE_SIZE, page=page))
                seen_this_round += len(result.items)
                await run_bounded(result.items, cancel, concurrency)
                page = result.next_page
                if page is None:
                    break
            if seen_this_round == 0 or failures:
                break
    finally:
        if progress:
            progress.close()
    if failures:
        raise CliError(f"{removed} cancelled, but {len(failures)} could not be: {failures[0]}")
    return removed


async def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings_from(args)
    async with open_database(settings) as db:
        if not keyspace_exists(db, settings.keyspace):
            raise CliError(f"keyspace {settings.keyspace} does not exist: nothing to cancel")
        if not args.yes and not confirmed(settings.keyspace):
            print("nothing was cancelled")
            return 0
        removed = await unreserve_all(Library(db), args.concurrency)
    print(f"removed {removed} reservations from keyspace {settings.keyspace}")
    return 0


if __name__ == "__main__":
    run_cli(main)
