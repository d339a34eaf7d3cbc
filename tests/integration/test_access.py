"""Who may do what, in the production setting: every route of the service × every method it answers × {anonymous,
another reader, the owner, a librarian} → the status written down here, and nothing changed or revealed when
refused.

The table is written by hand, not derived from the handlers' ACCESS declarations (that would test them against
themselves), and the test walks `ROUTES`: a route or method without a row here fails the test, so a new endpoint
cannot be left out. Each cell gets fresh data (a book, an owner holding a reservation of it, a free book), so one
cell's success never decides another's answer.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest
import tornado.web
from integration.ui_support import PIN, new_account
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from app.access import Caller
from app.models import NotFound, Reservation, Role, User
from app.repository import Library
from app.settings import PRODUCTION, Settings
from app.web import ROUTES, make_app
from app.web.pages import SESSION_COOKIE
from toolkit.cli import bearer

WHO = ("anonymous", "other", "owner", "librarian")
SIGN_IN = "sign-in"  # a page that redirects an anonymous caller to /sign-in
REFUSED = "refused"  # a form post answered with a redirect and an error message: nothing may change
XSRF = "matrix-xsrf"  # the same value in the _xsrf cookie and form field is a valid (version 1) Tornado token

# (route pattern, method) -> the answer for anonymous, another reader, the owner, a librarian. An int is the status;
# SIGN_IN a 302 to /sign-in; REFUSED a 302 back with nothing changed.
EXPECTED: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {
    ("/health", "get"): (200, 200, 200, 200),
    ("/openapi.json", "get"): (200, 200, 200, 200),
    # production serves its metrics on the admin port only (METRICS_PORT)
    ("/metrics", "get"): (404, 404, 404, 404),
    ("/api/books", "get"): (200, 200, 200, 200),
    ("/api/books", "post"): (401, 403, 403, 201),
    ("/api/books/([^/]+)", "get"): (200, 200, 200, 200),
    ("/api/books/([^/]+)", "put"): (401, 403, 403, 200),
    ("/api/books/([^/]+)", "patch"): (401, 403, 403, 200),
    ("/api/books/([^/]+)", "delete"): (401, 403, 403, 204),
    ("/api/session", "get"): (401, 200, 200, 200),
    ("/api/session", "post"): (201, 201, 201, 201),
    ("/api/session", "delete"): (401, 204, 204, 204),
    ("/api/users", "get"): (401, 403, 403, 200),
    ("/api/users", "post"): (401, 403, 403, 201),
    ("/api/users/([^/]+)", "get"): (401, 403, 200, 200),
    ("/api/users/([^/]+)", "put"): (401, 403, 200, 200),
    ("/api/users/([^/]+)", "patch"): (401, 403, 200, 200),
    ("/api/users/([^/]+)", "delete"): (401, 403, 403, 409),  # the owner holds a reservation
    ("/api/users/([^/]+)/sessions", "delete"): (401, 403, 200, 200),
    # the queue of the owner's book: the caller joins or leaves it themselves (the owner holds it: a 409; nobody
    # waits to leave: a 404); a reader sees their own places only
    ("/api/books/([^/]+)/queue", "get"): (401, 200, 200, 200),
    ("/api/books/([^/]+)/queue", "post"): (401, 201, 409, 201),
    ("/api/books/([^/]+)/queue", "delete"): (401, 404, 404, 404),
    # nobody is in the owner's book's queue: suspending or resuming a place one does not have is a 404
    ("/api/books/([^/]+)/queue/suspension", "put"): (401, 404, 404, 404),
    ("/api/books/([^/]+)/queue/suspension", "delete"): (401, 404, 404, 404),
    # the desk's: the owner's ready hold is lent (200); a return of a book not on loan is a 409
    ("/api/books/([^/]+)/loan", "post"): (401, 403, 403, 200),
    ("/api/books/([^/]+)/loan", "delete"): (401, 403, 403, 409),
    ("/api/users/([^/]+)/queues", "get"): (401, 403, 200, 200),
    ("/api/users/([^/]+)/history", "get"): (401, 403, 200, 200),
    ("/api/reservations", "get"): (401, 403, 200, 200),
    ("/api/reservations", "post"): (401, 403, 201, 201),
    # another reader's reservation is a 404, as one that does not exist (PATCH names the owner: a 403 for that)
    ("/api/reservations/([^/]+)", "get"): (401, 404, 200, 200),
    ("/api/reservations/([^/]+)", "patch"): (401, 403, 200, 200),
    ("/api/reservations/([^/]+)", "delete"): (401, 404, 204, 204),
    # the earlier system's endpoints do not exist in production
    ("/make_reservation", "post"): (404, 404, 404, 404),
    ("/update_reservation", "post"): (404, 404, 404, 404),
    ("/remove_reservation", "post"): (404, 404, 404, 404),
    # the pages
    ("/", "get"): (200, 200, 200, 200),
    ("/sign-in", "get"): (200, 200, 200, 200),
    ("/sign-in", "post"): (302, 302, 302, 302),
    ("/sign-out", "post"): (302, 302, 302, 302),
    ("/status", "get"): (200, 200, 200, 200),
    ("/books/add", "post"): (SIGN_IN, 403, 403, 302),
    ("/books/([^/]+)", "get"): (200, 200, 200, 200),
    ("/books/([^/]+)/reserve", "post"): (SIGN_IN, 302, 302, 302),  # a free book: anyone signed in may take it
    ("/books/([^/]+)/queue", "post"): (SIGN_IN, 302, 302, 302),  # the owner's book: others join, the owner is told
    ("/books/([^/]+)/leave", "post"): (SIGN_IN, 302, 302, 302),  # nobody waits: a message says so
    ("/books/([^/]+)/hold", "post"): (SIGN_IN, 403, 403, 302),  # the desk's: a hold for the card named
    ("/books/([^/]+)/suspend", "post"): (SIGN_IN, 302, 302, 302),  # nobody waits: a message says so
    ("/books/([^/]+)/resume", "post"): (SIGN_IN, 302, 302, 302),
    ("/books/([^/]+)/collect", "post"): (SIGN_IN, 403, 403, 302),  # the desk's
    ("/books/([^/]+)/return", "post"): (SIGN_IN, 403, 403, 302),
    ("/books/([^/]+)/edit", "post"): (SIGN_IN, 403, 403, 302),
    ("/books/([^/]+)/delete", "post"): (SIGN_IN, 403, 403, 302),
    ("/me", "get"): (SIGN_IN, 200, 200, 200),
    ("/me/pin", "post"): (SIGN_IN, 302, 302, 302),  # one's own PIN: a form without the current one is refused
    ("/reservations", "get"): (SIGN_IN, 403, 403, 200),
    ("/reservations/([^/]+)/cancel", "post"): (SIGN_IN, REFUSED, 302, 302),
    ("/reservations/([^/]+)/move", "post"): (SIGN_IN, REFUSED, 302, 302),
    ("/readers", "get"): (SIGN_IN, 403, 403, 200),
    ("/readers/add", "post"): (SIGN_IN, 403, 403, 302),
    ("/readers/([^/]+)", "get"): (SIGN_IN, 403, 403, 200),
    ("/readers/([^/]+)/edit", "post"): (SIGN_IN, 403, 403, 302),
    ("/readers/([^/]+)/active", "post"): (SIGN_IN, 403, 403, 302),
    ("/readers/([^/]+)/sign-out", "post"): (SIGN_IN, 403, 403, 302),
}
METHODS = ("get", "post", "put", "patch", "delete")


def served_methods() -> list[tuple[str, str]]:
    """Every (route, method) the service answers: the methods each handler implements."""
    found = []
    for pattern, handler in ROUTES:
        for method in METHODS:
            if getattr(handler, method) is not getattr(tornado.web.RequestHandler, method):
                found.append((pattern, method))
    return found


def test_every_route_and_method_has_a_row() -> None:
    assert set(served_methods()) == set(EXPECTED)


@dataclass
class Cell:
    """The data one request works on, made fresh for it."""

    owner: User
    other: User
    librarian: User
    book: uuid.UUID  # held by the owner's reservation
    free_book: uuid.UUID
    reservation: Reservation


@pytest.fixture(scope="module")
async def production_url(library: Library, settings: Settings) -> AsyncIterator[str]:
    """The app in the production setting, in this process, on the tests' keyspace."""
    production = dataclasses.replace(
        settings, environment=PRODUCTION, cookie_secret="matrix-cookie", page_token_secret="matrix-pages"
    )
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(make_app(library, production))
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    await server.close_all_connections()


