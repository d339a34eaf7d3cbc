"""What the repository's parts share: the database handle and keyspace, paging tokens, row mapping."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from app.db import Database
from app.models import Book, InvalidInput, Reservation
from app.rules import MAX_PAGE_SIZE, MAX_PAGE_TOKEN

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
        self, cql: str, params: list[Any], page_size: int, page: str | None
    ) -> tuple[list[Any], str | None]:
        """One page of a listing: its rows and the token of the next page. The token is bound to this exact query
        (statement, values, page size), so it is only ever handed back to Cassandra for the query it came from."""
        statement = self.cql(cql)
        size = check_page_size(page_size)
        scope = PageTokens.scope(statement, params, size)
        paging_state = self.pages.decode(page, scope)  # a bad token is a 400 here, before Cassandra sees anything
        result = await self.db.execute(statement, params, page_size=size, paging_state=paging_state)
        return result.rows, self.pages.encode(result.paging_state, scope)

    async def _scan(
        self, cql: str, params: list[Any] | None = None, page_size: int = SCAN_PAGE
    ) -> AsyncIterator[list[Any]]:
        """A whole table (or partition), one page of rows at a time, as Cassandra pages it: memory stays that of one
        page however many rows there are."""
        paging_state = None
        while True:
            result = await self.db.execute(self.cql(cql), params, page_size=page_size, paging_state=paging_state)
            yield result.rows
            paging_state = result.paging_state
            if not paging_state:
                return


def now() -> datetime:
    """UTC at millisecond precision, naive, as Cassandra's timestamp stores and returns it."""
    t = datetime.now(UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class PageTokens:
    """Page tokens are Cassandra's paging state sealed with a MAC, so only tokens this service gave out reach it,
    and only for the query they came from.

    A made-up paging state (a typo, a fuzzer, a truncated copy) is not a mere bad request to Cassandra: it
    answers with a protocol error, and the driver then closes the connection and marks that node down, so one
    bad query string would turn into 503s for everybody. A *genuine* state replayed on another query (another
    listing, filter or page size) is worse: it throws inside every Cassandra node. So the MAC covers a scope that
    names the query (`scope`: the statement, its values and the page size) as well as the state, and a token is
    accepted only for the scope it was sealed for. Every instance must share the secret (PAGE_TOKEN_SECRET).
    """

    MAC_BYTES = 12
    MAX_LENGTH = MAX_PAGE_TOKEN
    REFUSED = "page is not a page token this service gave out for this listing"

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    @staticmethod
    def scope(statement: str, params: Sequence[Any], page_size: int) -> str:
        """What a token is bound to: the query exactly as Cassandra runs it. repr() spells every value the
        repository binds (str, int, UUID) the same way in every process, and always as encodable text."""
        return repr((statement, list(params), page_size))

    def _mac(self, state: str, scope: str) -> str:
        # The scope is hashed first, so no choice of scope and state can spell another pair's message.
        message = hashlib.sha256(scope.encode("utf-8", "backslashreplace")).digest() + state.encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest()[: self.MAC_BYTES])

    def encode(self, paging_state: bytes | None, scope: str) -> str | None:
        if not paging_state:
            return None
        state = _b64(paging_state)
        return f"{state}.{self._mac(state, scope)}"

    def decode(self, token: str | None, scope: str) -> bytes | None:
        if not token:
            return None
        state, dot, mac = token.rpartition(".")
        if not dot or not state or len(token) > self.MAX_LENGTH or not token.isascii():
            raise InvalidInput(self.REFUSED, field="page")
        if not hmac.compare_digest(mac, self._mac(state, scope)):
            raise InvalidInput(self.REFUSED, field="page")
        try:
            return base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
        except (binascii.Error, ValueError) as error:
            raise InvalidInput(self.REFUSED, field="page") from error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def check_page_size(page_size: int) -> int:
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}", field="page_size")
    return page_size


def book_from_row(row: Any) -> Book:
    return Book(row.book_id, row.title, row.author, row.genre, row.published_year)


def reservation_from_row(row: Any) -> Reservation:
    return Reservation(row.reservation_id, row.book_id, row.user_id, row.reserved_at)
