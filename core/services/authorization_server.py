"""The built-in OAuth 2.1 authorization server, as request facts in and response values out.

Issue 4 ("OAuth 2.1: the built-in authorization server"); the guide is
`docs/authorization-server.md`. Specs: RFC 6749 (4.1 the code grant, 4.4 client credentials,
5.1/5.2 token responses and errors), the OAuth 2.1 draft, RFC 7636 (PKCE, S256 only), RFC 8414
(metadata), RFC 7591 (dynamic registration), RFC 8707 (`resource`, the token audience), RFC 9068
(JWT access tokens), RFC 9207 (`iss` in the authorization response), RFC 7009 (revocation) and
RFC 9700 (the security BCP: exact redirect matching, refresh rotation with reuse detection).

`AuthorizationServer` holds no HTTP framework type: each endpoint is an async method over the
request's facts (query or form as a mapping, headers with lower-case names) returning an
`HttpResponse`. The ASGI adapter (`mcp_core.adapters.asgi.authorization`) reads and caps bodies,
checks Host and Origin, authenticates the user through the `UserAuthenticator` port and calls in.

Rules it keeps, and where:
- `/authorize`: an unknown client or a redirect URI that does not match a registration is shown
  on the server's own error page and never redirected to (RFC 6749 4.1.2.1). Only once the
  redirect URI is validated are errors sent back to it, with `state` and `iss`. PKCE S256 is
  required (`core.oauth.pkce`), `resource` is required and recorded (RFC 8707).
- `/token`: the code is redeemed atomically by the `GrantStore` (single use, at most
  `MAX_CODE_TTL` old). A replayed code revokes its refresh family in the store, in the same step.
  Refresh tokens rotate on every use; an old one presented again revokes the family (the store
  again). Every response carries `Cache-Control: no-store` and errors are RFC 6749 5.2 bodies.
- Codes, refresh tokens and client secrets are stored as SHA-256 hashes, never in the clear, and
  compared with `hmac.compare_digest` where the comparison is ours.

Relation to the grant machine (`core.machines.authorization_grant`). The token endpoint's code
grant is decided by the machine: the code's record in the `GrantStore` is the grant's persisted
progress in `code_issued`, read without spending it (`peek_code`); the machine judges the
`CodeRedeemed` event (the code, its deadline, the client, `redirect_uri`, `resource`, PKCE S256)
and only its `IssueTokens` redeems the code, with the store's atomic `redeem_code` as the
compare-and-set (of two racing requests one wins; the other is the replay, whose
`RevokeFamily` the store performs in the same step). So no token is issued without a verified
PKCE, a code is redeemed once, and a refused redemption leaves the code as it was. Refresh
rotation keeps the machine's rules (`rotatable`: the current generation, the same client, within
the idle lifetime; an old generation is reuse and revokes the family) on the store's atomic
`rotate_refresh`, since the store, not the service, knows which generation an old token was.

Refresh tokens are `<family id>.<random>`: the family id lets the service check the client and
the idle lifetime before rotating, so a stolen refresh token presented by another client is
refused without advancing the family. Only the hash of the whole token is stored.

Client authentication (RFC 6749 2.3, OAuth 2.1 2.4): none, client_secret_basic,
client_secret_post and private_key_jwt (RFC 7523 2.2 and 3, RFC 7521 4.2), exactly the one the
client registered, one method per request. For private_key_jwt the assertion's header and
claims are judged by `core.oauth.client_assertion` (fixed algorithms RS256/ES256/EdDSA, never
`none` or HS*; `iss` = `sub` = client_id; `aud` the issuer, the token endpoint or the endpoint
called; `exp` required, at most five minutes of lifetime, leeway at most 60 s; `jti` required)
and the signature here with pyjwt, with a key from the client's inline `jwks` or its `jwks_uri`
(a `JwksCache` per URL through the `HttpClient` port: hourly refresh, rate-limited refetch on
an unknown `kid`). The `jti` is recorded only after everything else holds, in an
`AssertionReplayCache` that lives in this process: with several nodes a replay that reaches
another node within the assertion's lifetime is not caught there (signature, audience and the
five-minute expiry still bound it).

Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document-00; MCP 2025-11-25
"Authorization" > "Client ID Metadata Documents"), when an `HttpClient` is given: an https
client_id is checked (`core.oauth.client_id_metadata.check_client_id_url`), fetched through the
port (its adapter applies the SSRF policy, re-vets redirects and caps size and time), refused if
the answer came from another URL (an open redirect on the client's site must not let another
document speak for it), validated (`parse_client_id_document`, then the registration rules) and
stored in the `ClientStore` with source "cimd" and a refetch time (`cimd_refresh_at` in the
stored metadata: `Cache-Control: max-age` clamped to `document_ttl`, default 60 s to 1 day, one
hour without it). Stored that way, every node behind one store shares the document. A fetch or
validation failure is answered on the server's own error page at `/authorize` (never a
redirect) and with `invalid_client` at `/token`, and is remembered in this process for 30 s so
that a stranger cannot turn each request into an outbound fetch. The consent page shows the
document's `client_name` together with the host of its URL (the name is self-asserted) and the
host of the redirect URI, with a warning for a loopback redirect (MCP "Localhost Redirect URI
Risks"). With `consent="auto"` there is no page: that setting is for one local user.

Consent tickets. When a `ConsentCallback` answers "ask", the pending request (subject,
client, redirect URI, state, scope, resource, PKCE challenge, expiry and a random ticket id)
travels in the consent page's form as a sealed ticket, `c1.<payload>.<mac>`: the payload is
base64url JSON and the MAC HMAC-SHA256 under `ticket_key` over a label, the issuer and the
payload. No node remembers it, so the answer may be posted to any node holding the same key
(give every node the same `ticket_key`, 32 bytes or more; without one, a key is drawn from the
`Random` port at startup and only this process accepts its tickets). A MAC, not encryption:
everything in the ticket came from the user's own browser in the authorization request's URL
and goes back to it, so there is nothing to hide from the one who holds the page; what matters
is that no field can be changed or invented, and that is what the MAC refuses. `decide`
verifies the MAC in constant time, then that the ticket belongs to the signed-in subject (a
ticket cannot be answered from another user's session: the CSRF defence), then its expiry
against the `Clock` (`consent_ttl`), then spends it once across nodes through the
`GrantStore`: a marker record saved under the ticket id, which `save_code` refuses to save
twice, atomically, on every backend (`_spend_ticket`). A replayed ticket therefore mints no
second code, whichever node it reaches; a ticket answered "deny" is spent the same way.

Not in this version: a per-family deny-list for access tokens kept by this service (a replayed
code or a reused refresh token revokes the refresh family; `KeySetVerifier` given the
`GrantStore` refuses that family's access tokens by their `jti`), a shared (cross-node)
assertion replay cache, and domain allow-lists for client ID metadata documents.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import attrs
import jwt

from mcp_core.core.http.messages import HttpResponse
from mcp_core.core.http.sealed import b64url, tag, unb64url
from mcp_core.core.machines.authorization_grant import (
    AuthorizationGrant,
    AuthorizationGrantState,
    CodeRedeemed,
    GrantLimits,
    GrantProgress,
    IssueTokens,
    RejectRequest,
)
from mcp_core.core.oauth.client_assertion import (
    ASSERTION_ALGORITHMS,
    MAX_LEEWAY,
    AssertionReplayCache,
    ClientAssertion,
    UsableJwk,
    check_assertion_claims,
    check_assertion_header,
    parse_assertion_request,
    usable_jwks,
)
from mcp_core.core.oauth.client_id_metadata import (
    DEFAULT_DOCUMENT_TTL,
    MAX_DOCUMENT_TTL,
    MIN_DOCUMENT_TTL,
    check_client_id_url,
    document_lifetime,
    is_client_id_url,
    parse_client_id_document,
)
from mcp_core.core.oauth.errors import (
    ACCESS_DENIED,
    INVALID_CLIENT,
    INVALID_CLIENT_METADATA,
    INVALID_GRANT,
    INVALID_REQUEST,
    INVALID_SCOPE,
    INVALID_TARGET,
    NO_STORE_HEADERS,
    SERVER_ERROR,
    UNAUTHORIZED_CLIENT,
    UNSUPPORTED_GRANT_TYPE,
    UNSUPPORTED_RESPONSE_TYPE,
    OAuthError,
    error_response,
)
from mcp_core.core.oauth.metadata import authorization_server_metadata
from mcp_core.core.oauth.pkce import check_code_challenge
from mcp_core.core.oauth.redirects import select_redirect_uri
from mcp_core.core.oauth.registration import (
    ClientMetadata,
    check_client_metadata,
    parse_registration_request,
    registration_response,
)
from mcp_core.core.services.token_verifiers import SIGNATURE_ONLY, JwksCache
from mcp_core.ports.http_client import HttpClient, OutboundFailed, OutboundRefused
from mcp_core.ports.keys import ACCESS_TOKEN_TYP, KeySet, SharedKeySet, TokenSigningError
from mcp_core.ports.oauth_stores import (
    ClientStore,
    CodeOutcome,
    CodeRecord,
    CodeStatus,
    GrantConflict,
    GrantStore,
    RefreshStatus,
    RegisteredClient,
    StoreUnavailable,
)
from mcp_core.ports.system import Clock, Random
from mcp_core.ports.tokens import VerifierUnavailable

__all__ = [
    "MAX_CODE_TTL",
    "MAX_TICKET_LENGTH",
    "MIN_TICKET_KEY_BYTES",
    "AuthorizationServer",
    "ConsentCallback",
    "ConsentRequest",
    "LocalUserAuthenticator",
    "LoginRedirector",
    "RequestFacts",
    "StaticClient",
    "UserAuthenticator",
    "parse_urlencoded",
]

# RFC 6749 4.1.2: "a maximum authorization code lifetime of 10 minutes is RECOMMENDED".
MAX_CODE_TTL: Final = 600.0
MAX_FORM_FIELDS: Final = 64
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_HTML_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("content-type", "text/html; charset=utf-8"),
    *NO_STORE_HEADERS,
    ("content-security-policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
)
_JSON_NO_STORE: Final = (("content-type", "application/json"), *NO_STORE_HEADERS)
# A sealed consent ticket is carried in the consent page's form, posted back in a body capped
# at 16 KiB by the ASGI adapter; a request that would need a longer one is refused up front.
MAX_TICKET_LENGTH: Final = 12 * 1024
MIN_TICKET_KEY_BYTES: Final = 32
_TICKET_VERSION: Final = "c1"
_TICKET_LABEL: Final = b"mcp-core consent ticket v1\x00"
# The `GrantStore` key of a ticket's single-use marker. Never a 64-digit hex SHA-256, so no
# code presented at /token can name it (`_hash(code)` is always hex).
_TICKET_MARKER: Final = "consent-ticket:"
_SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})
# Stored with a client ID metadata document's metadata: when to fetch the document again.
_CIMD_REFRESH_AT: Final = "cimd_refresh_at"
# A document that could not be fetched or was invalid is not fetched again for this long, so
# that a stranger cannot turn every request to /authorize into an outbound fetch.
_CIMD_FAILURE_TTL: Final = 30.0
_CIMD_FAILURE_LIMIT: Final = 1_024
_JWKS_CACHE_LIMIT: Final = 256


@attrs.frozen(kw_only=True)
class RequestFacts:
    """What the `UserAuthenticator` may look at: method, path, query and headers (lower-case)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


