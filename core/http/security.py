"""Origin and Host validation against DNS rebinding.

Spec: MCP 2025-11-25 "Transports" > "Security Warning": servers MUST validate the Origin
header and SHOULD bind to localhost only. A page on `evil.example` that rebinds its name to
127.0.0.1 sends `Host: evil.example` and `Origin: http://evil.example`; both are refused.

Patterns: `host` matches that host on any port; `host:port` matches exactly; `host:*` matches
any port. Origins are `scheme://host[:port]` with the same `:*` wildcard. A request without an
Origin header is not from a browser and passes the origin check.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import attrs

from .messages import HttpResponse, error_response

__all__ = ["LOOPBACK_HOSTS", "LOOPBACK_ORIGINS", "OriginPolicy"]

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS: tuple[str, ...] = (
    "http://127.0.0.1:*",
    "http://localhost:*",
    "http://[::1]:*",
    "https://127.0.0.1:*",
    "https://localhost:*",
    "https://[::1]:*",
)


def _split_host(value: str) -> tuple[str, str | None]:
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, None
        host, rest = value[: end + 1], value[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port
    return value, None


@lru_cache(maxsize=512)
def _host_matches(value: str, patterns: tuple[str, ...]) -> bool:
    host, port = _split_host(value)
    if port is not None and not port.isdigit():
        return False
    for pattern in patterns:
        p_host, p_port = _split_host(pattern)
        if p_host != host:
            continue
        if p_port in (None, "*") or p_port == port:
            return True
    return False


@lru_cache(maxsize=512)
def _origin_matches(origin: str, patterns: tuple[str, ...]) -> bool:
    origin = origin.strip().lower()
    scheme, sep, rest = origin.partition("://")
    if not sep or "/" in rest:
        return False
    for pattern in patterns:
        p_scheme, p_sep, p_rest = pattern.lower().partition("://")
        if p_sep and p_scheme == scheme and _host_matches(rest, (p_rest,)):
            return True
    return False


@attrs.frozen(kw_only=True)
class OriginPolicy:
    """Which Host and Origin values a server accepts; decisions are memoised per value.

    `enabled=False` turns both checks off (only behind a proxy that does them)."""

    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    allowed_origins: tuple[str, ...] = LOOPBACK_ORIGINS
    enabled: bool = True

    def check(self, headers: Mapping[str, str]) -> HttpResponse | None:
        """None when the request may go on, else the response that refuses it."""
        if not self.enabled:
            return None
        host = headers.get("host")
        if host is None or not _host_matches(host, self.allowed_hosts):
            return error_response(421, "Invalid Host header")
        origin = headers.get("origin")
        if origin is not None and not _origin_matches(origin, self.allowed_origins):
            return error_response(403, "Invalid Origin header")
        return None
