"""The UI's forms call the repository with what was typed; the JSON API parses first. Both must refuse and accept
the same inputs: here the real repository, on the real cluster, against the API's parsers (tests/unit/test_rules.py
holds the pure rules to the parsers and the OpenAPI document without Cassandra).

Refused inputs never reach Cassandra; accepted ones are written, as a form would write them."""

from __future__ import annotations

import pytest
from rules_samples import BAD_EMAILS, BAD_TEXTS, BAD_YEARS, GOOD_EMAILS, GOOD_TEXTS, GOOD_YEARS, refused_by

from app import rules
from app.repository import Library
from app.rules import FIRST_CARD, FIRST_LEGACY_CARD, MAX_CARD
from app.web.parsing import optional_email, optional_text, optional_year, parse_user_id, required_email, required_text


# -- text: a reader's name on the UI form and through the API; a book's title through the API -----------------
@pytest.mark.parametrize("name", BAD_TEXTS, ids=repr)
async def test_the_form_and_the_api_refuse_the_same_names(library: Library, name: object) -> None:
    # The UI's "Add a reader" form calls the repository with what was typed.
    assert await refused_by(lambda: library.create_user(name, "rita@example.org"), "name")  # type: ignore[arg-type]
    # The API parses the JSON body (POST and PUT require the field, PATCH takes it when present).
    assert await refused_by(lambda: required_text({"name": name}, "name"), "name")
    assert await refused_by(lambda: optional_text({"name": name}, "name"), "name")
    assert await refused_by(lambda: rules.check_text(name, "name"), "name")


@pytest.mark.parametrize("name", GOOD_TEXTS, ids=repr)
async def test_the_form_and_the_api_accept_the_same_names(library: Library, name: str) -> None:
    assert not await refused_by(lambda: library.create_user(name, "rita@example.org"), "name")
    assert required_text({"name": name}, "name") == optional_text({"name": name}, "name") == name.strip()


@pytest.mark.parametrize("title", BAD_TEXTS, ids=repr)
async def test_a_title_is_refused_by_the_api_and_by_the_repository(library: Library, title: object) -> None:
    assert await refused_by(lambda: required_text({"title": title}, "title"), "title")
    assert await refused_by(lambda: library.create_book(title, "A", "G", None), "title")  # type: ignore[arg-type]


@pytest.mark.parametrize("title", GOOD_TEXTS, ids=repr)
async def test_a_title_is_accepted_by_the_api_and_by_the_repository(library: Library, title: str) -> None:
    assert required_text({"title": title}, "title") == title.strip()
    assert not await refused_by(lambda: library.create_book(title, "A", "G", None), "title")


# -- e-mail --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("email", BAD_EMAILS, ids=repr)
async def test_the_form_and_the_api_refuse_the_same_email_addresses(library: Library, email: object) -> None:
    assert await refused_by(lambda: library.create_user("Rita", email), "email")  # type: ignore[arg-type]
    assert await refused_by(lambda: required_email({"email": email}), "email")
    assert await refused_by(lambda: optional_email({"email": email}), "email")
    assert await refused_by(lambda: rules.check_email(email), "email")


@pytest.mark.parametrize("email", GOOD_EMAILS, ids=repr)
async def test_the_form_and_the_api_accept_the_same_email_addresses(library: Library, email: str) -> None:
    assert not await refused_by(lambda: library.create_user("Rita", email), "email")
    assert required_email({"email": email}) == optional_email({"email": email}) == email.strip()


# -- publication years ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("year", BAD_YEARS, ids=repr)
async def test_the_api_and_the_repository_refuse_the_same_years(library: Library, year: object) -> None:
    assert await refused_by(lambda: optional_year({"published_year": year}), "published_year")
    assert await refused_by(lambda: library.create_book("T", "A", "G", year), "published_year")  # type: ignore[arg-type]
    assert await refused_by(lambda: rules.check_year(year), "published_year")


@pytest.mark.parametrize("year", GOOD_YEARS, ids=repr)
async def test_the_api_and_the_repository_accept_the_same_years(library: Library, year: int | None) -> None:
    assert optional_year({"published_year": year}) == year
    assert not await refused_by(lambda: library.create_book("T", "A", "G", year), "published_year")


# -- card numbers and page sizes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("card", [FIRST_CARD - 1, -1, MAX_CARD + 1, True, "7", 7.5])
async def test_the_api_and_the_repository_refuse_the_same_card_numbers(library: Library, card: object) -> None:
    assert await refused_by(lambda: parse_user_id(card), "user_id")
    assert await refused_by(lambda: library.create_user("Rita", "r@example.org", card), "user_id")  # type: ignore[arg-type]


# Cards at the top of the range: written for real, and deleted again, since other tests take MAX_CARD for a card
# nobody has (test_api.py's 404s): run after this one, they found a reader there.
@pytest.mark.parametrize("card", [MAX_CARD - 1, MAX_CARD])
async def test_the_api_and_the_repository_accept_the_same_card_numbers(library: Library, card: int) -> None:
    assert parse_user_id(card) == card
    try:
        assert not await refused_by(lambda: library.create_user("Rita", "r@example.org", card), "user_id")
    finally:
        await library.delete_user(card)


@pytest.mark.parametrize("card", [FIRST_LEGACY_CARD - 1, MAX_CARD + 1, True])
async def test_the_earlier_systems_endpoints_and_the_repository_agree_on_cards(library: Library, card: object) -> None:
    assert await refused_by(lambda: parse_user_id(card, minimum=FIRST_LEGACY_CARD), "user_id")
    assert await refused_by(lambda: library.register_card(card), "user_id")  # type: ignore[arg-type]
    for good in (FIRST_LEGACY_CARD, MAX_CARD):
        assert parse_user_id(good, minimum=FIRST_LEGACY_CARD) == good
        assert not await refused_by(lambda g=good: library.register_card(g), "user_id")
    await library.delete_user(MAX_CARD)  # (card 0 is the earlier system's scripts', which register it anyway)
