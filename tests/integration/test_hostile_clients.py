"""Issue 12's hostile clients, tried as an attacker would, against the app on real Cassandra: replayed page
tokens, large bodies, the client mistakes that were 500s, cross-site requests, foreign Host headers, open
redirects, and the headers every answer must carry."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from integration.api_support import assert_error, call, new_user
from integration.ui_support import PIN, new_account, sign_in, xsrf

from app.models import Role
from app.repository import Library
from app.settings import Settings
from app.web.guards import SECURITY_HEADERS

HUGE_NUMBER = "9" * 4400  # int() refuses more than 4,300 digits


@pytest.fixture
async def http(web_url: str, staff_headers: dict[str, str], library: Library) -> AsyncIterator[aiohttp.ClientSession]:
    """A librarian, on both sides: the API's bearer token in every request, and signed in to the UI (the session
    cookie). unsafe: keep the cookies of a server named by its IP address, 127.0.0.1."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=web_url, cookie_jar=jar, headers=staff_headers) as session:
        await sign_in(session, await new_account(library, Role.LIBRARIAN, "Hostile Librarian"))
        yield session


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every request of the test is a client's mistake: none may log an error or a traceback."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_server_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def new_book(http: aiohttp.ClientSession, genre: str) -> dict[str, Any]:
    status, book, _ = await call(http, "POST", "/api/books", {"title": "A Hostile Read", "author": "A", "genre": genre})
    assert status == 201, book
    return book


