"""What the web layer tells monitoring: each request counted by its route, and GET /metrics.

A request's `route` label is the URL pattern of the handler that answered it (`/api/books/{id}`), never its path: a
path holds ids, so labelling by path would make a series per book. Requests no pattern matched are `(unmatched)`,
and those the guards refused before routing `(refused)` (app/web/guards.py), so the label's values are the route
table's, whatever clients send.

`/metrics` (app/metrics.py's registry, in the Prometheus text format) is served on the main port in development only
(`Access.DEVELOPMENT`: a 404 in production, like any unknown path), and on the admin port METRICS_PORT when that is
set (`metrics_server`), bound to METRICS_ADDRESS (127.0.0.1 by default), whatever the environment: production's
metrics are reached only there, where the deployment chooses who may reach them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import tornado.web
from tornado.httpserver import HTTPServer

from app import metrics
from app.access import Access
from app.settings import Settings
from app.web.base import JsonHandler, log_request
from app.web.guards import HostAllowList, host_name

log = logging.getLogger(__name__)

STATIC_ROUTE = "/static/{path}"
_GROUP = re.compile(r"\([^)]*\)")


def route_label(pattern: str) -> str:
    """A route's pattern as a label: each captured path segment is `{id}`, so `/api/books/([^/]+)` is
    `/api/books/{id}`."""
    return _GROUP.sub("{id}", pattern)


def route_labels(routes: Iterable[tuple[str, type[tornado.web.RequestHandler]]]) -> dict[type, str]:
    """Each handler class of the route table and its route's label. A handler serves one route: were one class to
    serve two, its requests could not say which, so that is refused here, when the app is made."""
    labels: dict[type, str] = {}
    for pattern, handler in routes:
        if handler in labels:
            raise ValueError(f"{handler.__name__} serves two routes ({labels[handler]}, {pattern}): give each its own")
        labels[handler] = route_label(pattern)
    labels[tornado.web.StaticFileHandler] = STATIC_ROUTE
    return labels


def route_of(handler: tornado.web.RequestHandler) -> str:
    """The route label of the request `handler` answered."""
    labels: dict[type, str] = handler.application.settings.get("route_labels", {})
    return labels.get(type(handler), metrics.UNMATCHED)


def finished(handler: tornado.web.RequestHandler) -> None:
    """Tornado's `log_function`, called once each request is answered: its access line, and its count and latency."""
    log_request(handler)
    metrics.record_request(
        route_of(handler), handler.request.method, handler.get_status(), handler.request.request_time()
    )


class MetricsHandler(JsonHandler):
    """GET /metrics on the main port: development only (production: 404, and METRICS_PORT)."""

    ACCESS = {"get": Access.DEVELOPMENT}

    def get(self) -> None:
        body, content_type = metrics.exposition(self.request.headers.get("Accept"))
        self.set_header("Content-Type", content_type)
        self.finish(body)


class AdminMetricsHandler(tornado.web.RequestHandler):
    """GET /metrics on the admin port: nothing else is served there, and nothing there reads Cassandra. It answers
    only the hosts the main port answers (ALLOWED_HOSTS, app/web/guards.py): bound to 127.0.0.1, it is still
    reachable from a page on another site whose name is made to resolve there (DNS rebinding)."""

    def initialize(self, hosts: HostAllowList) -> None:
        self.hosts = hosts

    def prepare(self) -> None:
        host = self.request.headers.get("Host")
        if not self.hosts.allows(host):
            self.set_status(400)
            self.finish(f"this service does not answer for the host {host_name(host or '')!r} (ALLOWED_HOSTS)\n")

    def get(self) -> None:
        body, content_type = metrics.exposition(self.request.headers.get("Accept"))
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


def metrics_app(settings: Settings) -> tornado.web.Application:
    hosts = HostAllowList(settings.allowed_hosts)
    return tornado.web.Application([(r"/metrics", AdminMetricsHandler, {"hosts": hosts})], serve_traceback=False)


def metrics_server(settings: Settings) -> HTTPServer | None:
    """The admin port's server, listening on METRICS_ADDRESS:METRICS_PORT; None when METRICS_PORT is not set."""
    if settings.metrics_port is None:
        return None
    server = HTTPServer(metrics_app(settings))
    server.listen(settings.metrics_port, address=settings.metrics_address)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_address, settings.metrics_port)
    return server
