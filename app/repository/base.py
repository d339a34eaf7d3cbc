"""What the repository's parts share: the database handle and keyspace, paging tokens, row mapping."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from app.db import Database
from app.models import Book, InvalidInput, Reservation
from app.rules import MAX_PAGE_SIZE, MAX_PAGE_TOKEN
from app.search import query_terms

SCAN_PAGE = 1000  # rows per page when a tool or a stream reads a whole table


class RepositoryBase:
    """What every part of the repository holds: the database, and the keyspace its statements name their tables
    in. Each part is given anything else it uses (the clock, the page tokens, another part) when it is made."""

    pages: PageTokens  # set by the parts that list pages (catalogue, reservations)

    def __init__(self, db: Database) -> None:
        self.db = db
        self.ks = db.settings.keyspace  # every statement names its tables as {ks}.table

    def cql(self, text: str) -> str:
        return text.replace("{ks}", self.ks)

    async def _page_query(
        self, cql: str, params: list[Any], page_size: int, page: str | None, resume: Resume
    ) -> tuple[list[Any], str | None]:
        """One page of a listing: its rows and the token of the next page. The token says where the next page starts
        (the key of the last row of this one, `resume`), sealed and bound to this query (statement and values), so
        the only thing of the client's that reaches Cassandra is a key of the right type, bound as a value; no
        paging state of the driver ever goes out or comes back."""
        statement = self.cql(cql)
        size = check_page_size(page_size)
        scope = PageTokens.scope(statement, params, size)
        after = self.pages.decode(page, scope, resume.kinds)  # a bad token is a 400 here, before Cassandra sees it
        if after is not None:
            joiner = " AND " if " WHERE " in statement else " WHERE "
            statement, params = statement + joiner + resume.condition, [*params, *after]
        # One row more than the page: whether there is a next page, without a second query or an empty last page.
        result = await self.db.execute(f"{statement} LIMIT {size + 1}", params, page_size=size + 1)
        rows = result.rows[:size]
        more = len(result.rows) > size
        return rows, self.pages.encode([getattr(rows[-1], c) for c in resume.columns], scope) if more else None

    async def _up_to(self, cql: str, params: list[Any], bound: int) -> list[Any]:
        """At most bound + 1 rows of a query (one more than the bound tells there are more), read in pages of up to
        SCAN_PAGE: what a page sorts, counts and numbers itself (app/search.py), since Cassandra can neither sort nor
        count what an index finds."""
        found: list[Any] = []
        async for rows in self._scan(f"{cql} LIMIT {bound + 1}", params, page_size=min(bound + 1, SCAN_PAGE)):
            found.extend(rows)
        return found

    async def _scan(
        self, cql: str, params: list[Any] | None = None, page_size: int = SCAN_PAGE
    ) -> AsyncIterator[list[Any]]:
        """A whole table (or partition), one page of rows at a time (`Database.pages`)."""
        async for rows in self.db.pages(self.cql(cql), params, page_size=page_size):
            yield rows


def now() -> datetime:
    """UTC at millisecond precision, naive, as Cassandra's timestamp stores and returns it."""
    t = datetime.now(UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Resume:
    """Where a listing's next page starts, given the last row of the page before: `columns` of that row (their
    types `kinds`, the only types a page token may carry) bound to `condition`'s markers, in order. For a table read
    in token order, "token(book_id) > token(?)"; within a partition, a clustering bound such as "book_id > ?"."""

    columns: tuple[str, ...]
    kinds: tuple[type, ...]
    condition: str

    @classmethod
    def by_token(cls, column: str, kind: type) -> Resume:
        return cls((column,), (kind,), f"token({column}) > token(?)")

    @classmethod
    def after(cls, column: str, kind: type) -> Resume:
        return cls((column,), (kind,), f"{column} > ?")


class Seal:
    """Seals a short text with a MAC under the deployment's secret, for a scope (what the text is for), and opens
    only what it sealed for that same scope: page tokens (`PageTokens`) and a browser's device token
    (app/repository/accounts.py). Every instance must share the secret (PAGE_TOKEN_SECRET, or the one the keyspace
    keeps: app/repository/shared_secrets.py)."""

    MAC_BYTES = 12

    def __init__(self, secret: str) -> None:
        self.rekey(secret)

    def rekey(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    def _mac(self, payload: str, scope: str) -> str:
        # The scope is hashed first, so no choice of scope and payload can spell another pair's message.
        message = hashlib.sha256(scope.encode("utf-8", "backslashreplace")).digest() + payload.encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest()[: self.MAC_BYTES])

    def seal(self, payload: bytes, scope: str) -> str:
        text = _b64(payload)
        return f"{text}.{self._mac(text, scope)}"

    def open(self, token: str, scope: str, *, max_length: int) -> bytes | None:
        """The payload, if this deployment sealed `token` for `scope`; None for anything else."""
        text, dot, mac = token.rpartition(".")
        if not dot or not text or len(token) > max_length or not token.isascii():
            return None
        if not hmac.compare_digest(mac, self._mac(text, scope)):
            return None
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None


class PageTokens:
    """A page token says where the next page of a listing starts: the key of the last row the page before showed,
    as JSON, sealed (`Seal`) for the query it came from. Opened, it is checked to be exactly the key's types, and
    Cassandra is then asked for the rows after that key with the key bound as a value (`Resume`).

    Why not Cassandra's own paging state, as before: it is bytes the server parses, and a malformed one is not a
    mere bad request to Cassandra: it answers with a protocol error, and the driver then closes the connection and
    marks that node down, so one forged token turned into 503s for everybody. With the key, nothing but a value of
    the column's type ever reaches the database, whoever made the token; a token that opens but does not hold such
    a key is a 400 like a made-up one. The scope still binds a token to its query (the statement and its values), so
    a listing never resumes from another listing's key (nor with another page size, as before)."""

    MAX_LENGTH = MAX_PAGE_TOKEN
    REFUSED = "page is not a page token this service gave out for this listing"
    UNREADABLE = "page does not say where a page of this listing starts"

    def __init__(self, seal: Seal) -> None:
        self.seal = seal

    @staticmethod
    def scope(statement: str, params: Sequence[Any], page_size: int) -> str:
        """What a token is bound to: the query exactly as Cassandra runs it, and the page size. repr() spells every
        value the repository binds (str, int, UUID) the same way in every process, and always as encodable text."""
        return repr(("page", statement, list(params), page_size))

    def encode(self, key: Sequence[Any], scope: str) -> str:
        values = [str(v) if isinstance(v, UUID) else v for v in key]
        return self.seal.seal(json.dumps(values, separators=(",", ":")).encode(), scope)

    def decode(self, token: str | None, scope: str, kinds: Sequence[type]) -> list[Any] | None:
        """The key a token resumes after, each value of its kind; None without a token. A token this service did not
        seal for this listing, or one that does not hold such a key, is a 400."""
        if not token:
            return None
        payload = self.seal.open(token, scope, max_length=self.MAX_LENGTH)
        if payload is None:
            raise InvalidInput(self.REFUSED, field="page")
        try:
            values = json.loads(payload)
            if not isinstance(values, list) or len(values) != len(kinds):
                raise ValueError("not a key of this listing")
            return [_key_value(v, kind) for v, kind in zip(values, kinds, strict=True)]
        except (ValueError, TypeError, RecursionError) as error:
            raise InvalidInput(self.UNREADABLE, field="page") from error


def _key_value(value: Any, kind: type) -> Any:
    """One value of a key from a page token, as the column's type: an int in Cassandra's int range, or a UUID."""
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    if kind is UUID and isinstance(value, str) and len(value) == 36:
        return UUID(value)
    raise ValueError(f"not a {kind.__name__}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def term_conditions(q: str | None) -> tuple[list[str], list[Any]]:
    """The conditions that find the rows a query's words all begin a word of: each word one of the row's
    `search_terms` (app/search.py), on their index. The catalogue and the readers search alike."""
    terms = query_terms(q or "")
    return ["search_terms CONTAINS ?"] * len(terms), list(terms)


def check_page_size(page_size: int) -> int:
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}", field="page_size")
    return page_size


def book_from_row(row: Any) -> Book:
    return Book(row.book_id, row.title, row.author, row.genre, row.published_year)


def reservation_from_row(row: Any) -> Reservation:
    lent_at = getattr(row, "lent_at", None)
    return Reservation(row.reservation_id, row.book_id, row.user_id, row.reserved_at, row.ready_until, lent_at)
