"""Version negotiation and the era of a request (2025-11-25 Lifecycle; DESIGN.md eras)."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_core.core.protocol.versions import (
    DEFAULT_HEADER_VERSION,
    LATEST_LEGACY_VERSION,
    LEGACY_VERSIONS,
    MODERN_VERSIONS,
    Era,
    era_of_request,
    is_known_version,
    negotiate_legacy_version,
)


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_a_supported_requested_version_is_answered_as_requested(version: str) -> None:
    assert negotiate_legacy_version(version) == version


@pytest.mark.parametrize("requested", ["2024-11-05", "1999-01-01", "", None, 20250618, ["x"]])
def test_an_unsupported_requested_version_is_answered_with_the_latest(requested: Any) -> None:
    assert negotiate_legacy_version(requested) == LATEST_LEGACY_VERSION == "2025-11-25"


def test_the_modern_version_is_not_negotiated_by_initialize() -> None:
    assert negotiate_legacy_version(MODERN_VERSIONS[0]) == LATEST_LEGACY_VERSION


def test_negotiation_answers_from_the_given_supported_list() -> None:
    assert negotiate_legacy_version("2025-03-26", ("2025-06-18",)) == "2025-06-18"


def test_the_header_default_is_the_2025_03_26_revision() -> None:
    assert DEFAULT_HEADER_VERSION == "2025-03-26"


@pytest.mark.parametrize(
    ("version", "known"),
    [
        ("2025-11-25", True),
        ("2025-06-18", True),
        ("2025-03-26", True),
        ("2026-07-28", True),
        ("2024-11-05", False),
        ("2025-11-25 ", False),
        ("latest", False),
    ],
)
def test_known_versions(version: str, known: bool) -> None:
    assert is_known_version(version) is known


@pytest.mark.parametrize(
    ("method", "params", "era"),
    [
        ("initialize", {"_meta": {"protocolVersion": "2026-07-28"}}, Era.LEGACY),
        ("tools/list", None, Era.LEGACY),
        ("tools/list", {}, Era.LEGACY),
        ("tools/list", {"_meta": {"protocolVersion": "2025-11-25"}}, Era.LEGACY),
        # Only the namespaced key names a stateless request's version (2026-07-28 Overview).
        ("tools/list", {"_meta": {"protocolVersion": "2026-07-28"}}, Era.LEGACY),
        (
            "tools/list",
            {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
            Era.MODERN,
        ),
        ("tools/list", {"_meta": "2026-07-28"}, Era.LEGACY),
        ("tools/list", {"protocolVersion": "2026-07-28"}, Era.LEGACY),
    ],
)
def test_the_era_of_a_request_is_read_from_its_meta(
    method: str, params: dict[str, Any] | None, era: Era
) -> None:
    assert era_of_request(method, params) is era
