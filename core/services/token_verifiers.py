"""Token verification for the resource server: the parts that need no cryptography.

Three `TokenVerifier`s exist (issue 4, "Resource server"): our own tokens (`KeySetVerifier`),
an external identity provider's JWTs through its JWKS (`JwksVerifier`), and opaque tokens
through RFC 7662 introspection (`IntrospectionVerifier`, here). The first two check signatures
with pyjwt and live in `mcp_core.adapters.token_verifiers`; this module holds what they share
and what needs only ports:

- `check_jwt_claims`: the claim rules for a signature-checked JWT (required claims, `iss`
  exact, `aud` contains the resource, `exp`/`nbf`/`iat` against the wall clock with a leeway
  of at most 60 s, `sub` a non-empty string), raising `TokenInvalid` with a short reason.
- `JwksCache`: an async cache of one JWK Set, fetched through the `HttpClient` port.
  Theory of operation:
  * Fetched lazily, on the first verification, and again once `refresh_interval` has passed.
  * Concurrent callers share one fetch: a caller takes the lock, and a caller that waited on it
    while another fetch finished uses that fetch's outcome instead of starting its own.
  * A failed fetch (refused or failed request, status other than 200, not a JWK Set, no usable
    key) keeps the last good key set in service. `VerifierUnavailable` is raised only when there
    never was a good set.
  * No two fetches start closer than `min_fetch_interval` (the JWKS verifier's
    `unknown_kid_min_interval`): an unknown `kid` triggers a refetch at most that often, so a
    flood of tokens with garbage kids cannot hammer the identity provider, and an outage is
    retried at that pace too.
- `IntrospectionVerifier` (RFC 7662): POSTs the token with client_secret_basic authentication;
  `active` false is invalid; `aud` must contain the resource; `exp` in the past is invalid;
  positive answers are cached for at most `cache_ttl` and never past the token's `exp`
  (negative answers are not cached, so a token activated later is not refused from a cache).

Introspection is a form POST through the `HttpRequester` port (`ports/http_client.py`: the
`HttpClient` with `request`), under the same SSRF policy as every other outbound call; redirects
are not followed (an introspection endpoint that redirects is misconfigured, and following it
would send the client credentials elsewhere).

Spec: RFC 7662 (introspection), RFC 7517 (JWK Set), RFC 9068 section 4 (validation), RFC 8707
(audience is the resource), RFC 8725 (JWT best practices); MCP 2025-11-25 "Authorization" >
"Token Handling".
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar
from urllib.parse import quote, urlencode

import anyio
import attrs

from mcp_core.ports.http_client import (
    HttpClient,
    HttpRequester,
    HttpResult,
    OutboundFailed,
    OutboundRefused,
)
from mcp_core.ports.system import Clock

if TYPE_CHECKING:
    from jwt.types import Options
from mcp_core.ports.tokens import AccessTokenInfo, TokenInvalid, VerifierUnavailable

__all__ = [
    "JWT_REQUIRED_CLAIMS",
    "MAX_LEEWAY_SECONDS",
    "MAX_TOKEN_BYTES",
    "SIGNATURE_ONLY",
    "IntrospectionVerifier",
    "JwksCache",
    "check_jwt_claims",
    "check_leeway",
    "jwt_scopes",
    "token_info",
]

MAX_LEEWAY_SECONDS: Final = 60.0
MAX_TOKEN_BYTES: Final = 8 * 1024
# Issue 4: the claims every external JWT must carry.
JWT_REQUIRED_CLAIMS: Final = ("iss", "aud", "exp", "sub")
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

K = TypeVar("K")


# pyjwt options that check the signature and nothing else: the claims and times are checked by
# this project's own rules, against the injected clock (never pyjwt's `time.time()`).
SIGNATURE_ONLY: Final[Options] = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def check_leeway(leeway: float) -> float:
    if not (math.isfinite(leeway) and 0 <= leeway <= MAX_LEEWAY_SECONDS):
        raise ValueError(f"leeway is 0 to {MAX_LEEWAY_SECONDS:g} seconds, not {leeway}")
    return float(leeway)


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} is a positive number of seconds, not {value}")
    return float(value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _audiences(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def jwt_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from `scope` (space-separated, RFC 9068 2.2.3) or `scp` (a list, some IdPs)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(item for item in scp if isinstance(item, str) and item)
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()


def check_jwt_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    resource: str,
    now: float,
    leeway: float,
    required: tuple[str, ...] = JWT_REQUIRED_CLAIMS,
) -> None:
    """Raise `TokenInvalid` unless a signature-checked JWT's claims are acceptable at `now`
    (seconds since the epoch)."""
    for name in required:
        if name not in claims or claims[name] is None:
            raise TokenInvalid("missing_claim", f"the token has no {name!r} claim")
    if claims.get("iss") != issuer:
        raise TokenInvalid("wrong_issuer", "the token is not from the expected issuer (iss)")
    audiences = _audiences(claims.get("aud"))
    if audiences is None or resource not in audiences:
        raise TokenInvalid("wrong_audience", "the token is not for this resource (aud)")
    for name in ("exp", "nbf", "iat"):
        if name in claims and _number(claims[name]) is None:
            raise TokenInvalid("bad_claim", f"the {name!r} claim is not a NumericDate")
    if "exp" in claims and now >= float(claims["exp"]) + leeway:
        raise TokenInvalid("expired", "the token has expired")
    if "nbf" in claims and now < float(claims["nbf"]) - leeway:
        raise TokenInvalid("not_yet_valid", "the token is not valid yet (nbf)")
    if "iat" in claims and now < float(claims["iat"]) - leeway:
        raise TokenInvalid("issued_in_future", "the token was issued in the future (iat)")
    sub = claims.get("sub")
    if "sub" in claims and (not isinstance(sub, str) or not sub):
        raise TokenInvalid("bad_claim", "the 'sub' claim is not a non-empty string")


def _client_id(claims: Mapping[str, Any]) -> str:
    # RFC 9068 names it client_id; OpenID Connect IdPs often carry it as azp instead.
    for name in ("client_id", "azp"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def token_info(claims: Mapping[str, Any], *, issuer: str) -> AccessTokenInfo:
    """The `AccessTokenInfo` of claims already checked by `check_jwt_claims`."""
    audiences = _audiences(claims.get("aud")) or ()
    jti = claims.get("jti")
    return AccessTokenInfo(
        subject=str(claims.get("sub", "")),
        client_id=_client_id(claims),
        scopes=jwt_scopes(claims),
        audience=audiences,
        issuer=issuer,
        expires_at=float(claims.get("exp", math.inf)),
        token_id=jti if isinstance(jti, str) else None,
        claims=dict(claims),
    )


# ---- the JWKS cache ---------------------------------------------------------------------------


class JwksCache(Generic[K]):
    """One JWK Set, fetched through `http` and turned into keys by `parse` (kid -> key; keys it
    cannot use are left out). See the module docstring for the rules."""

    def __init__(
        self,
        url: str,
        *,
        http: HttpClient,
        clock: Clock,
        parse: Callable[[Mapping[str, Any]], Mapping[str, K]],
        refresh_interval: float = 3600.0,
        min_fetch_interval: float = 30.0,
    ) -> None:
        self._url = url
        self._http = http
        self._clock = clock
        self._parse = parse
        self._refresh_interval = _positive("refresh_interval", refresh_interval)
        self._min_interval = _positive("unknown_kid_min_interval", min_fetch_interval)
        if self._min_interval > self._refresh_interval:
            raise ValueError("the minimum fetch interval cannot exceed the refresh interval")
        self._keys: Mapping[str, K] | None = None
        self._fetched_at = -math.inf  # when the current good set arrived (clock.now())
        self._attempted_at = -math.inf  # when the last fetch started, good or not
        self._attempts = 0
        self._lock = anyio.Lock()

    @property
    def has_keys(self) -> bool:
        return self._keys is not None

    async def key(self, kid: str) -> K | None:
        """The key named `kid`, or None when the set (refetched if allowed) does not hold it;
        `VerifierUnavailable` when no good set was ever fetched."""
        if self._keys is None or self._clock.now() - self._fetched_at >= self._refresh_interval:
            await self._refresh()
        if self._keys is None:
            raise VerifierUnavailable("the JWKS could not be fetched and none is cached")
        found = self._keys.get(kid)
        if found is None:
            await self._refresh()
            found = self._keys.get(kid)
        return found

    async def _refresh(self) -> None:
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen:
                return  # another caller fetched while this one waited: share its outcome
            if self._clock.now() - self._attempted_at < self._min_interval:
                return  # rate limit: keep serving what is cached
            self._attempts += 1
            self._attempted_at = self._clock.now()
            keys = await self._fetch()
            if keys:
                self._keys = keys
                self._fetched_at = self._clock.now()

    async def _fetch(self) -> Mapping[str, K] | None:
        try:
            result = await self._http.get(self._url, headers={"accept": "application/json"})
        except (OutboundRefused, OutboundFailed):
            return None
        document = _json_object(result)
        if document is None or not isinstance(document.get("keys"), list):
            return None
        return self._parse(document)


def _json_object(result: HttpResult) -> dict[str, Any] | None:
    if result.status != 200:
        return None
    try:
        document = json.loads(result.body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


# ---- RFC 7662 introspection -------------------------------------------------------------------


@attrs.frozen
class _Cached:
    info: AccessTokenInfo
    until: float  # clock.wall()


class IntrospectionVerifier:
    """A `TokenVerifier` for opaque tokens, asking the authorization server (RFC 7662)."""

    def __init__(
        self,
        endpoint: str,
        http: HttpRequester,
        client_id: str,
        client_secret: str,
        resource: str,
        clock: Clock,
        cache_ttl: float = 60.0,
        *,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        cache_entries: int = 10_000,
    ) -> None:
        if not 0 < max_token_bytes <= MAX_TOKEN_BYTES:
            raise ValueError(f"the token size cap is 1 to {MAX_TOKEN_BYTES} bytes")
        if not (math.isfinite(cache_ttl) and cache_ttl >= 0):
            raise ValueError(f"cache_ttl is a non-negative number of seconds, not {cache_ttl}")
        self._endpoint = endpoint
        self._http = http
        # RFC 6749 2.3.1: client_secret_basic form-encodes both parts before base64.
        credentials = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
        self._resource = resource
        self._clock = clock
        self._ttl = float(cache_ttl)
        self._max_bytes = max_token_bytes
        self._cache_entries = cache_entries
        # Keyed by a hash of the token, so the cache holds no bearer token.
        self._cache: dict[bytes, _Cached] = {}

    def __repr__(self) -> str:
        return f"IntrospectionVerifier(endpoint={self._endpoint!r}, resource={self._resource!r})"

    async def verify(self, token: str, *, resource: str) -> AccessTokenInfo:
        if resource != self._resource:
            # The introspection client is registered for one resource; answering for another
            # would let a token for that one through here.
            raise TokenInvalid("wrong_audience", "this verifier serves another resource")
        raw = token.encode("utf-8", "surrogatepass")
        if len(raw) > self._max_bytes:
            raise TokenInvalid("too_large", f"the token is over {self._max_bytes} bytes")
        if not _B64TOKEN.fullmatch(token):
            raise TokenInvalid("malformed", "a bearer token is a b64token (RFC 6750 2.1)")
        now = self._clock.wall()
        key = hashlib.sha256(raw).digest()
        cached = self._cache.get(key)
        if cached is not None:
            if now < cached.until:
                return cached.info
            del self._cache[key]
        info = await self._introspect(token, now)
        until = min(now + self._ttl, info.expires_at)
        if until > now:
            if len(self._cache) >= self._cache_entries:
                self._cache = {k: v for k, v in self._cache.items() if v.until > now}
            if len(self._cache) < self._cache_entries:
                self._cache[key] = _Cached(info=info, until=until)
        return info

    async def _introspect(self, token: str, now: float) -> AccessTokenInfo:
        try:
            result = await self._http.request(
                "POST",
                self._endpoint,
                headers={
                    "authorization": self._authorization,
                    "accept": "application/json",
                    "content-type": "application/x-www-form-urlencoded",
                },
                body=urlencode({"token": token, "token_type_hint": "access_token"}).encode(),
                follow_redirects=False,
            )
        except (OutboundRefused, OutboundFailed) as error:
            raise VerifierUnavailable("the introspection endpoint did not answer") from error
        answer = _json_object(result)
        if answer is None:
            raise VerifierUnavailable(f"the introspection endpoint answered {result.status}")
        if answer.get("active") is not True:
            raise TokenInvalid("inactive", "the authorization server says the token is inactive")
        audiences = _audiences(answer.get("aud"))
        if audiences is None or self._resource not in audiences:
            raise TokenInvalid("wrong_audience", "the token is not for this resource (aud)")
        exp = _number(answer.get("exp"))
        if exp is None:
            raise TokenInvalid("missing_claim", "the introspection answer has no usable 'exp'")
        if now >= exp:
            raise TokenInvalid("expired", "the token has expired")
        nbf = _number(answer.get("nbf"))
        if nbf is not None and now < nbf:
            raise TokenInvalid("not_yet_valid", "the token is not valid yet (nbf)")
        sub = answer.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenInvalid("missing_claim", "the introspection answer has no 'sub'")
        iss = answer.get("iss")
        jti = answer.get("jti")
        return AccessTokenInfo(
            subject=sub,
            client_id=_client_id(answer),
            scopes=jwt_scopes(answer),
            audience=audiences,
            issuer=iss if isinstance(iss, str) else "",
            expires_at=exp,
            token_id=jti if isinstance(jti, str) else None,
            claims=answer,
        )
