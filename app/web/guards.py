"""What every request passes before any handler sees it, and what every response carries.

- **Host** (DNS rebinding): a page on another site whose name is made to resolve to 127.0.0.1 reaches the service
  from the reader's own browser, with that other name in the Host header. Only the names of ALLOWED_HOSTS (and
  addresses in its networks) are answered; anything else is a 400. A request without a Host header (HTTP/1.0
  scripts) is not a browser's and passes.
- **Body size**: Tornado buffers a body whole before the handler runs (up to 100 MB by default), and the JSON is
  parsed on the event loop, so one large body stalled every other request. A body over MAX_BODY_BYTES is answered
  413 from its headers alone, before any of it is read; a chunked one as soon as it grows past the limit. The
  HTTP server's own `max_body_size` is the same limit (`http_server`), a backstop for anything served without
  this guard.
- **Content type** (cross-site requests): a page on another site may send a form-encoded or text/plain POST
  without asking first (a CORS "simple request"), and the reader's browser would deliver it. A body sent to the
  JSON API (/api/) must say application/json, which only a script of this site (or no browser) can send, else
  415. The earlier system's endpoints keep accepting what its scripts send.
- **Response headers** (`SecurityHeaders`): a Content-Security-Policy that allows only this site's own scripts,
  styles and forms and no framing, X-Frame-Options, nosniff, a Referrer-Policy that keeps URLs (page tokens) on
  this site, and no Server header naming Tornado's version.

The refusals are made at the connection, before routing, so they hold for every path (the API, the pages, the
static files, unknown paths) and need no handler to cooperate. They answer JSON with an "error" sentence, as the
API does, or a small HTML page to a browser asking for a page.
"""

from __future__ import annotations

import html
import ipaddress
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import tornado.web
from tornado import httputil
from tornado.http1connection import HTTP1Connection, is_transfer_encoding_chunked
from tornado.httpserver import HTTPServer

from app import metrics
from app.logs import HEADER as REQUEST_ID_HEADER
from app.logs import REQUEST_ID, request_id_for
from app.settings import Settings
from app.web.encoding import encode_json

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
JSON_TYPE = "application/json"
API_PREFIX = "/api/"


class RequestIdHeader(tornado.web.OutputTransform):
    """Echoes the request's id (`X-Request-Id`, chosen by `_RequestGuard`) in every response a handler sends, so a
    client or a proxy can find the log lines of its request."""

    def __init__(self, request: httputil.HTTPServerRequest) -> None:
        super().__init__(request)
        self.request_id = request.headers.get(REQUEST_ID_HEADER)

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        if self.request_id:
            headers[REQUEST_ID_HEADER] = self.request_id
        return status_code, headers, chunk


class SecurityHeaders(tornado.web.OutputTransform):
    """Adds SECURITY_HEADERS to every response a handler sends (static files, redirects and errors included) and
    drops Tornado's `Server: TornadoServer/<version>`, which only helps someone looking for a known hole."""

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        for name, value in SECURITY_HEADERS.items():
            headers[name] = value
        if "Server" in headers:
            del headers["Server"]
        return status_code, headers, chunk


def host_name(header: str) -> str:
    """The host of a Host header, without its port, lower case and without a trailing dot: "LocalHost.:8888" is
    localhost, "[::1]:8888" is ::1."""
    host = header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.lower().rstrip(".")


class HostAllowList:
    """ALLOWED_HOSTS: names compared exactly, addresses by network (127.0.0.0/8, ::1); "*" allows any host."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.any = False
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            if entry == "*":
                self.any = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.names.add(host_name(entry))

    def allows(self, header: str | None) -> bool:
        if self.any or header is None:
            return True
        host = host_name(header)
        if host in self.names:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def is_json(content_type: str | None) -> bool:
    """application/json, with any parameters (charset=utf-8), in any case."""
    return (content_type or "").split(";", 1)[0].strip().lower() == JSON_TYPE


def _declared_length(header: str | None) -> int | None:
    """The body size a Content-Length header announces, or None if it has none Tornado would accept (Tornado
    answers a malformed one itself). Counted before int() reads it, as a client may send thousands of digits."""
    if header is None:
        return None
    digits = header.split(",", 1)[0].strip()
    if not digits.isascii() or not digits.isdigit():
        return None
    significant = digits.lstrip("0") or "0"
    return 2**63 if len(significant) > 18 else int(significant)


class GuardedApplication(tornado.web.Application):
    """The service's Tornado application: every request passes `_RequestGuard` before routing, and every response
    gets the security headers. Reads its limits from the `app_settings` it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = self.settings["app_settings"]
        self.max_body_bytes = settings.max_body_bytes
        self.allowed_hosts = HostAllowList(settings.allowed_hosts)
        self.add_transform(SecurityHeaders)
        self.add_transform(RequestIdHeader)

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _RequestGuard(self, super().start_request(server_conn, request_conn), request_conn)


