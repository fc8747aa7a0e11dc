"""`ClientSession` over `HttpClientTransport` against our own server, end to end.

The server is `create_app(server)` under uvicorn on 127.0.0.1 (a port the OS picks, bound
here), in a background thread with its own event loop, always stopped when the test ends.
Tools run on that thread, so what the server observed is reported through `threading.Event`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import uvicorn

from mcp_core.adapters.asgi import McpAsgiApp, create_app
from mcp_core.adapters.client_http import HttpClientTransport, SessionExpiredError
from mcp_core.core import Context, McpServer
from mcp_core.core.http.client import ClientSessionState, ReconnectPolicy
from mcp_core.core.protocol.errors import McpError
from mcp_core.core.services.client import ClientSession
from mcp_core.core.services.outbound import DISCARD

pytestmark = pytest.mark.anyio

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 5.0
PAGE_SIZE = 2


class Probe:
    """What the server's tools saw, readable from the test's thread."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()


def build_server(probe: Probe) -> McpServer:
    server = McpServer("client-test", version="1.0", page_size=PAGE_SIZE)

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text."""
        return text

    @server.tool()
    async def count(n: int, ctx: Context) -> str:
        """Report progress n times."""
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
        return "counted"

    @server.tool()
    async def chatty(ctx: Context) -> str:
        """Log at two levels."""
        await ctx.debug("quiet detail")
        await ctx.warning("loud news")
        return "logged"

    @server.tool()
    async def ask_model(question: str, ctx: Context) -> str:
        """Ask the client's model."""
        answer = await ctx.sample(question, max_tokens=20)
        return answer.text or ""

    @server.tool()
    async def wait_forever(ctx: Context) -> str:
        """Wait until cancelled."""
        probe.started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            probe.cancelled.set()
            raise
        return "never"

    @server.tool()
    async def polled(ctx: Context) -> str:
        """Close the stream early; the client resumes it to get the result."""
        await ctx.report_progress(1, 2)
        await ctx.close_stream()
        await anyio.sleep(0.2)
        await ctx.report_progress(2, 2)
        return "resumed"

    @server.tool()
    def announce() -> str:
        """Tell every session the tool list changed (on the standalone stream)."""
        server.notify_list_changed("tools")
        return "announced"

    return server


@contextlib.contextmanager
def run_uvicorn(app: Any) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a background thread; yields the MCP URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {STARTUP_TIMEOUT}s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT)
        sock.close()


class Live:
    def __init__(self, app: McpAsgiApp, url: str, probe: Probe) -> None:
        self.app = app
        self.url = url
        self.probe = probe


@pytest.fixture
def live() -> Iterator[Live]:
    probe = Probe()
    app = create_app(build_server(probe), retry_ms=50)
    with run_uvicorn(app) as url:
        yield Live(app, url, probe)


async def wait_until(predicate: Any, what: str, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 (the state lives on the server's thread)
            await anyio.sleep(0.01)


def transport(url: str) -> HttpClientTransport:
    return HttpClientTransport(url, reconnect=ReconnectPolicy(max_attempts=3, initial_delay=0.05))


async def test_initialize_negotiates_and_sends_the_version_header(live: Live) -> None:
    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            info = await session.initialize()
            assert info.protocol_version == "2025-11-25"
            assert info.server_info["name"] == "client-test"
            assert "tools" in info.capabilities
            assert t.state.session_id is not None
            assert t.state.protocol_version == "2025-11-25"
            await session.ping()


async def test_list_tools_follows_every_page(live: Live) -> None:
    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            await session.initialize()
            tools = await session.list_tools()
    names = {tool["name"] for tool in tools}
    assert names == {
        "add",
        "echo",
        "count",
        "chatty",
        "ask_model",
        "wait_forever",
        "polled",
        "announce",
    }
    assert len(tools) > PAGE_SIZE


async def test_call_tool_returns_the_result(live: Live) -> None:
    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            await session.initialize()
            result = await session.call_tool("add", {"a": 2, "b": 3})
            assert result["content"][0]["text"] == "5"
            with pytest.raises(McpError, match="Unknown tool"):
                await session.call_tool("nope", {})
            with pytest.raises(McpError):
                await session.request("no/such/method")


async def test_progress_reaches_the_request_callback(live: Live) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            await session.initialize()
            result = await session.call_tool("count", {"n": 3}, progress=on_progress)
    assert result["content"][0]["text"] == "counted"
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


async def test_log_messages_reach_the_logging_callback_at_the_chosen_level(live: Live) -> None:
    logs: list[dict[str, Any]] = []

    async def on_log(params: dict[str, Any]) -> None:
        logs.append(params)

    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t, logging_callback=on_log) as s:
            await s.initialize()
            await s.set_logging_level("warning")
            await s.call_tool("chatty")
    assert [(entry["level"], entry["data"]) for entry in logs] == [("warning", "loud news")]


async def test_sampling_handler_answers_the_server(live: Live) -> None:
    asked: list[dict[str, Any]] = []

    async def sample(params: dict[str, Any]) -> dict[str, Any]:
        asked.append(params)
        return {
            "role": "assistant",
            "content": {"type": "text", "text": "forty-two"},
            "model": "fake-model",
        }

    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t, sampling_handler=sample) as s:
            info = await s.initialize()
            assert info.protocol_version
            result = await s.call_tool("ask_model", {"question": "meaning?"})
    assert result["content"][0]["text"] == "forty-two"
    assert asked[0]["messages"][0]["content"]["text"] == "meaning?"


