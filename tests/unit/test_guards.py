"""app/web/guards.py's pure parts: which Host headers are answered, what counts as a JSON body, the response
headers, and the HTTP server's own body limit. The guards at work on real requests are in
tests/integration/test_hostile_clients.py."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from app.settings import DEFAULT_ALLOWED_HOSTS, Settings
from app.web.guards import (
    SECURITY_HEADERS,
    GuardedApplication,
    HostAllowList,
    SecurityHeaders,
    host_name,
    http_server,
    is_json,
)


def test_host_names_are_compared_without_port_case_or_trailing_dot() -> None:
    assert host_name("LocalHost.:8888") == "localhost"
    assert host_name("[::1]:8888") == "::1"
    assert host_name("127.0.0.1:80") == "127.0.0.1"
    assert host_name("example.org") == "example.org"


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8888", "LOCALHOST.", "127.0.0.1", "127.0.0.1:8888", "127.8.9.10:1", "[::1]", "[::1]:8888"],
)
def test_the_default_answers_this_machine(host: str) -> None:
    assert HostAllowList(DEFAULT_ALLOWED_HOSTS).allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8888",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "128.0.0.1",
        "[::2]:8888",
        "",
        "localhost@evil.example",
        "0.0.0.0",
    ],
)
def test_the_default_refuses_other_names(host: str) -> None:
    # DNS rebinding: another site's name resolved to 127.0.0.1 arrives with that name in the Host header.
    assert not HostAllowList(DEFAULT_ALLOWED_HOSTS).allows(host)


def test_allowed_hosts_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "Library.Example.org, 10.0.0.0/8")
    settings = Settings.from_env()
    allowed = HostAllowList(settings.allowed_hosts)
    assert allowed.allows("library.example.org:443") and allowed.allows("10.1.2.3")
    assert not allowed.allows("localhost") and not allowed.allows("11.0.0.1")
    monkeypatch.setenv("ALLOWED_HOSTS", "*")
    assert HostAllowList(Settings.from_env().allowed_hosts).allows("anything.example")
    for bad in ("10.0.0.0/99", "localhost:8888", "a b"):
        monkeypatch.setenv("ALLOWED_HOSTS", bad)
        with pytest.raises(ValueError, match="ALLOWED_HOSTS"):
            Settings.from_env()
    monkeypatch.delenv("ALLOWED_HOSTS")
    assert Settings.from_env().allowed_hosts == DEFAULT_ALLOWED_HOSTS


def test_the_body_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().max_body_bytes == 64 * 1024
    monkeypatch.setenv("MAX_BODY_BYTES", "1000")
    assert Settings.from_env().max_body_bytes == 1000
    for bad in ("0", "-1", "lots", "1e6"):
        monkeypatch.setenv("MAX_BODY_BYTES", bad)
        with pytest.raises(ValueError, match="MAX_BODY_BYTES"):
            Settings.from_env()


def test_the_http_server_never_buffers_more_than_the_limit() -> None:
    settings = Settings(max_body_bytes=1234)
    server = http_server(GuardedApplication([], app_settings=settings), settings)
    assert server.conn_params.max_body_size == 1234  # type: ignore[attr-defined]


def test_json_content_types() -> None:
    assert is_json("application/json") and is_json("Application/JSON; charset=utf-8")
    for other in (None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        assert not is_json(other)
    assert not is_json("application/jsonx") and not is_json("text/json")


def test_every_response_gets_the_security_headers_and_no_server_version() -> None:
    headers = HTTPHeaders({"Server": "TornadoServer/6.6.1", "Content-Type": "text/html"})
    request = HTTPServerRequest(
        start_line=RequestStartLine("GET", "/", "HTTP/1.1"), headers=HTTPHeaders({"Host": "localhost"})
    )
    _, out, _ = SecurityHeaders(request).transform_first_chunk(200, headers, b"", True)
    assert "Server" not in out
    for name, value in SECURITY_HEADERS.items():
        assert out[name] == value
    assert "frame-ancestors 'none'" in out["Content-Security-Policy"] and out["X-Frame-Options"] == "DENY"
    assert out["X-Content-Type-Options"] == "nosniff"
