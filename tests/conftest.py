"""Fixtures shared by the whole suite. Keep this generic: helpers for one area live in the
`conftest.py` of that area's folder."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from mcp_core.core.protocol.jsonrpc import ErrorResponse, Notification, Request, Response
from mcp_core.core.services.server import McpServer
from mcp_core.core.services.session import ServerSession


@pytest.fixture
def anyio_backend() -> str:
    # The library is written against anyio; the suite runs it on asyncio, which uvicorn uses.
    return "asyncio"


# ---- driving an McpServer's dispatcher without a transport ----------------------------------
# Shared by the feature tests (tests/services) and the schema checks (tests/schema): a fake
# client session that calls `McpServer.handle_request` directly and records what comes back.


class RecordingOutbound:
    """An `Outbound` that records every message the server sent on it."""

    can_close = False

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._grew = anyio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.post(message)

    def post(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self._grew.set()

    def methods(self) -> list[str | None]:
        return [message.get("method") for message in self.sent]

    async def wait_for(self, method: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first message with this method, waiting (bounded) until it was sent."""
        with anyio.fail_after(timeout):
            while True:
                for message in self.sent:
                    if message.get("method") == method:
                        return message
                self._grew = anyio.Event()
                await self._grew.wait()


class Peer:
    """A client of one session, talking to the dispatcher directly."""

    def __init__(self, server: McpServer, session: ServerSession) -> None:
        self.server = server
        self.session = session
        self.outbound = RecordingOutbound()  # the stream of this peer's requests
        self.standalone = RecordingOutbound()  # messages that belong to no request
        session.standalone = self.standalone
        self.initialize_response: dict[str, Any] = {}
        self.initialize_result: dict[str, Any] = {}
        self._ids = itertools.count(1)

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        request_id: int | str | None = None,
        outbound: RecordingOutbound | None = None,
    ) -> dict[str, Any] | None:
        """The response in wire form; None when the request was cancelled."""
        rid = next(self._ids) if request_id is None else request_id
        request = Request(id=rid, method=method, params=params)
        return await self.server.handle_request(self.session, request, outbound or self.outbound)

    async def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.request(method, params)
        assert response is not None
        assert "result" in response, response
        result: dict[str, Any] = response["result"]
        return result

    async def error(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.request(method, params)
        assert response is not None
        assert "error" in response, response
        assert response.get("id") is not None
        error: dict[str, Any] = response["error"]
        return error

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name}
        if arguments is not None:
            params["arguments"] = arguments
        return await self.result("tools/call", params)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        note = Notification(method=method, params=params)
        await self.server.handle_notification(self.session, note)

    def answer(self, request: dict[str, Any], result: dict[str, Any]) -> bool:
        """Answer a request the server sent, as the client would."""
        return self.session.resolve(Response(id=request["id"], result=result))

    def answer_error(self, request: dict[str, Any], code: int, message: str) -> bool:
        return self.session.resolve(ErrorResponse(id=request["id"], code=code, message=message))


Connect = Callable[..., Awaitable[Peer]]


@pytest.fixture
def connect() -> Connect:
    """`await connect(server, capabilities=..., protocol_version=..., ready=True)` -> Peer."""
    counter = itertools.count(1)

    async def open_peer(
        server: McpServer,
        *,
        capabilities: dict[str, Any] | None = None,
        protocol_version: str = "2025-11-25",
        ready: bool = True,
    ) -> Peer:
        session = ServerSession(server, f"test-session-{next(counter)}", now=0.0)
        peer = Peer(server, session)
        server.attach(session)
        params = {
            "protocolVersion": protocol_version,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "test-client", "version": "1.0"},
        }
        response = await peer.request("initialize", params, request_id=0)
        assert response is not None
        assert "result" in response, response
        peer.initialize_response = response
        peer.initialize_result = response["result"]
        if ready:
            await peer.notify("notifications/initialized")
        return peer

    return open_peer