@runtime_checkable
class UserAuthenticator(Protocol):
    """The operator's login: the subject signed in on this request, or None."""

    async def authenticate(self, request: RequestFacts) -> str | None: ...


@runtime_checkable
class LoginRedirector(Protocol):
    """Optional, beside `UserAuthenticator`: an authenticator with a sign-in page. When nobody
    is signed in, the ASGI adapter answers an authorization request with a 303 to
    `login_url(next)` (`next`: the request's path and query) instead of the 401 page."""

    def login_url(self, next: str) -> str: ...


@attrs.frozen(kw_only=True)
class LocalUserAuthenticator:
    """Every request is the one local user (a single-user local server, the conformance suite)."""

    subject: str = "local"

    async def authenticate(self, request: RequestFacts) -> str | None:
        return self.subject


@attrs.frozen(kw_only=True)
class ConsentRequest:
    """What the user is asked to approve."""

    subject: str
    client_id: str
    client_name: str | None
    scope: str
    resource: str
    # The host of a client ID metadata document's URL (None for other clients): the one thing
    # about such a client that is not self-asserted, to show next to its name.
    client_host: str | None = None
    redirect_uri: str = ""


# A callback answers "approve", "deny" or "ask" (show the consent page).
ConsentCallback = Callable[[ConsentRequest], Awaitable[Literal["approve", "deny", "ask"]]]


@attrs.frozen(kw_only=True)
class StaticClient:
    """A client from configuration: RFC 7591 metadata (checked like a registration) and, for a
    client_secret_basic or client_secret_post client, its secret (a private_key_jwt client
    has its `jwks` or `jwks_uri` in the metadata instead)."""

    client_id: str
    metadata: Mapping[str, Any]
    secret: str | None = None


@attrs.frozen(kw_only=True)
class _Client:
    client_id: str
    metadata: ClientMetadata
    secret_hash: str | None
    source: str = "static"


@attrs.frozen
class _AssertionKey:
    alg: str
    key: Any = attrs.field(repr=False)


def _load_jwk(usable: UsableJwk) -> _AssertionKey | None:
    """A registered public JWK as a pyjwt key; None when its numbers are not a valid key."""
    try:
        return _AssertionKey(usable.alg, jwt.PyJWK(dict(usable.jwk), algorithm=usable.alg).key)
    except (jwt.PyJWKError, ValueError, TypeError):
        return None


def _assertion_keys(document: Mapping[str, Any]) -> dict[str, _AssertionKey]:
    keys = {kid: _load_jwk(usable) for kid, usable in usable_jwks(document).items()}
    return {kid: key for kid, key in keys.items() if key is not None}


