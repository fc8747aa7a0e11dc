"""The `TokenVerifier` port: what the resource server asks of an access token.

A verifier turns a bearer token into the facts the MCP endpoint needs (who, which client,
which scopes, for which resource), or refuses it. Implementations: tokens this project's
authorization server signed (its `KeySet`), an external identity provider's JWTs (its JWKS),
or opaque tokens through RFC 7662 introspection.

Spec: MCP 2025-11-25 "Authorization" > "Token Handling" (audience validation, no token
passthrough); RFC 6750; RFC 9068; RFC 7662; RFC 8707.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["AccessTokenInfo", "TokenInvalid", "TokenVerifier", "VerifierUnavailable"]


@attrs.frozen(kw_only=True)
class AccessTokenInfo:
    """A verified access token. `audience` always contains the resource it was checked for."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    issuer: str
    expires_at: float
    token_id: str | None = None
    # Every claim, for applications that need more; never logged.
    claims: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


class TokenInvalid(Exception):
    """The token is not acceptable (malformed, bad signature, expired, wrong audience, revoked,
    ...). `reason` is a short code for logs and metrics; the HTTP answer is 401 invalid_token."""

    def __init__(self, reason: str, description: str = "") -> None:
        super().__init__(f"{reason}: {description}" if description else reason)
        self.reason = reason
        self.description = description


class VerifierUnavailable(Exception):
    """The verifier could not decide (JWKS or introspection endpoint unreachable with nothing
    usable cached): the HTTP answer is 503, never a silent acceptance."""


@runtime_checkable
class TokenVerifier(Protocol):
    async def verify(self, token: str, *, resource: str) -> AccessTokenInfo:
        """Verify `token` for `resource` (the MCP endpoint's canonical URI, RFC 8707):
        raises `TokenInvalid` or `VerifierUnavailable`."""
        ...
