"""RFC 8414 and RFC 9728 metadata documents and well-known URLs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.oauth.metadata import (
    MetadataError,
    authorization_server_discovery_urls,
    authorization_server_metadata,
    authorization_server_metadata_url,
    check_metadata_issuer,
    protected_resource_metadata,
    protected_resource_metadata_url,
)

ISSUER = "https://auth.example"


def _as_metadata(**overrides: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
    }
    arguments.update(overrides)
    return authorization_server_metadata(**arguments)  # type: ignore[arg-type]


def test_authorization_server_metadata_advertises_the_security_defaults() -> None:
    document = _as_metadata(
        jwks_uri=f"{ISSUER}/jwks",
        registration_endpoint=f"{ISSUER}/register",
        revocation_endpoint=f"{ISSUER}/revoke",
        scopes_supported=["mcp:tools", "mcp:read"],
    )
    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert document["token_endpoint"] == f"{ISSUER}/token"
    assert document["jwks_uri"] == f"{ISSUER}/jwks"
    assert document["registration_endpoint"] == f"{ISSUER}/register"
    assert document["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["token_endpoint_auth_methods_supported"] == [
        "none",
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert "none" not in document["token_endpoint_auth_signing_alg_values_supported"]  # type: ignore[operator]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["client_id_metadata_document_supported"] is True
    assert document["scopes_supported"] == ["mcp:tools", "mcp:read"]


def test_optional_fields_are_left_out_when_not_given() -> None:
    document = _as_metadata(token_endpoint_auth_methods_supported=["none"])
    for absent in ("jwks_uri", "registration_endpoint", "scopes_supported"):
        assert absent not in document
    assert "token_endpoint_auth_signing_alg_values_supported" not in document


@pytest.mark.parametrize(
    "issuer",
    [
        "http://auth.example",
        "https://auth.example?tenant=a",
        "https://auth.example#x",
        "https://user@auth.example",
        "ftp://auth.example",
        "auth.example",
        "https://",
        "https://[::1",
        "https://auth.example/ x",
    ],
)
def test_bad_issuers_are_refused(issuer: str) -> None:
    with pytest.raises(MetadataError):
        _as_metadata(issuer=issuer)


def test_loopback_http_issuer_is_allowed_for_development() -> None:
    assert _as_metadata(issuer="http://127.0.0.1:8000")["issuer"] == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    "overrides",
    [
        {"grant_types_supported": ["implicit"]},
        {"grant_types_supported": ["password"]},
        {"grant_types_supported": []},
        {"token_endpoint_auth_methods_supported": ["client_secret_jwt"]},
        {"token_endpoint_auth_signing_alg_values_supported": ["none"]},
        {"scopes_supported": ["two words"]},
        {"token_endpoint": "http://auth.example/token"},
    ],
)
def test_unsupported_choices_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(MetadataError):
        _as_metadata(**overrides)


def test_protected_resource_metadata() -> None:
    document = protected_resource_metadata(
        resource="https://mcp.example/mcp",
        authorization_servers=[ISSUER],
        scopes_supported=["mcp:tools"],
        resource_name="Example MCP",
    )
    assert document == {
        "resource": "https://mcp.example/mcp",
        "authorization_servers": [ISSUER],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Example MCP",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"authorization_servers": []},
        {"authorization_servers": ["http://auth.example"]},
        {"resource": "https://mcp.example/mcp#frag"},
        {"resource": "http://mcp.example/mcp"},
        {"resource_name": "bad\nname"},
    ],
)
def test_bad_protected_resource_metadata_is_refused(overrides: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "resource": "https://mcp.example/mcp",
        "authorization_servers": [ISSUER],
    }
    arguments.update(overrides)
    with pytest.raises(MetadataError):
        protected_resource_metadata(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("issuer", "url"),
    [
        ("https://auth.example", "https://auth.example/.well-known/oauth-authorization-server"),
        ("https://auth.example/", "https://auth.example/.well-known/oauth-authorization-server"),
        (
            "https://auth.example/tenant/1",
            "https://auth.example/.well-known/oauth-authorization-server/tenant/1",
        ),
        (
            "https://auth.example/tenant/",
            "https://auth.example/.well-known/oauth-authorization-server/tenant",
        ),
        (
            "https://auth.example:8443/t",
            "https://auth.example:8443/.well-known/oauth-authorization-server/t",
        ),
    ],
)
def test_authorization_server_metadata_url_uses_path_insertion(issuer: str, url: str) -> None:
    assert authorization_server_metadata_url(issuer) == url


@pytest.mark.parametrize(
    ("resource", "url"),
    [
        ("https://mcp.example", "https://mcp.example/.well-known/oauth-protected-resource"),
        ("https://mcp.example/", "https://mcp.example/.well-known/oauth-protected-resource"),
        ("https://mcp.example/mcp", "https://mcp.example/.well-known/oauth-protected-resource/mcp"),
        (
            "https://mcp.example/a/mcp?x=1",
            "https://mcp.example/.well-known/oauth-protected-resource/a/mcp?x=1",
        ),
    ],
)
def test_protected_resource_metadata_url_uses_path_insertion(resource: str, url: str) -> None:
    assert protected_resource_metadata_url(resource) == url


def test_discovery_urls_without_path() -> None:
    assert authorization_server_discovery_urls("https://auth.example") == (
        "https://auth.example/.well-known/oauth-authorization-server",
        "https://auth.example/.well-known/openid-configuration",
    )


def test_discovery_urls_with_path() -> None:
    assert authorization_server_discovery_urls("https://auth.example/t1") == (
        "https://auth.example/.well-known/oauth-authorization-server/t1",
        "https://auth.example/.well-known/openid-configuration/t1",
        "https://auth.example/t1/.well-known/openid-configuration",
    )


def test_metadata_url_refuses_an_issuer_with_a_query() -> None:
    with pytest.raises(MetadataError):
        authorization_server_metadata_url("https://auth.example?x=1")


def test_check_metadata_issuer_requires_identity() -> None:
    check_metadata_issuer({"issuer": ISSUER}, ISSUER)
    for other in (f"{ISSUER}/", "https://AUTH.example", "https://evil.example", None):
        with pytest.raises(MetadataError):
            check_metadata_issuer({"issuer": other}, ISSUER)


_segment = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)


@given(st.lists(_segment, max_size=4), st.booleans())
def test_well_known_url_keeps_the_path_after_the_suffix(segments: list[str], slash: bool) -> None:
    path = "".join("/" + s for s in segments)
    issuer = "https://auth.example" + path + ("/" if slash else "")
    url = authorization_server_metadata_url(issuer)
    assert url == "https://auth.example/.well-known/oauth-authorization-server" + path
