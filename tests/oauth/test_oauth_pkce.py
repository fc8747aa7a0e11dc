"""PKCE S256 only (RFC 7636 4.1-4.6): the downgrade to plain and malformed values are refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.oauth.errors import INVALID_GRANT, INVALID_REQUEST, OAuthError
from mcp_core.core.oauth.pkce import (
    S256,
    check_code_challenge,
    check_code_verifier,
    s256_challenge,
    verify_code_verifier,
)

# RFC 7636 Appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

_verifier = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~",
    min_size=43,
    max_size=128,
)


def test_rfc_7636_appendix_b_example() -> None:
    assert s256_challenge(RFC_VERIFIER) == RFC_CHALLENGE
    assert check_code_challenge(RFC_CHALLENGE, S256) == RFC_CHALLENGE
    verify_code_verifier(RFC_VERIFIER, RFC_CHALLENGE)


def _refused(challenge: object, method: object) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        check_code_challenge(challenge, method)
    return info.value


def test_missing_challenge_is_invalid_request() -> None:
    assert _refused(None, S256).error == INVALID_REQUEST
    assert _refused(None, None).error == INVALID_REQUEST


def test_missing_method_is_refused_because_it_means_plain() -> None:
    error = _refused(RFC_CHALLENGE, None)
    assert error.error == INVALID_REQUEST
    assert "S256" in (error.description or "")


@pytest.mark.parametrize("method", ["plain", "PLAIN", "s256", "S256 ", "", "S512", 256, ["S256"]])
def test_any_method_but_s256_is_refused(method: object) -> None:
    assert _refused(RFC_CHALLENGE, method).error == INVALID_REQUEST


@pytest.mark.parametrize(
    "challenge",
    [
        "",
        RFC_CHALLENGE[:-1],  # 42
        RFC_CHALLENGE + "A",  # 44
        RFC_CHALLENGE + "=",  # padded
        RFC_CHALLENGE[:-1] + "+",  # standard base64 alphabet
        RFC_CHALLENGE[:-1] + "/",
        RFC_CHALLENGE[:-1] + ".",
        RFC_CHALLENGE[:-1] + "\n",
        RFC_CHALLENGE[:-1] + "d",  # low bits set: not the encoding of any 32-byte digest
        RFC_VERIFIER + "A" * 20,  # a plain verifier sent as the challenge
        "A" * 10_000,
        123,
        None,
    ],
)
def test_malformed_challenges_are_refused(challenge: object) -> None:
    assert _refused(challenge, S256).error == INVALID_REQUEST


def test_wrong_verifier_is_invalid_grant() -> None:
    with pytest.raises(OAuthError) as info:
        verify_code_verifier("x" * 43, RFC_CHALLENGE)
    assert info.value.error == INVALID_GRANT


def test_plain_downgrade_verifier_equal_to_challenge_is_refused() -> None:
    # With `plain`, the verifier would equal the challenge; S256 never accepts that.
    with pytest.raises(OAuthError) as info:
        verify_code_verifier(RFC_CHALLENGE, RFC_CHALLENGE)
    assert info.value.error == INVALID_GRANT


@pytest.mark.parametrize(
    "verifier",
    [
        None,
        "",
        "a" * 42,
        "a" * 129,
        "a" * 100_000,
        "a" * 42 + " ",
        "a" * 42 + "+",
        "a" * 42 + "/",
        "a" * 42 + "=",
        "a" * 42 + "é",
        "a" * 42 + "\n",
        b"a" * 43,
        43,
    ],
)
def test_malformed_verifiers_are_invalid_request(verifier: object) -> None:
    with pytest.raises(OAuthError) as info:
        verify_code_verifier(verifier, RFC_CHALLENGE)
    assert info.value.error == INVALID_REQUEST
    with pytest.raises(OAuthError):
        check_code_verifier(verifier)


@pytest.mark.parametrize("length", [43, 64, 128])
def test_verifier_length_bounds_are_inclusive(length: int) -> None:
    verifier = "a" * length
    verify_code_verifier(verifier, s256_challenge(verifier))


def test_non_ascii_stored_challenge_never_matches() -> None:
    with pytest.raises(OAuthError):
        verify_code_verifier(RFC_VERIFIER, "é" * 43)


@given(_verifier)
def test_every_verifier_verifies_against_its_own_challenge(verifier: str) -> None:
    challenge = s256_challenge(verifier)
    assert check_code_challenge(challenge, S256) == challenge
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64decode(challenge + "=") == digest
    verify_code_verifier(verifier, challenge)


@given(_verifier, _verifier)
def test_a_different_verifier_never_verifies(verifier: str, other: str) -> None:
    if verifier == other:
        return
    with pytest.raises(OAuthError) as info:
        verify_code_verifier(other, s256_challenge(verifier))
    assert info.value.error == INVALID_GRANT
