"""RFC 7591 dynamic client registration requests, including hostile ones."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.oauth.errors import INVALID_CLIENT_METADATA, INVALID_REDIRECT_URI, OAuthError
from mcp_core.core.oauth.registration import (
    MAX_CLIENT_NAME_LENGTH,
    MAX_REDIRECT_URIS,
    MAX_REQUEST_BYTES,
    ClientMetadata,
    check_client_metadata,
    parse_registration_request,
    registration_response,
)

NATIVE = {
    "redirect_uris": ["http://127.0.0.1:33418/callback"],
    "token_endpoint_auth_method": "none",
}


def _request(**fields: Any) -> dict[str, Any]:
    return {**NATIVE, **fields}


def _refused(fields: Any) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        check_client_metadata(fields)
    return info.value


def test_typical_mcp_client_registration() -> None:
    metadata = check_client_metadata(
        _request(
            client_name="Example Desktop",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            scope="mcp:tools files:read",
        )
    )
    assert metadata == ClientMetadata(
        redirect_uris=("http://127.0.0.1:33418/callback",),
        token_endpoint_auth_method="none",
        grant_types=("authorization_code", "refresh_token"),
        response_types=("code",),
        application_type="native",
        client_name="Example Desktop",
        scope="mcp:tools files:read",
    )
    assert metadata.is_public
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        metadata.client_name = "x"  # type: ignore[misc]


def test_rfc_defaults_apply() -> None:
    metadata = check_client_metadata({"redirect_uris": ["https://app.example/cb"]})
    assert metadata.token_endpoint_auth_method == "client_secret_basic"
    assert metadata.grant_types == ("authorization_code",)
    assert metadata.response_types == ("code",)
    assert metadata.application_type == "web"
    assert not metadata.is_public


def test_application_type_is_inferred_from_redirects() -> None:
    assert check_client_metadata(_request()).application_type == "native"
    private_use = _request(redirect_uris=["com.example.app:/cb"])
    assert check_client_metadata(private_use).application_type == "native"


def test_mixing_web_and_native_redirects_without_application_type_is_refused() -> None:
    fields = _request(redirect_uris=["https://app.example/cb", "http://127.0.0.1/cb"])
    assert _refused(fields).error == INVALID_REDIRECT_URI


def test_web_client_needs_https_redirects() -> None:
    assert _refused(_request(application_type="web")).error == INVALID_REDIRECT_URI


def test_native_client_needs_loopback_or_private_use_redirects() -> None:
    fields = _request(application_type="native", redirect_uris=["https://app.example/cb"])
    assert _refused(fields).error == INVALID_REDIRECT_URI


@pytest.mark.parametrize(
    "redirect_uris",
    [
        None,
        [],
        "https://app.example/cb",
        [123],
        ["https://app.example/cb#frag"],
        ["https://user@app.example/cb"],
        ["https://*.app.example/cb"],
        ["http://app.example/cb"],
        ["javascript:alert(1)"],
        ["https://app.example/../cb"],
        ["https://app.example/cb", "https://app.example/cb"],
        [f"https://app.example/cb{i}" for i in range(MAX_REDIRECT_URIS + 1)],
    ],
)
def test_bad_redirect_uris_are_invalid_redirect_uri(redirect_uris: object) -> None:
    fields = _request(redirect_uris=redirect_uris)
    if redirect_uris is None:
        del fields["redirect_uris"]
    assert _refused(fields).error == INVALID_REDIRECT_URI


def test_the_refused_uri_is_not_echoed() -> None:
    error = _refused(_request(redirect_uris=['https://evil.example/"<script>#']))
    assert "script" not in (error.description or "")


@pytest.mark.parametrize(
    "fields",
    [
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"token_endpoint_auth_method": "None"},
        {"token_endpoint_auth_method": 1},
        {"grant_types": ["implicit"]},
        {"grant_types": ["password"]},
        {"grant_types": "authorization_code"},
        {"grant_types": ["authorization_code", "authorization_code"]},
        {"response_types": ["token"]},
        {"response_types": ["code", "id_token"]},
        {"response_types": []},
        {"grant_types": ["refresh_token"], "response_types": []},
        {"grant_types": ["client_credentials"], "response_types": ["code"]},
        {"grant_types": ["client_credentials"], "response_types": []},  # public client
        {"application_type": "desktop"},
        {"client_name": ""},
        {"client_name": "x" * (MAX_CLIENT_NAME_LENGTH + 1)},
        {"client_name": "bad\x00name"},
        {"client_name": "line\nbreak"},
        {"client_name": ["list"]},
        {"client_uri": "http://app.example"},
        {"client_uri": "javascript:alert(1)"},
        {"logo_uri": "https://user@app.example/logo.png"},
        {"tos_uri": "https://app.example/tos#x"},
        {"policy_uri": "https://"},
        {"scope": 'bad"scope'},
        {"scope": "two  spaces"},
        {"scope": 5},
        {"contacts": "admin@example.com"},
        {"contacts": ["a@example.com"] * 2},
        {"contacts": [f"c{i}@example.com" for i in range(11)]},
        {"token_endpoint_auth_method": "private_key_jwt", "client_name": "no keys"},
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://app.example/jwks",
            "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc"}]},
        },
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"x": "1"}]}},
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "d": "secret"}]},
        },
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        },
        {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://app.example/j"},
    ],
)
def test_bad_metadata_is_invalid_client_metadata(fields: dict[str, Any]) -> None:
    assert _refused(_request(**fields)).error == INVALID_CLIENT_METADATA


def test_private_key_jwt_with_public_jwks_is_accepted() -> None:
    jwks = {
        "keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]
    }
    fields = _request(token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    assert check_client_metadata(fields).jwks == jwks


def test_client_credentials_only_client_needs_no_redirects() -> None:
    metadata = check_client_metadata(
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}
    )
    assert metadata.redirect_uris == ()
    assert metadata.response_types == ()


def test_server_assigned_and_unknown_fields_are_never_taken() -> None:
    metadata = check_client_metadata(
        _request(
            client_id="admin",
            client_secret="chosen",
            client_id_issued_at=0,
            client_secret_expires_at=0,
            registration_access_token="x",
            registration_client_uri="https://evil.example",
            is_admin=True,
            __class__="x",
        )
    )
    body = registration_response(metadata, client_id="c-1", client_id_issued_at=1_700_000_000)
    assert body["client_id"] == "c-1"
    for name in ("client_secret", "registration_access_token", "is_admin", "__class__"):
        assert name not in body


def test_registration_response_carries_the_assigned_secret() -> None:
    metadata = check_client_metadata({"redirect_uris": ["https://app.example/cb"]})
    body = registration_response(
        metadata, client_id="c", client_id_issued_at=10, client_secret="s3cret"
    )
    assert body == {
        "client_id": "c",
        "client_id_issued_at": 10,
        "client_secret": "s3cret",
        "client_secret_expires_at": 0,
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "application_type": "web",
    }


def test_parse_registration_request_from_bytes() -> None:
    metadata = parse_registration_request(json.dumps(NATIVE).encode())
    assert metadata.redirect_uris == ("http://127.0.0.1:33418/callback",)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"string"',
        b"null",
        b"\xff\xfe",
        b"[" * 10_000,
        json.dumps({**NATIVE, "client_name": "x" * MAX_REQUEST_BYTES}).encode(),
    ],
)
def test_bad_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(OAuthError) as info:
        parse_registration_request(body)
    assert info.value.error == INVALID_CLIENT_METADATA


def test_non_mapping_is_refused() -> None:
    assert _refused(["redirect_uris"]).error == INVALID_CLIENT_METADATA


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "redirect_uris",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "application_type",
        "client_name",
        "client_uri",
        "scope",
        "contacts",
        "jwks",
        "jwks_uri",
    ]
)


@given(st.dictionaries(_keys, _json, max_size=6))
def test_arbitrary_requests_give_metadata_or_a_registration_error(fields: dict[str, Any]) -> None:
    outcome: ClientMetadata | OAuthError
    try:
        outcome = check_client_metadata(fields)
    except OAuthError as error:
        outcome = error
    if isinstance(outcome, OAuthError):
        assert outcome.error in {INVALID_CLIENT_METADATA, INVALID_REDIRECT_URI}
        return
    metadata = outcome
    assert set(metadata.grant_types) <= {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert ("authorization_code" in metadata.grant_types) == ("code" in metadata.response_types)
