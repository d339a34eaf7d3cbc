"""The JSON API against real Cassandra: every endpoint, and every error status it promises."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from integration.api_support import assert_error, call, new_user

from app.db import Database
from app.repository import Library
from app.schema import statements
from app.settings import Settings
from toolkit.cli import bearer


@pytest.fixture
async def http(web_url: str, staff_headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientSession]:
    """A librarian's client: these tests exercise the API's behaviour, acting for readers by their user_id. Who may
    call what is tests/integration/test_access.py's subject."""
    async with aiohttp.ClientSession(base_url=web_url, headers=staff_headers) as session:
        yield session


def word() -> str:
    """A title word no other test uses, so a title search finds exactly this test's books."""
    return "w" + uuid.uuid4().hex[:10]


async def new_book(http: aiohttp.ClientSession, **fields: Any) -> dict[str, Any]:
    body = {"title": f"The {word()} Book", "author": "Ann Author", "genre": "Mystery", "published_year": 1999}
    status, book, _ = await call(http, "POST", "/api/books", {**body, **fields})
    assert status == 201, book
    return book


# -- books ----------------------------------------------------------------------------------------------
async def test_book_lifecycle(http: aiohttp.ClientSession) -> None:
    title_word = word()
    status, book, response = await call(
        http, "POST", "/api/books", {"title": f"Night {title_word}", "author": "Zoe Quill", "genre": "Poetry"}
    )
    assert status == 201
    assert response.headers["Location"] == f"/api/books/{book['book_id']}"
    assert book["published_year"] is None and book["available"] is True

    status, fetched, _ = await call(http, "GET", response.headers["Location"])
    assert status == 200 and fetched == book

    status, found, _ = await call(http, "GET", "/api/books", params={"q": title_word.upper()})
    assert status == 200 and [b["book_id"] for b in found] == [book["book_id"]]

    status, replaced, _ = await call(
        http,
        "PUT",
        f"/api/books/{book['book_id']}",
        {"title": f"Day {title_word}", "author": "Zoe Quill", "genre": "Fiction", "published_year": 2001},
    )
    assert status == 200 and replaced["title"] == f"Day {title_word}" and replaced["published_year"] == 2001
    status, patched, _ = await call(http, "PATCH", f"/api/books/{book['book_id']}", {"genre": "Drama"})
    assert status == 200 and patched["genre"] == "Drama" and patched["title"] == f"Day {title_word}"

    status, body, _ = await call(http, "DELETE", f"/api/books/{book['book_id']}")
    assert status == 204 and body is None
    status, body, _ = await call(http, "GET", f"/api/books/{book['book_id']}")
    assert_error(status, body, 404)


async def test_book_filters_and_paging(http: aiohttp.ClientSession) -> None:
    shared = word()
    author = f"Paula {word()}"
    books = [await new_book(http, title=f"{shared} part {i}", author=author, genre="History") for i in range(3)]
    ids = {b["book_id"] for b in books}

    status, by_author, _ = await call(http, "GET", "/api/books", params={"author": author.lower()})
    assert status == 200 and {b["book_id"] for b in by_author} == ids

    status, both, _ = await call(http, "GET", "/api/books", params={"author": author, "genre": "history", "q": shared})
    assert status == 200 and {b["book_id"] for b in both} == ids

    # Page by page: a bare array each time, the next page named in X-Next-Page and Link until the last.
    seen: list[str] = []
    params: dict[str, str] = {"q": shared, "page_size": "2"}
    for _ in range(5):
        status, page, response = await call(http, "GET", "/api/books", params=params)
        assert status == 200 and isinstance(page, list) and len(page) <= 2
        seen += [b["book_id"] for b in page]
        token = response.headers.get("X-Next-Page")
        if not token:
            assert "Link" not in response.headers
            break
        assert f"page={token}" in response.headers["Link"] and 'rel="next"' in response.headers["Link"]
        params = {**params, "page": token}
    assert sorted(seen) == sorted(ids)


