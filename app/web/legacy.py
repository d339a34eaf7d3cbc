"""The earlier system's endpoints, kept so that its scripts run unchanged.

Each takes a JSON body `{"book_id": "<uuid>", "user_id": <int>}` and answers JSON with a "message"
on success and an "error" on failure, with the same statuses as the new API (201 for a new
reservation, 400/403/404/409/503 for the failures).
"""

from __future__ import annotations

from uuid import UUID

from app.models import NotFound, Reservation
from app.web.base import JsonHandler
from app.web.parsing import parse_user_id, parse_uuid, required
from app.web.representations import reservation_json


class LegacyHandler(JsonHandler):
    def book_and_user(self) -> tuple[UUID, int]:
        data = self.json_body()
        return parse_uuid(required(data, "book_id"), "book_id"), parse_user_id(required(data, "user_id"))

    async def held_by_caller(self, book_id: UUID, user_id: int) -> Reservation:
        """The old API named a reservation by its book and reader; the lock tells which reservation that is.
        A book held by someone else is reported as Forbidden by `move`/`cancel`, like any foreign reservation."""
        holder = await self.library.holder(book_id)
        if holder is None:
            await self.library.get_book(book_id)  # a missing book is a 404 about the book
            raise NotFound(f"user {user_id} holds no reservation on book {book_id}")
        return holder


class MakeReservationHandler(LegacyHandler):
    async def post(self) -> None:
        book_id, user_id = self.book_and_user()
        reservation = await self.library.reserve(book_id, user_id)
        self.created(
            f"/api/reservations/{reservation.reservation_id}",
            {
                "message": f"book {book_id} is reserved for user {user_id}",
                "reservation": reservation_json(reservation),
            },
        )


class UpdateReservationHandler(LegacyHandler):
    async def post(self) -> None:
        book_id, user_id = self.book_and_user()
        holder = await self.held_by_caller(book_id, user_id)
        renewed = await self.library.move(holder.reservation_id, user_id)
        self.write_json(
            {
                "message": f"the reservation of book {book_id} by user {user_id} is renewed",
                "reservation": reservation_json(renewed),
            }
        )


class RemoveReservationHandler(LegacyHandler):
    async def post(self) -> None:
        book_id, user_id = self.book_and_user()
        holder = await self.held_by_caller(book_id, user_id)
        await self.library.cancel(holder.reservation_id, user_id)
        self.write_json({"message": f"the reservation of book {book_id} by user {user_id} is cancelled"})
