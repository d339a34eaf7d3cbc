"""The notice a reader gets when a book they waited for becomes theirs: an e-mail through SMTP (`SMTP_URL`), or,
without one (development), a line in the log.

Sent after the hand-off, never as part of it: the book is the reader's whatever becomes of the notice, and their page
says so ("ready — collect by …"). A send that fails is tried again in the background, up to NOTICE_ATTEMPTS times,
waiting longer each time; nothing waits for it. The notices to send are kept in the process: one whose instance
stops before it is sent is lost (the reader's page still shows the hold).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from app.models import Book, Reservation, User
from app.settings import smtp_address

log = logging.getLogger(__name__)

NOTICE_ATTEMPTS = 6
FIRST_RETRY_SECONDS = 2.0  # then twice as long each time: about a minute in all
SMTP_TIMEOUT = 10.0

Lookup = Callable[[Reservation], Awaitable[tuple[User, Book]]]


class Notices:
    """Sends "your book is ready" for each reservation given to `book_ready`, in the background."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        smtp_url: str,
        sender: str,
        time_zone: str,
        first_retry: float = FIRST_RETRY_SECONDS,
    ) -> None:
        self.lookup = lookup
        self.address = smtp_address(smtp_url) if smtp_url else None
        self.sender = sender
        self.time_zone = time_zone
        self.first_retry = first_retry
        self._pending: set[asyncio.Task[None]] = set()

    def book_ready(self, reservation: Reservation) -> None:
        """Schedules the notice; returns at once."""
        task = asyncio.create_task(self._send(reservation), name=f"notice {reservation.reservation_id}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Until every notice scheduled so far is sent or given up (tests; a clean stop, under a timeout)."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    def message(self, reservation: Reservation, reader: User, book: Book) -> EmailMessage:
        # Dates as the pages say them; imported here, as the web layer imports the repository, which makes this.
        from app.web.wording import when

        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = reader.email
        mail["Subject"] = f"“{book.title}” is ready for you to collect"
        by = when(reservation.ready_until, self.time_zone) if reservation.ready_until else None
        mail.set_content(
            f"Dear {reader.name},\n\n"
            f"“{book.title}” by {book.author}, which you were waiting for, is now yours to collect."
            + (f" Please collect it by {by}; after that it goes to the next reader in the queue." if by else "")
            + f"\n\nYour reservation: {reservation.reservation_id}\n\nYour library\n"
        )
        return mail

    async def _send(self, reservation: Reservation) -> None:
        wait = self.first_retry
        for attempt in range(1, NOTICE_ATTEMPTS + 1):
            try:
                reader, book = await self.lookup(reservation)
                mail = self.message(reservation, reader, book)
                if self.address is None:
                    log.info("notice (no SMTP_URL, so not sent):\n%s", mail)
                else:
                    await asyncio.to_thread(self._deliver, mail)
                return
            except Exception as error:  # any failure: the notice is tried again, the hand-off stands
                if attempt == NOTICE_ATTEMPTS:
                    log.error(
                        "gave up the notice of %s after %d attempts: %s", reservation.reservation_id, attempt, error
                    )
                    return
                log.warning("the notice of %s failed (attempt %d): %s", reservation.reservation_id, attempt, error)
                await asyncio.sleep(wait)
                wait *= 2

    def _deliver(self, mail: EmailMessage) -> None:
        assert self.address is not None
        host, port = self.address
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(mail)