async def test_book_errors(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "POST", "/api/books", {"author": "A", "genre": "G"})
    assert_error(status, body, 400, "title")
    status, body, _ = await call(
        http, "POST", "/api/books", {"title": "T", "author": "A", "genre": "G", "published_year": "old"}
    )
    assert_error(status, body, 400, "published_year")
    status, body, _ = await call(
        http, "POST", "/api/books", {"title": "T", "author": "A", "genre": "G", "published_year": 3999}
    )
    assert_error(status, body, 400, "published_year")
    status, body, _ = await call(
        http, "POST", "/api/books", raw=b'{"title": "T",', headers={"Content-Type": "application/json"}
    )
    assert_error(status, body, 400, "body")
    status, body, _ = await call(http, "POST", "/api/books", ["not", "an", "object"])
    assert_error(status, body, 400, "body")
    status, body, _ = await call(http, "GET", "/api/books/not-a-uuid")
    assert_error(status, body, 400, "book_id")
    status, body, _ = await call(http, "GET", f"/api/books/{uuid.uuid4()}")
    assert_error(status, body, 404)
    status, body, _ = await call(http, "PATCH", f"/api/books/{uuid.uuid4()}", {"title": "New"})
    assert_error(status, body, 404)
    status, body, _ = await call(http, "DELETE", f"/api/books/{uuid.uuid4()}")
    assert_error(status, body, 404)
    book = await new_book(http)
    status, body, _ = await call(http, "PUT", f"/api/books/{book['book_id']}", {"title": "Only a title"})
    assert_error(status, body, 400, "author")
    status, body, _ = await call(http, "PATCH", f"/api/books/{book['book_id']}", {"title": "   "})
    assert_error(status, body, 400, "title")
    status, body, _ = await call(http, "GET", "/api/books", params={"page_size": "0"})
    assert_error(status, body, 400, "page_size")
    status, body, _ = await call(http, "GET", "/api/books", params={"page_size": "lots"})
    assert_error(status, body, 400, "page_size")
    # Cassandra answers a made-up paging state with a protocol error that makes the driver drop the node,
    # so a token the service did not give out must stop at the web layer, for every listing.
    for path in ("/api/books", "/api/users", "/api/reservations", "/api/reservations?user_id=5"):
        for token in ("not/a/token", "AAAA", "zzzzzzzzzzzzzzzzzzzz.zzzz"):
            status, body, _ = await call(http, "GET", path, params={"page": token})
            assert_error(status, body, 400, "page")
    status, body, _ = await call(http, "GET", "/health")
    assert status == 200, body


async def test_a_reserved_book_cannot_be_deleted(http: aiohttp.ClientSession) -> None:
    book, user = await new_book(http), await new_user(http)
    status, reservation, _ = await call(
        http, "POST", "/api/reservations", {"book_id": book["book_id"], "user_id": user["user_id"]}
    )
    assert status == 201
    status, body, _ = await call(http, "GET", f"/api/books/{book['book_id']}")
    assert status == 200 and body["available"] is False
    status, body, _ = await call(http, "DELETE", f"/api/books/{book['book_id']}")
    assert_error(status, body, 409)
    status, body, _ = await call(http, "DELETE", f"/api/users/{user['user_id']}")
    assert_error(status, body, 409)
    status, _, _ = await call(
        http, "DELETE", f"/api/reservations/{reservation['reservation_id']}", params={"user_id": user["user_id"]}
    )
    assert status == 204
    status, _, _ = await call(http, "DELETE", f"/api/books/{book['book_id']}")
    assert status == 204


# -- users ----------------------------------------------------------------------------------------------
async def test_user_lifecycle(http: aiohttp.ClientSession) -> None:
    status, user, response = await call(http, "POST", "/api/users", {"name": "Ola", "email": "ola@example.org"})
    assert status == 201 and response.headers["Location"] == f"/api/users/{user['user_id']}"
    assert isinstance(user["user_id"], int) and user["joined_at"].endswith("Z")
    card = user["user_id"]

    status, fetched, _ = await call(http, "GET", f"/api/users/{card}")
    assert status == 200 and fetched == user
    status, chosen, _ = await call(
        http, "POST", "/api/users", {"name": "Card Holder", "email": "c@example.org", "user_id": card + 1}
    )
    assert status == 201 and chosen["user_id"] == card + 1

    status, listed, _ = await call(http, "GET", "/api/users", params={"page_size": "200"})
    assert status == 200 and isinstance(listed, list) and all("user_id" in u for u in listed)

    status, replaced, _ = await call(http, "PUT", f"/api/users/{card}", {"name": "Ola N.", "email": "on@example.org"})
    assert status == 200 and (replaced["name"], replaced["email"]) == ("Ola N.", "on@example.org")
    status, patched, _ = await call(http, "PATCH", f"/api/users/{card}", {"name": "Ola Nordmann"})
    assert status == 200 and patched["name"] == "Ola Nordmann" and patched["email"] == "on@example.org"

    for uid in (card, card + 1):
        status, _, _ = await call(http, "DELETE", f"/api/users/{uid}")
        assert status == 204
    status, body, _ = await call(http, "GET", f"/api/users/{card}")
    assert_error(status, body, 404)


