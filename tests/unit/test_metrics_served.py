"""What the web layer tells monitoring, without Cassandra: the route label of a request (the handler's pattern, never
the path), the metrics' settings, where /metrics answers (the main port in development, a 404 there in production, the
admin port), and the X-Request-Id every answer carries. Several apps are made in one process, as the tests make them:
the metrics are the module's, registered once."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import pytest
import tornado.web
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.netutil import bind_sockets

from app import metrics
from app.db import Database
from app.launcher import free_port
from app.models import Conflict, DatabaseUnavailable, InvalidInput, UnknownBook
from app.repository import Library
from app.repository.repair_loop import RepairFigures
from app.settings import PRODUCTION, Settings
from app.web import ROUTES, make_app
from app.web.guards import http_server
from app.web.monitoring import STATIC_ROUTE, metrics_server, route_label, route_labels

# -- the route label ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "label"),
    [
        (r"/api/books", "/api/books"),
        (r"/api/books/([^/]+)", "/api/books/{id}"),
        (r"/api/users/([^/]+)/sessions", "/api/users/{id}/sessions"),
        (r"/", "/"),
    ],
)
def test_a_route_is_labelled_by_its_pattern(pattern: str, label: str) -> None:
    assert route_label(pattern) == label


def test_every_route_has_a_label_of_its_own() -> None:
    labels = route_labels(ROUTES)
    assert {labels[handler] for _, handler in ROUTES} == {route_label(pattern) for pattern, _ in ROUTES}
    assert len({labels[handler] for _, handler in ROUTES}) == len(ROUTES)
    assert labels[tornado.web.StaticFileHandler] == STATIC_ROUTE


def test_a_handler_serving_two_routes_is_refused() -> None:
    handler = ROUTES[0][1]
    with pytest.raises(ValueError, match="serves two routes"):
        route_labels([("/a", handler), ("/b/([^/]+)", handler)])


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_a_made_up_method_is_labelled_other() -> None:
    before = sample("library_http_requests_total", route="/x", method="other", status="405")
    metrics.record_request("/x", "BREW", 405, 0.001)
    assert sample("library_http_requests_total", route="/x", method="other", status="405") == before + 1


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "reserved"),
        (Conflict.book_held(uuid.uuid4()), "conflict"),
        (UnknownBook(uuid.uuid4()), "not_found"),
        (InvalidInput("bad", field="idempotency_key"), "invalid"),
        (DatabaseUnavailable("down"), "unavailable"),
        (RuntimeError("a bug"), "failed"),
    ],
)
def test_each_reserve_has_one_outcome(error: BaseException | None, outcome: str) -> None:
    assert metrics.reserve_outcome(error) == outcome


# -- settings -------------------------------------------------------------------------------------------------------


def test_the_metrics_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOG_FORMAT", "METRICS_PORT", "METRICS_ADDRESS", "PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert (settings.log_format, settings.metrics_port, settings.metrics_address) == ("plain", None, "127.0.0.1")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("METRICS_PORT", "9464")
    monkeypatch.setenv("METRICS_ADDRESS", "[::1]")
    settings = Settings.from_env()
    assert (settings.log_format, settings.metrics_port, settings.metrics_address) == ("json", 9464, "::1")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' must be 'plain'"),
        ("METRICS_PORT", "0", "METRICS_PORT='0' is not a port number"),
        ("METRICS_PORT", "65536", "METRICS_PORT='65536' is not a port number"),
        ("METRICS_PORT", "ninety", "METRICS_PORT='ninety' is not a port number"),
        ("METRICS_PORT", "8888", "METRICS_PORT=8888 is PORT too"),
        ("METRICS_ADDRESS", "localhost", "METRICS_ADDRESS='localhost' is not an IP address"),
    ],
)
def test_a_bad_metrics_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message) as refused:
        Settings.from_env()
    assert "\n" not in str(refused.value)


# -- the apps, served in this process -------------------------------------------------------------------------------
Serve = Callable[[Settings], str]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serves make_app on a free port; nothing here reaches the database (no route asked for reads it)."""
    servers = []

    def start(settings: Settings) -> str:
        sockets = bind_sockets(0, "127.0.0.1")
        server = http_server(make_app(Library(Database(None, None, settings)), settings), settings)  # type: ignore[arg-type]
        server.add_sockets(sockets)
        servers.append(server)
        return f"http://127.0.0.1:{sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.stop()


async def fetch(url: str, **headers: str) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, raise_error=False, headers=headers)


