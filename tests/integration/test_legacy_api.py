"""The earlier system's endpoints, called the way its scripts call them: a JSON body
{"book_id": "<uuid>", "user_id": <int>}, "message" on success, "error" on failure."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from app.rules import MAX_RENEWALS


@pytest.fixture
async def http(web_url: str, staff_headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientSession]:
    """The set-up (books, readers) goes through the new API as a librarian; the earlier system's endpoints ignore
    the header, as they ignore every credential."""
    async with aiohttp.ClientSession(base_url=web_url, headers=staff_headers) as session:
        yield session


async def post(http: aiohttp.ClientSession, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    async with http.post(path, json=body if raw is None else None, data=raw) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, await response.json(content_type=None)


async def book_and_readers(http: aiohttp.ClientSession) -> tuple[str, int, int]:
    async with http.post("/api/books", json={"title": "Old Times", "author": "A. Archivist", "genre": "History"}) as r:
        book = await r.json()
    ids = []
    for name in ("First Reader", "Second Reader"):
        async with http.post("/api/users", json={"name": name, "email": "reader@example.org"}) as r:
            ids.append((await r.json())["user_id"])
    return book["book_id"], ids[0], ids[1]


def is_message(status: int, body: Any, expected: int) -> None:
    assert status == expected, body
    assert isinstance(body.get("message"), str) and body["message"] and "error" not in body, body


def is_error(status: int, body: Any, expected: int, field: str | None = None) -> None:
    assert status == expected, body
    assert isinstance(body.get("error"), str) and body["error"] and "message" not in body, body
    if field:
        assert body["field"] == field and field in body["error"]


async def test_make_update_remove(http: aiohttp.ClientSession) -> None:
    book_id, reader, other = await book_and_readers(http)
    request = {"book_id": book_id, "user_id": reader}

    status, body = await post(http, "/make_reservation", request)
    is_message(status, body, 201)
    assert body["message"] == "Reservation made successfully."
    made = body["reservation"]
    assert (made["book_id"], made["user_id"]) == (book_id, reader)
    status, body = await post(http, "/make_reservation", request)
    is_error(status, body, 409)
    assert body["error"] == "Book is already reserved."
    status, body = await post(http, "/make_reservation", {"book_id": book_id, "user_id": other})
    is_error(status, body, 409)

    for _ in range(MAX_RENEWALS + 2):  # the earlier system's renewal has no limit (found by python -m bench peer)
        status, body = await post(http, "/update_reservation", request)
        is_message(status, body, 200)
        assert body["message"] == "Reservation updated successfully."
        assert body["reservation"]["reservation_id"] == made["reservation_id"]
        assert body["reservation"]["reserved_at"] >= made["reserved_at"]

    status, body = await post(http, "/update_reservation", {"book_id": book_id, "user_id": other})
    is_error(status, body, 404)
    assert body["error"] == "Reservation not found."
    status, body = await post(http, "/remove_reservation", {"book_id": book_id, "user_id": other})
    is_error(status, body, 403)
    assert body["error"] == "User is not the owner of the reservation."

    status, body = await post(http, "/remove_reservation", request)
    is_message(status, body, 200)
    assert body["message"] == "Reservation removed successfully."
    status, body = await post(http, "/remove_reservation", request)
    is_error(status, body, 404)
    assert body["error"] == "Reservation not found."
    status, body = await post(http, "/update_reservation", request)
    is_error(status, body, 404)

    # The book is free again, for anyone.
    status, body = await post(http, "/make_reservation", {"book_id": book_id, "user_id": other})
    is_message(status, body, 201)
    status, body = await post(http, "/remove_reservation", {"book_id": book_id, "user_id": other})
    is_message(status, body, 200)


@pytest.mark.parametrize("path", ["/make_reservation", "/update_reservation", "/remove_reservation"])
async def test_bad_requests(http: aiohttp.ClientSession, path: str) -> None:
    book_id, reader, _ = await book_and_readers(http)
    cases: list[tuple[Any, int, str | None]] = [
        ({"user_id": reader}, 400, "book_id"),
        ({"book_id": book_id}, 400, "user_id"),
        ({"book_id": "not-a-uuid", "user_id": reader}, 400, "book_id"),
        ({"book_id": book_id, "user_id": "seven"}, 400, "user_id"),
        ({"book_id": book_id, "user_id": None}, 400, "user_id"),
        ({"book_id": str(uuid.uuid4()), "user_id": reader}, 404, None),
        ({"book_id": book_id, "user_id": -3}, 400, "user_id"),
    ]
    for body, expected, field in cases:
        status, answer = await post(http, path, body)
        is_error(status, answer, expected, field)
    status, answer = await post(http, path, raw=b'{"book_id": ')
    is_error(status, answer, 400, "body")
    status, answer = await post(http, path, raw=b"")
    is_error(status, answer, 400, "book_id")


async def test_any_card_number_is_a_reader_of_the_old_endpoints_only(http: aiohttp.ClientSession) -> None:
    """The earlier system had no readers table: its scripts use cards such as 0 and 132. The old endpoints make a
    card a reader on first use; the new API still answers 404 for a card that is not one."""
    card = 2_147_483_000 + uuid.uuid4().int % 600
    book_id, _, _ = await book_and_readers(http)
    async with http.post("/api/reservations", json={"book_id": book_id, "user_id": card}) as response:
        assert response.status == 404
    status, body = await post(http, "/make_reservation", {"book_id": book_id, "user_id": card})
    is_message(status, body, 201)
    status, body = await post(http, "/remove_reservation", {"book_id": book_id, "user_id": card})
    is_message(status, body, 200)
    for bad in (-1, 2**31, 1.5, True):
        status, body = await post(http, "/make_reservation", {"book_id": book_id, "user_id": bad})
        assert (status, body) == (400, {"error": "Invalid user_id.", "field": "user_id"})
    status, body = await post(http, "/make_reservation", {"book_id": str(uuid.uuid4()), "user_id": card})
    assert (status, body) == (404, {"error": "Book does not exist."})


async def test_old_list_endpoints_still_answer_lists(http: aiohttp.ClientSession) -> None:
    # A script of the earlier system iterates over these answers: they stay JSON arrays of plain objects.
    book_id, reader, _ = await book_and_readers(http)
    status, body = await post(http, "/make_reservation", {"book_id": book_id, "user_id": reader})
    assert status == 201
    async with http.get("/api/books", params={"page_size": "200"}) as response:
        books = await response.json()
    assert response.status == 200 and isinstance(books, list)
    assert set(books[0]) >= {"book_id", "title", "author", "genre", "published_year"}
    async with http.get("/api/reservations", params={"user_id": str(reader)}) as response:
        reservations = await response.json()
    assert response.status == 200 and [(r["book_id"], r["user_id"]) for r in reservations] == [(book_id, reader)]
    async with http.get("/api/reservations") as response:
        assert response.status == 200 and isinstance(await response.json(), list)
    status, body = await post(http, "/remove_reservation", {"book_id": book_id, "user_id": reader})
    assert status == 200


async def test_a_listing_cut_off_by_the_database_never_parses_as_whole(
    http: aiohttp.ClientSession, library: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every reservation is streamed a page at a time; should Cassandra fail after the first page went out, the
    client must not receive a well-formed array that silently holds only part of the list."""
    from app.models import DatabaseUnavailable, Reservation

    async def failing_after_one_page() -> Any:
        yield [Reservation(uuid.uuid4(), uuid.uuid4(), 1, datetime(2026, 1, 1))]
        raise DatabaseUnavailable("injected: the second page failed")

    monkeypatch.setattr(library, "each_reservation", failing_after_one_page)
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ValueError)):
        async with http.get("/api/reservations") as response:
            json.loads(await response.read())