# -- 1. page tokens are bound to the query they came from ------------------------------------------------------
async def test_a_genuine_page_token_opens_only_its_own_listing(
    http: aiohttp.ClientSession, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    genre, other_genre = f"g{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        await new_book(http, genre)
    reader, other_reader = (
        await new_user(http, "Hal Hostile", "hal@example.org"),
        await new_user(http, "Hal Hostile", "hal@example.org"),
    )
    books = [await new_book(http, other_genre) for _ in range(2)]
    for book in books:
        status, _, _ = await call(
            http, "POST", "/api/reservations", {"book_id": book["book_id"], "user_id": reader["user_id"]}
        )
        assert status == 201

    status, _, response = await call(http, "GET", "/api/books", params={"genre": genre, "page_size": "1"})
    assert status == 200
    token = response.headers["X-Next-Page"]
    status, _, response = await call(
        http, "GET", "/api/reservations", params={"user_id": str(reader["user_id"]), "page_size": "1"}
    )
    assert status == 200
    readers_token = response.headers["X-Next-Page"]

    # Every replay below is refused before Cassandra sees its paging state (it threw inside every node).
    sent_states: list[bytes] = []
    execute = library.db.execute

    async def spy(*args: Any, **kw: Any) -> Any:
        if kw.get("paging_state"):
            sent_states.append(kw["paging_state"])
        return await execute(*args, **kw)

    monkeypatch.setattr(library.db, "execute", spy)
    replays = [
        ("/api/books", {"genre": genre, "page_size": "2", "page": token}),  # another page size
        ("/api/books", {"genre": other_genre, "page_size": "1", "page": token}),  # another filter
        ("/api/books", {"page_size": "1", "page": token}),  # no filter
        ("/api/books", {"genre": genre, "q": "hostile", "page_size": "1", "page": token}),  # one more filter
        ("/api/users", {"page_size": "1", "page": token}),  # another listing
        ("/api/reservations", {"page_size": "1", "page": token}),
        ("/api/reservations", {"user_id": str(reader["user_id"]), "page_size": "1", "page": token}),
        # A reader's token on another reader's listing, on every reservation, and with another size.
        ("/api/reservations", {"user_id": str(other_reader["user_id"]), "page_size": "1", "page": readers_token}),
        ("/api/reservations", {"page_size": "1", "page": readers_token}),
        ("/api/reservations", {"user_id": str(reader["user_id"]), "page_size": "5", "page": readers_token}),
    ]
    for path, params in replays:
        status, body, _ = await call(http, "GET", path, params=params)
        assert_error(status, body, 400, "page")
    assert sent_states == []
    async with http.get("/", params={"page": token}, headers={"Accept": "text/html"}) as response:
        assert response.status == 200  # the UI's catalogue has numbered pages: anything else is its first page
    # The UI's first page reads its facets' rows through the driver's own paging once the catalogue holds more than a
    # page of them (as it does late in a CI run): those paging states are Cassandra's, never a client's.
    sent_states.clear()

    # The genuine replays still work.
    status, page, _ = await call(http, "GET", "/api/books", params={"genre": genre, "page_size": "1", "page": token})
    assert status == 200 and len(page) == 1
    assert sent_states == []  # a page resumes from its key: no paging state of the driver is ever handed back
    params = {"user_id": str(reader["user_id"]), "page_size": "1", "page": readers_token}
    status, page, _ = await call(http, "GET", "/api/reservations", params=params)
    assert status == 200 and len(page) == 1


# -- 2. large bodies -----------------------------------------------------------------------------------------
async def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, bytes, bytes]:
    """Send `head` (and `body`) on a plain socket; returns the status, the headers and the body of the answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # to the close: a refusal closes the connection
    finally:
        writer.close()
    head_bytes, _, rest = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), head_bytes, rest


async def test_a_body_over_the_limit_is_refused_from_its_headers(web_url: str, settings: Settings) -> None:
    # Only the headers are sent, announcing 100 MB: the answer comes at once, without waiting for the body.
    host = urlsplit(web_url).netloc
    started = time.monotonic()
    status, head, body = await raw_request(
        web_url,
        f"POST /api/books HTTP/1.1\nHost: {host}\nContent-Type: application/json\nContent-Length: 100000000\n",
    )
    assert status == 413 and time.monotonic() - started < 2
    assert json.loads(body)["error"].startswith("the request body is larger than this service accepts")
    assert b"connection: close" in head.lower()
    # The same for a form of the UI, answered as a page, and for the earlier system's endpoints.
    status, head, body = await raw_request(
        web_url,
        f"POST /readers/add HTTP/1.1\nHost: {host}\nAccept: text/html\n"
        "Content-Type: application/x-www-form-urlencoded\nContent-Length: 5000000\n",
    )
    assert status == 413 and b"text/html" in head and b"larger than this service accepts" in body
    status, _, body = await raw_request(
        web_url, f"POST /make_reservation HTTP/1.1\nHost: {host}\nContent-Length: {settings.max_body_bytes + 1}\n"
    )
    assert status == 413 and json.loads(body)["field"] == "body"


async def test_an_oversized_post_gets_a_413(http: aiohttp.ClientSession, web_url: str, settings: Settings) -> None:
    big = {"title": "x" * (settings.max_body_bytes + 10), "author": "A", "genre": "G"}
    # A client that asks before sending (Expect: 100-continue, as curl does for large bodies) sends nothing more.
    async with http.post("/api/books", json=big, expect100=True) as response:
        assert response.status == 413
        assert_error(413, await response.json(), 413, "body")
    # A chunked body is counted as it arrives.
    host = urlsplit(web_url).netloc
    chunk = b"x" * 8192
    chunked = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (settings.max_body_bytes // len(chunk) + 2) + b"0\r\n\r\n"
    status, _, body = await raw_request(
        web_url,
        f"POST /api/books HTTP/1.1\nHost: {host}\nContent-Type: application/json\nTransfer-Encoding: chunked\n",
        chunked,
    )
    assert status == 413 and json.loads(body)["field"] == "body"
    # A body just under the limit is read as usual.
    fits = json.dumps({"title": "t", "author": "A", "genre": "G", "pad": "x" * (settings.max_body_bytes - 100)})
    status, book, _ = await call(http, "POST", "/api/books", data=fits, headers={"Content-Type": "application/json"})
    assert status == 201, book


async def test_health_stays_fast_while_large_bodies_arrive(http: aiohttp.ClientSession, web_url: str) -> None:
    host = urlsplit(web_url).netloc

    async def flood() -> None:
        # Announces 88 MB and keeps sending until the service closes the connection.
        parts = urlsplit(web_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        head = f"POST /api/books HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: 88000000\r\n\r\n".encode())
        try:
            for _ in range(88 * 16):
                writer.write(b"[" * 65536)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    floods = [asyncio.create_task(flood()) for _ in range(4)]
    slowest = 0.0
    for _ in range(10):
        started = time.monotonic()
        status, body, _ = await call(http, "GET", "/health")
        slowest = max(slowest, time.monotonic() - started)
        assert status == 200, body
    await asyncio.wait_for(asyncio.gather(*floods), 30)
    assert slowest < 1.0


# -- 3. no 500 for a client's mistake ---------------------------------------------------------------------------
async def test_huge_numbers_are_400s(http: aiohttp.ClientSession, no_tracebacks: pytest.LogCaptureFixture) -> None:
    status, body, _ = await call(http, "GET", f"/api/users/{HUGE_NUMBER}")
    assert_error(status, body, 400, "user_id")
    status, body, _ = await call(http, "GET", "/api/reservations", params={"user_id": HUGE_NUMBER})
    assert_error(status, body, 400, "user_id")
    for path in ("/api/books", "/api/users", "/api/reservations"):
        status, body, _ = await call(http, "GET", path, params={"page_size": HUGE_NUMBER})
        assert_error(status, body, 400, "page_size")
    status, body, _ = await call(http, "DELETE", f"/api/reservations/{uuid.uuid4()}", params={"user_id": HUGE_NUMBER})
    assert_error(status, body, 400, "user_id")
    # A junk session cookie is forgotten and the page shows, as to anybody.
    async with aiohttp.ClientSession(base_url=str(http._base_url)) as anonymous:
        async with anonymous.get("/", headers={"Cookie": f"session={HUGE_NUMBER}", "Accept": "text/html"}) as r:
            assert r.status == 200
        # The sign-in form with a card number nobody could have: the form again with a message, no 500.
        form = {"_xsrf": await xsrf(http), "card": HUGE_NUMBER, "pin": "1234"}
        cookies = {"_xsrf": form["_xsrf"]}
        async with anonymous.post("/sign-in", data=form, cookies=cookies, allow_redirects=False) as response:
            assert response.status == 400 and "card number" in await response.text()
    assert_no_server_errors(no_tracebacks)


async def test_lone_surrogates_are_400s(http: aiohttp.ClientSession, no_tracebacks: pytest.LogCaptureFixture) -> None:
    book = await new_book(http, "Surrogates")
    user = await new_user(http, "Hal Hostile", "hal@example.org")
    headers = {"Content-Type": "application/json"}
    lone = '"\\ud800"'  # JSON's spelling of an unpaired surrogate, which UTF-8 cannot carry
    cases = [
        ("POST", "/api/books", f'{{"title": {lone}, "author": "A", "genre": "G"}}', "title"),
        ("POST", "/api/books", f'{{"title": "T", "author": {lone}, "genre": "G"}}', "author"),
        ("PUT", f"/api/books/{book['book_id']}", f'{{"title": "T", "author": "A", "genre": {lone}}}', "genre"),
        ("PATCH", f"/api/books/{book['book_id']}", f'{{"title": {lone}}}', "title"),
        ("POST", "/api/users", f'{{"name": {lone}, "email": "a@example.org"}}', "name"),
        ("POST", "/api/users", '{"name": "N", "email": "\\udfff@example.org"}', "email"),
        ("PATCH", f"/api/users/{user['user_id']}", f'{{"name": {lone}}}', "name"),
        (
            "POST",
            "/api/reservations",
            f'{{"book_id": "{book["book_id"]}", "user_id": {user["user_id"]}, "idempotency_key": {lone}}}',
            "idempotency_key",
        ),
    ]
    for method, path, body, field in cases:
        status, answer, _ = await call(http, method, path, data=body.encode(), headers=headers)
        assert_error(status, answer, 400, field)
    # A form cannot even spell one: its UTF-8 bytes (ED A0 80) do not decode.
    token = await xsrf(http)
    form = f"_xsrf={token}&name=%ED%A0%80&email=a%40example.org&next=%2Freaders"
    form_headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    async with http.post("/readers/add", data=form, headers=form_headers, allow_redirects=False) as response:
        assert response.status == 400
    assert_no_server_errors(no_tracebacks)


async def test_deeply_nested_json_is_a_400(
    http: aiohttp.ClientSession, settings: Settings, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    depth = settings.max_body_bytes // 2 - 10  # as deep as fits in a body the service reads
    headers = {"Content-Type": "application/json"}
    for path in ("/api/books", "/api/reservations", "/make_reservation"):
        for nested in (b"[" * depth + b"]" * depth, b'{"a":' * (depth // 3) + b"1" + b"}" * (depth // 3)):
            status, body, _ = await call(http, "POST", path, data=nested, headers=headers)
            assert_error(status, body, 400, "body")
    # 100,000 deep does not fit: it is refused for its size before it is parsed.
    status, body, _ = await call(http, "POST", "/api/books", data=b"[" * 100_000 + b"]" * 100_000, headers=headers)
    assert_error(status, body, 413, "body")
    assert_no_server_errors(no_tracebacks)


# -- 4. cross-site ----------------------------------------------------------------------------------------------
async def test_the_api_takes_only_json_bodies(http: aiohttp.ClientSession, library: Library) -> None:
    book, user = await new_book(http, "CrossSite"), await new_user(http, "Hal Hostile", "hal@example.org")
    reserve = json.dumps({"book_id": book["book_id"], "user_id": user["user_id"]})
    # What a page on another site can send without asking first (a CORS simple request).
    for content_type in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        status, body, _ = await call(http, "POST", "/api/reservations", data=reserve.encode(), headers=headers)
        assert_error(status, body, 415)
        assert "application/json" in body["error"]
    assert await library.holder(uuid.UUID(book["book_id"])) is None
    status, reservation, _ = await call(
        http, "POST", "/api/reservations", data=reserve, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert status == 201, reservation
    # A body on any method, under /api/ only.
    status, body, _ = await call(
        http, "PATCH", f"/api/books/{book['book_id']}", data=b'{"genre": "X"}', headers={"Content-Type": "text/plain"}
    )
    assert_error(status, body, 415)
    # No body, no content type: fine where the endpoint needs none.
    path = f"/api/reservations/{reservation['reservation_id']}"
    status, _, _ = await call(http, "DELETE", path, params={"user_id": str(user["user_id"])})
    assert status == 204


async def test_cancel_without_a_body_and_the_earlier_systems_scripts(http: aiohttp.ClientSession) -> None:
    book, user = await new_book(http, "Legacy"), await new_user(http, "Hal Hostile", "hal@example.org")
    status, reservation, _ = await call(
        http, "POST", "/api/reservations", {"book_id": book["book_id"], "user_id": user["user_id"]}
    )
    assert status == 201
    async with http.delete(
        f"/api/reservations/{reservation['reservation_id']}", params={"user_id": str(user["user_id"])}
    ) as response:
        assert response.status == 204
    # The earlier system's endpoints keep taking whatever content type its scripts send.
    legacy = json.dumps({"book_id": book["book_id"], "user_id": user["user_id"]}).encode()
    for content_type in ("text/plain", "application/octet-stream", "application/x-www-form-urlencoded"):
        for path, expected in (("/make_reservation", 201), ("/remove_reservation", 200)):
            status, body, _ = await call(http, "POST", path, data=legacy, headers={"Content-Type": content_type})
            assert status == expected, (path, content_type, body)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8888", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]", "10.0.0.1"]
)
async def test_a_foreign_host_header_is_a_400(http: aiohttp.ClientSession, host: str) -> None:
    for path in ("/health", "/api/books", "/static/style.css", "/no/such/path"):
        status, body, _ = await call(http, "GET", path, headers={"Host": host})
        assert_error(status, body, 400, "Host")
    async with http.get("/", headers={"Host": host, "Accept": "text/html"}) as response:
        assert response.status == 400 and "ALLOWED_HOSTS" in await response.text()
        assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("host", ["localhost", "localhost:8888", "LOCALHOST.", "127.0.0.1", "127.3.4.5:1", "[::1]:80"])
async def test_this_machines_names_are_answered(http: aiohttp.ClientSession, host: str) -> None:
    status, body, _ = await call(http, "GET", "/health", headers={"Host": host})
    assert status == 200, body


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/",
        "/\\evil.example/",
        "/\\/evil.example/",
        "//evil.example/",
        " //evil.example/",
        "/\r\n/evil.example/",
        "/me\r\nSet-Cookie: reader=1",
        "/\n/evil.example/",
        "https://evil.example/",
    ],
)
async def test_next_never_redirects_off_site(
    http: aiohttp.ClientSession, target: str, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    token = await xsrf(http)
    # A form whose action is refused goes back to its `next`: here, a cancel of no reservation.
    form = {"_xsrf": token, "next": target}
    async with http.post(f"/reservations/{uuid.uuid4()}/cancel", data=form, allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == "/"
        assert "Set-Cookie: reader" not in r.headers.get("Location", "")
    assert_no_server_errors(no_tracebacks)


# -- 5. headers on every response -------------------------------------------------------------------------------
async def test_every_answer_carries_the_security_headers(http: aiohttp.ClientSession, settings: Settings) -> None:
    book = await new_book(http, "Headers")
    token = await xsrf(http)
    html = {"Accept": "text/html"}
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/", {"headers": html}),
        ("GET", f"/books/{book['book_id']}", {"headers": html}),
        ("GET", "/readers", {"headers": html}),
        ("GET", "/static/style.css", {}),
        ("GET", "/static/app.js", {}),
        ("GET", "/no/such/page", {"headers": html}),
        ("GET", "/api/nothing", {}),
        ("GET", "/api/books", {}),
        ("GET", "/api/books/not-a-uuid", {}),
        ("GET", "/api/reservations", {}),  # streamed
        ("GET", "/health", {}),
        ("GET", "/openapi.json", {}),
        ("POST", "/sign-in", {"data": {"_xsrf": token, "card": "x"}, "allow_redirects": False}),
        ("POST", "/api/books", {"data": "x", "headers": {"Content-Type": "text/plain"}}),  # refused by the guard
        ("GET", "/health", {"headers": {"Host": "evil.example"}}),  # refused by the guard
    ]
    for method, path, kw in requests:
        async with http.request(method, path, **kw) as response:
            for name, value in SECURITY_HEADERS.items():
                assert response.headers.get(name) == value, (method, path, name)
            assert "tornado" not in response.headers.get("Server", "").lower(), (method, path)
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp


async def test_the_pages_need_nothing_the_policy_forbids() -> None:
    # The policy allows only same-origin scripts and styles: no template may carry inline ones.
    from app.web import TEMPLATES_DIR

    for template in TEMPLATES_DIR.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and " style=" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "javascript:" not in text, template.name


async def test_health_does_not_name_the_keyspace(http: aiohttp.ClientSession, settings: Settings) -> None:
    status, body, response = await call(http, "GET", "/health")
    assert status == 200 and "keyspace" not in body
    assert settings.keyspace not in json.dumps(body)


# -- issue 20: forged page tokens, every odd code point in every text field -----------------------------------------
def forged_page_tokens(library: Library, scope_of_books: str) -> list[str]:
    """Ten tokens a forger might send: made up, sealed under the development secret the service used to derive from
    the keyspace's name, and sealed with the deployment's real secret (as someone who has it would) but holding
    anything but a key: none may reach Cassandra as more than a bound value of the key's type."""
    from app.repository.base import Seal

    derived = Seal(f"library-page-token:{library.ks}")  # what anyone who had read the source could seal with
    real = library.seal
    return [
        "AAAA.AAAAAAAAAAAAAAAA",
        "x" * 150,
        derived.seal(b"\x00\x01\x02garbage paging state", scope_of_books),
        derived.seal(json.dumps([str(uuid.uuid4())]).encode(), scope_of_books),
        real.seal(b"\x00\x01\x02garbage paging state", scope_of_books),
        real.seal(b"[" * 3000, scope_of_books),
        real.seal(b'["x\' OR 1=1 --"]', scope_of_books),
        real.seal(b"[1]", scope_of_books),
        real.seal(json.dumps([str(uuid.uuid4()), 2]).encode(), scope_of_books),
        real.seal(b'{"book_id": null}', scope_of_books),
    ]


