"""The input rules (app/rules.py) are the same on every path: the UI's forms (which call the repository directly),
the JSON API (whose parsers run before the repository), the OpenAPI document, the CSV importer and the settings.

Nothing here needs Cassandra: the repository validates before it touches the database, which a stub stands for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from app import rules
from app.models import InvalidInput
from app.repository import Library
from app.repository.base import check_page_size
from app.rules import (
    EMAIL_PATTERN,
    FIRST_CARD,
    FIRST_LEGACY_CARD,
    MAX_CARD,
    MAX_IDEMPOTENCY_KEY,
    MAX_PAGE_SIZE,
    MAX_PAGE_TOKEN,
    MAX_TEXT,
    MIN_EMAIL_LENGTH,
    MIN_YEAR,
    NOT_BLANK,
    latest_year,
    replication_for,
)
from app.settings import Settings
from app.web.openapi import document
from app.web.parsing import (
    optional_email,
    optional_text,
    optional_year,
    parse_page_size,
    parse_user_id,
    required_email,
    required_text,
)
from seeder.catalogue_csv import CatalogueError, read_catalogue


class ReachedTheDatabase(Exception):
    """What the stub database raises: the input got past every check."""


class StubDatabase:
    settings = Settings(keyspace="unit")

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise ReachedTheDatabase


def library() -> Library:
    return Library(StubDatabase())  # type: ignore[arg-type]


async def refused_by(call: Callable[[], Any], field: str) -> bool:
    """Whether `call` (sync or async) refuses its input as InvalidInput naming `field`; False when the input got
    through (returned, or reached the database)."""
    try:
        result = call()
        if hasattr(result, "__await__"):
            await result
    except InvalidInput as error:
        assert error.field == field, f"refused, but naming {error.field!r} instead of {field!r}: {error}"
        return True
    except ReachedTheDatabase:
        return False
    return False


TOO_LONG = "x" * (MAX_TEXT + 1)
BAD_TEXTS = [
    "",
    "   ",
    "\x1c\x85\u3000",  # white space to str.strip(), not to every regex
    TOO_LONG,
    " " + "x" * MAX_TEXT,  # the limit counts what was sent, as the document's maxLength does
    "\ud800",  # a lone surrogate: JSON can send it ("\ud800"), UTF-8 cannot store it
    "Ann \udc00",
    None,
    5,
    ["Ann"],
]
GOOD_TEXTS = ["Ann", "  Ann  ", "x" * MAX_TEXT, "é" * MAX_TEXT, "Die Blechtrommel 📚", "0"]

BAD_EMAILS = [
    "a@b@c",
    "a b@c d",
    "a b@c",
    "a@c d",
    "nobody",
    "@example.org",
    "rita@",
    "@",
    "",
    "   ",
    "a\t@b",
    "a@b\x1cc",
    "x" * (MAX_TEXT - 3) + "@b.c",  # one character over the limit
    "\ud800@example.org",
    "rita@\udfff",
    None,
    7,
]
GOOD_EMAILS = ["a@b", "rita@example.org", "  rita@example.org\n", "o'brien+tag@example.co.uk", "x" * 296 + "@b.c"]

BAD_YEARS: list[object] = [MIN_YEAR - 1, latest_year() + 1, 10_000, True, False, "1999", 1999.5, [1999]]
GOOD_YEARS: list[object] = [None, MIN_YEAR, -44, 0, 1999, latest_year()]


# -- text: a reader's name on the UI form and through the API; a book's title through the API -----------------
@pytest.mark.parametrize("name", BAD_TEXTS, ids=repr)
async def test_the_form_and_the_api_refuse_the_same_names(name: object) -> None:
    # The UI's "Add a reader" form calls the repository with what was typed.
    assert await refused_by(lambda: library().create_user(name, "rita@example.org"), "name")  # type: ignore[arg-type]
    # The API parses the JSON body (POST and PUT require the field, PATCH takes it when present).
    assert await refused_by(lambda: required_text({"name": name}, "name"), "name")
    assert await refused_by(lambda: optional_text({"name": name}, "name"), "name")
    assert await refused_by(lambda: rules.check_text(name, "name"), "name")


@pytest.mark.parametrize("name", GOOD_TEXTS, ids=repr)
async def test_the_form_and_the_api_accept_the_same_names(name: str) -> None:
    assert not await refused_by(lambda: library().create_user(name, "rita@example.org"), "name")
    assert required_text({"name": name}, "name") == optional_text({"name": name}, "name") == name.strip()


@pytest.mark.parametrize("title", BAD_TEXTS, ids=repr)
async def test_a_title_is_refused_by_the_api_and_by_the_repository(title: object) -> None:
    assert await refused_by(lambda: required_text({"title": title}, "title"), "title")
    assert await refused_by(lambda: library().create_book(title, "A", "G", None), "title")  # type: ignore[arg-type]


@pytest.mark.parametrize("title", GOOD_TEXTS, ids=repr)
async def test_a_title_is_accepted_by_the_api_and_by_the_repository(title: str) -> None:
    assert required_text({"title": title}, "title") == title.strip()
    assert not await refused_by(lambda: library().create_book(title, "A", "G", None), "title")


# -- e-mail --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("email", BAD_EMAILS, ids=repr)
async def test_the_form_and_the_api_refuse_the_same_email_addresses(email: object) -> None:
    assert await refused_by(lambda: library().create_user("Rita", email), "email")  # type: ignore[arg-type]
    assert await refused_by(lambda: required_email({"email": email}), "email")
    assert await refused_by(lambda: optional_email({"email": email}), "email")
    assert await refused_by(lambda: rules.check_email(email), "email")


@pytest.mark.parametrize("email", GOOD_EMAILS, ids=repr)
async def test_the_form_and_the_api_accept_the_same_email_addresses(email: str) -> None:
    assert not await refused_by(lambda: library().create_user("Rita", email), "email")
    assert required_email({"email": email}) == optional_email({"email": email}) == email.strip()


def test_the_documents_email_pattern_says_what_the_check_does() -> None:
    # Python's \s is a superset of ECMA 262's; on these samples (no U+001C..U+001F or U+0085 at the ends) they agree.
    pattern = re.compile(document()["components"]["schemas"]["UserCreate"]["properties"]["email"]["pattern"])
    for email in GOOD_EMAILS:
        assert pattern.search(email), email
    for email in BAD_EMAILS:
        if isinstance(email, str) and email.isascii() and len(email) <= MAX_TEXT:
            assert not pattern.search(email), email


# -- publication years ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("year", BAD_YEARS, ids=repr)
async def test_the_api_and_the_repository_refuse_the_same_years(year: object) -> None:
    assert await refused_by(lambda: optional_year({"published_year": year}), "published_year")
    assert await refused_by(lambda: library().create_book("T", "A", "G", year), "published_year")  # type: ignore[arg-type]
    assert await refused_by(lambda: rules.check_year(year), "published_year")


@pytest.mark.parametrize("year", GOOD_YEARS, ids=repr)
async def test_the_api_and_the_repository_accept_the_same_years(year: int | None) -> None:
    assert optional_year({"published_year": year}) == year
    assert not await refused_by(lambda: library().create_book("T", "A", "G", year), "published_year")


def test_json_may_spell_a_year_with_a_fraction_of_zero() -> None:
    assert optional_year({"published_year": 1999.0}) == 1999


# -- card numbers and page sizes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("card", [FIRST_CARD - 1, -1, MAX_CARD + 1, True, "7", 7.5])
async def test_the_api_and_the_repository_refuse_the_same_card_numbers(card: object) -> None:
    assert await refused_by(lambda: parse_user_id(card), "user_id")
    assert await refused_by(lambda: library().create_user("Rita", "r@example.org", card), "user_id")  # type: ignore[arg-type]


@pytest.mark.parametrize("card", [FIRST_CARD, 1_234_567, MAX_CARD])
async def test_the_api_and_the_repository_accept_the_same_card_numbers(card: int) -> None:
    assert parse_user_id(card) == card
    assert not await refused_by(lambda: library().create_user("Rita", "r@example.org", card), "user_id")


@pytest.mark.parametrize("card", [FIRST_LEGACY_CARD - 1, MAX_CARD + 1, True])
async def test_the_earlier_systems_endpoints_and_the_repository_agree_on_cards(card: object) -> None:
    assert await refused_by(lambda: parse_user_id(card, minimum=FIRST_LEGACY_CARD), "user_id")
    assert await refused_by(lambda: library().register_card(card), "user_id")  # type: ignore[arg-type]
    for good in (FIRST_LEGACY_CARD, MAX_CARD):
        assert parse_user_id(good, minimum=FIRST_LEGACY_CARD) == good
        assert not await refused_by(lambda g=good: library().register_card(g), "user_id")


def test_the_api_and_the_repository_agree_on_page_sizes() -> None:
    for bad in (0, MAX_PAGE_SIZE + 1):
        with pytest.raises(InvalidInput):
            parse_page_size(str(bad))
        with pytest.raises(InvalidInput):
            check_page_size(bad)
    for good in (1, rules.DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE):
        assert parse_page_size(str(good)) == check_page_size(good) == good
    assert parse_page_size(None) == rules.DEFAULT_PAGE_SIZE


# -- the OpenAPI document -------------------------------------------------------------------------------------------
def _named_schemas(node: Any, where: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, name, schema) for every property and parameter of the document."""
    if isinstance(node, dict):
        if "name" in node and "in" in node and isinstance(node.get("schema"), dict):
            yield where, node["name"], node["schema"]
        for name, schema in (node.get("properties") or {}).items():
            yield f"{where}/properties", name, schema
        for key, value in node.items():
            yield from _named_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _named_schemas(value, f"{where}/{index}")


