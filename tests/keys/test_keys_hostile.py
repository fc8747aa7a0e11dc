"""Hostile access tokens: every one is refused by `verify_access_token` with its own reason
(RFC 9068 section 4; DESIGN.md "Security defaults")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization

from mcp_core.adapters.jwt_keys import InMemoryKeySet, verify_access_token
from mcp_core.ports.keys import (
    MAX_TOKEN_BYTES,
    SigningAlgorithm,
    TokenRejected,
    VerificationPolicy,
)

ISSUER = "https://as.example"
AUDIENCE = "https://mcp.example/mcp"
T0 = 1_800_000_000.0
AT_JWT = {"typ": "at+jwt"}


@attrs.define
class FakeClock:
    wall_time: float = T0

    def now(self) -> float:
        return self.wall_time

    def wall(self) -> float:
        return self.wall_time


@pytest.fixture(scope="module")
def keyset() -> InMemoryKeySet:
    return InMemoryKeySet("EdDSA", clock=FakeClock())


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "jti": "token-1",
        "iat": int(T0),
        "exp": int(T0) + 300,
    }
    base.update(changes)
    return base


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(part: dict[str, Any]) -> str:
    return b64(json.dumps(part).encode())


def refused(
    keyset: InMemoryKeySet, token: str | bytes, *, now: float = T0, **policy: Any
) -> TokenRejected:
    settings = {"audience": AUDIENCE, "issuer": ISSUER, **policy}
    with pytest.raises(TokenRejected) as caught:
        verify_access_token(token, keyset, VerificationPolicy(**settings), now=now)
    return caught.value


def test_a_valid_token_verifies(keyset: InMemoryKeySet) -> None:
    token = keyset.sign(claims(), headers=AT_JWT)
    policy = VerificationPolicy(audience=AUDIENCE, issuer=ISSUER)
    assert verify_access_token(token, keyset, policy, now=T0) == claims()


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(keyset: InMemoryKeySet, alg: str) -> None:
    header = {"alg": alg, "kid": keyset.current().kid, "typ": "at+jwt"}
    token = f"{encode(header)}.{encode(claims())}."
    error = refused(keyset, token)
    assert error.reason == "alg_none"
    assert "alg none" in str(error)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_hs256_signed_with_the_public_key_is_refused(alg: SigningAlgorithm) -> None:
    # The classic confusion: the attacker signs with HMAC, using the published public key as
    # the secret, and hopes the verifier lets the header choose the algorithm.
    keyset = InMemoryKeySet(alg, clock=FakeClock(), rsa_bits=2048)
    key = keyset.verification_key(keyset.current().kid)
    assert key is not None
    secret = key.public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{encode({'alg': 'HS256', 'kid': key.kid, 'typ': 'at+jwt'})}.{encode(claims())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()

    error = refused(keyset, f"{signing_input}.{b64(signature)}")
    assert error.reason == "alg_mismatch"
    assert f"signs with {alg}, not HS256" in str(error)


def test_header_alg_other_than_the_keys_is_refused(keyset: InMemoryKeySet) -> None:
    token = keyset.sign(claims(), headers=AT_JWT)
    _, payload, signature = token.split(".")
    header = encode({"alg": "ES256", "kid": keyset.current().kid, "typ": "at+jwt"})
    assert refused(keyset, f"{header}.{payload}.{signature}").reason == "alg_mismatch"


def test_unknown_kid_is_refused(keyset: InMemoryKeySet) -> None:
    stranger = InMemoryKeySet("EdDSA", clock=FakeClock())
    error = refused(keyset, stranger.sign(claims(), headers=AT_JWT))
    assert error.reason == "unknown_kid"


def test_missing_kid_is_refused(keyset: InMemoryKeySet) -> None:
    token = keyset.sign(claims(), headers=AT_JWT)
    _, payload, signature = token.split(".")
    header = encode({"alg": "EdDSA", "typ": "at+jwt"})
    assert refused(keyset, f"{header}.{payload}.{signature}").reason == "missing_kid"


def test_tampered_payload_is_refused(keyset: InMemoryKeySet) -> None:
    header, _, signature = keyset.sign(claims(), headers=AT_JWT).split(".")
    forged = encode(claims(sub="admin"))
    error = refused(keyset, f"{header}.{forged}.{signature}")
    assert error.reason == "bad_signature"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "https://other.example/mcp"}, "wrong_audience"),
        ({"aud": ["https://other.example/mcp"]}, "wrong_audience"),
        ({"iss": "https://evil.example"}, "wrong_issuer"),
        ({"exp": int(T0) - 61}, "expired"),
        ({"nbf": int(T0) + 120}, "not_yet_valid"),
        ({"iat": int(T0) + 120}, "issued_in_future"),
        ({"exp": "tomorrow"}, "bad_claim"),
        ({"sub": 42}, "bad_claim"),
    ],
)
def test_bad_claims_are_refused(
    keyset: InMemoryKeySet, changes: dict[str, Any], reason: str
) -> None:
    token = keyset.sign(claims(**changes), headers=AT_JWT)
    assert refused(keyset, token, leeway=60).reason == reason


def test_expiry_honours_a_leeway_of_at_most_sixty_seconds(keyset: InMemoryKeySet) -> None:
    token = keyset.sign(claims(exp=int(T0) - 30), headers=AT_JWT)
    policy = VerificationPolicy(audience=AUDIENCE, issuer=ISSUER, leeway=60)
    assert verify_access_token(token, keyset, policy, now=T0)["jti"] == "token-1"
    assert refused(keyset, token).reason == "expired"  # no leeway
    assert refused(keyset, token, now=T0 + 31, leeway=60).reason == "expired"


@pytest.mark.parametrize("leeway", [60.001, 3600, -1, float("inf"), float("nan")])
def test_leeway_outside_zero_to_sixty_is_refused_at_configuration(
    keyset: InMemoryKeySet, leeway: float
) -> None:
    with pytest.raises(ValueError, match="leeway is 0 to 60 seconds"):
        VerificationPolicy(audience=AUDIENCE, issuer=ISSUER, leeway=leeway)
    with pytest.raises(ValueError, match="leeway"):
        keyset.verify("a.b.c", audience=AUDIENCE, issuer=ISSUER, leeway=leeway)


def test_policy_refuses_a_size_cap_above_8_kib_and_weaker_claim_lists() -> None:
    with pytest.raises(ValueError, match="size cap"):
        VerificationPolicy(audience=AUDIENCE, issuer=ISSUER, max_token_bytes=MAX_TOKEN_BYTES + 1)
    with pytest.raises(ValueError, match="missing"):
        VerificationPolicy(audience=AUDIENCE, issuer=ISSUER, required_claims={"iss", "aud"})


@pytest.mark.parametrize("as_bytes", [False, True])
def test_oversized_token_is_refused_before_parsing(keyset: InMemoryKeySet, as_bytes: bool) -> None:
    token = keyset.sign(claims(padding="x" * MAX_TOKEN_BYTES), headers=AT_JWT)
    error = refused(keyset, token.encode() if as_bytes else token)
    assert error.reason == "too_large"
    assert str(MAX_TOKEN_BYTES) in str(error)


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "sub", "iat", "jti", "client_id"])
def test_each_missing_required_claim_is_refused(keyset: InMemoryKeySet, claim: str) -> None:
    payload = claims()
    del payload[claim]
    error = refused(keyset, keyset.sign(payload, headers=AT_JWT))
    assert error.reason == "missing_claim"
    assert repr(claim) in str(error)


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt+x", "dpop+jwt"])
def test_typ_other_than_at_jwt_is_refused(keyset: InMemoryKeySet, typ: str | None) -> None:
    token = keyset.sign(claims(), headers={"typ": "JWT"} if typ is None else {"typ": typ})
    if typ is None:  # no typ at all
        _, payload, signature = token.split(".")
        header = encode({"alg": "EdDSA", "kid": keyset.current().kid})
        token = f"{header}.{payload}.{signature}"
    assert refused(keyset, token).reason == "wrong_typ"


@pytest.mark.parametrize("typ", ["AT+JWT", "application/at+jwt"])
def test_typ_compares_as_a_media_type(keyset: InMemoryKeySet, typ: str) -> None:
    token = keyset.sign(claims(), headers={"typ": typ})
    policy = VerificationPolicy(audience=AUDIENCE, issuer=ISSUER)
    assert verify_access_token(token, keyset, policy, now=T0)["sub"] == "user-1"


def test_critical_header_extensions_are_refused(keyset: InMemoryKeySet) -> None:
    token = keyset.sign(claims(), headers=AT_JWT)
    _, payload, signature = token.split(".")
    header = encode({"alg": "EdDSA", "kid": keyset.current().kid, "typ": "at+jwt", "crit": ["b64"]})
    assert refused(keyset, f"{header}.{payload}.{signature}").reason == "unsupported_header"


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "not a token", "é.b.c", "!!!.e30.", "e30.e30.", b"\xff.a.b"],
)
def test_malformed_tokens_are_refused(keyset: InMemoryKeySet, token: str | bytes) -> None:
    assert refused(keyset, token).reason == "malformed"
