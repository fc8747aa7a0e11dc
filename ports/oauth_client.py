"""Ports of the OAuth client (issue 5): token storage, the redirect receiver, the JWT signer.

The OAuth client service (`mcp_core.core.services.oauth_client`) drives the code-exchange
machine (`core/machines/oauth_exchange.py`); what differs per application sits behind these
ports:

- `TokenStorage`: where a grant lives between runs. A grant is keyed by the authorization
  server's issuer (and the MCP server it was granted for, the RFC 8707 resource): tokens are
  never shown to another issuer (MCP "Token Audience Binding and Validation"). Adapters:
  `InMemoryTokenStorage`, and `VaultTokenStorage`, which seals each grant with the vault
  (`mcp_core.adapters.oauth_client_storage`).
- `RedirectReceiver`: takes the user through the authorization request and hands back the
  query of the redirect (RFC 6749 §4.1.2). A desktop client opens a browser and listens on a
  loopback redirect URI (RFC 8252 §7.3); a web application completes a callback itself; a test
  harness whose authorization endpoint redirects at once follows that redirect with an HTTP
  client (`mcp_core.adapters.oauth_client_receivers`).
- `ClientAssertionSigner`: signs the JWT a `private_key_jwt` client authenticates with
  (RFC 7523 §2.2); the key never reaches the service.

The HTTP client is `mcp_core.ports.http_client.HttpRequester`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "AuthorizationAbandonedError",
    "ClientAssertionSigner",
    "RedirectReceiver",
    "StoredGrant",
    "TokenStorage",
]


@attrs.frozen(kw_only=True)
class StoredGrant:
    """One authorization, as a `TokenStorage` keeps it.

    - `issuer`: the authorization server that granted it (the key).
    - `resource`: the MCP server it was granted for (RFC 8707 resource indicator).
    - `progress`: the machine's data in `authorized`, as JSON (tokens, the validated server's
      facts, this client's identity there); `OAuthClient` writes and reads it.
    - `client_secret`: the secret a dynamic registration returned, if any (RFC 7591 §3.2.1).
    """

    issuer: str
    resource: str
    progress: Mapping[str, Any] = attrs.field(repr=False)
    client_secret: str | None = attrs.field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "resource": self.resource,
            "progress": dict(self.progress),
            "client_secret": self.client_secret,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredGrant:
        """ValueError when `data` is not what `to_json` wrote."""
        issuer, resource = data.get("issuer"), data.get("resource")
        progress, secret = data.get("progress"), data.get("client_secret")
        if not isinstance(issuer, str) or not isinstance(resource, str):
            raise ValueError("a stored grant needs an issuer and a resource")
        if not isinstance(progress, Mapping) or not (secret is None or isinstance(secret, str)):
            raise ValueError("a stored grant needs its progress and an optional client secret")
        return cls(issuer=issuer, resource=resource, progress=progress, client_secret=secret)


@runtime_checkable
class TokenStorage(Protocol):
    """Grants by (issuer, resource).

    - `load(issuer, resource)`: the grant, or None.
    - `find(resource)`: a grant for `resource` from any issuer (the newest saved), or None;
      used at start-up, before the server has named its authorization server.
    - `save(grant)`: replace what is stored under (grant.issuer, grant.resource); a rotated
      refresh token replaces the old one (OAuth 2.1 §4.3.1).
    - `delete(issuer, resource)`: forget it; no error when absent.
    A storage that cannot do its job raises an exception; the service reports it as a failed
    store (`StoreFailed`) and the flow fails rather than claim tokens it could not keep.
    """

    async def load(self, issuer: str, resource: str) -> StoredGrant | None: ...

    async def find(self, resource: str) -> StoredGrant | None: ...

    async def save(self, grant: StoredGrant) -> None: ...

    async def delete(self, issuer: str, resource: str) -> None: ...


class AuthorizationAbandonedError(Exception):
    """The authorization request will not complete: no browser, the user gave up, no redirect
    in time, a redirect that carried no query. `reason` is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class RedirectReceiver(Protocol):
    """Takes the user through one authorization request.

    - `redirect_uri`: the URI the authorization server sends the user back to (registered with
      it, and sent in the request).
    - `authorize(url)`: sends the user to `url` and returns the query parameters of the
      redirect that came back to `redirect_uri` (`code` or `error`, `state`, `iss`), as they
      came: the service checks them. Raises `AuthorizationAbandonedError` when it cannot.
    - A receiver that others can reach too (a loopback listener, an application's callback
      URL) takes only the redirect whose `state` is the one in `url` (constant-time compare),
      refuses the others and keeps waiting: a forged redirect must not end the request. The
      service's own `state` check stays the second line of defence.
    """

    @property
    def redirect_uri(self) -> str: ...

    async def authorize(self, url: str) -> Mapping[str, str]: ...


@runtime_checkable
class ClientAssertionSigner(Protocol):
    """Signs a client assertion (RFC 7523 §3: `iss`, `sub`, `aud`, `jti`, `exp`, `iat`) with
    the client's private key; `alg` names the JWS algorithm (RFC 7518)."""

    @property
    def alg(self) -> str: ...

    def sign(self, claims: Mapping[str, Any]) -> str: ...
