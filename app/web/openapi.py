"""The OpenAPI 3 description of the JSON API, served at /openapi.json.

tests/integration/test_openapi_contract.py runs schemathesis against the running app with this document, so
an endpoint that changes without it fails the tests.
"""

from __future__ import annotations

from typing import Any

from app.models import HoldEnd, Role
from app.rules import (
    DEFAULT_PAGE_SIZE,
    EMAIL_PATTERN,
    FIRST_CARD,
    FIRST_LEGACY_CARD,
    MAX_CARD,
    MAX_DEVICE_TOKEN,
    MAX_IDEMPOTENCY_KEY,
    MAX_PAGE_SIZE,
    MAX_PAGE_TOKEN,
    MAX_PIN,
    MAX_TEXT,
    MIN_EMAIL_LENGTH,
    MIN_PIN,
    MIN_STAFF_PIN,
    MIN_YEAR,
    NOT_BLANK,
    TIME_UUID_PATTERN,
    UNPAGED_BOOKS,
    latest_year,
    max_length,
)

UUID_SCHEMA = {"type": "string", "format": "uuid"}
# An optional id that may also be sent as null, meaning "not given" (as older clients do).
OPTIONAL_UUID = {"type": ["string", "null"], "format": "uuid"}
# Every limit below is app/rules.py's, the one the parsers and the repository apply.
USER_ID_SCHEMA = {"type": "integer", "minimum": FIRST_CARD, "maximum": MAX_CARD}


def _text_schema(field: str) -> dict[str, Any]:
    """Text the repository accepts: 1 to max_length(field) characters with something other than white space."""
    return {"type": "string", "minLength": 1, "maxLength": max_length(field), "pattern": NOT_BLANK}