async def test_finding_readers_by_name_or_e_mail(http: aiohttp.ClientSession) -> None:
    """`GET /api/users?q=` as `GET /api/books?q=`: each word a beginning of a word of the name or the e-mail address,
    any case or accents, paged the same way."""
    surname = "Q" + uuid.uuid4().hex[:8]
    made = []
    for first, email in (("Rosa", "rosa"), ("Rosalind", "lind"), ("Ángela", "angela")):
        status, user, _ = await call(
            http, "POST", "/api/users", {"name": f"{first} {surname}", "email": f"{email}.{surname}@example.org"}
        )
        assert status == 201, user
        made.append(user["user_id"])

    async def found(q: str, **params: str) -> list[int]:
        status, listed, _ = await call(http, "GET", "/api/users", params={"q": q, **params})
        assert status == 200 and isinstance(listed, list), listed
        return sorted(u["user_id"] for u in listed)

    assert await found(surname.lower()) == sorted(made)
    assert await found(f"ros {surname}") == sorted(made[:2])
    assert await found(f"angela {surname[:4]}") == [made[2]]  # folded, and a beginning
    assert await found(f"lind.{surname}@example.org") == [made[1]]  # the address as typed
    assert await found(f"{surname} zzzz") == []
    seen, params = [], {"page_size": "2"}
    for _ in range(3):
        status, page, response = await call(http, "GET", "/api/users", params={"q": surname, **params})
        assert status == 200 and len(page) <= 2
        seen += [u["user_id"] for u in page]
        if not response.headers.get("X-Next-Page"):
            break
        params["page"] = response.headers["X-Next-Page"]
    assert sorted(seen) == sorted(made)
    status, body, _ = await call(http, "GET", "/api/users", params={"q": "x" * 301})
    assert_error(status, body, 400, "q")
    status, body, _ = await call(http, "GET", "/api/users", params={"q": " ".join(["word"] * 3 + list("abcdefghij"))})
    assert status == 200  # one-letter words beside others are left out, as in the catalogue
    for uid in made:
        await call(http, "DELETE", f"/api/users/{uid}")


async def test_user_errors(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "POST", "/api/users", {"name": "No Mail"})
    assert_error(status, body, 400, "email")
    status, body, _ = await call(http, "POST", "/api/users", {"name": "Bad Mail", "email": "nobody"})
    assert_error(status, body, 400, "email")
    status, body, _ = await call(http, "POST", "/api/users", {"name": "X", "email": "x@example.org", "user_id": "12"})
    assert_error(status, body, 400, "user_id")
    status, body, _ = await call(http, "GET", "/api/users/twelve")
    assert_error(status, body, 400, "user_id")
    status, body, _ = await call(http, "GET", "/api/users/2147483647")
    assert_error(status, body, 404)
    status, body, _ = await call(http, "PUT", "/api/users/2147483647", {"name": "N", "email": "n@example.org"})
    assert_error(status, body, 404)
    status, body, _ = await call(http, "DELETE", "/api/users/2147483647")
    assert_error(status, body, 404)
    user = await new_user(http)
    status, body, _ = await call(http, "PUT", f"/api/users/{user['user_id']}", {"name": "Only Name"})
    assert_error(status, body, 400, "email")
    status, body, _ = await call(http, "PATCH", f"/api/users/{user['user_id']}", {"email": 5})
    assert_error(status, body, 400, "email")