async def new_cell(library: Library, *, owner_pin: bool = False) -> Cell:
    """Fresh data; only a cell that signs the owner in with a PIN pays for hashing one (argon2 takes tens of ms)."""
    word = uuid.uuid4().hex[:8]
    book = await library.create_book(f"Matrix {word}", "M. Author", "Matrix", 2000)
    free = await library.create_book(f"Free {word}", "M. Author", "Matrix", 2000)
    owner = await new_account(library, name="Owen Owner", pin=PIN if owner_pin else None)
    other = await new_account(library, name="Otto Other", pin=None)
    librarian = await new_account(library, Role.LIBRARIAN, name="Libby Librarian", pin=None)
    reservation = await library.reserve(book.book_id, owner.user_id)
    return Cell(owner, other, librarian, book.book_id, free.book_id, reservation)


def concrete(pattern: str, cell: Cell) -> str:
    """The route with its path argument filled in: the owner's card, reservation, or the held book (edits) / the free
    book (reserve, delete)."""
    if "([^/]+)" not in pattern:
        return pattern
    if pattern.startswith(("/api/users", "/readers")):
        value = str(cell.owner.user_id)
    elif pattern.startswith(("/api/reservations", "/reservations")):
        value = str(cell.reservation.reservation_id)
    elif pattern.endswith(("/reserve", "/delete")) or pattern == "/api/books/([^/]+)":
        value = str(cell.free_book)
    else:
        value = str(cell.book)
    return pattern.replace("([^/]+)", value)


