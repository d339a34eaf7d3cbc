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
from app.models import Role, TooManyAttempts, Unauthenticated, User
from app.repository import Library
from app.rules import MAX_FAILED_SIGN_INS
from app.settings import Settings
from toolkit.cli import bearer

KEYSPACE = "test_sign_in"
# Seconds: long enough for the wrong PINs a test sends to fall within one window even on a loaded machine (each is an
# argon2 check; at a load of 12 to 18 on two cores, five of them took longer than 6 s, so the card never locked),
# short enough to wait for its end.
LOCKOUT = 20
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


async def sign_in(
    http: aiohttp.ClientSession, url: str, card: int, pin: str, device: str | None = None
) -> tuple[int, dict[str, Any], Any]:
    body = {"user_id": card, "pin": pin, **({"device": device} if device else {})}
    async with http.post(f"{url}/api/session", json=body) as response:
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


async def test_hammering_a_locked_card_writes_nothing(library_and_instances: Any) -> None:
    """A pool is read newest first, so a row and a tombstone per refused attempt would pile up where every read of it
    starts: a stranger hammering a locked card would slow each sign-in to it and, at Cassandra's tombstone limit, make
    the card's sign-in and the readers list fail. So an attempt at a locked pool is refused before it writes."""
    library, _ = library_and_instances
    user = await reader(library, 3_100_020)
    for i in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(Unauthenticated):
            await library.sign_in(user.user_id, f"guess{i}")
    written: list[str] = []
    execute = library.db.execute

    async def recording(statement: Any, params: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("write"):
            written.append(str(statement))
        return await execute(statement, params, **kwargs)

    library.db.execute = recording  # type: ignore[method-assign]
    try:
        for _ in range(10):
            with pytest.raises(TooManyAttempts):
                await library.sign_in(user.user_id, PIN)
    finally:
        del library.db.execute
    assert written == [], written


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
        # Told so after the right PIN only: a wrong one gets the usual answer, so a guesser learns nothing.
        status, body, _ = await sign_in(http, a, user.user_id, "0000")
        assert (
            status == 401 and body["error"].startswith("the card number or PIN is wrong") and "deactivated" not in body
        )
        status, body, _ = await sign_in(http, a, user.user_id, PIN)
        assert status == 401 and body["deactivated"] is True and "deactivated" in body["error"], body
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


async def test_a_stranger_who_locked_sign_in_cannot_keep_the_holder_from_changing_the_pin(
    library_and_instances: Any,
) -> None:
    """The holder, signed in, changes the PIN they fear is being guessed: the current PIN they type counts in a pool of
    the card's sessions, not in the unknown clients' pool that a stranger's guesses have used up."""
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_009)
    async with aiohttp.ClientSession() as http:
        _, session, _ = await sign_in(http, a, user.user_id, PIN)
        for i in range(MAX_FAILED_SIGN_INS):
            assert (await sign_in(http, b, user.user_id, f"guess{i}"))[0] == 401
        assert (await sign_in(http, b, user.user_id, PIN))[0] == 429
        url = f"{a}/api/users/{user.user_id}"
        async with http.patch(
            url, json={"pin": "8642-new", "current_pin": PIN}, headers=bearer(session["token"])
        ) as response:
            assert response.status == 200, await response.text()
        # The new PIN lifted the stranger's lock too.
        assert (await sign_in(http, b, user.user_id, "8642-new"))[0] == 201


