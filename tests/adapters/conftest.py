"""Fixtures for the adapter tests: a real uvicorn server in the test's event loop, and a way to
call the ASGI app in process with no network.

The server runs as a task of the test's own event loop, so a test can change the `McpServer`
(add a tool, release a handler) while requests are in flight, without threads.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import attrs
import pytest
import uvicorn

ACCEPT_BOTH = "application/json, text/event-stream"
TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave the test runner's signal handlers (Ctrl-C) alone.
        yield


@contextlib.asynccontextmanager
async def _serve(app: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", timeout_graceful_shutdown=2, ws="none"
    )
    server = _Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            with anyio.fail_after(TIMEOUT_S):
                while not server.started:  # noqa: ASYNC110 (uvicorn has no event to wait on)
                    await anyio.sleep(0.01)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
    sock.close()


LiveServer = Callable[[Any], contextlib.AbstractAsyncContextManager[str]]


@pytest.fixture
def live_server() -> LiveServer:
    """`async with live_server(app) as base_url:` uvicorn on 127.0.0.1 and a free port."""
    return _serve


# ---- calling the ASGI app in process --------------------------------------------------------


@attrs.frozen
class AsgiExchange:
    """Everything an ASGI app sent for one request."""

    sent: tuple[dict[str, Any], ...]

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.sent[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


async def call_asgi(
    app: Any,
    *,
    method: str = "POST",
    path: str = "/mcp",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    scope_extra: dict[str, Any] | None = None,
) -> AsgiExchange:
    """One HTTP request straight into the ASGI callable; the client leaves once answered."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("latin-1", "replace"),
        "root_path": "",
        "query_string": b"",
        "headers": headers if headers is not None else [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        **(scope_extra or {}),
    }
    delivered = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(TIMEOUT_S):
        await app(scope, receive, send)
    return AsgiExchange(sent=tuple(sent))


@pytest.fixture
def asgi() -> Callable[..., Any]:
    """`await asgi(app, method=..., path=..., headers=[...], body=...)` -> AsgiExchange."""
    return call_asgi
