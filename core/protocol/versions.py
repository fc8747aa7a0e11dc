"""Protocol versions and the two eras they belong to.

The era is a property of each message, not of the server (see DESIGN.md "Protocol versions"):
`initialize` selects the legacy era for that session; a request that carries its protocol
version in `params._meta` is a modern-era (stateless) request. One endpoint serves both.

Spec: MCP 2025-11-25 "Lifecycle" (version negotiation), "Transports" (MCP-Protocol-Version
header); 2026-07-28 "Overview" (stateless requests, `_meta` carried versions).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "DEFAULT_HEADER_VERSION",
    "LATEST_LEGACY_VERSION",
    "LEGACY_VERSIONS",
    "MODERN_VERSIONS",
    "Era",
    "era_of_request",
    "is_known_version",
    "negotiate_legacy_version",
]


class Era(enum.Enum):
    LEGACY = "legacy"
    MODERN = "modern"


# Newest first. The first is what an unknown requested version is answered with.
LEGACY_VERSIONS: Final[tuple[str, ...]] = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST_LEGACY_VERSION: Final[str] = LEGACY_VERSIONS[0]
# The stateless era. Recognised (so a modern request is told clearly that this server does not
# serve it yet) but not negotiated by this release.
MODERN_VERSIONS: Final[tuple[str, ...]] = ("2026-07-28",)
# Streamable HTTP: "If the server does not receive an MCP-Protocol-Version header ... the
# server SHOULD assume protocol version 2025-03-26."
DEFAULT_HEADER_VERSION: Final[str] = "2025-03-26"

_KNOWN: Final[frozenset[str]] = frozenset(LEGACY_VERSIONS + MODERN_VERSIONS)
# 2026-07-28 "Overview": every stateless request names its version in `params._meta`.
_META_VERSION_KEYS: Final[tuple[str, ...]] = ("io.modelcontextprotocol/protocolVersion",)


def is_known_version(version: str) -> bool:
    return version in _KNOWN


def negotiate_legacy_version(
    requested: object, supported: tuple[str, ...] = LEGACY_VERSIONS
) -> str:
    """The version the server answers `initialize` with.

    The requested version when we support it, else our latest (the client then decides
    whether it can go on).
    """
    if isinstance(requested, str) and requested in supported:
        return requested
    return supported[0]


def era_of_request(method: str, params: Mapping[str, Any] | None) -> Era:
    """Which era a request belongs to.

    `initialize` is always legacy. Any other request whose `_meta` names a modern protocol
    version is modern; everything else is legacy (it belongs to a session).
    """
    if method == "initialize" or not params:
        return Era.LEGACY
    meta = params.get("_meta")
    # `is not None` first: most requests have no `_meta`, and an ABC check of None is slow.
    if meta is not None and isinstance(meta, Mapping):
        for key in _META_VERSION_KEYS:
            version = meta.get(key)
            if isinstance(version, str) and version in MODERN_VERSIONS:
                return Era.MODERN
    return Era.LEGACY