def body_for(pattern: str, method: str, cell: Cell) -> dict[str, Any] | None:
    """A valid request body for the route, naming the owner where a reader is named."""
    book = {"title": "Matrix Book", "author": "M. Author", "genre": "Matrix", "published_year": 2001}
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("/api/books", "post"): book,
        ("/api/books/([^/]+)", "put"): book,
        ("/api/books/([^/]+)", "patch"): {"genre": "Patched"},
        ("/api/session", "post"): {"user_id": cell.owner.user_id, "pin": PIN},
        ("/api/users", "post"): {"name": "New Reader", "email": "new@example.org"},
        ("/api/users/([^/]+)", "put"): {"name": "Owen Owner", "email": "owen@example.org"},
        ("/api/users/([^/]+)", "patch"): {"name": "Owen Owner"},
        ("/api/reservations", "post"): {"book_id": str(cell.free_book), "user_id": cell.owner.user_id},
        ("/api/reservations/([^/]+)", "patch"): {"user_id": cell.owner.user_id},
        ("/api/books/([^/]+)/queue", "post"): {},
        ("/api/books/([^/]+)/queue/suspension", "put"): {"until": (date.today() + timedelta(days=5)).isoformat()},
        ("/make_reservation", "post"): {"book_id": str(cell.free_book), "user_id": cell.owner.user_id},
        ("/update_reservation", "post"): {"book_id": str(cell.book), "user_id": cell.owner.user_id},
        ("/remove_reservation", "post"): {"book_id": str(cell.book), "user_id": cell.owner.user_id},
    }
    forms: dict[str, dict[str, str]] = {
        "/sign-in": {"card": str(cell.owner.user_id), "pin": PIN},
        "/books/add": {"title": "Matrix Book", "author": "M. Author", "genre": "Matrix"},
        "/books/([^/]+)/edit": {"title": "Matrix Book", "author": "M. Author", "genre": "Edited"},
        "/books/([^/]+)/hold": {"card": str(cell.other.user_id)},
        "/books/([^/]+)/suspend": {"until": (date.today() + timedelta(days=5)).isoformat()},
        "/readers/add": {"name": "New Reader", "email": "new@example.org", "pin": "1234"},
        "/readers/([^/]+)/edit": {"name": "Owen Owner", "email": "owen@example.org"},
        "/readers/([^/]+)/active": {"active": "no"},
    }
    if pattern.startswith("/api/") or pattern.endswith("_reservation"):
        return bodies.get((pattern, method))
    if method == "post":
        return {"_xsrf": XSRF, "next": "/", **forms.get(pattern, {})}
    return None