# -- reservations ---------------------------------------------------------------------------------------
async def test_reservation_lifecycle(http: aiohttp.ClientSession) -> None:
    book, other_book, user = await new_book(http), await new_book(http), await new_user(http)
    status, reservation, response = await call(
        http, "POST", "/api/reservations", {"book_id": book["book_id"], "user_id": user["user_id"]}
    )
    assert status == 201
    rid = reservation["reservation_id"]
    assert response.headers["Location"] == f"/api/reservations/{rid}"
    assert (reservation["book_id"], reservation["user_id"]) == (book["book_id"], user["user_id"])

    status, fetched, _ = await call(http, "GET", f"/api/reservations/{rid}")
    assert status == 200 and fetched == reservation
    status, everyone, _ = await call(http, "GET", "/api/reservations", params={"page_size": "200"})
    assert status == 200 and isinstance(everyone, list)
    status, mine, _ = await call(http, "GET", "/api/reservations", params={"user_id": user["user_id"]})
    assert status == 200 and mine == [reservation]
    status, on_book, _ = await call(http, "GET", "/api/reservations", params={"book_id": book["book_id"]})
    assert status == 200 and on_book == [reservation]
    status, none, _ = await call(
        http, "GET", "/api/reservations", params={"book_id": book["book_id"], "user_id": user["user_id"] + 1}
    )
    assert status == 200 and none == []
    status, body, _ = await call(
        http, "GET", "/api/reservations", params={"book_id": book["book_id"], "page": "made-up"}
    )
    assert status == 400 and body["field"] == "page"

    status, renewed, _ = await call(http, "PATCH", f"/api/reservations/{rid}", {"user_id": user["user_id"]})
    assert status == 200 and renewed["book_id"] == book["book_id"]
    assert renewed["reserved_at"] >= reservation["reserved_at"]

    status, moved, _ = await call(
        http, "PATCH", f"/api/reservations/{rid}", {"user_id": user["user_id"], "book_id": other_book["book_id"]}
    )
    assert status == 200 and moved["book_id"] == other_book["book_id"] and moved["reservation_id"] == rid
    status, old, _ = await call(http, "GET", f"/api/books/{book['book_id']}")
    assert old["available"] is True

    status, body, _ = await call(http, "DELETE", f"/api/reservations/{rid}", {"user_id": user["user_id"]})
    assert status == 204 and body is None
    status, body, _ = await call(http, "GET", f"/api/reservations/{rid}")
    assert_error(status, body, 404)
    status, body, _ = await call(http, "DELETE", f"/api/reservations/{rid}", params={"user_id": user["user_id"]})
    assert_error(status, body, 404)


async def test_a_retry_with_the_same_idempotency_key_is_idempotent(http: aiohttp.ClientSession) -> None:
    book, user = await new_book(http), await new_user(http)
    body = {"book_id": book["book_id"], "user_id": user["user_id"], "idempotency_key": str(uuid.uuid4())}
    first = await call(http, "POST", "/api/reservations", body)
    again = await call(http, "POST", "/api/reservations", body)
    assert first[0] == again[0] == 201 and first[1] == again[1]


async def test_reservation_ids_are_the_services_and_a_key_binds_only_its_own_reader_and_book(
    http: aiohttp.ClientSession,
) -> None:
    """Case 4 of issue 10: a client-chosen reservation_id let an attacker reserve under a victim's id."""
    victims_book, attackers_book, second_book = await new_book(http), await new_book(http), await new_book(http)
    victim, attacker = await new_user(http), await new_user(http)
    status, body, _ = await call(
        http,
        "POST",
        "/api/reservations",
        {"book_id": victims_book["book_id"], "user_id": victim["user_id"], "reservation_id": str(uuid.uuid4())},
    )
    assert_error(status, body, 400, "reservation_id")
    key = "shared-key"
    _, mine, _ = await call(
        http,
        "POST",
        "/api/reservations",
        {"book_id": victims_book["book_id"], "user_id": victim["user_id"], "idempotency_key": key},
    )
    _, theirs, _ = await call(
        http,
        "POST",
        "/api/reservations",
        {"book_id": attackers_book["book_id"], "user_id": attacker["user_id"], "idempotency_key": key},
    )
    _, second, _ = await call(
        http,
        "POST",
        "/api/reservations",
        {"book_id": second_book["book_id"], "user_id": victim["user_id"], "idempotency_key": key},
    )
    assert len({mine["reservation_id"], theirs["reservation_id"], second["reservation_id"]}) == 3
    status, _, _ = await call(
        http, "DELETE", f"/api/reservations/{mine['reservation_id']}", {"user_id": victim["user_id"]}
    )
    assert status == 204
    status, _, _ = await call(
        http, "DELETE", f"/api/reservations/{second['reservation_id']}", {"user_id": victim["user_id"]}
    )
    assert status == 204
    for book in (victims_book, second_book):
        _, listed, _ = await call(http, "GET", "/api/reservations", params={"book_id": book["book_id"]})
        assert listed == []
        _, shown, _ = await call(http, "GET", f"/api/books/{book['book_id']}")
        assert shown["available"] is True


