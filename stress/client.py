"""The stress tests' HTTP client: every request it sends becomes an `Op` in the history the checker reads.

A request that fails without a definite answer (no response, a timeout, a 5xx) is retried, as a real
client would, honouring Retry-After up to a cap. Each attempt is recorded on its own: an attempt that got
no answer may still have changed the database, and the checker must know when it was sent.

A reserve carries an idempotency key, chosen here once per reservation the reader means to make and sent
again with every retry; the service derives the reservation's id from the reader, the book and the key
(`app.models.reservation_id_for`), so the client knows the id before any answer arrives, and a retry
either finds the reservation its lost attempt made or makes it now, and never leaves an orphan behind.

The client may be given several instances of the app: each request goes to the next one in turn, and a
retry after a request without an answer goes to the one after that, as behind a load balancer.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import aiohttp

from app.models import reservation_id_for
from app.rules import MAX_PAGE_SIZE
from app.web import legacy
from toolkit.cli import bearer

MAX_ATTEMPTS = 6
MAX_RETRY_WAIT = 2.0
LIST_PAGE_SIZE = MAX_PAGE_SIZE  # the largest page the API gives


@dataclass
class Op:
    """One HTTP attempt. Times are seconds since the run started (monotonic clock)."""

    kind: str  # reserve, cancel, move, renew, join, read_user, read_book, read_places, list_books
    user_id: int | None
    book_id: UUID | None  # reserve: the book asked for; move: the new book; read_book: the book read
    reservation_id: UUID | None
    sent: float
    received: float = 0.0
    status: int | None = None  # None: no HTTP answer
    error: str | None = None  # what went wrong, for the summary's errors by kind
    message: str | None = None  # the body's "error": the reason given for a refusal
    result_book: UUID | None = None  # reserve/move/renew acknowledged: the book now held
    seen: list[tuple[UUID, UUID]] | None = None  # reads: (reservation_id, book_id) listed
    complete: bool = True  # reads: False when the listing had more pages than were read
    attempt: int = 1
    instance: int = 0  # which of the client's app instances (0-based) the attempt was sent to
    result_id: UUID | None = None  # reserve acknowledged: the reservation id the service answered with
    keyed: bool = False  # reserve: the service derives the id from an idempotency key (not the client)
    joined: str | None = None  # join acknowledged: "waiting" (a place in the queue) or "ready" (the book was free)

    @property
    def outcome(self) -> str:
        if self.status is not None and 200 <= self.status < 300:
            return "ok"
        if self.status == 409:
            return "conflict"
        if self.status in (400, 403, 404):
            return "refused"
        return "error"

    @property
    def latency(self) -> float:
        return self.received - self.sent

    @property
    def changes_state(self) -> bool:
        return self.kind in ("reserve", "cancel", "move", "renew")


@dataclass
class History:
    started: float = field(default_factory=time.monotonic)
    ops: list[Op] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started


class Client:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str | Sequence[str],
        history: History,
        deadline: float,
        tokens: dict[int, str] | None = None,
    ) -> None:
        self.session = session
        # Each reader's own bearer token: a request for a reader is sent as that reader. Without one, the session's
        # own headers apply.
        self.headers = {user_id: bearer(token) for user_id, token in (tokens or {}).items()}
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0]
        self._turn = itertools.count()
        self.history = history
        self.deadline = deadline  # on the history's clock: no retry starts after it
        self.on_op: list[Any] = []  # callbacks(op), e.g. the progress bar
        # True: the service assigns reservation ids from idempotency keys. False: an app from before idempotency
        # keys, which ignores them; the client then names the id itself (`reservation_id`), which it accepts.
        self.keyed = True

    async def _send(
        self,
        op: Op,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        body: Any = None
        base_url = self.base_urls[op.instance % len(self.base_urls)]
        try:
            headers = self.headers.get(op.user_id) if op.user_id is not None else None
            async with self.session.request(
                method, base_url + path, json=json, params=params, headers=headers
            ) as response:
                op.status = response.status
                if response.status != 204:
                    body = await response.json(content_type=None)
                retry_after = response.headers.get("Retry-After")
                # A listing is either a bare array with the next page's token in a header, or {"items", "next_page"}.
                if isinstance(body, list):
                    body = {"items": body, "next_page": response.headers.get("X-Next-Page")}
        except TimeoutError:
            op.error, retry_after = "timeout", None
        except aiohttp.ClientConnectorError as error:
            op.error, retry_after = f"connection failed ({error.os_error.strerror or error})", None
        except aiohttp.ServerDisconnectedError:
            op.error, retry_after = "server disconnected", None
        except aiohttp.ContentTypeError:
            op.error, retry_after = "answer not JSON", None
        except (aiohttp.ClientError, ValueError) as error:
            op.error, retry_after = type(error).__name__, None
        op.received = self.history.now()
        if op.status is not None and op.error is None and op.outcome == "error":
            op.error = f"http {op.status}"
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            op.message = body["error"]
        self._judge(op, method, body)
        self.history.ops.append(op)
        for callback in self.on_op:
            callback(op)
        op_retry_wait = _retry_wait(retry_after)
        return body, op_retry_wait

    def _judge(self, op: Op, method: str, body: Any) -> None:
        """What the answer means, beyond its status: nothing more for this API (see `LegacyClient`)."""

    async def _call(self, make_op: Any, method: str, path: str, **kwargs: Any) -> tuple[Op, Any]:
        """Sends until a definite answer (2xx or 4xx), the attempts run out, or the deadline passes."""
        attempt = 0
        instance = next(self._turn)
        while True:
            attempt += 1
            op: Op = make_op()
            op.attempt = attempt
            op.instance = (instance + attempt - 1) % len(self.base_urls)  # a retry goes to the next instance
            op.sent = self.history.now()
            body, wait = await self._send(op, method, path, **kwargs)
            if op.outcome != "error" or attempt >= MAX_ATTEMPTS or self.history.now() + wait > self.deadline:
                return op, body
            await asyncio.sleep(wait)

    # -- the API ------------------------------------------------------------------------------
    async def reserve(self, user_id: int, book_id: UUID, idempotency_key: str | None = None) -> Op:
        """One reservation the reader means to make, under one idempotency key for all its attempts."""
        key = idempotency_key or str(uuid4())
        reservation_id = reservation_id_for(user_id, book_id, key)
        body_sent: dict[str, Any] = {"book_id": str(book_id), "user_id": user_id, "idempotency_key": key}
        if not self.keyed:
            body_sent["reservation_id"] = str(reservation_id)
        keyed = self.keyed
        op, body = await self._call(
            lambda: Op("reserve", user_id, book_id, reservation_id, 0.0, keyed=keyed),
            "POST",
            "/api/reservations",
            json=body_sent,
        )
        if op.outcome == "ok":
            op.result_book = _uuid(body, "book_id")
            op.result_id = _uuid(body, "reservation_id")
        return op

    async def probe_ids(self, user_id: int, book_id: UUID) -> bool:
        """Whether the app assigns reservation ids from idempotency keys: one reservation made, then cancelled.
        Sets `keyed` for the reserves that follow, and returns it. Its requests stay in the history."""
        op = await self.reserve(user_id, book_id)
        if op.outcome != "ok" or op.result_id is None:
            raise RuntimeError(f"the probe reservation was not made: {op.status} {op.error or op.message or ''}")
        self.keyed = op.result_id == op.reservation_id
        if not self.keyed:
            # The reservation the app made under an id of its own: gone again, and the history forgets it.
            self.history.ops.remove(op)
            await self._call(
                lambda: Op("cancel", user_id, None, op.result_id, 0.0),
                "DELETE",
                f"/api/reservations/{op.result_id}",
                params={"user_id": str(user_id)},
            )
        else:
            await self.cancel(op.reservation_id, user_id)  # type: ignore[arg-type]
        return self.keyed

    async def cancel(self, reservation_id: UUID, user_id: int) -> Op:
        op, _ = await self._call(
            lambda: Op("cancel", user_id, None, reservation_id, 0.0),
            "DELETE",
            f"/api/reservations/{reservation_id}",
            params={"user_id": str(user_id)},
        )
        return op

    async def move(self, reservation_id: UUID, user_id: int, book_id: UUID) -> Op:
        op, body = await self._call(
            lambda: Op("move", user_id, book_id, reservation_id, 0.0),
            "PATCH",
            f"/api/reservations/{reservation_id}",
            json={"user_id": user_id, "book_id": str(book_id)},
        )
        if op.outcome == "ok":
            op.result_book = _uuid(body, "book_id")
        return op

    async def renew(self, reservation_id: UUID, user_id: int) -> Op:
        op, body = await self._call(
            lambda: Op("renew", user_id, None, reservation_id, 0.0),
            "PATCH",
            f"/api/reservations/{reservation_id}",
            json={"user_id": user_id},
        )
        if op.outcome == "ok":
            op.result_book = _uuid(body, "book_id")
        return op

    async def join(self, user_id: int, book_id: UUID) -> Op:
        """Join the book's queue (a free book is reserved instead: `joined` says which). The answer's reservation id
        is the hold's, in `result_id`. Not idempotent: a retry after a lost answer is refused (409) if the first got
        there, and the reader's places say where they are."""
        op, body = await self._call(
            lambda: Op("join", user_id, book_id, None, 0.0),
            "POST",
            f"/api/books/{book_id}/queue",
            json={"user_id": user_id},
        )
        if op.outcome == "ok" and isinstance(body, dict):
            op.result_id = op.reservation_id = _uuid(body, "reservation_id")  # whose the hold is, for the clean-up
            op.joined = body.get("status")
        return op

    async def places(self, user_id: int) -> Op:
        """The queues the reader is in: `seen` holds (reservation id, book) of each place."""
        op, body = await self._call(
            lambda: Op("read_places", user_id, None, None, 0.0), "GET", f"/api/users/{user_id}/queues"
        )
        if op.outcome == "ok" and isinstance(body, dict):
            op.seen = [(UUID(p["reservation_id"]), UUID(p["book_id"])) for p in body.get("places", [])]
        return op

    async def user_reservations(self, user_id: int) -> Op:
        return await self._read(
            Op("read_user", user_id, None, None, 0.0), {"user_id": str(user_id), "page_size": str(LIST_PAGE_SIZE)}
        )

    async def book_reservations(self, book_id: UUID) -> Op:
        return await self._read(
            Op("read_book", None, book_id, None, 0.0), {"book_id": str(book_id), "page_size": str(LIST_PAGE_SIZE)}
        )

    async def _read(self, template: Op, params: dict[str, str]) -> Op:
        def make() -> Op:
            return Op(template.kind, template.user_id, template.book_id, None, 0.0)

        op, body = await self._call(make, "GET", "/api/reservations", params=params)
        if op.outcome == "ok":
            items = body.get("items", []) if isinstance(body, dict) else []
            op.seen = [(UUID(i["reservation_id"]), UUID(i["book_id"])) for i in items]
            op.complete = not body.get("next_page")
        return op

    async def list_books(self, params: dict[str, str] | None = None) -> tuple[Op, Any]:
        return await self._call(
            lambda: Op("list_books", None, None, None, 0.0),
            "GET",
            "/api/books",
            params=params or {"page_size": "20"},
        )


