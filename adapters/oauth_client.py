"""The OAuth client, wired: a connected `ClientSession` with authorization handled.

Issue 5. `open_session(url, storage=..., receiver=...)` is the one call an application (or the
`mcp-core tools/call/resources` CLI) needs: it builds the OAuth client service
(`core/services/oauth_client.OAuthClient`) on the httpx `HttpRequester`
(`adapters/http_client.HttpxClient`, under an SSRF policy), hooks it into the Streamable HTTP
transport (`adapters/client_http.HttpClientTransport`: a 401 runs the flow and retries, a 403
`insufficient_scope` steps up), opens the `ClientSession` and initializes it. A server that
needs no authorization never triggers the flow.

The outbound policy: for a loopback MCP server (a developer's machine, a test harness),
`OutboundPolicy.development()` (loopback and plain http allowed, as its authorization server
is likely local too); otherwise the production default (https, public addresses only).

`PemAssertionSigner` is the `ClientAssertionSigner` for `private_key_jwt` (RFC 7523 §2.2) on
PyJWT, from a PEM private key (ES256/384/512, RS256/384/512, PS256/384/512, EdDSA).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization

from mcp_core.adapters.browser import WebBrowserOpener
from mcp_core.adapters.client_http import HttpClientTransport
from mcp_core.adapters.http_client import HttpxClient
from mcp_core.adapters.oauth_client_receivers import LoopbackRedirectReceiver
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core.machines.oauth_exchange import Grant, OAuthClientConfig, PreRegisteredClient
from mcp_core.core.services.client import ClientSession
from mcp_core.core.services.oauth_client import OAuthClient
from mcp_core.ports.http_client import HttpRequester, OutboundPolicy
from mcp_core.ports.oauth_client import ClientAssertionSigner, RedirectReceiver, TokenStorage

__all__ = ["PemAssertionSigner", "default_policy", "open_session"]


class PemAssertionSigner:
    """Signs client assertions with a PEM private key; `alg` is the JWS algorithm."""

    def __init__(self, private_key_pem: str | bytes, *, alg: str = "ES256") -> None:
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        self._key = serialization.load_pem_private_key(pem, password=None)
        self._alg = alg

    def __repr__(self) -> str:
        return f"PemAssertionSigner(alg={self._alg!r})"

    @property
    def alg(self) -> str:
        return self._alg

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._key, algorithm=self._alg)  # type: ignore[arg-type]


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_policy(url: str) -> OutboundPolicy:
    """The outbound policy for OAuth requests on behalf of the MCP server at `url`."""
    return OutboundPolicy.development() if _is_loopback(url) else OutboundPolicy()


@asynccontextmanager
async def open_session(
    url: str,
    *,
    storage: TokenStorage | None = None,
    receiver: RedirectReceiver | None = None,
    grant: Grant = "authorization_code",
    client_name: str = "mcp-core",
    client_metadata_url: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    token_endpoint_auth_method: str | None = None,
    signer: ClientAssertionSigner | None = None,
    http: HttpRequester | None = None,
    policy: OutboundPolicy | None = None,
    headers: Mapping[str, str] | None = None,
    session_options: Mapping[str, Any] | None = None,
    initialize: bool = True,
) -> AsyncIterator[ClientSession]:
    """A `ClientSession` to the Streamable HTTP MCP server at `url`, initialized, with OAuth
    handled; the session and transport close when the block ends.

    - `storage`: where tokens live between runs (None: this process only). Use
      `VaultTokenStorage` to keep them encrypted.
    - `receiver`: how the user authorizes (None: a `LoopbackRedirectReceiver` that opens the
      web browser; only started when `grant` is `authorization_code`).
    - `client_id` (+ `client_secret` or `signer`, `token_endpoint_auth_method`): a
      pre-registered client; else a client ID metadata document (`client_metadata_url`) when
      the server supports it, else dynamic registration.
    - `grant="client_credentials"`: the client authorizes as itself (no browser).
    - `session_options`: keyword arguments for `ClientSession` (handlers, callbacks, timeout).
    - `initialize=False` hands the session over before the handshake.
    """
    policy = policy if policy is not None else default_policy(url)
    async with AsyncExitStack() as stack:
        http = http if http is not None else HttpxClient(policy)
        if grant == "authorization_code" and receiver is None:
            loopback = LoopbackRedirectReceiver(WebBrowserOpener())
            await stack.enter_async_context(loopback)
            receiver = loopback
        method = token_endpoint_auth_method
        if method is None:
            method = (
                "private_key_jwt"
                if signer is not None
                else "client_secret_basic"
                if client_secret is not None
                else "none"
            )
        preregistered: tuple[PreRegisteredClient, ...] = ()
        if client_id is not None:
            preregistered = (
                PreRegisteredClient(client_id=client_id, token_endpoint_auth_method=method),
            )
        config = OAuthClientConfig(
            server_url=url,
            grant=grant,
            redirect_uri=receiver.redirect_uri if receiver is not None else None,
            client_metadata_url=client_metadata_url,
            # The field's converter is the bare `tuple`, whose element type mypy cannot infer.
            preregistered=preregistered,  # type: ignore[arg-type]
            client_name=client_name,
        )
        oauth = OAuthClient(
            config,
            http=http,
            clock=SystemClock(),
            random=SystemRandom(),
            receiver=receiver if grant == "authorization_code" else None,
            storage=storage,
            client_secret=client_secret,
            signer=signer,
            policy=policy,
        )
        transport = await stack.enter_async_context(
            HttpClientTransport(url, headers=headers, auth=oauth)
        )
        session = await stack.enter_async_context(
            ClientSession(transport, **dict(session_options or {}))
        )
        if initialize:
            await session.initialize()
        yield session
