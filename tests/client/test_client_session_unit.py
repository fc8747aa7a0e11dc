"""`ClientSession` against a scripted fake server: the edges a real server rarely shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from mcp_core.core.protocol import errors
from mcp_core.core.protocol.errors import McpError
from mcp_core.core.protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    Response,
)
from mcp_core.core.services.client import (
    ClientError,
    ClientSession,
    Incoming,
    RequestFailed,
    TransportClosed,
    UnsupportedProtocolVersion,
)

pytestmark = pytest.mark.anyio

Script = Callable[[Request], list[Incoming]]


class FakeTransport:
    """Records what the client sent; answers each request with what `script` returns."""

    def __init__(self, script: Script | None = None, version: str = "2025-11-25") -> None:
        self.sent: list[Message] = []
        self.version = version
        self.script = script or (lambda request: [])
        self.closed = False
        self._in, self._out = anyio.create_memory_object_stream[Incoming](100)

    async def push(self, item: Incoming) -> None:
        await self._in.send(item)

    def end(self) -> None:
        self._in.close()

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if isinstance(message, Request):
            if message.method == "initialize":
                result = {
                    "protocolVersion": self.version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake", "version": "1"},
                }
                await self.push(Response(id=message.id, result=result))
            for item in self.script(message):
                await self.push(item)

    async def receive(self) -> AsyncIterator[Incoming]:
        async with self._out:
            async for item in self._out:
                yield item

    async def close(self) -> None:
        self.closed = True
        self._in.close()

    def answers(self) -> list[Response | ErrorResponse]:
        return [m for m in self.sent if isinstance(m, (Response, ErrorResponse))]

    async def wait_answers(self, n: int) -> list[Response | ErrorResponse]:
        with anyio.fail_after(5):
            while len(self.answers()) < n:  # noqa: ASYNC110 (no event to wait on)
                await anyio.sleep(0.01)
        return self.answers()


async def test_a_server_version_we_do_not_support_is_refused() -> None:
    transport = FakeTransport(version="2024-11-05")
    async with ClientSession(transport) as session:
        with pytest.raises(UnsupportedProtocolVersion, match="2024-11-05"):
            await session.initialize()
    assert not any(
        isinstance(m, Notification) and m.method == "notifications/initialized"
        for m in transport.sent
    )
    assert transport.closed


async def test_initialize_declares_capabilities_of_registered_handlers() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {}

    transport = FakeTransport()
    session = ClientSession(
        transport,
        sampling_handler=handler,
        url_elicitation_handler=handler,
        roots_handler=handler,
        roots_list_changed=True,
    )
    async with session:
        await session.initialize()
    init = transport.sent[0]
    assert isinstance(init, Request)
    assert init.params is not None
    assert init.params["capabilities"] == {
        "sampling": {},
        "elicitation": {"url": {}},
        "roots": {"listChanged": True},
    }
    assert isinstance(transport.sent[1], Notification)
    assert transport.sent[1].method == "notifications/initialized"


async def test_unknown_responses_are_ignored_and_errors_raise_mcp_error() -> None:
    def script(request: Request) -> list[Incoming]:
        if request.method == "ping":
            return [
                Response(id=999, result={}),
                ErrorResponse(id=request.id, code=errors.INVALID_PARAMS, message="bad"),
            ]
        return []

    async with ClientSession(FakeTransport(script)) as session:
        await session.initialize()
        with pytest.raises(McpError) as caught:
            await session.ping()
    assert caught.value.code == errors.INVALID_PARAMS


async def test_a_transport_that_ends_fails_pending_requests() -> None:
    transport = FakeTransport()
    outcome: list[BaseException] = []

    async def list_tools(session: ClientSession) -> None:
        try:
            await session.list_tools()
        except TransportClosed as exc:
            outcome.append(exc)

    async with ClientSession(transport) as session:
        await session.initialize()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(list_tools, session)
                while not any(  # noqa: ASYNC110
                    isinstance(m, Request) and m.method == "tools/list" for m in transport.sent
                ):
                    await anyio.sleep(0.01)
                transport.end()
        with pytest.raises(TransportClosed, match="cannot send ping"):
            await session.ping()
    assert len(outcome) == 1
    assert "tools/list: the transport closed before the response arrived" in str(outcome[0])


async def test_transport_request_failure_reaches_the_caller() -> None:
    def script(request: Request) -> list[Incoming]:
        return [RequestFailed(request_id=request.id, error=ClientError("stream gone"))]

    async with ClientSession(FakeTransport(script)) as session:
        with pytest.raises(ClientError, match="stream gone"):
            await session.ping()


async def test_pagination_stops_on_a_repeated_cursor() -> None:
    def script(request: Request) -> list[Incoming]:
        return [Response(id=request.id, result={"tools": [{"name": "x"}], "nextCursor": "c"})]

    async with ClientSession(FakeTransport(script)) as session:
        with pytest.raises(ClientError, match="repeated cursor"):
            await session.list_tools()


async def test_server_requests_are_answered_by_their_handlers() -> None:
    async def form(params: dict[str, Any]) -> dict[str, Any]:
        return {"action": "accept", "content": {"name": params["message"]}}

    async def url(params: dict[str, Any]) -> dict[str, Any]:
        return {"action": "decline"}

    async def roots(params: dict[str, Any]) -> dict[str, Any]:
        raise McpError(errors.INVALID_REQUEST, "no roots for you")

    transport = FakeTransport()
    session = ClientSession(
        transport, elicitation_handler=form, url_elicitation_handler=url, roots_handler=roots
    )
    async with session:
        await transport.push(
            Request(id="e1", method="elicitation/create", params={"message": "who?"})
        )
        await transport.push(
            Request(id="e2", method="elicitation/create", params={"mode": "url", "url": "u"})
        )
        await transport.push(Request(id="r1", method="roots/list"))
        await transport.push(Request(id="s1", method="sampling/createMessage", params={}))
        await transport.push(Request(id="p1", method="ping"))
        answers = {a.id: a for a in await transport.wait_answers(5)}
    assert answers["e1"] == Response(
        id="e1", result={"action": "accept", "content": {"name": "who?"}}
    )
    assert answers["e2"] == Response(id="e2", result={"action": "decline"})
    assert isinstance(answers["r1"], ErrorResponse)
    assert answers["r1"].message == "no roots for you"
    assert isinstance(answers["s1"], ErrorResponse)
    assert answers["s1"].code == errors.METHOD_NOT_FOUND
    assert answers["p1"] == Response(id="p1", result={})


async def test_a_cancelled_server_request_stops_its_handler_and_is_not_answered() -> None:
    started = anyio.Event()
    cancelled = anyio.Event()

    async def slow(params: dict[str, Any]) -> dict[str, Any]:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return {}

    transport = FakeTransport()
    async with ClientSession(transport, sampling_handler=slow):
        await transport.push(Request(id=7, method="sampling/createMessage", params={}))
        with anyio.fail_after(5):
            await started.wait()
            await transport.push(
                Notification(method="notifications/cancelled", params={"requestId": 7})
            )
            await cancelled.wait()
        await anyio.sleep(0.05)
    assert transport.answers() == []


async def test_notifications_reach_their_callbacks() -> None:
    changed: list[str] = []
    updated: list[str] = []
    everything: list[str] = []

    async def on_changed(feature: str) -> None:
        changed.append(feature)

    async def on_updated(uri: str) -> None:
        updated.append(uri)

    async def on_any(note: Notification) -> None:
        everything.append(note.method)

    transport = FakeTransport()
    session = ClientSession(
        transport,
        list_changed_callback=on_changed,
        resource_updated_callback=on_updated,
        notification_callback=on_any,
    )
    async with session:
        for method in ("tools", "resources", "prompts"):
            await transport.push(Notification(method=f"notifications/{method}/list_changed"))
        await transport.push(
            Notification(method="notifications/resources/updated", params={"uri": "file:///a"})
        )
        with anyio.fail_after(5):
            while len(everything) < 4:  # noqa: ASYNC110
                await anyio.sleep(0.01)
    assert changed == ["tools", "resources", "prompts"]
    assert updated == ["file:///a"]


def test_only_legacy_versions_can_be_offered() -> None:
    with pytest.raises(ValueError, match="legacy"):
        ClientSession(FakeTransport(), protocol_versions=("2026-07-28",))


# ---- callbacks run outside the read loop, so they may call the session ------------------------
# Each session below has a 1 s timeout: a callback run inside the read loop would wait for an
# answer only the read loop can deliver, and fail after that second instead of succeeding.


def _tools_server(request: Request) -> list[Incoming]:
    """Answers `tools/list` and `ping`; `tools/call` reports progress, logs, then answers."""
    if request.method == "tools/list":
        return [Response(id=request.id, result={"tools": [{"name": "new"}]})]
    if request.method == "ping":
        return [Response(id=request.id, result={})]
    if request.method == "tools/call":
        token = ((request.params or {}).get("_meta") or {}).get("progressToken")
        items: list[Incoming] = [Notification(method="notifications/tools/list_changed")]
        if token is not None:
            items += [
                Notification(
                    method="notifications/progress",
                    params={"progressToken": token, "progress": step, "total": 2},
                )
                for step in (1, 2)
            ]
        items.append(Response(id=request.id, result={"content": []}))
        return items
    return []


async def test_a_list_changed_callback_can_call_the_session() -> None:
    refreshed: list[list[dict[str, Any]]] = []
    done = anyio.Event()
    transport = FakeTransport(_tools_server)

    async def on_changed(feature: str) -> None:
        refreshed.append(await session.list_tools())
        done.set()

    async with ClientSession(transport, timeout=1, list_changed_callback=on_changed) as session:
        await session.initialize()
        assert await session.call_tool("x") == {"content": []}
        with anyio.fail_after(5):
            await done.wait()
    assert refreshed == [[{"name": "new"}]]


async def test_progress_callbacks_run_in_order_before_the_call_returns() -> None:
    steps: list[float] = []
    transport = FakeTransport(_tools_server)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        await session.ping()  # a callback that talks to the server
        steps.append(progress)

    async with ClientSession(transport, timeout=1) as session:
        await session.initialize()
        with anyio.fail_after(5):
            await session.call_tool("x", progress=on_progress)
        assert steps == [1.0, 2.0]


async def test_notification_callbacks_keep_the_order_of_arrival() -> None:
    seen: list[str] = []
    done = anyio.Event()
    transport = FakeTransport(_tools_server)

    async def on_log(params: dict[str, Any]) -> None:
        if params["data"] == "first":
            await session.list_tools()  # a slow callback does not let the next one overtake
        seen.append(params["data"])

    async def on_any(note: Notification) -> None:
        seen.append(note.method)
        if len(seen) == 4:
            done.set()

    async with ClientSession(
        transport, timeout=1, logging_callback=on_log, notification_callback=on_any
    ) as session:
        await session.initialize()
        for data in ("first", "second"):
            await transport.push(
                Notification(method="notifications/message", params={"level": "info", "data": data})
            )
        with anyio.fail_after(5):
            await done.wait()
    assert seen == ["first", "notifications/message", "second", "notifications/message"]


async def test_a_server_request_handler_can_call_the_session() -> None:
    transport = FakeTransport(_tools_server)

    async def sample(params: dict[str, Any]) -> dict[str, Any]:
        tools = await session.list_tools()
        return {"role": "assistant", "content": {"type": "text", "text": tools[0]["name"]}}

    async with ClientSession(transport, timeout=1, sampling_handler=sample) as session:
        await session.initialize()
        await transport.push(Request(id="s1", method="sampling/createMessage", params={}))
        answers = await transport.wait_answers(1)
    assert answers == [
        Response(id="s1", result={"role": "assistant", "content": {"type": "text", "text": "new"}})
    ]
