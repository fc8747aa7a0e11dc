"""InMemoryKeySet: signing round trips, JWKS contents, RFC 7638 key ids, rotation with overlap,
and the persistence format (adapters/jwt_keys.py, ports/keys.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mcp_core.adapters.jwt_keys import KEYSET_FORMAT, InMemoryKeySet, jwk_thumbprint
from mcp_core.ports.keys import (
    ACCESS_TOKEN_CLAIMS,
    KeySet,
    SigningAlgorithm,
    SigningKey,
    TokenRejected,
    TokenSigningError,
)

ISSUER = "https://as.example"
AUDIENCE = "https://mcp.example/mcp"
T0 = 1_800_000_000.0
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@attrs.define
class FakeClock:
    wall_time: float = T0

    def now(self) -> float:
        return self.wall_time

    def wall(self) -> float:
        return self.wall_time


def make(
    alg: SigningAlgorithm = "EdDSA", *, overlap: float = 3600.0
) -> tuple[InMemoryKeySet, FakeClock]:
    clock = FakeClock()
    return InMemoryKeySet(alg, overlap_seconds=overlap, clock=clock, rsa_bits=2048), clock


def claims(now: float = T0, **changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "jti": "token-1",
        "iat": int(now),
        "exp": int(now) + 300,
        "scope": "tools:read",
    }
    base.update(changes)
    return base


def verify(keyset: InMemoryKeySet, token: str) -> dict[str, Any]:
    return keyset.verify(token, audience=AUDIENCE, issuer=ISSUER)


def segment(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


# ---- signing and verifying ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_signed_token_round_trips_for_each_algorithm(alg: SigningAlgorithm) -> None:
    keyset, _ = make(alg)
    token = keyset.sign(claims(), headers={"typ": "at+jwt"})

    header = segment(token.split(".")[0])
    assert header == {"alg": alg, "kid": keyset.current().kid, "typ": "at+jwt"}
    assert verify(keyset, token) == claims()


def test_default_algorithm_is_eddsa_and_satisfies_the_port() -> None:
    keyset = InMemoryKeySet(clock=FakeClock())
    assert keyset.current().alg == "EdDSA"
    assert isinstance(keyset, KeySet)


@pytest.mark.parametrize(
    "headers",
    [
        {"typ": "at+jwt", "alg": "HS256"},
        {"typ": "at+jwt", "kid": "mine"},
        {"typ": "at+jwt", "jku": "https://x"},
    ],
)
def test_sign_refuses_headers_that_choose_the_key_or_algorithm(headers: dict[str, Any]) -> None:
    keyset, _ = make()
    with pytest.raises(TokenSigningError, match="sets these headers itself"):
        keyset.sign(claims(), headers=headers)


def test_sign_requires_a_typ_and_json_claims() -> None:
    keyset, _ = make()
    with pytest.raises(TokenSigningError, match="typ"):
        keyset.sign(claims(), headers={})
    with pytest.raises(TokenSigningError, match="JSON"):
        keyset.sign(claims(extra=object()), headers={"typ": "at+jwt"})


def test_rsa_keys_under_2048_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="2048 bits"):
        InMemoryKeySet("RS256", clock=FakeClock(), rsa_bits=1024)


def test_unknown_algorithm_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        InMemoryKeySet("HS256", clock=FakeClock())  # type: ignore[arg-type]


# ---- JWKS and key ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "members"),
    [
        ("EdDSA", {"kty": "OKP", "crv": "Ed25519"}),
        ("ES256", {"kty": "EC", "crv": "P-256"}),
        ("RS256", {"kty": "RSA", "e": "AQAB"}),
    ],
)
def test_jwks_publishes_only_public_members(alg: SigningAlgorithm, members: dict[str, str]) -> None:
    keyset, _ = make(alg)
    (jwk,) = keyset.jwks()["keys"]

    assert jwk.items() >= {**members, "use": "sig", "alg": alg, "kid": keyset.current().kid}.items()
    assert not PRIVATE_MEMBERS & jwk.keys()
    assert "key_ops" not in jwk


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_kid_is_the_rfc7638_thumbprint_of_the_published_key(alg: SigningAlgorithm) -> None:
    keyset, _ = make(alg)
    (jwk,) = keyset.jwks()["keys"]
    assert jwk["kid"] == jwk_thumbprint(jwk) == keyset.current().kid


def test_thumbprint_matches_rfc7638_section_3_1_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
            "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
            "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTW"
            "hAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_kid_matches_rfc8037_appendix_a3_for_its_ed25519_key() -> None:
    # RFC 8037 A.1 private key; A.3 gives its thumbprint. Loaded through the persistence format,
    # which recomputes the kid from the key.
    seed = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    kid = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    data = document([{"kid": kid, "alg": "EdDSA", "private_key": pem(key)}])

    keyset = InMemoryKeySet.from_bytes(data, clock=FakeClock())

    assert keyset.current().kid == kid
    assert keyset.jwks()["keys"][0]["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


# ---- rotation and overlap -------------------------------------------------------------------


def test_rotation_keeps_the_old_key_verifying_until_the_overlap_ends() -> None:
    keyset, clock = make(overlap=600.0)
    old = keyset.current()
    old_token = keyset.sign(claims(exp=int(T0) + 3600), headers={"typ": "at+jwt"})

    new = keyset.rotate(T0)
    assert new.kid != old.kid
    assert keyset.current() == new
    assert [jwk["kid"] for jwk in keyset.jwks()["keys"]] == [new.kid, old.kid]
    assert keyset.all_keys()[1] == attrs.evolve(old, retire_at=T0 + 600.0)
    new_token = keyset.sign(claims(exp=int(T0) + 3600), headers={"typ": "at+jwt"})
    assert segment(new_token.split(".")[0])["kid"] == new.kid

    clock.wall_time = T0 + 599
    assert verify(keyset, old_token)["jti"] == "token-1"

    clock.wall_time = T0 + 600
    assert [jwk["kid"] for jwk in keyset.jwks()["keys"]] == [new.kid]
    with pytest.raises(TokenRejected) as caught:
        verify(keyset, old_token)
    assert caught.value.reason == "unknown_kid"
    assert verify(keyset, new_token)["jti"] == "token-1"


def test_prune_forgets_only_keys_past_their_overlap() -> None:
    keyset, _ = make(overlap=100.0)
    first = keyset.current()
    second = keyset.rotate(T0)
    third = keyset.rotate(T0 + 50)

    assert keyset.prune(T0 + 99) == ()
    assert keyset.prune(T0 + 100) == (attrs.evolve(first, retire_at=T0 + 100),)
    assert [key.kid for key in keyset.all_keys()] == [third.kid, second.kid]
    assert keyset.verification_key(first.kid) is None


def test_signing_key_metadata_rejects_non_finite_times() -> None:
    with pytest.raises(ValueError, match="finite"):
        SigningKey(kid="k", alg="EdDSA", created_at=float("nan"))


# ---- persistence ----------------------------------------------------------------------------


def pem(key: Any) -> str:
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return data.decode("ascii")


def document(keys: list[dict[str, Any]]) -> bytes:
    full = [{"created_at": T0, "retire_at": None, **key} for key in keys]
    return json.dumps({"format": KEYSET_FORMAT, "keys": full}).encode()


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_key_set_survives_a_round_trip_through_bytes(alg: SigningAlgorithm) -> None:
    keyset, clock = make(alg)
    keyset.rotate(T0)
    token = keyset.sign(claims(), headers={"typ": "at+jwt"})

    data = keyset.to_bytes()
    restored = InMemoryKeySet.from_bytes(data, algorithm=alg, clock=clock)

    assert json.loads(data)["format"] == KEYSET_FORMAT
    assert b"BEGIN PRIVATE KEY" in data
    assert restored.all_keys() == keyset.all_keys()
    assert restored.jwks() == keyset.jwks()
    assert verify(restored, token) == claims()


def test_loading_refuses_a_kid_that_is_not_the_thumbprint() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(ValueError, match="thumbprint"):
        InMemoryKeySet.from_bytes(
            document([{"kid": "chosen", "alg": "EdDSA", "private_key": pem(key)}])
        )


def _misfit(kind: str) -> Any:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.mark.parametrize(
    ("alg", "kind", "message"),
    [
        ("ES256", "ed25519", "not an ES256 key"),
        ("ES256", "p384", "not an ES256 key"),
        ("RS256", "rsa1024", "2048 bits"),
    ],
)
def test_loading_refuses_a_key_that_does_not_fit_its_algorithm(
    alg: str, kind: str, message: str
) -> None:
    key = _misfit(kind)
    with pytest.raises(ValueError, match=message):
        InMemoryKeySet.from_bytes(document([{"kid": "x", "alg": alg, "private_key": pem(key)}]))


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"[]",
        json.dumps({"format": "other", "keys": []}).encode(),
        json.dumps({"format": KEYSET_FORMAT, "keys": []}).encode(),
        json.dumps({"format": KEYSET_FORMAT, "keys": [{"alg": "HS256"}]}).encode(),
        json.dumps(
            {"format": KEYSET_FORMAT, "keys": [{"alg": "EdDSA", "private_key": "nope"}]}
        ).encode(),
    ],
)
def test_loading_refuses_documents_that_are_not_key_sets(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        InMemoryKeySet.from_bytes(data)


def test_loading_requires_exactly_one_current_key() -> None:
    keys = [ed25519.Ed25519PrivateKey.generate() for _ in range(2)]
    entries = [
        {"kid": jwk_thumbprint(_jwk(key)), "alg": "EdDSA", "private_key": pem(key)} for key in keys
    ]
    with pytest.raises(ValueError, match="exactly one current key"):
        InMemoryKeySet.from_bytes(document(entries))


def _jwk(key: ed25519.Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x}


def test_required_claims_default_to_rfc9068() -> None:
    assert frozenset({"iss", "aud", "exp", "sub", "iat", "jti", "client_id"}) == ACCESS_TOKEN_CLAIMS
