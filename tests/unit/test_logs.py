"""app/logs.py: which request id a request gets, the filter that puts it on every line logged during the request (by
any layer, in any task the request starts), and the two line formats."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from app import logs
from app.rules import MAX_REQUEST_ID
from app.settings import Settings


def new_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


@pytest.mark.parametrize(
    "sent",
    ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "trace:span.1", "b64+/=", "x" * MAX_REQUEST_ID],
)
def test_a_sane_request_id_is_kept(sent: str) -> None:
    assert logs.request_id_for(sent) == sent


@pytest.mark.parametrize(
    "sent",
    [None, "", "x" * (MAX_REQUEST_ID + 1), "two words", "forged\nERROR line", "tab\there", "é", "a,b", "<script>"],
)
def test_anything_else_gets_a_new_id(sent: str | None) -> None:
    chosen = logs.request_id_for(sent)
    assert new_id(chosen) and chosen != sent
    assert logs.request_id_for(sent) != chosen  # a new one each time


def record(message: str = "hello %s", *args: object, name: str = "app.service", exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args or ("world",), exc_info)


def filtered(line: logging.LogRecord) -> logging.LogRecord:
    assert logs.RequestIdFilter().filter(line)
    return line


def test_a_line_outside_a_request_has_no_id() -> None:
    assert not hasattr(filtered(record()), "request_id")


def test_a_line_logged_during_a_request_has_its_id() -> None:
    def during_request() -> logging.LogRecord:
        logs.REQUEST_ID.set("req-1")
        return filtered(record())

    assert contextvars.copy_context().run(during_request).request_id == "req-1"
    assert logs.REQUEST_ID.get() is None  # the request's context, not this one, had it


async def test_the_tasks_a_request_starts_carry_its_id() -> None:
    """The service and the repository run parts of a request in tasks of their own (asyncio.gather): each is made
    with a copy of the request's context, so their lines carry its id too, and two requests at once never mix."""
    seen: dict[str, list[str | None]] = {}

    async def repository_step(request: str) -> None:
        await asyncio.sleep(0)
        seen.setdefault(request, []).append(getattr(filtered(record(name="app.repository.x")), "request_id", None))

    async def handle(request: str) -> None:
        logs.REQUEST_ID.set(request)
        await asyncio.gather(repository_step(request), repository_step(request))

    await asyncio.gather(asyncio.create_task(handle("first")), asyncio.create_task(handle("second")))
    assert seen == {"first": ["first", "first"], "second": ["second", "second"]}
    assert logs.REQUEST_ID.get() is None


def test_json_lines_are_one_object_each() -> None:
    line = filtered(record("two\nlines: %s", "é"))
    line.request_id = "req-2"
    text = logs.JsonFormatter().format(line)
    assert "\n" not in text
    data = json.loads(text)
    assert data == {
        "time": data["time"],
        "level": "WARNING",
        "logger": "app.service",
        "message": "two\nlines: é",
        "request_id": "req-2",
    }
    assert data["time"].endswith("+00:00") and "T" in data["time"]


def test_a_json_line_outside_a_request_says_null_and_carries_the_exception() -> None:
    data = json.loads(logs.JsonFormatter().format(filtered(record(exc=True))))
    assert data["request_id"] is None
    assert "Traceback" in data["exception"] and "RuntimeError: boom" in data["exception"]


def test_a_plain_line_ends_with_its_request() -> None:
    plain = logs.PlainFormatter()
    assert plain.format(record()).endswith("WARNING app.service: hello world")
    during = record()
    during.request_id = "req-3"
    assert plain.format(during).endswith("WARNING app.service: hello world [request req-3]")
    failed = record(exc=True)
    failed.request_id = "req-4"
    first, *rest = plain.format(failed).splitlines()
    assert first.endswith("[request req-4]") and "RuntimeError: boom" in rest[-1]


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("cassandra").setLevel(logging.NOTSET)


@pytest.mark.usefixtures("root_logging")
def test_configure_installs_the_filter_and_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    logs.configure(Settings(log_format="json", log_level="INFO"))

    def during_request() -> None:
        logs.REQUEST_ID.set("req-5")
        logging.getLogger("app.repository.reservations").warning("rebuilt %s", "views")

    contextvars.copy_context().run(during_request)
    logging.getLogger("app").debug("below the level")
    logging.getLogger("cassandra.cluster").info("driver chatter")
    lines = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert [(line["logger"], line["message"], line["request_id"]) for line in lines] == [
        ("app.repository.reservations", "rebuilt views", "req-5")
    ]
