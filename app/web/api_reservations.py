"""/api/reservations: reserve, look up, list, move or renew, and cancel.

The caller is whoever the bearer token signs in. A reader acts on their own card: a `user_id` that is not
theirs is a 403, and so is moving or cancelling a reservation that is not theirs. A librarian may name any reader
(`user_id`), or leave it out to act on a reservation for its own reader; each such action at the desk is recorded
with the librarian's card. Those rules are the service's (app/service.py); this module parses and answers.
"""

from __future__ import annotations

import logging

from app.access import Access
from app.models import DatabaseUnavailable, InvalidInput, Reservation
from app.web.base import JsonHandler
from app.web.encoding import encode_json
from app.web.parsing import parse_page_size, parse_user_id, parse_user_id_text, parse_uuid, required
from app.web.representations import hold_json

log = logging.getLogger(__name__)


class ReservationsHandler(JsonHandler):
    ACCESS = {"get": Access.READER_OR_LEGACY, "post": Access.READER}

    async def get(self) -> None:
        raw_user = self.query("user_id")
        raw_book = self.query("book_id")
        unfiltered = raw_user is None and raw_book is None
        everything = unfiltered and self.query("page_size") is None and self.page_param() is None
        # Anonymous only in development (READER_OR_LEGACY): the earlier system's listing of every reservation.
        if everything and (self.caller is None or self.caller.is_staff):
            await self.stream_all()
            return
        named = parse_user_id_text(raw_user) if raw_user is not None else None
        user_id = self.service.whose_reservations(self.caller, named)  # a reader lists their own only
        page_size = parse_page_size(self.query("page_size"))
        page = self.page_param()
        if raw_book is not None:
            # A book has at most one active reservation, so its listing is never more than one page, and no page
            # token was ever given out for it.
            if page is not None:
                raise InvalidInput("a book's reservations come on one page: no page token applies", field="page")
            held = await self.library.book_reservations(parse_uuid(raw_book, "book_id"))
            items = [r for r in held if user_id is None or r.user_id == user_id]
            self.write_page([hold_json(r) for r in items[:page_size]], None)
            return
        if user_id is not None:
            result = await self.library.user_reservations(user_id, page_size=page_size, page=page)
        else:
            result = await self.library.list_reservations(page_size=page_size, page=page)
        self.write_page([hold_json(r) for r in result.items], result.next_page)

    async def stream_all(self) -> None:
        """Every reservation as one JSON array, as the earlier system answered: written and flushed a Cassandra page
        at a time, so the app's memory stays that of one page however many there are. Should Cassandra fail after
        the first page was sent, the connection is closed before the closing bracket: the client gets an array
        that does not parse, never one that silently ends early."""
        pages = self.library.each_reservation()
        first: list[Reservation] = await anext(pages, [])  # a failure here is still an ordinary 503
        self.write("[")
        written = 0
        try:
            batch: list[Reservation] | None = first
            while batch is not None:
                if batch:
                    self.write((b"," if written else b"") + b",".join(encode_json(hold_json(r)) for r in batch))
                    written += len(batch)
                    await self.flush()
                batch = await anext(pages, None)
        except DatabaseUnavailable as error:
            log.warning("listing of every reservation cut off after %d: %s", written, error)
            self.request.connection.close()  # type: ignore[union-attr]
            return
        self.finish("]")

    async def post(self) -> None:
        data = self.json_body()
        book_id = parse_uuid(required(data, "book_id"), "book_id")
        named = parse_user_id(data["user_id"]) if data.get("user_id") is not None else None
        if data.get("reservation_id") is not None:
            raise InvalidInput(
                "reservation_id is assigned by the service; send an idempotency_key to make retries safe",
                field="reservation_id",
            )
        # A client that retries with the same key gets the first request's answer, never a second reservation.
        reservation = await self.service.reserve(self.caller, book_id, named, data.get("idempotency_key"))
        self.created(f"/api/reservations/{reservation.reservation_id}", hold_json(reservation))


class ReservationHandler(JsonHandler):
    ACCESS = {"get": Access.READER, "patch": Access.READER, "delete": Access.READER}

    async def get(self, raw_id: str) -> None:
        reservation = await self.service.reservation(self.caller, parse_uuid(raw_id, "reservation_id"))
        self.write_json(hold_json(reservation))

    async def patch(self, raw_id: str) -> None:
        """With `book_id`, move the reservation to that book; without, renew its time."""
        reservation_id = parse_uuid(raw_id, "reservation_id")
        data = self.json_body()
        named = parse_user_id(data["user_id"]) if data.get("user_id") is not None else None
        new_book = parse_uuid(data["book_id"], "book_id") if data.get("book_id") is not None else None
        reservation = await self.service.move(self.caller, reservation_id, named, new_book)
        self.write_json(hold_json(reservation))

    async def delete(self, raw_id: str) -> None:
        reservation_id = parse_uuid(raw_id, "reservation_id")
        # Some HTTP clients cannot send a body with DELETE, so the caller may be named in the query instead.
        raw_user = self.query("user_id")
        if raw_user is not None:
            named: int | None = parse_user_id_text(raw_user)
        else:
            body = self.json_body()
            named = parse_user_id(body["user_id"]) if body.get("user_id") is not None else None
        await self.service.cancel(self.caller, reservation_id, named)
        self.no_content()