async def test_timeout_cancels_the_request_on_the_server(live: Live) -> None:
    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            await session.initialize()
            with pytest.raises(TimeoutError):
                await session.call_tool("wait_forever", timeout=0.5)
            assert live.probe.started.is_set()
            await wait_until(live.probe.cancelled.is_set, "the server to see the cancellation")
            # The session is still usable afterwards.
            assert (await session.call_tool("echo", {"text": "ok"}))["content"][0]["text"] == "ok"


async def test_caller_cancellation_cancels_the_request_on_the_server(live: Live) -> None:
    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            await session.initialize()
            with anyio.move_on_after(0.5):
                await session.call_tool("wait_forever")
            await wait_until(live.probe.cancelled.is_set, "the server to see the cancellation")


async def test_a_stream_closed_early_is_resumed_with_last_event_id(live: Live) -> None:
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            await session.initialize()
            result = await session.call_tool("polled", progress=on_progress)
    assert result["content"][0]["text"] == "resumed"
    assert steps == [1, 2]


async def test_close_deletes_the_session(live: Live) -> None:
    with anyio.fail_after(10):
        async with transport(live.url) as t, ClientSession(t) as session:
            await session.initialize()
            assert live.app.service.live_sessions == 1
        await wait_until(lambda: live.app.service.live_sessions == 0, "the session to end")


async def test_an_expired_session_fails_the_request_clearly_without_reinitialization(
    live: Live,
) -> None:
    with anyio.fail_after(10):
        async with (
            HttpClientTransport(live.url, reinitialize=False) as t,
            ClientSession(t) as session,
        ):
            info = await session.initialize()
            t.state = ClientSessionState(
                session_id="forgotten-session", protocol_version=info.protocol_version
            )
            with pytest.raises(SessionExpiredError, match="initialize a new session"):
                await session.list_tools()


async def test_an_expired_session_is_reinitialized_and_the_request_retried(live: Live) -> None:
    told: list[str] = []

    async def on_reinitialized() -> None:
        told.append(t.state.session_id or "")

    with anyio.fail_after(10):
        async with (
            HttpClientTransport(live.url, on_reinitialized=on_reinitialized) as t,
            ClientSession(t) as session,
        ):
            info = await session.initialize()
            first = t.state.session_id
            t.state = ClientSessionState(
                session_id="forgotten-session", protocol_version=info.protocol_version
            )
            # Two requests meet the 404 together: one new session serves both.
            async with anyio.create_task_group() as group:
                group.start_soon(session.list_tools)
                group.start_soon(session.list_tools)
            names = [tool["name"] for tool in await session.list_tools()]
            assert "echo" in names
            assert t.reinitializations == 1
            assert t.state.session_id not in (None, first, "forgotten-session")
            assert t.state.protocol_version == info.protocol_version
            assert told == [t.state.session_id]


async def test_messages_for_no_request_arrive_on_the_standalone_stream(live: Live) -> None:
    changed = anyio.Event()

    async def on_changed(feature: str) -> None:
        if feature == "tools":
            changed.set()

    with anyio.fail_after(10):
        async with (
            transport(live.url) as t,
            ClientSession(t, list_changed_callback=on_changed) as session,
        ):
            await session.initialize()
            await wait_until(
                lambda: any(s.standalone is not DISCARD for s in live.app.service.server.sessions),
                "the GET stream to open",
            )
            await session.call_tool("announce")
            await changed.wait()
