"""The one door to Cassandra: a driver session, prepared statements, and asyncio awaitables.

Every statement the service runs goes through `Database.execute`, so errors are translated in one
place: a definite refusal (too few replicas) becomes `DatabaseUnavailable`; a write whose outcome is
unknown (timeout, lost connection) becomes `OutcomeUnknown`, which the repository resolves by
reading the truth back at SERIAL.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import (
    AlreadyExists,
    ConfigurationException,
    ConsistencyLevel,
    InvalidRequest,
    OperationTimedOut,
    ProtocolVersion,
    ReadTimeout,
    Unauthorized,
    Unavailable,
)
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, ResponseFuture, Session
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy, TokenAwarePolicy
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, SyntaxException
from cassandra.query import BatchStatement, BatchType, PreparedStatement, SimpleStatement, Statement

from app import metrics
from app.models import DatabaseUnavailable
from app.settings import Settings

log = logging.getLogger(__name__)

# Errors that mean the statement itself is wrong: bugs, never retried, never reported as an outage.
_STATEMENT_ERRORS = (InvalidRequest, SyntaxException, Unauthorized, ConfigurationException, AlreadyExists)


# How long a schema change waits for every node to have it before the next statement is sent (app/schema.py).
SCHEMA_AGREEMENT_WAIT_SECONDS = 60


class NoBlindWriteRetries(RetryPolicy):
    """The driver's default policy sends a statement again to the next host after a connection error or a server
    error, whatever the statement. For a write that may already have applied (a lightweight transaction whose
    coordinator died after committing), the second send then meets its own first one, and the answer lies: a lock
    this request took comes back "not applied, held by you". Writes are therefore never sent again blindly: the
    error reaches the repository as OutcomeUnknown, which reads the truth back at SERIAL. Reads (marked idempotent
    by `Database.execute`) and requests a node refused before running them (overloaded, bootstrapping) are sent
    on as before. Found by the adversarial series (seed 17)."""

    def on_request_error(self, query: Any, consistency: Any, error: Any, retry_num: int) -> tuple[int, Any]:
        if getattr(query, "is_idempotent", False) or isinstance(
            error, OverloadedErrorMessage | IsBootstrappingErrorMessage
        ):
            return super().on_request_error(query, consistency, error, retry_num)
        return self.RETHROW, None

    def on_write_timeout(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        return self.RETHROW, None  # the repository resolves every write whose outcome is unknown


def choose_serial_consistency(
    datacenters: Collection[str], requested: int | None, risk_accepted: bool
) -> tuple[int, str]:
    """The consistency of every lightweight transaction and SERIAL read, and why, for a keyspace replicated to
    `datacenters`. LOCAL_SERIAL runs Paxos among the coordinator's own datacenter's replicas only: in one
    datacenter that is every replica, but across two, an instance in each can take the same book's lock at once.
    SERIAL runs it among a majority of all replicas, which costs round trips between datacenters and stops the
    side of a cut that holds no majority (its requests are refused, never guessed). Raises ValueError when
    LOCAL_SERIAL is asked for across datacenters without ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL."""
    spans = len(datacenters) > 1
    where = f"the keyspace is replicated to {', '.join(sorted(datacenters))}"
    if requested == ConsistencyLevel.LOCAL_SERIAL and spans:
        if not risk_accepted:
            raise ValueError(
                f"CASSANDRA_SERIAL_CONSISTENCY=LOCAL_SERIAL: {where}, and LOCAL_SERIAL lets an instance in each "
                "datacenter take the same book at once. Leave the setting out (SERIAL is used), or set "
                "ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL=1 to run it anyway"
            )
        return ConsistencyLevel.LOCAL_SERIAL, f"{where}; LOCAL_SERIAL as set, with the double-booking risk accepted"
    if requested is not None:
        return requested, f"{where}; as CASSANDRA_SERIAL_CONSISTENCY sets"
    if spans:
        return ConsistencyLevel.SERIAL, f"{where}: SERIAL, so no two datacenters can take one book at once"
    return ConsistencyLevel.LOCAL_SERIAL, f"{where}, one datacenter: LOCAL_SERIAL is every replica"


def lock_consistency_for(serial: int, consistency: int) -> int:
    """The consistency of the lock's plain reads and of its transactions' commits. A refusal read off one QUORUM
    read (docs/reservation-protocol.md, fact 7) must meet every commit acknowledged before it: two majorities of
    the same replicas always share one. At SERIAL, across datacenters, a LOCAL_QUORUM commit in one datacenter and a
    LOCAL_QUORUM read in another share none, so both are QUORUM, of all the replicas; in one datacenter LOCAL_QUORUM
    is that already."""
    return ConsistencyLevel.QUORUM if serial == ConsistencyLevel.SERIAL else consistency


def keyspace_datacenters(cluster: Cluster, settings: Settings) -> set[str]:
    """The datacenters the keyspace is replicated to: from its replication if it exists (whatever the settings
    say now), else from the settings it will be made with. A strategy that ignores datacenters places replicas in
    any of the cluster's."""
    keyspace = cluster.metadata.keyspaces.get(settings.keyspace)
    if keyspace is None:
        return set(settings.replication())
    factors = getattr(keyspace.replication_strategy, "dc_replication_factors", None)
    if isinstance(factors, dict):
        return {dc for dc, replicas in factors.items() if int(replicas) > 0}
    return {host.datacenter for host in cluster.metadata.all_hosts() if host.datacenter}


