"""Signing in to the UI as a browser does, for the tests that drive its forms over HTTP (tests/integration/ is
on the path through the root conftest's tests/ folder: `from integration.ui_support import ...`)."""

from __future__ import annotations

import uuid

import aiohttp
from integration.cards import chosen_cards

from app.models import Role, User
from app.repository import Library

# Cards for the tests' UI accounts: their own range, clear of the cards the other tests choose.
_cards = chosen_cards(700_000 + uuid.uuid4().int % 50_000)
PIN = "test-pin-1234567"  # long enough for a librarian's password too


async def new_account(
    library: Library, role: Role = Role.READER, name: str = "Una Reader", pin: str | None = PIN
) -> User:
    """A card that can sign in with `pin` (None: no PIN, for a test that issues its sessions directly)."""
    email = f"{name.split()[0].lower()}.{uuid.uuid4().hex[:6]}@example.org"
    return await library.create_user(name, email, next(_cards), role=role, pin=pin)


async def xsrf(http: aiohttp.ClientSession) -> str:
    """The UI's XSRF token, as a browser gets it from any page."""
    async with http.get("/sign-in") as response:
        assert response.status == 200
        if "_xsrf" in response.cookies:
            return response.cookies["_xsrf"].value
    return next(c.value for c in http.cookie_jar if c.key == "_xsrf")


async def sign_in(http: aiohttp.ClientSession, user: User, pin: str = PIN) -> None:
    """The sign-in form, posted; the session cookie stays in `http`'s cookie jar (which must keep cookies of
    127.0.0.1: aiohttp.CookieJar(unsafe=True))."""
    form = {"_xsrf": await xsrf(http), "card": str(user.user_id), "pin": pin}
    async with http.post("/sign-in", data=form, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
