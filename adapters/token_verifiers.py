"""`TokenVerifier`s that check JWT signatures with pyjwt: our own tokens and an external IdP's.

- `KeySetVerifier`: access tokens this project's authorization server signed with its
  `KeySet`. It is `verify_access_token` (RFC 9068 section 4, `typ` `at+jwt`, every RFC 9068
  claim) with the resource as the audience, its `TokenRejected` reasons passed on unchanged as
  `TokenInvalid` reasons.
- `JwksVerifier`: JWTs from an external identity provider, with keys from its JWKS held in a
  `JwksCache` (`mcp_core.core.services.token_verifiers`: lazy, shared in-flight fetch,
  last-good set during outages, rate-limited refetch on an unknown `kid`).

Every key's algorithm is fixed when the JWK Set is parsed: from the JWK's `alg`, or from its
type when absent (RSA -> RS256, EC P-256 -> ES256, OKP Ed25519 -> EdDSA). A token's header
never chooses it: a header `alg` other than its key's is refused before the signature is
checked, `none` and every HS* (the public-key-as-HMAC-secret confusion) always, even when an
operator lists them. RSA keys under 2048 bits, keys for encryption (`use` `enc`) and keys
without a `kid` are left out of the set.

Spec: RFC 7515, RFC 7517, RFC 8725 sections 2.1 and 3.1 (algorithm confusion), RFC 9068
section 4; issue 4 ("Fixed algorithm lists, required claims (`iss`, `aud`, `exp`, `sub`),
leeway at most 60 s, token size cap").
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, cast

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.exceptions import PyJWKError

from mcp_core.adapters.jwt_keys import verify_access_token
from mcp_core.core.services.token_verifiers import (
    JWT_REQUIRED_CLAIMS,
    MAX_TOKEN_BYTES,
    SIGNATURE_ONLY,
    JwksCache,
    check_jwt_claims,
    check_leeway,
    token_info,
)
from mcp_core.ports.http_client import HttpClient
from mcp_core.ports.keys import KeySet, SharedKeySet, TokenRejected, VerificationPolicy
from mcp_core.ports.oauth_stores import GrantStore, StoreUnavailable
from mcp_core.ports.system import Clock
from mcp_core.ports.tokens import AccessTokenInfo, TokenInvalid, VerifierUnavailable

__all__ = ["JWKS_ALGORITHMS", "JwksVerifier", "KeySetVerifier", "parse_jwks"]

# The asymmetric algorithms an external JWT may use; anything else is refused.
JWKS_ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA"})
_MIN_RSA_BITS: Final = 2048
# What each algorithm needs of a JWK: (kty, crv or None).
_KEY_SHAPE: Final = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class KeySetVerifier:
    """Our own access tokens, checked against our `KeySet` at `clock.wall()`.

    Given the authorization server's `GrantStore` (`grants`), it also keeps the deny-list: a
    token revoked through RFC 7009 (by `jti`) is refused, and so is every token of a revoked
    refresh family (a replayed code, a reused refresh token, a revoked refresh token), whose
    `jti` the server writes as `<family id>.<random>`. Those are store reads on every request:
    the price of revocation that takes effect before `exp`. A store that is down makes the
    check fail closed (`VerifierUnavailable`, a 503), never a silent acceptance.
    """

    def __init__(
        self,
        keyset: KeySet,
        issuer: str,
        clock: Clock,
        *,
        leeway: float = 0.0,
        grants: GrantStore | None = None,
    ) -> None:
        self._keyset = keyset
        self._issuer = issuer
        self._clock = clock
        self._leeway = check_leeway(leeway)
        self._grants = grants

    def __repr__(self) -> str:
        return f"KeySetVerifier(issuer={self._issuer!r})"

    async def verify(self, token: str, *, resource: str) -> AccessTokenInfo:
        policy = VerificationPolicy(audience=resource, issuer=self._issuer, leeway=self._leeway)
        shared = self._keyset if isinstance(self._keyset, SharedKeySet) else None
        if shared is not None:
            await shared.refresh()
        try:
            try:
                claims = verify_access_token(token, self._keyset, policy, now=self._clock.wall())
            except TokenRejected as error:
                if shared is None or error.reason != "unknown_kid":
                    raise
                # Another node may have rotated: look again (the key set rate-limits this).
                await shared.refresh(unknown_kid=True)
                claims = verify_access_token(token, self._keyset, policy, now=self._clock.wall())
        except TokenRejected as error:
            raise TokenInvalid(error.reason, str(error)) from None
        if self._grants is not None:
            await self._check_not_revoked(claims)
        return token_info(claims, issuer=self._issuer)

    async def _check_not_revoked(self, claims: Mapping[str, Any]) -> None:
        assert self._grants is not None
        jti = claims.get("jti")
        if not isinstance(jti, str):
            raise TokenInvalid("revoked", "the token has no jti to check revocation by")
        family_id, dot, _ = jti.partition(".")
        try:
            revoked = await self._grants.is_access_revoked(jti, self._clock.wall()) or (
                bool(dot) and await self._grants.is_revoked(family_id)
            )
        except StoreUnavailable as exc:
            raise VerifierUnavailable(f"the revocation list is unavailable: {exc}") from None
        if revoked:
            raise TokenInvalid("revoked", "the token was revoked")


@attrs.frozen
class _Key:
    alg: str
    key: object = attrs.field(repr=False)


def _key_alg(jwk: Mapping[str, Any]) -> str | None:
    alg = jwk.get("alg")
    if alg is not None:
        return alg if isinstance(alg, str) else None
    kty, crv = jwk.get("kty"), jwk.get("crv")
    for name, shape in _KEY_SHAPE.items():
        if shape == (kty, crv if shape[1] is not None else None):
            return name
    return None


def parse_jwks(document: Mapping[str, Any], algorithms: Iterable[str]) -> dict[str, _Key]:
    """The usable keys of a JWK Set, by `kid`, each with its one algorithm."""
    allowed = frozenset(algorithms) & JWKS_ALGORITHMS
    keys: dict[str, _Key] = {}
    for jwk in document.get("keys", ()):
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        alg = _key_alg(jwk)
        if alg is None or alg not in allowed:
            continue
        if "d" in jwk:
            continue  # a private key published in a JWKS is not one to trust
        kty, crv = _KEY_SHAPE[alg]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            continue
        try:
            parsed = jwt.PyJWK(jwk, algorithm=alg)
        except (PyJWKError, ValueError, TypeError):
            continue
        if isinstance(parsed.key, rsa.RSAPublicKey) and parsed.key.key_size < _MIN_RSA_BITS:
            continue
        keys[kid] = _Key(alg=alg, key=parsed.key)
    return keys


def _header(token: str) -> dict[str, Any]:
    encoded = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except ValueError:
        raise TokenInvalid("malformed", "the token header is not valid base64url JSON") from None
    if not isinstance(header, dict):
        raise TokenInvalid("malformed", "the token header is not a JSON object")
    return header


class JwksVerifier:
    """An external identity provider's JWT access tokens, verified with its JWKS."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str,
        http: HttpClient,
        clock: Clock,
        *,
        algorithms: Iterable[str] = ("RS256", "ES256", "EdDSA"),
        required_claims: Iterable[str] = JWT_REQUIRED_CLAIMS,
        leeway: float = 0.0,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        refresh_interval: float = 3600.0,
        unknown_kid_min_interval: float = 30.0,
        typ: str | None = None,
    ) -> None:
        if isinstance(algorithms, str) or isinstance(required_claims, str):
            raise TypeError("algorithms and required_claims are collections of names")
        self._algorithms = frozenset(algorithms)
        refused = sorted(self._algorithms - JWKS_ALGORITHMS)
        if refused or not self._algorithms:
            raise ValueError(
                f"algorithms are some of {sorted(JWKS_ALGORITHMS)}; refused: {refused}"
            )
        required = tuple(dict.fromkeys(required_claims))
        missing = sorted(set(JWT_REQUIRED_CLAIMS) - set(required))
        if missing:
            raise ValueError(f"required claims must include {list(JWT_REQUIRED_CLAIMS)}")
        if not 0 < max_token_bytes <= MAX_TOKEN_BYTES:
            raise ValueError(f"the token size cap is 1 to {MAX_TOKEN_BYTES} bytes")
        self._issuer = issuer
        self._clock = clock
        self._required = required
        self._leeway = check_leeway(leeway)
        self._max_bytes = max_token_bytes
        self._typ = typ
        allowed = self._algorithms
        self._cache: JwksCache[_Key] = JwksCache(
            jwks_url,
            http=http,
            clock=clock,
            parse=lambda document: parse_jwks(document, allowed),
            refresh_interval=refresh_interval,
            min_fetch_interval=unknown_kid_min_interval,
        )

    def __repr__(self) -> str:
        return f"JwksVerifier(issuer={self._issuer!r})"

    async def verify(self, token: str, *, resource: str) -> AccessTokenInfo:
        if len(token.encode("utf-8", "surrogatepass")) > self._max_bytes:
            raise TokenInvalid("too_large", f"the token is over {self._max_bytes} bytes")
        if not _COMPACT_JWS.fullmatch(token):
            raise TokenInvalid("malformed", "the token is not a compact JWS")
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise TokenInvalid("malformed", "the token header names no algorithm (alg)")
        if alg.lower() == "none":
            raise TokenInvalid("alg_none", "unsigned tokens (alg none) are refused")
        if alg not in self._algorithms:
            raise TokenInvalid("alg_not_allowed", f"the algorithm {alg} is not accepted")
        if "crit" in header:
            raise TokenInvalid("unsupported_header", "no critical header extensions")
        if self._typ is not None and not _typ_matches(header.get("typ"), self._typ):
            raise TokenInvalid("wrong_typ", f"the token type (typ) must be {self._typ}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenInvalid("missing_kid", "the token header names no key (kid)")
        key = await self._cache.key(kid)
        if key is None:
            raise TokenInvalid("unknown_kid", "the token's kid is not in the issuer's JWKS")
        if alg != key.alg:
            raise TokenInvalid("alg_mismatch", f"the key {kid} signs with {key.alg}, not {alg}")
        try:
            claims = jwt.decode(
                token,
                cast(Any, key.key),
                algorithms=[key.alg],
                # Claims and times are checked below against the injected clock.
                options=SIGNATURE_ONLY,
            )
        except jwt.InvalidSignatureError:
            raise TokenInvalid("bad_signature", "the token's signature does not verify") from None
        except jwt.PyJWTError as error:
            reason = f"the token does not decode: {type(error).__name__}"
            raise TokenInvalid("malformed", reason) from None
        check_jwt_claims(
            claims,
            issuer=self._issuer,
            resource=resource,
            now=self._clock.wall(),
            leeway=self._leeway,
            required=self._required,
        )
        return token_info(claims, issuer=self._issuer)


def _typ_matches(typ: object, expected: str) -> bool:
    if not isinstance(typ, str):
        return False
    typ, expected = typ.lower(), expected.lower()
    return typ in (expected, "application/" + expected)
