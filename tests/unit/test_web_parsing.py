"""The web layer's input parsing: pure functions, every rejection naming its field."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from app.models import Conflict, DatabaseUnavailable, Forbidden, InvalidInput, NotFound
from app.repository.base import PageTokens, Seal
from app.rules import MAX_CARD, check_idempotency_key, check_text
from app.web.base import status_for
from app.web.pages import back_to, list_url
from app.web.parsing import (
    parse_json_object,
    parse_page_size,
    parse_user_id,
    parse_user_id_text,
    parse_uuid,
    required,
    same_site_path,
)

BOOK = "6f1c1f0e-5b4f-4d0e-9a51-0b6c1ea9d0a4"


def field_of(call: Callable[..., object], *args: object) -> str | None:
    with pytest.raises(InvalidInput) as caught:
        call(*args)
    return caught.value.field


def test_json_object() -> None:
    assert parse_json_object(b'{"a": 1}') == {"a": 1}
    assert parse_json_object(b"") == {}
    assert field_of(parse_json_object, b"{not json") == "body"
    assert field_of(parse_json_object, b"[1, 2]") == "body"
    assert field_of(parse_json_object, b"\xff\xfe") == "body"


def test_uuid() -> None:
    assert parse_uuid(BOOK, "book_id") == UUID(BOOK)
    assert field_of(parse_uuid, "not-a-uuid", "book_id") == "book_id"
    assert field_of(parse_uuid, 12, "reservation_id") == "reservation_id"


def test_user_id_from_json() -> None:
    assert parse_user_id(7) == parse_user_id(7.0) == 7
    for bad in ("7", 7.5, True, None, 0, -3, 2**31, [7]):
        assert field_of(parse_user_id, bad) == "user_id"


def test_user_id_from_text() -> None:
    assert parse_user_id_text("7") == 7
    for bad in ("abc", "7.5", "", "-3", "0", str(2**31), "٣", " 7 ", "\u00a07", "7\n"):
        assert field_of(parse_user_id_text, bad) == "user_id"


def test_page_size() -> None:
    assert parse_page_size(None) == 20
    assert parse_page_size("200") == 200
    for bad in ("0", "201", "x", "-1", "1.5", ""):
        assert field_of(parse_page_size, bad) == "page_size"


def test_only_page_tokens_this_service_sealed_open() -> None:
    tokens, other = PageTokens(Seal("k")), PageTokens(Seal("x"))
    books = PageTokens.scope("SELECT * FROM ks.books", [], 20)
    last = uuid4()
    sealed = tokens.encode([last], books)
    assert tokens.decode(sealed, books, (UUID,)) == [last]
    assert tokens.decode("", books, (UUID,)) is None and tokens.decode(None, books, (UUID,)) is None
    forgeries = ("AAAA", "AbC-_", sealed[:-1], "x" + sealed, other.encode([last], books), ".", "é." + sealed)
    for forged in forgeries:
        assert field_of(tokens.decode, forged, books, (UUID,)) == "page"


def test_a_token_that_opens_but_holds_no_key_of_the_listing_is_a_400() -> None:
    """Whoever holds the secret (or finds a flaw in the seal) can make a token that opens: what it carries is then
    checked to be exactly a key of the listing's types, and only that, bound as a value, ever reaches Cassandra."""
    seal = Seal("k")
    tokens = PageTokens(seal)
    scope = PageTokens.scope("SELECT * FROM ks.users", [], 20)
    payloads = [b"", b"\x00\xff", b"not json", b"{}", b"[]", b"[1, 2]", b'["7"]', b"[true]", b"[1.5]", b"[2147483648]"]
    payloads += [b"[" * 5000, b'["not-a-uuid-at-all-but-36-characters"]', b"[null]"]
    for payload in payloads:
        assert field_of(tokens.decode, seal.seal(payload, scope), scope, (int,)) == "page", payload
    assert tokens.decode(seal.seal(b"[7]", scope), scope, (int,)) == [7]
    uuid_scope = PageTokens.scope("SELECT * FROM ks.books", [], 20)
    assert (
        field_of(tokens.decode, seal.seal(json.dumps(["g" * 36]).encode(), uuid_scope), uuid_scope, (UUID,)) == "page"
    )
    assert field_of(tokens.decode, seal.seal(b"[7]", uuid_scope), uuid_scope, (UUID,)) == "page"


