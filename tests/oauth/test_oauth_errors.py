"""RFC 6749 5.2 error bodies and headers."""

from __future__ import annotations

import json

import pytest

from mcp_core.core.oauth import errors
from mcp_core.core.oauth.errors import (
    NO_STORE_HEADERS,
    OAuthError,
    error_body,
    error_json,
    error_response,
    is_error_text,
)


def test_error_body_has_only_the_fields_that_are_set() -> None:
    assert error_body(OAuthError(errors.INVALID_GRANT)) == {"error": "invalid_grant"}
    full = OAuthError(errors.INVALID_REQUEST, "bad thing", uri="https://docs.example/e")
    assert error_body(full) == {
        "error": "invalid_request",
        "error_description": "bad thing",
        "error_uri": "https://docs.example/e",
    }


def test_error_response_is_json_and_never_cached() -> None:
    status, headers, body = error_response(OAuthError(errors.INVALID_GRANT, "code reused"))
    assert status == 400
    assert ("content-type", "application/json") in headers
    assert ("cache-control", "no-store") in headers
    assert set(NO_STORE_HEADERS) <= set(headers)
    assert json.loads(body) == {"error": "invalid_grant", "error_description": "code reused"}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (errors.INVALID_REQUEST, 400),
        (errors.INVALID_CLIENT, 401),
        (errors.INVALID_GRANT, 400),
        (errors.UNAUTHORIZED_CLIENT, 400),
        (errors.UNSUPPORTED_GRANT_TYPE, 400),
        (errors.INVALID_SCOPE, 400),
        (errors.INVALID_TARGET, 400),
        (errors.INVALID_REDIRECT_URI, 400),
        (errors.INVALID_CLIENT_METADATA, 400),
        (errors.INVALID_TOKEN, 401),
        (errors.INSUFFICIENT_SCOPE, 403),
        (errors.SERVER_ERROR, 500),
        (errors.TEMPORARILY_UNAVAILABLE, 503),
    ],
)
def test_status_follows_the_error_code(code: str, status: int) -> None:
    assert OAuthError(code).status == status


@pytest.mark.parametrize("bad", ['say "hi"', "back\\slash", "new\nline", "caf\u00e9", "x" * 2000])
def test_descriptions_outside_the_rfc_character_set_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="error_description"):
        OAuthError(errors.INVALID_REQUEST, bad)


@pytest.mark.parametrize("bad", ["", 'a"b', "a\\b", "\x00", "é"])
def test_error_codes_outside_the_rfc_character_set_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="error code"):
        OAuthError(bad)


def test_error_uri_must_be_printable_without_spaces() -> None:
    with pytest.raises(ValueError, match="error_uri"):
        OAuthError(errors.INVALID_REQUEST, uri="https://x.example/a b")


def test_errors_compare_by_value() -> None:
    assert OAuthError("invalid_grant", "x") == OAuthError("invalid_grant", "x")
    assert OAuthError("invalid_grant", "x") != OAuthError("invalid_grant", "y")
    assert len({OAuthError("invalid_grant"), OAuthError("invalid_grant")}) == 1


def test_error_json_is_compact_utf8() -> None:
    assert error_json(OAuthError("invalid_scope")) == b'{"error":"invalid_scope"}'


def test_is_error_text() -> None:
    assert is_error_text("a b !#[]~")
    assert not is_error_text('"')
