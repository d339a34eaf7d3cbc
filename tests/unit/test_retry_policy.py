"""The driver's retry policy, without Cassandra: a write is never sent again blindly, so every write whose answer
was lost reaches the repository as OutcomeUnknown and is resolved there (app/db.py)."""

from __future__ import annotations

from cassandra.connection import ConnectionException
from cassandra.protocol import OverloadedErrorMessage
from cassandra.query import SimpleStatement

from app.db import NoBlindWriteRetries

POLICY = NoBlindWriteRetries()


def statement(*, idempotent: bool) -> SimpleStatement:
    return SimpleStatement("SELECT 1", is_idempotent=idempotent)


def test_a_write_whose_connection_broke_is_not_sent_again() -> None:
    decision, _ = POLICY.on_request_error(statement(idempotent=False), None, ConnectionException("lost"), 0)
    assert decision == POLICY.RETHROW


def test_a_read_whose_connection_broke_goes_to_the_next_host() -> None:
    decision, _ = POLICY.on_request_error(statement(idempotent=True), None, ConnectionException("lost"), 0)
    assert decision == POLICY.RETRY_NEXT_HOST


def test_a_write_a_node_refused_before_running_it_goes_to_the_next_host() -> None:
    overloaded = OverloadedErrorMessage(code=0x1001, message="overloaded", info=None)
    decision, _ = POLICY.on_request_error(statement(idempotent=False), None, overloaded, 0)
    assert decision == POLICY.RETRY_NEXT_HOST


def test_a_write_timeout_is_never_retried_by_the_driver() -> None:
    decision, _ = POLICY.on_write_timeout(statement(idempotent=False), None, "BATCH_LOG", 1, 2, 0)
    assert decision == POLICY.RETHROW
