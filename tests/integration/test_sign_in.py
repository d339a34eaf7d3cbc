"""Signing in against two app instances (`python -m app` processes on one keyspace), as behind a load balancer:
the lockout counts the attempts made on both, a token issued by one works on the other, and signing out or a
revoke on one ends it on both. Tokens that are forged, expired or revoked are refused with 401."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from tool_support import fresh_keyspace

from app.access import Caller
from app.models import Role, User
from app.repository import Library
from app.rules import MAX_FAILED_SIGN_INS
from app.settings import Settings
from toolkit.cli import bearer

KEYSPACE = "test_sign_in"
LOCKOUT = 6  # seconds: long enough to try every instance within it, short enough to wait for its end
PIN = "2468-right"


@pytest.fixture(scope="module")
async def library_and_instances(settings: Settings, spawn_app: Callable[..., str]) -> Any:
    own = dataclasses.replace(settings, keyspace=KEYSPACE)
    db = await fresh_keyspace(own, KEYSPACE)
    env = {"SIGN_IN_LOCKOUT_SECONDS": str(LOCKOUT)}
    instances = [spawn_app(KEYSPACE, extra_env=env), spawn_app(KEYSPACE, extra_env=env)]
    yield Library(db), instances
    db.close()


async def reader(library: Library, card: int, role: Role = Role.READER) -> User:
    return await library.create_user("Sam Signer", f"sam{card}@example.org", card, role=role, pin=PIN)


async def sign_in(http: aiohttp.ClientSession, url: str, card: int, pin: str) -> tuple[int, dict[str, Any], Any]:
    async with http.post(f"{url}/api/session", json={"user_id": card, "pin": pin}) as response:
        return response.status, await response.json(), response.headers


async def whoami(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(f"{url}/api/session", headers=bearer(token)) as response:
        return response.status


async def test_wrong_pins_lock_the_card_on_every_instance_and_the_lock_ends(library_and_instances: Any) -> None:
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_001)
    nobody = 3_100_002  # no such card
    async with aiohttp.ClientSession() as http:
        # A wrong PIN and an unknown card get the same answer.
        wrong = await sign_in(http, a, user.user_id, "0000")
        unknown = await sign_in(http, a, nobody, "0000")
        assert wrong[0] == unknown[0] == 401 and wrong[1] == unknown[1], (wrong, unknown)
        # The rest of the wrong PINs alternate between the instances.
        for i in range(1, MAX_FAILED_SIGN_INS):
            status, _, _ = await sign_in(http, (a, b)[i % 2], user.user_id, "0000")
            assert status == 401
        for i in range(1, MAX_FAILED_SIGN_INS):
            await sign_in(http, (a, b)[i % 2], nobody, "0000")
        # Locked on both instances, the right PIN too; an unknown card is "locked" in the same words.
        locked_at = time.monotonic()
        for url in (a, b):
            status, body, headers = await sign_in(http, url, user.user_id, PIN)
            assert status == 429 and "try again" in body["error"], body
            assert 0 < int(headers["Retry-After"]) <= LOCKOUT
        status, unknown_body, _ = await sign_in(http, b, nobody, PIN)
        assert status == 429 and unknown_body["error"] == body["error"]
        # The lock ends when the attempts expire; the right PIN then works, on either instance.
        await asyncio.sleep(max(0.0, LOCKOUT + 1 - (time.monotonic() - locked_at)))
        status, session, _ = await sign_in(http, b, user.user_id, PIN)
        assert status == 201, session
        assert await whoami(http, a, session["token"]) == 200


async def test_many_guesses_at_once_on_two_instances_check_at_most_the_limit(library_and_instances: Any) -> None:
    """The argument of app/repository/accounts.py: every attempt is written before it is counted, so however many
    are sent at once, to however many instances, at most MAX_FAILED_SIGN_INS are checked against the PIN (401);
    the rest are refused unchecked (429)."""
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_003)
    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(*(sign_in(http, (a, b)[i % 2], user.user_id, f"guess{i}") for i in range(24)))
    statuses = sorted(status for status, _, _ in answers)
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= MAX_FAILED_SIGN_INS, statuses
    assert statuses.count(429) >= 24 - MAX_FAILED_SIGN_INS


async def test_a_token_works_on_every_instance_until_signed_out_or_revoked(library_and_instances: Any) -> None:
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_004)
    librarian = await reader(library, 3_100_005, Role.LIBRARIAN)
    async with aiohttp.ClientSession() as http:
        # Issued by one instance, accepted by the other; signed out on the other, refused by both.
        _, first, _ = await sign_in(http, a, user.user_id, PIN)
        assert await whoami(http, b, first["token"]) == 200
        async with http.delete(f"{b}/api/session", headers=bearer(first["token"])) as response:
            assert response.status == 204
        assert await whoami(http, a, first["token"]) == 401
        assert await whoami(http, b, first["token"]) == 401

        # A librarian signs the reader out everywhere: both of their tokens stop working.
        tokens = [(await sign_in(http, (a, b)[i], user.user_id, PIN))[1]["token"] for i in range(2)]
        _, staff, _ = await sign_in(http, b, librarian.user_id, PIN)
        async with http.delete(f"{a}/api/users/{user.user_id}/sessions", headers=bearer(staff["token"])) as response:
            assert response.status == 200 and (await response.json())["sessions_ended"] == 2
        for token in tokens:
            for url in (a, b):
                assert await whoami(http, url, token) == 401

        # A deactivated card is signed out and cannot sign in; reactivated, it can.
        _, again, _ = await sign_in(http, a, user.user_id, PIN)
        patch = {"active": False}
        async with http.patch(f"{b}/api/users/{user.user_id}", json=patch, headers=bearer(staff["token"])) as r:
            assert r.status == 200 and (await r.json())["active"] is False
        assert await whoami(http, a, again["token"]) == 401
        status, body, _ = await sign_in(http, a, user.user_id, PIN)
        assert status == 401 and body["error"] == "the card number or PIN is wrong"
        async with http.patch(
            f"{a}/api/users/{user.user_id}", json={"active": True}, headers=bearer(staff["token"])
        ) as r:
            assert r.status == 200
        assert (await sign_in(http, b, user.user_id, PIN))[0] == 201


async def test_forged_and_expired_tokens_are_refused(library_and_instances: Any) -> None:
    library, (a, _) = library_and_instances
    user = await reader(library, 3_100_006)
    async with aiohttp.ClientSession() as http:
        _, session, _ = await sign_in(http, a, user.user_id, PIN)
        token = session["token"]
        forged = [token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43, "", "é" * 10, token + " extra"]
        for bad in forged:
            async with http.get(f"{a}/api/session", headers={"Authorization": f"Bearer {bad}"}) as response:
                assert response.status == 401, bad
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        for header in ("Basic dXNlcjpwYXNz", token, f"Bearer{token}"):
            async with http.get(f"{a}/api/session", headers={"Authorization": header}) as response:
                assert response.status == 401, header
        # Expiry is Cassandra's TTL on the session row: a row written with a one-second TTL is gone a moment later.
        short = await library.issue_session(Caller(user.user_id, user.role, user.name), ttl_seconds=1)
        assert await whoami(http, a, short) == 200
        await asyncio.sleep(2.5)
        assert await whoami(http, a, short) == 401


async def test_a_reader_changes_their_pin_only_with_the_current_one(library_and_instances: Any) -> None:
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_007)
    librarian = await reader(library, 3_100_008, Role.LIBRARIAN)
    async with aiohttp.ClientSession() as http:
        _, session, _ = await sign_in(http, a, user.user_id, PIN)
        mine = bearer(session["token"])
        url = f"{b}/api/users/{user.user_id}"
        async with http.patch(url, json={"pin": "1357-new"}, headers=mine) as response:
            assert response.status == 400 and (await response.json())["field"] == "current_pin"
        async with http.patch(url, json={"pin": "1357-new", "current_pin": "wrong"}, headers=mine) as response:
            assert response.status == 401
        async with http.patch(url, json={"pin": "1357-new", "current_pin": PIN}, headers=mine) as response:
            assert response.status == 200, await response.text()
        assert (await sign_in(http, a, user.user_id, PIN))[0] == 401
        assert (await sign_in(http, a, user.user_id, "1357-new"))[0] == 201
        # At the desk, a librarian sets a new PIN without knowing the old one (a forgotten PIN).
        _, staff, _ = await sign_in(http, b, librarian.user_id, PIN)
        async with http.patch(url, json={"pin": PIN}, headers=bearer(staff["token"])) as response:
            assert response.status == 200
        assert (await sign_in(http, b, user.user_id, PIN))[0] == 201


async def test_the_session_cookie_is_secure_over_tls_behind_a_proxy(library: Library, settings: Settings) -> None:
    """Tornado serves plain HTTP here; behind a TLS-terminating proxy (BEHIND_PROXY=1) the proxy's X-Forwarded-Proto
    says https, and the session cookie is then marked Secure. Without the setting the header is a client's claim
    and changes nothing."""
    from integration.ui_support import PIN as UI_PIN
    from integration.ui_support import new_account, xsrf
    from tornado.netutil import bind_sockets

    from app.web import make_app
    from app.web.guards import http_server

    user = await new_account(library)
    for behind_proxy in (True, False):
        own = dataclasses.replace(settings, behind_proxy=behind_proxy)
        sockets = bind_sockets(0, "127.0.0.1")
        server = http_server(make_app(library, own), own)
        server.add_sockets(sockets)
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        try:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(base_url=url, cookie_jar=jar) as http:
                form = {"_xsrf": await xsrf(http), "card": str(user.user_id), "pin": UI_PIN}
                headers = {"X-Forwarded-Proto": "https"}
                async with http.post("/sign-in", data=form, headers=headers, allow_redirects=False) as response:
                    assert response.status == 302
                    cookie = next(h for h in response.headers.getall("Set-Cookie") if h.startswith("session="))
            flags = {part.strip().lower() for part in cookie.split(";")}
            assert "httponly" in flags and "samesite=lax" in flags
            assert ("secure" in flags) == behind_proxy, cookie
        finally:
            server.stop()
            await server.close_all_connections()
