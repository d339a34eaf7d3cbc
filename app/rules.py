"""The service's input rules, each written once: limits, formats and defaults.

Everything that checks input imports them: the API's parsers (app/web/parsing.py), the repository (which the UI's
forms and the tools call directly), the OpenAPI document (app/web/openapi.py), the catalogue CSV importer
(seeder/catalogue_csv.py) and the settings and command-line tools. So a form, the API, the document and an import
can never disagree on what they accept.

Pure: no Cassandra, no Tornado, no I/O. A check raises `InvalidInput` naming the field, with the sentence the
client sees, so it can be called (and tested) without a database.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.models import InvalidInput, OutOfRange

# -- text: titles, authors, genres, readers' names and e-mail addresses, catalogue filters -------------------------
# Long enough for any real title or name, short enough that one row can never grow a page of the catalogue beyond
# what a person reads. Counted as sent (before stripping), which is all a JSON Schema maxLength can count.
MAX_TEXT = 300
# A field whose limit differs from MAX_TEXT is named here ({"title": 500} lets titles be longer); the parsers, the
# repository, the OpenAPI document and the CSV importer all ask `max_length(field)`.
TEXT_LIMITS: dict[str, int] = {}


def max_length(field: str) -> int:
    """The most characters a text field may hold."""
    return TEXT_LIMITS.get(field, MAX_TEXT)


# "Not blank" as the document's JSON Schema pattern says it: ECMA 262's \s lacks some characters that Python's
# str.strip() removes (U+001C..U+001F, U+0085), so those are named too. In Python, `value.strip()` is the rule.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"

# -- e-mail ---------------------------------------------------------------------------------------------------------
# Exactly one "@" with something on each side and no white space anywhere inside; white space around it is
# stripped. Not RFC 5322 (nobody's real address needs quoted local parts), but it refuses `a@b@c` and `a b@c d`.
_EMAIL_PART = r"[^@\s\x1c-\x1f\x85]+"
EMAIL_PATTERN = rf"{_EMAIL_PART}@{_EMAIL_PART}"
_EMAIL = re.compile(EMAIL_PATTERN)
MIN_EMAIL_LENGTH = 3  # "x@y"
EMAIL_EXAMPLE = "name@example.org"

# -- publication years ----------------------------------------------------------------------------------------------
# Old enough for the oldest written works a library catalogues (Sumerian tablets); negative years are BC.
MIN_YEAR = -3000


def latest_year() -> int:
    """The latest publication year accepted: next year's, because books are catalogued before they appear."""
    return datetime.now(UTC).year + 1


# -- card numbers (users.user_id) -----------------------------------------------------------------------------------
FIRST_CARD = 1
# The earlier system's scripts name readers by any card number, 0 included; its endpoints still take card 0.
FIRST_LEGACY_CARD = 0
MAX_CARD = 2**31 - 1  # users.user_id is a Cassandra int
# Card numbers handed out when the caller names none: seven digits, so they never meet seeded ids 1..N (the seeder
# writes at most HANDED_OUT_CARDS[0] - 1 readers).
HANDED_OUT_CARDS = (1_000_000, 9_999_999)
# Librarian cards the service itself makes, above every handed-out and seeded number: the demo librarian of
# `make run` (development only), and the one the tools sign in as when they already hold the database (the stress
# test, the bench, the test suite); the tools' card has no PIN, so nobody can sign in as it.
DEMO_LIBRARIAN_CARD = 10_000_000
TOOL_LIBRARIAN_CARD = 10_000_001

# -- pages of listings ----------------------------------------------------------------------------------------------
DEFAULT_PAGE_SIZE = 20
# A page is read in one Cassandra query and answered in one response: 200 rows keep both small.
MAX_PAGE_SIZE = 200
# Without page_size or page, the catalogue answers as the earlier system's did: its first 100 books.
UNPAGED_BOOKS = 100
# A page token is the key a page resumes after (a UUID or a card number, as JSON) plus a MAC, under 100 characters;
# anything longer was not given out by us.
MAX_PAGE_TOKEN = 200

# -- request ids (X-Request-Id) ---------------------------------------------------------------------------------------
# A request id sent by a client or a proxy is kept (logged with every line of its request, and echoed) only if it is
# this short and of these characters: those of UUIDs, of the usual tracing ids and of base64. Anything else, a control
# character that could forge a log line included, is replaced by an id of the service's own.
MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:+/=-]{{1,{MAX_REQUEST_ID}}}")