async def credentials(library: Library, cell: Cell, who: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, cookies) of a caller: a fresh bearer token for the API and a fresh session cookie for the pages."""
    user = {"other": cell.other, "owner": cell.owner, "librarian": cell.librarian}.get(who)
    cookies = {"_xsrf": XSRF}
    if user is None:
        return {}, cookies
    token = await library.issue_session(Caller(user.user_id, user.role, user.name))
    signed = tornado.web.create_signed_value("matrix-cookie", SESSION_COOKIE, token).decode()
    return bearer(token), {**cookies, SESSION_COOKIE: signed}


async def held(library: Library, reservation: Reservation) -> Reservation | None:
    try:
        return await library.get_reservation(reservation.reservation_id)
    except NotFound:
        return None


@pytest.mark.parametrize(("pattern", "method"), sorted(EXPECTED), ids=[f"{m.upper()} {p}" for p, m in sorted(EXPECTED)])
async def test_the_matrix(production_url: str, library: Library, pattern: str, method: str) -> None:
    for who, expected in zip(WHO, EXPECTED[(pattern, method)], strict=True):
        cell = await new_cell(library, owner_pin=pattern in ("/api/session", "/sign-in"))
        headers, cookies = await credentials(library, cell, who)
        path = concrete(pattern, cell)
        body = body_for(pattern, method, cell)
        params = {"user_id": str(cell.owner.user_id)} if (pattern, method) == ("/api/reservations", "get") else None
        is_api = pattern.startswith("/api/") or pattern.endswith(("_reservation", "health", "openapi.json"))
        kw: dict[str, Any] = {"json": body} if is_api else {"data": body}
        async with aiohttp.ClientSession(base_url=production_url, cookies=cookies) as http:
            request_headers = {**headers, **({} if is_api else {"Accept": "text/html"})}
            async with http.request(
                method.upper(), path, params=params, headers=request_headers, allow_redirects=False, **kw
            ) as response:
                text = await response.text()
                status, location = response.status, response.headers.get("Location", "")
        what = f"{method.upper()} {path} as {who}: {status} {location} {text[:200]}"
        if expected == SIGN_IN:
            assert status == 302 and location.startswith("/sign-in"), what
        elif expected == REFUSED:
            assert status == 302, what
            now = await held(library, cell.reservation)
            assert now == cell.reservation, f"{what}: the owner's reservation changed"
        else:
            assert status == expected, what
        if status in (401, 403, 404) or expected in (SIGN_IN, REFUSED):
            # A refusal reveals nothing of the owner's: not their e-mail, and their reservation is untouched.
            assert cell.owner.email not in text, what
            assert await held(library, cell.reservation) == cell.reservation, what
        if status == 401:
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), what


async def test_a_book_page_names_its_holder_only_to_staff(production_url: str, library: Library) -> None:
    cell = await new_cell(library)
    for who in WHO:
        headers, cookies = await credentials(library, cell, who)
        async with (
            aiohttp.ClientSession(base_url=production_url, cookies=cookies) as http,
            http.get(f"/books/{cell.book}", headers={"Accept": "text/html"}) as response,
        ):
            page = await response.text()
        named = cell.owner.name in page or re.search(rf"card {cell.owner.user_id}\b", page) is not None
        if who in ("anonymous", "other"):
            assert not named, f"{who} sees who holds the book"
        if who == "librarian":
            assert named, "the librarian does not see who holds the book"


# -- the rows of issue 20: a deleted card, a reused card number, a locked card, a surrogate PIN ---------------------
STALE = ("deleted librarian", "reused card number")


def is_api(pattern: str) -> bool:
    return pattern.startswith("/api/") or pattern.endswith(("_reservation", "health", "openapi.json"))


@pytest.mark.parametrize(("pattern", "method"), sorted(EXPECTED), ids=[f"{m.upper()} {p}" for p, m in sorted(EXPECTED)])
async def test_a_deleted_or_reused_cards_credentials_sign_nobody_in(
    production_url: str, library: Library, pattern: str, method: str
) -> None:
    """The credentials of a deleted librarian, and of a reader whose card number was handed to a new reader, on every
    route: the API answers 401 (a stale token is a 401 whatever the endpoint), a page answers as to anybody. The
    cards are deleted in the repository without revoking their sessions: the session's binding to the card's
    generation alone must refuse them."""
    anonymous = EXPECTED[(pattern, method)][0]
    for who in STALE:
        cell = await new_cell(library, owner_pin=pattern in ("/api/session", "/sign-in"))
        stale = "librarian" if who == "deleted librarian" else "other"
        headers, cookies = await credentials(library, cell, stale)
        gone = cell.librarian if stale == "librarian" else cell.other
        await library.delete_user(gone.user_id)
        if who == "reused card number":
            await library.create_user("Nora Newholder", "nora@example.org", gone.user_id)
        path, body = concrete(pattern, cell), body_for(pattern, method, cell)
        kw: dict[str, Any] = {"json": body} if is_api(pattern) else {"data": body}
        async with (
            aiohttp.ClientSession(base_url=production_url, cookies=cookies) as http,
            http.request(
                method.upper(),
                path,
                headers={**headers, **({} if is_api(pattern) else {"Accept": "text/html"})},
                allow_redirects=False,
                **kw,
            ) as response,
        ):
            text = await response.text()
            status, location = response.status, response.headers.get("Location", "")
        what = f"{method.upper()} {path} as a {who}: {status} {location} {text[:200]}"
        if pattern.endswith("_reservation"):
            assert status == anonymous, what  # the earlier system's endpoints do not exist in production
        elif is_api(pattern):
            assert status == 401, what
        elif anonymous == SIGN_IN:
            assert status == 302 and location.startswith("/sign-in"), what
        else:
            assert status == anonymous or (status == 302 and anonymous in (302, REFUSED)), what
        assert "Nora" not in text and cell.owner.email not in text, what
        assert await held(library, cell.reservation) == cell.reservation, what


async def test_a_locked_card_refuses_strangers_but_not_its_holders_device(
    production_url: str, library: Library
) -> None:
    cell = await new_cell(library, owner_pin=True)
    card = cell.owner.user_id
    async with aiohttp.ClientSession(base_url=production_url) as http:
        async with http.post("/api/session", json={"user_id": card, "pin": PIN}) as response:
            device = (await response.json())["device"]
        for i in range(5):
            async with http.post("/api/session", json={"user_id": card, "pin": f"wrong{i}"}) as response:
                assert response.status == 401
        async with http.post("/api/session", json={"user_id": card, "pin": PIN}) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) > 0
        form = {"_xsrf": XSRF, "card": str(card), "pin": PIN, "next": "/"}
        async with http.post("/sign-in", data=form, cookies={"_xsrf": XSRF}, allow_redirects=False) as response:
            assert response.status == 429 and "librarian can set a new PIN" in await response.text()
        async with http.post("/api/session", json={"user_id": card, "pin": PIN, "device": device}) as response:
            assert response.status == 201
        cookies = {"_xsrf": XSRF, f"device-{card}": device}
        async with http.post("/sign-in", data=form, cookies=cookies, allow_redirects=False) as response:
            assert response.status == 302


async def test_a_surrogate_pin_is_a_400_at_every_door(production_url: str, library: Library) -> None:
    cell = await new_cell(library, owner_pin=True)
    headers, cookies = await credentials(library, cell, "owner")
    json_headers = {"Content-Type": "application/json"}
    lone = "\\ud800"
    async with aiohttp.ClientSession(base_url=production_url, cookies=cookies) as http:
        for card in (cell.owner.user_id, 2_000_000_000):
            body = f'{{"user_id": {card}, "pin": "{lone}"}}'.encode()
            async with http.post("/api/session", data=body, headers=json_headers) as response:
                assert response.status == 400 and (await response.json())["field"] == "pin"
        body = f'{{"pin": "{PIN}", "current_pin": "{lone}"}}'.encode()
        async with http.patch(
            f"/api/users/{cell.owner.user_id}", data=body, headers={**json_headers, **headers}
        ) as response:
            assert response.status == 400 and (await response.json())["field"] == "current_pin"
        # A form cannot spell a surrogate at all: its UTF-8 bytes do not decode, which is a 400 too.
        form_headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
        for path, form in (
            ("/sign-in", f"_xsrf={XSRF}&card={cell.owner.user_id}&pin=%ED%A0%80"),
            ("/me/pin", f"_xsrf={XSRF}&current_pin=%ED%A0%80&pin=12345&pin_again=12345"),
        ):
            async with http.post(path, data=form, headers=form_headers, allow_redirects=False) as response:
                assert response.status == 400, (path, await response.text())