async def test_the_development_secrets_are_random_shared_by_the_instances_and_kept(library_and_instances: Any) -> None:
    """Without PAGE_TOKEN_SECRET and COOKIE_SECRET, the instances take random secrets from the keyspace: a page token
    and a device token from one instance open on the other, and a racing claim of a new secret gets the winner's."""
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_021)
    async with aiohttp.ClientSession() as http:
        _, staff, _ = await sign_in(http, a, user.user_id, PIN)
        async with http.get(f"{a}/api/books?page_size=1", headers=bearer(staff["token"])) as response:
            token = response.headers.get("X-Next-Page")
        if token is None:  # fewer than two books: make them
            for i in range(2):
                await library.create_book(f"Secret {i}", "Author", "Fiction", 2000)
            async with http.get(f"{a}/api/books?page_size=1") as response:
                token = response.headers["X-Next-Page"]
        async with http.get(f"{b}/api/books", params={"page_size": "1", "page": token}) as response:
            assert response.status == 200, await response.text()
        # The device token from instance a keeps the holder's pool on instance b: same device back.
        status, body, _ = await sign_in(http, b, user.user_id, PIN, staff["device"])
        assert status == 201 and body["device"] == staff["device"], body
    made = await asyncio.gather(*(library.shared_secrets.secret("review-race") for _ in range(4)))
    assert len(set(made)) == 1 and len(made[0]) == 64, made
    assert await library.shared_secrets.secret("page_tokens") != await library.shared_secrets.secret("cookies")


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


async def test_a_stranger_cannot_keep_the_holder_out_and_a_new_pin_lifts_the_lock(library_and_instances: Any) -> None:
    """The throttle of app/repository/accounts.py: a stranger's wrong PINs lock the card for every client it does not
    know, with a warning before the last try, but the holder signs in on a device they have signed in on before; the
    staff see the lock and when it ends, and a librarian's new PIN lifts it."""
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_010)
    librarian = await reader(library, 3_100_011, Role.LIBRARIAN)
    async with aiohttp.ClientSession() as http:
        status, first, _ = await sign_in(http, a, user.user_id, PIN)
        assert status == 201 and first["device"]
        device = first["device"]
        lefts = []
        for i in range(MAX_FAILED_SIGN_INS):
            status, body, _ = await sign_in(http, (a, b)[i % 2], user.user_id, f"guess{i}")
            assert status == 401
            lefts.append(body["attempts_left"])
        assert lefts == list(range(MAX_FAILED_SIGN_INS - 1, -1, -1)), lefts
        status, body, _ = await sign_in(http, a, user.user_id, PIN)  # the right PIN, from an unknown client
        assert status == 429, body
        assert await library.sign_in_lock(user.user_id) is not None
        # The holder, on the device they used before, on either instance: in, while the stranger stays locked out.
        for url in (a, b):
            status, body, _ = await sign_in(http, url, user.user_id, PIN, device)
            assert status == 201 and body["device"] == device, body
        assert (await sign_in(http, b, user.user_id, "guess-again"))[0] == 429
        # A device token is the card's own: it does not open another card's pool.
        other = await reader(library, 3_100_012)
        for i in range(MAX_FAILED_SIGN_INS):
            await sign_in(http, a, other.user_id, f"guess{i}", device)
        assert (await sign_in(http, a, other.user_id, PIN, device))[0] == 429
        # A librarian's new PIN lifts the lock, on every instance.
        _, staff, _ = await sign_in(http, b, librarian.user_id, PIN)
        async with http.patch(
            f"{a}/api/users/{user.user_id}", json={"pin": "9753-new"}, headers=bearer(staff["token"])
        ) as response:
            assert response.status == 200
        assert await library.sign_in_lock(user.user_id) is None
        assert (await sign_in(http, b, user.user_id, "9753-new"))[0] == 201


async def test_the_holders_sign_in_from_an_unknown_client_gives_a_stranger_no_fresh_guesses(
    library_and_instances: Any,
) -> None:
    """The holder signing in without a device token takes back only their own attempt: the stranger's wrong PINs in
    the unknown clients' pool still count, so the stranger has one try left, not a fresh five."""
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_030)
    async with aiohttp.ClientSession() as http:
        for i in range(MAX_FAILED_SIGN_INS - 1):
            assert (await sign_in(http, (a, b)[i % 2], user.user_id, f"guess{i}"))[0] == 401
        status, _, _ = await sign_in(http, b, user.user_id, PIN)  # the holder, from a client the card does not know
        assert status == 201
        status, body, _ = await sign_in(http, a, user.user_id, "guess-last")
        assert status == 401 and body["attempts_left"] == 0, body
        assert (await sign_in(http, b, user.user_id, "guess-more"))[0] == 429


