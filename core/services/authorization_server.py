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

Relation to the grant machine (`core.machines.authorization_grant`). The machine drives one grant
whose progress is persisted with compare-and-set; the storage ports of this first version do not
persist machine progress, so this service enforces the same rules directly on the `GrantStore`'s
atomic operations (`redeem_code`, `rotate_refresh`). One difference: the port redeems a code before
its bindings (client, redirect URI, verifier) can be checked, so a failed binding spends the code
and revokes its family rather than leaving it redeemable. A stolen code is useless without the
PKCE verifier anyway; burning it is the conservative side.

Refresh tokens are `<family id>.<random>`: the family id lets the service check the client and
the idle lifetime before rotating, so a stolen refresh token presented by another client is
refused without advancing the family. Only the hash of the whole token is stored.

Not in this version: private_key_jwt client authentication, client ID metadata documents, and
a per-family deny-list for access tokens (a replayed code or a reused refresh token revokes the
refresh family; its access tokens stay valid until they expire, `access_ttl`, unless revoked one
by one through RFC 7009).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import attrs
import jwt

from mcp_core.core.http.messages import HttpResponse
from mcp_core.core.oauth.errors import (
    ACCESS_DENIED,
    INVALID_CLIENT,
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
from mcp_core.core.oauth.pkce import check_code_challenge, verify_code_verifier
from mcp_core.core.oauth.redirects import select_redirect_uri
from mcp_core.core.oauth.registration import (
    ClientMetadata,
    check_client_metadata,
    parse_registration_request,
    registration_response,
)
from mcp_core.ports.keys import ACCESS_TOKEN_TYP, KeySet, TokenSigningError
from mcp_core.ports.oauth_stores import (
    ClientStore,
    CodeOutcome,
    CodeRecord,
    CodeStatus,
    GrantConflict,
    GrantStore,
    RefreshStatus,
    RegisteredClient,
)
from mcp_core.ports.system import Clock, Random

__all__ = [
    "MAX_CODE_TTL",
    "AuthorizationServer",
    "ConsentCallback",
    "ConsentRequest",
    "LocalUserAuthenticator",
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
_PENDING_LIMIT: Final = 1_000


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


# A callback answers "approve", "deny" or "ask" (show the consent page).
ConsentCallback = Callable[[ConsentRequest], Awaitable[Literal["approve", "deny", "ask"]]]


@attrs.frozen(kw_only=True)
class StaticClient:
    """A client from configuration: RFC 7591 metadata (checked like a registration) and, for a
    confidential client, its secret."""

    client_id: str
    metadata: Mapping[str, Any]
    secret: str | None = None


@attrs.frozen(kw_only=True)
class _Client:
    client_id: str
    metadata: ClientMetadata
    secret_hash: str | None


@attrs.frozen(kw_only=True)
class _Pending:
    subject: str
    client_id: str
    redirect_uri: str
    state: str | None
    scope: str
    resource: str
    code_challenge: str
    expires_at: float


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
    ) -> None:
        if not 0 < code_ttl <= MAX_CODE_TTL:
            raise ValueError(f"code_ttl is above 0 and at most {MAX_CODE_TTL:g} seconds")
        if access_ttl <= 0 or refresh_ttl <= 0 or consent_ttl <= 0:
            raise ValueError("lifetimes must be positive")
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
            ),
            client_id_metadata_document_supported=False,
        )
        self.clients = clients
        self.grants = grants
        self.keys = keys
        self.clock = clock
        self.random = random
        self.consent = consent
        self.resources = frozenset(resources) if resources is not None else None
        self.code_ttl = code_ttl
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.consent_ttl = consent_ttl
        self.allow_registration = allow_registration
        self._static: dict[str, _Client] = {}
        for static in static_clients:
            metadata = check_client_metadata(static.metadata)
            if metadata.is_public != (static.secret is None):
                raise ValueError(f"static client {static.client_id!r}: secret and auth method")
            secret_hash = None if static.secret is None else _hash(static.secret)
            self._static[static.client_id] = _Client(
                client_id=static.client_id, metadata=metadata, secret_hash=secret_hash
            )
        # Consent tickets waiting for the user's answer. In memory: a consent page is answered
        # by the node that showed it (a multi-node deployment needs sticky consent or auto).
        self._pending: dict[str, _Pending] = {}

    # ---- helpers ------------------------------------------------------------------------

    def _random(self, nbytes: int = 32) -> str:
        return base64.urlsafe_b64encode(self.random.token(nbytes)).rstrip(b"=").decode("ascii")

    async def _client(self, client_id: str | None) -> _Client | None:
        if client_id is None or len(client_id) > 255:
            return None
        if client_id in self._static:
            return self._static[client_id]
        stored = await self.clients.get(client_id)
        if stored is None:
            return None
        try:
            metadata = check_client_metadata(stored.metadata)
        except OAuthError:
            return None
        return _Client(client_id=client_id, metadata=metadata, secret_hash=stored.secret_hash)

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
        if metadata.token_endpoint_auth_method == "private_key_jwt":
            return _oauth_error(
                OAuthError("invalid_client_metadata", "private_key_jwt is not supported yet")
            )
        client_id = self._random(16)
        secret = None if metadata.is_public else self._random(32)
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
        client = await self._client(query.get("client_id"))
        if client is None:
            return _error_page(400, "Unknown client", "The client_id is missing or unknown.")
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
        )
        answer = await self.consent(request)
        if answer == "approve":
            return await self._approve(pending)
        if answer == "deny":
            return fail(OAuthError(ACCESS_DENIED, "the user denied the request"))
        return self._consent_page(pending, request)

    def _consent_page(self, pending: _Pending, request: ConsentRequest) -> HttpResponse:
        now = self.clock.wall()
        for ticket in [t for t, p in self._pending.items() if p.expires_at < now]:
            del self._pending[ticket]
        if len(self._pending) >= _PENDING_LIMIT:
            return _error_page(503, "Busy", "Too many pending consent requests; try again.")
        ticket = self._random(32)
        self._pending[ticket] = pending
        name = request.client_name or request.client_id
        action = html.escape(urlsplit(self.endpoints["authorize"]).path or "/authorize")
        body = (
            "<!doctype html><html><head><meta charset=utf-8><title>Authorize</title></head><body>"
            f"<h1>Allow {html.escape(name)}?</h1>"
            f"<p>Access to {html.escape(request.resource)}"
            f"{' with scope ' + html.escape(request.scope) if request.scope else ''}.</p>"
            f'<form method=post action="{action}">'
            f'<input type=hidden name=consent_ticket value="{html.escape(ticket)}">'
            "<button name=decision value=approve>Allow</button> "
            "<button name=decision value=deny>Deny</button></form></body></html>"
        )
        return HttpResponse(status=200, headers=_HTML_HEADERS, body=body.encode())

    async def decide(self, form: Mapping[str, str], subject: str | None) -> HttpResponse:
        """The consent page's answer (POST /authorize): the one-time ticket and a decision."""
        ticket = form.get("consent_ticket", "")
        pending = self._pending.pop(ticket, None)
        if pending is None or subject is None or pending.subject != subject:
            return _error_page(400, "Expired request", "This consent request is not valid.")
        if pending.expires_at < self.clock.wall():
            return _error_page(400, "Expired request", "This consent request has expired.")
        if form.get("decision") != "approve":
            params = {"error": ACCESS_DENIED, "iss": self.issuer}
            if pending.state is not None:
                params["state"] = pending.state
            return _redirect(pending.redirect_uri, params)
        return await self._approve(pending)

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
        self, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> _Client:
        """RFC 6749 2.3: none, client_secret_basic or client_secret_post, as registered."""
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
        client = await self._client(client_id)
        if client is None:
            raise OAuthError(INVALID_CLIENT, "unknown client")
        method = client.metadata.token_endpoint_auth_method
        if method == "none":
            if basic_id is not None or "client_secret" in form:
                raise OAuthError(INVALID_CLIENT, "a public client has no secret")
            return client
        if method == "client_secret_basic":
            given = basic_secret
        elif method == "client_secret_post":
            given = None if basic_id is not None else form.get("client_secret")
        else:
            raise OAuthError(INVALID_CLIENT, "the client's authentication method is unsupported")
        if given is None or not _same_hash(client.secret_hash, given):
            raise OAuthError(INVALID_CLIENT, "client authentication failed")
        return client

    async def token(self, form: Mapping[str, str], headers: Mapping[str, str]) -> HttpResponse:
        """RFC 6749 3.2: every grant; errors are RFC 6749 5.2 bodies, always `no-store`."""
        try:
            client = await self._authenticate_client(form, headers)
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
        code = form.get("code")
        if code is None:
            raise OAuthError(INVALID_REQUEST, "code is required")
        if form.get("redirect_uri") is None:
            raise OAuthError(INVALID_REQUEST, "redirect_uri is required")
        now = self.clock.wall()
        redeemed = await self.grants.redeem_code(_hash(code), now)
        if isinstance(redeemed, CodeOutcome):
            if redeemed.status is CodeStatus.REPLAYED:
                # The store revoked the family in the same step (RFC 6749 4.1.2).
                raise OAuthError(INVALID_GRANT, "the code was already used")
            raise OAuthError(INVALID_GRANT, "the code is invalid or expired")
        record = redeemed
        try:
            if record.client_id != client.client_id:
                raise OAuthError(INVALID_GRANT, "the code was issued to another client")
            if form["redirect_uri"] != record.redirect_uri:
                raise OAuthError(INVALID_GRANT, "redirect_uri does not match the request")
            resource = form.get("resource")
            if resource is not None and resource != record.resource:
                raise OAuthError(INVALID_TARGET, "resource does not match the request")
            verify_code_verifier(form.get("code_verifier"), record.code_challenge)
        except OAuthError:
            # The code is spent; make sure nothing can ever be issued from it.
            await self.grants.revoke_family(record.family_id, "redemption_refused")
            raise
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
            "jti": self._random(16),
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
            client = await self._authenticate_client(form, headers)
            token = form.get("token")
            if token is None:
                raise OAuthError(INVALID_REQUEST, "token is required")
        except OAuthError as error:
            return _oauth_error(error, basic_tried="authorization" in headers)
        hint = form.get("token_type_hint")
        if hint != "access_token":
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
