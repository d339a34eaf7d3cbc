"""The books' reservation history: what happened to each book's reservations (reserved, renewed, moved here or away,
cancelled), by whom and for which reader, newest first, for the librarians' view of a book.

A record, not a truth: the service writes a line after a change has been made (app/service.py), and nothing in the
reservations' protocol reads or writes it (app/repository/reservations.py and locks.py know nothing of it). So a
change whose line could not be written is still made, and what holds a book is always the lock's to say. Each line
lives BOOK_HISTORY_DAYS (a TTL), so the oldest lines expire at the end of the partition, and a newest-first read
stops at the TTL's horizon (`horizon`), so it never reaches them.

A line that a reservation's own time stamps (reserved, renewed, moved: the `reserved_at` the lock took) is keyed by a
time UUID made from that time and the reservation and event alone, so writing it twice writes the same row: a
retried keyed reserve (which answers the first request's reservation) leaves one line, not two.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime
from uuid import UUID, uuid1

from cassandra.query import UNSET_VALUE
from cassandra.util import datetime_from_uuid1, min_uuid_from_time, uuid_from_time

from app.models import BookEvent, HistoryLine, HoldEnd, PastHold
from app.repository.base import RepositoryBase
from app.rules import BOOK_HISTORY_DAYS, BOOK_HISTORY_SHOWN, READER_HISTORY_DAYS, READER_HISTORY_SHOWN

log = logging.getLogger(__name__)
_TTL = BOOK_HISTORY_DAYS * 86400


def line_key(event: BookEvent, reservation_id: UUID, at: datetime | None) -> UUID:
    """A line's key: a time UUID of `at` whose node and clock sequence come from the reservation and the event, the
    same each time it is made (a fresh one of now without `at`)."""
    if at is None:
        return uuid1()
    digest = hashlib.sha256(f"{reservation_id}/{event.value}".encode()).digest()
    node = int.from_bytes(digest[:6], "big") | 0x010000000000  # the multicast bit: not a real machine's address
    return uuid_from_time(at, node=node, clock_seq=int.from_bytes(digest[6:8], "big") & 0x3FFF)


def horizon(days: int) -> UUID:
    """The smallest time UUID of `days` ago: lines keyed before it have outlived their TTL. A read of the newest lines
    stops there, so it never steps over the expired lines (tombstones until compaction purges them) that pile up at
    the old end of a busy partition: without it, a page asking for more lines than the partition has alive read every
    expired one (20,000 tombstone cells for 5,000 expired lines, measured; Cassandra fails a read at 100,000)."""
    return min_uuid_from_time(time.time() - days * 86400)


class BookHistory(RepositoryBase):
    """The `book_history` table: the only code that reads or writes it."""

    async def record(
        self,
        book_id: UUID,
        event: BookEvent,
        *,
        reservation_id: UUID,
        user_id: int,
        by_id: int | None,
        at: datetime | None = None,
    ) -> None:
        """A line of the book's history; `at`: the time the reservation itself says it happened (None: now)."""
        await self.db.execute(
            self.cql(
                "INSERT INTO {ks}.book_history (book_id, happened_at, event, reservation_id, user_id, by_id)"
                " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            [book_id, line_key(event, reservation_id, at), event.value, reservation_id, user_id, by_id, _TTL],
            write=True,
        )

    async def book_history(self, book_id: UUID, *, limit: int = BOOK_HISTORY_SHOWN) -> list[HistoryLine]:
        """The book's latest `limit` lines, newest first."""
        result = await self.db.execute(
            self.cql(
                "SELECT happened_at, event, reservation_id, user_id, by_id FROM {ks}.book_history"
                " WHERE book_id = ? AND happened_at > ? LIMIT ?"
            ),
            [book_id, horizon(BOOK_HISTORY_DAYS), limit],
        )
        return [
            HistoryLine(
                datetime_from_uuid1(r.happened_at).replace(tzinfo=None),
                BookEvent(r.event),
                r.reservation_id,
                r.user_id,
                r.by_id,
            )
            for r in result.rows
            if r.event in BookEvent._value2member_map_
        ]


class ReaderHistory(RepositoryBase):
    """The `reader_history` table: each reader's past holds, newest first; the only code that reads or writes it.
    Lines are told by the reservations' use cases as holds end (`Reservations.ended_listeners`), after the change:
    a record, never part of it, so a line Cassandra refuses is logged and lost, and the hold has ended all the same.
    The use case waits for the line, so the reader's page read next shows it."""

    async def remember(
        self, user_id: int, outcome: HoldEnd, reservation_id: UUID, book_id: UUID, since: datetime | None
    ) -> None:
        try:
            await self.db.execute(
                self.cql(
                    "INSERT INTO {ks}.reader_history (user_id, ended_at, outcome, reservation_id, book_id, since)"
                    " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
                ),
                # An unset `since` (a place in a queue) writes no cell, where a null would write a tombstone.
                [
                    user_id,
                    uuid1(),
                    outcome.value,
                    reservation_id,
                    book_id,
                    since or UNSET_VALUE,
                    READER_HISTORY_DAYS * 86400,
                ],
                write=True,
            )
        except Exception as error:  # a record: the hold ended all the same
            log.warning("the history line of %s (%s) was not written: %s", reservation_id, outcome, error)

    async def past_holds(
        self, user_id: int, *, before: UUID | None = None, limit: int = READER_HISTORY_SHOWN
    ) -> tuple[list[PastHold], UUID | None]:
        """The reader's latest `limit` lines ended before `before` (a line's key; None: the newest), and the key to
        ask for the page after (None: no more)."""
        columns = "ended_at, outcome, reservation_id, book_id, since"
        older = "" if before is None else " AND ended_at < ?"
        cql = f"SELECT {columns} FROM {{ks}}.reader_history WHERE user_id = ? AND ended_at > ?{older} LIMIT ?"
        params: list[object] = [user_id, horizon(READER_HISTORY_DAYS), *([before] if before is not None else [])]
        rows = (await self.db.execute(self.cql(cql), [*params, limit + 1])).rows
        lines = [
            PastHold(
                datetime_from_uuid1(r.ended_at).replace(tzinfo=None),
                HoldEnd(r.outcome),
                r.reservation_id,
                r.book_id,
                r.since,
            )
            for r in rows[:limit]
            if r.outcome in HoldEnd._value2member_map_
        ]
        return lines, (rows[limit - 1].ended_at if len(rows) > limit else None)
