"""Turning what a client sent into typed values, or an `InvalidInput` that names the field.

Pure functions with no I/O: the handlers call them before touching the database, so a client's
mistake is always a 400 with a message, never an exception deeper down.
"""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

from app.models import InvalidInput
from app.rules import (
    DEFAULT_PAGE_SIZE,
    FIRST_CARD,
    MAX_CARD,
    MAX_PAGE_SIZE,
    MAX_TEXT,
    TIME_UUID_PATTERN,
    check_email,
    check_storable,
    check_text,
    check_year,
)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; an empty body counts as `{}` so optional-only requests need none."""
    if not body or not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"the request body is not valid JSON: {error}", field="body") from error
    except RecursionError as error:
        # json.loads recurses once per nested array or object: "[[[[..." 100,000 deep exhausts the stack.
        raise InvalidInput("the request body is not valid JSON: nested too deeply", field="body") from error
    if not isinstance(value, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    return value


def parse_uuid(value: object, field: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a UUID string", field=field)
    try:
        return UUID(value.strip())
    except ValueError as error:
        raise InvalidInput(f"{field} is not a valid UUID: {value!r}", field=field) from error


def parse_time_uuid(value: object, field: str) -> UUID:
    """A time UUID (version 1), such as a history page's cursor: Cassandra compares a timeuuid only with another."""
    if not isinstance(value, str) or not re.fullmatch(TIME_UUID_PATTERN, value.strip()):
        raise InvalidInput(f"{field} must be a time UUID, as an earlier answer gave it: {value!r}", field=field)
    return parse_uuid(value, field)


def parse_user_id(value: object, field: str = "user_id", *, minimum: int = FIRST_CARD) -> int:
    """A reader's card number from a JSON body: a JSON number (7 or 7.0), never a string or true/false. The earlier
    system's endpoints take card 0 too (`minimum=0`)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer, got {value!r}", field=field)
    if not minimum <= value <= MAX_CARD:
        raise InvalidInput(f"{field} must be between {minimum} and {MAX_CARD}", field=field)
    return value


def _digits(text: str, most: int) -> int | None:
    """Decimal digits as an int, or None if they are not ASCII digits or spell a number above `most`. The digits are
    counted before int() reads them: Python refuses more than 4,300 digits with a ValueError (a 500 if let through),
    and no number this service accepts has more digits than its largest value."""
    significant = text.lstrip("0") or "0"
    if not text.isascii() or not text.isdigit() or len(significant) > len(str(most)):
        return None
    number = int(significant)
    return number if number <= most else None


def parse_user_id_text(value: str, field: str = "user_id") -> int:
    """A reader's card number from a path, a query string, a form or a cookie: decimal digits, and nothing around
    them. A path's or a query's value is taken as the client sent it (the API documents an integer: " 7" or a
    no-break space before the 7 is not one, and Python's int() would have read both as 7, found by the OpenAPI
    contract test); a form's box is trimmed by its handler first."""
    if not value.isascii() or not value.isdigit():
        raise InvalidInput(f"{field} must be a positive integer, got {value[:40]!r}", field=field)
    number = _digits(value, MAX_CARD)
    if number is None:
        raise InvalidInput(f"{field} must be between {FIRST_CARD} and {MAX_CARD}", field=field)
    return parse_user_id(number, field)


def parse_page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    number = _digits(value.strip(), MAX_PAGE_SIZE)
    if number is None or number < 1:
        raise InvalidInput(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}", field="page_size")
    return number


def required(data: dict[str, Any], field: str) -> Any:
    if field not in data or data[field] is None:
        raise InvalidInput(f"{field} is required", field=field)
    return data[field]


def optional_text(data: dict[str, Any], field: str) -> str | None:
    """A text field that may be left out (None); when present it must be a string, not null, and pass the same
    rule as a required one (app/rules.py, which the repository applies too). Returns it stripped."""
    if field not in data:
        return None
    value = data[field]
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    return check_text(value, field)


def required_text(data: dict[str, Any], field: str) -> str:
    return check_text(required(data, field), field)


def optional_email(data: dict[str, Any], field: str = "email") -> str | None:
    value = optional_text(data, field)
    return None if value is None else check_email(value, field)


def required_email(data: dict[str, Any], field: str = "email") -> str:
    return check_email(required(data, field), field)


def optional_year(data: dict[str, Any], field: str = "published_year") -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON does not tell 1999 from 1999.0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer year", field=field)
    return check_year(value, field)


def optional_text_param(value: str | None, field: str, max_length: int = MAX_TEXT) -> str | None:
    """A filter from the query string: blank means no filter."""
    if value is None or not value.strip():
        return None
    if len(value) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    return check_storable(value, field).strip()


def same_site_path(value: str, default: str = "/") -> str:
    r"""Where a form may send the browser back to (its `next` field): a path of this site, else `default`.

    Browsers forgive a lot in a Location: they drop tabs, CR and LF anywhere, strip leading and trailing spaces and
    control characters, and read a backslash as a slash, so "/\t/evil.example/" and "/\evil.example" both lead to
    another site, and CR/LF would not even make a valid header. Only a plain path is kept: it starts with one "/"
    and holds printable ASCII without white space or backslashes (the pages' own paths are exactly that)."""
    if not value.startswith("/") or value.startswith("//"):
        return default
    if not all("!" <= c <= "~" and c != "\\" for c in value):
        return default
    return value
