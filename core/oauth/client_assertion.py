"""private_key_jwt client authentication: the checks that need no cryptography.

Specs: RFC 7523 2.2 (a JWT as client authentication) and 3 (its processing rules), RFC 7521 4.2
(the `client_assertion_type` / `client_assertion` parameters), OAuth 2.1 draft 2.4.1, RFC 7517 /
RFC 7518 6 / RFC 8037 2 (the JWKs a client registers), RFC 8725 (JWT best practices).

A client registered with `token_endpoint_auth_method` "private_key_jwt" proves itself at the
token and revocation endpoints with a JWT it signed with a key from its registered `jwks` (or
`jwks_uri`). The authorization server (`core.services.authorization_server`) checks the
signature with pyjwt; everything else is decided here, on decoded values, with the time passed
in:

- `parse_assertion_request(form)`: `client_assertion_type` must be exactly
  `JWT_BEARER_ASSERTION_TYPE`, `client_assertion` a compact JWS of at most
  `MAX_ASSERTION_BYTES`; the header and claims are decoded WITHOUT verification, so the server
  can learn the client (`iss`) and the key (`kid`) before it checks the signature.
- `check_assertion_header(header)`: `alg` is one of `ASSERTION_ALGORITHMS` (RS256, ES256,
  EdDSA), never `none` nor HS* (the public key used as an HMAC secret); no `crit` extensions.
  Header-borne keys (`jwk`, `jku`, `x5u`, `x5c`) are never used: the keys are the registered ones.
- `check_assertion_claims(claims, ...)` (RFC 7523 3): `iss` and `sub` both equal the
  client_id; `aud` contains one of the server's identifiers (its issuer or the endpoint URL);
  `exp` required and not past (leeway at most `MAX_LEEWAY`); `nbf` and `iat`, when present, not
  in the future; the assertion's lifetime (`exp` minus `iat`, or minus now without `iat`) at
  most `MAX_ASSERTION_LIFETIME`; `jti` required.
- `usable_jwks(document)`: the registered keys that may verify an assertion, by `kid`, each
  with its one algorithm fixed by the key (its `alg`, or its type: RSA -> RS256, EC P-256 ->
  ES256, OKP Ed25519 -> EdDSA), never by the token's header. RSA under 2048 bits, `use` other
  than `sig`, private members and symmetric keys are left out. A set with a single key that has
  no `kid` serves an assertion without `kid` (key `""`).
- `AssertionReplayCache`: RFC 7523 3 item 7 lets the server refuse a `jti` it has seen.
  Assertions live at most `MAX_ASSERTION_LIFETIME` (+ leeway), so a `jti` needs remembering only
  until its `exp` passes. The cache is bounded and lives in one process: with several nodes, a
  replay that lands on another node within the assertion's few minutes is not detected (the
  signature, audience and expiry still hold). When full of live entries it refuses new
  assertions (fails closed) rather than forgetting one that could then be replayed.

Every refusal is `OAuthError(invalid_client)` (RFC 7523 3.2 and RFC 6749 5.2) with a short
description of our own; nothing from the assertion is echoed back.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

import attrs

from .errors import INVALID_CLIENT, INVALID_REQUEST, OAuthError

__all__ = [
    "ASSERTION_ALGORITHMS",
    "JWT_BEARER_ASSERTION_TYPE",
    "MAX_ASSERTION_BYTES",
    "MAX_ASSERTION_LIFETIME",
    "MAX_LEEWAY",
    "AssertionClaims",
    "AssertionReplayCache",
    "ClientAssertion",
    "UsableJwk",
    "check_assertion_claims",
    "check_assertion_header",
    "parse_assertion_request",
    "usable_jwks",
]

JWT_BEARER_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The asymmetric algorithms an assertion may use, as advertised in the server metadata
# (`token_endpoint_auth_signing_alg_values_supported`).
ASSERTION_ALGORITHMS: Final = ("EdDSA", "ES256", "RS256")
MAX_ASSERTION_BYTES: Final = 8 * 1024
# An assertion is a one-shot proof; five minutes covers any sane clock skew and retry.
MAX_ASSERTION_LIFETIME: Final = 300.0
MAX_LEEWAY: Final = 60.0
MAX_JTI_LENGTH: Final = 256
MIN_RSA_BITS: Final = 2048

_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# What each algorithm needs of a JWK: (kty, crv or None).
_KEY_SHAPE: Final = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _refuse(description: str) -> OAuthError:
    return OAuthError(INVALID_CLIENT, description)


def _b64_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise _refuse(f"the client assertion {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise _refuse(f"the client assertion {what} is not a JSON object")
    return value


@attrs.frozen(kw_only=True)
class ClientAssertion:
    """A client assertion as sent, with its header and claims decoded but NOT verified."""

    token: str = attrs.field(repr=False)
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    @property
    def claimed_client_id(self) -> str | None:
        """The client the assertion claims to be (`iss`), before any check."""
        iss = self.claims.get("iss")
        return iss if isinstance(iss, str) and iss else None


def parse_assertion_request(form: Mapping[str, str]) -> ClientAssertion | None:
    """The client assertion of a token or revocation request, or None when it carries none.

    Raises `OAuthError`: `invalid_request` when only one of the two parameters is present,
    `invalid_client` for an unknown assertion type or a malformed assertion."""
    kind = form.get("client_assertion_type")
    token = form.get("client_assertion")
    if kind is None and token is None:
        return None
    if kind is None or token is None:
        raise OAuthError(INVALID_REQUEST, "client_assertion_type and client_assertion go together")
    if kind != JWT_BEARER_ASSERTION_TYPE:
        raise _refuse("client_assertion_type must be the JWT bearer type (RFC 7523 2.2)")
    if len(token) > MAX_ASSERTION_BYTES or not _COMPACT_JWS.fullmatch(token):
        raise _refuse("client_assertion must be a signed JWT in compact form")
    header_part, claims_part, _ = token.split(".")
    return ClientAssertion(
        token=token,
        header=_b64_json(header_part, "header"),
        claims=_b64_json(claims_part, "claims"),
    )


def check_assertion_header(header: Mapping[str, Any]) -> tuple[str, str]:
    """`(alg, kid)` of an acceptable assertion header; `kid` is "" when the header has none."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASSERTION_ALGORITHMS:
        # none, HS256 (the public key as an HMAC secret) and anything unlisted.
        raise _refuse(f"the client assertion must be signed with one of {ASSERTION_ALGORITHMS}")
    if "crit" in header:
        raise _refuse("the client assertion must not use critical header extensions")
    kid = header.get("kid", "")
    if not isinstance(kid, str) or len(kid) > MAX_JTI_LENGTH:
        raise _refuse("the client assertion kid must be a short string")
    return alg, kid


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@attrs.frozen(kw_only=True)
class AssertionClaims:
    """What the server keeps of an accepted assertion: its `jti` and when it expires."""

    jti: str
    expires_at: float


