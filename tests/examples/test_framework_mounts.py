"""The Starlette and FastAPI examples: MCP mounted next to an ordinary route, served by uvicorn.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP". `create_app`'s endpoint matches its path
after the mount's `root_path`; these tests check that through a real server, for a mount at "/"
(Starlette, endpoint `/mcp`) and under a prefix (FastAPI, endpoint `/api/mcp`).

Each example is imported from its file and served by a real uvicorn in the test's event loop,
on 127.0.0.1 and a port the OS picks (the socket is bound here, so there is no race for it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT_S = 10.0
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "mount-test", "version": "1.0"},
    },
}


def _load_example(filename: str) -> ModuleType:
    name = f"_mcp_core_example_{Path(filename).stem}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave the test runner's signal handlers alone


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[str]:
    """`async with uvicorn_serving(app) as base_url:` a real uvicorn on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, ws="none")
    server = _QuietServer(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                with anyio.fail_after(TIMEOUT_S):
                    while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
                        await anyio.sleep(0.01)
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


async def _mcp_tool_call(client: httpx.AsyncClient, endpoint: str) -> dict[str, Any]:
    init = await client.post(endpoint, json=INITIALIZE, headers=HEADERS)
    assert init.status_code == 200, init.text
    assert init.json()["result"]["protocolVersion"] == "2025-11-25"
    session = {
        **HEADERS,
        "mcp-session-id": init.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    note = await client.post(
        endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
    )
    assert note.status_code == 202
    call = await client.post(
        endpoint,
        json={
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "greet", "arguments": {"name": "Grace"}},
        },
        headers=session,
    )
    assert call.status_code == 200, call.text
    result: dict[str, Any] = call.json()["result"]
    closed = await client.delete(endpoint, headers=session)
    assert closed.status_code == 200
    return result


@pytest.mark.parametrize(
    ("filename", "endpoint", "health", "greeting"),
    [
        ("starlette_app.py", "/mcp", "/healthz", "hello from Starlette"),
        ("fastapi_app.py", "/api/mcp", "/api/healthz", "hello from FastAPI"),
    ],
)
async def test_example_serves_mcp_next_to_an_ordinary_route(
    filename: str, endpoint: str, health: str, greeting: str
) -> None:
    example = _load_example(filename)
    with anyio.fail_after(TIMEOUT_S * 2):
        async with (
            uvicorn_serving(example.app) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as client,
        ):
            hello = await client.get("/hello")
            assert hello.status_code == 200
            assert hello.json() == {"message": greeting}

            result = await _mcp_tool_call(client, endpoint)
            assert result["content"] == [{"type": "text", "text": "Hello, Grace!"}]

            status = await client.get(health)
            assert status.status_code == 200
            assert status.json()["status"] == "ok"


async def test_mcp_endpoint_keeps_its_security_checks_when_mounted() -> None:
    example = _load_example("fastapi_app.py")
    with anyio.fail_after(TIMEOUT_S * 2):
        async with (
            uvicorn_serving(example.app) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as client,
        ):
            rebinding = await client.post(
                "/api/mcp",
                json=INITIALIZE,
                headers={**HEADERS, "origin": "http://evil.example"},
            )
            assert rebinding.status_code == 403
            # The framework still answers its own 404 outside the mount.
            assert (await client.post("/mcp", json=INITIALIZE, headers=HEADERS)).status_code == 404
