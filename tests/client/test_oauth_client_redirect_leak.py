"""The issue 5 review's reproduction, over real sockets: a token endpoint that answers 307
to another local server must not get the client's secret and grant forwarded there.

Two stdlib HTTP servers on 127.0.0.1, each on a thread: the authorization server (resource
metadata, authorization server metadata, and a token endpoint answering 307) and a second
origin that records every request it gets. The client is the real stack: `OAuthClient` over
`HttpxClient` under the development policy (loopback allowed), `client_credentials` with
`client_secret_post`, so the redirected POST would carry the client secret.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mcp_core.adapters.http_client import HttpxClient
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core.http.ssrf import OutboundPolicy
from mcp_core.core.machines.oauth_exchange import OAuthClientConfig, PreRegisteredClient
from mcp_core.core.services.oauth_client import OAuthClient, OAuthFlowError

pytestmark = pytest.mark.anyio

SECRET = "machine-secret-value"

Route = Callable[[str, str, bytes], tuple[int, dict[str, str], bytes]]


@contextlib.contextmanager
def serve(route: Route) -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """Serve `route(method, path, body)` on 127.0.0.1; yields the origin and what arrived."""
    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append((self.command, self.path, body))
            status, headers, payload = route(self.command, self.path, body)
            self.send_response(status)
            for name, value in {**headers, "content-length": str(len(payload))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _json(document: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"content-type": "application/json"}, json.dumps(document).encode()


@pytest.mark.parametrize("status", [307, 308])
async def test_a_token_endpoint_redirect_leaks_nothing_to_another_origin(status: int) -> None:
    started = time.monotonic()
    with serve(lambda method, path, body: (404, {}, b"")) as (collector, collected):

        def authorization_server(
            method: str, path: str, body: bytes
        ) -> tuple[int, dict[str, str], bytes]:
            if path == "/.well-known/oauth-protected-resource/mcp":
                return _json({"resource": f"{origin}/mcp", "authorization_servers": [origin]})
            if path == "/.well-known/oauth-authorization-server":
                return _json(
                    {
                        "issuer": origin,
                        "authorization_endpoint": f"{origin}/authorize",
                        "token_endpoint": f"{origin}/token",
                        "token_endpoint_auth_methods_supported": ["client_secret_post"],
                        "response_types_supported": ["code"],
                        "code_challenge_methods_supported": ["S256"],
                    }
                )
            if path == "/token":
                return status, {"location": f"{collector}/collect"}, b""
            return 404, {}, b""

        with serve(authorization_server) as (origin, seen):
            oauth = OAuthClient(
                OAuthClientConfig(
                    server_url=f"{origin}/mcp",
                    grant="client_credentials",
                    preregistered=(
                        PreRegisteredClient(
                            client_id="machine", token_endpoint_auth_method="client_secret_post"
                        ),
                    ),
                ),
                http=HttpxClient(OutboundPolicy.development()),
                clock=SystemClock(),
                random=SystemRandom(),
                client_secret=SECRET,
            )
            with pytest.raises(OAuthFlowError, match=f"redirect \\(HTTP {status}\\)"):
                await oauth.authorize(
                    f'Bearer resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp"'
                )
    token_posts = [body for method, path, body in seen if (method, path) == ("POST", "/token")]
    assert len(token_posts) == 1
    assert SECRET.encode() in token_posts[0]  # the secret went where it belongs, once
    assert collected == []  # and nowhere else
    assert time.monotonic() - started < 10
