"""CSRF on every form of the UI, over plain HTTP (aiohttp) against the app on real Cassandra.

The forms are not listed by hand: the test renders the pages a signed-in reader and a signed-in librarian see
(the catalogue, in "change book" mode too, a free and a held book's page, "My reservations", the readers, a
reader's page, all reservations, signing in) and collects every `<form method="post">` on them. Each must carry
the hidden `_xsrf` field; each, posted with the session cookie but without `_xsrf` (or with a forged one), is
refused with 403 and changes nothing. The forms found are cross-checked against ROUTES: every page route whose
handler declares a "post" access has a form on some page, so a new form's route cannot be left out."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from integration.ui_support import PIN, new_account, sign_in

from app.models import Role, User
from app.repository import Library
from app.web import ROUTES, pages

XSRF_FIELD = "_xsrf"


@dataclass
class Form:
    page: str  # the page it was found on
    action: str
    fields: dict[str, str] = field(default_factory=dict)  # every named input, select and textarea, as rendered
    hidden: set[str] = field(default_factory=set)


class _Forms(HTMLParser):
    """The post forms of one page: action, fields (value as rendered; a select's first option) and hidden ones."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.forms: list[Form] = []
        self._open: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            method = a.get("method", "get").lower()
            self._open = Form(self.page, a.get("action", "")) if method == "post" else None
            if self._open is not None:
                self.forms.append(self._open)
        elif self._open is not None and tag in ("input", "textarea", "select", "button") and a.get("name"):
            if tag == "select":
                self._select = a["name"]
                return
            self._open.fields[a["name"]] = a.get("value", "")
            if tag == "input" and a.get("type", "text").lower() == "hidden":
                self._open.hidden.add(a["name"])
        elif self._open is not None and tag == "option" and self._select is not None:
            self._open.fields.setdefault(self._select, a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None
        elif tag == "select":
            self._select = None


async def post_forms_on(http: aiohttp.ClientSession, path: str) -> list[Form]:
    async with http.get(path, allow_redirects=False) as response:
        body = await response.text()
        assert response.status == 200, (path, response.status, body[:500])
    parser = _Forms(path)
    parser.feed(body)
    return parser.forms


def form_routes() -> list[tuple[str, type[Any]]]:
    """The UI's routes that take a form post: a page handler whose ACCESS declares "post"."""
    return [
        (pattern, handler)
        for pattern, handler in ROUTES
        if isinstance(handler, type) and issubclass(handler, pages.PageHandler) and "post" in handler.ACCESS
    ]


@dataclass
class Scene:
    word: str
    reader: User
    librarian: User
    free_book_id: uuid.UUID
    held_book_id: uuid.UUID
    reservation_id: uuid.UUID
    others_book_id: uuid.UUID  # held by the librarian: the reader may join its queue
    lent_book_id: uuid.UUID  # collected by the reader: on loan (the desk's "Mark returned")


@pytest.fixture
async def scene(library: Library) -> Scene:
    """A reader holding one book, a free book beside it, and a librarian who waits in the queue of the reader's book
    and holds a third (so the pages show the forms to join a queue and to leave one)."""
    word = "Forged" + uuid.uuid4().hex[:6]
    held = await library.create_book(f"{word} Ledger", "Cyra Forge", "Mystery", 1950)
    free = await library.create_book(f"{word} Almanac", "Cyra Forge", "Mystery", 1951)
    reader = await new_account(library, Role.READER, f"Ciro Reader {word[-6:]}")
    librarian = await new_account(library, Role.LIBRARIAN, f"Cleo Librarian {word[-6:]}")
    reservation = await library.reserve(held.book_id, reader.user_id)
    others = await library.create_book(f"{word} Annals", "Cyra Forge", "Mystery", 1952)
    await library.reserve(others.book_id, librarian.user_id)
    await library.join(held.book_id, librarian.user_id)
    lent = await library.create_book(f"{word} Codex", "Cyra Forge", "Mystery", 1953)
    await library.reserve(lent.book_id, reader.user_id)
    await library.lend(lent.book_id)
    away = await library.create_book(f"{word} Gazette", "Cyra Forge", "Mystery", 1954)
    await library.reserve(away.book_id, librarian.user_id)
    await library.join(away.book_id, reader.user_id)  # a place the reader suspends: "Resume my place" on /me
    await library.suspend(away.book_id, reader.user_id, datetime.now(UTC) + timedelta(days=3))
    ids = (free.book_id, held.book_id, reservation.reservation_id, others.book_id, lent.book_id)
    return Scene(word, reader, librarian, *ids)


@pytest.fixture
async def clients(web_url: str, library: Library, scene: Scene) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """The reader and the librarian, each signed in to the UI with its own cookie jar (unsafe: keep the cookies
    of a server named by its IP address, 127.0.0.1)."""
    reader = aiohttp.ClientSession(base_url=web_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    librarian = aiohttp.ClientSession(base_url=web_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with reader, librarian:
        await sign_in(reader, scene.reader)
        await sign_in(librarian, scene.librarian)
        yield {"reader": reader, "librarian": librarian}


def pages_to_walk(scene: Scene) -> dict[str, list[str]]:
    q = quote(scene.word)
    book_pages = [f"/books/{scene.free_book_id}", f"/books/{scene.held_book_id}"]
    return {
        "reader": [
            "/",
            f"/?q={q}",
            f"/?q={q}&move={scene.reservation_id}",
            *book_pages,
            f"/books/{scene.others_book_id}",
            "/me",
            "/sign-in",
        ],
        "librarian": [
            "/",
            f"/?q={q}",
            *book_pages,
            f"/books/{scene.lent_book_id}",
            "/me",
            "/readers",
            f"/readers/{scene.reader.user_id}",
            "/reservations",
            f"/reservations?reader={scene.reader.user_id}",
            f"/reservations?book={scene.held_book_id}",
            f"/reservations?book={scene.word}",
            "/sign-in",
        ],
    }


async def state(library: Library, http: dict[str, aiohttp.ClientSession], scene: Scene) -> dict[str, Any]:
    """What any of the forms could change: the books, the reader's reservations, both cards, the desk log, the
    books named like the test's (a book added), and whether both are still signed in."""
    signed_in = {}
    for who, client in http.items():
        async with client.get("/me", allow_redirects=False) as response:
            signed_in[who] = (response.status, "Sign out" in await response.text())
    return {
        "books": [await library.get_book(b) for b in (scene.free_book_id, scene.held_book_id)],
        "named": sorted(b.book_id for b in (await library.list_books(q=scene.word)).items),
        "reservations": (await library.user_reservations(scene.reader.user_id)).items,
        "holder": await library.holder(scene.held_book_id),
        "cards": [await library.get_user(u.user_id) for u in (scene.reader, scene.librarian)],
        "log": await library.staff_actions(limit=500),
        "signed_in": signed_in,
    }


def fill_in(form: Form, scene: Scene) -> dict[str, str]:
    """The form's fields as a person would send them, with new values typed into every visible field (so that the
    post would change something if it were accepted, and the sign-in form would sign in); `_xsrf` left out."""
    typed = {
        "title": f"{scene.word} Planted",
        "author": "Mallory",
        "genre": "Forgery",
        "published_year": "1999",
        "name": "Mallory Planted",
        "email": "mallory@example.org",
        "pin": PIN,
        "card": str(scene.reader.user_id),
    }
    data = {
        name: value if name in form.hidden else typed.get(name, value or "x") for name, value in form.fields.items()
    }
    data.pop(XSRF_FIELD, None)
    return data


async def test_every_form_carries_the_xsrf_token_and_is_refused_without_it(
    library: Library, scene: Scene, clients: dict[str, aiohttp.ClientSession]
) -> None:
    # 1. Every post form of every page each of them sees.
    found: dict[str, list[Form]] = {}
    for who, paths in pages_to_walk(scene).items():
        found[who] = [form for path in paths for form in await post_forms_on(clients[who], path)]

    # 2. Each carries the hidden _xsrf field with a value.
    for who, forms in found.items():
        assert forms, who
        for form in forms:
            assert XSRF_FIELD in form.hidden and form.fields[XSRF_FIELD], (who, form)

    # 3. Together they cover every page route that takes a post, and post to nothing else.
    actions = {urlsplit(f.action).path for forms in found.values() for f in forms}
    for pattern, handler in form_routes():
        assert any(re.fullmatch(pattern, a) for a in actions), (
            f"no page renders a form for {pattern} ({handler.__name__}); walk the page that has it"
        )
    for action in actions:
        assert any(re.fullmatch(p, action) for p, _ in form_routes()), f"a form posts to {action}, no form route"
    # Every distinct form (by who sees it and where it posts; the same form on several pages is posted once).
    to_post: dict[tuple[str, str], Form] = {}
    for who, forms in found.items():
        for form in forms:
            to_post.setdefault((who, form.action), form)

    # 4. Posted with the session cookie (and the _xsrf cookie) but without the field, or with a forged one: 403,
    # and nothing changed.
    before = await state(library, clients, scene)
    assert before["signed_in"] == {"reader": (200, True), "librarian": (200, True)}
    assert before["holder"] is not None and before["holder"].user_id == scene.reader.user_id
    refused = []
    for (who, _action), form in sorted(to_post.items()):
        http = clients[who]
        assert any(c.key == "session" for c in http.cookie_jar), who
        data = fill_in(form, scene)
        for sent in (data, {**data, XSRF_FIELD: "2|00000000|" + "0" * 32 + "|1700000000"}):
            async with http.post(form.action, data=sent, allow_redirects=False) as response:
                body = await response.text()
                assert response.status == 403, (who, form.page, form.action, response.status, body[:300])
                assert "XSRF" in body or "_xsrf" in body, body  # refused for the token, not for who they are
                assert "session" not in response.cookies, (who, form.action)  # no session started or ended
        refused.append((who, form.action))
    after = await state(library, clients, scene)
    assert after == before, refused
    assert len(refused) >= len(form_routes())

    # 5. The same form with its _xsrf field works: the check refuses the missing token, not the form.
    reserve = next(f for f in found["reader"] if f.action == f"/books/{scene.free_book_id}/reserve")
    async with clients["reader"].post(reserve.action, data=reserve.fields, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
    held = await library.holder(scene.free_book_id)
    assert held is not None and held.user_id == scene.reader.user_id
    await library.take_back(scene.lent_book_id)  # a loan ends at the desk, never by the reader's cancel
    for reservation in (await library.user_reservations(scene.reader.user_id)).items:
        await library.cancel(reservation.reservation_id, scene.reader.user_id)