def _expected_limits(where: str, name: str) -> dict[str, object]:
    text = {"minLength": 1, "maxLength": MAX_TEXT, "pattern": NOT_BLANK}
    card = {"minimum": FIRST_LEGACY_CARD if "LegacyRequest" in where else FIRST_CARD, "maximum": MAX_CARD}
    return {
        "title": text,
        "author": text,
        "genre": text,
        "name": text,
        "email": {"minLength": MIN_EMAIL_LENGTH, "maxLength": MAX_TEXT, "pattern": rf"^\s*{EMAIL_PATTERN}\s*$"},
        "published_year": {"minimum": MIN_YEAR, "maximum": latest_year()},
        "user_id": card,
        "idempotency_key": {"minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
        "page_size": {"minimum": 1, "maximum": MAX_PAGE_SIZE},
        "page": {"maxLength": MAX_PAGE_TOKEN},
        "q": {"maxLength": MAX_TEXT},
    }.get(name, {})


def test_the_documents_limits_are_the_rules() -> None:
    limits = ("minLength", "maxLength", "minimum", "maximum")
    checked = set()
    for where, name, schema in _named_schemas(document()):
        found = {key: schema[key] for key in limits if key in schema}
        if not found:
            continue
        expected = _expected_limits(where, name)
        # Filters (genre, author, q) are plain strings of at most MAX_TEXT: no minLength or pattern.
        if "/parameters/" in where and name in ("genre", "author"):
            expected = {"maxLength": MAX_TEXT}
        assert found == {k: v for k, v in expected.items() if k in limits}, f"{where} {name}"
        if "pattern" in expected:
            assert schema.get("pattern") == expected["pattern"], f"{where} {name}"
        checked.add(name)
    assert checked >= {"title", "name", "email", "published_year", "user_id", "idempotency_key", "page_size", "page"}


# -- the CSV importer -----------------------------------------------------------------------------------------------
def _csv_problems(tmp_path: Path, title: str, year: str) -> list[str]:
    path = tmp_path / "catalogue.csv"
    path.write_text(f"book_id,title,author,genre,published_year\n{uuid4()},{title},A,G,{year}\n", encoding="utf-8")
    try:
        read_catalogue(path)
    except CatalogueError as error:
        return error.problems
    return []


def test_the_csv_importer_takes_the_repositorys_limits(tmp_path: Path) -> None:
    assert _csv_problems(tmp_path, "x" * MAX_TEXT, str(MIN_YEAR)) == []
    assert _csv_problems(tmp_path, "T", str(latest_year())) == []
    assert _csv_problems(tmp_path, "x" * (MAX_TEXT + 1), "1999")
    assert _csv_problems(tmp_path, "T", str(MIN_YEAR - 1))
    assert _csv_problems(tmp_path, "T", str(latest_year() + 1))


# -- replication and settings ---------------------------------------------------------------------------------------
def test_one_replica_per_host_up_to_three() -> None:
    assert [replication_for(["h"] * n) for n in range(6)] == [1, 1, 2, 3, 3, 3]


def test_the_replication_follows_the_hosts_unless_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASSANDRA_REPLICATION", raising=False)
    monkeypatch.setenv("CASSANDRA_HOSTS", "a,b")
    settings = Settings.from_env()
    assert settings.replication_factor == 2
    assert settings.with_hosts(["a", "b", "c", "d"]).replication_factor == 3
    monkeypatch.setenv("CASSANDRA_REPLICATION", "1")
    settings = Settings.from_env()
    assert settings.replication_factor == settings.with_hosts(["a", "b", "c"]).replication_factor == 1


def test_the_log_level_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert Settings.from_env().log_level == "DEBUG"
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        Settings.from_env()
