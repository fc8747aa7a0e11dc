"""The drain in process: 503 while draining, stores closed on lifespan shutdown, the hook found.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP" (resumability: `retry`); issue 6,
"Graceful shutdown". The process-level behaviour is in test_shutdown_process.py.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.asgi.app import McpAsgiApp
from mcp_core.adapters.cli._http import drain_hook
from mcp_core.adapters.storage.memory import InMemoryEventStore, InMemorySessionStore
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core import McpServer
from mcp_core.core.services.streamable_http import StreamableHttpService

HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "host": "127.0.0.1",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "drain-test", "version": "1.0"},
    },
}


class ClosingSessionStore(InMemorySessionStore):
    def __init__(self) -> None:
        super().__init__(idle_timeout=60.0, max_sessions=10)
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


class ClosingEventStore(InMemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:  # a synchronous close counts too
        self.closed += 1


def _server() -> McpServer:
    server = McpServer("drain")

    @server.tool()
    def echo(text: str) -> str:
        """Echo a text."""
        return text

    return server


def _client(app: McpAsgiApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=10
    )


def test_draining_refuses_new_requests_with_503_and_retry_after() -> None:
    app = create_app(_server(), retry_ms=2500)

    async def scenario() -> None:
        async with _client(app) as client:
            init = await client.post("/mcp", json=INITIALIZE, headers=HEADERS)
            assert init.status_code == 200
            session = {**HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
            app.begin_shutdown()
            assert app.service.draining
            again = await client.post("/mcp", json=INITIALIZE, headers=HEADERS)
            assert again.status_code == 503
            assert again.headers["retry-after"] == "3"
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            refused = await client.post("/mcp", json=call, headers=session)
            assert refused.status_code == 503
            stream = await client.get("/mcp", headers={**session, "accept": "text/event-stream"})
            assert stream.status_code == 503
            # Notifications and responses still pass: an in-flight handler may wait on them.
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            accepted = await client.post("/mcp", json=note, headers=session)
            assert accepted.status_code == 202

    anyio.run(scenario)


def test_lifespan_shutdown_drains_and_closes_each_store_once() -> None:
    sessions, events = ClosingSessionStore(), ClosingEventStore()
    # Not create_app: it tests `session_store or ...`, and an empty in-memory store is falsy.
    service = StreamableHttpService(
        _server(), sessions=sessions, events=events, clock=SystemClock(), random=SystemRandom()
    )
    app = McpAsgiApp(service)
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(incoming)

        async def send(message: Any) -> None:
            sent.append(dict(message))

        await app({"type": "lifespan"}, receive, send)

    anyio.run(scenario)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert app.service.draining
    assert sessions.closed == 1
    assert events.closed == 1


def test_drain_hook_is_found_in_the_app_or_a_mount_and_optional_otherwise() -> None:
    app = create_app(_server())
    assert drain_hook(app) == app.begin_shutdown
    mounted = Starlette(routes=[Mount("/api", app=app)])
    assert drain_hook(mounted) == app.begin_shutdown

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        return None

    assert drain_hook(plain) is None


def test_an_empty_session_store_passed_in_is_used_and_health_reports_draining() -> None:
    import anyio
    import httpx

    from mcp_core.adapters.asgi import create_app
    from mcp_core.adapters.storage.memory import InMemorySessionStore
    from mcp_core.core import McpServer

    store = InMemorySessionStore()
    app = create_app(McpServer("drain-health"), session_store=store)
    assert app.service.sessions is store

    async def check() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert (await client.get("/healthz")).status_code == 200
            app.begin_shutdown()
            drained = await client.get("/healthz")
            assert drained.status_code == 503
            assert drained.json()["status"] == "draining"

    anyio.run(check)