async def test_reservation_conflicts_and_ownership(http: aiohttp.ClientSession) -> None:
    book, free_book = await new_book(http), await new_book(http)
    owner, stranger = await new_user(http), await new_user(http)
    _, reservation, _ = await call(
        http, "POST", "/api/reservations", {"book_id": book["book_id"], "user_id": owner["user_id"]}
    )
    rid = reservation["reservation_id"]
    _, strangers, _ = await call(
        http, "POST", "/api/reservations", {"book_id": free_book["book_id"], "user_id": stranger["user_id"]}
    )

    status, body, _ = await call(
        http, "POST", "/api/reservations", {"book_id": book["book_id"], "user_id": stranger["user_id"]}
    )
    assert_error(status, body, 409)
    status, body, _ = await call(http, "PATCH", f"/api/reservations/{rid}", {"user_id": stranger["user_id"]})
    assert_error(status, body, 403)
    status, body, _ = await call(
        http, "PATCH", f"/api/reservations/{rid}", {"user_id": owner["user_id"], "book_id": free_book["book_id"]}
    )
    assert_error(status, body, 409)
    status, body, _ = await call(
        http, "PATCH", f"/api/reservations/{rid}", {"user_id": owner["user_id"], "book_id": str(uuid.uuid4())}
    )
    assert_error(status, body, 404)
    status, body, _ = await call(http, "DELETE", f"/api/reservations/{rid}", params={"user_id": stranger["user_id"]})
    assert_error(status, body, 403)
    status, still, _ = await call(http, "GET", f"/api/reservations/{rid}")
    assert status == 200 and still["book_id"] == book["book_id"]

    for r, u in ((rid, owner), (strangers["reservation_id"], stranger)):
        status, _, _ = await call(http, "DELETE", f"/api/reservations/{r}", params={"user_id": u["user_id"]})
        assert status == 204


async def test_reservation_errors(http: aiohttp.ClientSession) -> None:
    book, user = await new_book(http), await new_user(http)
    cases: list[tuple[Any, int, str | None]] = [
        ({"user_id": user["user_id"]}, 400, "book_id"),
        ({"book_id": "12345", "user_id": user["user_id"]}, 400, "book_id"),
        ({"book_id": book["book_id"], "user_id": "abc"}, 400, "user_id"),
        ({"book_id": book["book_id"], "user_id": 1.5}, 400, "user_id"),
        ({"book_id": book["book_id"], "user_id": user["user_id"], "reservation_id": "x"}, 400, "reservation_id"),
        ({"book_id": str(uuid.uuid4()), "user_id": user["user_id"]}, 404, None),
        ({"book_id": book["book_id"], "user_id": 2147483647}, 404, None),
    ]
    for body, expected, field in cases:
        status, answer, _ = await call(http, "POST", "/api/reservations", body)
        assert_error(status, answer, expected, field)
    json_type = {"Content-Type": "application/json"}  # any other type is a 415 (test_hostile_clients.py)
    status, body, _ = await call(http, "POST", "/api/reservations", raw=b"{oops", headers=json_type)
    assert_error(status, body, 400, "body")
    status, body, _ = await call(http, "GET", "/api/reservations/nope")
    assert_error(status, body, 400, "reservation_id")
    status, body, _ = await call(http, "GET", f"/api/reservations/{uuid.uuid4()}")
    assert_error(status, body, 404)
    status, body, _ = await call(http, "GET", "/api/reservations", params={"user_id": "me"})
    assert_error(status, body, 400, "user_id")
    status, body, _ = await call(http, "GET", "/api/reservations", params={"book_id": "me"})
    assert_error(status, body, 400, "book_id")
    # Without user_id, a librarian acts for the reservation's own reader: there is none to find.
    status, body, _ = await call(http, "PATCH", f"/api/reservations/{uuid.uuid4()}", {})
    assert_error(status, body, 404)
    status, body, _ = await call(http, "PATCH", f"/api/reservations/{uuid.uuid4()}", {"user_id": 5})
    assert_error(status, body, 404)
    status, body, _ = await call(http, "DELETE", f"/api/reservations/{uuid.uuid4()}")
    assert_error(status, body, 404)
    status, body, _ = await call(http, "DELETE", f"/api/reservations/{uuid.uuid4()}", params={"user_id": "x"})
    assert_error(status, body, 400, "user_id")


