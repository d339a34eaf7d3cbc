"""How the service logs: every line written while a request is handled carries that request's id, and LOG_FORMAT says
whether lines are for people (plain) or for a log collector (json, one object a line).

The id lives in a context variable (`REQUEST_ID`), set by app/web/guards.py when a request's headers arrive: asyncio
copies it into the task that handles the request and into every task that one starts, so the lines the service and
the repository log on its behalf carry it with no argument passed down. `RequestIdFilter`, on the handlers that
`configure` installs, copies it onto each record; a record logged outside a request has none.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from app.rules import is_sane_request_id
from app.settings import JSON, Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
HEADER = "X-Request-Id"
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def request_id_for(sent: str | None) -> str:
    """The id of a request: the one its client (or a proxy in front) sent, if it is sane (app/rules.py), else a new
    one."""
    return sent if sent is not None and is_sane_request_id(sent) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Gives every record logged during a request that request's id (`request_id`; outside a request the record has
    none). A filter on the handler, not on a logger, so it sees the records of every logger: the web layer's, the
    service's, the repository's, Tornado's and the driver's."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        return True


class PlainFormatter(logging.Formatter):
    """A line for people, as before request ids: time, level, logger, message; then `[request <id>]` on the lines
    logged during a request (a traceback, if any, follows)."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return line if request_id is None else f"{line} [request {request_id}]"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, request_id, and exception (the traceback's
    text) when the record carries one. A message's own line breaks stay inside its string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == JSON else PlainFormatter()


def configure(settings: Settings) -> None:
    """The process's logging, for `python -m app`: to standard error, at LOG_LEVEL, in LOG_FORMAT, each line with its
    request id."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    # The driver reports every schema agreement wait and peer event at INFO; keep start-up readable.
    logging.getLogger("cassandra").setLevel(logging.WARNING)
