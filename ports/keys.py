"""The `KeySet` port: the server's JWT signing keys, their rotation and their JWKS.

The authorization server signs access tokens (RFC 9068 JWTs, `typ` `at+jwt`) with the current
key of a `KeySet`; resource servers verify them with the public keys the set publishes (RFC 7517
JWKS). Rotation makes a new current key and keeps the previous one published and usable for
verification during an overlap period, so tokens signed just before a rotation keep verifying
until they expire; `prune` then forgets keys whose overlap has ended.

Rules of the port:

- Every key has one algorithm, fixed when the key is made (`SIGNING_ALGORITHMS`); a token's
  header never chooses it. Key ids are RFC 7638 JWK thumbprints (SHA-256, base64url).
- Time arrives as arguments (`rotate(now)`, `prune(now)`), in seconds since the Unix epoch.
- Bad input raises a clear error and changes nothing: `TokenSigningError` when a token cannot
  be made, `TokenRejected` (with a short machine-readable `reason`) when one does not verify.
  Messages never quote key material or the token itself.

Spec context: issue 4 ("signed with server keys behind the `KeySet` port (EdDSA default, ES256
and RS256 available), rotated with an overlap period, published in JWKS"); DESIGN.md "Ports and
adapters" and "Security defaults" (fixed JWT algorithm lists and required claims, leeway at most
60 s, token size caps). RFC 7515 (JWS), RFC 7517 (JWK), RFC 7638 (thumbprints), RFC 8037 (EdDSA
in JOSE), RFC 9068 (JWT access tokens).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final, Literal, Protocol, runtime_checkable

import attrs

__all__ = [
    "ACCESS_TOKEN_CLAIMS",
    "ACCESS_TOKEN_TYP",
    "MAX_LEEWAY_SECONDS",
    "MAX_TOKEN_BYTES",
    "SIGNING_ALGORITHMS",
    "KeySet",
    "SharedKeySet",
    "SigningAlgorithm",
    "SigningKey",
    "TokenRejected",
    "TokenSigningError",
    "VerificationKey",
    "VerificationPolicy",
]

SigningAlgorithm = Literal["EdDSA", "ES256", "RS256"]
# The only algorithms a key can have; EdDSA (Ed25519) is the default. No HS*: the verifier
# holds public keys only, and "none" is never a signature.
SIGNING_ALGORITHMS: Final[tuple[SigningAlgorithm, ...]] = ("EdDSA", "ES256", "RS256")

# RFC 9068 section 2.2: iss, exp, aud, sub, client_id, iat and jti are REQUIRED.
ACCESS_TOKEN_CLAIMS: Final = frozenset({"iss", "aud", "exp", "sub", "iat", "jti", "client_id"})
# RFC 9068 section 2.1; "application/at+jwt" is the same media type (RFC 7515 section 4.1.9).
ACCESS_TOKEN_TYP: Final = "at+jwt"
# DESIGN.md "Security defaults": clock skew tolerance is at most a minute.
MAX_LEEWAY_SECONDS: Final = 60.0
# A compact JWS longer than this is refused before it is parsed.
MAX_TOKEN_BYTES: Final = 8 * 1024


def _finite(_instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds, not {value}")


@attrs.frozen(kw_only=True)
class SigningKey:
    """What is known about one key, without its key material.

    `retire_at` is None for the current key; a key rotated out carries the moment its overlap
    ends (rotation time plus the overlap period). It is published and verifies tokens while
    `now < retire_at`, and never signs again.
    """

    kid: str = attrs.field(validator=attrs.validators.min_len(1))
    alg: SigningAlgorithm = attrs.field(validator=attrs.validators.in_(SIGNING_ALGORITHMS))
    created_at: float = attrs.field(validator=_finite)
    retire_at: float | None = attrs.field(default=None, validator=_finite)

    @property
    def is_current(self) -> bool:
        return self.retire_at is None

    def is_live(self, now: float) -> bool:
        """Published and usable for verification at `now`."""
        return self.retire_at is None or now < self.retire_at

    def retiring(self, *, at: float, overlap_seconds: float) -> SigningKey:
        """This key rotated out at `at`, live for `overlap_seconds` more."""
        return attrs.evolve(self, retire_at=at + overlap_seconds)


@attrs.frozen(kw_only=True)
class VerificationKey:
    """A live key's public half, with the one algorithm it verifies.

    `public_key` is opaque to the port (the adapter's library type); callers hand it back to the
    same adapter's verifier, which uses `alg` and nothing from the token header.
    """

    kid: str
    alg: SigningAlgorithm
    public_key: object = attrs.field(repr=False)


def _leeway(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= MAX_LEEWAY_SECONDS):
        raise ValueError(f"leeway is 0 to {MAX_LEEWAY_SECONDS:g} seconds, not {value}")


def _max_bytes(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 < value <= MAX_TOKEN_BYTES:
        raise ValueError(f"the token size cap is 1 to {MAX_TOKEN_BYTES} bytes, not {value}")


def _to_claims(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError("required claims are a collection of names, not one string")
    return frozenset(value)


def _claims(
    _instance: object, _attribute: attrs.Attribute[frozenset[str]], value: frozenset[str]
) -> None:
    missing = sorted(ACCESS_TOKEN_CLAIMS - value)
    if missing:
        raise ValueError(f"required claims must include the RFC 9068 ones; missing {missing}")


@attrs.frozen(kw_only=True)
class VerificationPolicy:
    """What a token must satisfy beyond its signature. Checked when it is made: a leeway above
    60 s, a size cap above 8 KiB or a claim list without the RFC 9068 claims is refused."""

    audience: str = attrs.field(validator=attrs.validators.min_len(1))
    issuer: str = attrs.field(validator=attrs.validators.min_len(1))
    leeway: float = attrs.field(default=0.0, validator=_leeway)
    required_claims: frozenset[str] = attrs.field(
        default=ACCESS_TOKEN_CLAIMS, converter=_to_claims, validator=_claims
    )
    typ: str = ACCESS_TOKEN_TYP
    max_token_bytes: int = attrs.field(default=MAX_TOKEN_BYTES, validator=_max_bytes)


class TokenSigningError(Exception):
    """A token could not be signed: claims that are not a JSON object, headers that try to set
    what the key set decides (`alg`, `kid`, key references), or a missing `typ`."""


class TokenRejected(Exception):
    """A token did not verify. `reason` is one short code for logs and tests (`too_large`,
    `malformed`, `alg_none`, `alg_mismatch`, `missing_kid`, `unknown_kid`, `wrong_typ`,
    `bad_signature`, `missing_claim`, `bad_claim`, `wrong_audience`, `wrong_issuer`, `expired`,
    `not_yet_valid`, `issued_in_future`, `unsupported_header`); the message says which rule failed
    without echoing the token."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@runtime_checkable
class KeySet(Protocol):
    """The server's signing keys.

    - `current()` is the key new tokens are signed with; `all_keys()` every key held, current
      first, including retired keys not yet pruned.
    - `sign(claims, headers=...)` returns a compact JWS signed with the current key, whose
      protected header holds the key's `alg` and `kid` and the caller's `typ` (required); raises
      `TokenSigningError` for bad claims or headers.
    - `jwks()` is an RFC 7517 JWK Set of the public parts of every live key (the current one and
      those still in their overlap), each with `kid`, `alg` and `use: sig`.
    - `verification_key(kid)` is that live key's public half, or None for an unknown or retired
      `kid`.
    - `rotate(now)` makes a new current key, keeps the previous one live until `now` plus the
      overlap, and returns the new key's metadata.
    - `prune(now)` forgets keys whose overlap ended at or before `now`, and returns them.
    """

    def current(self) -> SigningKey: ...

    def all_keys(self) -> tuple[SigningKey, ...]: ...

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any]) -> str: ...

    def jwks(self) -> dict[str, Any]: ...

    def verification_key(self, kid: str) -> VerificationKey | None: ...

    def rotate(self, now: float) -> SigningKey: ...

    def prune(self, now: float) -> tuple[SigningKey, ...]: ...


@runtime_checkable
class SharedKeySet(KeySet, Protocol):
    """A `KeySet` shared by several nodes through a store: other nodes may rotate it.

    `refresh(unknown_kid=False)` brings the held keys up to date with the store when they are
    older than the adapter's refresh interval, or, with `unknown_kid`, when a token names a
    key this node does not know (rate-limited, so garbage kids cannot hammer the store). It
    never raises for a store that is down: the keys held keep serving. The authorization
    server and `KeySetVerifier` call it before signing and verifying.
    """

    async def refresh(self, *, unknown_kid: bool = False) -> None: ...
