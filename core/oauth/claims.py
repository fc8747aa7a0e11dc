"""Access token claim rules as pure checks (RFC 9068 2, 4; RFC 7519 4.1; RFC 8707 2; RFC 8725
3.1, 3.11).

The signature is verified elsewhere (the `KeySet`/`TokenVerifier` adapters with pyjwt). This
module takes the already decoded JOSE header and claims, plus the current time, and applies the
rules in a fixed order, stopping at the first failure:

1. `alg` is in the caller's fixed list and is never `none` (RFC 8725 3.1, 3.2).
2. `typ` is `at+jwt` or `application/at+jwt`, compared case-insensitively (RFC 9068 2.1, 4).
3. `iss`, `aud`, `exp`, `sub`, `client_id`, `iat` and `jti` are present (RFC 9068 2.2).
4. `iss` is exactly the expected issuer (RFC 9068 4).
5. `aud` (a string or an array of strings) contains the resource this server is
   (RFC 9068 4, RFC 8707): a token minted for another resource is refused.
6. `exp`, `iat` and `nbf` are NumericDates (numbers, not booleans); `exp` is in the future,
   `nbf` and `iat` are not, each with the leeway (at most `MAX_LEEWAY` = 60 s).
7. `sub`, `client_id` and `jti` are non-empty strings; `scope`, if present, is a string.

`check_access_token` returns a `Verdict` naming the failing `ClaimRule`, so a caller can log
the reason and answer 401 `invalid_token` without echoing the token.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = [
    "DEFAULT_ALGORITHMS",
    "MAX_LEEWAY",
    "REQUIRED_CLAIMS",
    "ClaimRule",
    "Verdict",
    "check_access_token",
    "missing_scopes",
    "token_scopes",
]

MAX_LEEWAY = 60
DEFAULT_ALGORITHMS = ("EdDSA", "ES256", "RS256")
REQUIRED_CLAIMS = ("iss", "aud", "exp", "sub", "client_id", "iat", "jti")
_TYPES = frozenset({"at+jwt", "application/at+jwt"})


class ClaimRule(enum.Enum):
    """The rule a token broke."""

    ALGORITHM = "algorithm"
    TYPE = "type"
    MISSING_CLAIM = "missing_claim"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    TIME_FORMAT = "time_format"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    CLAIM_FORMAT = "claim_format"


@attrs.frozen(kw_only=True)
class Verdict:
    """The outcome of `check_access_token`: `ok`, or the first `rule` broken and why."""

    rule: ClaimRule | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.rule is None


_OK = Verdict()


def _fail(rule: ClaimRule, detail: str) -> Verdict:
    return Verdict(rule=rule, detail=detail)


def _numeric_date(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def check_access_token(
    *,
    header: Mapping[str, Any],
    claims: Mapping[str, Any],
    issuer: str,
    resource: str,
    now: float,
    leeway: float = 0,
    algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
) -> Verdict:
    """Apply the RFC 9068 rules; `now` is seconds since the epoch, read by the caller."""
    if not 0 <= leeway <= MAX_LEEWAY:
        raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
    allowed = frozenset(algorithms) - {"none"}
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        return _fail(ClaimRule.ALGORITHM, "alg is not in the accepted list")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _TYPES:
        return _fail(ClaimRule.TYPE, "typ must be at+jwt")
    for name in REQUIRED_CLAIMS:
        if name not in claims or claims[name] is None:
            return _fail(ClaimRule.MISSING_CLAIM, f"{name} is required")
    if claims["iss"] != issuer:
        return _fail(ClaimRule.ISSUER, "iss is not the expected issuer")
    audience = claims["aud"]
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        return _fail(ClaimRule.AUDIENCE, "aud must be a string or an array of strings")
    if resource not in audiences:
        return _fail(ClaimRule.AUDIENCE, "aud does not contain this resource")
    exp = _numeric_date(claims["exp"])
    iat = _numeric_date(claims["iat"])
    nbf = _numeric_date(claims["nbf"]) if "nbf" in claims else None
    if exp is None or iat is None or ("nbf" in claims and nbf is None):
        return _fail(ClaimRule.TIME_FORMAT, "exp, iat and nbf must be NumericDates")
    if now >= exp + leeway:
        return _fail(ClaimRule.EXPIRED, "the token has expired")
    if nbf is not None and now + leeway < nbf:
        return _fail(ClaimRule.NOT_YET_VALID, "the token is not valid yet (nbf)")
    if now + leeway < iat:
        return _fail(ClaimRule.ISSUED_IN_FUTURE, "the token was issued in the future (iat)")
    for name in ("sub", "client_id", "jti"):
        if not isinstance(claims[name], str) or not claims[name]:
            return _fail(ClaimRule.CLAIM_FORMAT, f"{name} must be a non-empty string")
    if "scope" in claims and not isinstance(claims["scope"], str):
        return _fail(ClaimRule.CLAIM_FORMAT, "scope must be a space-separated string")
    return _OK


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes granted by a token (`scope`, space-separated, RFC 9068 2.2.3)."""
    scope = claims.get("scope")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def missing_scopes(granted: Iterable[str], required: Iterable[str]) -> tuple[str, ...]:
    """The required scopes not granted, in order: non-empty means 403 insufficient_scope."""
    have = set(granted)
    return tuple(dict.fromkeys(s for s in required if s not in have))
