"""The books' reservation history: what happened to each book's reservations (reserved, renewed, moved here or away,
cancelled), by whom and for which reader, newest first, for the librarians' view of a book.

A record, not a truth: the service writes a line after a change has been made (app/service.py), and nothing in the
reservations' protocol reads or writes it (app/repository/reservations.py and locks.py know nothing of it). So a
change whose line could not be written is still made, and what holds a book is always the lock's to say. Each line
lives BOOK_HISTORY_DAYS (a TTL), so the oldest lines expire at the end of the partition that a newest-first read of
the latest lines never reaches.
"""

from __future__ import annotations

from uuid import UUID, uuid1

from cassandra.util import datetime_from_uuid1

from app.models import BookEvent, HistoryLine
from app.repository.base import RepositoryBase
from app.rules import BOOK_HISTORY_DAYS, BOOK_HISTORY_SHOWN


class BookHistory(RepositoryBase):
    """The `book_history` table: the only code that reads or writes it."""

    async def record(
        self, book_id: UUID, event: BookEvent, *, reservation_id: UUID, user_id: int, by_id: int | None
    ) -> None:
        await self.db.execute(
            self.cql(
                "INSERT INTO {ks}.book_history (book_id, happened_at, event, reservation_id, user_id, by_id)"
                " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            [book_id, uuid1(), event.value, reservation_id, user_id, by_id, BOOK_HISTORY_DAYS * 86400],
            write=True,
        )

    async def book_history(self, book_id: UUID, *, limit: int = BOOK_HISTORY_SHOWN) -> list[HistoryLine]:
        """The book's latest `limit` lines, newest first."""
        result = await self.db.execute(
            self.cql(
                "SELECT happened_at, event, reservation_id, user_id, by_id FROM {ks}.book_history"
                " WHERE book_id = ? LIMIT ?"
            ),
            [book_id, limit],
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
