"""What the API tests share (test_api.py, test_hostile_clients.py): one request and its answer, the shape every
error answer has, and a new reader (tests/integration/ is on the path: `from integration.api_support import ...`)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **kw: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """One request: `body` sent as JSON (or `raw` bytes, or aiohttp's `data=`, as they are); the answer's JSON, or
    its text when the answer is not JSON (a page, a refusal before any handler)."""
    data = raw if raw is not None else kw.pop("data", None)
    async with http.request(method, path, json=body if data is None else None, data=data, **kw) as response:
        text = await response.text()
        if text and "json" in response.content_type:
            return response.status, json.loads(text), response
        return response.status, text or None, response


def assert_error(status: int, body: Any, expected: int, field: str | None = None) -> None:
    """An error answer: `expected` status, an "error" sentence (never a traceback) naming `field` if given."""
    assert status == expected, body
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    assert "Traceback" not in body["error"]
    if field is not None:
        assert body.get("field") == field, body
        assert field.lower() in body["error"].lower(), body  # the sentence names what was wrong


async def new_user(
    http: aiohttp.ClientSession, name: str = "Rita Reader", email: str = "rita@example.org"
) -> dict[str, Any]:
    status, user, _ = await call(http, "POST", "/api/users", {"name": name, "email": email})
    assert status == 201, user
    return user
