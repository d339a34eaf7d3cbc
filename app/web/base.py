"""What every handler shares: access to the library, who is calling, and the one mapping from domain errors to HTTP.

`status_for` is the only place that decides which status an error gets; the JSON handlers and the
pages both use it, so an API call and a form that hit the same problem say the same thing.

Every handler declares, per HTTP method, the least access it needs (`ACCESS`, levels from app/access.py);
`prepare` finds the caller (a bearer token for the API, the signed session cookie for the pages) and admits
or refuses the request before the method runs. A method a handler forgets to declare is staff-only.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from urllib.parse import urlencode

import tornado.web

from app.access import Access, Caller, admit
from app.models import (
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    LibraryError,
    NotFound,
    OutOfRange,
    TooManyAttempts,
    Unauthenticated,
)
from app.repository import Library
from app.service import LibraryService
from app.settings import Settings
from app.web.encoding import encode_json
from app.web.parsing import parse_json_object

log = logging.getLogger(__name__)
access_log = logging.getLogger("tornado.access")

# A token from POST /api/session is 43 characters; anything much longer was not given out by us.
MAX_TOKEN_LENGTH = 200
# Seconds a client should wait after a 503: a node that went down is usually back, or marked down by the
# driver, within a few seconds.
RETRY_AFTER_SECONDS = 5

_STATUS: tuple[tuple[type[LibraryError], int], ...] = (
    (OutOfRange, 422),
    (InvalidInput, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooManyAttempts, 429),
    (DatabaseUnavailable, 503),
)
# The realm of the API's bearer tokens, named in every 401's WWW-Authenticate.
REALM = "library"


def status_for(error: BaseException) -> int | None:
    """The HTTP status of a domain error, or None if the error is not one the client should see."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return None


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access line for a request: a server error always, anything else only at LOG_LEVEL=DEBUG. A line
    for every request is work and log volume under load that says nothing the client does not already know."""
    status = handler.get_status()
    level = logging.ERROR if status >= 500 else logging.DEBUG
    if access_log.isEnabledFor(level):
        request = handler.request
        access_log.log(
            level,
            "%d %s %s (%s) %.1f ms",
            status,
            request.method,
            request.uri,
            request.remote_ip,
            1000 * request.request_time(),
        )


def describe(error: BaseException | None, status: int, reason: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for an error raised while handling a request. Unknown errors give a bare
    500: their text may hold internals (CQL, hosts), so it goes to the log, not to the client."""
    if isinstance(error, LibraryError) and status_for(error) is not None:
        body: dict[str, Any] = {"error": str(error) or type(error).__name__}
        if isinstance(error, InvalidInput) and error.field:
            body["field"] = error.field
        if isinstance(error, Unauthenticated) and error.attempts_left is not None:
            body["attempts_left"] = error.attempts_left
        if isinstance(error, Unauthenticated) and error.deactivated:
            body["deactivated"] = True
        return status_for(error) or 500, body
    if isinstance(error, tornado.web.HTTPError):
        message = error.log_message % error.args if error.log_message and error.args else error.log_message
        if isinstance(error, tornado.web.MissingArgumentError):
            return 400, {"error": f"{error.arg_name} is required", "field": error.arg_name}
        return error.status_code, {"error": message or error.reason or reason}
    if status >= 500:
        return 500, {"error": "internal server error; the request was logged"}
    return status, {"error": reason}