# -- the rest -------------------------------------------------------------------------------------------
async def test_health_openapi_and_unknown_paths(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["consistency"] == "LOCAL_QUORUM"
    status, body, response = await call(http, "GET", "/openapi.json")
    assert status == 200 and body["openapi"].startswith("3.") and "/api/reservations" in body["paths"]
    assert response.headers["Content-Type"].startswith("application/json")
    status, body, _ = await call(http, "GET", "/api/nothing-here")
    assert_error(status, body, 404)
    status, body, response = await call(http, "DELETE", "/api/books")
    assert_error(status, body, 405)
    assert "POST" in response.headers["Allow"]


async def test_the_api_needs_no_xsrf_token(http: aiohttp.ClientSession) -> None:
    # Scripts post JSON without the UI's XSRF cookie; the forms of the UI still need it (test_browser.py).
    book = await new_book(http)
    assert book["book_id"]
    async with http.post("/sign-out", data={}) as response:
        assert response.status == 403


# -- Cassandra below quorum: 503 with Retry-After ------------------------------------------------------
@pytest.fixture(scope="module")
async def unavailable_url(settings: Settings, database: Database) -> AsyncIterator[str]:
    """The app on a keyspace that asks for 7 replicas of 3 nodes: LOCAL_QUORUM (4) is never reachable, so
    every read and plain write is refused by real Cassandra, as when too many nodes are down. Paxos v2 counts
    its quorum among the 3 replicas that exist, so a lightweight transaction alone would still apply here;
    tests/integration/test_faults.py stops real nodes for those."""
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from app.web import make_app

    unreachable = Settings(
        cassandra_hosts=settings.cassandra_hosts, keyspace="test_web_below_quorum", replication_factor=7
    )
    for statement in statements(unreachable):
        await database.execute_raw(statement)
    db = await Database.connect(unreachable)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(make_app(Library(db), unreachable))
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    db.close()


async def test_503_with_retry_after_when_cassandra_cannot_reach_quorum(unavailable_url: str) -> None:
    # A bearer token cannot be checked either: the signed-in requests are 503 too, never a 401.
    async with aiohttp.ClientSession(base_url=unavailable_url, headers=bearer("some-token")) as http:
        requests = [
            ("GET", "/api/books", None),
            ("GET", f"/api/books/{uuid.uuid4()}", None),
            ("PATCH", "/api/users/1", {"name": "N"}),
            ("POST", "/api/reservations", {"book_id": str(uuid.uuid4()), "user_id": 1}),
            ("POST", "/api/session", {"user_id": 1, "pin": "1234"}),
            ("POST", "/make_reservation", {"book_id": str(uuid.uuid4()), "user_id": 1}),
            ("GET", "/health", None),
        ]
        answers = await asyncio.gather(*(call(http, m, p, b) for m, p, b in requests))
        for (method, path, _), (status, body, response) in zip(requests, answers, strict=True):
            assert status == 503, (method, path, body)
            assert isinstance(body.get("error"), str), body
            assert int(response.headers["Retry-After"]) > 0
    # The status page the footer links to says the same to a person, in words.
    async with aiohttp.ClientSession(base_url=unavailable_url) as http, http.get("/status") as response:
        page = await response.text()
        assert response.status == 503 and response.headers["Content-Type"].startswith("text/html")
        assert "Not right now" in page and "{" not in page.split("<body>")[1].split("<script")[0]
        assert int(response.headers["Retry-After"]) > 0


async def test_pages_escape_what_readers_typed(http: aiohttp.ClientSession) -> None:
    marker = word()
    book = await new_book(http, title=f"<script>alert('{marker}')</script> {marker}", author="<b>Bold</b>")
    for path in ("/?q=" + marker, f"/books/{book['book_id']}"):
        async with http.get(path, headers={"Accept": "text/html"}) as response:
            html = await response.text()
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/html")
        assert "<script>alert" not in html and "&lt;script&gt;alert" in html
        assert "<b>Bold</b>" not in html and "&lt;b&gt;Bold&lt;/b&gt;" in html
    async with http.get("/no/such/page", headers={"Accept": "text/html"}) as response:
        assert response.status == 404 and "There is no page at /no/such/page" in await response.text()
