"""The input rules (app/rules.py) are the same on every path: the UI's forms (which call the repository directly),
the JSON API (whose parsers run before the repository), the OpenAPI document, the CSV importer and the settings.

Nothing here needs Cassandra; tests/integration/test_rules_on_every_path.py holds the real repository (what the UI's
forms call) to the same inputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from cassandra import ConsistencyLevel
from rules_samples import BAD_EMAILS, BAD_TEXTS, BAD_YEARS, GOOD_EMAILS, GOOD_TEXTS, GOOD_YEARS, refused_by

from app import rules
from app.db import choose_serial_consistency, lock_consistency_for
from app.models import InvalidInput
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
from app.schema import statements
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


def test_the_documents_email_pattern_says_what_the_check_does() -> None:
    # Python's \s is a superset of ECMA 262's; on these samples (no U+001C..U+001F or U+0085 at the ends) they agree.
    pattern = re.compile(document()["components"]["schemas"]["UserCreate"]["properties"]["email"]["pattern"])
    for email in GOOD_EMAILS:
        assert pattern.search(email), email
    for email in BAD_EMAILS:
        if isinstance(email, str) and email.isascii() and len(email) <= MAX_TEXT:
            assert not pattern.search(email), email


def test_json_may_spell_a_year_with_a_fraction_of_zero() -> None:
    assert optional_year({"published_year": 1999.0}) == 1999


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
    text = {"minLength": 1, "maxLength": rules.max_length(name), "pattern": NOT_BLANK}
    card = {"minimum": FIRST_LEGACY_CARD if "LegacyRequest" in where else FIRST_CARD, "maximum": MAX_CARD}
    return {
        "title": text,
        "author": text,
        "genre": text,
        "name": text,
        "email": {
            "minLength": MIN_EMAIL_LENGTH,
            "maxLength": rules.max_length("email"),
            "pattern": rf"^\s*{EMAIL_PATTERN}\s*$",
        },
        "published_year": {"minimum": MIN_YEAR, "maximum": latest_year()},
        "user_id": card,
        "idempotency_key": {"minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
        "page_size": {"minimum": 1, "maximum": MAX_PAGE_SIZE},
        "page": {"maxLength": MAX_PAGE_TOKEN},
        "device": {"maxLength": rules.MAX_DEVICE_TOKEN},
        "q": {"maxLength": MAX_TEXT},
        # Signing in takes any PIN up to the longest (a PIN set under older rules still works); setting one, the rule.
        "current_pin": {"maxLength": rules.MAX_PIN},
        "pin": {"minLength": rules.MIN_STAFF_PIN}
        if "/then" in where
        else {"maxLength": rules.MAX_PIN}
        if "SessionCreate" in where
        else {"minLength": rules.MIN_PIN, "maxLength": rules.MAX_PIN},
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


def test_the_replication_may_name_every_datacenter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASSANDRA_HOSTS", "a,b,c,d")
    monkeypatch.setenv("CASSANDRA_LOCAL_DC", "dc2")
    monkeypatch.setenv("CASSANDRA_REPLICATION", "dc1:2, dc2:1")
    settings = Settings.from_env()
    assert settings.replication() == {"dc2": 1, "dc1": 2}
    assert settings.with_hosts(["a"]).replication() == {"dc2": 1, "dc1": 2}  # chosen: the hosts do not change it
    assert "'dc2': 1, 'dc1': 2" in statements(settings)[0]  # the keyspace names both
    for bad, said in (
        ("dc1:2", "not this instance's datacenter (CASSANDRA_LOCAL_DC=dc2)"),
        ("dc1:2,dc2:0", "each datacenter once with its replicas"),
        ("dc1:2,dc2:2,dc1:1", "each datacenter once"),
        ("dc1=2", "e.g. dc1:2,dc2:2"),
        ("0", "at least 1 replica"),
    ):
        monkeypatch.setenv("CASSANDRA_REPLICATION", bad)
        with pytest.raises(ValueError, match=re.escape(said)):
            Settings.from_env()


def test_lightweight_transactions_run_at_serial_across_datacenters() -> None:
    serial, local = ConsistencyLevel.SERIAL, ConsistencyLevel.LOCAL_SERIAL
    assert choose_serial_consistency({"datacenter1"}, None, False)[0] == local
    level, why = choose_serial_consistency({"dc1", "dc2"}, None, False)
    assert level == serial and "dc1, dc2" in why
    assert choose_serial_consistency({"dc1", "dc2"}, serial, False)[0] == serial
    assert choose_serial_consistency({"dc1"}, local, False)[0] == local
    with pytest.raises(ValueError, match="ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL=1"):
        choose_serial_consistency({"dc1", "dc2"}, local, False)
    level, why = choose_serial_consistency({"dc1", "dc2"}, local, True)
    assert level == local and "risk accepted" in why


def test_the_lock_reads_and_commits_at_quorum_of_every_datacenter_at_serial() -> None:
    # A refusal read must meet every acknowledged commit: across datacenters both are majorities of all replicas.
    assert lock_consistency_for(ConsistencyLevel.SERIAL, ConsistencyLevel.LOCAL_QUORUM) == ConsistencyLevel.QUORUM
    local = lock_consistency_for(ConsistencyLevel.LOCAL_SERIAL, ConsistencyLevel.LOCAL_QUORUM)
    assert local == ConsistencyLevel.LOCAL_QUORUM


def test_the_serial_consistency_setting_takes_only_a_serial_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASSANDRA_SERIAL_CONSISTENCY", raising=False)
    assert Settings.from_env().serial_consistency is None  # chosen from the keyspace at connect
    monkeypatch.setenv("CASSANDRA_SERIAL_CONSISTENCY", "serial")
    assert Settings.from_env().serial_consistency == ConsistencyLevel.SERIAL
    monkeypatch.setenv("CASSANDRA_SERIAL_CONSISTENCY", "QUORUM")
    with pytest.raises(ValueError, match="SERIAL or LOCAL_SERIAL"):
        Settings.from_env()


def test_the_log_level_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert Settings.from_env().log_level == "DEBUG"
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        Settings.from_env()


# -- the API's parsers and the rules the repository calls: the same verdict on every sample ----------------------
@pytest.mark.parametrize("value", BAD_TEXTS, ids=repr)
async def test_the_parsers_and_the_rules_refuse_the_same_texts(value: object) -> None:
    assert await refused_by(lambda: required_text({"name": value}, "name"), "name")
    assert await refused_by(lambda: optional_text({"name": value}, "name"), "name")
    assert await refused_by(lambda: rules.check_text(value, "name"), "name")


@pytest.mark.parametrize("value", GOOD_TEXTS, ids=repr)
def test_the_parsers_and_the_rules_accept_the_same_texts(value: str) -> None:
    assert required_text({"t": value}, "t") == optional_text({"t": value}, "t") == rules.check_text(value, "t")


@pytest.mark.parametrize("email", BAD_EMAILS, ids=repr)
async def test_the_parsers_and_the_rules_refuse_the_same_email_addresses(email: object) -> None:
    assert await refused_by(lambda: required_email({"email": email}), "email")
    assert await refused_by(lambda: optional_email({"email": email}), "email")
    assert await refused_by(lambda: rules.check_email(email), "email")


@pytest.mark.parametrize("email", GOOD_EMAILS, ids=repr)
def test_the_parsers_and_the_rules_accept_the_same_email_addresses(email: str) -> None:
    assert required_email({"email": email}) == optional_email({"email": email}) == rules.check_email(email)


@pytest.mark.parametrize("year", BAD_YEARS, ids=repr)
async def test_the_parsers_and_the_rules_refuse_the_same_years(year: object) -> None:
    assert await refused_by(lambda: optional_year({"published_year": year}), "published_year")
    assert await refused_by(lambda: rules.check_year(year), "published_year")


@pytest.mark.parametrize("year", GOOD_YEARS, ids=repr)
def test_the_parsers_and_the_rules_accept_the_same_years(year: int | None) -> None:
    assert optional_year({"published_year": year}) == year


@pytest.mark.parametrize("card", [FIRST_CARD - 1, -1, MAX_CARD + 1, True, "7", 7.5])
def test_the_api_refuses_card_numbers_outside_the_rule(card: object) -> None:
    with pytest.raises(InvalidInput):
        parse_user_id(card)
    assert not rules.is_card_number(card, FIRST_CARD)


@pytest.mark.parametrize("card", [FIRST_CARD, 1_234_567, MAX_CARD])
def test_the_api_accepts_card_numbers_inside_the_rule(card: int) -> None:
    assert parse_user_id(card) == card and rules.is_card_number(card, FIRST_CARD)


def test_a_limit_changed_in_the_rules_changes_everywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """ "Titles may be 500 characters" is one line of app/rules.py: the API, the repository's check, the document and
    the CSV importer all follow it, and the other fields keep theirs."""
    monkeypatch.setitem(rules.TEXT_LIMITS, "title", 500)
    title = "x" * 500
    assert required_text({"title": title}, "title") == rules.check_text(title, "title") == title
    with pytest.raises(InvalidInput):
        required_text({"author": title}, "author")
    properties = document()["components"]["schemas"]["BookCreate"]["properties"]
    assert properties["title"]["maxLength"] == 500 and properties["author"]["maxLength"] == MAX_TEXT
    assert _csv_problems(tmp_path, title, "1999") == []
    test_the_documents_limits_are_the_rules()


# -- a suspension's end (issue 22) ------------------------------------------------------------------------------------
def test_a_suspension_ends_at_the_start_of_the_day_named_in_the_librarys_time_zone() -> None:
    assert rules.parse_suspension("2026-12-20", "Europe/Paris") == datetime(2026, 12, 19, 23, 0, tzinfo=UTC)
    assert rules.parse_suspension(" 2026-12-20 ", "UTC") == datetime(2026, 12, 20, tzinfo=UTC)
    assert rules.parse_suspension("2026-12-20T09:00:00+01:00", "UTC") == datetime(2026, 12, 20, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    "typed", ["", "  ", None, 20261220, "tomorrow", "2026-13-45", "2026-12-20T09:00:00", "20-12-2026"]
)
def test_a_suspension_end_that_is_no_date_is_refused_naming_the_field(typed: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        rules.parse_suspension(typed, "UTC")
    assert refused.value.field == "until" and not isinstance(refused.value, rules.OutOfRange)


def test_a_suspension_must_end_after_now_and_within_the_most_days_ahead() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert rules.check_suspension(now + timedelta(seconds=1), now=now) == now + timedelta(seconds=1)
    assert rules.check_suspension(now + timedelta(days=rules.MAX_SUSPEND_DAYS), now=now)
    for wrong in (now, now - timedelta(days=1), now + timedelta(days=rules.MAX_SUSPEND_DAYS, seconds=1)):
        with pytest.raises(rules.OutOfRange) as refused:
            rules.check_suspension(wrong, now=now)
        assert refused.value.field == "until"