def _uuid(body: Any, key: str) -> UUID | None:
    try:
        return UUID(body[key])
    except (TypeError, KeyError, ValueError):
        return None


def _retry_wait(retry_after: str | None) -> float:
    try:
        wait = float(retry_after) if retry_after else 0.2
    except ValueError:
        wait = 0.2
    # Jitter, so that clients refused together do not all come back in the same instant.
    return min(MAX_RETRY_WAIT, wait) * random.uniform(0.5, 1.0)


# The earlier system's answers (app/web/legacy.py), as the HTTP statuses the checker reads. Any other "error" text
# (the earlier app passed a timeout's text on) is an answer that says nothing: the request may have landed.
LEGACY_STATUS = {
    legacy.MADE: 201,
    legacy.UPDATED: 200,
    legacy.REMOVED: 200,
    legacy.ALREADY_RESERVED: 409,
    legacy.NO_SUCH_BOOK: 404,
    legacy.NOT_FOUND: 404,
    legacy.INVALID_USER: 400,
    legacy.NOT_OWNER: 403,
}


class LegacyClient(Client):
    """The same stress tests through the earlier system's endpoints (../shared/README.md), which both this service
    (in development) and the bench's naive peer serve, so that one client measures the two alike.

    Those endpoints name a reservation by its reader and book and return no id, so the client names each
    reservation it means to make (an intent: `reservation_id_for` a key of its own, as `Client` does for an app
    without idempotency keys), remembers its book, and reads listings back as the latest intent for each reader
    and book. There is no move (a test of moves changes by renewing instead) and no listing by reader or book: a
    read of one fetches every reservation (GET /api/reservations) and keeps its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keyed = False
        self.book_of: dict[UUID, UUID] = {}  # each intent's book
        self.latest: dict[tuple[int, UUID], UUID] = {}  # (reader, book) -> the last intent sent to reserve it
        self.acknowledged: dict[tuple[int, UUID], UUID] = {}  # (reader, book) -> the intent made, until cancelled

    def _judge(self, op: Op, method: str, body: Any) -> None:
        # The earlier system answered everything with 200: what happened is in the sentence, so it decides the status
        # (and with it whether the request is sent again); a sentence it never used says nothing, like a 5xx.
        if method != "POST" or op.status is None or op.error is not None:
            return
        sentence = (body.get("message") or body.get("error")) if isinstance(body, dict) else None
        op.status = LEGACY_STATUS.get(sentence, 503) if isinstance(sentence, str) else 503
        if op.status == 503:
            op.error = f"other answer: {str(sentence)[:60]}"

    async def _legacy(self, make_op: Any, path: str, user_id: int, book_id: UUID) -> Op:
        op, _ = await self._call(make_op, "POST", path, json={"book_id": str(book_id), "user_id": user_id})
        return op

    async def reserve(self, user_id: int, book_id: UUID, idempotency_key: str | None = None) -> Op:
        intent = reservation_id_for(user_id, book_id, idempotency_key or str(uuid4()))
        self.book_of[intent] = book_id
        self.latest[(user_id, book_id)] = intent
        op = await self._legacy(
            lambda: Op("reserve", user_id, book_id, intent, 0.0), "/make_reservation", user_id, book_id
        )
        if op.outcome == "ok":
            op.result_book, op.result_id = book_id, intent
            self.acknowledged[(user_id, book_id)] = intent
        return op

    async def probe_ids(self, user_id: int, book_id: UUID) -> bool:
        return False  # the client names every reservation itself

    async def cancel(self, reservation_id: UUID, user_id: int) -> Op:
        book_id = self.book_of[reservation_id]
        op = await self._legacy(
            lambda: Op("cancel", user_id, None, reservation_id, 0.0), "/remove_reservation", user_id, book_id
        )
        if op.outcome == "ok" and self.acknowledged.get((user_id, book_id)) == reservation_id:
            del self.acknowledged[(user_id, book_id)]
        return op

    async def renew(self, reservation_id: UUID, user_id: int) -> Op:
        book_id = self.book_of[reservation_id]
        op = await self._legacy(
            lambda: Op("renew", user_id, None, reservation_id, 0.0), "/update_reservation", user_id, book_id
        )
        if op.outcome == "ok":
            op.result_book = book_id
        return op

    async def move(self, reservation_id: UUID, user_id: int, book_id: UUID) -> Op:
        raise NotImplementedError("the earlier system's endpoints cannot move a reservation")

    async def user_reservations(self, user_id: int) -> Op:
        return await self._read_all(Op("read_user", user_id, None, None, 0.0), lambda r: r[0] == user_id)

    async def book_reservations(self, book_id: UUID) -> Op:
        return await self._read_all(Op("read_book", None, book_id, None, 0.0), lambda r: r[1] == book_id)

    async def every_reservation(self) -> list[tuple[int, UUID]]:
        """(reader, book) of every reservation, as GET /api/reservations lists them: the final state."""
        op, body = await self._call(lambda: Op("read_all", None, None, None, 0.0), "GET", "/api/reservations")
        for read in self.history.ops:
            if read.kind == "read_all":
                read.attempt = 0  # the final state's read, not part of the run's figures
        if op.outcome != "ok":
            raise RuntimeError(f"could not list the reservations: {op.status} {op.error or op.message or ''}")
        return self._pairs(body)

    def intent_for(self, user_id: int, book_id: UUID) -> UUID:
        """The intent a listed (reader, book) stands for: the one acknowledged and not cancelled since, else the last
        one sent (its answer may have been lost), else a name of its own for one the client never asked for."""
        pair = (user_id, book_id)
        return self.acknowledged.get(pair) or self.latest.get(pair) or reservation_id_for(*pair, "not asked for")

    async def _read_all(self, template: Op, keep: Any) -> Op:
        def make() -> Op:
            return Op(template.kind, template.user_id, template.book_id, None, 0.0)

        op, body = await self._call(make, "GET", "/api/reservations")
        if op.outcome == "ok":
            op.seen = [(self.intent_for(u, b), b) for u, b in self._pairs(body) if keep((u, b))]
        return op

    @staticmethod
    def _pairs(body: Any) -> list[tuple[int, UUID]]:
        items = body.get("items", []) if isinstance(body, dict) else []
        return [(int(i["user_id"]), UUID(i["book_id"])) for i in items]

    async def list_books(self, params: dict[str, str] | None = None) -> tuple[Op, Any]:
        return await self._call(lambda: Op("list_books", None, None, None, 0.0), "GET", "/api/books")
