"""Monitoring, end to end: `python -m app` processes on real Cassandra, as an operator runs them.

- /metrics answers with every name the Grafana dashboard asks for; in production the main port answers 404 and the
  admin port (METRICS_PORT) serves them.
- An X-Request-Id sent is echoed, and every log line of its request carries it (LOG_FORMAT=json): the web layer's, and
  the repository's heal of a lock whose views are missing, which the heal counter counts.
- A stress run's own record of what it sent and got (its --history) matches, exactly, what the app's counters say it
  answered: requests by route, method and status, and reserves by outcome.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dashboard_support import load, metric_names, queries
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families
from tool_support import fresh_keyspace, run_tool, tool_env

from app import metrics
from app.db import Database
from app.launcher import free_port, running_app
from app.repository import Library
from app.settings import Settings
from toolkit.cli import bearer

KEYSPACE = "test_monitoring"
PRODUCTION = {
    "LIBRARY_ENV": "production",
    "COOKIE_SECRET": "monitoring-cookie",
    "PAGE_TOKEN_SECRET": "monitoring-pages",
}
DASHBOARD_NAMES = {name for _, promql in queries(load()) for name in metric_names(promql)}
# The stress client's kinds of request, and the route and method each is sent to.
ROUTE_OF = {
    "reserve": ("/api/reservations", "POST"),
    "cancel": ("/api/reservations/{id}", "DELETE"),
    "move": ("/api/reservations/{id}", "PATCH"),
    "renew": ("/api/reservations/{id}", "PATCH"),
    "read_user": ("/api/reservations", "GET"),
    "read_book": ("/api/reservations", "GET"),
    "read_all": ("/api/reservations", "GET"),
    "list_books": ("/api/books", "GET"),
}
OUTCOME_OF_STATUS = {201: "reserved", 409: "conflict", 404: "not_found", 400: "invalid", 503: "unavailable"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
async def monitoring_db(settings: Settings) -> AsyncIterator[Database]:
    db = await fresh_keyspace(settings, KEYSPACE)
    yield db
    db.close()


@pytest.fixture(scope="module")
def app_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring") / "app.log"


@pytest.fixture(scope="module")
def app_url(monitoring_db: Database, cassandra_hosts: list[str], app_log: Path) -> Iterator[str]:
    """The app in development, logging every request (DEBUG) as JSON lines."""
    with running_app(cassandra_hosts, KEYSPACE, app_log, extra_env={"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}) as url:
        yield url


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, CIMultiDict[str]]:
    """Status, body and headers (looked up in any case, as HTTP names them) of a GET."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, await answer.text(), CIMultiDict(answer.headers)


def parse(exposition: str) -> tuple[set[str], Samples]:
    families = list(text_string_to_metric_families(exposition))
    samples = {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}
    return metrics.sample_names(families), samples


async def scrape(url: str) -> Samples:
    status, body, _ = await get(f"{url}/metrics")
    assert status == 200
    return parse(body)[1]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def total(before: Samples, after: Samples, route: str, method: str) -> float:
    """The requests counted on a route and method, whatever their status."""

    def on_route(samples: Samples) -> float:
        wanted = {("route", route), ("method", method)}
        return sum(
            v for (name, labels), v in samples.items() if name == "library_http_requests_total" and wanted <= labels
        )

    return on_route(after) - on_route(before)