DEVELOPMENT = Settings()
PRODUCTION_SETTINGS = dataclasses.replace(DEVELOPMENT, environment=PRODUCTION)


async def test_development_serves_metrics_on_the_main_port_in_every_app(serve: Serve) -> None:
    for url in (serve(DEVELOPMENT), serve(DEVELOPMENT)):
        answer = await fetch(f"{url}/metrics")
        assert answer.code == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        families = list(text_string_to_metric_families(answer.body.decode()))
        assert metrics.sample_names(families) == metrics.exported_names()


async def test_production_does_not_serve_metrics_on_the_main_port(serve: Serve) -> None:
    answer = await fetch(f"{serve(PRODUCTION_SETTINGS)}/metrics")
    assert answer.code == 404
    assert b"library_" not in answer.body


async def test_the_admin_port_serves_metrics_only() -> None:
    settings = dataclasses.replace(PRODUCTION_SETTINGS, metrics_port=free_port())
    server = metrics_server(settings)
    assert server is not None
    try:
        url = f"http://127.0.0.1:{settings.metrics_port}"
        answer = await fetch(f"{url}/metrics")
        assert answer.code == 200 and b"library_http_requests_total" in answer.body
        assert (await fetch(f"{url}/api/books")).code == 404
        rebound = await fetch(f"{url}/metrics", Host=f"attacker.example:{settings.metrics_port}")
        assert rebound.code == 400 and b"library_" not in rebound.body  # DNS rebinding: not answered
    finally:
        server.stop()
    assert metrics_server(PRODUCTION_SETTINGS) is None  # off unless METRICS_PORT is set


async def test_requests_are_counted_by_route_never_by_path(serve: Serve) -> None:
    url = serve(DEVELOPMENT)
    counted = {
        ("/openapi.json", "GET", "200"): f"{url}/openapi.json",
        ("(unmatched)", "GET", "404"): f"{url}/no/such/page/{uuid.uuid4()}",
    }
    before = {key: sample("library_http_requests_total", route=key[0], method=key[1], status=key[2]) for key in counted}
    latency_before = sample("library_http_request_duration_seconds_count", route="/openapi.json", method="GET")
    for address in counted.values():
        await fetch(address)
    for key in counted:
        assert sample("library_http_requests_total", route=key[0], method=key[1], status=key[2]) == before[key] + 1
    assert (
        sample("library_http_request_duration_seconds_count", route="/openapi.json", method="GET") == latency_before + 1
    )
    refused = sample("library_http_requests_total", route="(refused)", method="GET", status="400")
    await fetch(f"{url}/openapi.json", Host="evil.example")
    assert sample("library_http_requests_total", route="(refused)", method="GET", status="400") == refused + 1


@pytest.mark.parametrize("path", ["/openapi.json", "/metrics", "/no/such/page"])
async def test_every_answer_echoes_its_request_id(serve: Serve, path: str) -> None:
    url = serve(DEVELOPMENT)
    assert (await fetch(url + path, **{"X-Request-Id": "client-7"})).headers["X-Request-Id"] == "client-7"
    chosen = (await fetch(url + path, **{"X-Request-Id": "not\tsane"})).headers["X-Request-Id"]
    assert len(chosen) == 32 and chosen != "not\tsane"
    assert len((await fetch(url + path)).headers["X-Request-Id"]) == 32


async def test_a_refusal_before_routing_echoes_its_request_id_too(serve: Serve) -> None:
    answer = await fetch(f"{serve(DEVELOPMENT)}/openapi.json", Host="evil.example", **{"X-Request-Id": "client-8"})
    assert answer.code == 400 and answer.headers["X-Request-Id"] == "client-8"


def test_the_background_repair_is_read_at_each_scrape() -> None:
    """The lease and the lag are the loop's figures at the moment of the scrape; each pass is counted as it ends."""
    figures = RepairFigures(holder="this instance", started_at=time.time() - 5)
    loop = SimpleNamespace(figures=figures, listeners=[])
    metrics.watch_repair(loop)  # type: ignore[arg-type]
    assert metrics.REGISTRY.get_sample_value("library_repair_lease_held") == 0
    figures.holding = True
    assert metrics.REGISTRY.get_sample_value("library_repair_lease_held") == 1
    assert 4 < (metrics.REGISTRY.get_sample_value("library_repair_lag_seconds") or 0) < 60
    failed = metrics.REGISTRY.get_sample_value("library_repair_passes_total", {"result": "failed"}) or 0
    loop.listeners[0](figures, None)
    assert metrics.REGISTRY.get_sample_value("library_repair_passes_total", {"result": "failed"}) == failed + 1