class BaseHandler(tornado.web.RequestHandler):
    # The least each HTTP method of the handler needs (lower-case method name -> level); see the module docstring.
    ACCESS: ClassVar[dict[str, Access]] = {}
    caller: Caller | None = None

    def access_needed(self) -> Access:
        return self.ACCESS.get(self.request.method.lower() if self.request.method else "", Access.STAFF)

    async def prepare(self) -> None:
        access = self.access_needed()
        if access in (Access.LEGACY, Access.DEVELOPMENT) and self.app_settings.production:
            # The earlier system's endpoints do not exist in production: its scripts named any reader they liked. Nor
            # does /metrics on this port: production serves it on its admin port only (app/web/monitoring.py). What
            # does not exist is a 404 whatever credentials come with it, so they are not even read.
            raise tornado.web.HTTPError(404, "no such endpoint: %s %s", self.request.method, self.request.path)
        self.caller = await self.find_caller()
        if access is Access.READER_OR_LEGACY and self.caller is None and not self.app_settings.production:
            return
        admit(access, self.caller)

    async def find_caller(self) -> Caller | None:
        """Who sent the request, from the credentials this kind of handler takes; None for nobody."""
        raise NotImplementedError

    @property
    def library(self) -> Library:
        """The repository, for what a handler reads and shows as it is (the catalogue, listings)."""
        return self.application.settings["library"]

    @property
    def service(self) -> LibraryService:
        """The rules that depend on who asks (app/service.py): every change, and every read of one reader's data."""
        return self.application.settings["service"]

    @property
    def app_settings(self) -> Settings:
        return self.application.settings["app_settings"]

    def query(self, name: str) -> str | None:
        """A query argument exactly as sent. Tornado's get_query_argument strips it and turns control characters
        into spaces, which would let through values that the document's limits (length, format) refuse."""
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInput(f"{name} is not valid UTF-8", field=name) from error

    def page_param(self) -> str | None:
        """The `page` query argument; the repository refuses (400) a token it did not give out."""
        return self.query("page")

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        # A client's mistake or a refused request is an answer, not a server error: keep tracebacks for real bugs.
        if value is not None and status_for(value) is not None:
            level = logging.WARNING if isinstance(value, DatabaseUnavailable) else logging.DEBUG
            log.log(level, "%s %s: %s", self.request.method, self.request.uri, value)
            return
        super().log_exception(typ, value, tb)


class JsonHandler(BaseHandler):
    """Base of the JSON API and the earlier system's endpoints: every error answer has an "error" key."""

    bearer_token: str = ""  # the caller's token, once `find_caller` accepted it

    def check_xsrf_cookie(self) -> None:
        # The API's only credential is a bearer token in the Authorization header, which a browser never adds by
        # itself (the UI's session cookie is not accepted here): a forged cross-site request carries no
        # credentials, so there is nothing for an XSRF token to protect.
        return

    async def find_caller(self) -> Caller | None:
        """The caller of a bearer token (`Authorization: Bearer <token>`); a token that is malformed, unknown,
        expired or revoked is a 401, whatever the endpoint, so a client learns at once that it must sign in again."""
        header = self.request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise Unauthenticated("send `Authorization: Bearer <token>` with a token from POST /api/session")
        caller = await self.library.caller_for(token)
        if caller is None:
            raise Unauthenticated("the bearer token has expired or was revoked: sign in again (POST /api/session)")
        self.bearer_token = token
        return caller

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    def compute_etag(self) -> None:
        # Availability changes from one moment to the next and every answer says no-store, so no client ever
        # revalidates: Tornado's SHA-1 of each GET body was a quarter of the time spent sending a catalogue page.
        return None

    def json_body(self) -> dict[str, Any]:
        if not hasattr(self, "_json_body"):
            self._json_body = parse_json_object(self.request.body)
        return self._json_body

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode_json(data))

    def write_page(self, items: list[Any], next_page: str | None) -> None:
        """A listing is a bare JSON array, as the earlier system's list endpoints answered, so its scripts keep
        iterating over it; the token of the next page travels in headers (`X-Next-Page`, and a `Link` with
        rel="next" that repeats the query), and neither is sent on the last page."""
        if next_page:
            self.set_header("X-Next-Page", next_page)
            query = {k: self.query(k) or "" for k in self.request.query_arguments if k != "page"}
            query["page"] = next_page
            self.set_header("Link", f'<{self.request.path}?{urlencode(query)}>; rel="next"')
        self.write_json(items)

    def created(self, location: str, data: Any) -> None:
        self.set_header("Location", location)
        self.write_json(data, 201)

    def no_content(self) -> None:
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        status, body = describe(error, status_code, self._reason)
        self.set_status(status)
        if status == 503:
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if status == 401:
            self.set_header("WWW-Authenticate", f'Bearer realm="{REALM}"')
        if isinstance(error, TooManyAttempts):
            self.set_header("Retry-After", str(error.retry_after_seconds))
        self.finish(encode_json(body))

    def allowed_methods(self) -> list[str]:
        return [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if _overrides(type(self), m.lower())]


def _overrides(cls: type, method: str) -> bool:
    return getattr(cls, method) is not getattr(tornado.web.RequestHandler, method)