class OutcomeUnknown(DatabaseUnavailable):
    """A write was sent but its answer was lost: it may or may not have been applied."""


@dataclass(frozen=True)
class Result:
    """The rows of one page, its paging state, and (for lightweight transactions) whether it applied."""

    rows: list[Any]
    paging_state: bytes | None
    was_applied: bool

    def one(self) -> Any | None:
        return self.rows[0] if self.rows else None


# Every statement prepared on a session, by its text: one PreparedStatement object per text and session, whichever
# Database made it. The driver keeps prepared statements by id in a weak dictionary, the last one prepared under an id
# replacing the one before; it needs them to prepare again a statement of a batch on a node that does not know it (a
# node just added). Were each Database (another instance on the same session, as the tests make) to keep its own,
# the one the driver kept could be collected with its Database while the others still send its id: the driver then
# fails the batch with a KeyError turned AttributeError (cassandra-driver 3.30, `query_id.encode('hex')`), seen as
# reserves and cancels answering 503 on the partitions of a node that had just joined.
_PREPARED_BY_SESSION: weakref.WeakKeyDictionary[Session, dict[str, PreparedStatement]] = weakref.WeakKeyDictionary()


class Database:
    def __init__(
        self, cluster: Cluster, session: Session, settings: Settings, serial_consistency: int | None = None
    ) -> None:
        self.cluster = cluster
        self.session = session
        self.settings = settings
        # Chosen at connect (choose_serial_consistency); every SERIAL read uses it, as every transaction does.
        self.serial_consistency = (
            serial_consistency if serial_consistency is not None else ConsistencyLevel.LOCAL_SERIAL
        )
        self.lock_consistency = lock_consistency_for(self.serial_consistency, settings.consistency)
        self._prepared: dict[str, asyncio.Future[PreparedStatement]] = {}  # preparations under way, by text
        # (The unit tier's Database has no session, and prepares nothing.)
        self._statements = _PREPARED_BY_SESSION.setdefault(session, {}) if session is not None else {}

    @classmethod
    async def connect(cls, settings: Settings) -> Database:
        if not settings.cassandra_hosts:
            raise ValueError("settings.cassandra_hosts is empty: name at least one Cassandra host")
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_datacenter)),
            consistency_level=settings.consistency,
            request_timeout=settings.request_timeout,
            retry_policy=NoBlindWriteRetries(),
        )
        cluster = Cluster(
            settings.cassandra_hosts,
            port=settings.cassandra_port,
            protocol_version=ProtocolVersion.V5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            # After each schema change the driver waits until every node has it, then sends the next statement,
            # perhaps to another node. Its default 10 s ran out on a fresh cluster whose nodes paused for 11 s (two
            # shared cores), and the next statement, an index on a table just made, met a node without the table.
            max_schema_agreement_wait=SCHEMA_AGREEMENT_WAIT_SECONDS,
        )
        try:
            # The driver's connect blocks; keep it off the event loop.
            session = await asyncio.get_running_loop().run_in_executor(None, cluster.connect)
        except NoHostAvailable as error:
            cluster.shutdown()
            hosts = ",".join(settings.cassandra_hosts)
            raise DatabaseUnavailable(f"cannot connect to Cassandra at {hosts}: {error}") from error
        log.info(
            "connected to Cassandra at %s (cluster %s)",
            ",".join(settings.cassandra_hosts),
            cluster.metadata.cluster_name,
        )
        try:
            serial, why = choose_serial_consistency(
                keyspace_datacenters(cluster, settings),
                settings.serial_consistency,
                settings.accept_double_booking_risk_of_local_serial,
            )
        except ValueError:
            cluster.shutdown()
            raise
        # Read by the driver at each request: set before any statement runs.
        profile.serial_consistency_level = serial
        log.info("lightweight transactions at %s: %s", ConsistencyLevel.value_to_name[serial], why)
        return cls(cluster, session, settings, serial)

    def close(self) -> None:
        self.cluster.shutdown()

    async def prepare(self, cql: str) -> PreparedStatement:
        """Prepare once per statement text and session (`_PREPARED_BY_SESSION`); concurrent callers share one
        preparation."""
        known = self._statements.get(cql)
        if known is not None:
            return known
        future = self._prepared.get(cql)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(None, self.session.prepare, cql)
            self._prepared[cql] = future
        try:
            prepared = await future
        except Exception as error:
            self._prepared.pop(cql, None)
            raise _translate(error, write=False) from error
        self._prepared.pop(cql, None)
        kept = self._statements.setdefault(cql, prepared)
        # Another Database on this session may have prepared the same text meanwhile: the driver must hold the one kept.
        self.cluster.add_prepared(kept.query_id, kept)
        return kept

    async def execute(
        self,
        statement: str | Statement,
        params: Sequence[Any] | None = None,
        *,
        write: bool = False,
        page_size: int | None = None,
        paging_state: bytes | None = None,
        consistency: int | None = None,
    ) -> Result:
        """Run one statement (CQL text is prepared first); `write` marks it for outcome-unknown handling."""
        if isinstance(statement, str):
            statement = await self.prepare(statement)
        if isinstance(statement, PreparedStatement):
            statement = statement.bind(params or ())
            params = None
        statement.is_idempotent = not write  # reads may be sent again elsewhere; writes never blindly
        if page_size is not None:
            statement.fetch_size = page_size
        if consistency is not None:
            statement.consistency_level = consistency
        try:
            future = self.session.execute_async(statement, params, paging_state=paging_state)
            return await _awaitable(future)
        except Exception as error:
            raise _translate(error, write=write) from error

    async def pages(
        self, statement: str | Statement, params: Sequence[Any] | None = None, *, page_size: int
    ) -> AsyncIterator[list[Any]]:
        """Every row a query selects, one page of rows at a time as Cassandra pages it: memory stays that of one page
        however many rows there are."""
        paging_state = None
        while True:
            result = await self.execute(statement, params, page_size=page_size, paging_state=paging_state)
            yield result.rows
            paging_state = result.paging_state
            if not paging_state:
                return

    async def execute_raw(self, cql: str) -> Result:
        """Unprepared CQL, for schema changes and tests."""
        return await self.execute(SimpleStatement(cql))

    def batch(self, *, logged: bool = True) -> BatchStatement:
        """A logged batch: all of its statements apply, or (after the batchlog replays) none of them. Unlogged: the
        statements are independent writes, as if sent one by one, in one request (one coordinator's work, no
        batchlog)."""
        kind = BatchType.LOGGED if logged else BatchType.UNLOGGED
        return BatchStatement(batch_type=kind, consistency_level=self.settings.consistency)


