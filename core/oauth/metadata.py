"""Discovery documents: authorization server metadata (RFC 8414) and protected resource
metadata (RFC 9728), and where each is published.

- `authorization_server_metadata` builds the RFC 8414 2 document of the built-in server:
  `issuer`, its endpoints, `response_types_supported` `["code"]`, `grant_types_supported`,
  `code_challenge_methods_supported` `["S256"]` (RFC 7636 6.2, nothing else: see `pkce`),
  `token_endpoint_auth_methods_supported` (none, client_secret_basic, client_secret_post,
  private_key_jwt), `authorization_response_iss_parameter_supported` true (RFC 9207 3) and
  `client_id_metadata_document_supported` (the MCP client ID metadata document draft).
- `protected_resource_metadata` builds the RFC 9728 2 document of an MCP server: `resource`,
  `authorization_servers`, `scopes_supported`, `bearer_methods_supported` `["header"]` (the MCP
  authorization spec forbids tokens in the query string, RFC 6750 2.3).
- `authorization_server_metadata_url` and `protected_resource_metadata_url` derive the
  well-known URLs by path insertion (RFC 8414 3.1, RFC 9728 3.1): the well-known suffix goes
  between the host and the path, after removing a terminating "/"; a query is kept.
  `authorization_server_discovery_urls` lists the URLs an MCP client tries, in order
  (RFC 8414 3.1, then OpenID Connect Discovery 1.0 4 with insertion and appending).
- `check_metadata_issuer` is the client-side rule of RFC 8414 3.3: the `issuer` in the
  document must be identical to the issuer the client used to build the URL.

Identifiers (issuer, resource) are `https` URLs without fragment (RFC 8414 2, RFC 9728 2); an
issuer has no query either. `http` is accepted only for a loopback host, for development.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .pkce import S256

__all__ = [
    "AS_WELL_KNOWN",
    "OIDC_WELL_KNOWN",
    "PRM_WELL_KNOWN",
    "TOKEN_ENDPOINT_AUTH_METHODS",
    "MetadataError",
    "authorization_server_discovery_urls",
    "authorization_server_metadata",
    "authorization_server_metadata_url",
    "check_metadata_issuer",
    "protected_resource_metadata",
    "protected_resource_metadata_url",
]

AS_WELL_KNOWN = "oauth-authorization-server"
OIDC_WELL_KNOWN = "openid-configuration"
PRM_WELL_KNOWN = "oauth-protected-resource"
TOKEN_ENDPOINT_AUTH_METHODS = (
    "none",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
)
_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
_SIGNING_ALGS = ("EdDSA", "ES256", "RS256")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class MetadataError(ValueError):
    """A metadata value or identifier that breaks RFC 8414 / RFC 9728."""


def _check_url(value: str, what: str, *, allow_query: bool = True) -> str:
    if not isinstance(value, str) or not value.isascii() or any(c.isspace() for c in value):
        raise MetadataError(f"{what} must be an ASCII URL without whitespace")
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        _ = parts.port
    except ValueError:
        raise MetadataError(f"{what} has a malformed authority") from None
    if parts.fragment or "#" in value:
        raise MetadataError(f"{what} must not have a fragment")
    if not allow_query and (parts.query or "?" in value):
        raise MetadataError(f"{what} must not have a query")
    if parts.username is not None or "@" in parts.netloc:
        raise MetadataError(f"{what} must not have userinfo")
    if parts.scheme == "https" and hostname:
        return value
    if parts.scheme == "http" and hostname in _LOOPBACK:
        return value
    raise MetadataError(f"{what} must be an https URL (http only on a loopback host)")


def _strings(values: Iterable[str], what: str) -> list[str]:
    out = list(values)
    if not all(isinstance(v, str) and v and " " not in v for v in out):
        raise MetadataError(f"{what} must be non-empty strings without spaces")
    return out


def authorization_server_metadata(
    *,
    issuer: str,
    authorization_endpoint: str,
    token_endpoint: str,
    jwks_uri: str | None = None,
    registration_endpoint: str | None = None,
    revocation_endpoint: str | None = None,
    introspection_endpoint: str | None = None,
    scopes_supported: Iterable[str] = (),
    grant_types_supported: Iterable[str] = ("authorization_code", "refresh_token"),
    token_endpoint_auth_methods_supported: Iterable[str] = TOKEN_ENDPOINT_AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: Iterable[str] = _SIGNING_ALGS,
    client_id_metadata_document_supported: bool = True,
    service_documentation: str | None = None,
) -> dict[str, Any]:
    """The RFC 8414 2 metadata document of an authorization server."""
    document: dict[str, Any] = {
        "issuer": _check_url(issuer, "issuer", allow_query=False),
        "authorization_endpoint": _check_url(authorization_endpoint, "authorization_endpoint"),
        "token_endpoint": _check_url(token_endpoint, "token_endpoint"),
    }
    optional = {
        "jwks_uri": jwks_uri,
        "registration_endpoint": registration_endpoint,
        "revocation_endpoint": revocation_endpoint,
        "introspection_endpoint": introspection_endpoint,
        "service_documentation": service_documentation,
    }
    for name, value in optional.items():
        if value is not None:
            document[name] = _check_url(value, name)
    scopes = _strings(scopes_supported, "scopes_supported")
    if scopes:
        document["scopes_supported"] = scopes
    document["response_types_supported"] = ["code"]
    document["response_modes_supported"] = ["query"]
    grants = _strings(grant_types_supported, "grant_types_supported")
    if not grants or not set(grants) <= set(_GRANT_TYPES):
        raise MetadataError(f"grant_types_supported must be a non-empty subset of {_GRANT_TYPES}")
    document["grant_types_supported"] = grants
    methods = _strings(token_endpoint_auth_methods_supported, "token_endpoint_auth_methods")
    if not methods or not set(methods) <= set(TOKEN_ENDPOINT_AUTH_METHODS):
        raise MetadataError(
            "token_endpoint_auth_methods_supported must be a subset of "
            f"{TOKEN_ENDPOINT_AUTH_METHODS}"
        )
    document["token_endpoint_auth_methods_supported"] = methods
    if "private_key_jwt" in methods:
        # RFC 8414 2: required when private_key_jwt is listed; "none" must not be among them.
        algs = _strings(token_endpoint_auth_signing_alg_values_supported, "signing algorithms")
        if not algs or "none" in algs:
            raise MetadataError("token_endpoint_auth_signing_alg_values_supported: no 'none'")
        document["token_endpoint_auth_signing_alg_values_supported"] = algs
    if revocation_endpoint is not None:
        document["revocation_endpoint_auth_methods_supported"] = methods
    document["code_challenge_methods_supported"] = [S256]
    document["authorization_response_iss_parameter_supported"] = True
    document["client_id_metadata_document_supported"] = client_id_metadata_document_supported
    return document


def protected_resource_metadata(
    *,
    resource: str,
    authorization_servers: Iterable[str],
    scopes_supported: Iterable[str] = (),
    resource_name: str | None = None,
    resource_documentation: str | None = None,
) -> dict[str, Any]:
    """The RFC 9728 2 metadata document of a protected resource (an MCP server)."""
    servers = [
        _check_url(s, "authorization server issuer", allow_query=False)
        for s in authorization_servers
    ]
    if not servers:
        raise MetadataError("authorization_servers must name at least one issuer")
    document: dict[str, Any] = {
        "resource": _check_url(resource, "resource"),
        "authorization_servers": servers,
    }
    scopes = _strings(scopes_supported, "scopes_supported")
    if scopes:
        document["scopes_supported"] = scopes
    document["bearer_methods_supported"] = ["header"]
    if resource_name is not None:
        if not resource_name or not resource_name.isprintable():
            raise MetadataError("resource_name must be printable text")
        document["resource_name"] = resource_name
    if resource_documentation is not None:
        document["resource_documentation"] = _check_url(resource_documentation, "documentation")
    return document


def _insert(identifier: str, suffix: str, *, allow_query: bool) -> str:
    _check_url(identifier, "identifier", allow_query=allow_query)
    parts = urlsplit(identifier)
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/.well-known/{suffix}{path}{query}"


def authorization_server_metadata_url(issuer: str) -> str:
    """RFC 8414 3.1: `https://as.example/t` -> `.../.well-known/oauth-authorization-server/t`."""
    return _insert(issuer, AS_WELL_KNOWN, allow_query=False)


def protected_resource_metadata_url(resource: str) -> str:
    """RFC 9728 3.1: `https://mcp.example/mcp` -> `.../.well-known/oauth-protected-resource/mcp`."""
    return _insert(resource, PRM_WELL_KNOWN, allow_query=True)


def authorization_server_discovery_urls(issuer: str) -> tuple[str, ...]:
    """The metadata URLs an MCP client tries for `issuer`, in order (MCP authorization spec).

    Without a path: RFC 8414, then OpenID Connect discovery. With a path: RFC 8414 insertion,
    OpenID Connect insertion, then OpenID Connect appending (`<issuer>/.well-known/...`).
    """
    first = authorization_server_metadata_url(issuer)
    oidc = _insert(issuer, OIDC_WELL_KNOWN, allow_query=False)
    path = urlsplit(issuer).path.rstrip("/")
    if not path:
        return (first, oidc)
    return (first, oidc, f"{issuer.rstrip('/')}/.well-known/{OIDC_WELL_KNOWN}")


def check_metadata_issuer(document: Mapping[str, Any], expected_issuer: str) -> None:
    """RFC 8414 3.3: the document's `issuer` must be identical to the one it was fetched for."""
    if document.get("issuer") != expected_issuer:
        raise MetadataError("the metadata issuer does not match the issuer it was fetched for")
