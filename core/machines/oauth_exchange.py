"""The OAuth code exchange, client side: from a 401 to a bearer token, and keeping it fresh.

Issue 5 ("OAuth code exchange, client side"); DESIGN.md "State machines: the table is the spec"
and "Security defaults". Specifications: MCP 2025-11-25 "Authorization" (basic/authorization);
RFC 9728 (OAuth 2.0 Protected Resource Metadata); RFC 8414 (Authorization Server Metadata) with
OpenID Connect Discovery 1.0; RFC 7591 (Dynamic Client Registration);
draft-ietf-oauth-client-id-metadata-document-00 (client ID metadata documents); RFC 7636 (PKCE);
RFC 8707 (Resource Indicators); RFC 9207 (the `iss` authorization response parameter); RFC 6749
§5-6 and OAuth 2.1 (draft-ietf-oauth-v2-1-13) §4.3 (token responses, refresh); RFC 6750 §3.1
(`insufficient_scope`); MCP 2025-03-26 "Authorization" §2.3 (the back-compat fallbacks).

Theory of operation. One machine runs per (client, MCP server) and starts `idle`. It moves on
facts the service reports (an HTTP answer, a fetched document, the browser's redirect) and asks
for I/O with effects; it never performs any.

- Protected resource metadata. A 401 (`Unauthorized`, the parsed `WWW-Authenticate` challenge)
  moves to `discovering_resource`. The candidate URLs are, without repeats: the challenge's
  `resource_metadata`, then the well-known URI with the endpoint's path inserted, then the root
  well-known URI (MCP "Protected Resource Metadata Discovery Requirements"; RFC 9728 §3.1,
  §5.1). The machine asks for one at a time (`FetchResourceMetadata`) and moves to the next when
  the service reports `FetchFailed` for it. A document counts only for the candidate asked for
  (a late answer for an earlier one is refused), and only when its `resource` is this server or
  a parent of it and it names an authorization server; else the flow fails (RFC 9728 §3.3,
  §7.3). The first server named is used (RFC 9728 §7.6).
- Authorization server metadata, in `discovering_server`, one URL at a time in the order MCP
  "Authorization Server Metadata Discovery" gives: for an issuer with a path, RFC 8414 with the
  path inserted, OpenID Connect Discovery with the path inserted, then appended; without a
  path, RFC 8414 then OpenID Connect Discovery. A document whose `issuer` is not exactly the
  issuer those URLs were built from is not used and the flow fails (RFC 8414 §3.3; OpenID
  Connect Discovery §4.3). So does one that does not list `S256` in
  `code_challenge_methods_supported` (MCP "Authorization Code Protection": refuse to proceed),
  or lacks an endpoint the grant needs.
- The 2025-03-26 fallback (`legacy_fallback`, on by default). When no protected resource
  metadata is found, the server is taken for a 2025-03-26 one: its origin is the issuer, whose
  metadata is fetched as above; when that is missing too, the default endpoints `/authorize`,
  `/token` and `/register` at the origin are used, with S256 (MCP 2025-03-26 §2.3.2-2.3.3).
- Client identity (MCP "Client Registration Approaches", in its order): a pre-registered client
  for this issuer; a client registered earlier with this issuer; the client ID metadata
  document URL when the server advertises `client_id_metadata_document_supported`; else RFC 7591
  registration (`Register`, `registering`) when it has a `registration_endpoint`; else the flow
  fails. A client is bound to its issuer and never shown to another.
- Authorization (`preparing`, `authorizing`). The machine asks the service for fresh randomness
  (`PrepareAuthorization`); `AuthorizationPrepared` brings a PKCE code verifier and a `state`
  value, and the machine opens the authorization request (`OpenAuthorization`): response type
  `code`, the S256 challenge it computes from the verifier (RFC 7636 §4.2), `state`, the
  redirect URI, `resource` (RFC 8707 §2; MCP "Resource Parameter Implementation") and the
  scopes (MCP "Scope Selection Strategy": the challenge's `scope`, else the resource's
  `scopes_supported`, else none).
- The redirect (`RedirectReceived`). One whose `state` differs from the one sent (compared in
  constant time) is refused and changes nothing: a forged or replayed redirect cannot end or
  steer the flow (MCP "Open Redirection"). When the server advertises
  `authorization_response_iss_parameter_supported`, `iss` must be present; when present, it must
  be exactly the issuer (RFC 9207 §2.4, simple string comparison); a response that fails this
  (with the right `state`) is a mix-up and ends the flow. An error response ends it too.
- Exchange (`exchanging`). `ExchangeCode` carries the code, the verifier, the redirect URI and
  `resource`; `TokensReceived` with a Bearer token moves to `authorized` and has the tokens
  stored (`StoreTokens`). The `state` value and the verifier are forgotten once used, so a
  redirect delivered twice is refused the second time.
- Refresh. `AccessTokenExpired` (the service's clock says so) moves to `refreshing` when a
  refresh token is held (`Refresh`). The answer's refresh token replaces the old one, which is
  never sent again (OAuth 2.1 §4.3.1); an answer without one keeps the old (RFC 6749 §6).
  `RefreshFailed` discards the tokens and re-authorizes with the same server and client.
- A 401 while `authorized` rediscovers (the server may have moved to another authorization
  server). With the same issuer, a refresh token and tokens that did not themselves come from a
  refresh made after a 401, the machine refreshes; otherwise it discards the tokens and
  authorizes again, with a new client identity when the issuer changed.
- Step-up. `InsufficientScope` (a 403 with `error="insufficient_scope"`, RFC 6750 §3.1) while
  `authorized` re-authorizes for the union of the scopes asked before and the challenged ones
  (MCP "Step-Up Authorization Flow"), at most `max_step_ups` times per authorization; past that
  the request is abandoned (`AbandonRequest`) and the tokens stay. While stepping up, the
  current tokens stay usable; a declined or failed step-up returns to `authorized` with them.
- client_credentials (`grant="client_credentials"`): no browser, no PKCE. After discovery the
  machine asks for a token directly (`RequestToken`, `exchanging`), with a pre-registered client
  (`client_secret_basic`, `client_secret_post` or `private_key_jwt`: the service holds the
  secret or key and authenticates the request) or one registered dynamically. Expiry without a
  refresh token, a failed refresh and a step-up request a new token the same way.

Every failure moves to `failed` with a reason (`Fail`), and discards tokens the flow held
(`DiscardTokens`); a new 401 starts over from scratch. `SignedOut` returns to `idle` from
anywhere. The service reports each failed effect back (`FetchFailed`, `RegistrationFailed`,
`AuthorizationAbandoned`, `TokenRequestFailed`, `RefreshFailed`, `StoreFailed`;
`OAuthExchange.failed(effect, reason)` picks the event), so a state never claims an I/O outcome
that did not happen; `authorized` claims only that the server granted the tokens, and a store
that refused them (`StoreFailed`) fails the flow.

Secrets: tokens, codes, code verifiers and `state` values pass through the machine (it must
send them and compare them) but stay out of every repr. Client secrets and private keys never
enter it: effects name the client authentication method and the service applies it. Times are
seconds on the service's clock and arrive in events; randomness arrives in
`AuthorizationPrepared`. This module reads no clock, draws no random numbers and performs no
I/O; URLs are built and compared with `urllib.parse`, and the S256 challenge with `hashlib`.

Driving it. A service keeps one `OAuthExchange` per (client, MCP server), persists its
`progress` after each accepted event when it wants tokens to survive a restart, performs the
returned effects in order and reports each outcome as the next event. `access_token` is the
token to send now (None when there is none). A refused event raises `LocalProtocolError`
naming it and changes nothing.

How the table sees the machine's data: as in `credential_bootstrap`, `OAuthExchange` keeps its
data as an `OAuthProgress` and hands the table *judged* events, the same classes re-made in
`Judged` under the same names, each carrying an `ExchangeContext` (the progress and the
configuration) as of its arrival. Every guard and effect is a pure function of one value, and
the table below is the whole specification. Callers never build judged events, and the table
refuses unjudged ones.

The table below is the specification; `specs/machines/oauth_exchange.json` and
`docs/machines/oauth_exchange.md` are generated from it, and tests fail when they drift. Its
effects column names what a row may emit: `DiscardTokens` appears only when tokens were held.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias
from urllib.parse import SplitResult, urlencode, urlsplit

import attrs

from ._fsm import (
    JudgedMachine,
    LocalProtocolError,
    Rule,
    StateMachine,
    effects,
    export_table,
)

__all__ = [
    "AUTH_METHODS",
    "EFFECTS",
    "EVENTS",
    "MIN_STATE_LENGTH",
    "TABLE",
    "AbandonRequest",
    "AccessTokenExpired",
    "AuthorizationAbandoned",
    "AuthorizationPrepared",
    "ClientFacts",
    "DiscardTokens",
    "Effect",
    "Event",
    "ExchangeCode",
    "ExchangeContext",
    "Fail",
    "FetchFailed",
    "FetchResourceMetadata",
    "FetchServerMetadata",
    "Grant",
    "InsufficientScope",
    "Judged",
    "LocalProtocolError",
    "OAuthClientConfig",
    "OAuthExchange",
    "OAuthExchangeMachine",
    "OAuthExchangeState",
    "OAuthProgress",
    "OpenAuthorization",
    "PreRegisteredClient",
    "PrepareAuthorization",
    "RedirectReceived",
    "Refresh",
    "RefreshFailed",
    "Register",
    "Registered",
    "RegistrationFailed",
    "RequestToken",
    "ResourceMetadataFetched",
    "ServerFacts",
    "ServerMetadataFetched",
    "SignedOut",
    "StoreFailed",
    "StoreTokens",
    "TokenRequestFailed",
    "Tokens",
    "TokensReceived",
    "Unauthorized",
    "pkce_s256",
    "spec",
]

Grant: TypeAlias = Literal["authorization_code", "client_credentials"]
AUTHORIZATION_CODE: Final = "authorization_code"
CLIENT_CREDENTIALS: Final = "client_credentials"

# Token endpoint client authentication methods (RFC 7591 §2, RFC 7523 §2.2) the service applies.
AUTH_METHODS: Final = frozenset(
    {"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}
)
# A `state` value the service draws must not be guessable within an authorization's lifetime;
# `secrets.token_urlsafe(32)` (43 characters) is what a service should use.
MIN_STATE_LENGTH: Final = 16
# RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class OAuthExchangeState(enum.Enum):
    IDLE = "idle"
    DISCOVERING_RESOURCE = "discovering_resource"
    DISCOVERING_SERVER = "discovering_server"
    REGISTERING = "registering"
    PREPARING = "preparing"
    AUTHORIZING = "authorizing"
    EXCHANGING = "exchanging"
    AUTHORIZED = "authorized"
    REFRESHING = "refreshing"
    FAILED = "failed"


# ---- values: validators, converters, URLs -----------------------------------------------------


def _http_url(value: object, name: str, *, https_only: bool = False, query: bool = True) -> str:
    """`value` as an absolute http(s) URL with a host and no fragment, or ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a URL, got {value!r}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{name} is not a valid URL: {value!r}") from exc
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme.lower() not in schemes or not parts.hostname:
        wanted = "an https" if https_only else "an http(s)"
        raise ValueError(f"{name} must be {wanted} URL with a host, got {value!r}")
    if "#" in value:
        raise ValueError(f"{name} must not have a fragment, got {value!r}")
    if not query and parts.query:
        raise ValueError(f"{name} must not have a query, got {value!r}")
    return value


