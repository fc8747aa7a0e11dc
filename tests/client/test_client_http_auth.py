"""`HttpClientTransport` with a `RequestAuthorizer`: 401 and 403 handed to it, the request sent
again with the new header, bounded; and a stream that ends without its response fails the
request instead of leaving it waiting. Against an `httpx.MockTransport` server."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import httpx
import pytest

from mcp_core.adapters.client_http import (
    MAX_AUTH_RETRIES,
    HttpClientTransport,
    StreamEnded,
    UnauthorizedError,
)
from mcp_core.core.services.client import ClientSession

pytestmark = pytest.mark.anyio

URL = "http://mcp.test/mcp"
CHALLENGE = 'Bearer resource_metadata="http://mcp.test/.well-known/oauth-protected-resource"'


class FakeAuthorizer:
    """Hands out `token-N`; records what it was told."""

    def __init__(self, *, grant: bool = True) -> None:
        self.grant = grant
        self.token: str | None = None
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.failure: str | None = None

    async def authorization(self) -> str | None:
        return None if self.token is None else f"Bearer {self.token}"

    async def _renew(self, kind: str, challenge: str | None, sent: str | None) -> bool:
        self.calls.append((kind, challenge, sent))
        if not self.grant:
            self.failure = "the user declined"
            return False
        self.token = f"token-{len(self.calls)}"
        return True

    async def unauthorized(self, www_authenticate: str | None, sent: str | None) -> bool:
        return await self._renew("401", www_authenticate, sent)

    async def forbidden(self, www_authenticate: str | None, sent: str | None) -> bool:
        return await self._renew("403", www_authenticate, sent)


Respond = Callable[[dict[str, object], httpx.Request], httpx.Response | None]


def mock_server(respond: Respond) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A server answering initialize, notifications, GET (405) and DELETE; `respond` may take
    any POSTed message first."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(405)
        if request.method == "DELETE":
            return httpx.Response(200)
        message = json.loads(request.content)
        answer = respond(message, request)
        if answer is not None:
            return answer
        if "id" not in message:
            return httpx.Response(202)
        result: dict[str, object] = {}
        if message["method"] == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "serverInfo": {"name": "mock", "version": "1"},
            }
        return httpx.Response(
            200,
            json={"jsonrpc": "2.0", "id": message["id"], "result": result},
            headers={"mcp-session-id": "s-1"},
        )

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


def _needs(token: str, status: int = 401) -> Respond:
    def respond(message: dict[str, object], request: httpx.Request) -> httpx.Response | None:
        if request.headers.get("authorization") == f"Bearer {token}":
            return None
        header = CHALLENGE if status == 401 else 'Bearer error="insufficient_scope", scope="x"'
        return httpx.Response(status, headers={"www-authenticate": header})

    return respond


async def test_a_401_runs_the_flow_and_the_request_is_sent_again() -> None:
    client, seen = mock_server(_needs("token-1"))
    auth = FakeAuthorizer()
    with anyio.fail_after(5):
        async with (
            HttpClientTransport(URL, client=client, auth=auth) as transport,
            ClientSession(transport) as session,
        ):
            await session.initialize()
            await session.ping()
    assert auth.calls == [("401", CHALLENGE, None)]
    posts = [r for r in seen if r.method == "POST"]
    assert posts[0].headers.get("authorization") is None
    assert all(r.headers["authorization"] == "Bearer token-1" for r in posts[1:])
    await client.aclose()


async def test_a_403_steps_up_and_sends_again() -> None:
    auth = FakeAuthorizer()
    auth.token = "token-0"
    client, _ = mock_server(_needs("token-1", status=403))
    with anyio.fail_after(5):
        async with (
            HttpClientTransport(URL, client=client, auth=auth) as transport,
            ClientSession(transport) as session,
        ):
            await session.initialize()
    assert [kind for kind, _, _ in auth.calls] == ["403"]
    assert auth.calls[0][2] == "Bearer token-0"
    await client.aclose()


async def test_a_refusal_the_authorizer_cannot_fix_fails_the_request_with_its_reason() -> None:
    client, _ = mock_server(_needs("never"))
    auth = FakeAuthorizer(grant=False)
    with anyio.fail_after(5):
        async with (
            HttpClientTransport(URL, client=client, auth=auth) as transport,
            ClientSession(transport) as session,
        ):
            with pytest.raises(UnauthorizedError, match="the user declined") as caught:
                await session.initialize()
    assert caught.value.status == 401
    await client.aclose()


async def test_a_server_that_keeps_refusing_ends_the_request_after_a_bound() -> None:
    client, _ = mock_server(_needs("never"))
    auth = FakeAuthorizer()
    with anyio.fail_after(5):
        async with (
            HttpClientTransport(URL, client=client, auth=auth) as transport,
            ClientSession(transport) as session,
        ):
            with pytest.raises(UnauthorizedError):
                await session.initialize()
    assert len(auth.calls) == MAX_AUTH_RETRIES + 1
    await client.aclose()


async def test_a_stream_that_ends_without_its_response_fails_the_request() -> None:
    def respond(message: dict[str, object], request: httpx.Request) -> httpx.Response | None:
        if message.get("method") == "tools/list":
            # An event stream with a notification and no event id: it cannot be resumed.
            body = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/x"}\n\n'
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        return None

    client, _ = mock_server(respond)
    with anyio.fail_after(5):
        async with (
            HttpClientTransport(URL, client=client) as transport,
            ClientSession(transport) as session,
        ):
            await session.initialize()
            with pytest.raises(StreamEnded, match="no event id"):
                await session.list_tools()
    await client.aclose()
