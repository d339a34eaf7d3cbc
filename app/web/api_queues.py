"""/api/books/{id}/queue, /api/users/{id}/queues and /api/users/{id}/history: a book's queue (join, leave, look), the
queues a reader is in, and a reader's past holds.

A reader joins and leaves on their own card; a librarian may name any reader (`user_id`). Who may act for whom is the
service's (app/service.py); the queue's rules are the lock's (app/repository/locks.py). This module parses and answers.
"""

from __future__ import annotations

from app.access import Access
from app.web.base import JsonHandler
from app.web.parsing import parse_time_uuid, parse_user_id, parse_user_id_text, parse_uuid
from app.web.representations import joined_json, loan_json, past_hold_json, place_json


class BookQueueHandler(JsonHandler):
    ACCESS = {"get": Access.READER, "post": Access.READER, "delete": Access.READER}

    async def get(self, raw_id: str) -> None:
        """How many wait, and the places the caller may see (their own; for staff, everyone's, in order)."""
        waiting, places = await self.service.queue(self.caller, parse_uuid(raw_id, "book_id"))
        self.write_json({"waiting": waiting, "places": [place_json(p) for p in places]})

    async def post(self, raw_id: str) -> None:
        """Join the queue; a book free with nobody waiting is reserved at once (status 'ready')."""
        book_id = parse_uuid(raw_id, "book_id")
        data = self.json_body()
        named = parse_user_id(data["user_id"]) if data.get("user_id") is not None else None
        joined = await self.service.join(self.caller, book_id, named)
        body = joined_json(joined)
        if body["status"] == "ready":
            self.created(f"/api/reservations/{body['reservation_id']}", body)
        else:
            self.created(f"/api/books/{book_id}/queue", body)

    async def delete(self, raw_id: str) -> None:
        book_id = parse_uuid(raw_id, "book_id")
        raw_user = self.query("user_id")
        named = parse_user_id_text(raw_user) if raw_user is not None else None
        await self.service.leave(self.caller, book_id, named)
        self.no_content()


class QueueSuspensionHandler(JsonHandler):
    ACCESS = {"put": Access.READER, "delete": Access.READER}

    async def put(self, raw_id: str) -> None:
        """Suspend one's place until a date (`until`); a librarian may name the reader (`user_id`)."""
        book_id = parse_uuid(raw_id, "book_id")
        data = self.json_body()
        named = parse_user_id(data["user_id"]) if data.get("user_id") is not None else None
        time_zone = self.app_settings.time_zone
        place = await self.service.suspend(self.caller, book_id, data.get("until"), named, time_zone=time_zone)
        self.write_json(place_json(place))

    async def delete(self, raw_id: str) -> None:
        """Resume the suspended place: waiting again where it was, or, for a free book, reserved at once."""
        book_id = parse_uuid(raw_id, "book_id")
        raw_user = self.query("user_id")
        named = parse_user_id_text(raw_user) if raw_user is not None else None
        self.write_json(joined_json(await self.service.resume(self.caller, book_id, named)))


class BookLoanHandler(JsonHandler):
    ACCESS = {"post": Access.STAFF, "delete": Access.STAFF}

    async def post(self, raw_id: str) -> None:
        """The desk: the reader holding the book collected it."""
        loan = await self.service.lend(self.caller, parse_uuid(raw_id, "book_id"))
        self.write_json(loan_json(loan, "on_loan"))

    async def delete(self, raw_id: str) -> None:
        """The desk: the book on loan came back."""
        loan = await self.service.take_back(self.caller, parse_uuid(raw_id, "book_id"))
        self.write_json(loan_json(loan, "returned"))


class ReaderQueuesHandler(JsonHandler):
    ACCESS = {"get": Access.READER}

    async def get(self, raw_id: str) -> None:
        places = await self.service.places(self.caller, parse_user_id_text(raw_id))
        self.write_json({"places": [place_json(p) for p in places]})


class ReaderHistoryHandler(JsonHandler):
    ACCESS = {"get": Access.READER}

    async def get(self, raw_id: str) -> None:
        """A reader's past holds, newest first: `before` (the last answer's `older`) asks for the ones before."""
        raw_before = self.query("before")
        before = parse_time_uuid(raw_before, "before") if raw_before is not None else None
        lines, older = await self.service.past_holds(self.caller, parse_user_id_text(raw_id), before)
        self.write_json({"items": [past_hold_json(line) for line in lines], "older": str(older) if older else None})