def _url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _http_url(value, attribute.name)


def _optional_url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _http_url(value, attribute.name)


def _issuer_url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # RFC 8414 §2: an issuer has no query or fragment.
    _http_url(value, attribute.name, query=False)


def _text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{attribute.name} must be a string, got {type(value).__name__}")


def _nonempty(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _optional_nonempty(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _nonempty(instance, attribute, value)


def _flag(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be a bool, got {value!r}")


def _time(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds, got {value!r}")


def _optional_duration(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _auth_method(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in AUTH_METHODS:
        raise ValueError(f"{attribute.name} must be one of {sorted(AUTH_METHODS)}, got {value!r}")


def _count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def _scopes(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Scopes as a tuple without repeats, in order; a string is split on spaces (the wire form
    of RFC 6749 §3.3). Nothing at all is None: "no scope parameter"."""
    if value is None:
        return None
    items = value.split() if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not _SCOPE_TOKEN.fullmatch(item):
            raise ValueError(f"not a scope token (RFC 6749 §3.3): {item!r}")
    return tuple(dict.fromkeys(items)) or None


def _strings(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValueError("expected a list of strings, got one string")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected a list of strings, got {items!r}")
    return items


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError("expected a list of strings, got one string")
    return tuple(value)


def _union(first: tuple[str, ...] | None, second: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The scopes of both, in order, without repeats (MCP "Step-Up Authorization Flow")."""
    if first is None and second is None:
        return None
    return tuple(dict.fromkeys((*(first or ()), *(second or ())))) or None


def _origin(parts: SplitResult) -> str:
    return f"{parts.scheme}://{parts.netloc}"


def _canonical_resource(url: str) -> str:
    """The MCP server's canonical URI (MCP "Canonical Server URI", RFC 8707 §2): lowercase
    scheme and host, no fragment, and no lone trailing slash."""
    parts = urlsplit(url)
    path = "" if parts.path == "/" else parts.path
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}{query}"


def _resource_metadata_urls(server_url: str, header_url: str | None) -> tuple[str, ...]:
    """Where protected resource metadata may be, in the order MCP asks (RFC 9728 §3.1, §5.1)."""
    parts = urlsplit(server_url)
    root = f"{_origin(parts)}/.well-known/oauth-protected-resource"
    # RFC 9728 §3.1: the terminating slash goes before the path is appended after the suffix.
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    path_specific = f"{root}{path}{query}" if path or query else None
    found = [url for url in (header_url, path_specific, root) if url is not None]
    return tuple(dict.fromkeys(found))


def _server_metadata_urls(issuer: str) -> tuple[str, ...]:
    """Where an issuer's metadata may be, in MCP's priority order (RFC 8414 §3.1 and §5)."""
    parts = urlsplit(issuer)
    origin = _origin(parts)
    path = parts.path.rstrip("/")
    if path:
        return (
            f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}/.well-known/openid-configuration{path}",
            f"{origin}{path}/.well-known/openid-configuration",
        )
    return (
        f"{origin}/.well-known/oauth-authorization-server",
        f"{origin}/.well-known/openid-configuration",
    )


def _port(parts: SplitResult) -> int | None:
    return parts.port if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme.lower())


def _resource_covers(advertised: str, server_url: str) -> bool:
    """Whether a metadata document's `resource` identifies this MCP server: the same scheme,
    host and port, and a path that is the server's or one of its parents (RFC 9728 §3.3, §7.3;
    a root document names the origin, a path-specific one the endpoint)."""
    mine, theirs = urlsplit(server_url), urlsplit(advertised)
    if (theirs.scheme.lower(), theirs.hostname, _port(theirs)) != (
        mine.scheme.lower(),
        mine.hostname,
        _port(mine),
    ):
        return False
    if theirs.query and theirs.query != mine.query:
        return False
    base, path = theirs.path.rstrip("/"), mine.path.rstrip("/")
    return path == base or path.startswith(base + "/")


def pkce_s256(code_verifier: str) -> str:
    """The S256 code challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))), unpadded
    (RFC 7636 §4.2)."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _same_secret(held: str | None, given: str | None) -> bool:
    """Constant-time comparison of a value the machine holds with one a peer sent. Encoded
    first: `compare_digest` refuses non-ASCII text, and a redirect may carry anything."""
    if held is None or given is None:
        return False
    return hmac.compare_digest(
        held.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def _document_str(document: Mapping[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {type(value).__name__}")
    return value


def _document_list(document: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be a list of strings")
    return tuple(value)


def _document_flag(document: Mapping[str, Any], key: str) -> bool:
    value = document.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be a boolean, got {value!r}")
    return value


# ---- configuration ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PreRegisteredClient:
    """A client registered with an authorization server out of band (MCP "Preregistration").
    `issuer` None: usable with whichever server the MCP server names. Its secret or key stays
    with the service, which applies `token_endpoint_auth_method`."""

    client_id: str = attrs.field(validator=_nonempty)
    token_endpoint_auth_method: str = attrs.field(default="none", validator=_auth_method)
    issuer: str | None = attrs.field(default=None, validator=_optional_url)


def _config_url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _http_url(value, attribute.name)


def _metadata_document_url(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    # MCP "Client ID Metadata Documents": an https URL with a path component.
    if value is None:
        return
    url = _http_url(value, attribute.name, https_only=True)
    if urlsplit(url).path in ("", "/"):
        raise ValueError(f"{attribute.name} must have a path component, got {value!r}")


@attrs.frozen(kw_only=True)
class OAuthClientConfig:
    """How this client authorizes with one MCP server.

    - `server_url`: the MCP endpoint; its canonical form is the `resource` indicator unless the
      protected resource metadata names a parent of it.
    - `grant`: `authorization_code` (a user in a browser) or `client_credentials` (the client
      on its own behalf).
    - `redirect_uri`: where the browser returns (required for `authorization_code`).
    - `client_metadata_url`: this client's ID metadata document, if it hosts one.
    - `preregistered`: clients registered out of band, tried first.
    - `client_name`: shown by servers that register this client dynamically.
    - `max_step_ups`: step-up authorizations per authorization before a challenge is given up.
    - `legacy_fallback`: fall back to the 2025-03-26 discovery when no resource metadata exists.
    """

    server_url: str = attrs.field(validator=_config_url)
    grant: Grant = attrs.field(
        default="authorization_code",
        validator=attrs.validators.in_((AUTHORIZATION_CODE, CLIENT_CREDENTIALS)),
    )
    redirect_uri: str | None = attrs.field(default=None, validator=_optional_url)
    client_metadata_url: str | None = attrs.field(default=None, validator=_metadata_document_url)
    preregistered: tuple[PreRegisteredClient, ...] = attrs.field(default=(), converter=tuple)
    client_name: str = attrs.field(default="mcp-core", validator=_nonempty)
    max_step_ups: int = attrs.field(default=2, validator=_count)
    legacy_fallback: bool = attrs.field(default=True, validator=_flag)

    def __attrs_post_init__(self) -> None:
        if self.grant == AUTHORIZATION_CODE and self.redirect_uri is None:
            raise ValueError("the authorization_code grant needs a redirect_uri")
        if not all(isinstance(client, PreRegisteredClient) for client in self.preregistered):
            raise ValueError("preregistered must hold PreRegisteredClient values")

    @property
    def resource(self) -> str:
        """The canonical URI of the MCP server (MCP "Canonical Server URI")."""
        return _canonical_resource(self.server_url)


# ---- the machine's data -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ServerFacts:
    """What the machine keeps of a validated authorization server's metadata."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    registration_endpoint: str | None = None
    iss_parameter_supported: bool = False
    client_id_metadata_document_supported: bool = False
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None


ClientKind: TypeAlias = Literal["preregistered", "metadata_document", "dynamic"]


@attrs.frozen(kw_only=True)
class ClientFacts:
    """This client's identity at one authorization server (`issuer`), and how it got it."""

    client_id: str
    auth_method: str
    issuer: str
    kind: ClientKind


@attrs.frozen(kw_only=True)
class Tokens:
    """Tokens one authorization server (`issuer`) granted. `refreshed_on_unauthorized`: they
    came from a refresh made after a 401, so the next 401 re-authorizes instead."""

    issuer: str
    access_token: str = attrs.field(repr=False)
    token_type: str = "Bearer"
    refresh_token: str | None = attrs.field(default=None, repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] | None = None
    refreshed_on_unauthorized: bool = False


_S = OAuthExchangeState
_DISCOVERY = frozenset({_S.DISCOVERING_RESOURCE, _S.DISCOVERING_SERVER})
_WITH_SERVER = frozenset(
    {_S.REGISTERING, _S.PREPARING, _S.AUTHORIZING, _S.EXCHANGING, _S.AUTHORIZED, _S.REFRESHING}
)
_WITH_CLIENT = _WITH_SERVER - {_S.REGISTERING}
_STEP_UP_STATES = frozenset({_S.PREPARING, _S.AUTHORIZING, _S.EXCHANGING})


@attrs.frozen(kw_only=True)
class OAuthProgress:
    """Everything one machine holds: its state and the data its guards read. A service persists
    this and passes it back to `OAuthExchange(config, progress=...)`.

    - `candidates`, `position`: in the discovery states, the URLs of the current phase and the
      one being fetched.
    - `legacy`: discovery fell back to the 2025-03-26 rules (no resource metadata).
    - `resource`: the RFC 8707 resource indicator, once known.
    - `expected_issuer`: in `discovering_server`, the issuer the candidate URLs were built from.
    - `scopes`: what the next authorization asks for (None: no scope parameter).
    - `server`, `client`: the validated server and this client's identity there.
    - `code_verifier`, `oauth_state`: the authorization in flight (the verifier until the code
      is exchanged).
    - `tokens`: the current grant; while stepping up, the tokens still in use.
    - `refresh_after_unauthorized`: in `refreshing`, the refresh answers a 401.
    - `step_ups`: step-up authorizations since the last full one.
    - `failure`: in `failed`, why.
    Values that do not fit the state are refused with `ValueError`.
    """

    state: OAuthExchangeState = OAuthExchangeState.IDLE
    candidates: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    position: int = attrs.field(default=0, validator=_count)
    legacy: bool = attrs.field(default=False, validator=_flag)
    resource: str | None = None
    expected_issuer: str | None = None
    scopes: tuple[str, ...] | None = attrs.field(default=None, converter=_scopes)
    server: ServerFacts | None = None
    client: ClientFacts | None = None
    code_verifier: str | None = attrs.field(default=None, repr=False)
    oauth_state: str | None = attrs.field(default=None, repr=False)
    tokens: Tokens | None = None
    refresh_after_unauthorized: bool = attrs.field(default=False, validator=_flag)
    step_ups: int = attrs.field(default=0, validator=_count)
    failure: str | None = None

    def __attrs_post_init__(self) -> None:
        state = self.state
        problems = []

        def need(condition: bool, what: str) -> None:
            if not condition:
                problems.append(what)

        discovering = state in _DISCOVERY
        need(
            (bool(self.candidates) and self.position < len(self.candidates))
            if discovering
            else (self.candidates == () and self.position == 0),
            "candidates and a position among them exactly while discovering",
        )
        need(
            (self.expected_issuer is not None) == (state is _S.DISCOVERING_SERVER),
            "expected_issuer exactly in discovering_server",
        )
        need(
            (self.resource is not None)
            == (state not in (_S.IDLE, _S.DISCOVERING_RESOURCE, _S.FAILED)),
            "a resource from discovering_server on",
        )
        need((self.server is not None) == (state in _WITH_SERVER), "server facts after discovery")
        need(
            self.client is not None
            if state in _WITH_CLIENT
            else state in _DISCOVERY or not self.client,
            "a client from preparing on (kept across rediscovery only)",
        )
        need(
            (self.oauth_state is not None) == (state is _S.AUTHORIZING),
            "a state value exactly in authorizing",
        )
        need(
            self.code_verifier is not None
            if state is _S.AUTHORIZING
            else state is _S.EXCHANGING or self.code_verifier is None,
            "a code verifier in authorizing (and exchanging) only",
        )
        need(
            self.tokens is not None
            if state in (_S.AUTHORIZED, _S.REFRESHING)
            else state in _DISCOVERY | _STEP_UP_STATES or self.tokens is None,
            "tokens in authorized and refreshing (kept while rediscovering or stepping up)",
        )
        need(
            state is not _S.REFRESHING
            or (self.tokens is not None and self.tokens.refresh_token is not None),
            "a refresh token in refreshing",
        )
        need(
            state is _S.REFRESHING or not self.refresh_after_unauthorized,
            "refresh_after_unauthorized only in refreshing",
        )
        need(state is _S.FAILED or self.failure is None, "a failure reason only in failed")
        need(
            state not in (_S.IDLE, _S.FAILED)
            or (self.scopes, self.step_ups, self.legacy) == (None, 0, False),
            "nothing held in idle and failed",
        )
        if problems:
            needs = "; ".join(problems)
            raise ValueError(f"inconsistent progress in state {state.value!r}: needs {needs}")


@attrs.frozen(kw_only=True)
class ExchangeContext:
    """What the machine held when an event arrived: the data its guards and effects read."""

    progress: OAuthProgress
    config: OAuthClientConfig


# ---- events: facts the service reports --------------------------------------------------------


@attrs.frozen(kw_only=True)
class Unauthorized:
    """An MCP request got 401 (RFC 6750 §3, RFC 9728 §5.1); the facts of its `WWW-Authenticate`
    Bearer challenge: the `resource_metadata` URL and the `scope` asked for, if any."""

    resource_metadata: str | None = attrs.field(default=None, validator=_optional_url)
    scopes: tuple[str, ...] | None = attrs.field(default=None, converter=_scopes)

    @classmethod
    def from_challenge(cls, params: Mapping[str, str]) -> Unauthorized:
        """From the auth-params of the Bearer challenge. Lenient: a `resource_metadata` that is
        not a usable URL, or a malformed `scope`, is ignored (discovery falls back to the
        well-known URIs and the resource's `scopes_supported`)."""
        url = params.get("resource_metadata")
        try:
            url = _http_url(url, "resource_metadata") if url is not None else None
        except ValueError:
            url = None
        try:
            scopes = _scopes(params.get("scope"))
        except ValueError:
            scopes = None
        return cls(resource_metadata=url, scopes=scopes)


@attrs.frozen(kw_only=True)
class ResourceMetadataFetched:
    """The protected resource metadata at `url` (RFC 9728 §2): its `resource`, its
    `authorization_servers` (issuer URLs) and its `scopes_supported`."""

    url: str = attrs.field(validator=_url)
    resource: str = attrs.field(validator=_url)
    authorization_servers: tuple[str, ...] = attrs.field(converter=_tuple)
    scopes_supported: tuple[str, ...] | None = attrs.field(default=None, converter=_scopes)

    def __attrs_post_init__(self) -> None:
        for issuer in self.authorization_servers:
            _http_url(issuer, "an authorization server", query=False)

    @classmethod
    def from_document(cls, *, url: str, document: Mapping[str, Any]) -> ResourceMetadataFetched:
        """From the parsed JSON document; ValueError when it is not one (report `FetchFailed`)."""
        resource = _document_str(document, "resource")
        if resource is None:
            raise ValueError("resource metadata without a resource (RFC 9728 §2)")
        return cls(
            url=url,
            resource=resource,
            authorization_servers=_document_list(document, "authorization_servers") or (),
            scopes_supported=_document_list(document, "scopes_supported"),
        )


@attrs.frozen(kw_only=True)
class ServerMetadataFetched:
    """An authorization server's metadata fetched from `url` (RFC 8414 §2, OpenID Connect
    Discovery §3), as the facts this machine reads."""

    url: str = attrs.field(validator=_url)
    issuer: str = attrs.field(validator=_text)
    authorization_endpoint: str | None = attrs.field(default=None, validator=_optional_url)
    token_endpoint: str | None = attrs.field(default=None, validator=_optional_url)
    registration_endpoint: str | None = attrs.field(default=None, validator=_optional_url)
    code_challenge_methods_supported: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strings
    )
    client_id_metadata_document_supported: bool = attrs.field(default=False, validator=_flag)
    authorization_response_iss_parameter_supported: bool = attrs.field(
        default=False, validator=_flag
    )
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strings
    )

    @property
    def supports_s256(self) -> bool:
        return "S256" in (self.code_challenge_methods_supported or ())

    @classmethod
    def from_document(cls, *, url: str, document: Mapping[str, Any]) -> ServerMetadataFetched:
        """From the parsed JSON document; ValueError when it is not one (report `FetchFailed`)."""
        issuer = _document_str(document, "issuer")
        if issuer is None:
            raise ValueError("authorization server metadata without an issuer (RFC 8414 §2)")
        return cls(
            url=url,
            issuer=issuer,
            authorization_endpoint=_document_str(document, "authorization_endpoint"),
            token_endpoint=_document_str(document, "token_endpoint"),
            registration_endpoint=_document_str(document, "registration_endpoint"),
            code_challenge_methods_supported=_document_list(
                document, "code_challenge_methods_supported"
            ),
            client_id_metadata_document_supported=_document_flag(
                document, "client_id_metadata_document_supported"
            ),
            authorization_response_iss_parameter_supported=_document_flag(
                document, "authorization_response_iss_parameter_supported"
            ),
            token_endpoint_auth_methods_supported=_document_list(
                document, "token_endpoint_auth_methods_supported"
            ),
        )


@attrs.frozen(kw_only=True)
class FetchFailed:
    """Fetching `url` (a `FetchResourceMetadata` or `FetchServerMetadata`) failed: not found, a
    transport error, or not a valid document. `reason` may be shown to the user."""

    url: str = attrs.field(validator=_url)
    reason: str = attrs.field(default="not found", validator=_text)


@attrs.frozen(kw_only=True)
class Registered:
    """Dynamic registration succeeded (RFC 7591 §3.2.1). `token_endpoint_auth_method` is the
    one the server registered; the service keeps any client secret."""

    client_id: str = attrs.field(validator=_nonempty)
    token_endpoint_auth_method: str = attrs.field(default="none", validator=_auth_method)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Registered:
        """From the registration response; an absent method is `client_secret_basic` when a
        secret was issued (RFC 7591 §2's default), else `none`."""
        client_id = _document_str(document, "client_id")
        if not client_id:
            raise ValueError("registration response without a client_id (RFC 7591 §3.2.1)")
        method = _document_str(document, "token_endpoint_auth_method")
        if method is None:
            method = "client_secret_basic" if document.get("client_secret") else "none"
        return cls(client_id=client_id, token_endpoint_auth_method=method)


@attrs.frozen(kw_only=True)
class RegistrationFailed:
    """`Register` failed (an error response, a transport error). Shown to the user."""

    reason: str = attrs.field(validator=_text)


def _verifier(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _VERIFIER.fullmatch(value):
        raise ValueError(f"{attribute.name} must be 43-128 unreserved characters (RFC 7636 §4.1)")


def _drawn_state(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or len(value) < MIN_STATE_LENGTH:
        raise ValueError(f"{attribute.name} must be a string of {MIN_STATE_LENGTH}+ characters")


@attrs.frozen(kw_only=True)
class AuthorizationPrepared:
    """The service drew a PKCE code verifier and a `state` value from its `Random` port
    (`PrepareAuthorization`)."""

    code_verifier: str = attrs.field(repr=False, validator=_verifier)
    state: str = attrs.field(repr=False, validator=_drawn_state)


@attrs.frozen(kw_only=True)
class AuthorizationAbandoned:
    """The authorization will not complete: the browser could not be opened, the user gave up,
    the redirect never came in time. Shown to the user."""

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class RedirectReceived:
    """The authorization response arrived at the redirect URI (RFC 6749 §4.1.2): `code` or
    `error`, with `state` and `iss` as they came (anything: the query is the peer's word)."""

    state: str | None = attrs.field(default=None, repr=False)
    code: str | None = attrs.field(default=None, repr=False, validator=_optional_nonempty)
    error: str | None = attrs.field(default=None, validator=_optional_nonempty)
    error_description: str | None = None
    iss: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.code is None) == (self.error is None):
            raise ValueError("an authorization response has either a code or an error")
        for name in ("state", "error_description", "iss"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> RedirectReceived:
        """From the redirect's query parameters. An `error` wins over a `code`; neither is an
        `invalid_response` error (RFC 6749 §4.1.2.1)."""
        error = params.get("error") or None
        code = None if error else params.get("code") or None
        return cls(
            state=params.get("state"),
            code=code,
            error=error or (None if code else "invalid_response"),
            error_description=params.get("error_description"),
            iss=params.get("iss"),
        )


@attrs.frozen(kw_only=True)
class TokensReceived:
    """The token endpoint answered with tokens (RFC 6749 §5.1) at `at`; `scopes` None: the
    scopes asked for."""

    access_token: str = attrs.field(repr=False, validator=_nonempty)
    token_type: str = attrs.field(default="Bearer", validator=_nonempty)
    expires_in: float | None = attrs.field(default=None, validator=_optional_duration)
    refresh_token: str | None = attrs.field(default=None, repr=False, validator=_optional_nonempty)
    scopes: tuple[str, ...] | None = attrs.field(default=None, converter=_scopes)
    at: float = attrs.field(default=0.0, validator=_time)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, at: float) -> TokensReceived:
        """From the token response; ValueError when it is not one."""
        access_token = _document_str(document, "access_token")
        token_type = _document_str(document, "token_type")
        if not access_token or not token_type:
            raise ValueError("token response without access_token or token_type (RFC 6749 §5.1)")
        expires_in = document.get("expires_in")
        if expires_in is not None and (
            isinstance(expires_in, bool) or not isinstance(expires_in, int | float)
        ):
            raise ValueError("expires_in must be a number")
        return cls(
            access_token=access_token,
            token_type=token_type,
            expires_in=expires_in,
            refresh_token=_document_str(document, "refresh_token") or None,
            scopes=_document_str(document, "scope"),
            at=at,
        )


@attrs.frozen(kw_only=True)
class TokenRequestFailed:
    """`ExchangeCode` or `RequestToken` failed: the OAuth `error` code (RFC 6749 §5.2) or a
    transport error. Shown to the user."""

    error: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class RefreshFailed:
    """`Refresh` failed (`invalid_grant`: the refresh token is dead; or a transport error the
    service chose not to retry)."""

    error: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class AccessTokenExpired:
    """The service's clock says the access token expired, or is about to."""


@attrs.frozen(kw_only=True)
class InsufficientScope:
    """An MCP request got 403 with `error="insufficient_scope"` (RFC 6750 §3.1); `scopes` is
    the challenge's `scope`."""

    scopes: tuple[str, ...] | None = attrs.field(default=None, converter=_scopes)


@attrs.frozen(kw_only=True)
class StoreFailed:
    """`StoreTokens` failed. Shown to the user."""

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class SignedOut:
    """The user signed out, or the application cancelled the flow: forget everything."""


Event: TypeAlias = (
    Unauthorized
    | ResourceMetadataFetched
    | ServerMetadataFetched
    | FetchFailed
    | Registered
    | RegistrationFailed
    | AuthorizationPrepared
    | AuthorizationAbandoned
    | RedirectReceived
    | TokensReceived
    | TokenRequestFailed
    | RefreshFailed
    | AccessTokenExpired
    | InsufficientScope
    | StoreFailed
    | SignedOut
)

EVENTS: Final[tuple[type, ...]] = (
    Unauthorized,
    ResourceMetadataFetched,
    ServerMetadataFetched,
    FetchFailed,
    Registered,
    RegistrationFailed,
    AuthorizationPrepared,
    AuthorizationAbandoned,
    RedirectReceived,
    TokensReceived,
    TokenRequestFailed,
    RefreshFailed,
    AccessTokenExpired,
    InsufficientScope,
    StoreFailed,
    SignedOut,
)

# Aliases so that `Judged` can re-make each class under its own name.
_Unauthorized = Unauthorized
_ResourceMetadataFetched = ResourceMetadataFetched
_ServerMetadataFetched = ServerMetadataFetched
_FetchFailed = FetchFailed
_Registered = Registered
_AuthorizationPrepared = AuthorizationPrepared
_AuthorizationAbandoned = AuthorizationAbandoned
_RedirectReceived = RedirectReceived
_TokensReceived = TokensReceived
_TokenRequestFailed = TokenRequestFailed
_RefreshFailed = RefreshFailed
_AccessTokenExpired = AccessTokenExpired
_InsufficientScope = InsufficientScope
_StoreFailed = StoreFailed
_SignedOut = SignedOut


class Judged:
    """The events whose rules read the machine's data, as the table receives them: each with
    the `ExchangeContext` of its arrival. Built by `OAuthExchange.handle` (and by tests of the
    table); a service never builds one. Same names as the events they judge, so the exported
    spec reads in the service's words."""

    @attrs.frozen(kw_only=True)
    class Unauthorized(_Unauthorized):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class ResourceMetadataFetched(_ResourceMetadataFetched):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class ServerMetadataFetched(_ServerMetadataFetched):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class FetchFailed(_FetchFailed):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class Registered(_Registered):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class AuthorizationPrepared(_AuthorizationPrepared):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class AuthorizationAbandoned(_AuthorizationAbandoned):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class RedirectReceived(_RedirectReceived):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class TokensReceived(_TokensReceived):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class TokenRequestFailed(_TokenRequestFailed):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class RefreshFailed(_RefreshFailed):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class AccessTokenExpired(_AccessTokenExpired):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class InsufficientScope(_InsufficientScope):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class StoreFailed(_StoreFailed):
        context: ExchangeContext

    @attrs.frozen(kw_only=True)
    class SignedOut(_SignedOut):
        context: ExchangeContext


_JUDGED: Final[dict[type, type]] = {
    Unauthorized: Judged.Unauthorized,
    ResourceMetadataFetched: Judged.ResourceMetadataFetched,
    ServerMetadataFetched: Judged.ServerMetadataFetched,
    FetchFailed: Judged.FetchFailed,
    Registered: Judged.Registered,
    AuthorizationPrepared: Judged.AuthorizationPrepared,
    AuthorizationAbandoned: Judged.AuthorizationAbandoned,
    RedirectReceived: Judged.RedirectReceived,
    TokensReceived: Judged.TokensReceived,
    TokenRequestFailed: Judged.TokenRequestFailed,
    RefreshFailed: Judged.RefreshFailed,
    AccessTokenExpired: Judged.AccessTokenExpired,
    InsufficientScope: Judged.InsufficientScope,
    StoreFailed: Judged.StoreFailed,
    SignedOut: Judged.SignedOut,
}


# ---- effects: what the service must do --------------------------------------------------------


def _client_authentication_params(client_id: str, auth_method: str) -> dict[str, str]:
    """What the body carries of the client's identity; the service adds the secret (`post`),
    the Basic header (`basic`) or the assertion (`private_key_jwt`, RFC 7523 §2.2)."""
    return {"client_id": client_id} if auth_method in ("none", "client_secret_post") else {}


def _scope_param(scopes: tuple[str, ...] | None) -> dict[str, str]:
    return {"scope": " ".join(scopes)} if scopes else {}


@attrs.frozen(kw_only=True)
class FetchResourceMetadata:
    """GET this protected resource metadata URL; report `ResourceMetadataFetched` or
    `FetchFailed`."""

    url: str


@attrs.frozen(kw_only=True)
class FetchServerMetadata:
    """GET this authorization server metadata URL; report `ServerMetadataFetched` or
    `FetchFailed`."""

    url: str


def _native_redirect(uri: str) -> bool:
    """A redirect URI of a native app (RFC 8252 7.1, 7.3): loopback http or a private-use scheme."""
    parts = urlsplit(uri)
    if parts.scheme == "http":
        return parts.hostname in ("127.0.0.1", "::1", "localhost")
    return parts.scheme not in ("https", "")


@attrs.frozen(kw_only=True)
class Register:
    """Register this client (RFC 7591 §3.1) at `registration_endpoint`; report `Registered` or
    `RegistrationFailed`. Keep any client secret it returns, keyed by `issuer`."""

    registration_endpoint: str
    issuer: str
    client_name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str
    scopes: tuple[str, ...] | None

    def document(self) -> dict[str, Any]:
        """The client metadata to POST as JSON."""
        body: dict[str, Any] = {
            "client_name": self.client_name,
            "grant_types": list(self.grant_types),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        if self.redirect_uris:
            body["redirect_uris"] = list(self.redirect_uris)
            body["response_types"] = ["code"]
        # OpenID Connect Registration 2 / MCP SEP-837: say what kind of client this is. A
        # client whose redirects all come back to this machine (loopback http, or a private-use
        # scheme) is a native application; any other is a web one.
        body["application_type"] = (
            "native"
            if self.redirect_uris and all(_native_redirect(uri) for uri in self.redirect_uris)
            else "web"
        )
        body.update(_scope_param(self.scopes))
        return body


@attrs.frozen(kw_only=True)
class PrepareAuthorization:
    """Draw a PKCE code verifier (RFC 7636 §4.1) and a `state` value (at least
    `MIN_STATE_LENGTH` characters) and report `AuthorizationPrepared`."""


@attrs.frozen(kw_only=True)
class OpenAuthorization:
    """Send the user's browser to `url` and wait for the redirect: report `RedirectReceived`,
    or `AuthorizationAbandoned` when it cannot complete."""

    authorization_endpoint: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    state: str = attrs.field(repr=False)
    scopes: tuple[str, ...] | None
    resource: str

    def params(self) -> dict[str, str]:
        """The query parameters of the authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3,
        RFC 8707 §2)."""
        return {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
            "state": self.state,
            **_scope_param(self.scopes),
            "resource": self.resource,
        }

    @property
    def url(self) -> str:
        separator = "&" if urlsplit(self.authorization_endpoint).query else "?"
        return f"{self.authorization_endpoint}{separator}{urlencode(self.params())}"


@attrs.frozen(kw_only=True)
class ExchangeCode:
    """POST the authorization code to `token_endpoint` (RFC 6749 §4.1.3), authenticating the
    client by `auth_method`; report `TokensReceived` or `TokenRequestFailed`."""

    token_endpoint: str
    issuer: str
    client_id: str
    auth_method: str
    code: str = attrs.field(repr=False)
    code_verifier: str = attrs.field(repr=False)
    redirect_uri: str
    resource: str

    def form(self) -> dict[str, str]:
        """The form body, without client authentication beyond `client_id`."""
        return {
            "grant_type": "authorization_code",
            "code": self.code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.code_verifier,
            "resource": self.resource,
            **_client_authentication_params(self.client_id, self.auth_method),
        }


@attrs.frozen(kw_only=True)
class RequestToken:
    """POST a client_credentials token request to `token_endpoint` (RFC 6749 §4.4),
    authenticating the client by `auth_method`; report `TokensReceived` or
    `TokenRequestFailed`."""

    token_endpoint: str
    issuer: str
    client_id: str
    auth_method: str
    scopes: tuple[str, ...] | None
    resource: str

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            **_scope_param(self.scopes),
            "resource": self.resource,
            **_client_authentication_params(self.client_id, self.auth_method),
        }


@attrs.frozen(kw_only=True)
class Refresh:
    """POST a refresh_token request to `token_endpoint` (RFC 6749 §6); report `TokensReceived`
    or `RefreshFailed`."""

    token_endpoint: str
    issuer: str
    client_id: str
    auth_method: str
    refresh_token: str = attrs.field(repr=False)
    resource: str

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token,
            "resource": self.resource,
            **_client_authentication_params(self.client_id, self.auth_method),
        }


@attrs.frozen(kw_only=True)
class StoreTokens:
    """Store these tokens for `resource`, keyed by `tokens.issuer`, replacing what was stored
    (a rotated refresh token replaces the old one); report `StoreFailed` if the store refuses."""

    resource: str
    tokens: Tokens


@attrs.frozen(kw_only=True)
class DiscardTokens:
    """Delete the stored tokens of `issuer`: they are dead or no longer trusted."""

    issuer: str


@attrs.frozen(kw_only=True)
class AbandonRequest:
    """Fail the MCP request that met a scope challenge, with `reason`; the tokens stay."""

    reason: str


@attrs.frozen(kw_only=True)
class Fail:
    """The authorization failed: tell the caller why. A new 401 starts over."""

    reason: str


Effect: TypeAlias = (
    FetchResourceMetadata
    | FetchServerMetadata
    | Register
    | PrepareAuthorization
    | OpenAuthorization
    | ExchangeCode
    | RequestToken
    | Refresh
    | StoreTokens
    | DiscardTokens
    | AbandonRequest
    | Fail
)

EFFECTS: Final[tuple[type, ...]] = (
    FetchResourceMetadata,
    FetchServerMetadata,
    Register,
    PrepareAuthorization,
    OpenAuthorization,
    ExchangeCode,
    RequestToken,
    Refresh,
    StoreTokens,
    DiscardTokens,
    AbandonRequest,
    Fail,
)


# ---- decisions: pure functions of a judged event's context ----------------------------------


def _is_current(event: Any) -> bool:
    """The answer is for the candidate being fetched (not a late one for an earlier URL)."""
    progress = event.context.progress
    return bool(
        progress.position < len(progress.candidates)
        and progress.candidates[progress.position] == event.url
    )


def _more_candidates(event: Any) -> bool:
    progress: OAuthProgress = event.context.progress
    return progress.position + 1 < len(progress.candidates)


def _known_client(context: ExchangeContext, server: ServerFacts) -> ClientFacts | None:
    """This client's identity at `server` without registering, in MCP's order: pre-registered,
    registered earlier with the same issuer, a client ID metadata document."""
    config, progress = context.config, context.progress
    for client in config.preregistered:
        if client.issuer is None or client.issuer == server.issuer:
            return ClientFacts(
                client_id=client.client_id,
                auth_method=client.token_endpoint_auth_method,
                issuer=server.issuer,
                kind="preregistered",
            )
    held = progress.client
    if held is not None and held.issuer == server.issuer:
        return held
    if (
        config.grant == AUTHORIZATION_CODE
        and config.client_metadata_url is not None
        and server.client_id_metadata_document_supported
    ):
        return ClientFacts(
            client_id=config.client_metadata_url,
            auth_method="none",
            issuer=server.issuer,
            kind="metadata_document",
        )
    return None


def _refreshable(context: ExchangeContext, server: ServerFacts) -> bool:
    """After a 401, refresh rather than re-authorize: same issuer, a refresh token, a client,
    and tokens that are not themselves the product of a refresh made after a 401."""
    tokens = context.progress.tokens
    return (
        tokens is not None
        and tokens.refresh_token is not None
        and tokens.issuer == server.issuer
        and not tokens.refreshed_on_unauthorized
        and _known_client(context, server) is not None
    )


def _route(context: ExchangeContext, server: ServerFacts) -> OAuthExchangeState:
    """Where a validated server leads."""
    if _refreshable(context, server):
        return _S.REFRESHING
    if _known_client(context, server) is not None:
        return _S.EXCHANGING if context.config.grant == CLIENT_CREDENTIALS else _S.PREPARING
    if server.registration_endpoint is not None:
        return _S.REGISTERING
    return _S.FAILED


def _server_from(event: ServerMetadataFetched) -> ServerFacts:
    assert event.token_endpoint is not None  # checked by `_metadata_problem` first
    return ServerFacts(
        issuer=event.issuer,
        authorization_endpoint=event.authorization_endpoint,
        token_endpoint=event.token_endpoint,
        registration_endpoint=event.registration_endpoint,
        iss_parameter_supported=event.authorization_response_iss_parameter_supported,
        client_id_metadata_document_supported=event.client_id_metadata_document_supported,
        token_endpoint_auth_methods_supported=event.token_endpoint_auth_methods_supported,
    )


def _legacy_server(context: ExchangeContext) -> ServerFacts:
    """The 2025-03-26 default endpoints at the MCP server's origin (MCP 2025-03-26 §2.3.3)."""
    origin = _origin(urlsplit(context.config.server_url))
    return ServerFacts(
        issuer=origin,
        authorization_endpoint=f"{origin}/authorize",
        token_endpoint=f"{origin}/token",
        registration_endpoint=f"{origin}/register",
    )


def _metadata_problem(event: Judged.ServerMetadataFetched) -> str | None:
    """Why a server's metadata cannot be used, or None."""
    context = event.context
    expected = context.progress.expected_issuer
    if event.issuer != expected:
        return (
            f"the authorization server metadata at {event.url} names issuer {event.issuer!r}, "
            f"not {expected!r} (RFC 8414 §3.3)"
        )
    code_flow = context.config.grant == AUTHORIZATION_CODE
    if code_flow and not event.supports_s256:
        return (
            f"the authorization server {event.issuer} does not advertise PKCE S256 in "
            "code_challenge_methods_supported"
        )
    if event.token_endpoint is None or (code_flow and event.authorization_endpoint is None):
        return f"the authorization server metadata at {event.url} lacks an endpoint the flow needs"
    return None


def _issuer_differs(event: Judged.ServerMetadataFetched) -> bool:
    return _is_current(event) and event.issuer != event.context.progress.expected_issuer


def _no_s256(event: Judged.ServerMetadataFetched) -> bool:
    return (
        _is_current(event)
        and event.context.config.grant == AUTHORIZATION_CODE
        and not event.supports_s256
    )


def _endpoints_missing(event: Judged.ServerMetadataFetched) -> bool:
    code_flow = event.context.config.grant == AUTHORIZATION_CODE
    return _is_current(event) and (
        event.token_endpoint is None or (code_flow and event.authorization_endpoint is None)
    )


def _usable_to(to: OAuthExchangeState) -> Callable[[Judged.ServerMetadataFetched], bool]:
    def check(event: Judged.ServerMetadataFetched) -> bool:
        return (
            _is_current(event)
            and _metadata_problem(event) is None
            and _route(event.context, _server_from(event)) is to
        )

    return check


def _legacy_defaults_to(to: OAuthExchangeState) -> Callable[[Judged.FetchFailed], bool]:
    def check(event: Judged.FetchFailed) -> bool:
        context = event.context
        return (
            _is_current(event)
            and not _more_candidates(event)
            and context.progress.legacy
            and _route(context, _legacy_server(context)) is to
        )

    return check


def _resource_last_with_fallback(event: Judged.FetchFailed) -> bool:
    return (
        _is_current(event) and not _more_candidates(event) and event.context.config.legacy_fallback
    )


def _current_with_more(event: Judged.FetchFailed) -> bool:
    return _is_current(event) and _more_candidates(event)


def _resource_matches(event: Judged.ResourceMetadataFetched) -> bool:
    return _is_current(event) and _resource_covers(event.resource, event.context.config.server_url)


def _resource_usable(event: Judged.ResourceMetadataFetched) -> bool:
    return _resource_matches(event) and bool(event.authorization_servers)


def _is_client_credentials(event: Any) -> bool:
    return bool(event.context.config.grant == CLIENT_CREDENTIALS)


def _stepping_up(event: Any) -> bool:
    """The tokens in use while a step-up is in flight."""
    return event.context.progress.tokens is not None


def _state_matches(event: Judged.RedirectReceived) -> bool:
    return _same_secret(event.context.progress.oauth_state, event.state)


def _iss_acceptable(event: Judged.RedirectReceived) -> bool:
    """RFC 9207 §2.4: when advertised, `iss` is required; when present, it must be exactly the
    issuer (simple string comparison, no normalization)."""
    server = event.context.progress.server
    assert server is not None  # in `authorizing` the server is always known
    if event.iss is None:
        return not server.iss_parameter_supported
    return event.iss == server.issuer


def _redirect_with_code(event: Judged.RedirectReceived) -> bool:
    return _state_matches(event) and _iss_acceptable(event) and event.code is not None


def _redirect_error_while_stepping_up(event: Judged.RedirectReceived) -> bool:
    return (
        _state_matches(event)
        and _iss_acceptable(event)
        and event.error is not None
        and _stepping_up(event)
    )


def _redirect_error(event: Judged.RedirectReceived) -> bool:
    return _state_matches(event) and _iss_acceptable(event) and event.error is not None


def _redirect_mixed_up(event: Judged.RedirectReceived) -> bool:
    return _state_matches(event) and not _iss_acceptable(event)


def _bearer(event: Judged.TokensReceived) -> bool:
    # RFC 6749 §7.1: a client must not use a token of a type it does not understand; the type
    # is case-insensitive (RFC 6750 §4 registers "Bearer").
    return event.token_type.lower() == "bearer"


def _holds_refresh_token(event: Judged.AccessTokenExpired) -> bool:
    tokens = event.context.progress.tokens
    return tokens is not None and tokens.refresh_token is not None


def _step_ups_left(event: Judged.InsufficientScope) -> bool:
    context = event.context
    return context.progress.step_ups < context.config.max_step_ups


def _step_up_client_credentials(event: Judged.InsufficientScope) -> bool:
    return _step_ups_left(event) and _is_client_credentials(event)


# ---- effect builders: pure functions of an event ----------------------------------------------


def _discard_held(context: ExchangeContext) -> list[Any]:
    tokens = context.progress.tokens
    return [DiscardTokens(issuer=tokens.issuer)] if tokens is not None else []


def _fail(context: ExchangeContext, reason: str) -> list[Any]:
    return [*_discard_held(context), Fail(reason=reason)]


def _step_up_failed(reason: str) -> list[Any]:
    return [AbandonRequest(reason=f"step-up authorization did not complete: {reason}")]


def _register(context: ExchangeContext, server: ServerFacts) -> Register:
    config = context.config
    assert server.registration_endpoint is not None  # `_route` chose `registering`
    supported = server.token_endpoint_auth_methods_supported
    if config.grant == CLIENT_CREDENTIALS:
        preferred: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
        grant_types: tuple[str, ...] = (CLIENT_CREDENTIALS,)
        redirect_uris: tuple[str, ...] = ()
    else:
        preferred = ("none", "client_secret_basic", "client_secret_post")
        grant_types = (AUTHORIZATION_CODE, "refresh_token")
        assert config.redirect_uri is not None  # `OAuthClientConfig` checks it
        redirect_uris = (config.redirect_uri,)
    # The first method we prefer that the server lists; with no list, our first choice.
    method = next((m for m in preferred if supported is None or m in supported), preferred[0])
    return Register(
        registration_endpoint=server.registration_endpoint,
        issuer=server.issuer,
        client_name=config.client_name,
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        token_endpoint_auth_method=method,
        scopes=context.progress.scopes,
    )


def _request_token(
    context: ExchangeContext,
    server: ServerFacts,
    client: ClientFacts,
    scopes: tuple[str, ...] | None,
) -> RequestToken:
    resource = context.progress.resource
    assert resource is not None  # known from `discovering_server` on
    return RequestToken(
        token_endpoint=server.token_endpoint,
        issuer=server.issuer,
        client_id=client.client_id,
        auth_method=client.auth_method,
        scopes=scopes,
        resource=resource,
    )


def _refresh(context: ExchangeContext, server: ServerFacts, client: ClientFacts) -> Refresh:
    tokens, resource = context.progress.tokens, context.progress.resource
    assert tokens is not None
    assert tokens.refresh_token is not None
    assert resource is not None
    return Refresh(
        token_endpoint=server.token_endpoint,
        issuer=server.issuer,
        client_id=client.client_id,
        auth_method=client.auth_method,
        refresh_token=tokens.refresh_token,
        resource=resource,
    )


def _enter(context: ExchangeContext, server: ServerFacts) -> list[Any]:
    """The effects of arriving at a validated server: what `_route` chose."""
    to = _route(context, server)
    if to is _S.REFRESHING:
        client = _known_client(context, server)
        assert client is not None
        return [_refresh(context, server, client)]
    discard = _discard_held(context)  # tokens kept for a refresh that is not happening
    if to is _S.EXCHANGING:
        client = _known_client(context, server)
        assert client is not None
        return [*discard, _request_token(context, server, client, context.progress.scopes)]
    if to is _S.PREPARING:
        return [*discard, PrepareAuthorization()]
    if to is _S.REGISTERING:
        return [*discard, _register(context, server)]
    return _fail(
        context,
        f"no client identity for {server.issuer}: not pre-registered, no client ID metadata "
        "document support, no registration endpoint",
    )


@effects("FetchResourceMetadata")
def _start_discovery(event: Judged.Unauthorized) -> list[Any]:
    urls = _resource_metadata_urls(event.context.config.server_url, event.resource_metadata)
    return [FetchResourceMetadata(url=urls[0])]


@effects("FetchResourceMetadata")
def _next_resource_candidate(event: Judged.FetchFailed) -> list[Any]:
    progress = event.context.progress
    return [FetchResourceMetadata(url=progress.candidates[progress.position + 1])]


@effects("FetchServerMetadata")
def _next_server_candidate(event: Judged.FetchFailed) -> list[Any]:
    progress = event.context.progress
    return [FetchServerMetadata(url=progress.candidates[progress.position + 1])]


@effects("FetchServerMetadata")
def _discover_server(event: Judged.ResourceMetadataFetched) -> list[Any]:
    return [FetchServerMetadata(url=_server_metadata_urls(event.authorization_servers[0])[0])]


@effects("FetchServerMetadata")
def _discover_legacy_server(event: Judged.FetchFailed) -> list[Any]:
    origin = _origin(urlsplit(event.context.config.server_url))
    return [FetchServerMetadata(url=_server_metadata_urls(origin)[0])]


@effects("DiscardTokens", "Fail")
def _resource_differs(event: Judged.ResourceMetadataFetched) -> list[Any]:
    server_url = event.context.config.server_url
    return _fail(
        event.context,
        f"the protected resource metadata at {event.url} is for {event.resource!r}, "
        f"not {server_url!r} (RFC 9728 §3.3)",
    )


@effects("DiscardTokens", "Fail")
def _names_no_server(event: Judged.ResourceMetadataFetched) -> list[Any]:
    return _fail(
        event.context,
        f"the protected resource metadata at {event.url} names no authorization server",
    )


@effects("DiscardTokens", "Fail")
def _no_resource_metadata(event: Judged.FetchFailed) -> list[Any]:
    return _fail(event.context, f"no protected resource metadata found ({event.reason})")


@effects("DiscardTokens", "Fail")
def _no_server_metadata(event: Judged.FetchFailed) -> list[Any]:
    issuer = event.context.progress.expected_issuer
    return _fail(event.context, f"no authorization server metadata for {issuer} ({event.reason})")


@effects("DiscardTokens", "Fail")
def _metadata_refused(event: Judged.ServerMetadataFetched) -> list[Any]:
    problem = _metadata_problem(event)
    assert problem is not None
    return _fail(event.context, problem)


@effects("Refresh")
def _refresh_at_server(event: Judged.ServerMetadataFetched) -> list[Any]:
    return _enter(event.context, _server_from(event))


@effects("DiscardTokens", "RequestToken")
def _token_at_server(event: Judged.ServerMetadataFetched) -> list[Any]:
    return _enter(event.context, _server_from(event))


@effects("DiscardTokens", "PrepareAuthorization")
def _authorize_at_server(event: Judged.ServerMetadataFetched) -> list[Any]:
    return _enter(event.context, _server_from(event))


@effects("DiscardTokens", "Register")
def _register_at_server(event: Judged.ServerMetadataFetched) -> list[Any]:
    return _enter(event.context, _server_from(event))


@effects("DiscardTokens", "Fail")
def _no_identity_at_server(event: Judged.ServerMetadataFetched) -> list[Any]:
    return _enter(event.context, _server_from(event))


@effects("Refresh")
def _refresh_at_defaults(event: Judged.FetchFailed) -> list[Any]:
    return _enter(event.context, _legacy_server(event.context))


@effects("DiscardTokens", "RequestToken")
def _token_at_defaults(event: Judged.FetchFailed) -> list[Any]:
    return _enter(event.context, _legacy_server(event.context))


@effects("DiscardTokens", "PrepareAuthorization")
def _authorize_at_defaults(event: Judged.FetchFailed) -> list[Any]:
    return _enter(event.context, _legacy_server(event.context))


@effects("DiscardTokens", "Register")
def _register_at_defaults(event: Judged.FetchFailed) -> list[Any]:
    return _enter(event.context, _legacy_server(event.context))


def _registered_client(event: Judged.Registered) -> ClientFacts:
    server = event.context.progress.server
    assert server is not None
    return ClientFacts(
        client_id=event.client_id,
        auth_method=event.token_endpoint_auth_method,
        issuer=server.issuer,
        kind="dynamic",
    )


@effects("RequestToken")
def _token_after_registration(event: Judged.Registered) -> list[Any]:
    context = event.context
    server = context.progress.server
    assert server is not None
    return [_request_token(context, server, _registered_client(event), context.progress.scopes)]


@effects("PrepareAuthorization")
def _prepare(_event: object) -> list[Any]:
    return [PrepareAuthorization()]


@effects("Fail")
def _registration_failed(event: RegistrationFailed) -> list[Any]:
    return [Fail(reason=f"client registration failed: {event.reason}")]


@effects("OpenAuthorization")
def _open_authorization(event: Judged.AuthorizationPrepared) -> list[Any]:
    progress, config = event.context.progress, event.context.config
    server, client = progress.server, progress.client
    assert server is not None
    assert server.authorization_endpoint is not None
    assert client is not None
    assert config.redirect_uri is not None
    assert progress.resource is not None
    return [
        OpenAuthorization(
            authorization_endpoint=server.authorization_endpoint,
            client_id=client.client_id,
            redirect_uri=config.redirect_uri,
            code_challenge=pkce_s256(event.code_verifier),
            state=event.state,
            scopes=progress.scopes,
            resource=progress.resource,
        )
    ]


@effects("AbandonRequest")
def _abandoned_step_up(event: Judged.AuthorizationAbandoned) -> list[Any]:
    return _step_up_failed(event.reason)


@effects("DiscardTokens", "Fail")
def _abandoned(event: Judged.AuthorizationAbandoned) -> list[Any]:
    return _fail(event.context, f"authorization abandoned: {event.reason}")


@effects("ExchangeCode")
def _exchange_code(event: Judged.RedirectReceived) -> list[Any]:
    progress, config = event.context.progress, event.context.config
    server, client = progress.server, progress.client
    assert server is not None
    assert client is not None
    assert event.code is not None
    assert progress.code_verifier is not None
    assert config.redirect_uri is not None
    assert progress.resource is not None
    return [
        ExchangeCode(
            token_endpoint=server.token_endpoint,
            issuer=server.issuer,
            client_id=client.client_id,
            auth_method=client.auth_method,
            code=event.code,
            code_verifier=progress.code_verifier,
            redirect_uri=config.redirect_uri,
            resource=progress.resource,
        )
    ]


def _denial(event: Judged.RedirectReceived) -> str:
    detail = f" ({event.error_description})" if event.error_description else ""
    return f"authorization denied: {event.error}{detail}"


@effects("AbandonRequest")
def _step_up_denied(event: Judged.RedirectReceived) -> list[Any]:
    return _step_up_failed(_denial(event))


@effects("DiscardTokens", "Fail")
def _denied(event: Judged.RedirectReceived) -> list[Any]:
    return _fail(event.context, _denial(event))


@effects("DiscardTokens", "Fail")
def _mixed_up(event: Judged.RedirectReceived) -> list[Any]:
    server = event.context.progress.server
    assert server is not None
    if event.iss is None:
        problem = f"carries no iss although {server.issuer} advertises it"
    else:
        problem = f"names issuer {event.iss!r}, not {server.issuer!r}"
    return _fail(event.context, f"the authorization response {problem} (RFC 9207)")


def _granted(event: Judged.TokensReceived) -> Tokens:
    """The tokens a token response grants. A refresh answer without a refresh token keeps the
    old one (RFC 6749 §6); any other answer brings its own or none."""
    progress = event.context.progress
    server = progress.server
    assert server is not None
    refresh_token = event.refresh_token
    if refresh_token is None and progress.state is _S.REFRESHING and progress.tokens is not None:
        refresh_token = progress.tokens.refresh_token
    return Tokens(
        issuer=server.issuer,
        access_token=event.access_token,
        token_type=event.token_type,
        refresh_token=refresh_token,
        expires_at=None if event.expires_in is None else event.at + event.expires_in,
        scopes=event.scopes if event.scopes is not None else progress.scopes,
        refreshed_on_unauthorized=progress.refresh_after_unauthorized,
    )


@effects("StoreTokens")
def _store(event: Judged.TokensReceived) -> list[Any]:
    resource = event.context.progress.resource
    assert resource is not None
    return [StoreTokens(resource=resource, tokens=_granted(event))]


@effects("DiscardTokens", "Fail")
def _not_bearer(event: Judged.TokensReceived) -> list[Any]:
    return _fail(event.context, f"unsupported token type {event.token_type!r}")


@effects("AbandonRequest")
def _step_up_token_failed(event: Judged.TokenRequestFailed) -> list[Any]:
    return _step_up_failed(f"token request failed: {event.error}")


@effects("DiscardTokens", "Fail")
def _token_failed(event: Judged.TokenRequestFailed) -> list[Any]:
    return _fail(event.context, f"token request failed: {event.error}")


def _current_refresh(event: Any) -> list[Any]:
    progress = event.context.progress
    assert progress.server is not None
    assert progress.client is not None
    return [_refresh(event.context, progress.server, progress.client)]


@effects("Refresh")
def _refresh_now(event: Judged.AccessTokenExpired) -> list[Any]:
    return _current_refresh(event)


def _new_token(event: Any, scopes: tuple[str, ...] | None) -> RequestToken:
    progress = event.context.progress
    assert progress.server is not None
    assert progress.client is not None
    return _request_token(event.context, progress.server, progress.client, scopes)


@effects("DiscardTokens", "RequestToken")
def _discard_and_request_token(
    event: Judged.AccessTokenExpired | Judged.RefreshFailed,
) -> list[Any]:
    return [*_discard_held(event.context), _new_token(event, event.context.progress.scopes)]


@effects("DiscardTokens", "PrepareAuthorization")
def _discard_and_prepare(event: Judged.AccessTokenExpired | Judged.RefreshFailed) -> list[Any]:
    return [*_discard_held(event.context), PrepareAuthorization()]


@effects("FetchResourceMetadata")
def _rediscover(event: Judged.Unauthorized) -> list[Any]:
    return _start_discovery(event)


@effects("RequestToken")
def _step_up_token(event: Judged.InsufficientScope) -> list[Any]:
    return [_new_token(event, _union(event.context.progress.scopes, event.scopes))]


@effects("AbandonRequest")
def _out_of_step_ups(event: Judged.InsufficientScope) -> list[Any]:
    limit = event.context.config.max_step_ups
    return [AbandonRequest(reason=f"insufficient scope after {limit} step-up authorizations")]


@effects("DiscardTokens", "Fail")
def _store_failed(event: Judged.StoreFailed) -> list[Any]:
    return _fail(event.context, f"could not store the tokens: {event.reason}")


@effects("DiscardTokens")
def _signed_out(event: Judged.SignedOut) -> list[Any]:
    return _discard_held(event.context)


# ---- the table --------------------------------------------------------------------------------

(
    IDLE,
    DISCOVERING_RESOURCE,
    DISCOVERING_SERVER,
    REGISTERING,
    PREPARING,
    AUTHORIZING,
    EXCHANGING,
    AUTHORIZED,
    REFRESHING,
    FAILED,
) = OAuthExchangeState

_Rules = Rule[OAuthExchangeState] | list[Rule[OAuthExchangeState]]

# A validated server (from its metadata, or the 2025-03-26 defaults) leads to one of these.
_SERVER_ROUTES: Final = (
    (REFRESHING, "tokens refreshable", _refresh_at_server, _refresh_at_defaults),
    (EXCHANGING, "client credentials, client known", _token_at_server, _token_at_defaults),
    (PREPARING, "client known", _authorize_at_server, _authorize_at_defaults),
    (REGISTERING, "must register", _register_at_server, _register_at_defaults),
)

TABLE: dict[tuple[OAuthExchangeState, type], _Rules] = {
    (IDLE, Judged.Unauthorized): Rule(to=DISCOVERING_RESOURCE, effects=_start_discovery),
    # -- protected resource metadata (RFC 9728) --
    (DISCOVERING_RESOURCE, Judged.ResourceMetadataFetched): [
        Rule(
            to=DISCOVERING_SERVER,
            effects=_discover_server,
            when=_resource_usable,
            guard_name="current candidate, resource matches, names a server",
        ),
        Rule(
            to=FAILED,
            effects=_names_no_server,
            when=_resource_matches,
            guard_name="current candidate, names no server",
        ),
        Rule(
            to=FAILED,
            effects=_resource_differs,
            when=_is_current,
            guard_name="current candidate, resource differs",
        ),
    ],
    (DISCOVERING_RESOURCE, Judged.FetchFailed): [
        Rule(
            to=DISCOVERING_RESOURCE,
            effects=_next_resource_candidate,
            when=_current_with_more,
            guard_name="current candidate, more to try",
        ),
        Rule(
            to=DISCOVERING_SERVER,
            effects=_discover_legacy_server,
            when=_resource_last_with_fallback,
            guard_name="last candidate, 2025-03-26 fallback",
        ),
        Rule(
            to=FAILED,
            effects=_no_resource_metadata,
            when=_is_current,
            guard_name="last candidate",
        ),
    ],
    # -- authorization server metadata (RFC 8414, OpenID Connect Discovery) --
    (DISCOVERING_SERVER, Judged.ServerMetadataFetched): [
        Rule(
            to=FAILED,
            effects=_metadata_refused,
            when=_issuer_differs,
            guard_name="current candidate, issuer differs",
        ),
        Rule(
            to=FAILED,
            effects=_metadata_refused,
            when=_no_s256,
            guard_name="current candidate, S256 not advertised",
        ),
        Rule(
            to=FAILED,
            effects=_metadata_refused,
            when=_endpoints_missing,
            guard_name="current candidate, endpoints missing",
        ),
        *(
            Rule(to=to, effects=at_server, when=_usable_to(to), guard_name=f"usable, {name}")
            for to, name, at_server, _at_defaults in _SERVER_ROUTES
        ),
        Rule(
            to=FAILED,
            effects=_no_identity_at_server,
            when=_usable_to(FAILED),
            guard_name="usable, no client identity",
        ),
    ],
    (DISCOVERING_SERVER, Judged.FetchFailed): [
        Rule(
            to=DISCOVERING_SERVER,
            effects=_next_server_candidate,
            when=_current_with_more,
            guard_name="current candidate, more to try",
        ),
        *(
            Rule(
                to=to,
                effects=at_defaults,
                when=_legacy_defaults_to(to),
                guard_name=f"last candidate, 2025-03-26 defaults, {name}",
            )
            for to, name, _at_server, at_defaults in _SERVER_ROUTES
        ),
        Rule(
            to=FAILED,
            effects=_no_server_metadata,
            when=_is_current,
            guard_name="last candidate",
        ),
    ],
    # -- client identity (RFC 7591) --
    (REGISTERING, Judged.Registered): [
        Rule(
            to=EXCHANGING,
            effects=_token_after_registration,
            when=_is_client_credentials,
            guard_name="client credentials",
        ),
        Rule(to=PREPARING, effects=_prepare),
    ],
    (REGISTERING, RegistrationFailed): Rule(to=FAILED, effects=_registration_failed),
    # -- authorization request (RFC 6749 §4.1, RFC 7636, RFC 8707) --
    (PREPARING, Judged.AuthorizationPrepared): Rule(to=AUTHORIZING, effects=_open_authorization),
    (PREPARING, Judged.AuthorizationAbandoned): [
        Rule(
            to=AUTHORIZED,
            effects=_abandoned_step_up,
            when=_stepping_up,
            guard_name="stepping up",
        ),
        Rule(to=FAILED, effects=_abandoned),
    ],
    # -- authorization response (RFC 6749 §4.1.2, RFC 9207) --
    (AUTHORIZING, Judged.RedirectReceived): [
        Rule(
            to=EXCHANGING,
            effects=_exchange_code,
            when=_redirect_with_code,
            guard_name="state matches, iss ok, code",
        ),
        Rule(
            to=AUTHORIZED,
            effects=_step_up_denied,
            when=_redirect_error_while_stepping_up,
            guard_name="state matches, iss ok, error, stepping up",
        ),
        Rule(
            to=FAILED,
            effects=_denied,
            when=_redirect_error,
            guard_name="state matches, iss ok, error",
        ),
        Rule(
            to=FAILED,
            effects=_mixed_up,
            when=_redirect_mixed_up,
            guard_name="state matches, iss wrong or missing",
        ),
    ],
    (AUTHORIZING, Judged.AuthorizationAbandoned): [
        Rule(
            to=AUTHORIZED,
            effects=_abandoned_step_up,
            when=_stepping_up,
            guard_name="stepping up",
        ),
        Rule(to=FAILED, effects=_abandoned),
    ],
    # -- token request (RFC 6749 §4.1.3, §4.4, §5) --
    (EXCHANGING, Judged.TokensReceived): [
        Rule(to=AUTHORIZED, effects=_store, when=_bearer, guard_name="bearer"),
        Rule(to=FAILED, effects=_not_bearer),
    ],
    (EXCHANGING, Judged.TokenRequestFailed): [
        Rule(
            to=AUTHORIZED,
            effects=_step_up_token_failed,
            when=_stepping_up,
            guard_name="stepping up",
        ),
        Rule(to=FAILED, effects=_token_failed),
    ],
    # -- using the tokens --
    (AUTHORIZED, Judged.AccessTokenExpired): [
        Rule(
            to=REFRESHING,
            effects=_refresh_now,
            when=_holds_refresh_token,
            guard_name="refresh token held",
        ),
        Rule(
            to=EXCHANGING,
            effects=_discard_and_request_token,
            when=_is_client_credentials,
            guard_name="client credentials",
        ),
        Rule(to=PREPARING, effects=_discard_and_prepare),
    ],
    (AUTHORIZED, Judged.Unauthorized): Rule(to=DISCOVERING_RESOURCE, effects=_rediscover),
    (AUTHORIZED, Judged.InsufficientScope): [
        Rule(
            to=EXCHANGING,
            effects=_step_up_token,
            when=_step_up_client_credentials,
            guard_name="step-ups left, client credentials",
        ),
        Rule(
            to=PREPARING,
            effects=_prepare,
            when=_step_ups_left,
            guard_name="step-ups left",
        ),
        Rule(to=AUTHORIZED, effects=_out_of_step_ups),
    ],
    (AUTHORIZED, Judged.StoreFailed): Rule(to=FAILED, effects=_store_failed),
    # -- refresh (RFC 6749 §6, OAuth 2.1 §4.3) --
    (REFRESHING, Judged.TokensReceived): [
        Rule(to=AUTHORIZED, effects=_store, when=_bearer, guard_name="bearer"),
        Rule(to=FAILED, effects=_not_bearer),
    ],
    (REFRESHING, Judged.RefreshFailed): [
        Rule(
            to=EXCHANGING,
            effects=_discard_and_request_token,
            when=_is_client_credentials,
            guard_name="client credentials",
        ),
        Rule(to=PREPARING, effects=_discard_and_prepare),
    ],
    (FAILED, Judged.Unauthorized): Rule(to=DISCOVERING_RESOURCE, effects=_start_discovery),
    # -- signing out, from anywhere but idle --
    **{
        (state, Judged.SignedOut): Rule(to=IDLE, effects=_signed_out)
        for state in OAuthExchangeState
        if state is not IDLE
    },
}


class OAuthExchangeMachine(StateMachine[OAuthExchangeState]):
    """The table alone, driven by judged events. Services drive `OAuthExchange`, which keeps
    the data and judges each event; this class is what the table's tests exercise."""

    name = "oauth_exchange"

    def __init__(self, state: OAuthExchangeState = OAuthExchangeState.IDLE) -> None:
        super().__init__(OAuthExchangeState, TABLE, state)


# ---- the data after a move ----------------------------------------------------------------------


def _next_progress(
    progress: OAuthProgress,
    config: OAuthClientConfig,
    event: Any,
    to: OAuthExchangeState,
    out: list[Any],
) -> OAuthProgress:
    """The progress after the table moved to `to` on `event` (as judged, and accepted) and
    returned `out`."""
    if to is FAILED:
        reason = next(effect.reason for effect in out if isinstance(effect, Fail))
        return OAuthProgress(state=FAILED, failure=reason)
    if to is IDLE:
        return OAuthProgress()
    context: ExchangeContext | None = getattr(event, "context", None)
    if isinstance(event, Unauthorized):
        # From `idle` and `failed` nothing is held; from `authorized`, the client and tokens
        # stay until the server is known again, and the scopes asked for accumulate.
        return OAuthProgress(
            state=DISCOVERING_RESOURCE,
            candidates=_resource_metadata_urls(config.server_url, event.resource_metadata),
            scopes=_union(progress.scopes, event.scopes),
            client=progress.client,
            tokens=progress.tokens,
            step_ups=progress.step_ups,
        )
    if isinstance(event, ResourceMetadataFetched):
        issuer = event.authorization_servers[0]
        return attrs.evolve(
            progress,
            state=DISCOVERING_SERVER,
            candidates=_server_metadata_urls(issuer),
            position=0,
            resource=event.resource,
            expected_issuer=issuer,
            scopes=progress.scopes if progress.scopes is not None else event.scopes_supported,
        )
    if isinstance(event, FetchFailed) and to is progress.state:
        return attrs.evolve(progress, position=progress.position + 1)
    if isinstance(event, FetchFailed) and to is DISCOVERING_SERVER:
        origin = _origin(urlsplit(config.server_url))
        return attrs.evolve(
            progress,
            state=DISCOVERING_SERVER,
            candidates=_server_metadata_urls(origin),
            position=0,
            legacy=True,
            resource=config.resource,
            expected_issuer=origin,
        )
    if isinstance(event, ServerMetadataFetched | FetchFailed):
        assert context is not None
        server = (
            _server_from(event)
            if isinstance(event, ServerMetadataFetched)
            else _legacy_server(context)
        )
        refreshing = to is REFRESHING
        return attrs.evolve(
            progress,
            state=to,
            candidates=(),
            position=0,
            expected_issuer=None,
            server=server,
            client=_known_client(context, server),
            refresh_after_unauthorized=refreshing,
            # Else a full authorization: the tokens a 401 refused go, the step-up budget is new.
            tokens=progress.tokens if refreshing else None,
            step_ups=progress.step_ups if refreshing else 0,
        )
    if isinstance(event, Registered):
        assert isinstance(event, Judged.Registered)
        return attrs.evolve(progress, state=to, client=_registered_client(event))
    if isinstance(event, AuthorizationPrepared):
        return attrs.evolve(
            progress, state=to, code_verifier=event.code_verifier, oauth_state=event.state
        )
    if isinstance(event, RedirectReceived) and to is EXCHANGING:
        return attrs.evolve(progress, state=to, oauth_state=None)
    if isinstance(event, AuthorizationAbandoned | RedirectReceived | TokenRequestFailed):
        # A step-up that did not complete: back to the tokens in use.
        return attrs.evolve(progress, state=to, code_verifier=None, oauth_state=None)
    if isinstance(event, TokensReceived):
        assert isinstance(event, Judged.TokensReceived)
        return attrs.evolve(
            progress,
            state=to,
            code_verifier=None,
            tokens=_granted(event),
            refresh_after_unauthorized=False,
        )
    if isinstance(event, AccessTokenExpired) and to is REFRESHING:
        return attrs.evolve(progress, state=to)
    if isinstance(event, AccessTokenExpired | RefreshFailed):
        return attrs.evolve(
            progress, state=to, tokens=None, refresh_after_unauthorized=False, step_ups=0
        )
    if isinstance(event, InsufficientScope):
        if to is AUTHORIZED:  # out of step-ups: nothing changes
            return progress
        return attrs.evolve(
            progress,
            state=to,
            scopes=_union(progress.scopes, event.scopes),
            step_ups=progress.step_ups + 1,
        )
    raise AssertionError(f"no progress rule for {type(event).__name__} to {to.value}")


# ---- the class services drive -----------------------------------------------------------------

# Which event reports the failure of which effect (`OAuthExchange.failed`).
_FAILURE_OF: Final[dict[type, Callable[[Any, str], object]]] = {
    FetchResourceMetadata: lambda effect, reason: FetchFailed(url=effect.url, reason=reason),
    FetchServerMetadata: lambda effect, reason: FetchFailed(url=effect.url, reason=reason),
    Register: lambda _effect, reason: RegistrationFailed(reason=reason),
    PrepareAuthorization: lambda _effect, reason: AuthorizationAbandoned(reason=reason),
    OpenAuthorization: lambda _effect, reason: AuthorizationAbandoned(reason=reason),
    ExchangeCode: lambda _effect, reason: TokenRequestFailed(error=reason),
    RequestToken: lambda _effect, reason: TokenRequestFailed(error=reason),
    Refresh: lambda _effect, reason: RefreshFailed(error=reason),
    StoreTokens: lambda _effect, reason: StoreFailed(reason=reason),
}


class OAuthExchange(JudgedMachine[OAuthExchangeState, OAuthProgress]):
    """One client's authorization with one MCP server: `handle(event) -> effects`, plus its
    data read-only.

    `config` is fixed for the machine's life; `progress` restores a machine persisted elsewhere
    (by default a new one starts `idle`). A refused event raises `LocalProtocolError` naming
    that event, and changes nothing. Not thread-safe: drive one machine from one task at a time.
    """

    name = OAuthExchangeMachine.name
    __slots__ = ("_config",)
    judged = _JUDGED

    def __init__(self, config: OAuthClientConfig, *, progress: OAuthProgress | None = None):
        progress = progress if progress is not None else OAuthProgress()
        if progress.step_ups > config.max_step_ups:
            raise ValueError("progress took more step-ups than config.max_step_ups allows")
        in_code_flow = progress.oauth_state is not None or progress.code_verifier is not None
        if in_code_flow and config.grant != AUTHORIZATION_CODE:
            raise ValueError("progress holds an authorization code flow, config another grant")
        self._config = config
        self._progress = progress
        self._machine = OAuthExchangeMachine(progress.state)

    def __repr__(self) -> str:
        return f"<OAuthExchange {self._progress!r}>"

    # ---- driving ----

    def _context(self) -> object:
        return ExchangeContext(progress=self._progress, config=self._config)

    def _refusal(self, state: OAuthExchangeState, fed: object) -> str:
        return _refusal(state, fed)

    def _advance(self, fed: object, effects: list[Any]) -> OAuthProgress:
        return _next_progress(self._progress, self._config, fed, self.state, effects)

    def failed(self, effect: object, reason: str) -> list[Effect]:
        """Report that performing `effect` failed, as the event that says so (`FetchFailed` for
        a fetch, `RefreshFailed` for a refresh, ...). Effects nothing waits on (`DiscardTokens`,
        `AbandonRequest`, `Fail`) have no failure to report: ValueError."""
        make = _FAILURE_OF.get(type(effect))
        if make is None:
            raise ValueError(f"{type(effect).__name__} has no failure to report")
        return self.handle(make(effect, reason))

    # ---- reading ----

    @property
    def config(self) -> OAuthClientConfig:
        return self._config

    @property
    def stepping_up(self) -> bool:
        """A step-up authorization is in flight while the current tokens stay in use."""
        return self.state in _STEP_UP_STATES and self._progress.tokens is not None

    @property
    def access_token(self) -> str | None:
        """The token to send now (`Authorization: Bearer ...`): in `authorized`, and while
        stepping up; None otherwise."""
        tokens = self._progress.tokens
        if tokens is None or not (self.state is AUTHORIZED or self.stepping_up):
            return None
        return tokens.access_token

    @property
    def tokens(self) -> Tokens | None:
        return self._progress.tokens

    @property
    def expires_at(self) -> float | None:
        """When the access token expires, on the clock of the `TokensReceived` event."""
        tokens = self._progress.tokens
        return tokens.expires_at if tokens is not None else None

    @property
    def issuer(self) -> str | None:
        """The authorization server in use, once validated."""
        server = self._progress.server
        return server.issuer if server is not None else None

    @property
    def resource(self) -> str | None:
        """The RFC 8707 resource indicator, once known."""
        return self._progress.resource

    @property
    def scopes(self) -> tuple[str, ...] | None:
        """What the next authorization asks for."""
        return self._progress.scopes

    @property
    def step_ups_left(self) -> int:
        return self._config.max_step_ups - self._progress.step_ups

    @property
    def failure(self) -> str | None:
        """In `failed`, why."""
        return self._progress.failure


def _refusal(state: OAuthExchangeState, fed: object) -> str:
    value = TABLE.get((state, type(fed)))
    if value is None:
        return ""
    rules = [value] if isinstance(value, Rule) else value
    return "needs " + " or ".join(repr(rule.guard_name or "(always)") for rule in rules)


def spec() -> dict[str, Any]:
    """The exported table (`specs/machines/oauth_exchange.json`)."""
    return export_table(
        OAuthExchangeMachine.name, OAuthExchangeState, OAuthExchangeState.IDLE, TABLE
    )
