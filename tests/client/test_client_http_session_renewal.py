"""`HttpClientTransport` when its session expires, and when its standalone stream fails.

Against our own server (`create_app` under uvicorn in a thread, as in `test_client_http`),
behind `Gate`, an ASGI middleware that records the method and `Mcp-Session-Id` of every POST
and can hold back or refuse the transport's own replayed `initialize`
("mcp-core-reinitialize-N"), so a test can act while a re-initialization is under way. The
session is expired by pointing the transport at an id the server never issued: the server
answers 404, as it does for a session it forgot (MCP 2025-11-25 "Session Management").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import orjson
import pytest

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.client_http import HttpClientTransport, SessionExpiredError
from mcp_core.core.http.client import ClientSessionState
from mcp_core.core.protocol.jsonrpc import Notification
from mcp_core.core.services.client import ClientSession

from .test_client_http import Probe, build_server, run_uvicorn

pytestmark = pytest.mark.anyio

Scope = dict[str, Any]
Receive = Any
Send = Any

REPLAY = "mcp-core-reinitialize-"


class Gate:
    """ASGI middleware in front of the MCP app (it runs on the server's thread)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.posts: list[tuple[str, str | None]] = []  # (JSON-RPC method, Mcp-Session-Id)
        self.hold_replay = 0.0  # seconds a replayed initialize waits before reaching the app
        self.refuse_replays = 0  # how many replayed initializes to answer 503

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        body = b"".join(chunks)
        message = orjson.loads(body)
        session = dict(scope["headers"]).get(b"mcp-session-id")
        self.posts.append((message.get("method"), session.decode() if session else None))
        if str(message.get("id", "")).startswith(REPLAY):
            if self.refuse_replays:
                self.refuse_replays -= 1
                await send(
                    {
                        "type": "http.response.start",
                        "status": 503,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"busy"})
                return
            await anyio.sleep(self.hold_replay)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)

    def sessionless(self) -> list[str]:
        """Methods POSTed without a session id, `initialize` aside (it starts one)."""
        return [
            method for method, session in self.posts if session is None and method != "initialize"
        ]


@pytest.fixture
def gate() -> Iterator[tuple[Gate, str]]:
    front = Gate(create_app(build_server(Probe()), retry_ms=50))
    with run_uvicorn(front) as url:
        yield front, url


async def expire(transport: HttpClientTransport) -> None:
    """Make the transport use a session id the server does not know (it answers 404)."""
    transport.state = ClientSessionState(
        session_id="forgotten-session", protocol_version=transport.state.protocol_version
    )


def text_of(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


async def test_a_reinitialization_outlives_the_cancelled_request_that_started_it(
    gate: tuple[Gate, str],
) -> None:
    front, url = gate
    with anyio.fail_after(10):
        async with HttpClientTransport(url) as t, ClientSession(t) as session:
            await session.initialize()
            await expire(t)
            front.hold_replay = 0.5
            # The call's timeout cancels it (and its POST) while the replay is held.
            with pytest.raises(TimeoutError):
                await session.call_tool("echo", {"text": "cancelled"}, timeout=0.2)
            front.hold_replay = 0.0
            assert text_of(await session.call_tool("echo", {"text": "later"})) == "later"
            assert t.state.session_id not in (None, "forgotten-session")
            assert t.reinitializations == 1
    assert front.sessionless() == []


async def test_messages_sent_during_a_reinitialization_wait_for_the_new_session(
    gate: tuple[Gate, str],
) -> None:
    front, url = gate
    answers: dict[str, str] = {}

    async def call(text: str, delay: float) -> None:
        await anyio.sleep(delay)
        answers[text] = text_of(await session.call_tool("echo", {"text": text}))

    with anyio.fail_after(10):
        async with HttpClientTransport(url) as t, ClientSession(t) as session:
            await session.initialize()
            await expire(t)
            front.hold_replay = 0.5
            async with anyio.create_task_group() as group:
                group.start_soon(call, "first", 0.0)  # meets the 404, re-initializes
                group.start_soon(call, "second", 0.2)  # sent while the replay is held
                await anyio.sleep(0.25)
                await t.send(Notification(method="notifications/roots/list_changed"))
            assert answers == {"first": "first", "second": "second"}
            assert t.reinitializations == 1
            new = t.state.session_id
    assert front.sessionless() == []
    # Each message went once, in the new session, after its initialized.
    after = [method for method, session in front.posts if session == new]
    assert after[0] == "notifications/initialized"
    assert sorted(after[1:]) == [
        "notifications/roots/list_changed",
        "tools/call",
        "tools/call",
    ]


@pytest.mark.parametrize("failure", ["refused", "too slow"])
async def test_a_failed_reinitialization_is_tried_again_by_the_next_request(
    gate: tuple[Gate, str], failure: str
) -> None:
    front, url = gate
    with anyio.fail_after(10):
        async with (
            HttpClientTransport(url, reinitialize_timeout=0.3) as t,
            ClientSession(t) as session,
        ):
            await session.initialize()
            await expire(t)
            if failure == "refused":
                front.refuse_replays = 1
                match = "HTTP 503"
            else:
                front.hold_replay = 1.0
                match = "took longer than 0.3s"
            with pytest.raises(SessionExpiredError, match=match):
                await session.call_tool("echo", {"text": "lost"})
            front.hold_replay = 0.0
            assert text_of(await session.call_tool("echo", {"text": "again"})) == "again"
            assert t.reinitializations == 2
            assert t.state.session_id not in (None, "forgotten-session")
    assert front.sessionless() == []


class _Broken(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b": a comment\n\n"
        raise RuntimeError("the stream broke in an unexpected way")


class BrokenGet(httpx.AsyncBaseTransport):
    """Real HTTP for POST and DELETE; every GET fails with an error that is not httpx's, as
    it opens or as its body is read."""

    def __init__(self, where: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.where = where
        self.gets = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return await self.inner.handle_async_request(request)
        self.gets += 1
        if self.where == "open":
            raise RuntimeError("the GET could not be built")
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Broken())

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("where", ["open", "read"])
async def test_a_failing_standalone_stream_ends_alone_and_the_session_goes_on(
    gate: tuple[Gate, str], where: str
) -> None:
    _, url = gate
    broken = BrokenGet(where)
    with anyio.fail_after(10):
        async with httpx.AsyncClient(transport=broken) as client:
            async with HttpClientTransport(url, client=client) as t, ClientSession(t) as session:
                await session.initialize()
                while broken.gets == 0:  # noqa: ASYNC110 (the GET starts in a task of its own)
                    await anyio.sleep(0.01)
                await anyio.sleep(0.05)  # let the failure happen
                assert text_of(await session.call_tool("echo", {"text": "alive"})) == "alive"
            assert broken.gets == 1  # not reopened in a loop