def _awaitable(future: ResponseFuture) -> asyncio.Future[Result]:
    """The driver calls back on its own I/O thread; hand the answer to the event loop's thread."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Result] = loop.create_future()

    def succeed(_rows: Any) -> None:
        result_set = future.result()  # already complete: does not block, and fetches no further page
        result = Result(list(result_set.current_rows), result_set.paging_state, _was_applied(result_set))
        loop.call_soon_threadsafe(_settle, done, result, None)

    def fail(error: BaseException) -> None:
        loop.call_soon_threadsafe(_settle, done, None, error)

    future.add_callbacks(succeed, fail)
    return done


def _settle(done: asyncio.Future[Result], result: Result | None, error: BaseException | None) -> None:
    # Settled already: cancelled, or the driver answered twice (a request it timed out whose answer then came,
    # seen with a datacenter's nodes frozen). The first answer stands; the repository has acted on it.
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)  # type: ignore[arg-type]


def _was_applied(result_set: Any) -> bool:
    try:
        return bool(result_set.was_applied)
    except RuntimeError:  # not a lightweight transaction
        return True


def _translate(error: Exception, *, write: bool) -> Exception:
    if isinstance(error, DatabaseUnavailable):
        return error  # translated already
    # Counted here, where every failed statement passes; the label is the driver's class, a fixed set of its names.
    metrics.CASSANDRA_ERRORS.labels(type(error).__name__).inc()
    if isinstance(error, _STATEMENT_ERRORS):
        return error
    log.warning("Cassandra request failed: %r", error)
    if isinstance(error, Unavailable):
        return DatabaseUnavailable(
            f"database unavailable: {error.alive_replicas} of the {error.required_replicas} replicas needed are up"
        )
    if isinstance(error, NoHostAvailable):
        if error.errors and all(isinstance(e, Unavailable) for e in error.errors.values()):
            return DatabaseUnavailable("database unavailable: too few replicas are up")
        if not write:
            return DatabaseUnavailable("database unavailable: no Cassandra node could be reached")
    if not write:
        what = "timed out" if isinstance(error, ReadTimeout | OperationTimedOut) else "failed"
        return DatabaseUnavailable(f"database unavailable: the read {what} ({type(error).__name__})")
    # A write timeout, a lost connection, a client-side timeout, an unknown CAS result: the write may have
    # applied. Only reading the row back can tell.
    return OutcomeUnknown(f"database unavailable: the write was not confirmed ({type(error).__name__})")