def http_server(app: tornado.web.Application, settings: Settings) -> HTTPServer:
    """The HTTP server for the app: Tornado never buffers more of a body than MAX_BODY_BYTES, whatever the app.
    Behind a TLS-terminating proxy (BEHIND_PROXY), the proxy's X-Forwarded-Proto tells Tornado the request came over
    TLS, so the session cookie is marked Secure; without a proxy that header is the client's and is ignored."""
    return HTTPServer(app, max_body_size=settings.max_body_bytes, xheaders=settings.behind_proxy)


class _RequestGuard(httputil.HTTPMessageDelegate):
    """Checks a request's headers (host, body size, content type) before the application's own delegate (routing,
    the handler) hears of it, counts a chunked body as it arrives, and answers a refusal itself. A refused request's
    body is never read into memory: Tornado discards what arrives after the answer, and closes the connection once
    the answer is sent."""

    def __init__(
        self, app: GuardedApplication, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection
    ) -> None:
        self.app = app
        self.inner = inner
        self.connection = connection
        self.started = False  # the inner delegate has the headers
        self.refused = False
        self.received = 0
        self.request_id = ""
        self.request_line: httputil.RequestStartLine | None = None
        self.headers = httputil.HTTPHeaders()

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.request_line, self.headers = start_line, headers
        # The request's id, from here on: the handler's task is made from this one (when the request is complete), so
        # it inherits the context variable, and the request carries the id chosen in place of what was sent.
        self.request_id = request_id_for(headers.get(REQUEST_ID_HEADER))
        headers[REQUEST_ID_HEADER] = self.request_id
        REQUEST_ID.set(self.request_id)
        refusal = self._check(start_line, headers)
        if refusal is not None:
            self._refuse(*refusal)
            return None
        if is_transfer_encoding_chunked(headers):
            # Tornado would cut a chunked body over its limit with a bare 400 and no word why; data_received counts
            # it instead and answers 413.
            self._read_and_discard()
        self.started = True
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None
        self.received += len(chunk)
        if self.received > self.app.max_body_bytes:
            self._refuse(*self._too_large())
            self.inner.on_connection_close()  # the handler never runs: drop what was buffered for it
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()  # starts the handler's task, which keeps the request's id
        REQUEST_ID.set(None)  # the connection's own task waits for the next request: no id until it comes

    def on_connection_close(self) -> None:
        if self.started and not self.refused:
            self.inner.on_connection_close()
        REQUEST_ID.set(None)

    # -- the checks --------------------------------------------------------------------------------------
    def _check(
        self, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders
    ) -> tuple[int, str, str | None] | None:
        host = headers.get("Host")
        if not self.app.allowed_hosts.allows(host):
            return 400, f"this service does not answer for the host {host_name(host or '')!r} (ALLOWED_HOSTS)", "Host"
        length = headers.get("Content-Length")
        declared = _declared_length(length)
        if declared is not None and declared > self.app.max_body_bytes:
            self._read_and_discard()  # the answer comes now; Tornado must not answer the length again
            return self._too_large()
        has_body = (length is not None and length.strip() not in ("", "0")) or is_transfer_encoding_chunked(headers)
        path = start_line.path.split("?", 1)[0]
        if has_body and path.startswith(API_PREFIX) and not is_json(headers.get("Content-Type")):
            sent = headers.get("Content-Type") or "none"
            return 415, f"the request body must be JSON, sent with Content-Type: {JSON_TYPE} (not {sent[:60]!r})", None
        return None

    def _read_and_discard(self) -> None:
        """Lift Tornado's own body limit for this request, whose size this guard answers for: the data goes through
        data_received (counted, passed on while under the limit) or, once an answer is sent, is thrown away by
        Tornado as it arrives, until the connection closes behind the answer. Without this, Tornado would send a
        bare 400 of its own after (or instead of) the 413."""
        if isinstance(self.connection, HTTP1Connection):
            self.connection.set_max_body_size(2**63)

    def _too_large(self) -> tuple[int, str, str | None]:
        return 413, f"the request body is larger than this service accepts ({self.app.max_body_bytes} bytes)", "body"

    # -- the answer --------------------------------------------------------------------------------------
    def _refuse(self, status: int, message: str, field: str | None) -> None:
        self.refused = True
        method = self.request_line.method if self.request_line else "?"
        path = self.request_line.path if self.request_line else "?"
        log.debug("refused %s %s: %d %s", method, path, status, message)
        reason = httputil.responses.get(status, "Refused")
        if not path.startswith(API_PREFIX) and "text/html" in self.headers.get("Accept", ""):
            content_type = "text/html; charset=UTF-8"
            body = (
                f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{status} {reason}</title>'
                f"</head><body><h1>{status} {html.escape(reason)}</h1><p>{html.escape(message)}</p>"
                '<p><a href="/">Back to the catalogue</a></p></body></html>\n'
            ).encode()
        else:
            content_type = "application/json; charset=UTF-8"
            answer: dict[str, str] = {"error": message, **({"field": field} if field else {})}
            body = encode_json(answer)
        headers = httputil.HTTPHeaders(
            {
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
                "Cache-Control": "no-store",
                "Connection": "close",
                REQUEST_ID_HEADER: self.request_id,
                **SECURITY_HEADERS,
            }
        )
        metrics.record_request(metrics.REFUSED, method, status, None)
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, reason), headers, None if method == "HEAD" else body
        )
        self.connection.finish()
