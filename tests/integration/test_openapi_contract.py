"""The OpenAPI document tells the truth: schemathesis drives the running app (`python -m app` in its own
process, in the production setting, with the demo data) with requests generated from its /openapi.json, valid
and invalid (its negative mode, unicode-heavy strings included), signed in as a librarian and anonymous, and
checks that no answer is a 5xx and that every status, header, content type and body is one the document names.

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

from app.models import Role
from app.repository import Library
from app.rules import replication_for
from app.settings import Settings
from app.web.openapi import document
from toolkit.cli import bearer

KEYSPACE = "test_contract"
EXAMPLES = 30
MODES = schemathesis.GenerationMode
LIBRARIAN_CARD, LIBRARIAN_PIN = 1_700_001, "contract-librarian-pin"
PRODUCTION = {"LIBRARY_ENV": "production", "COOKIE_SECRET": "contract-cookie", "PAGE_TOKEN_SECRET": "contract-pages"}
# (path, method, mode, who): invalid requests only where there is an input to get wrong; each as a librarian and
# as nobody.
CASES = [
    (path, method.upper(), mode, who)
    for path, item in document(production=True)["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "put", "patch", "delete")
    for mode in (MODES.POSITIVE, MODES.NEGATIVE)
    if mode == MODES.POSITIVE or "requestBody" in operation or operation.get("parameters") or item.get("parameters")
    for who in ("librarian", "anonymous")
]


@pytest.fixture(scope="session")
async def app_url(cassandra_hosts: list[str], spawn_app: Callable[..., str]) -> str:
    settings = Settings(
        cassandra_hosts=cassandra_hosts, keyspace=KEYSPACE, replication_factor=replication_for(cassandra_hosts)
    )
    db = await fresh_keyspace(settings, KEYSPACE)
    try:
        await Library(db).create_user(
            "Contract Librarian", "contract@example.org", LIBRARIAN_CARD, role=Role.LIBRARIAN, pin=LIBRARIAN_PIN
        )
    finally:
        db.close()
    return spawn_app(KEYSPACE, seed=True, extra_env=PRODUCTION)


def librarian_headers(app_url: str) -> dict[str, str]:
    """A fresh token, by signing in as a client does."""
    answer = requests.post(f"{app_url}/api/session", json={"user_id": LIBRARIAN_CARD, "pin": LIBRARIAN_PIN}, timeout=30)
    assert answer.status_code == 201, answer.text
    return bearer(answer.json()["token"])


@pytest.fixture(scope="session")
def api_schema(app_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{app_url}/openapi.json")


def test_the_served_document_is_the_one_in_the_code(app_url: str) -> None:
    served = requests.get(f"{app_url}/openapi.json", timeout=10).json()
    assert served == document(production=True)


@pytest.mark.parametrize(
    ("path", "method", "mode", "who"), CASES, ids=[f"{m} {p} {mode.value} {who}" for p, m, mode, who in CASES]
)
def test_the_api_matches_its_openapi_document(
    api_schema: schemathesis.BaseSchema,
    app_url: str,
    path: str,
    method: str,
    mode: schemathesis.GenerationMode,
    who: str,
) -> None:
    operation = api_schema[path][method]
    session = requests.Session()
    token = librarian_headers(app_url)["Authorization"] if who == "librarian" else None
    # Signing out ends the token it is sent with: each such request gets a token of its own.
    signs_out = (path, method) == ("/api/session", "DELETE") and who == "librarian"

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case, data: st.DataObject) -> None:
        if mode == MODES.POSITIVE and case.query:
            # A page token is opaque and sealed (app/repository/base.py): one made up is rightly refused, so valid
            # requests are drawn without one.
            case.query.pop("page", None)
        authorize(case, librarian_headers(app_url)["Authorization"] if signs_out else token)
        response = case.call_and_validate(base_url=app_url, session=session)
        if token is not None and mode == MODES.POSITIVE and (path, method) != ("/api/session", "POST"):
            # (Signing in with a made-up card and PIN is rightly a 401, whoever asks.)
            assert response.status_code != 401, "the librarian's own token was refused"

    check()


def authorize(case: schemathesis.Case, token: str | None) -> None:
    """The case as the librarian (`token`) or as nobody (None). schemathesis fills the Authorization header that the
    document declares with made-up tokens: where it meant the header to be valid, the librarian's real one goes in
    its place; where it left the header out on purpose (a negative case), it stays out."""
    headers = case.headers if case.headers is not None else {}
    if token is None:
        headers.pop("Authorization", None)
    else:
        components = getattr(getattr(case, "meta", None), "components", None) or {}
        header = next((info for where, info in components.items() if str(where.value) == "header"), None)
        if header is None or header.mode == MODES.POSITIVE:
            headers["Authorization"] = token
    case.headers = headers