def _same_url(fetched: str, wanted: str) -> bool:
    """Whether the URL that answered is the one asked for (no redirect to elsewhere)."""
    try:
        a, b = urlsplit(fetched), urlsplit(wanted)
        return (a.scheme, a.hostname, a.port or 443, a.path or "/", a.query) == (
            b.scheme,
            b.hostname,
            b.port or 443,
            b.path or "/",
            b.query,
        )
    except ValueError:
        return False


@attrs.frozen(kw_only=True)
class _Pending:
    """An authorization request waiting for the user's consent: what a consent ticket seals."""

    subject: str
    client_id: str
    redirect_uri: str
    state: str | None
    scope: str
    resource: str
    code_challenge: str
    expires_at: float
    # Random: names the ticket's single-use marker in the `GrantStore`.
    ticket_id: str = ""


def _seal_ticket(key: bytes, issuer: str, pending: _Pending) -> str:
    """`c1.<base64url(JSON of the pending request)>.<base64url(HMAC-SHA256)>`; the MAC covers a
    label, the issuer and the payload, so a ticket is valid only for the server that sealed it
    and only as a consent ticket."""
    fields = [
        pending.ticket_id,
        pending.subject,
        pending.client_id,
        pending.redirect_uri,
        pending.state,
        pending.scope,
        pending.resource,
        pending.code_challenge,
        pending.expires_at,
    ]
    # ASCII escapes: no longer than the request's own percent-encoding, save control characters.
    body = json.dumps(fields, separators=(",", ":")).encode("ascii")
    payload = f"{_TICKET_VERSION}.{b64url(body)}"
    return f"{payload}.{b64url(tag(key, _TICKET_LABEL, issuer, payload))}"


def _open_ticket(key: bytes, issuer: str, ticket: str) -> _Pending | None:
    """The pending request sealed in `ticket` by `key` for `issuer`, or None for anything
    malformed, too long or whose MAC does not verify (compared in constant time). Expiry and
    the subject are the caller's to check."""
    parts = ticket.split(".")
    if len(ticket) > MAX_TICKET_LENGTH or len(parts) != 3 or parts[0] != _TICKET_VERSION:
        return None
    mac = unb64url(parts[2])
    payload = f"{parts[0]}.{parts[1]}"
    if mac is None or not hmac.compare_digest(tag(key, _TICKET_LABEL, issuer, payload), mac):
        return None
    raw = unb64url(parts[1])
    try:
        fields = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    # Sealed by us, so well-formed; checked anyway (a key shared with an older release).
    if not isinstance(fields, list) or len(fields) != 9:
        return None
    texts = [fields[i] for i in (0, 1, 2, 3, 5, 6, 7)]
    state, expires_at = fields[4], fields[8]
    if not all(isinstance(t, str) for t in texts) or not (state is None or isinstance(state, str)):
        return None
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        return None
    ticket_id, subject, client_id, redirect_uri, scope, resource, challenge = texts
    return _Pending(
        ticket_id=ticket_id,
        subject=subject,
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
        scope=scope,
        resource=resource,
        code_challenge=challenge,
        expires_at=float(expires_at),
    )


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _same_hash(held: str | None, value: str) -> bool:
    return held is not None and hmac.compare_digest(held.encode(), _hash(value).encode())


def parse_urlencoded(body: bytes | str) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body or a query as a dict; raises
    `OAuthError(invalid_request)` for a repeated parameter (RFC 6749 3.1, 3.2) or bad encoding."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(INVALID_REQUEST, "malformed urlencoded parameters") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise OAuthError(INVALID_REQUEST, "a parameter was sent more than once")
        out[name] = value
    # RFC 6749 3.1: parameters sent without a value are treated as omitted.
    return {name: value for name, value in out.items() if value != ""}


def _error_page(status: int, title: str, message: str) -> HttpResponse:
    body = (
        "<!doctype html><html><head><meta charset=utf-8><title>"
        f"{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p role=alert>{html.escape(message)}</p></body></html>"
    )
    return HttpResponse(status=status, headers=_HTML_HEADERS, body=body.encode())


def _redirect(uri: str, params: Mapping[str, str]) -> HttpResponse:
    separator = "&" if urlsplit(uri).query else "?"
    location = f"{uri}{separator}{urlencode(params)}"
    return HttpResponse(status=302, headers=(("location", location), *NO_STORE_HEADERS))


def _json(payload: Mapping[str, Any], status: int = 200) -> HttpResponse:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return HttpResponse(status=status, headers=_JSON_NO_STORE, body=body)


def _oauth_error(error: OAuthError, *, basic_tried: bool = False) -> HttpResponse:
    status, headers, body = error_response(error)
    if error.error == INVALID_CLIENT:
        scheme = 'Basic realm="token"' if basic_tried else 'Bearer realm="token"'
        headers = (*headers, ("www-authenticate", scheme))
    return HttpResponse(status=status, headers=headers, body=body)


def _check_scope(scope: str | None) -> str:
    if scope is None:
        return ""
    tokens = scope.split(" ")
    if len(scope) > 1024 or not all(_SCOPE_TOKEN.fullmatch(t) for t in tokens):
        raise OAuthError(INVALID_SCOPE, "scope must be space-separated scope-tokens")
    return " ".join(dict.fromkeys(tokens))


def _check_resource(resource: str | None) -> str:
    """RFC 8707 2: an absolute URI without a fragment."""
    if resource is None:
        raise OAuthError(INVALID_REQUEST, "resource is required (RFC 8707)")
    parts = urlsplit(resource)
    if (
        len(resource) > 2048
        or not parts.scheme
        or not parts.netloc
        or "#" in resource
        or not resource.isascii()
        or any(c.isspace() for c in resource)
    ):
        raise OAuthError(INVALID_TARGET, "resource must be an absolute URI without a fragment")
    return resource