async def measure_forged_page_tokens(
    url: str, tokens: list[str], *, seconds: float, per_second: int, bystanders: int = 4
) -> tuple[dict[int, int], dict[int, int]]:
    """`per_second` forged page tokens a second, sent `per_second` at once, for `seconds`, while `bystanders` clients
    walk the catalogue a page at a time with genuine tokens; the statuses each side got."""
    forged: dict[int, int] = {}
    seen: dict[int, int] = {}
    end = time.monotonic() + seconds

    async def forger(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < end:
            tick = time.monotonic()
            batch = [tokens[i % len(tokens)] for i in range(per_second)]
            answers = await asyncio.gather(
                *(http.get("/api/books", params={"page_size": "5", "page": t}) for t in batch)
            )
            for response in answers:
                forged[response.status] = forged.get(response.status, 0) + 1
                response.release()
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

    async def bystander(http: aiohttp.ClientSession) -> None:
        page: str | None = None
        while time.monotonic() < end:
            params = {"page_size": "5", **({"page": page} if page else {})}
            async with http.get("/api/books", params=params) as response:
                seen[response.status] = seen.get(response.status, 0) + 1
                page = response.headers.get("X-Next-Page")
            async with http.get("/health") as response:
                seen[response.status] = seen.get(response.status, 0) + 1

    async with aiohttp.ClientSession(base_url=url) as http:
        await asyncio.gather(forger(http), *(bystander(http) for _ in range(bystanders)))
    return forged, seen


async def test_forged_page_tokens_ten_at_once_leave_everyone_else_at_200(
    http: aiohttp.ClientSession, web_url: str, library: Library, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    for _ in range(12):
        await new_book(http, "Forgery")
    statement = library.catalogue.cql("SELECT book_id, title, author, genre, published_year FROM {ks}.books")
    tokens = forged_page_tokens(library, library.pages.scope(statement, [], 5))
    # The real secret's tokens must be refused for what they hold, not for their seal.
    assert library.seal.open(tokens[-1], library.pages.scope(statement, [], 5), max_length=200) is not None
    forged, seen = await measure_forged_page_tokens(web_url, tokens, seconds=3, per_second=10)
    print(f"\nforged page tokens: {forged}; bystanders: {seen}")
    assert set(forged) == {400} and sum(forged.values()) >= 20, forged
    assert set(seen) == {200} and sum(seen.values()) > 0, seen
    assert_no_server_errors(no_tracebacks)


# Code points a client might send to trip the service: unpaired surrogates (which UTF-8 cannot carry), NUL and other
# controls, noncharacters, the byte order mark, line and paragraph separators, a bidirectional override, a lone
# combining mark, and the last code point.
ODD_CODE_POINTS = [chr(c) for c in (0xD800, 0xDBFF, 0xDC00, 0xDFFF)] + [
    chr(c) for c in (0x0, 0x1F, 0x7F, 0x85, 0xFFFE, 0xFFFF, 0xFEFF, 0x2028, 0x2029, 0x202E, 0x0301, 0x10FFFF)
]


def is_surrogate(text: str) -> bool:
    return "\ud800" <= text <= "\udfff"


async def test_every_text_field_takes_every_odd_code_point_without_a_500(
    http: aiohttp.ClientSession, library: Library, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    """For every text field of the API and every odd code point, alone and inside a value: a surrogate is a 400 that
    names the field, and nothing is ever a 500."""
    book = await new_book(http, "Odd")
    user = await new_user(http, "Olga Odd", "olga@example.org")
    own = await new_account(library, Role.READER, "Otto Own")
    _, session, _ = await call(http, "POST", "/api/session", {"user_id": own.user_id, "pin": PIN})
    own_headers = {"Authorization": f"Bearer {session['token']}"}
    fields: list[tuple[str, str, Any, str, dict[str, str]]] = []
    for odd in ODD_CODE_POINTS:
        for value in (odd, f"Ab{odd}cd", f"{odd}@example.org"):
            fields += [
                ("POST", "/api/books", {"title": value, "author": "A", "genre": "G"}, "title", {}),
                ("POST", "/api/books", {"title": "T", "author": value, "genre": "G"}, "author", {}),
                ("POST", "/api/books", {"title": "T", "author": "A", "genre": value}, "genre", {}),
                ("PATCH", f"/api/books/{book['book_id']}", {"title": value}, "title", {}),
                ("POST", "/api/users", {"name": value, "email": "o@example.org"}, "name", {}),
                ("POST", "/api/users", {"name": "N", "email": value}, "email", {}),
                ("PATCH", f"/api/users/{user['user_id']}", {"name": value}, "name", {}),
                ("PATCH", f"/api/users/{user['user_id']}", {"email": value}, "email", {}),
                ("PATCH", f"/api/users/{user['user_id']}", {"pin": value + "1234"}, "pin", {}),
                ("POST", "/api/session", {"user_id": own.user_id, "pin": value}, "pin", {}),
                ("POST", "/api/session", {"user_id": 2_000_000_001, "pin": value}, "pin", {}),
                ("POST", "/api/session", {"user_id": own.user_id, "pin": "x", "device": value}, "device", {}),
                (
                    "PATCH",
                    f"/api/users/{own.user_id}",
                    {"pin": "86420", "current_pin": value},
                    "current_pin",
                    own_headers,
                ),
                (
                    "POST",
                    "/api/reservations",
                    {"book_id": book["book_id"], "user_id": user["user_id"], "idempotency_key": value},
                    "idempotency_key",
                    {},
                ),
                ("POST", "/api/reservations", {"book_id": value}, "book_id", {}),
            ]
    headers = {"Content-Type": "application/json"}
    for method, path, body, field, extra in fields:
        raw = json.dumps(body).encode()  # ensure_ascii: a surrogate travels as \ud800, as a hostile client sends it
        status, answer, _ = await call(http, method, path, raw=raw, headers={**headers, **extra})
        odd = next(iter(v for v in body.values() if isinstance(v, str) and any(is_surrogate(c) for c in v)), None)
        assert status < 500, (method, path, body, status, answer)
        if odd is not None:
            assert_error(status, answer, 400, field)
    # The query string: a surrogate's UTF-8 bytes do not decode, so it cannot even be spelled; the others are filters.
    for name in ("q", "genre", "author"):
        for odd in ODD_CODE_POINTS:
            encoded = "%ED%A0%80" if is_surrogate(odd) else quote(odd.encode("utf-8", "surrogatepass"))
            async with http.get(f"/api/books?{name}={encoded}") as response:
                assert response.status in (200, 400), (name, odd, response.status)
                assert response.status == 400 or not is_surrogate(odd)
    assert_no_server_errors(no_tracebacks)
