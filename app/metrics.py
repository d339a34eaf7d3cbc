"""Every metric the service exports, defined here once; the code that counts imports them from here.

They live in this process's own registry (`REGISTRY`), made when the module is first imported, so any number of
Tornado apps (the tests make many) share one set and nothing is registered twice. `GET /metrics` serves it in the
Prometheus text format (app/web/monitoring.py): on the main port in development, and on METRICS_PORT only in
production. Each process counts its own requests; Prometheus sums the instances.

What is counted where, once each:
- HTTP requests by route (the URL pattern of the handler, never the raw path) and status, and their latency:
  app/web/monitoring.py, when Tornado finishes a request (and the guards' refusals, app/web/guards.py);
- what became of each reserve (reserved, conflict, not found, invalid, unavailable): `Reservations.reserve`, which
  every door (the API, the pages, the earlier system's endpoints) reaches;
- each lightweight transaction whose answer was lost (OutcomeUnknown), as the SERIAL read resolved it (applied or
  not), by transition: `LockRunner.run`; a reserve's is the `take`;
- heals (a held lock's views rebuilt, a move left half-way finished or abandoned): `Reservations.heal`, `.settle`;
- the audit's repairs by kind, and when its last repair pass finished: `Audit` (app/repository/audit.py);
- the background repair's lease, lag and passes: read off `RepairLoop.figures` (`watch_repair`, called by
  `python -m app` for its loop);
- Cassandra requests that failed, by the driver's error class: `app/db.py`, where driver errors are translated.

Pure: no I/O, no Tornado, no Cassandra; the schedule search (tests/schedules/) runs the counted code too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from app.models import AuditReport, Conflict, DatabaseUnavailable, InvalidInput, NotFound

if TYPE_CHECKING:  # the repository imports this module; only the types go the other way
    from app.repository.repair_loop import RepairFigures, RepairLoop

# A `_created` series beside every counter doubles what is scraped and no panel uses it.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
# The process's CPU, memory, open files, garbage collector and Python version, as every Python exporter has them.
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

# -- HTTP -----------------------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "library_http_requests",
    "HTTP requests answered, by route (the handler's URL pattern), method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
# From a cached page read (a few ms) to Cassandra's request timeout (CASSANDRA_TIMEOUT, 10 s by default) and beyond.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HTTP_LATENCY = Histogram(
    "library_http_request_duration_seconds",
    "Time from a request's arrival to its answer, by route and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

# -- reservations ---------------------------------------------------------------------------------------------------
RESERVED, CONFLICT, NOT_FOUND, INVALID, UNAVAILABLE, FAILED = (
    "reserved",
    "conflict",
    "not_found",
    "invalid",
    "unavailable",
    "failed",
)
RESERVE_OUTCOMES = (RESERVED, CONFLICT, NOT_FOUND, INVALID, UNAVAILABLE, FAILED)
RESERVATIONS = Counter(
    "library_reservation_outcomes",
    "Reserves by outcome: reserved (a keyed retry answered with its reservation included), conflict (the book is "
    "held), not_found (no such book or reader), invalid, unavailable (Cassandra could not say), failed (a bug)",
    ["outcome"],
    registry=REGISTRY,
)
APPLIED, NOT_APPLIED = "applied", "not_applied"
LOST_ANSWERS = Counter(
    "library_lock_lost_answers",
    "Lock transitions whose answer was lost (OutcomeUnknown), by transition, as the SERIAL read that followed resolved "
    "them: applied, or not_applied; a reserve's is transition=take",
    ["transition", "resolved"],
    registry=REGISTRY,
)

# -- mending --------------------------------------------------------------------------------------------------------
VIEWS_REBUILT, MOVE_FINISHED, MOVE_ABANDONED = "views_rebuilt", "move_finished", "move_abandoned"
HEAL_KINDS = (VIEWS_REBUILT, MOVE_FINISHED, MOVE_ABANDONED)
HEALS = Counter(
    "library_heals",
    "What the reservation use cases mended, whoever asked (a refused reserve, a retry, the audit's repair): a held "
    "lock's views rebuilt, a move left half-way finished or abandoned",
    ["kind"],
    registry=REGISTRY,
)
# -- holds ----------------------------------------------------------------------------------------------------------
HANDED_ON, PROMOTED = "handed_on", "promoted"
HAND_OFF_KINDS = (HANDED_ON, PROMOTED)
HAND_OFFS = Counter(
    "library_hand_offs",
    "Books given to the first reader in their queue (`Reservations._hand_on`): handed_on from the holder who let it go "
    "(a cancel, an expiry, an undone reserve), promoted when it was free (its holder moved away)",
    ["kind"],
    registry=REGISTRY,
)
EXPIRED = Counter(
    "library_holds_expired",
    "Holds ended because their pickup window passed (`Reservations.expire`: a sweep, or a reserve or join meeting one)",
    registry=REGISTRY,
)
for _kind in HAND_OFF_KINDS:
    HAND_OFFS.labels(_kind)

MOVE_SETTLED, ORPHAN_DELETED, NOT_MENDED = "move_settled", "orphan_deleted", "not_mended"
QUEUE_SERVED = "queue_served"  # a free book whose readers waited, given to the first of them
HOLD_ENDED = "hold_ended"  # a hold past its pickup window, ended
REPAIR_KINDS = (MOVE_SETTLED, VIEWS_REBUILT, ORPHAN_DELETED, QUEUE_SERVED, HOLD_ENDED, NOT_MENDED)
REPAIRS = Counter(
    "library_repairs",
    "What the audit's repair passes did: a move settled, views rebuilt, a row no lock backs deleted, or a problem not "
    "mended (left for the next pass)",
    ["kind"],
    registry=REGISTRY,
)
LAST_REPAIR = Gauge(
    "library_repair_last_pass_timestamp_seconds",
    "Unix time at which this process last finished an audit's repair pass (0: none yet); time() minus it is the lag",
    registry=REGISTRY,
)

# The background repair (app/repository/repair_loop.py), read off its figures at each scrape (`watch_repair`).
REPAIR_LEASE_HELD = Gauge(
    "library_repair_lease_held",
    "1 while this instance holds the background repair's lease (one instance at a time runs the repair), else 0",
    registry=REGISTRY,
)
REPAIR_LAG = Gauge(
    "library_repair_lag_seconds",
    "Seconds since the last background repair pass this instance knows of ended: its own, or the lease holder's, "
    "read off the lease",
    registry=REGISTRY,
)
REPAIR_PASSES = Counter(
    "library_repair_passes",
    "Background repair passes this instance ran, by result: completed, or failed (Cassandra did not answer; the "
    "next pass comes at the usual interval)",
    ["result"],
    registry=REGISTRY,
)
REPAIR_PASS_RESULTS = ("completed", "failed")

# -- Cassandra ------------------------------------------------------------------------------------------------------
CASSANDRA_ERRORS = Counter(
    "library_cassandra_errors",
    "Requests to Cassandra that failed, by the driver's error class (Unavailable, WriteTimeout, OperationTimedOut)",
    ["error"],
    registry=REGISTRY,
)

# Series whose labels are known in advance are there from the start at 0, so a rate or an increase is right from the
# first scrape and a dashboard shows 0 rather than no data.
for _outcome in RESERVE_OUTCOMES:
    RESERVATIONS.labels(_outcome)
for _kind in HEAL_KINDS:
    HEALS.labels(_kind)
for _kind in REPAIR_KINDS:
    REPAIRS.labels(_kind)
for _result in REPAIR_PASS_RESULTS:
    REPAIR_PASSES.labels(_result)


def watch_repair(loop: RepairLoop) -> None:
    """The background repair's lease and lag, read at each scrape, and its passes counted as they end. For the
    process's one loop (`python -m app`): a gauge reads one function."""
    figures = loop.figures
    REPAIR_LEASE_HELD.set_function(lambda: 1.0 if figures.holding else 0.0)
    REPAIR_LAG.set_function(figures.lag)
    loop.listeners.append(_count_repair_pass)