def test_a_page_token_opens_only_for_the_query_it_came_from() -> None:
    # The token is bound to the statement, its values and the page size, and anything else is a 400 before
    # Cassandra is asked: a listing never resumes from another listing's key.
    tokens = PageTokens(Seal("k"))
    genre = "SELECT * FROM ks.books WHERE genre = ?"
    scope = PageTokens.scope(genre, ["Mystery"], 20)
    key = [uuid4()]
    sealed = tokens.encode(key, scope)
    assert tokens.decode(sealed, PageTokens.scope(genre, ["Mystery"], 20), (UUID,)) == key
    for other in (
        PageTokens.scope(genre, ["Poetry"], 20),  # another filter
        PageTokens.scope(genre, ["Mystery"], 21),  # another page size
        PageTokens.scope("SELECT * FROM ks.users", [], 20),  # another listing
        PageTokens.scope(genre.replace("ks.", "other."), ["Mystery"], 20),  # another keyspace
        PageTokens.scope("SELECT * FROM ks.user_reservations WHERE user_id = ?", [7], 20),
    ):
        assert field_of(tokens.decode, sealed, other, (UUID,)) == "page"
    # Two readers' listings differ only in the value bound.
    mine = PageTokens.scope("SELECT * FROM ks.user_reservations WHERE user_id = ?", [7], 20)
    theirs = PageTokens.scope("SELECT * FROM ks.user_reservations WHERE user_id = ?", [8], 20)
    assert field_of(tokens.decode, tokens.encode(key, mine), theirs, (UUID,)) == "page"


def test_required() -> None:
    assert required({"a": 0}, "a") == 0
    assert field_of(required, {"a": None}, "a") == "a"
    assert field_of(required, {}, "book_id") == "book_id"


def test_one_mapping_from_domain_errors_to_statuses() -> None:
    assert status_for(InvalidInput("x", field="f")) == 400
    assert status_for(Forbidden("x")) == 403
    assert status_for(NotFound("x")) == 404
    assert status_for(Conflict("x")) == 409
    assert status_for(DatabaseUnavailable("x")) == 503
    assert status_for(RuntimeError("x")) is None


# -- a client's mistakes are 400s, never 500s (issue 12) -----------------------------------------------------------
def test_numbers_too_long_for_int_are_refused_not_crashed_on() -> None:
    # int() refuses more than 4,300 digits with a ValueError; the parsers count the digits first.
    huge = "9" * 4400
    assert field_of(parse_user_id_text, huge) == "user_id"
    assert field_of(parse_user_id_text, "1" + "0" * 4400) == "user_id"
    assert field_of(parse_page_size, huge) == "page_size"
    assert field_of(parse_page_size, "0" * 4400) == "page_size"
    # Leading zeros do not make a number large.
    assert parse_user_id_text("0" * 4400 + "7") == 7
    assert parse_page_size("0" * 4400 + "20") == 20
    assert parse_user_id_text(str(MAX_CARD)) == MAX_CARD
    assert field_of(parse_user_id_text, str(MAX_CARD + 1)) == "user_id"


def test_json_nested_too_deep_is_a_400() -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        assert field_of(parse_json_object, body) == "body"


def test_lone_surrogates_are_refused_by_the_text_rules() -> None:
    for value in ("\ud800", "Title \udfff", "\ud800\udc00"):  # the last: a pair spelt as two escapes, still lone
        assert field_of(check_text, value, "title") == "title"
        assert field_of(check_idempotency_key, value) == "idempotency_key"
    assert field_of(parse_json_object, b'["not an object"]') == "body"
    body = parse_json_object(b'{"title": "\\ud800"}')
    assert field_of(required_text_of, body) == "title"
    assert check_text("Caf\u00e9 \U0001f4da", "title") == "Caf\u00e9 \U0001f4da"


def required_text_of(body: dict[str, object]) -> str:
    return check_text(body["title"], "title")


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/",
        "/\\evil.example",
        "/\\/evil.example",
        "//evil.example",
        " //evil.example",
        "\t//evil.example",
        "/\r\n/evil.example",
        "/me\r\nSet-Cookie: a=b",
        "/\n/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "/\x00/evil.example",
        "/ /evil.example",
        "/\u3000/evil.example",
        "",
    ],
)
def test_next_never_leaves_the_site(target: str) -> None:
    assert same_site_path(target) == "/"


def test_next_keeps_the_sites_own_paths() -> None:
    for target in ("/", "/me", f"/books/{BOOK}", "/readers?page=abc.def", "/?q=night&genre=Mystery"):
        assert same_site_path(target) == target
    assert same_site_path("//evil.example", "/me") == "/me"


def test_back_to_your_search_is_only_a_list_of_this_site() -> None:
    assert back_to("/?q=river&genre=Poetry", "/?") == "/?q=river&genre=Poetry"
    assert back_to("/readers?q=rosa", "/readers?") == "/readers?q=rosa"
    for raw in (None, "", "//evil.example/?q=x", "https://evil.example/?q=x", "/me", "/\t/evil.example", "/readers"):
        assert back_to(raw, "/?", "/readers?") is None, raw
    assert (
        list_url("/reservations", {"reader": "rosa", "book": "", "order": None}, 2)
        == "/reservations?reader=rosa&page=2"
    )
    assert list_url("/me", {"order": None}) == "/me"
