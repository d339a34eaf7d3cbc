"""The earlier system's endpoints, kept so that its scripts run unchanged (its contract: ../shared/README.md).

Each takes a JSON body `{"book_id": "<uuid>", "user_id": <int>}` and answers the earlier system's exact
sentences: "message" on success, "error" on the failures it had. Scripts compare those strings, so they
live here and nowhere else. Our status codes (201, 403, 404, 409, ...) and extra keys (the reservation)
come along; scripts ignore both. Failures the earlier system did not have (the database unavailable, a
malformed body) answer our own sentence.

The earlier system had no readers: any non-negative integer was one. A card number these endpoints have
not seen before becomes a reader on first use (`Library.register_card`), so its scripts' readers, 0
included, are never refused; the new API keeps answering 404 for a card that is not a reader.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from app.access import Access
from app.models import Conflict, InvalidInput, NotFound, Reservation, UnknownBook, UnknownReader
from app.web.base import JsonHandler
from app.web.encoding import encode_json
from app.web.parsing import parse_user_id, parse_uuid, required
from app.web.representations import reservation_json

T = TypeVar("T")

MADE = "Reservation made successfully."
UPDATED = "Reservation updated successfully."
REMOVED = "Reservation removed successfully."
ALREADY_RESERVED = "Book is already reserved."
NO_SUCH_BOOK = "Book does not exist."
INVALID_USER = "Invalid user_id."
NOT_FOUND = "Reservation not found."
NOT_OWNER = "User is not the owner of the reservation."


class LegacyError(Exception):
    """An answer in the earlier system's words: its sentence, with our status."""

    def __init__(self, status: int, sentence: str, field: str | None = None) -> None:
        super().__init__(sentence)
        self.status, self.sentence, self.field = status, sentence, field


class LegacyHandler(JsonHandler):
    # Anyone in development, as the earlier system answered anyone; gone (404) in production.
    ACCESS = {"post": Access.LEGACY}

    async def find_caller(self) -> None:
        return None  # the earlier system had no credentials; its scripts send none

    def book_and_card(self) -> tuple[UUID, int]:
        data = self.json_body()
        book_id = parse_uuid(required(data, "book_id"), "book_id")
        try:
            return book_id, parse_user_id(data.get("user_id"), minimum=0)
        except InvalidInput as error:
            raise LegacyError(400, INVALID_USER, "user_id") from error

    async def held_by_caller(self, book_id: UUID, user_id: int) -> Reservation:
        """The old API named a reservation by its book and reader; the book's lock tells which reservation that is."""
        holder = await self.library.holder(book_id)
        if holder is None:
            raise LegacyError(404, NOT_FOUND)
        if holder.user_id != user_id:
            raise LegacyError(403, NOT_OWNER)
        return holder

    async def answer(self, action: Callable[[], Awaitable[T]], refusals: dict[type[Exception], LegacyError]) -> T:
        """Runs the action, turning the domain's refusals the earlier system knew into its sentences."""
        try:
            return await action()
        except tuple(refusals) as error:
            raise next(legacy for kind, legacy in refusals.items() if isinstance(error, kind)) from error

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        if isinstance(error, LegacyError):
            self.set_status(error.status)
            body = {"error": error.sentence, **({"field": error.field} if error.field else {})}
            self.finish(encode_json(body))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        if isinstance(value, LegacyError):
            return  # an answer to the client, not a server error
        super().log_exception(typ, value, tb)


class MakeReservationHandler(LegacyHandler):
    async def post(self) -> None:
        book_id, user_id = self.book_and_card()

        async def reserve() -> Reservation:
            try:
                return await self.library.reserve(book_id, user_id)
            except UnknownReader:
                await self.library.register_card(user_id)
                return await self.library.reserve(book_id, user_id)

        reservation = await self.answer(
            reserve,
            {
                Conflict: LegacyError(409, ALREADY_RESERVED),
                UnknownBook: LegacyError(404, NO_SUCH_BOOK),
                UnknownReader: LegacyError(404, INVALID_USER),
                InvalidInput: LegacyError(400, INVALID_USER, "user_id"),
            },
        )
        self.created(
            f"/api/reservations/{reservation.reservation_id}",
            {"message": MADE, "reservation": reservation_json(reservation)},
        )


class UpdateReservationHandler(LegacyHandler):
    async def post(self) -> None:
        book_id, user_id = self.book_and_card()

        # The earlier system's update knew only "not found", whoever held the book.
        renewed = await self.answer(
            lambda: self.library.renew_on(book_id, user_id), {NotFound: LegacyError(404, NOT_FOUND)}
        )
        self.write_json({"message": UPDATED, "reservation": reservation_json(renewed)})


class RemoveReservationHandler(LegacyHandler):
    async def post(self) -> None:
        book_id, user_id = self.book_and_card()

        async def cancel() -> None:
            holder = await self.held_by_caller(book_id, user_id)
            await self.library.cancel(holder.reservation_id, user_id)

        await self.answer(cancel, {NotFound: LegacyError(404, NOT_FOUND)})
        self.write_json({"message": REMOVED})