def _count_repair_pass(figures: RepairFigures, report: AuditReport | None) -> None:
    REPAIR_PASSES.labels("completed" if report is not None else "failed").inc()


# The route label of requests no handler's pattern matched, and of those the guards refused before routing.
UNMATCHED, REFUSED = "(unmatched)", "(refused)"
# The methods a label may name: any other a client makes up is "other", so it cannot grow the series without bound.
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def record_request(route: str, method: str | None, status: int, seconds: float | None) -> None:
    """One HTTP request answered; `seconds` None for an answer given before any handler ran (its latency is nil)."""
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    if seconds is not None:
        HTTP_LATENCY.labels(route, method).observe(seconds)


def reserve_outcome(error: BaseException | None) -> str:
    """The outcome label of a reserve that answered (None) or raised `error`."""
    if error is None:
        return RESERVED
    for kind, outcome in ((Conflict, CONFLICT), (NotFound, NOT_FOUND), (InvalidInput, INVALID)):
        if isinstance(error, kind):
            return outcome
    return UNAVAILABLE if isinstance(error, DatabaseUnavailable) else FAILED


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The registry's current values and their content type, in the format the scraper's Accept header asks for
    (the Prometheus text format, or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type


def exported_names() -> set[str]:
    """Every series name the registry exports: a counter's with `_total`, a histogram's `_bucket`, `_sum` and
    `_count`, as PromQL names them (the dashboard's test holds it to these)."""
    return sample_names(REGISTRY.collect())


def sample_names(families: Iterable[Metric]) -> set[str]:
    """The series names of metric families (from a registry, or parsed back from an exposition)."""
    names: set[str] = set()
    for family in families:
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}
