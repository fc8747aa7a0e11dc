"""The OAuth client service: drives the code-exchange machine against ports.

Issue 5 ("OAuth code exchange, client side"): the machine (`core/machines/oauth_exchange.py`,
whose docstring is the specification this service follows) decides; this service performs
its effects and reports each outcome back as the next event. Specifications: MCP 2025-11-25
"Authorization"; RFC 9728 (protected resource metadata); RFC 8414 and OpenID Connect Discovery
(authorization server metadata); RFC 7591 (dynamic registration); RFC 7636 (PKCE); RFC 6749
§2.3.1, §4.1, §4.4, §6 (client authentication, code, client_credentials and refresh grants);
RFC 7523 §2.2 (`private_key_jwt`); RFC 6750 §3 (Bearer challenges); RFC 8707 (`resource`).

Theory of operation. One `OAuthClient` serves one MCP server (`OAuthClientConfig.server_url`)
and keeps one `OAuthExchange`. The HTTP client transport calls it at three points
(`RequestAuthorizer`, the protocol it implements):

- `authorization()` before each request: the `Authorization` header to send (none before the
  first 401). An access token that has expired on the wall clock is refreshed first
  (`AccessTokenExpired`: a refresh, a new client_credentials token, or a new authorization).
  On first use a grant saved in `TokenStorage` for this server is restored (the machine's
  data in `authorized`), so a restart needs no browser.
- `unauthorized(www_authenticate, sent)` on a 401: the Bearer challenge becomes `Unauthorized`
  and the machine runs discovery, identity, authorization and exchange to `authorized`
  (True: retry the request) or `failed` (False: the request fails with the reason). A 401 to a
  request sent with an older token than the current one only retries: another task already
  re-authorized.
- `forbidden(www_authenticate, sent)` on a 403: `error="insufficient_scope"` becomes
  `InsufficientScope` (step-up for the union of scopes; the machine bounds the attempts and
  answers `AbandonRequest` past them: False).

`run` performs effects in order, one flow at a time (a lock): fetches go through the
`HttpRequester` port under its SSRF policy. Discovery GETs (which carry nothing secret) follow
redirects; every POST (registration, token requests) is sent with `follow_redirects=False`
and any 3xx answer fails the effect: a redirected POST would resend the code, the PKCE
verifier, the refresh token or the client secret to wherever the `Location` points (the
hazard RFC 9700 §4.12 describes for a 307 that replays a POST; RFC 6749 §3.2 names one token
endpoint, not a chain of them). `Register` POSTs the client metadata as JSON and
keeps any client secret by issuer; `PrepareAuthorization` draws a 32-byte PKCE verifier and
`state` from the `Random` port; `OpenAuthorization` hands the URL to the `RedirectReceiver`;
token requests are form POSTs authenticated as the effect's `auth_method` says
(`client_secret_basic`: the form-urlencoded id and secret in a Basic header, RFC 6749
§2.3.1; `client_secret_post`: both in the body; `private_key_jwt`: a signed assertion from the
`ClientAssertionSigner` port, audience the issuer and the token endpoint, RFC 7523 §3;
`none`: the client id only). `StoreTokens` saves the machine's data to `TokenStorage`;
`DiscardTokens` deletes it. A failed effect is reported with `OAuthExchange.failed`, so the
machine never believes an I/O outcome that did not happen.

Secrets (tokens, client secrets, codes, verifiers) never reach a log line or an exception
message. Times are wall-clock seconds (`Clock.wall`), so a stored expiry survives a restart.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, Protocol
from urllib.parse import quote, urlencode

import anyio
import attrs

from mcp_core.core.http.sealed import b64url
from mcp_core.ports.http_client import (
    HttpRequester,
    HttpResult,
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
)
from mcp_core.ports.oauth_client import (
    AuthorizationAbandonedError,
    ClientAssertionSigner,
    RedirectReceiver,
    StoredGrant,
    TokenStorage,
)
from mcp_core.ports.system import Clock, Random

from ..machines.oauth_exchange import (
    AbandonRequest,
    AccessTokenExpired,
    AuthorizationAbandoned,
    AuthorizationPrepared,
    ClientFacts,
    DiscardTokens,
    ExchangeCode,
    Fail,
    FetchResourceMetadata,
    FetchServerMetadata,
    InsufficientScope,
    LocalProtocolError,
    OAuthClientConfig,
    OAuthExchange,
    OAuthExchangeState,
    OAuthProgress,
    OpenAuthorization,
    PrepareAuthorization,
    RedirectReceived,
    Refresh,
    Register,
    Registered,
    RequestToken,
    ResourceMetadataFetched,
    ServerFacts,
    ServerMetadataFetched,
    SignedOut,
    StoreTokens,
    Tokens,
    TokensReceived,
    Unauthorized,
)
from ..oauth.challenges import ChallengeParseError, bearer_challenge, parse_www_authenticate

__all__ = [
    "JWT_BEARER_ASSERTION",
    "OAuthClient",
    "OAuthFlowError",
    "RequestAuthorizer",
    "progress_from_json",
    "progress_to_json",
]

log = logging.getLogger("mcp_core.client.oauth")

JWT_BEARER_ASSERTION: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME: Final = 300.0  # seconds a private_key_jwt assertion is valid
EXPIRY_SKEW: Final = 30.0  # refresh this many seconds before the access token expires
_FORM: Final = "application/x-www-form-urlencoded"
_RESTING: Final = frozenset(
    {OAuthExchangeState.IDLE, OAuthExchangeState.AUTHORIZED, OAuthExchangeState.FAILED}
)
_JSON: Final = "application/json"


class OAuthFlowError(Exception):
    """The authorization failed; `reason` says why (shown to the user, holds no secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RequestAuthorizer(Protocol):
    """What the HTTP client transport asks of an authorization provider.

    `authorization()` is the `Authorization` header value to send now (None: none). After a
    401 or a 403, `unauthorized` / `forbidden` get the `WWW-Authenticate` value (None if
    absent) and the header value the refused request carried; True means "send it again with
    a fresh `authorization()`", False means the request fails (`failure` says why).
    """

    async def authorization(self) -> str | None: ...

    async def unauthorized(self, www_authenticate: str | None, sent: str | None) -> bool: ...

    async def forbidden(self, www_authenticate: str | None, sent: str | None) -> bool: ...

    @property
    def failure(self) -> str | None: ...


# ---- persisting the machine's data ---------------------------------------------------------


def _tuple_or_none(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def progress_to_json(progress: OAuthProgress) -> dict[str, Any]:
    """The machine's data as JSON (tokens included: store it encrypted)."""

    def convert(_inst: Any, _field: Any, value: Any) -> Any:
        if isinstance(value, OAuthExchangeState):
            return value.value
        return value

    return attrs.asdict(progress, value_serializer=convert)  # tuples become lists


def progress_from_json(data: Mapping[str, Any]) -> OAuthProgress:
    """What `progress_to_json` wrote; ValueError (or TypeError) when it is not that."""
    server = data.get("server")
    client = data.get("client")
    tokens = data.get("tokens")
    return OAuthProgress(
        state=OAuthExchangeState(data["state"]),
        candidates=tuple(data.get("candidates") or ()),
        position=int(data.get("position") or 0),
        legacy=bool(data.get("legacy")),
        resource=data.get("resource"),
        expected_issuer=data.get("expected_issuer"),
        scopes=_tuple_or_none(data.get("scopes")),
        server=None
        if server is None
        else ServerFacts(
            **{
                **server,
                "token_endpoint_auth_methods_supported": _tuple_or_none(
                    server.get("token_endpoint_auth_methods_supported")
                ),
            }
        ),
        client=None if client is None else ClientFacts(**client),
        tokens=None
        if tokens is None
        else Tokens(**{**tokens, "scopes": _tuple_or_none(tokens.get("scopes"))}),
        refresh_after_unauthorized=bool(data.get("refresh_after_unauthorized")),
        step_ups=int(data.get("step_ups") or 0),
        failure=data.get("failure"),
    )


# ---- the service ---------------------------------------------------------------------------


class _EffectFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _json_body(result: HttpResult) -> dict[str, Any]:
    try:
        document = json.loads(result.body)
    except ValueError:
        raise _EffectFailed(f"HTTP {result.status}: the body is not JSON") from None
    if not isinstance(document, dict):
        raise _EffectFailed(f"HTTP {result.status}: the body is not a JSON object")
    return document


def _oauth_error(result: HttpResult) -> str:
    """The RFC 6749 §5.2 `error` code of a failed token or registration answer, else the status."""
    try:
        document = json.loads(result.body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return f"{document['error']} (HTTP {result.status})"
    return f"HTTP {result.status}"


class OAuthClient:
    """One client's authorization with one MCP server; see the module docstring.

    - `config`: the machine's configuration (server URL, grant, redirect URI, client ID
      metadata document URL, pre-registered clients). For `authorization_code` its
      `redirect_uri` must be the receiver's.
    - `http`: the `HttpRequester` every OAuth request goes through, under `policy` (the
      adapter's own when None).
    - `receiver`: the `RedirectReceiver` (needed for `authorization_code`).
    - `storage`: where grants live between runs (None: nowhere; in memory only).
    - `client_secret`: the secret of the pre-registered client; `signer`: its key, for
      `private_key_jwt`.
    """

    def __init__(
        self,
        config: OAuthClientConfig,
        *,
        http: HttpRequester,
        clock: Clock,
        random: Random,
        receiver: RedirectReceiver | None = None,
        storage: TokenStorage | None = None,
        client_secret: str | None = None,
        signer: ClientAssertionSigner | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        if config.grant == "authorization_code":
            if receiver is None:
                raise ValueError("the authorization_code grant needs a redirect receiver")
            if receiver.redirect_uri != config.redirect_uri:
                raise ValueError("config.redirect_uri must be the receiver's redirect_uri")
        self._config = config
        self._exchange = OAuthExchange(config)
        self._http = http
        self._clock = clock
        self._random = random
        self._receiver = receiver
        self._storage = storage
        self._preregistered_secret = client_secret
        self._signer = signer
        self._policy = policy
        self._secrets: dict[str, str] = {}  # issuer -> client secret from registration
        self._lock = anyio.Lock()
        self._restored = storage is None
        self._failure: str | None = None
        self.authorizations = 0  # authorization requests opened (for tests and diagnostics)

    def __repr__(self) -> str:
        return f"<OAuthClient {self._config.server_url} {self.state.value}>"

    # ---- reading ----

    @property
    def state(self) -> OAuthExchangeState:
        return self._exchange.state

    @property
    def exchange(self) -> OAuthExchange:
        return self._exchange

    @property
    def access_token(self) -> str | None:
        return self._exchange.access_token

    @property
    def failure(self) -> str | None:
        """Why the last flow failed or its request was abandoned; None after a success."""
        return self._failure

    # ---- the RequestAuthorizer protocol ----

    async def authorization(self) -> str | None:
        async with self._lock:
            await self._restore()
            expires_at = self._exchange.expires_at
            if (
                self.state is OAuthExchangeState.AUTHORIZED
                and expires_at is not None
                and self._clock.wall() >= expires_at - EXPIRY_SKEW
            ):
                await self._run(self._exchange.handle(AccessTokenExpired()))
            token = self._exchange.access_token
        return None if token is None else f"Bearer {token}"

    async def unauthorized(self, www_authenticate: str | None, sent: str | None) -> bool:
        return await self._unauthorized(www_authenticate, sent, force=False)

    async def _unauthorized(
        self, www_authenticate: str | None, sent: str | None, *, force: bool
    ) -> bool:
        async with self._lock:
            await self._restore()
            if not force and self._fresher_than(sent):
                return True
            challenge = _challenge_params(www_authenticate)
            await self._run(self._exchange.handle(Unauthorized.from_challenge(challenge)))
            return self._exchange.access_token is not None and self._failure is None

    async def forbidden(self, www_authenticate: str | None, sent: str | None) -> bool:
        async with self._lock:
            challenge = _challenge_params(www_authenticate)
            if challenge.get("error") != "insufficient_scope":
                self._failure = "the server refused the request (403)"
                return False
            if self._fresher_than(sent):
                return True
            if self.state is not OAuthExchangeState.AUTHORIZED:
                self._failure = "403 insufficient_scope without an authorization to step up"
                return False
            await self._run(self._exchange.handle(InsufficientScope(scopes=challenge.get("scope"))))
            return self._exchange.access_token is not None and self._failure is None

    async def authorize(self, www_authenticate: str | None = None) -> str:
        """Run the flow now, as a 401 with this challenge would; the access token. Raises
        `OAuthFlowError` with the reason when it fails."""
        if not await self._unauthorized(www_authenticate, None, force=True):
            raise OAuthFlowError(self._failure or "the authorization did not complete")
        token = self._exchange.access_token
        assert token is not None
        return token

    async def sign_out(self) -> None:
        """Forget the grant here and in the storage."""
        async with self._lock:
            issuer, resource = self._exchange.issuer, self._exchange.resource
            if self.state is not OAuthExchangeState.IDLE:
                self._exchange.handle(SignedOut())
            if self._storage is not None and issuer is not None and resource is not None:
                await self._storage.delete(issuer, resource)

    # ---- driving the machine ----

    def _fresher_than(self, sent: str | None) -> bool:
        """A token newer than the one the refused request carried (or it carried none): the
        request only needs sending again."""
        token = self._exchange.access_token
        return token is not None and sent != f"Bearer {token}"

    async def _restore(self) -> None:
        """Adopt the grant stored for this server, once, while the machine is idle."""
        if self._restored:
            return
        self._restored = True
        assert self._storage is not None
        if self.state is not OAuthExchangeState.IDLE:
            return
        try:
            grant = await self._storage.find(self._config.resource)
        except Exception as exc:
            log.warning("could not read stored OAuth grants: %s", type(exc).__name__)
            return
        if grant is None:
            return
        try:
            progress = progress_from_json(grant.progress)
            exchange = OAuthExchange(self._config, progress=progress)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring a stored OAuth grant for %s: %s", grant.issuer, exc)
            return
        if exchange.state is not OAuthExchangeState.AUTHORIZED or exchange.issuer != grant.issuer:
            log.warning("ignoring a stored OAuth grant for %s: not authorized", grant.issuer)
            return
        self._exchange = exchange
        if grant.client_secret is not None:
            self._secrets[grant.issuer] = grant.client_secret
        log.info("using the stored OAuth grant of %s", grant.issuer)

    async def _run(self, effects: list[Any]) -> None:
        """Perform effects in order, feeding each outcome back, until none is left."""
        self._failure = None
        queue: deque[Any] = deque(effects)
        while queue:
            effect = queue.popleft()
            try:
                event = await self._perform(effect)
            except _EffectFailed as exc:
                log.info("OAuth: %s failed: %s", type(effect).__name__, exc.reason)
                queue.extend(self._exchange.failed(effect, exc.reason))
                continue
            if event is None:
                continue
            try:
                queue.extend(self._exchange.handle(event))
            except LocalProtocolError:
                if not isinstance(event, RedirectReceived):
                    raise
                # A redirect whose `state` is not ours (forged, replayed, another flow's) is
                # refused by the machine. No other redirect will come to this receiver.
                log.warning("OAuth: refused a redirect whose state does not match the request")
                queue.extend(
                    self._exchange.handle(
                        AuthorizationAbandoned(
                            reason="the redirect's state did not match the authorization request"
                        )
                    )
                )
        if self.state not in _RESTING:  # a bug, not the server's doing: never stay mid-flow
            self._failure = self._failure or f"the flow stopped in {self.state.value}"
            self._exchange.handle(SignedOut())

    async def _perform(self, effect: Any) -> object | None:
        if isinstance(effect, FetchResourceMetadata):
            document = await self._fetch_document(effect.url)
            try:
                return ResourceMetadataFetched.from_document(url=effect.url, document=document)
            except ValueError as exc:
                raise _EffectFailed(str(exc)) from None
        if isinstance(effect, FetchServerMetadata):
            document = await self._fetch_document(effect.url)
            try:
                return ServerMetadataFetched.from_document(url=effect.url, document=document)
            except ValueError as exc:
                raise _EffectFailed(str(exc)) from None
        if isinstance(effect, Register):
            return await self._register(effect)
        if isinstance(effect, PrepareAuthorization):
            return AuthorizationPrepared(
                code_verifier=b64url(self._random.token(32)),
                state=b64url(self._random.token(32)),
            )
        if isinstance(effect, OpenAuthorization):
            return await self._open(effect)
        if isinstance(effect, (ExchangeCode, RequestToken, Refresh)):
            return await self._token_request(effect)
        if isinstance(effect, StoreTokens):
            await self._store(effect)
            return None
        if isinstance(effect, DiscardTokens):
            await self._discard(effect)
            return None
        if isinstance(effect, AbandonRequest):
            self._failure = effect.reason
            return None
        if isinstance(effect, Fail):
            self._failure = effect.reason
            log.warning("OAuth authorization failed: %s", effect.reason)
            return None
        raise AssertionError(f"unknown effect {type(effect).__name__}")  # pragma: no cover

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        follow_redirects: bool,
    ) -> HttpResult:
        try:
            return await self._http.request(
                method,
                url,
                headers=headers,
                body=body,
                policy=self._policy,
                follow_redirects=follow_redirects,
            )
        except (OutboundRefused, OutboundFailed) as exc:
            raise _EffectFailed(f"{method} {url}: {exc}") from None

    async def _post(self, url: str, *, headers: dict[str, str], body: bytes) -> HttpResult:
        """A credential-bearing POST: never follows a redirect, and a 3xx fails the effect
        (see the module docstring); the `Location` is neither contacted nor reported."""
        result = await self._send("POST", url, headers=headers, body=body, follow_redirects=False)
        if 300 <= result.status < 400:
            raise _EffectFailed(
                f"POST {url} answered with a redirect (HTTP {result.status}); "
                "credentials are never resent to another URL"
            )
        return result

    async def _fetch_document(self, url: str) -> dict[str, Any]:
        result = await self._send("GET", url, headers={"accept": _JSON}, follow_redirects=True)
        if result.status != 200:
            raise _EffectFailed(f"HTTP {result.status}")
        return _json_body(result)

    async def _register(self, effect: Register) -> Registered:
        body = json.dumps(effect.document()).encode()
        result = await self._post(
            effect.registration_endpoint,
            headers={"content-type": _JSON, "accept": _JSON},
            body=body,
        )
        if result.status not in (200, 201):
            raise _EffectFailed(f"registration refused: {_oauth_error(result)}")
        document = _json_body(result)
        try:
            registered = Registered.from_document(document)
        except ValueError as exc:
            raise _EffectFailed(str(exc)) from None
        secret = document.get("client_secret")
        if isinstance(secret, str) and secret:
            self._secrets[effect.issuer] = secret
        else:
            self._secrets.pop(effect.issuer, None)
        return registered

    async def _open(self, effect: OpenAuthorization) -> RedirectReceived:
        assert self._receiver is not None  # the constructor checked it
        self.authorizations += 1
        try:
            params = await self._receiver.authorize(effect.url)
        except AuthorizationAbandonedError as exc:
            raise _EffectFailed(exc.reason) from None
        try:
            return RedirectReceived.from_query(params)
        except ValueError as exc:
            raise _EffectFailed(f"a malformed redirect: {exc}") from None

    def _secret_for(self, issuer: str, client_id: str) -> str | None:
        client = self._exchange.progress.client
        if client is not None and client.kind == "preregistered" and client.client_id == client_id:
            return self._preregistered_secret
        return self._secrets.get(issuer, self._preregistered_secret)

    def _authenticate(
        self, effect: ExchangeCode | RequestToken | Refresh, form: dict[str, str]
    ) -> dict[str, str]:
        """Client authentication (RFC 6749 §2.3.1, RFC 7523 §2.2): headers to add; may add to
        `form`."""
        method = effect.auth_method
        if method in ("client_secret_basic", "client_secret_post"):
            secret = self._secret_for(effect.issuer, effect.client_id)
            if secret is None:
                raise _EffectFailed(f"{method} needs a client secret, and none is configured")
            if method == "client_secret_post":
                form["client_id"] = effect.client_id
                form["client_secret"] = secret
                return {}
            # RFC 6749 §2.3.1: both form-urlencoded before the Basic encoding.
            pair = f"{quote(effect.client_id, safe='')}:{quote(secret, safe='')}"
            return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
        if method == "private_key_jwt":
            if self._signer is None:
                raise _EffectFailed("private_key_jwt needs a signing key, and none is configured")
            now = int(self._clock.wall())
            form["client_id"] = effect.client_id
            form["client_assertion_type"] = JWT_BEARER_ASSERTION
            form["client_assertion"] = self._signer.sign(
                {
                    "iss": effect.client_id,
                    "sub": effect.client_id,
                    "aud": effect.issuer,
                    "jti": b64url(self._random.token(16)),
                    "iat": now,
                    "exp": now + int(ASSERTION_LIFETIME),
                }
            )
            return {}
        return {}

    async def _token_request(self, effect: ExchangeCode | RequestToken | Refresh) -> object:
        form = effect.form()
        headers = {"content-type": _FORM, "accept": _JSON, **self._authenticate(effect, form)}
        result = await self._post(
            effect.token_endpoint, headers=headers, body=urlencode(form).encode()
        )
        if result.status != 200:
            raise _EffectFailed(_oauth_error(result))
        try:
            return TokensReceived.from_document(_json_body(result), at=self._clock.wall())
        except ValueError as exc:
            raise _EffectFailed(str(exc)) from None

    async def _store(self, effect: StoreTokens) -> None:
        if self._storage is None:
            return
        issuer = effect.tokens.issuer
        # Keyed by the server this client talks to (what `find` looks up at start-up); the
        # progress holds the RFC 8707 resource, which may be a parent of it.
        grant = StoredGrant(
            issuer=issuer,
            resource=self._config.resource,
            progress=progress_to_json(self._exchange.progress),
            client_secret=self._secrets.get(issuer),
        )
        try:
            await self._storage.save(grant)
        except Exception as exc:
            raise _EffectFailed(f"the token storage refused: {type(exc).__name__}") from exc

    async def _discard(self, effect: DiscardTokens) -> None:
        if self._storage is None:
            return
        try:
            await self._storage.delete(effect.issuer, self._config.resource)
        except Exception as exc:  # nothing waits on a discard; the tokens are dropped anyway
            log.warning("could not delete stored tokens of %s: %s", effect.issuer, exc)


def _challenge_params(www_authenticate: str | None) -> dict[str, str]:
    """The Bearer challenge's parameters (lenient: an unparsable header is no challenge)."""
    if not www_authenticate:
        return {}
    try:
        challenge = bearer_challenge(parse_www_authenticate(www_authenticate))
    except (ChallengeParseError, ValueError):
        return {}
    if challenge is None:
        return {}
    params: dict[str, str] = {}
    if challenge.resource_metadata is not None:
        params["resource_metadata"] = challenge.resource_metadata
    if challenge.scope:
        params["scope"] = " ".join(challenge.scope)
    if challenge.error is not None:
        params["error"] = challenge.error
    return params