def check_assertion_claims(
    claims: Mapping[str, Any],
    *,
    client_id: str,
    audiences: Collection[str],
    now: float,
    leeway: float = 30.0,
    max_lifetime: float = MAX_ASSERTION_LIFETIME,
) -> AssertionClaims:
    """RFC 7523 3 on signature-checked claims, at `now` (seconds since the epoch)."""
    if not 0 <= leeway <= MAX_LEEWAY or not 0 < max_lifetime <= MAX_ASSERTION_LIFETIME:
        raise ValueError("leeway is 0-60 s and the lifetime cap 0-300 s")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _refuse("the client assertion's iss and sub must be the client_id")
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in named):
        raise _refuse("the client assertion's aud must name this authorization server")
    exp = _number(claims.get("exp"))
    if exp is None:
        raise _refuse("the client assertion needs a numeric exp")
    if now >= exp + leeway:
        raise _refuse("the client assertion has expired")
    for name in ("nbf", "iat"):
        if name in claims:
            value = _number(claims[name])
            if value is None:
                raise _refuse(f"the client assertion's {name} must be a NumericDate")
            if value > now + leeway:
                raise _refuse(f"the client assertion's {name} is in the future")
    iat = _number(claims.get("iat"))
    start = iat if iat is not None else now
    if exp - start > max_lifetime or exp > now + max_lifetime + leeway:
        raise _refuse(f"a client assertion may live at most {max_lifetime:g} seconds")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise _refuse("the client assertion needs a jti (a short unique string)")
    return AssertionClaims(jti=jti, expires_at=exp + leeway)


# ---- registered keys --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UsableJwk:
    """A registered public JWK that may verify assertions, with its one algorithm."""

    alg: str
    jwk: Mapping[str, Any] = attrs.field(repr=False)


def _jwk_alg(jwk: Mapping[str, Any]) -> str | None:
    alg = jwk.get("alg")
    if alg is not None:
        return alg if isinstance(alg, str) and alg in _KEY_SHAPE else None
    for name, (kty, crv) in _KEY_SHAPE.items():
        if jwk.get("kty") == kty and (crv is None or jwk.get("crv") == crv):
            return name
    return None


def _rsa_bits(jwk: Mapping[str, Any]) -> int:
    n = jwk.get("n")
    if not isinstance(n, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except (binascii.Error, ValueError):
        return 0
    return int.from_bytes(raw, "big").bit_length()


def usable_jwks(document: Mapping[str, Any]) -> dict[str, UsableJwk]:
    """The keys of a JWK Set that may verify an assertion, by `kid` (see the module docstring).

    Shape only: a key whose numbers are not a valid point or modulus is found out when the
    server loads it, and is then left out as well."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        return {}
    out: dict[str, UsableJwk] = {}
    unnamed: list[UsableJwk] = []
    for jwk in keys:
        if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & jwk.keys():
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        ops = jwk.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        alg = _jwk_alg(jwk)
        if alg is None:
            continue
        kty, crv = _KEY_SHAPE[alg]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            continue
        if kty == "RSA" and _rsa_bits(jwk) < MIN_RSA_BITS:
            continue
        kid = jwk.get("kid")
        usable = UsableJwk(alg=alg, jwk=jwk)
        if kid is None:
            unnamed.append(usable)
        elif isinstance(kid, str) and kid and kid not in out:
            out[kid] = usable
    if len(unnamed) == 1 and not out:
        out[""] = unnamed[0]  # the only key: an assertion may omit its kid
    return out


# ---- replay ------------------------------------------------------------------------------------


class AssertionReplayCache:
    """The `jti`s of accepted assertions, per client, until their `exp` (one process only).

    `admit(client_id, jti, expires_at, now)` returns True the first time and records the pair,
    False for a pair still remembered. Raises `OAuthError(invalid_client)` when `max_entries`
    live entries are held (it never forgets a live one to make room)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._seen: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, client_id: str, jti: str, expires_at: float, now: float) -> bool:
        key = (client_id, jti)
        held = self._seen.get(key)
        if held is not None and held > now:
            return False
        if len(self._seen) >= self._max:
            self._seen = {k: until for k, until in self._seen.items() if until > now}
            if len(self._seen) >= self._max:
                raise _refuse("too many client assertions in flight; try again shortly")
        self._seen[key] = expires_at
        return True