def _year_schema() -> dict[str, Any]:
    # The repository refuses years after next year; the document is built at start-up, so it says the same.
    return {"type": ["integer", "null"], "minimum": MIN_YEAR, "maximum": latest_year()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


UNAVAILABLE = {
    "description": "Cassandra cannot reach the configured consistency; retry after the given seconds",
    "headers": {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
BAD_REQUEST = _error("Malformed input; `field` names the offending field")
NOT_FOUND = _error("No such book, reader or reservation")
FORBIDDEN = _error("Not the caller's: another reader's reservation or card, or staff work")
UNAUTHENTICATED = {
    "description": "No valid bearer token: none, expired, revoked or forged (sign in with POST /api/session)",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
TOO_LARGE = _error("The body is larger than the service takes (MAX_BODY_BYTES)")
NOT_JSON = _error("The body is not sent as application/json")
LOCKED = {
    "description": "Too many sign-in attempts for this card: try again after the given seconds",
    "headers": {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
# Who may call what (the handlers' ACCESS, app/access.py): anyone, with or without a token; staff only; anything
# else needs a signed-in caller. Every operation gets its security and its 401 (and 403) from these.
PUBLIC_OPERATIONS = {
    ("/health", "get"),
    ("/metrics", "get"),
    ("/api/books", "get"),
    ("/api/books/{book_id}", "get"),
    ("/api/session", "post"),
    ("/make_reservation", "post"),
    ("/update_reservation", "post"),
    ("/remove_reservation", "post"),
}
STAFF_OPERATIONS = {
    ("/api/books", "post"),
    ("/api/books/{book_id}", "put"),
    ("/api/books/{book_id}", "patch"),
    ("/api/books/{book_id}", "delete"),
    ("/api/users", "get"),
    ("/api/users", "post"),
    ("/api/users/{user_id}", "delete"),
}
METHODS = ("get", "put", "post", "patch", "delete")
CONFLICT = _error("The book is taken, or the row is still in use")
LOCATION = {"Location": {"schema": {"type": "string"}, "description": "The new resource's URL"}}
PAGING_HEADERS = {
    "X-Next-Page": {"schema": {"type": "string"}, "description": "Token of the next page; absent on the last"},
    "Link": {"schema": {"type": "string"}, "description": 'The next page\'s URL, rel="next"'},
}


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


PAGE_PARAMS = [
    _param(
        "page_size",
        "query",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        f"Items per page ({DEFAULT_PAGE_SIZE}; without page_size and page, the books' first {UNPAGED_BOOKS} and "
        "every reservation)",
    ),
    _param(
        "page",
        "query",
        {"type": "string", "pattern": "^[A-Za-z0-9_=.-]*$", "maxLength": MAX_PAGE_TOKEN},
        "Token from the X-Next-Page header of the previous page",
    ),
]
FILTER_SCHEMA = {"type": "string", "maxLength": MAX_TEXT}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _legacy(summary: str, success: int, success_description: str) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["earlier system"],
            "summary": summary,
            "requestBody": _body(_ref("LegacyRequest")),
            "responses": {
                str(success): _json(_ref("LegacyMessage"), success_description),
                "400": BAD_REQUEST,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
                "409": CONFLICT,
                "503": UNAVAILABLE,
            },
        }
    }


def document(*, production: bool = False) -> dict[str, Any]:
    """The document of the service as it runs: in production without the earlier system's endpoints (they answer
    404 there) and with GET /api/reservations for signed-in callers only; in development as it answers there."""
    book_path = [_param("book_id", "path", UUID_SCHEMA, "The book's id")]
    user_path = [_param("user_id", "path", USER_ID_SCHEMA, "The reader's card number")]
    reservation_path = [_param("reservation_id", "path", UUID_SCHEMA, "The reservation's id")]
    result: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Library reservations",
            "version": "1.0.0",
            "description": (
                "Books, readers and reservations on Apache Cassandra; a book is never held by two readers. "
                "Listings answer a bare JSON array (as the earlier system did); the next page's token is in "
                'the X-Next-Page header and a Link header with rel="next". Every error answer is a JSON '
                'object with an "error" key. Sign in with POST /api/session and send the token as '
                "`Authorization: Bearer <token>`: a reader acts on their own card, a librarian on anyone's. The "
                "earlier system's endpoints answer only where the service runs for development."
            ),
        },
        "paths": {
            "/health": {
                "get": {
                    "summary": "Is Cassandra reachable at the configured consistency",
                    "responses": {"200": _json(_ref("Health"), "Reachable"), "503": UNAVAILABLE},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "The service's metrics, in the Prometheus text format (development only: production "
                    "serves them on its admin port, METRICS_PORT)",
                    "responses": {
                        "200": {
                            "description": "Counters, gauges and histograms of this instance",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/api/books": {
                "get": {
                    "tags": ["books"],
                    "summary": "A page of the catalogue, each book with its availability",
                    "parameters": [
                        _param("genre", "query", FILTER_SCHEMA, "Exact genre, any case"),
                        _param("author", "query", FILTER_SCHEMA, "Exact author, any case"),
                        _param(
                            "q",
                            "query",
                            FILTER_SCHEMA,
                            "Words, or beginnings of words, of the title, author or genre; all must match "
                            "(any case, any accents)",
                        ),
                        *PAGE_PARAMS,
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Book")}, "One page of books", PAGING_HEADERS),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
                "post": {
                    "tags": ["books"],
                    "summary": "Add a book (with book_id: write that book, so imports can run twice)",
                    "requestBody": _body(_ref("BookCreate")),
                    "responses": {
                        "201": _json(_ref("Book"), "Added", LOCATION),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/books/{book_id}": {
                "parameters": book_path,
                "get": {
                    "tags": ["books"],
                    "summary": "One book and whether it is available",
                    "responses": {
                        "200": _json(_ref("Book"), "The book"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
                "put": {
                    "tags": ["books"],
                    "summary": "Replace a book's description",
                    "requestBody": _body(_ref("BookCreate")),
                    "responses": {
                        "200": _json(_ref("Book"), "Updated"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
                "patch": {
                    "tags": ["books"],
                    "summary": "Change some fields of a book",
                    "requestBody": _body(_ref("BookPatch")),
                    "responses": {
                        "200": _json(_ref("Book"), "Updated"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
                "delete": {
                    "tags": ["books"],
                    "summary": "Remove a book that nobody holds",
                    "responses": {
                        "204": {"description": "Removed"},
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "409": CONFLICT,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/session": {
                "get": {
                    "tags": ["session"],
                    "summary": "Who the bearer token signs in",
                    "responses": {"200": _json(_ref("Caller"), "The caller"), "503": UNAVAILABLE},
                },
                "post": {
                    "tags": ["session"],
                    "summary": "Sign in with card number and PIN: a bearer token for the other calls",
                    "description": "Send the token as `Authorization: Bearer <token>`. It lasts `expires_in` "
                    "seconds, or until signed out or revoked. A wrong card number and a wrong PIN get the same "
                    "answer; repeated attempts lock the card for a while (429), whether or not it exists.",
                    "security": [],
                    "requestBody": _body(_ref("SessionCreate")),
                    "responses": {
                        "201": _json(_ref("Session"), "Signed in"),
                        "400": BAD_REQUEST,
                        "429": LOCKED,
                        "503": UNAVAILABLE,
                    },
                },
                "delete": {
                    "tags": ["session"],
                    "summary": "Sign out: the bearer token stops working on every instance",
                    "responses": {"204": {"description": "Signed out"}, "503": UNAVAILABLE},
                },
            },
            "/api/users/{user_id}/sessions": {
                "parameters": user_path,
                "delete": {
                    "tags": ["session"],
                    "summary": "Sign a card out everywhere (its own holder, or a librarian)",
                    "responses": {
                        "200": _json(_ref("SessionsEnded"), "Every session of the card ended"),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/users": {
                "get": {
                    "tags": ["users"],
                    "summary": "A page of readers, or of those a search finds",
                    "parameters": [
                        _param(
                            "q",
                            "query",
                            FILTER_SCHEMA,
                            "Words, or beginnings of words, of the reader's name or e-mail address; all must match "
                            "(any case, any accents), as the books' q",
                        ),
                        *PAGE_PARAMS,
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("User")}, "One page of readers", PAGING_HEADERS),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
                "post": {
                    "tags": ["users"],
                    "summary": "Add a reader (without user_id, a free card number is handed out)",
                    "requestBody": _body(_ref("UserCreate")),
                    "responses": {
                        "201": _json(_ref("User"), "Added", LOCATION),
                        "400": BAD_REQUEST,
                        "409": CONFLICT,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/users/{user_id}": {
                "parameters": user_path,
                "get": {
                    "tags": ["users"],
                    "summary": "One reader",
                    "responses": {
                        "200": _json(_ref("User"), "The reader"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
                "put": {
                    "tags": ["users"],
                    "summary": "Replace a reader's name and e-mail",
                    "requestBody": _body(_ref("UserUpdate")),
                    "responses": {
                        "200": _json(_ref("User"), "Updated"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
                "patch": {
                    "tags": ["users"],
                    "summary": "Change a reader's name or e-mail",
                    "requestBody": _body(_ref("UserPatch")),
                    "responses": {
                        "200": _json(_ref("User"), "Updated"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
                "delete": {
                    "tags": ["users"],
                    "summary": "Remove a reader who holds no reservation",
                    "responses": {
                        "204": {"description": "Removed"},
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "409": CONFLICT,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/reservations": {
                "get": {
                    "tags": ["reservations"],
                    "summary": "Active reservations: all, a reader's (user_id) or a book's (book_id)",
                    "description": "With no parameter at all: every reservation, streamed as one array, as the "
                    "earlier system answered. Otherwise one page.",
                    "parameters": [
                        _param("user_id", "query", USER_ID_SCHEMA, "Only this reader's reservations"),
                        _param("book_id", "query", UUID_SCHEMA, "Only this book's reservation"),
                        *PAGE_PARAMS,
                    ],
                    "responses": {
                        "200": _json(
                            {"type": "array", "items": _ref("Reservation")}, "One page of reservations", PAGING_HEADERS
                        ),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
                "post": {
                    "tags": ["reservations"],
                    "summary": "Reserve a book for a reader",
                    "requestBody": _body(_ref("ReservationCreate")),
                    "responses": {
                        "201": _json(_ref("Reservation"), "Reserved", LOCATION),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "409": CONFLICT,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/books/{book_id}/queue": {
                "parameters": book_path,
                "get": {
                    "tags": ["queues"],
                    "summary": "How many wait for the book, and the caller's place (a librarian: every place)",
                    "responses": {
                        "200": _json(_ref("Queue"), "The queue"),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
                "post": {
                    "tags": ["queues"],
                    "summary": "Join the queue of a book another reader holds; a free book is reserved at once",
                    "requestBody": _body(_ref("QueueJoin")),
                    "responses": {
                        "201": _json(_ref("Joined"), "In the queue (waiting), or reserved (ready)", LOCATION),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "409": _error("The caller holds the book or waits for it already"),
                        "503": UNAVAILABLE,
                    },
                },
                "delete": {
                    "tags": ["queues"],
                    "summary": "Leave the queue (should the book have come meanwhile, its reservation is cancelled)",
                    "parameters": [
                        _param("user_id", "query", USER_ID_SCHEMA, "The reader, if not the caller (librarians)")
                    ],
                    "responses": {
                        "204": {"description": "Left"},
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/books/{book_id}/queue/suspension": {
                "parameters": book_path,
                "put": {
                    "tags": ["queues"],
                    "summary": "Suspend one's place in the queue until a date: it is kept, and passed over until then",
                    "requestBody": _body(_ref("Suspension")),
                    "responses": {
                        "200": _json(_ref("Place"), "The place, suspended"),
                        "400": BAD_REQUEST,
                        "422": _error("The date has passed, or is more than a year ahead"),
                        "404": _error("Not in the book's queue"),
                        "409": _error("The place is suspended already"),
                        "503": UNAVAILABLE,
                    },
                },
                "delete": {
                    "tags": ["queues"],
                    "summary": "Resume a suspended place; a free book is reserved for the reader at once",
                    "parameters": [
                        _param("user_id", "query", USER_ID_SCHEMA, "The reader, if not the caller (librarians)")
                    ],
                    "responses": {
                        "200": _json(_ref("Joined"), "In the queue again (waiting), or reserved (ready)"),
                        "400": BAD_REQUEST,
                        "404": _error("Not in the book's queue"),
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/books/{book_id}/loan": {
                "parameters": book_path,
                "post": {
                    "tags": ["desk"],
                    "summary": "The reader holding the book collected it: on loan until returned (librarians)",
                    "responses": {
                        "200": _json(_ref("Loan"), "On loan"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "409": _error("Nobody holds the book ready, or it is on loan already"),
                        "503": UNAVAILABLE,
                    },
                },
                "delete": {
                    "tags": ["desk"],
                    "summary": "The book on loan came back: it goes to the next reader in its queue (librarians)",
                    "responses": {
                        "200": _json(_ref("Loan"), "The loan that ended"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "409": _error("The book is not on loan"),
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/users/{user_id}/history": {
                "parameters": user_path,
                "get": {
                    "tags": ["queues"],
                    "summary": "A reader's past holds, newest first (cancelled, expired, left the queue)",
                    "parameters": [
                        _param(
                            "before",
                            "query",
                            {"type": "string", "pattern": TIME_UUID_PATTERN},
                            "The `older` of the last answer: the holds before it",
                        )
                    ],
                    "responses": {
                        "200": _json(_ref("PastHolds"), "Their past holds"),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/users/{user_id}/queues": {
                "parameters": user_path,
                "get": {
                    "tags": ["queues"],
                    "summary": "The queues a reader is in, with their place in each",
                    "responses": {
                        "200": _json(_ref("Places"), "Their places"),
                        "400": BAD_REQUEST,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/api/reservations/{reservation_id}": {
                "parameters": reservation_path,
                "get": {
                    "tags": ["reservations"],
                    "summary": "One reservation",
                    "responses": {
                        "200": _json(_ref("Reservation"), "The reservation"),
                        "400": BAD_REQUEST,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
                "patch": {
                    "tags": ["reservations"],
                    "summary": "Move the caller's reservation to book_id, or renew it when book_id is left out",
                    "requestBody": _body(_ref("ReservationChange")),
                    "responses": {
                        "200": _json(_ref("Reservation"), "Moved or renewed"),
                        "400": BAD_REQUEST,
                        "403": FORBIDDEN,
                        "404": NOT_FOUND,
                        "409": CONFLICT,
                        "503": UNAVAILABLE,
                    },
                },
                "delete": {
                    "tags": ["reservations"],
                    "summary": "Cancel the caller's reservation (a librarian: anyone's)",
                    "parameters": [
                        _param("user_id", "query", USER_ID_SCHEMA, "The reader, if not the caller (librarians)")
                    ],
                    "responses": {
                        "204": {"description": "Cancelled"},
                        "400": BAD_REQUEST,
                        "403": FORBIDDEN,
                        "404": NOT_FOUND,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/make_reservation": _legacy("Reserve a book (earlier system)", 201, "Reserved"),
            "/update_reservation": _legacy("Renew the caller's reservation of a book (earlier system)", 200, "Renewed"),
            "/remove_reservation": _legacy(
                "Cancel the caller's reservation of a book (earlier system)", 200, "Cancelled"
            ),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An opaque token from POST /api/session",
                }
            },
        },
    }
    if production:
        for path in [p for p in result["paths"] if not p.startswith(("/api/", "/health"))]:
            del result["paths"][path]
    _secure(result["paths"], production)
    return result


def _secure(paths: dict[str, Any], production: bool) -> None:
    """Each operation's security and its 401/403 answers, from PUBLIC_OPERATIONS and STAFF_OPERATIONS; the 413 and
    415 of every operation that takes a body (app/web/guards.py)."""
    public = PUBLIC_OPERATIONS if production else PUBLIC_OPERATIONS | {("/api/reservations", "get")}
    for path, item in paths.items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation["responses"]
            if "requestBody" in operation:
                responses.setdefault("413", TOO_LARGE)
                if path.startswith("/api/"):
                    responses.setdefault("415", NOT_JSON)
            if (path, method) in public:
                # Anyone; a token that is sent must be valid (a bad one is a 401, so a client knows to sign in again).
                operation.setdefault("security", [{}, {"bearer": []}])
                if path.startswith("/api/"):
                    responses.setdefault("401", UNAUTHENTICATED)
                continue
            operation["security"] = [{"bearer": []}]
            responses.setdefault("401", UNAUTHENTICATED)
            responses.setdefault("403", FORBIDDEN)


def _schemas() -> dict[str, Any]:
    timestamp = {"type": ["string", "null"], "format": "date-time"}
    role = {"type": "string", "enum": [r.value for r in Role]}
    pin = {"type": ["string", "null"], "minLength": MIN_PIN, "maxLength": MAX_PIN}
    account_fields = {
        "pin": {
            **pin,
            "description": "A new PIN: its own holder (a librarian too) also sends current_pin; a librarian sets"
            " another card's without it",
        },
        "current_pin": {"type": ["string", "null"], "maxLength": MAX_PIN, "description": "The PIN being changed"},
        "active": {"type": ["boolean", "null"], "description": "Librarians only: false deactivates the card"},
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What went wrong, for people"},
                "field": {"type": "string", "description": "The request field at fault (400 only)"},
                "attempts_left": {
                    "type": "integer",
                    "description": "A refused sign-in: wrong PINs this client may still try before it is locked out",
                },
                "deactivated": {
                    "type": "boolean",
                    "description": "A refused sign-in with the right PIN: staff have deactivated the card",
                },
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "consistency"],
            "properties": {
                "status": {"type": "string", "enum": ["ok"]},
                "consistency": {"type": "string"},
            },
        },
        "Book": {
            "type": "object",
            "required": ["book_id", "title", "author", "genre", "published_year"],
            "properties": {
                "book_id": UUID_SCHEMA,
                "title": {"type": "string"},
                "author": {"type": "string"},
                "genre": {"type": "string"},
                "published_year": {"type": ["integer", "null"]},
                "available": {"type": "boolean", "description": "No reservation holds the book"},
            },
        },
        "BookCreate": {
            "type": "object",
            "required": ["title", "author", "genre"],
            "properties": {
                "book_id": OPTIONAL_UUID,
                "title": _text_schema("title"),
                "author": _text_schema("author"),
                "genre": _text_schema("genre"),
                "published_year": _year_schema(),
            },
        },
        "BookPatch": {
            "type": "object",
            "properties": {
                "title": _text_schema("title"),
                "author": _text_schema("author"),
                "genre": _text_schema("genre"),
                "published_year": _year_schema(),
            },
        },
        "User": {
            "type": "object",
            "required": ["user_id", "name", "email", "joined_at", "role", "active"],
            "properties": {
                "user_id": {"type": "integer"},
                "name": {"type": "string"},
                "email": {"type": "string"},
                "joined_at": timestamp,
                "role": role,
                "active": {"type": "boolean", "description": "False: deactivated by staff, cannot sign in"},
            },
        },
        "UserCreate": {
            "type": "object",
            "required": ["name", "email"],
            # A librarian's password is longer than a reader's PIN (app/rules.py check_pin).
            "if": {"properties": {"role": {"const": Role.LIBRARIAN.value}}, "required": ["role"]},
            "then": {"properties": {"pin": {"type": ["string", "null"], "minLength": MIN_STAFF_PIN}}},
            "properties": {
                "user_id": {**USER_ID_SCHEMA, "type": ["integer", "null"], "description": "Leave out for a new card"},
                "name": _text_schema("name"),
                "email": _email_schema(),
                "pin": {**pin, "description": "Lets the card sign in at once (a librarian's: 10 or more characters)"},
                "role": {"type": ["string", "null"], "enum": [*role["enum"], None]},
            },
        },
        "UserUpdate": {
            "type": "object",
            "required": ["name", "email"],
            "properties": {"name": _text_schema("name"), "email": _email_schema(), **account_fields},
        },
        "UserPatch": {
            "type": "object",
            "properties": {"name": _text_schema("name"), "email": _email_schema(), **account_fields},
        },
        "SessionCreate": {
            "type": "object",
            "required": ["user_id", "pin"],
            "properties": {
                "user_id": USER_ID_SCHEMA,
                "pin": {"type": "string", "maxLength": MAX_PIN},
                "device": {
                    "type": ["string", "null"],
                    "maxLength": MAX_DEVICE_TOKEN,
                    "description": "The `device` an earlier sign-in to this card answered: this client's attempts "
                    "then count apart from strangers' guesses, so their wrong PINs cannot lock it out",
                },
            },
        },
        "Caller": {
            "type": "object",
            "required": ["user_id", "name", "role"],
            "properties": {"user_id": {"type": "integer"}, "name": {"type": "string"}, "role": role},
        },
        "Session": {
            "type": "object",
            "required": ["token", "token_type", "expires_in", "device", "user_id", "name", "role"],
            "properties": {
                "token": {"type": "string", "description": "Send as `Authorization: Bearer <token>`"},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": "Seconds the token lasts"},
                "device": {"type": "string", "description": "Send back as `device` at the next sign-in to this card"},
                "user_id": {"type": "integer"},
                "name": {"type": "string"},
                "role": role,
            },
        },
        "SessionsEnded": {
            "type": "object",
            "required": ["user_id", "sessions_ended"],
            "properties": {"user_id": {"type": "integer"}, "sessions_ended": {"type": "integer"}},
        },
        "Place": {
            "type": "object",
            "required": ["status", "reservation_id", "book_id", "user_id", "position", "waiting"],
            "properties": {
                "status": {"type": "string", "enum": ["waiting"]},
                "reservation_id": {
                    **UUID_SCHEMA,
                    "description": "The reservation they will hold when it is their turn",
                },
                "book_id": UUID_SCHEMA,
                "user_id": {"type": "integer"},
                "position": {"type": "integer", "description": "1: next in line"},
                "waiting": {"type": "integer", "description": "How many are in the queue in all"},
                "suspended_until": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "Suspended until then: passed over, keeping its position (null: active)",
                },
            },
        },
        "Suspension": {
            "type": "object",
            "required": ["until"],
            "properties": {
                "until": {
                    "type": "string",
                    "format": "date",
                    "description": "A date to come, at most a year ahead: the place is active again from the start of "
                    "that day (the library's time). A time with its offset is taken too.",
                },
                "user_id": {**USER_ID_SCHEMA, "description": "The reader, if not the caller (librarians only)"},
            },
        },
        "Loan": {
            "type": "object",
            "required": ["status", "reservation_id", "book_id", "user_id", "reserved_at"],
            "properties": {
                "status": {"type": "string", "enum": ["on_loan", "returned"]},
                "reservation_id": UUID_SCHEMA,
                "book_id": UUID_SCHEMA,
                "user_id": {"type": "integer"},
                "reserved_at": timestamp,
                "ready_until": timestamp,
                "lent_at": timestamp,
            },
        },
        "Joined": {
            "oneOf": [
                _ref("Place"),
                {
                    "type": "object",
                    "required": ["status", "reservation_id", "book_id", "user_id", "reserved_at"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ready"]},
                        "reservation_id": UUID_SCHEMA,
                        "book_id": UUID_SCHEMA,
                        "user_id": {"type": "integer"},
                        "reserved_at": timestamp,
                        "ready_until": timestamp,
                        "lent_at": timestamp,
                    },
                },
            ]
        },
        "Queue": {
            "type": "object",
            "required": ["waiting", "places"],
            "properties": {
                "waiting": {"type": "integer"},
                "places": {"type": "array", "items": _ref("Place")},
            },
        },
        "Places": {
            "type": "object",
            "required": ["places"],
            "properties": {"places": {"type": "array", "items": _ref("Place")}},
        },
        "PastHolds": {
            "type": "object",
            "required": ["items", "older"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["ended_at", "outcome", "reservation_id", "book_id", "since"],
                        "properties": {
                            "ended_at": timestamp,
                            "outcome": {"type": "string", "enum": [e.value for e in HoldEnd]},
                            "reservation_id": UUID_SCHEMA,
                            "book_id": UUID_SCHEMA,
                            "since": timestamp,
                        },
                    },
                },
                "older": {"type": ["string", "null"], "description": "Ask with before=this for the older ones"},
            },
        },
        "QueueJoin": {
            "type": "object",
            "properties": {
                "user_id": {**USER_ID_SCHEMA, "description": "The reader, if not the caller (librarians only)"},
            },
        },
        "Reservation": {
            "type": "object",
            "required": ["reservation_id", "book_id", "user_id", "reserved_at"],
            "properties": {
                "reservation_id": UUID_SCHEMA,
                "book_id": UUID_SCHEMA,
                "user_id": {"type": "integer"},
                "reserved_at": timestamp,
                "ready_until": {
                    **timestamp,
                    "description": "Collect it by then: after that it goes to the next reader (null: on loan, or "
                    "made before holds had a pickup window)",
                },
                "lent_at": {**timestamp, "description": "Collected at the desk then: on loan until returned"},
            },
        },
        "ReservationCreate": {
            "type": "object",
            "required": ["book_id"],
            "properties": {
                "book_id": UUID_SCHEMA,
                "user_id": {**USER_ID_SCHEMA, "description": "The reader, if not the caller (librarians only)"},
                "idempotency_key": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": MAX_IDEMPOTENCY_KEY,
                    "description": "Send the same key again to retry safely: the retry answers what became of the "
                    "first request and never reserves twice. The service assigns the reservation id.",
                },
            },
        },
        "ReservationChange": {
            "type": "object",
            "properties": {
                "user_id": {**USER_ID_SCHEMA, "description": "The reader, if not the caller (librarians only)"},
                "book_id": {**OPTIONAL_UUID, "description": "The new book; leave out (or null) to renew"},
            },
        },
        "LegacyRequest": {
            "type": "object",
            "required": ["book_id", "user_id"],
            "properties": {
                "book_id": UUID_SCHEMA,
                "user_id": {
                    **USER_ID_SCHEMA,
                    "minimum": FIRST_LEGACY_CARD,
                    "description": "Any card number; a new one becomes a reader",
                },
            },
        },
        "LegacyMessage": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}, "reservation": _ref("Reservation")},
        },
    }


def _email_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": MIN_EMAIL_LENGTH,
        "maxLength": max_length("email"),
        "pattern": rf"^\s*{EMAIL_PATTERN}\s*$",
    }
