"""PKCE with the S256 method only (RFC 7636; OAuth 2.1 draft 4.1.1, 7.5.2; RFC 9700 2.1.1).

- Authorization endpoint (RFC 7636 4.3, 4.4.1): `check_code_challenge` requires a
  `code_challenge` of exactly 43 base64url characters (the unpadded encoding of a SHA-256
  digest) and `code_challenge_method=S256`. A missing challenge, a missing method (which
  RFC 7636 4.3 defaults to `plain`) and `plain` itself are refused with `invalid_request`, as
  RFC 7636 4.4.1 says for an unsupported transformation. That closes the downgrade to `plain`.
- Token endpoint (RFC 7636 4.5, 4.6): `verify_code_verifier` requires 43 to 128 characters of
  the unreserved set `[A-Za-z0-9-._~]` (a malformed verifier is `invalid_request`) and compares
  `BASE64URL(SHA256(ASCII(verifier)))` with the stored challenge using `hmac.compare_digest`
  (a mismatch is `invalid_grant`).
- `s256_challenge` computes the challenge, for clients and tests. The verifier itself must come
  from a CSPRNG (RFC 7636 4.1, 7.1); this pure module takes it as an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from .errors import INVALID_GRANT, INVALID_REQUEST, OAuthError

__all__ = [
    "CHALLENGE_LENGTH",
    "MAX_VERIFIER_LENGTH",
    "MIN_VERIFIER_LENGTH",
    "S256",
    "check_code_challenge",
    "check_code_verifier",
    "s256_challenge",
    "verify_code_verifier",
]

S256 = "S256"
CHALLENGE_LENGTH = 43
MIN_VERIFIER_LENGTH = 43
MAX_VERIFIER_LENGTH = 128

_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def s256_challenge(verifier: str) -> str:
    """`BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))` without padding (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_code_challenge(challenge: object, method: object) -> str:
    """The challenge to store with the authorization code; raises `OAuthError(invalid_request)`.

    `challenge` and `method` are the raw request parameters (None when absent).
    """
    if challenge is None:
        raise OAuthError(INVALID_REQUEST, "code_challenge is required (PKCE S256)")
    if method is None:
        raise OAuthError(INVALID_REQUEST, "code_challenge_method is required and must be S256")
    if method != S256:
        raise OAuthError(INVALID_REQUEST, "code_challenge_method not supported: only S256")
    if not isinstance(challenge, str) or _CHALLENGE.fullmatch(challenge) is None:
        raise OAuthError(INVALID_REQUEST, "code_challenge must be 43 base64url characters")
    # 43 characters carry 258 bits; a SHA-256 digest fills 256, so the last two must be zero.
    decoded = base64.urlsafe_b64decode(challenge + "=")
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != challenge:
        raise OAuthError(INVALID_REQUEST, "code_challenge is not a canonical base64url digest")
    return challenge


def check_code_verifier(verifier: object) -> str:
    """`verifier` if well formed (RFC 7636 4.1); raises `OAuthError(invalid_request)`."""
    if verifier is None:
        raise OAuthError(INVALID_REQUEST, "code_verifier is required")
    if not isinstance(verifier, str) or _VERIFIER.fullmatch(verifier) is None:
        raise OAuthError(INVALID_REQUEST, "code_verifier must be 43-128 unreserved characters")
    return verifier


def verify_code_verifier(verifier: object, challenge: str) -> None:
    """Check a token request's `code_verifier` against the stored S256 `challenge`.

    Raises `OAuthError(invalid_request)` for a malformed verifier and
    `OAuthError(invalid_grant)` when it does not match (RFC 7636 4.6).
    """
    checked = check_code_verifier(verifier)
    expected = s256_challenge(checked).encode("ascii")
    if not hmac.compare_digest(expected, challenge.encode("ascii", "replace")):
        raise OAuthError(INVALID_GRANT, "code_verifier does not match the code_challenge")