async def test_the_warning_comes_before_the_last_try(library_and_instances: Any) -> None:
    library, (a, _) = library_and_instances
    user = await reader(library, 3_100_013)
    async with aiohttp.ClientSession() as http:
        for i in range(MAX_FAILED_SIGN_INS):
            status, body, _ = await sign_in(http, a, user.user_id, f"guess{i}")
            warned = "one more wrong PIN" in body["error"]
            assert status == 401 and warned == (i == MAX_FAILED_SIGN_INS - 2), (i, body)


async def test_a_deleted_cards_sessions_end_and_a_reused_number_inherits_nothing(library_and_instances: Any) -> None:
    """Delete a librarian: their token is a 401 on every instance, at once. Delete a reader and hand the number to
    a new reader: the old token is a 401 everywhere, and never reads or acts as the new holder."""
    library, (a, b) = library_and_instances
    librarian = await reader(library, 3_100_014, Role.LIBRARIAN)
    boss = await reader(library, 3_100_015, Role.LIBRARIAN)
    old = await reader(library, 3_100_016)
    async with aiohttp.ClientSession() as http:
        _, staff, _ = await sign_in(http, a, librarian.user_id, PIN)
        _, boss_session, _ = await sign_in(http, b, boss.user_id, PIN)
        _, reader_session, _ = await sign_in(http, a, old.user_id, PIN)
        for url in (a, b):
            async with http.get(f"{url}/api/users", headers=bearer(staff["token"])) as response:
                assert response.status == 200
        async with http.delete(f"{b}/api/users/{librarian.user_id}", headers=bearer(boss_session["token"])) as r:
            assert r.status == 204
        for url in (a, b):
            for method, path in (("GET", "/api/users"), ("POST", "/api/books"), ("GET", "/api/session")):
                async with http.request(method, f"{url}{path}", json={}, headers=bearer(staff["token"])) as r:
                    assert r.status == 401, (url, method, path)
        # The reader's card is deleted and its number handed to a new reader.
        async with http.delete(f"{a}/api/users/{old.user_id}", headers=bearer(boss_session["token"])) as r:
            assert r.status == 204
        new = await library.create_user("Nina New", "nina@example.org", old.user_id, pin="1357-nina")
        assert new.generation != old.generation
        for url in (a, b):
            for method, path in (
                ("GET", "/api/session"),
                ("GET", f"/api/users/{old.user_id}"),
                ("GET", "/api/reservations"),
                ("POST", "/api/reservations"),
            ):
                async with http.request(method, f"{url}{path}", json={}, headers=bearer(reader_session["token"])) as r:
                    text = await r.text()
                    assert r.status == 401 and "nina" not in text.lower(), (url, method, path, text)
        # The old holder's device counts as a stranger for the new card, and the old PIN does not sign in.
        assert (await sign_in(http, a, old.user_id, PIN, reader_session["device"]))[0] == 401
        assert (await sign_in(http, b, old.user_id, "1357-nina"))[0] == 201


async def test_a_surrogate_in_a_pin_is_a_400(library_and_instances: Any) -> None:
    library, (a, b) = library_and_instances
    user = await reader(library, 3_100_017)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for card in (user.user_id, 3_100_018):  # a card that exists, and one that does not
            for pin in ('"\\ud800"', '"12\\udfff34"'):
                body = f'{{"user_id": {card}, "pin": {pin}}}'.encode()
                async with http.post(f"{a}/api/session", data=body, headers=headers) as response:
                    answer = await response.json()
                    assert response.status == 400 and answer["field"] == "pin", answer
        _, session, _ = await sign_in(http, b, user.user_id, PIN)
        for field in ("current_pin", "pin"):
            other = "current_pin" if field == "pin" else "pin"
            body = f'{{"{field}": "\\ud800", "{other}": "{PIN}"}}'.encode()
            async with http.patch(
                f"{a}/api/users/{user.user_id}", data=body, headers={**headers, **bearer(session["token"])}
            ) as response:
                answer = await response.json()
                assert response.status == 400 and answer["field"] == field, answer
        assert (await sign_in(http, a, user.user_id, PIN))[0] == 201  # no attempt was counted against the card
