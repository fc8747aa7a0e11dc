"""The pure private_key_jwt checks (`core.oauth.client_assertion`, RFC 7523 3): header, claims,
registered keys and the replay cache, on decoded values with the time passed in."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from mcp_core.core.oauth.client_assertion import (
    JWT_BEARER_ASSERTION_TYPE,
    MAX_ASSERTION_BYTES,
    AssertionReplayCache,
    check_assertion_claims,
    check_assertion_header,
    parse_assertion_request,
    usable_jwks,
)
from mcp_core.core.oauth.errors import OAuthError

NOW = 1_700_000_000.0
AUD = "https://as.example/token"


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "iss": "c1",
        "sub": "c1",
        "aud": AUD,
        "iat": NOW,
        "exp": NOW + 60,
        "jti": "j1",
    }
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


def check(c: dict[str, Any], now: float = NOW, leeway: float = 30.0) -> float:
    return check_assertion_claims(
        c, client_id="c1", audiences=(AUD, "https://as.example"), now=now, leeway=leeway
    ).expires_at


def test_good_claims_expire_at_exp_plus_leeway() -> None:
    assert check(claims()) == NOW + 90
    assert check(claims(aud=["https://other.example", "https://as.example"])) == NOW + 90


@pytest.mark.parametrize(
    "bad",
    [
        claims(iss="c2"),
        claims(sub="c2"),
        claims(sub=None),
        claims(aud="https://as.example/other"),
        claims(aud=[]),
        claims(aud=None),
        claims(aud=[1, 2]),
        claims(exp=None),
        claims(exp="soon"),
        claims(exp=True),
        claims(exp=float("inf")),
        claims(exp=NOW - 30),  # leeway 30: now >= exp + leeway
        claims(iat=NOW + 31, exp=NOW + 100),
        claims(nbf=NOW + 31),
        claims(nbf="x"),
        claims(iat=NOW - 10, exp=NOW + 291),  # lifetime 301 s
        claims(iat=None, exp=NOW + 331),  # no iat: exp at most now + 300 + leeway
        claims(jti=None),
        claims(jti=""),
        claims(jti=7),
        claims(jti="j" * 257),
    ],
)
def test_bad_claims_are_invalid_client(bad: dict[str, Any]) -> None:
    with pytest.raises(OAuthError) as raised:
        check(bad)
    assert raised.value.error == "invalid_client"


def test_leeway_and_lifetime_bounds() -> None:
    assert check(claims(exp=NOW - 29))  # within the leeway
    assert check(claims(iat=NOW - 10, exp=NOW + 290))  # exactly 300 s
    with pytest.raises(ValueError, match="leeway"):
        check(claims(), leeway=61)


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "HS512", "PS256", "ES512", "", None, 3])
def test_header_algorithms_outside_the_fixed_list_are_refused(alg: object) -> None:
    with pytest.raises(OAuthError):
        check_assertion_header({"alg": alg, "kid": "k"})


def test_header_gives_alg_and_kid() -> None:
    assert check_assertion_header({"alg": "EdDSA", "kid": "k"}) == ("EdDSA", "k")
    assert check_assertion_header({"alg": "RS256"}) == ("RS256", "")
    with pytest.raises(OAuthError):
        check_assertion_header({"alg": "ES256", "crit": ["b64"]})
    with pytest.raises(OAuthError):
        check_assertion_header({"alg": "ES256", "kid": 5})


def test_parse_assertion_request() -> None:
    token = f"{b64({'alg': 'EdDSA'})}.{b64(claims())}.{b64(b'sig')}"
    parsed = parse_assertion_request(
        {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": token}
    )
    assert parsed is not None
    assert parsed.claimed_client_id == "c1"
    assert parsed.header == {"alg": "EdDSA"}
    assert parse_assertion_request({"client_id": "c1"}) is None
    with pytest.raises(OAuthError) as lone:
        parse_assertion_request({"client_assertion": token})
    assert lone.value.error == "invalid_request"
    for bad in (
        "a.b",
        f"{b64({'alg': 'EdDSA'})}.{b64(claims())}.",
        f"{b64([1])}.{b64(claims())}.{b64(b'sig')}",
        f"{b64(b'not json')}.{b64(claims())}.{b64(b'sig')}",
        "x" * (MAX_ASSERTION_BYTES + 1),
    ):
        with pytest.raises(OAuthError) as raised:
            parse_assertion_request(
                {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": bad}
            )
        assert raised.value.error == "invalid_client"


ED = {"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" * 32)}
EC = {"kty": "EC", "crv": "P-256", "x": b64(b"\x02" * 32), "y": b64(b"\x03" * 32)}
RSA_2048 = {"kty": "RSA", "n": b64(b"\xc5" * 256), "e": "AQAB"}
RSA_1024 = {"kty": "RSA", "n": b64(b"\xc5" * 128), "e": "AQAB"}


def test_usable_jwks_fixes_the_algorithm_by_the_key() -> None:
    keys = usable_jwks(
        {
            "keys": [
                {**ED, "kid": "ed"},
                {**EC, "kid": "ec"},
                {**RSA_2048, "kid": "rsa"},
                {**RSA_1024, "kid": "small"},
                {**EC, "kid": "enc", "use": "enc"},
                {**EC, "kid": "ops", "key_ops": ["encrypt"]},
                {**ED, "kid": "private", "d": b64(b"\x04" * 32)},
                {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
                {**EC, "kid": "liar", "alg": "EdDSA"},
                {**EC, "kid": "p384", "crv": "P-384"},
                {**ED, "kid": "ed"},  # a repeated kid keeps the first
            ]
        }
    )
    assert {kid: k.alg for kid, k in keys.items()} == {
        "ed": "EdDSA",
        "ec": "ES256",
        "rsa": "RS256",
    }


def test_a_single_unnamed_key_serves_assertions_without_kid() -> None:
    assert set(usable_jwks({"keys": [ED]})) == {""}
    assert usable_jwks({"keys": [ED, EC]}) == {}
    assert set(usable_jwks({"keys": [ED, {**EC, "kid": "ec"}]})) == {"ec"}
    assert usable_jwks({"keys": "nope"}) == {}


def test_replay_cache_remembers_until_expiry_and_is_per_client() -> None:
    cache = AssertionReplayCache(max_entries=2)
    assert cache.admit("c1", "j", NOW + 60, NOW)
    assert not cache.admit("c1", "j", NOW + 60, NOW + 59)
    assert cache.admit("c2", "j", NOW + 60, NOW)
    with pytest.raises(OAuthError):  # full of live entries: refuse, never forget one
        cache.admit("c3", "j", NOW + 60, NOW)
    assert not cache.admit("c1", "j", NOW + 60, NOW + 1)
    assert cache.admit("c3", "j", NOW + 200, NOW + 61)  # the expired ones made room
    assert len(cache) == 1
    assert cache.admit("c1", "j", NOW + 200, NOW + 61)  # its own entry had expired
