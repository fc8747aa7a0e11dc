"""RFC 9068 access token claim rules, with the time passed in."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.oauth.claims import (
    MAX_LEEWAY,
    REQUIRED_CLAIMS,
    ClaimRule,
    Verdict,
    check_access_token,
    missing_scopes,
    token_scopes,
)

ISSUER = "https://auth.example"
RESOURCE = "https://mcp.example/mcp"
NOW = 1_700_000_000
HEADER = {"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"}
CLAIMS: dict[str, Any] = {
    "iss": ISSUER,
    "aud": RESOURCE,
    "exp": NOW + 300,
    "iat": NOW - 10,
    "nbf": NOW - 10,
    "sub": "user-1",
    "client_id": "client-1",
    "jti": "t-1",
    "scope": "mcp:tools files:read",
}


def _check(
    header: dict[str, Any] | None = None,
    now: float = NOW,
    leeway: float = 0,
    **claims: Any,
) -> Verdict:
    merged = {**CLAIMS, **claims}
    merged = {k: v for k, v in merged.items() if v is not _DROP}
    return check_access_token(
        header=HEADER if header is None else header,
        claims=merged,
        issuer=ISSUER,
        resource=RESOURCE,
        now=now,
        leeway=leeway,
    )


_DROP = object()


def test_valid_token_passes() -> None:
    verdict = _check()
    assert verdict.ok
    assert verdict == Verdict()


def test_audience_may_be_a_list_containing_the_resource() -> None:
    assert _check(aud=["https://other.example", RESOURCE]).ok


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        ({"alg": "none", "typ": "at+jwt"}, ClaimRule.ALGORITHM),
        ({"alg": "HS256", "typ": "at+jwt"}, ClaimRule.ALGORITHM),
        ({"typ": "at+jwt"}, ClaimRule.ALGORITHM),
        ({"alg": ["EdDSA"], "typ": "at+jwt"}, ClaimRule.ALGORITHM),
        ({"alg": "EdDSA"}, ClaimRule.TYPE),
        ({"alg": "EdDSA", "typ": "JWT"}, ClaimRule.TYPE),
        ({"alg": "EdDSA", "typ": "at+jwt "}, ClaimRule.TYPE),
        ({"alg": "EdDSA", "typ": 1}, ClaimRule.TYPE),
    ],
)
def test_header_rules(header: dict[str, Any], rule: ClaimRule) -> None:
    assert _check(header=header).rule is rule


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_typ_is_compared_case_insensitively(typ: str) -> None:
    assert _check(header={"alg": "ES256", "typ": typ}).ok


def test_none_is_never_accepted_even_if_listed() -> None:
    verdict = check_access_token(
        header={"alg": "none", "typ": "at+jwt"},
        claims=CLAIMS,
        issuer=ISSUER,
        resource=RESOURCE,
        now=NOW,
        algorithms=["none", "EdDSA"],
    )
    assert verdict.rule is ClaimRule.ALGORITHM


@pytest.mark.parametrize("name", REQUIRED_CLAIMS)
def test_every_required_claim_is_required(name: str) -> None:
    verdict = _check(**{name: _DROP})
    assert verdict.rule is ClaimRule.MISSING_CLAIM
    assert name in verdict.detail
    assert _check(**{name: None}).rule is ClaimRule.MISSING_CLAIM


@pytest.mark.parametrize(
    ("claims", "rule"),
    [
        ({"iss": "https://evil.example"}, ClaimRule.ISSUER),
        ({"iss": ISSUER + "/"}, ClaimRule.ISSUER),
        ({"iss": [ISSUER]}, ClaimRule.ISSUER),
        ({"aud": "https://other.example/mcp"}, ClaimRule.AUDIENCE),
        ({"aud": RESOURCE + "/"}, ClaimRule.AUDIENCE),
        ({"aud": []}, ClaimRule.AUDIENCE),
        ({"aud": [RESOURCE, 1]}, ClaimRule.AUDIENCE),
        ({"aud": {"x": RESOURCE}}, ClaimRule.AUDIENCE),
        ({"exp": "1700000300"}, ClaimRule.TIME_FORMAT),
        ({"exp": True}, ClaimRule.TIME_FORMAT),
        ({"exp": float("inf")}, ClaimRule.TIME_FORMAT),
        ({"exp": float("nan")}, ClaimRule.TIME_FORMAT),
        ({"iat": "now"}, ClaimRule.TIME_FORMAT),
        ({"nbf": None}, ClaimRule.TIME_FORMAT),
        ({"exp": NOW}, ClaimRule.EXPIRED),
        ({"exp": NOW - 1}, ClaimRule.EXPIRED),
        ({"nbf": NOW + 1}, ClaimRule.NOT_YET_VALID),
        ({"iat": NOW + 1}, ClaimRule.ISSUED_IN_FUTURE),
        ({"sub": ""}, ClaimRule.CLAIM_FORMAT),
        ({"sub": 5}, ClaimRule.CLAIM_FORMAT),
        ({"client_id": ["c"]}, ClaimRule.CLAIM_FORMAT),
        ({"jti": ""}, ClaimRule.CLAIM_FORMAT),
        ({"scope": ["mcp:tools"]}, ClaimRule.CLAIM_FORMAT),
    ],
)
def test_claim_rules(claims: dict[str, Any], rule: ClaimRule) -> None:
    assert _check(**claims).rule is rule


def test_leeway_tolerates_small_clock_skew() -> None:
    assert _check(exp=NOW - 30, leeway=60).ok
    assert _check(nbf=NOW + 30, iat=NOW + 30, leeway=60).ok
    assert _check(exp=NOW - 60, leeway=60).rule is ClaimRule.EXPIRED
    assert _check(nbf=NOW + 61, leeway=60).rule is ClaimRule.NOT_YET_VALID


@pytest.mark.parametrize("leeway", [-1, MAX_LEEWAY + 0.5, 3600])
def test_leeway_is_capped(leeway: float) -> None:
    with pytest.raises(ValueError, match="leeway"):
        _check(leeway=leeway)


def test_nbf_is_optional() -> None:
    assert _check(nbf=_DROP).ok


def test_scopes() -> None:
    assert token_scopes(CLAIMS) == {"mcp:tools", "files:read"}
    assert token_scopes({}) == frozenset()
    assert token_scopes({"scope": 1}) == frozenset()
    assert missing_scopes({"a"}, ["a", "b", "c", "b"]) == ("b", "c")
    assert missing_scopes({"a", "b"}, ["a"]) == ()


@given(st.integers(-1000, 1000), st.integers(0, MAX_LEEWAY))
def test_expiry_boundary(offset: int, leeway: int) -> None:
    verdict = _check(exp=NOW + offset, iat=NOW - 2000, nbf=_DROP, leeway=leeway)
    assert verdict.ok == (offset + leeway > 0)


@given(st.text(max_size=30) | st.lists(st.text(max_size=30), max_size=3))
def test_audience_check_accepts_only_the_resource(aud: str | list[str]) -> None:
    contains = aud == RESOURCE or (isinstance(aud, list) and RESOURCE in aud)
    assert _check(aud=aud).ok == contains
