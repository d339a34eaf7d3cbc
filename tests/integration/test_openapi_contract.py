"""The OpenAPI document tells the truth: schemathesis drives the running app (`python -m app` in its own
process, with the demo data) with requests generated from its /openapi.json, valid and invalid, and checks
that no answer is a 5xx and that every status, header, content type and body is one the document names.

Each operation of the document is one test per generation mode. (schemathesis' own lazy pytest loader does
not run under pytest 9, so the cases are drawn here with hypothesis from `operation.as_strategy`.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tool_support import fresh_keyspace

from app.rules import replication_for
from app.settings import Settings
from app.web.openapi import document

KEYSPACE = "test_contract"
EXAMPLES = 30
MODES = schemathesis.GenerationMode
# (path, method, mode): invalid requests only where there is an input to get wrong.
CASES = [
    (path, method.upper(), mode)
    for path, item in document()["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "put", "patch", "delete")
    for mode in (MODES.POSITIVE, MODES.NEGATIVE)
    if mode == MODES.POSITIVE or "requestBody" in operation or operation.get("parameters") or item.get("parameters")
]


@pytest.fixture(scope="session")
async def app_url(cassandra_hosts: list[str], spawn_app: Callable[..., str]) -> str:
    settings = Settings(
        cassandra_hosts=cassandra_hosts, keyspace=KEYSPACE, replication_factor=replication_for(cassandra_hosts)
    )
    (await fresh_keyspace(settings, KEYSPACE)).close()
    return spawn_app(KEYSPACE, seed=True)


@pytest.fixture(scope="session")
def api_schema(app_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{app_url}/openapi.json")


def test_the_served_document_is_the_one_in_the_code(app_url: str) -> None:
    served = requests.get(f"{app_url}/openapi.json", timeout=10).json()
    assert served == document()


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for p, m, mode in CASES])
def test_the_api_matches_its_openapi_document(
    api_schema: schemathesis.BaseSchema, app_url: str, path: str, method: str, mode: schemathesis.GenerationMode
) -> None:
    operation = api_schema[path][method]
    session = requests.Session()

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case, data: st.DataObject) -> None:
        if mode == MODES.POSITIVE and case.query:
            # A page token is opaque and sealed (app/repository/base.py): one made up is rightly refused, so valid
            # requests are drawn without one.
            case.query.pop("page", None)
        case.call_and_validate(base_url=app_url, session=session)

    check()
