"""Inputs that every path of the service must refuse, and inputs that every path must accept, for the rules of
app/rules.py, and `refused_by`, the verdict of one path: shared by the unit tier (the parsers and the rules) and the
integration tier (the repository)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.models import InvalidInput
from app.rules import MAX_TEXT, MIN_YEAR, latest_year


async def refused_by(call: Callable[[], Any], field: str) -> bool:
    """Whether `call` (sync or async) refuses its input as InvalidInput naming `field`; False when it went through."""
    try:
        result = call()
        if hasattr(result, "__await__"):
            await result
    except InvalidInput as error:
        assert error.field == field, f"refused, but naming {error.field!r} instead of {field!r}: {error}"
        return True
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
