"""The built-in authorization server, set up for the conformance suite's authorization scenarios.

`@modelcontextprotocol/conformance authorization` plays an OAuth client against an
authorization server: it reads the RFC 8414 metadata, then runs an authorization code grant
with PKCE through a callback server of its own on `http://127.0.0.1:<callback port>/callback`,
with a client it expects to be registered already. This module serves an MCP endpoint behind
`create_secured_app` with the built-in server on the same origin, that one public client
pre-registered (the "clients from configuration" way of registration), consent automatic
(one local user) and everything in memory.

Configuration, from the environment (the runner in `scripts/conformance.sh authorization`
sets it):

- `MCP_CORE_AS_ISSUER`: the issuer, `http://127.0.0.1:<port>` (the port this is served on);
- `MCP_CORE_AS_CALLBACK_PORT`: the suite's callback port (default 3000);
- `MCP_CORE_AS_CLIENT_ID`: the pre-registered client's id (default `conformance-client`).

    MCP_CORE_AS_ISSUER=http://127.0.0.1:3002 \\
        mcp-core serve examples/conformance_authorization_server.py:build --port 3002
"""

from __future__ import annotations

import os
from typing import Any

from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.http_client import HttpxClient
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core import McpServer
from mcp_core.core.services.authorization_server import AuthorizationServer, StaticClient

__all__ = ["build"]


def build() -> Any:
    """The ASGI app: an MCP endpoint at `/mcp` and the authorization server beside it."""
    issuer = os.environ.get("MCP_CORE_AS_ISSUER", "http://127.0.0.1:3002").rstrip("/")
    callback_port = int(os.environ.get("MCP_CORE_AS_CALLBACK_PORT", "3000"))
    client_id = os.environ.get("MCP_CORE_AS_CLIENT_ID", "conformance-client")
    server = McpServer("conformance-authorization-server", "1.0.0")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back (a tool to call with the token)."""
        return text

    clock = SystemClock()
    authorization = AuthorizationServer(
        issuer,
        clients=InMemoryClientStore(),
        grants=InMemoryGrantStore(),
        keys=InMemoryKeySet(clock=clock),
        clock=clock,
        random=SystemRandom(),
        consent="auto",
        static_clients=[
            StaticClient(
                client_id=client_id,
                metadata={
                    "redirect_uris": [f"http://127.0.0.1:{callback_port}/callback"],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "client_name": "MCP conformance suite",
                    "application_type": "native",
                },
            )
        ],
        resources={f"{issuer}/mcp"},
        # Client ID metadata documents (fetched under the default SSRF policy).
        http=HttpxClient(),
    )
    return create_secured_app(server, resource=f"{issuer}/mcp", authorization=authorization)
