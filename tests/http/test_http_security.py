"""Origin and Host validation against DNS rebinding (2025-11-25 Transports > Security Warning)."""

from __future__ import annotations

import orjson
import pytest

from mcp_core.core.http.security import OriginPolicy

LOOPBACK = OriginPolicy()


def _status(policy: OriginPolicy, host: str | None, origin: str | None = None) -> int:
    headers = {}
    if host is not None:
        headers["host"] = host
    if origin is not None:
        headers["origin"] = origin
    refusal = policy.check(headers)
    return 200 if refusal is None else refusal.status


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "LOCALHOST:65535",
        "127.0.0.1",
        "127.0.0.1:1",
        "[::1]",
        "[::1]:3000",
    ],
)
def test_loopback_hosts_on_any_port_pass_without_an_origin(host: str) -> None:
    assert _status(LOOPBACK, host) == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",
        "127.0.0.2:80",
        "0.0.0.0:8000",
        "localhost:port",
        "localhost:80:80",
        "::1",
        "user@localhost",
        "",
        "localhost, evil.example",
    ],
)
def test_a_foreign_host_is_misdirected_421(host: str) -> None:
    assert _status(LOOPBACK, host) == 421


def test_a_missing_host_is_misdirected_421() -> None:
    assert _status(LOOPBACK, None) == 421


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:6274",
        "http://localhost",
        "https://127.0.0.1:443",
        "http://[::1]:8080",
        "HTTP://LOCALHOST:1",
    ],
)
def test_loopback_origins_on_any_port_pass(origin: str) -> None:
    assert _status(LOOPBACK, "localhost:8000", origin) == 200


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://evil.example:8000",
        "http://localhost.evil.example",
        "null",
        "localhost:8000",
        "ftp://localhost",
        "http://localhost:8000/path",
        "",
    ],
)
def test_a_foreign_origin_is_forbidden_403(origin: str) -> None:
    assert _status(LOOPBACK, "localhost:8000", origin) == 403


def test_a_dns_rebinding_request_is_refused_on_its_host_first() -> None:
    # The rebinding page sends both its own Host and its own Origin.
    assert _status(LOOPBACK, "evil.example:8000", "http://evil.example:8000") == 421


def test_the_refusal_is_a_json_rpc_error_without_an_id() -> None:
    refusal = LOOPBACK.check({"host": "localhost", "origin": "http://evil.example"})
    assert refusal is not None
    assert ("content-type", "application/json") in refusal.headers
    body = orjson.loads(refusal.body)
    assert "id" not in body
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["message"] == "Invalid Origin header"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("mcp.example.com:443", 200),
        ("mcp.example.com:8443", 421),
        # A Host without a port is not the one pattern that names port 443.
        ("mcp.example.com", 421),
        ("api.example.com:1234", 200),
        ("api.example.com", 200),
        ("any.example.com:9", 200),
        ("localhost:8000", 421),
    ],
)
def test_configured_hosts_match_exact_ports_wildcards_or_bare_names(host: str, status: int) -> None:
    policy = OriginPolicy(
        allowed_hosts=("mcp.example.com:443", "api.example.com:*", "any.example.com")
    )
    assert _status(policy, host) == status


def test_configured_origins_replace_the_loopback_ones() -> None:
    policy = OriginPolicy(
        allowed_hosts=("mcp.example.com",), allowed_origins=("https://app.example.com",)
    )
    assert _status(policy, "mcp.example.com", "https://app.example.com") == 200
    assert _status(policy, "mcp.example.com", "https://app.example.com:444") == 200
    assert _status(policy, "mcp.example.com", "http://app.example.com") == 403
    assert _status(policy, "mcp.example.com", "http://localhost:3000") == 403


def test_a_disabled_policy_lets_everything_through() -> None:
    policy = OriginPolicy(enabled=False)
    assert _status(policy, "evil.example", "http://evil.example") == 200
    assert _status(policy, None) == 200