def is_sane_request_id(value: str | None) -> bool:
    return value is not None and _REQUEST_ID.fullmatch(value) is not None


# -- reservations ---------------------------------------------------------------------------------------------------
# Long enough for a UUID or a client's own request id with a prefix; it is hashed into the reservation's id.
MAX_IDEMPOTENCY_KEY = 200
# A hold's pickup window: how long a book that has become a reader's (reserved free, or handed to them from its
# queue) waits to be collected, and how often the reader may renew it (each renewal starts a new window). Settings
# may change both (HOLD_PICKUP_SECONDS, HOLD_RENEWALS).
PICKUP_SECONDS = 7 * 24 * 3600
MAX_RENEWALS = 2
# How often each instance looks for holds whose pickup window has passed (HOLD_SWEEP_SECONDS).
SWEEP_SECONDS = 30
# A reader may suspend their place in a book's queue until a date at most this far ahead (it keeps its place meanwhile).
MAX_SUSPEND_DAYS = 365
# How long a book's reservation history keeps a line (its TTL): a year of who held the book, for the desk.
BOOK_HISTORY_DAYS = 365
# The most lines of a book's history its page shows, newest first.
BOOK_HISTORY_SHOWN = 50
# How long a reader's history of past holds keeps a line (its TTL), and how many lines a page of it shows.
READER_HISTORY_DAYS = 365
READER_HISTORY_SHOWN = 20
# A page cursor of that history: a time UUID (version 1, RFC 4122's variant), which Cassandra compares with its keys.
TIME_UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-1[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"

# -- accounts: PINs, sessions, sign-in lockout -------------------------------------------------------------------------
# A reader's PIN (or password): at least 4 characters, as a library card's PIN; a librarian's at least 10, since a
# librarian's account acts for every reader. At most 128, so a hash never runs over a megabyte of "PIN".
MIN_PIN = 4
MIN_STAFF_PIN = 10
MAX_PIN = 128
# A session (a bearer token, or the UI's cookie) lasts a working day; signing out or a librarian's revoke ends it
# sooner. Cassandra's TTL removes it, so no instance has to.
SESSION_SECONDS = 12 * 3600
# The throttle on guessing PINs (app/repository/accounts.py; the README's "Guessing PINs" gives the rates): per card
# and per pool of clients (each device the card signed in on before, and every other client together), at most
# MAX_FAILED_SIGN_INS PIN checks in any LOCKOUT_SECONDS and MAX_SIGN_INS_PER_DAY in the day window, which is
# DAY_WINDOW_IN_LOCKOUTS lockouts long (a day at the default 15 minutes; SIGN_IN_LOCKOUT_SECONDS scales both).
MAX_FAILED_SIGN_INS = 5
LOCKOUT_SECONDS = 15 * 60
MAX_SIGN_INS_PER_DAY = 20
DAY_WINDOW_IN_LOCKOUTS = 96
# A device token (card, generation and a random id, sealed) is under 150 characters; a longer one was not ours.
MAX_DEVICE_TOKEN = 200
# How long a browser keeps its device cookie for a card.
DEVICE_COOKIE_DAYS = 365


def check_pin(value: object, *, staff: bool = False, field: str = "pin") -> str:
    """A PIN or password as chosen: a string of MIN_PIN (MIN_STAFF_PIN for a librarian) to MAX_PIN characters,
    storable as UTF-8. Never stripped: every character counts. Its words never repeat the PIN."""
    minimum = MIN_STAFF_PIN if staff else MIN_PIN
    if not isinstance(value, str) or not minimum <= len(value) <= MAX_PIN:
        who = "a librarian's password" if staff else "a PIN"
        raise InvalidInput(f"{who} must be {minimum} to {MAX_PIN} characters long", field=field)
    check_storable(value, field)
    return value


def check_pin_as_typed(value: object, field: str = "pin") -> str:
    """A PIN as typed to sign in or to prove who one is (`current_pin`): a string of at most MAX_PIN characters that
    can be hashed (`check_storable`). Its length is not checked against MIN_PIN: a wrong PIN is a wrong PIN."""
    return _short_string(value, field, MAX_PIN)


def check_device_token(value: object, field: str = "device") -> str | None:
    """A device token as a client sends it back (None: none): a string of at most MAX_DEVICE_TOKEN characters that can
    be stored. Whether it is one the service sealed for the card is the throttle's to find out; one that is not
    counts as no device at all."""
    return None if value is None else _short_string(value, field, MAX_DEVICE_TOKEN)


def _short_string(value: object, field: str, most: int) -> str:
    """A string of at most `most` characters, storable (`check_storable`), taken as it is (not stripped)."""
    if not isinstance(value, str) or len(value) > most:
        raise InvalidInput(f"{field} must be a string of at most {most} characters", field=field)
    return check_storable(value, field)


# -- replication ----------------------------------------------------------------------------------------------------
# One replica per Cassandra host, at most 3: three copies keep QUORUM reads and writes going with one node down, and
# more hosts add capacity, not copies. Used whenever CASSANDRA_REPLICATION does not say otherwise.
MAX_REPLICATION = 3


def replication_for(hosts: Sized) -> int:
    """The replication factor of a new keyspace on a cluster of these hosts (at least 1)."""
    return max(1, min(MAX_REPLICATION, len(hosts)))


# -- checks ---------------------------------------------------------------------------------------------------------
def check_storable(value: str, field: str) -> str:
    """Text that can be stored and hashed: UTF-8, so no unpaired surrogate, which a JSON body can spell as
    "\\ud800" (encoding it would raise deep inside the driver or a hash, a 500 instead of a 400)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidInput(
                f"{field} must not hold an unpaired surrogate (not storable as UTF-8)", field=field
            ) from error
    return value


def check_text(value: object, field: str) -> str:
    """A required text: a string with something other than white space, at most max_length(field) characters,
    that can be stored (`check_storable`). Returns it stripped."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    if len(value) > max_length(field):
        raise InvalidInput(f"{field} must be at most {max_length(field)} characters", field=field)
    return check_storable(value, field).strip()


def check_idempotency_key(value: object, field: str = "idempotency_key") -> str:
    """A client's idempotency key: 1 to MAX_IDEMPOTENCY_KEY characters, storable; it is hashed into the id."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"{field} must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters", field=field)
    return check_storable(value, field)


def check_email(value: object, field: str = "email") -> str:
    """An e-mail address (a text that matches EMAIL_PATTERN once stripped); returns it stripped."""
    email = check_text(value, field)
    if not _EMAIL.fullmatch(email):
        raise InvalidInput(f"{field} must look like {EMAIL_EXAMPLE}", field=field)
    return email


def year_in_range(year: int) -> bool:
    return MIN_YEAR <= year <= latest_year()


def check_year(value: object, field: str = "published_year") -> int | None:
    """A publication year (an int, not a bool) from MIN_YEAR to latest_year(), or None for "unknown"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not year_in_range(value):
        raise InvalidInput(f"{field} must be a whole year, not in the future", field=field)
    return value


def is_card_number(value: object, minimum: int = FIRST_CARD) -> bool:
    """Whether `value` is a card number (an int, not a bool) from `minimum` to MAX_CARD."""
    return not isinstance(value, bool) and isinstance(value, int) and minimum <= value <= MAX_CARD


def parse_suspension(value: object, time_zone: str, field: str = "until") -> datetime:
    """The end of a suspension, as UTC: a date ("2026-12-20": from the start of that day, the library's time) or a time
    with its offset ("2026-12-20T09:00:00+01:00")."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a date such as 2026-12-20", field=field)
    text = value.strip()
    try:
        if len(text) == 10:
            until = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=ZoneInfo(time_zone))
        else:
            until = datetime.fromisoformat(text)
            if until.tzinfo is None:
                raise ValueError("no offset")
        return until.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{field} must be a date such as 2026-12-20", field=field) from None


def check_suspension(until: datetime, *, now: datetime, field: str = "until") -> datetime:
    """A suspension's end must come after `now`, and at most MAX_SUSPEND_DAYS later (OutOfRange, a 422: the same date
    may be right another day)."""
    if until <= now:
        raise OutOfRange(f"{field} must be a date to come, not one that has passed", field=field)
    if until > now + timedelta(days=MAX_SUSPEND_DAYS):
        raise OutOfRange(f"{field} must be at most {MAX_SUSPEND_DAYS} days ahead", field=field)
    return until
