"""`StdioBridge` against a real MCP app, in process: what is retired, what is sent again.

The "daemon" is `create_app` under uvicorn on 127.0.0.1 in a thread (a port the OS picks);
`FakeSupervisor` stands for `DaemonSupervisor` and records every `recover`. The client's stdin
is a memory stream of lines, its stdout a list the test reads. The server's tools count their
runs, so a request sent twice shows. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import anyio
import anyio.abc
import orjson
import pytest
import uvicorn

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.daemon.bridge import StdioBridge
from mcp_core.core import McpServer
from mcp_core.core.machines.daemon_recovery import DaemonRecoveryState
from mcp_core.core.services.stdio import ByteSource
from mcp_core.core.services.supervisor import DaemonSupervisor
from mcp_core.ports.daemon import DaemonAddress

pytestmark = pytest.mark.anyio

MAX_BODY = 2048  # the app refuses a larger POST with 413
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bridge-test", "version": "1"},
    },
}


class Runs:
    """How often each tool started, and when the slow one may finish (server thread)."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}
        self.release = threading.Event()

    def count(self, name: str) -> None:
        self.started[name] = self.started.get(name, 0) + 1


def build_server(runs: Runs) -> McpServer:
    server = McpServer("bridge-relay-test", version="1.0")

    @server.tool()
    async def slow() -> str:
        """Run until the test releases it (or it is cancelled)."""
        runs.count("slow")
        with anyio.fail_after(10):
            while not runs.release.is_set():  # noqa: ASYNC110 (set from the test's thread)
                await anyio.sleep(0.01)
        return "slow done"

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text."""
        runs.count("echo")
        return text

    return server


@contextlib.contextmanager
def serve(app: Any) -> Iterator[int]:
    """Serve `app` on 127.0.0.1 in a background thread; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during startup"
            assert time.monotonic() < deadline, "uvicorn did not start within 10s"
            time.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        sock.close()


class FakeSupervisor:
    """The part of `DaemonSupervisor` the bridge uses: one healthy daemon at `address`."""

    def __init__(self, port: int) -> None:
        self.address = DaemonAddress(pid=1000, port=port, token="t")
        self.state = DaemonRecoveryState.HEALTHY
        self.recovered: list[str] = []

    async def ensure(self) -> DaemonAddress:
        return self.address

    async def recover(self, failed: DaemonAddress, reason: str) -> DaemonAddress:
        self.recovered.append(reason)
        return self.address

    async def check(self) -> None:
        return None


class Client:
    """The stdio client: lines in, messages out."""

    def __init__(self, send: anyio.abc.ObjectSendStream[bytes]) -> None:
        self._send = send
        self.out: list[dict[str, Any]] = []

    async def write(self, message: dict[str, Any]) -> None:
        self.out.append(message)

    async def say(self, message: dict[str, Any]) -> None:
        await self._send.send(orjson.dumps(message) + b"\n")

    async def answer(self, request_id: int) -> dict[str, Any]:
        with anyio.fail_after(5):
            while True:
                for message in self.out:
                    if message.get("id") == request_id:
                        return message
                await anyio.sleep(0.01)

    def answers_to(self, request_id: int) -> list[dict[str, Any]]:
        return [m for m in self.out if m.get("id") == request_id]


@pytest.fixture
def daemon() -> Iterator[tuple[Runs, int]]:
    runs = Runs()
    with serve(create_app(build_server(runs), max_body_bytes=MAX_BODY)) as port:
        try:
            yield runs, port
        finally:
            runs.release.set()


@contextlib.asynccontextmanager
async def bridged(port: int) -> AsyncIterator[tuple[Client, FakeSupervisor]]:
    """A running bridge with an initialized client session."""
    supervisor = FakeSupervisor(port)
    send, receive = anyio.create_memory_object_stream[bytes](100)
    client = Client(send)
    bridge = StdioBridge(cast(DaemonSupervisor, supervisor), client.write, watchdog_interval=0.05)
    async with anyio.create_task_group() as group:
        group.start_soon(bridge.run, cast(ByteSource, receive))
        await client.say(INIT)
        assert "result" in await client.answer(1)
        await client.say({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield client, supervisor
        await send.aclose()  # stdin ends: the bridge ends its session and returns


def call(request_id: int, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def until(predicate: Any) -> None:
    with anyio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 (state lives on the server's thread)
            await anyio.sleep(0.01)


async def test_an_http_status_refusal_fails_that_request_alone(
    daemon: tuple[Runs, int],
) -> None:
    runs, port = daemon
    with anyio.fail_after(15):
        async with bridged(port) as (client, supervisor):
            await client.say(call(2, "slow"))
            await until(lambda: runs.started.get("slow") == 1)
            await client.say(call(3, "echo", text="x" * (2 * MAX_BODY)))  # 413
            refused = await client.answer(3)
            # The server's JSON-RPC error, under the request's id.
            assert refused["error"]["code"] == -32600
            assert "Payload Too Large" in refused["error"]["message"]
            runs.release.set()
            done = await client.answer(2)
            assert done["result"]["content"][0]["text"] == "slow done"
            await client.say(call(4, "echo", text="still here"))
            assert (await client.answer(4))["result"]["content"][0]["text"] == "still here"
    assert supervisor.recovered == []
    assert runs.started == {"slow": 1, "echo": 1}
    assert len(client.answers_to(2)) == 1


async def test_a_cancelled_request_is_not_sent_again_after_a_daemon_restart(
    daemon: tuple[Runs, int],
) -> None:
    runs, port = daemon
    with anyio.fail_after(15):
        async with bridged(port) as (client, supervisor):
            await client.say(call(2, "slow"))
            await until(lambda: runs.started.get("slow") == 1)
            await client.say(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": 2, "reason": "the user changed their mind"},
                }
            )
            # The daemon is replaced: the watchdog retires the upstream, a new one opens.
            supervisor.address = DaemonAddress(pid=1001, port=port, token="t")
            await until(lambda: len(supervisor.recovered) == 1)
            await client.say(call(3, "echo", text="after the restart"))
            assert (await client.answer(3))["result"]["content"][0]["text"] == ("after the restart")
            await anyio.sleep(0.3)  # time for a resent request to reach the server
            runs.release.set()
            await anyio.sleep(0.1)
    assert runs.started == {"slow": 1, "echo": 1}
    assert client.answers_to(2) == []


async def test_an_over_long_line_is_answered_as_the_stdio_server_answers_it() -> None:
    """The bridge frames and parses its input with the stdio server's own steps, so a client
    gets the same error (with `maxLineBytes`) from both."""
    from mcp_core.core.services.stdio import LineTooLong, message_of_line

    written: list[dict[str, Any]] = []

    async def write(message: dict[str, Any]) -> None:
        written.append(message)

    bridge = StdioBridge(cast(DaemonSupervisor, object()), write)
    await bridge._from_client(LineTooLong(64))
    await bridge._from_client(b"   \n")  # blank: nothing
    assert written == [message_of_line(LineTooLong(64))]
    assert written[0]["error"]["data"] == {"maxLineBytes": 64}