class AuthorizationServer:
    """The endpoints of the built-in authorization server (see the module docstring).

    `issuer` is the server's https URL (http on loopback for development); its endpoints are
    `<issuer>/authorize`, `/token`, `/register`, `/revoke` and `/jwks`. `resources`, when given,
    is the set of RFC 8707 resources tokens may be issued for (others get `invalid_target`).
    `consent` is "auto" (approve every request: one local user) or a `ConsentCallback`.

    `http`, when given, is the outbound `HttpClient` (its adapter applies the SSRF policy) used
    for client ID metadata documents (unless `client_id_metadata_documents` is False) and for
    the `jwks_uri` of private_key_jwt clients. `document_ttl` is (minimum, default, maximum)
    seconds a fetched document is used before it is fetched again (`Cache-Control: max-age`
    clamped to that range). `assertion_leeway` is the clock skew allowed on client assertions.
    """

    def __init__(
        self,
        issuer: str,
        *,
        clients: ClientStore,
        grants: GrantStore,
        keys: KeySet,
        clock: Clock,
        random: Random,
        consent: Literal["auto"] | ConsentCallback = "auto",
        static_clients: Sequence[StaticClient] = (),
        resources: Collection[str] | None = None,
        scopes_supported: Sequence[str] = (),
        code_ttl: float = 300.0,
        access_ttl: float = 3600.0,
        refresh_ttl: float = 30 * 86_400.0,
        consent_ttl: float = 600.0,
        allow_registration: bool = True,
        purge_interval: float = 3600.0,
        http: HttpClient | None = None,
        client_id_metadata_documents: bool = True,
        document_ttl: tuple[float, float, float] = (
            MIN_DOCUMENT_TTL,
            DEFAULT_DOCUMENT_TTL,
            MAX_DOCUMENT_TTL,
        ),
        assertion_leeway: float = 30.0,
        max_assertion_replay_entries: int = 100_000,
        ticket_key: bytes | None = None,
    ) -> None:
        if not 0 < code_ttl <= MAX_CODE_TTL:
            raise ValueError(f"code_ttl is above 0 and at most {MAX_CODE_TTL:g} seconds")
        if access_ttl <= 0 or refresh_ttl <= 0 or consent_ttl <= 0:
            raise ValueError("lifetimes must be positive")
        if ticket_key is not None and len(ticket_key) < MIN_TICKET_KEY_BYTES:
            raise ValueError(f"ticket_key is at least {MIN_TICKET_KEY_BYTES} bytes")
        if not 0 <= assertion_leeway <= MAX_LEEWAY:
            raise ValueError(f"assertion_leeway is 0 to {MAX_LEEWAY:g} seconds")
        document_lifetime(
            None, minimum=document_ttl[0], default=document_ttl[1], maximum=document_ttl[2]
        )  # raises ValueError for a bad range
        self.issuer = issuer
        base = issuer.rstrip("/")
        self.endpoints = {
            name: f"{base}/{name}" for name in ("authorize", "token", "register", "revoke", "jwks")
        }
        self._metadata = authorization_server_metadata(
            issuer=issuer,
            authorization_endpoint=self.endpoints["authorize"],
            token_endpoint=self.endpoints["token"],
            jwks_uri=self.endpoints["jwks"],
            registration_endpoint=self.endpoints["register"] if allow_registration else None,
            revocation_endpoint=self.endpoints["revoke"],
            scopes_supported=scopes_supported,
            grant_types_supported=("authorization_code", "refresh_token", "client_credentials"),
            token_endpoint_auth_methods_supported=(
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ),
            token_endpoint_auth_signing_alg_values_supported=ASSERTION_ALGORITHMS,
            client_id_metadata_document_supported=http is not None and client_id_metadata_documents,
        )
        self.clients = clients
        self.grants = grants
        self.keys = keys
        self.clock = clock
        self.random = random
        self.consent = consent
        self.resources = frozenset(resources) if resources is not None else None
        self.code_ttl = code_ttl
        self._grant_limits = GrantLimits(
            code_lifetime=code_ttl, consent_lifetime=consent_ttl, refresh_lifetime=refresh_ttl
        )
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.consent_ttl = consent_ttl
        self.allow_registration = allow_registration
        self.purge_interval = purge_interval
        self._next_purge = clock.wall() + purge_interval
        self.http = http
        self.cimd_enabled = http is not None and client_id_metadata_documents
        self.document_ttl = document_ttl
        self.assertion_leeway = float(assertion_leeway)
        self._replays = AssertionReplayCache(max_assertion_replay_entries)
        self._jwks_caches: OrderedDict[str, JwksCache[_AssertionKey]] = OrderedDict()
        self._cimd_failures: dict[str, float] = {}
        self._static: dict[str, _Client] = {}
        for static in static_clients:
            metadata = check_client_metadata(static.metadata)
            needs_secret = metadata.token_endpoint_auth_method in _SECRET_METHODS
            if needs_secret != (static.secret is not None):
                raise ValueError(f"static client {static.client_id!r}: secret and auth method")
            problem = self._key_problem(metadata)
            if problem is not None:
                raise ValueError(f"static client {static.client_id!r}: {problem}")
            secret_hash = None if static.secret is None else _hash(static.secret)
            self._static[static.client_id] = _Client(
                client_id=static.client_id, metadata=metadata, secret_hash=secret_hash
            )
        # Seals consent tickets (see "Consent tickets" in the module docstring). Drawn here when
        # not given: tickets then verify only on this node and die with the process.
        self._ticket_key = (
            ticket_key if ticket_key is not None else random.token(MIN_TICKET_KEY_BYTES)
        )

    # ---- helpers ------------------------------------------------------------------------

    def _random(self, nbytes: int = 32) -> str:
        return b64url(self.random.token(nbytes))

    def _key_problem(self, metadata: ClientMetadata) -> str | None:
        """Why a private_key_jwt client's keys cannot work here, or None."""
        if metadata.jwks_uri is not None and self.http is None:
            return "jwks_uri needs an HttpClient; register the keys inline (jwks)"
        if metadata.jwks is not None and not _assertion_keys(metadata.jwks):
            return "jwks holds no usable signing key (RS256 >= 2048 bits, ES256 or EdDSA)"
        return None

    async def _resolve_client(self, client_id: str | None) -> _Client:
        """The client named by `client_id`; `OAuthError(invalid_client)` when there is none.

        Order: clients from configuration, then (when enabled) client ID metadata documents for
        an https client_id, then the `ClientStore` (dynamic registrations)."""
        if not client_id:
            raise OAuthError(INVALID_CLIENT, "client_id is missing")
        if client_id in self._static:
            return self._static[client_id]
        if self.cimd_enabled and is_client_id_url(client_id):
            return await self._document_client(client_id)
        stored = await self.clients.get(client_id) if len(client_id) <= 255 else None
        if stored is None or stored.source == "cimd":
            raise OAuthError(INVALID_CLIENT, "unknown client")
        try:
            metadata = check_client_metadata(stored.metadata)
        except OAuthError:
            raise OAuthError(INVALID_CLIENT, "unknown client") from None
        return _Client(
            client_id=client_id,
            metadata=metadata,
            secret_hash=stored.secret_hash,
            source=stored.source,
        )

    async def _document_client(self, client_id: str) -> _Client:
        """A client ID metadata document client: from the `ClientStore` while fresh (source
        "cimd", refetched after its lifetime), else fetched, validated and stored."""
        check_client_id_url(client_id)
        now = self.clock.wall()
        stored = await self.clients.get(client_id)
        if stored is not None and stored.source == "cimd":
            refresh_at = stored.metadata.get(_CIMD_REFRESH_AT)
            if isinstance(refresh_at, int | float) and now < refresh_at:
                try:
                    metadata = check_client_metadata(stored.metadata)
                except OAuthError:
                    pass  # fetch it again below
                else:
                    return _Client(
                        client_id=client_id, metadata=metadata, secret_hash=None, source="cimd"
                    )
        failed_until = self._cimd_failures.get(client_id)
        if failed_until is not None and now < failed_until:
            raise OAuthError(INVALID_CLIENT, "the client metadata document was refused recently")
        try:
            metadata, lifetime = await self._fetch_document(client_id)
        except OAuthError:
            if len(self._cimd_failures) >= _CIMD_FAILURE_LIMIT:
                self._cimd_failures = {u: t for u, t in self._cimd_failures.items() if t > now}
            if len(self._cimd_failures) < _CIMD_FAILURE_LIMIT:
                self._cimd_failures[client_id] = now + _CIMD_FAILURE_TTL
            raise
        self._cimd_failures.pop(client_id, None)
        await self.clients.put(
            RegisteredClient(
                client_id=client_id,
                metadata={
                    **metadata.to_json(),
                    "client_id": client_id,
                    _CIMD_REFRESH_AT: now + lifetime,
                },
                secret_hash=None,
                registered_at=now,
                source="cimd",
            )
        )
        return _Client(client_id=client_id, metadata=metadata, secret_hash=None, source="cimd")

    async def _fetch_document(self, client_id: str) -> tuple[ClientMetadata, float]:
        assert self.http is not None
        try:
            result = await self.http.get(client_id, headers={"accept": "application/json"})
        except (OutboundRefused, OutboundFailed):
            # The reason (an address, a DNS answer) is not shown: the URL is a stranger's.
            raise OAuthError(
                INVALID_CLIENT, "the client metadata document could not be fetched"
            ) from None
        if result.status != 200:
            raise OAuthError(INVALID_CLIENT, "the client metadata document could not be fetched")
        if not _same_url(result.final_url, client_id):
            # An open redirect on the client's site must not let another document speak for it.
            raise OAuthError(INVALID_CLIENT, "the client metadata document URL redirected")
        metadata = parse_client_id_document(result.body, client_id)
        problem = self._key_problem(metadata)
        if problem is not None:
            raise OAuthError(INVALID_CLIENT, f"the client metadata document: {problem}")
        minimum, default, maximum = self.document_ttl
        lifetime = document_lifetime(
            result.header("cache-control"), minimum=minimum, default=default, maximum=maximum
        )
        return metadata, lifetime

    def _allowed_resource(self, resource: str | None) -> str:
        checked = _check_resource(resource)
        if self.resources is not None and checked not in self.resources:
            raise OAuthError(INVALID_TARGET, "tokens are not issued for this resource")
        return checked

    @staticmethod
    def _allowed_scope(client: _Client, requested: str | None) -> str:
        scope = _check_scope(requested)
        registered = client.metadata.scope
        if registered is None:
            return scope
        if not scope:
            return registered
        if not set(scope.split(" ")) <= set(registered.split(" ")):
            raise OAuthError(INVALID_SCOPE, "scope exceeds what the client registered")
        return scope

    # ---- discovery ----------------------------------------------------------------------

    def metadata(self) -> HttpResponse:
        """RFC 8414 2: the metadata document."""
        body = json.dumps(self._metadata, separators=(",", ":")).encode()
        headers = (("content-type", "application/json"), ("cache-control", "max-age=300"))
        return HttpResponse(status=200, headers=headers, body=body)

    def jwks(self) -> HttpResponse:
        """RFC 7517: the public keys that verify access tokens."""
        body = json.dumps(self.keys.jwks(), separators=(",", ":")).encode()
        headers = (("content-type", "application/json"), ("cache-control", "max-age=300"))
        return HttpResponse(status=200, headers=headers, body=body)

    # ---- registration (RFC 7591) ---------------------------------------------------------

    async def register(self, body: bytes) -> HttpResponse:
        """RFC 7591 3: validate, persist, answer 201 with the assigned id (and secret)."""
        if not self.allow_registration:
            return _oauth_error(OAuthError(INVALID_REQUEST, "dynamic registration is disabled"))
        try:
            metadata = parse_registration_request(body)
        except OAuthError as error:
            return _oauth_error(error)
        problem = self._key_problem(metadata)
        if problem is not None:
            return _oauth_error(OAuthError(INVALID_CLIENT_METADATA, problem))
        client_id = self._random(16)
        needs_secret = metadata.token_endpoint_auth_method in _SECRET_METHODS
        secret = self._random(32) if needs_secret else None
        now = self.clock.wall()
        await self.clients.put(
            RegisteredClient(
                client_id=client_id,
                metadata=metadata.to_json(),
                secret_hash=None if secret is None else _hash(secret),
                registered_at=now,
                source="dynamic",
            )
        )
        payload = registration_response(
            metadata, client_id=client_id, client_id_issued_at=int(now), client_secret=secret
        )
        return _json(payload, status=201)

    # ---- authorization endpoint ---------------------------------------------------------

    async def authorize(self, query: Mapping[str, str], subject: str | None) -> HttpResponse:
        """RFC 6749 4.1.1: an authorization request from the user agent."""
        try:
            client = await self._resolve_client(query.get("client_id"))
        except OAuthError as error:
            # Never a redirect: nothing about this client is known to be safe to send back to.
            return _error_page(400, "Unknown client", error.description or error.error)
        try:
            redirect_uri = select_redirect_uri(
                client.metadata.redirect_uris, query.get("redirect_uri")
            )
        except OAuthError as error:
            return _error_page(400, "Invalid redirect URI", error.description or error.error)
        state = query.get("state")

        def fail(error: OAuthError) -> HttpResponse:
            params = {"error": error.error}
            if error.description:
                params["error_description"] = error.description
            if state is not None:
                params["state"] = state
            params["iss"] = self.issuer
            return _redirect(redirect_uri, params)

        try:
            if query.get("response_type") != "code":
                raise OAuthError(UNSUPPORTED_RESPONSE_TYPE, "response_type must be code")
            if "authorization_code" not in client.metadata.grant_types:
                raise OAuthError(UNAUTHORIZED_CLIENT, "the client may not use the code grant")
            challenge = check_code_challenge(
                query.get("code_challenge"), query.get("code_challenge_method")
            )
            resource = self._allowed_resource(query.get("resource"))
            scope = self._allowed_scope(client, query.get("scope"))
        except OAuthError as error:
            return fail(error)
        if subject is None:
            return _error_page(401, "Sign-in required", "Sign in, then try again.")
        pending = _Pending(
            subject=subject,
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            state=state,
            scope=scope,
            resource=resource,
            code_challenge=challenge,
            expires_at=self.clock.wall() + self.consent_ttl,
        )
        if self.consent == "auto":
            return await self._approve(pending)
        request = ConsentRequest(
            subject=subject,
            client_id=client.client_id,
            client_name=client.metadata.client_name,
            scope=scope,
            resource=resource,
            client_host=urlsplit(client.client_id).hostname if client.source == "cimd" else None,
            redirect_uri=redirect_uri,
        )
        answer = await self.consent(request)
        if answer == "approve":
            return await self._approve(pending)
        if answer == "deny":
            return fail(OAuthError(ACCESS_DENIED, "the user denied the request"))
        ticket = _seal_ticket(
            self._ticket_key, self.issuer, attrs.evolve(pending, ticket_id=self._random(16))
        )
        if len(ticket) > MAX_TICKET_LENGTH:
            return fail(OAuthError(INVALID_REQUEST, "the authorization request is too large"))
        return self._consent_page(ticket, request)

    def _consent_page(self, ticket: str, request: ConsentRequest) -> HttpResponse:
        name = request.client_name or request.client_id
        action = html.escape(urlsplit(self.endpoints["authorize"]).path or "/authorize")
        body = (
            "<!doctype html><html><head><meta charset=utf-8><title>Authorize</title></head><body>"
            f"<h1>Allow {html.escape(name)}?</h1>"
            f"{self._client_facts(request)}"
            f"<p>Access to {html.escape(request.resource)}"
            f"{' with scope ' + html.escape(request.scope) if request.scope else ''}.</p>"
            f'<form method=post action="{action}">'
            f'<input type=hidden name=consent_ticket value="{html.escape(ticket)}">'
            "<button name=decision value=approve>Allow</button> "
            "<button name=decision value=deny>Deny</button></form></body></html>"
        )
        return HttpResponse(status=200, headers=_HTML_HEADERS, body=body.encode())

    @staticmethod
    def _client_facts(request: ConsentRequest) -> str:
        """What the consent page says besides the name (MCP 2025-11-25 "Authorization" >
        "Client ID Metadata Document Security"): a document's name is self-asserted, so the
        host of its URL is shown with it, and the redirect URI's host is always shown."""
        parts = []
        if request.client_host is not None:
            parts.append(
                "<p>The name above is chosen by the client. Its identity is the site "
                f"<strong>{html.escape(request.client_host)}</strong>.</p>"
            )
        if request.redirect_uri:
            redirect = urlsplit(request.redirect_uri)
            where = redirect.hostname or redirect.scheme
            parts.append(f"<p>Your answer is sent to <strong>{html.escape(where)}</strong>.</p>")
            loopback = redirect.scheme == "http" and where in ("127.0.0.1", "::1", "localhost")
            if request.client_host is not None and loopback:
                parts.append(
                    "<p role=alert>That is a program on this computer: any local program can "
                    "claim this name. Allow only if you just started it.</p>"
                )
        return "".join(parts)

    async def decide(self, form: Mapping[str, str], subject: str | None) -> HttpResponse:
        """The consent page's answer (POST /authorize): the sealed ticket and a decision.

        The ticket must verify under this server's `ticket_key`, belong to the signed-in
        subject and be unexpired; then it is spent, once across every node sharing the
        `GrantStore` (`_spend_ticket`), whatever the decision."""
        pending = _open_ticket(self._ticket_key, self.issuer, form.get("consent_ticket", ""))
        if pending is None or subject is None or pending.subject != subject:
            return _error_page(400, "Expired request", "This consent request is not valid.")
        now = self.clock.wall()
        if pending.expires_at < now:
            return _error_page(400, "Expired request", "This consent request has expired.")
        if not await self._spend_ticket(pending, now):
            return _error_page(400, "Expired request", "This consent request was already answered.")
        if form.get("decision") != "approve":
            params = {"error": ACCESS_DENIED, "iss": self.issuer}
            if pending.state is not None:
                params["state"] = pending.state
            return _redirect(pending.redirect_uri, params)
        return await self._approve(pending)

    async def _spend_ticket(self, pending: _Pending, now: float) -> bool:
        """Whether this call is the first to spend the ticket, on any node.

        The single-use marker is a `CodeRecord` saved under `consent-ticket:<ticket id>`:
        `save_code` refuses a hash already stored (`GrantConflict`) atomically on every
        backend, so of two posts of one ticket, to one node or to two, exactly one saves it.
        The key is never a hex SHA-256, so no code presented at /token can reach it, and the
        record is inert besides (no client, no redirect URI, no PKCE challenge). It lives until
        the ticket expires (a later post is refused as expired before this is asked) and goes
        with the codes in `purge`."""
        marker = _TICKET_MARKER + pending.ticket_id
        try:
            await self.grants.save_code(
                CodeRecord(
                    code_hash=marker,
                    client_id="",
                    redirect_uri="",
                    resource="",
                    scope="",
                    subject=pending.subject,
                    code_challenge="",
                    family_id=marker,
                    issued_at=now,
                    expires_at=pending.expires_at,
                )
            )
        except GrantConflict:
            return False
        return True

    async def _approve(self, pending: _Pending) -> HttpResponse:
        code = self._random(32)
        now = self.clock.wall()
        await self.grants.save_code(
            CodeRecord(
                code_hash=_hash(code),
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                resource=pending.resource,
                scope=pending.scope,
                subject=pending.subject,
                code_challenge=pending.code_challenge,
                family_id=self._random(16),
                issued_at=now,
                expires_at=now + self.code_ttl,
            )
        )
        params = {"code": code}
        if pending.state is not None:
            params["state"] = pending.state
        params["iss"] = self.issuer  # RFC 9207
        return _redirect(pending.redirect_uri, params)

    # ---- token endpoint ------------------------------------------------------------------

    async def _authenticate_client(
        self, form: Mapping[str, str], headers: Mapping[str, str], endpoint: str
    ) -> _Client:
        """RFC 6749 2.3 and OAuth 2.1 2.4: none, client_secret_basic, client_secret_post or
        private_key_jwt (RFC 7523 2.2), as registered; one method per request."""
        assertion = parse_assertion_request(form)
        if assertion is not None:
            return await self._authenticate_by_assertion(form, headers, assertion, endpoint)
        authorization = headers.get("authorization")
        basic_id = basic_secret = None
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise OAuthError(INVALID_CLIENT, "unsupported client authentication scheme")
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError(INVALID_CLIENT, "malformed Basic credentials") from None
            raw_id, colon, raw_secret = decoded.partition(":")
            if not colon:
                raise OAuthError(INVALID_CLIENT, "malformed Basic credentials")
            basic_id, basic_secret = unquote(raw_id), unquote(raw_secret)
            if "client_secret" in form:
                raise OAuthError(INVALID_REQUEST, "use one client authentication method")
            if form.get("client_id", basic_id) != basic_id:
                raise OAuthError(INVALID_CLIENT, "client_id does not match the credentials")
        client_id = basic_id if basic_id is not None else form.get("client_id")
        client = await self._resolve_client(client_id)
        method = client.metadata.token_endpoint_auth_method
        if method == "none":
            if basic_id is not None or "client_secret" in form:
                raise OAuthError(INVALID_CLIENT, "a public client has no secret")
            return client
        if method == "client_secret_basic":
            given = basic_secret
        elif method == "client_secret_post":
            given = None if basic_id is not None else form.get("client_secret")
        elif method == "private_key_jwt":
            raise OAuthError(INVALID_CLIENT, "this client authenticates with a client_assertion")
        else:
            raise OAuthError(INVALID_CLIENT, "the client's authentication method is unsupported")
        if given is None or not _same_hash(client.secret_hash, given):
            raise OAuthError(INVALID_CLIENT, "client authentication failed")
        return client

    async def _authenticate_by_assertion(
        self,
        form: Mapping[str, str],
        headers: Mapping[str, str],
        assertion: ClientAssertion,
        endpoint: str,
    ) -> _Client:
        """RFC 7523 3: the signature with a registered key, then the claims, then the `jti`
        (recorded only once everything else holds, so a forged assertion burns nothing)."""
        if "authorization" in headers or "client_secret" in form:
            raise OAuthError(INVALID_REQUEST, "use one client authentication method")
        claimed = assertion.claimed_client_id
        client_id = form.get("client_id", claimed)
        if client_id is None or client_id != claimed:
            raise OAuthError(INVALID_CLIENT, "client_id does not match the client assertion")
        client = await self._resolve_client(client_id)
        if client.metadata.token_endpoint_auth_method != "private_key_jwt":
            raise OAuthError(INVALID_CLIENT, "this client does not use private_key_jwt")
        alg, kid = check_assertion_header(assertion.header)
        key = await self._assertion_key(client.metadata, kid)
        if key is None:
            raise OAuthError(INVALID_CLIENT, "no registered key of the client matches the kid")
        if key.alg != alg:
            raise OAuthError(INVALID_CLIENT, "the key named by kid signs with another algorithm")
        try:
            claims = jwt.decode(
                assertion.token,
                key.key,
                algorithms=[key.alg],
                # The claims are checked by `check_assertion_claims`, against our clock.
                options=SIGNATURE_ONLY,
            )
        except jwt.PyJWTError:
            raise OAuthError(INVALID_CLIENT, "the client assertion does not verify") from None
        now = self.clock.wall()
        accepted = check_assertion_claims(
            claims,
            client_id=client.client_id,
            audiences=(self.issuer, self.endpoints["token"], self.endpoints[endpoint]),
            now=now,
            leeway=self.assertion_leeway,
        )
        if not self._replays.admit(client.client_id, accepted.jti, accepted.expires_at, now):
            raise OAuthError(INVALID_CLIENT, "the client assertion was already used")
        return client

    async def _assertion_key(self, metadata: ClientMetadata, kid: str) -> _AssertionKey | None:
        """The registered key named `kid`: from the inline `jwks`, or from `jwks_uri` through a
        `JwksCache` (shared per URL, refetched hourly and, rate-limited, on an unknown kid)."""
        if metadata.jwks is not None:
            return _assertion_keys(metadata.jwks).get(kid)
        if metadata.jwks_uri is None or self.http is None:
            return None
        cache = self._jwks_caches.get(metadata.jwks_uri)
        if cache is None:
            cache = JwksCache(
                metadata.jwks_uri, http=self.http, clock=self.clock, parse=_assertion_keys
            )
            self._jwks_caches[metadata.jwks_uri] = cache
            while len(self._jwks_caches) > _JWKS_CACHE_LIMIT:
                self._jwks_caches.popitem(last=False)
        self._jwks_caches.move_to_end(metadata.jwks_uri)
        try:
            return await cache.key(kid)
        except VerifierUnavailable:
            raise OAuthError(INVALID_CLIENT, "the client's jwks_uri could not be fetched") from None

    async def purge(self) -> int:
        """Remove what can no longer matter from the `GrantStore`: families idle past the
        refresh lifetime (dead anyway) and past the access-token lifetime (so no revoked family's
        token comes back to life), and codes and access-token revocations that expired more
        than that long ago. Returns how many records went. `token` calls it at
        most every `purge_interval` seconds, so a server needs no timer of its own."""
        now = self.clock.wall()
        self._next_purge = now + self.purge_interval
        # A family's revocation goes with the family, so keep families for as long as any of
        # their access tokens could still be presented, as well as for the refresh lifetime.
        return await self.grants.purge(now - max(self.refresh_ttl, self.access_ttl))

    async def refresh_keys(self) -> None:
        """Bring a `SharedKeySet` up to date with its store (rate-limited by the key set), so
        that this node signs with, and publishes, the keys every node uses."""
        if isinstance(self.keys, SharedKeySet):
            await self.keys.refresh()

    async def token(self, form: Mapping[str, str], headers: Mapping[str, str]) -> HttpResponse:
        """RFC 6749 3.2: every grant; errors are RFC 6749 5.2 bodies, always `no-store`."""
        await self.refresh_keys()
        if self.clock.wall() >= self._next_purge:
            # Housekeeping: a store that is down is the request's to report, not this.
            with contextlib.suppress(StoreUnavailable):
                await self.purge()
        try:
            client = await self._authenticate_client(form, headers, "token")
            grant_type = form.get("grant_type")
            if grant_type is None:
                raise OAuthError(INVALID_REQUEST, "grant_type is required")
            if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
                raise OAuthError(UNSUPPORTED_GRANT_TYPE, "grant_type is not supported")
            if grant_type not in client.metadata.grant_types:
                raise OAuthError(UNAUTHORIZED_CLIENT, "the client may not use this grant_type")
            if grant_type == "authorization_code":
                return await self._code_grant(client, form)
            if grant_type == "refresh_token":
                return await self._refresh_grant(client, form)
            return await self._client_credentials(client, form)
        except OAuthError as error:
            return _oauth_error(error, basic_tried="authorization" in headers)

    async def _code_grant(self, client: _Client, form: Mapping[str, str]) -> HttpResponse:
        """RFC 6749 4.1.3, decided by the grant machine (`core.machines.authorization_grant`).

        The code's record is the grant's persisted progress in `code_issued`: it is read without
        spending it (`peek_code`), the machine judges the redemption against it (the code, its
        deadline, the client, `redirect_uri`, `resource`, PKCE S256), and only an `IssueTokens`
        redeems it, atomically (`redeem_code`: of two racing requests one wins, the other is a
        replay). A refused redemption changes nothing: a stolen code without its verifier, or
        presented by another client, cannot spend it. A code already redeemed is a replay: the
        machine's `RevokeFamily`, which the store's `redeem_code` performs in the same step.
        """
        code = form.get("code")
        if code is None:
            raise OAuthError(INVALID_REQUEST, "code is required")
        redirect_uri = form.get("redirect_uri")
        registered = client.metadata.redirect_uris
        if redirect_uri is None and len(registered) != 1:
            # RFC 6749 4.1.3 / OAuth 2.1 4.1.3: required when it was in the authorization
            # request, which it must have been for a client with several redirect URIs. A client
            # with one may leave it out of both (the one registered is the only place a code
            # can have gone); the code's record says which.
            raise OAuthError(INVALID_REQUEST, "redirect_uri is required")
        now = self.clock.wall()
        code_hash = _hash(code)
        peeked = await self.grants.peek_code(code_hash, now)
        if isinstance(peeked, CodeOutcome):
            if peeked.status is CodeStatus.REPLAYED:
                # Spend it again: the store revokes the family in the same step (RFC 6749 4.1.2).
                await self.grants.redeem_code(code_hash, now)
                raise OAuthError(INVALID_GRANT, "the authorization code was already used")
            if peeked.status is CodeStatus.EXPIRED:
                raise OAuthError(INVALID_GRANT, "the authorization code expired")
            raise OAuthError(INVALID_GRANT, "unknown authorization code")
        grant = AuthorizationGrant(
            self._grant_limits,
            progress=GrantProgress(
                state=AuthorizationGrantState.CODE_ISSUED,
                client_id=peeked.client_id,
                redirect_uri=peeked.redirect_uri,
                code_challenge=peeked.code_challenge,
                resource=peeked.resource,
                scope=peeked.scope or None,
                request_expires_at=peeked.issued_at,
                subject=peeked.subject,
                code_id=code_hash,
                family_id=peeked.family_id,
                # The store counts `now <= expires_at`, the machine `at < deadline`: the
                # machine, deciding first, is the stricter by an instant.
                code_expires_at=peeked.expires_at,
            ),
        )
        decided = grant.handle(
            CodeRedeemed(
                code_id=code_hash,
                client_id=client.client_id,
                redirect_uri=redirect_uri if redirect_uri is not None else peeked.redirect_uri,
                # RFC 8707 2.2: a token request without `resource` asks for the grant's own.
                resource=form.get("resource", peeked.resource),
                verifier=form.get("code_verifier"),
                at=now,
            )
        )
        for effect in decided:
            if isinstance(effect, RejectRequest):
                raise OAuthError(effect.error, effect.description)
        issue = next(effect for effect in decided if isinstance(effect, IssueTokens))
        redeemed = await self.grants.redeem_code(code_hash, now)
        if isinstance(redeemed, CodeOutcome):
            # Another request redeemed it first: this one is the replay, and the store revoked
            # the family (the machine's answer to a second `CodeRedeemed` in `redeemed`).
            raise OAuthError(INVALID_GRANT, "the authorization code was already used")
        record = redeemed
        assert record.family_id == issue.family_id
        refresh = None
        if "refresh_token" in client.metadata.grant_types:
            refresh = f"{record.family_id}.{self._random(32)}"
            try:
                await self.grants.create_family(
                    record.family_id,
                    subject=record.subject,
                    client_id=record.client_id,
                    resource=record.resource,
                    scope=record.scope,
                    first_token_hash=_hash(refresh),
                    now=now,
                )
            except GrantConflict:
                # A replay revoked the family between redeem and create.
                raise OAuthError(INVALID_GRANT, "the grant was revoked") from None
        elif await self.grants.is_revoked(record.family_id):
            raise OAuthError(INVALID_GRANT, "the grant was revoked")
        return self._token_response(
            subject=record.subject,
            client_id=client.client_id,
            resource=record.resource,
            scope=record.scope,
            refresh_token=refresh,
            now=now,
            family_id=record.family_id,
        )

    async def _refresh_grant(self, client: _Client, form: Mapping[str, str]) -> HttpResponse:
        presented = form.get("refresh_token")
        if presented is None:
            raise OAuthError(INVALID_REQUEST, "refresh_token is required")
        family_id, dot, _ = presented.partition(".")
        family = await self.grants.family(family_id) if dot and len(presented) < 512 else None
        if family is None or family.client_id != client.client_id:
            # Another client's token is refused without touching the family.
            raise OAuthError(INVALID_GRANT, "the refresh token is invalid")
        now = self.clock.wall()
        if not family.revoked and now > family.rotated_at + self.refresh_ttl:
            await self.grants.revoke_family(family_id, "refresh_expired")
            raise OAuthError(INVALID_GRANT, "the refresh token expired")
        scope = family.scope
        if "scope" in form:
            requested = _check_scope(form["scope"])
            if not set(requested.split(" ")) <= set(family.scope.split(" ")):
                raise OAuthError(INVALID_SCOPE, "scope exceeds the original grant")
            scope = requested
        resource = form.get("resource")
        if resource is not None and resource != family.resource:
            raise OAuthError(INVALID_TARGET, "resource does not match the grant")
        fresh = f"{family_id}.{self._random(32)}"
        outcome = await self.grants.rotate_refresh(_hash(presented), _hash(fresh), now)
        if outcome.status is not RefreshStatus.ROTATED or outcome.family is None:
            # REUSED: the store revoked the family in the same step (RFC 9700 4.14.2).
            raise OAuthError(INVALID_GRANT, "the refresh token is invalid")
        return self._token_response(
            subject=outcome.family.subject,
            client_id=client.client_id,
            resource=outcome.family.resource,
            scope=scope,
            refresh_token=fresh,
            now=now,
            family_id=family_id,
        )

    async def _client_credentials(self, client: _Client, form: Mapping[str, str]) -> HttpResponse:
        if client.metadata.is_public:
            raise OAuthError(UNAUTHORIZED_CLIENT, "client_credentials needs a confidential client")
        resource = self._allowed_resource(form.get("resource"))
        scope = self._allowed_scope(client, form.get("scope"))
        return self._token_response(
            subject=client.client_id,
            client_id=client.client_id,
            resource=resource,
            scope=scope,
            refresh_token=None,
            now=self.clock.wall(),
        )

    def _token_response(
        self,
        *,
        subject: str,
        client_id: str,
        resource: str,
        scope: str,
        refresh_token: str | None,
        now: float,
        family_id: str | None = None,
    ) -> HttpResponse:
        issued_at = int(now)
        expires_in = int(self.access_ttl)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": resource,
            "client_id": client_id,
            "iat": issued_at,
            "exp": issued_at + expires_in,
            # `<family>.<random>` for tokens of a grant: a resource server holding the
            # `GrantStore` refuses every access token of a revoked family (see KeySetVerifier).
            "jti": self._random(16) if family_id is None else f"{family_id}.{self._random(16)}",
        }
        if scope:
            claims["scope"] = scope
        try:
            access = self.keys.sign(claims, headers={"typ": ACCESS_TOKEN_TYP})
        except TokenSigningError:
            raise OAuthError(SERVER_ERROR, "the access token could not be signed") from None
        payload: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }
        if refresh_token is not None:
            payload["refresh_token"] = refresh_token
        if scope:
            payload["scope"] = scope
        return _json(payload)

    # ---- revocation (RFC 7009) -----------------------------------------------------------

    async def revoke(self, form: Mapping[str, str], headers: Mapping[str, str]) -> HttpResponse:
        """RFC 7009 2: the client revokes one of its tokens; 200 for anything unknown."""
        try:
            client = await self._authenticate_client(form, headers, "revoke")
            token = form.get("token")
            if token is None:
                raise OAuthError(INVALID_REQUEST, "token is required")
        except OAuthError as error:
            return _oauth_error(error, basic_tried="authorization" in headers)
        # RFC 7009 2.1: `token_type_hint` only orders the search, and a token not found under
        # the hinted type is looked for under the others. The two kinds cannot be mistaken for
        # each other (a refresh token is `<family>.<random>` and matches only the family's live
        # hash; an access token is a JWT this server signed), so both are always tried.
        family_id, dot, _ = token.partition(".")
        family = await self.grants.family(family_id) if dot and len(token) < 512 else None
        if (
            family is not None
            and family.client_id == client.client_id
            and _same_hash(family.current_token_hash, token)
        ):
            # Only the live token proves possession; an older one is answered 200 unchanged.
            await self.grants.revoke_family(family_id, "revoked")
            return HttpResponse(status=200, headers=NO_STORE_HEADERS)
        claims = self._own_access_token(token)
        if claims is not None and claims.get("client_id") == client.client_id:
            await self.grants.revoke_access(str(claims["jti"]), float(claims["exp"]))
        return HttpResponse(status=200, headers=NO_STORE_HEADERS)

    def _own_access_token(self, token: str) -> dict[str, Any] | None:
        """The claims of an access token this server signed (expiry not checked), or None."""
        if len(token) > 8 * 1024:
            return None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.verification_key(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,  # type: ignore[arg-type]
                algorithms=[key.alg],
                options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
                issuer=self.issuer,
            )
        except jwt.PyJWTError:
            return None
        jti, exp = claims.get("jti"), claims.get("exp")
        if not isinstance(jti, str) or isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        return claims