# -- /metrics, where it answers ---------------------------------------------------------------------------------------
async def test_metrics_answer_with_every_name_the_dashboard_asks_for(app_url: str) -> None:
    status, body, headers = await get(f"{app_url}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    names, _ = parse(body)
    assert names >= DASHBOARD_NAMES, sorted(DASHBOARD_NAMES - names)


async def test_production_serves_metrics_on_the_admin_port_only(
    monitoring_db: Database, cassandra_hosts: list[str], tmp_path: Path
) -> None:
    admin_port = free_port()
    env = {**PRODUCTION, "METRICS_PORT": str(admin_port)}
    with running_app(cassandra_hosts, KEYSPACE, tmp_path / "production.log", extra_env=env) as url:
        status, body, _ = await get(f"{url}/metrics")
        assert status == 404 and "library_" not in body
        status, body, _ = await get(f"http://127.0.0.1:{admin_port}/metrics")
        assert status == 200
        names, _ = parse(body)
        assert names >= DASHBOARD_NAMES, sorted(DASHBOARD_NAMES - names)
        assert (await get(f"http://127.0.0.1:{admin_port}/api/books"))[0] == 404  # nothing else is served there
    assert f"metrics on http://127.0.0.1:{admin_port}/metrics" in (tmp_path / "production.log").read_text()


# -- request ids ------------------------------------------------------------------------------------------------------
def log_lines(path: Path) -> list[dict[str, Any]]:
    """The app's log: every line one JSON object (LOG_FORMAT=json)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_request_id_is_echoed_and_on_every_line_of_its_request(
    app_url: str, app_log: Path, monitoring_db: Database
) -> None:
    """A reserve refused by a held lock whose views are missing heals them on the way (app/repository/reservations.py,
    `_heal_beside`): the repository's line about it carries the request's id, as the web layer's lines do."""
    library = Library(monitoring_db)
    reader = await library.create_user("Mona Itor", "mona@example.org")
    book, held_by = uuid.uuid4(), uuid.uuid4()
    await monitoring_db.execute_raw(
        f"INSERT INTO {KEYSPACE}.reservation_by_book_id (book_id, state, reservation_id, user_id, reserved_at, "
        f"version) VALUES ({book}, 'held', {held_by}, {reader.user_id}, toTimestamp(now()), 1)"
    )
    before = await scrape(app_url)
    request_id = f"monitoring-{uuid.uuid4()}"
    headers = {**bearer(await library.session_for_tool("Monitoring test")), "X-Request-Id": request_id}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{app_url}/api/reservations", json={"book_id": str(book), "user_id": reader.user_id}, headers=headers
            ) as answer,
        ):
            assert answer.status == 409
            assert answer.headers["X-Request-Id"] == request_id
        after = await scrape(app_url)
        assert delta(before, after, "library_heals_total", kind="views_rebuilt") == 1
        assert delta(before, after, "library_reservation_outcomes_total", outcome="conflict") == 1

        await asyncio.sleep(0.5)  # the log is written by another process
        ours = [line for line in log_lines(app_log) if line["request_id"] == request_id]
        loggers = {line["logger"] for line in ours}
        assert "app.repository.reservations" in loggers, ours
        assert "tornado.access" in loggers, ours  # the access line (LOG_LEVEL=DEBUG)
        heal = next(line for line in ours if line["logger"] == "app.repository.reservations")
        assert heal["message"].startswith(f"rebuilt the views of {held_by}") and heal["level"] == "WARNING"
        assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in ours)
        assert all(line["request_id"] is None for line in log_lines(app_log) if "serving on" in line["message"])
    finally:
        await library.cancel(held_by, reader.user_id)

    # An id that is not sane (here: a space) is replaced by one of the service's own, which the answer gives.
    status, _, answered = await get(f"{app_url}/api/books/{book}", {"X-Request-Id": "bad id"})
    assert status == 404 and len(answered["X-Request-Id"]) == 32 and answered["X-Request-Id"] != "bad id"


# -- a stress run's counts against the metrics' ---------------------------------------------------------------------
def history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_stress_runs_counts_match_the_metrics(app_url: str, cassandra_hosts: list[str], tmp_path: Path) -> None:
    """Test 2 of stress_test.py (random reserves, cancels, moves, renewals and reads by several readers) through the
    app; every attempt it records (its --history, the probe and final reads included) is one request the app counted,
    by route, method and status, and every reserve one outcome."""
    history_path, report_path = tmp_path / "history.jsonl", tmp_path / "report.json"
    before = await scrape(app_url)
    args = ["stress_test.py", "2", "--size", "200", "--workers", "6", "--url", app_url, "--time-limit", "120"]
    args += ["--history", str(history_path), "--json", str(report_path)]
    result = await asyncio.to_thread(run_tool, args, tool_env(cassandra_hosts, KEYSPACE))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    after = await scrape(app_url)
    ops = history(history_path)
    report = json.loads(report_path.read_text())

    assert report["verdict"] == "PASS" and report["requests"] >= 200
    assert all(op.get("status") is not None for op in ops), "a request without an answer cannot be matched exactly"
    sent = Counter((*ROUTE_OF[op["kind"]], str(op["status"])) for op in ops)
    for route, method, status in {(r, m, s) for r, m, s in sent if r != "/api/books"}:
        counted = delta(before, after, "library_http_requests_total", route=route, method=method, status=status)
        assert counted == sent[(route, method, status)], (route, method, status)
    for route, method in {(r, m) for r, m, _ in sent}:
        # Every status the app answered on the route, so nothing it counted is missing from the client's record.
        answered = total(before, after, route, method)
        client_saw = sum(n for (r, m, _), n in sent.items() if (r, m) == (route, method))
        if route == "/api/books":
            assert answered >= client_saw  # the stress tool also reads the catalogue before the run (not recorded)
        else:
            assert answered == client_saw, (route, method)

    reserves = Counter(OUTCOME_OF_STATUS[op["status"]] for op in ops if op["kind"] == "reserve")
    for outcome in metrics.RESERVE_OUTCOMES:
        counted = delta(before, after, "library_reservation_outcomes_total", outcome=outcome)
        assert counted == reserves.get(outcome, 0), outcome
    assert reserves["reserved"] > 0 and reserves["conflict"] > 0  # the run made both happen

    # The summary's figures are the history's attempts (those of the run itself, attempt >= 1).
    run = [op for op in ops if op["attempt"] > 0]
    assert report["conflicts"] == sum(1 for op in run if op["status"] == 409)
    assert report["successes"] == sum(1 for op in run if 200 <= op["status"] < 300)
