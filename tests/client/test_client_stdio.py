"""`ClientSession` over `StdioClientTransport`: `mcp-core serve --stdio` as a real subprocess.

The server is `build_server` below; the subprocess loads this very file as its target
(`mcp-core serve --stdio tests/client/test_client_stdio.py:build_server`), so the test and the
server it talks to are read side by side. The server reports what it saw on its stderr, which
the transport forwards to the test's callback.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_core.adapters.stdio.client import StdioClientTransport, StdioTransportError
from mcp_core.core import Context, McpServer
from mcp_core.core.protocol.jsonrpc import Request
from mcp_core.core.services.client import ClientSession, TransportClosed

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve()


def build_server() -> McpServer:
    server = McpServer("stdio-client-test", version="1.0", page_size=1)

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    async def count(n: int, ctx: Context) -> str:
        """Report progress n times, and log once."""
        for i in range(1, n + 1):
            await ctx.report_progress(i, n)
        await ctx.info("counted")
        return "done"

    @server.tool()
    async def ask_model(question: str, ctx: Context) -> str:
        """Ask the client's model."""
        return (await ctx.sample(question, max_tokens=5)).text or ""

    @server.tool()
    async def wait_forever() -> str:
        """Wait until cancelled; say so on stderr."""
        print("wait_forever: started", file=sys.stderr, flush=True)
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            print("wait_forever: cancelled", file=sys.stderr, flush=True)
            raise
        return "never"

    return server


def server_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "mcp_core.adapters.cli",
        "serve",
        "--stdio",
        f"{HERE}:build_server",
    ]


class StderrLines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, line: str) -> None:
        self.lines.append(line)

    async def wait_for(self, text: str, timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not any(text in line for line in self.lines):  # noqa: ASYNC110
                await anyio.sleep(0.01)


async def test_session_over_stdio_end_to_end() -> None:
    stderr = StderrLines()
    logs: list[dict[str, Any]] = []
    steps: list[float] = []

    async def on_log(params: dict[str, Any]) -> None:
        logs.append(params)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async def sample(params: dict[str, Any]) -> dict[str, Any]:
        return {"role": "assistant", "content": {"type": "text", "text": "yes"}, "model": "m"}

    with anyio.fail_after(20):
        async with (
            StdioClientTransport(server_command(), stderr_callback=stderr) as transport,
            ClientSession(transport, logging_callback=on_log, sampling_handler=sample) as session,
        ):
            info = await session.initialize()
            assert info.server_info["name"] == "stdio-client-test"
            tools = await session.list_tools()
            assert {tool["name"] for tool in tools} == {"add", "count", "ask_model", "wait_forever"}
            assert (await session.call_tool("add", {"a": 1, "b": 2}))["content"][0]["text"] == "3"
            result = await session.call_tool("count", {"n": 2}, progress=on_progress)
            assert result["content"][0]["text"] == "done"
            answer = await session.call_tool("ask_model", {"question": "?"})
            assert answer["content"][0]["text"] == "yes"
            with pytest.raises(TimeoutError):
                await session.call_tool("wait_forever", timeout=1.0)
            await stderr.wait_for("wait_forever: cancelled")
    assert steps == [1, 2]
    assert [entry["data"] for entry in logs] == ["counted"]
    # Closing stdin was enough: the server exited on its own, cleanly.
    assert transport.returncode == 0


async def test_a_server_that_exits_fails_pending_requests() -> None:
    command = [sys.executable, "-c", "import sys; sys.stdin.readline()"]
    with anyio.fail_after(10):
        async with (
            StdioClientTransport(command) as transport,
            ClientSession(transport) as session,
        ):
            with pytest.raises(TransportClosed, match="initialize"):
                await session.initialize()


async def test_a_server_that_ignores_stdin_close_is_terminated() -> None:
    # Ignores SIGTERM too would need a signal handler; closing stdin alone must not hang us.
    command = [sys.executable, "-c", "import time; time.sleep(30)"]
    with anyio.fail_after(10):
        async with StdioClientTransport(command, shutdown_timeout=0.5) as transport:
            pass
    assert transport.returncode is not None
    assert transport.returncode != 0


async def test_close_does_not_wait_forever_for_a_sender_blocked_on_a_full_pipe() -> None:
    # The server never reads its stdin: a 4 MiB message fills the pipe and its `send` blocks
    # while holding the write lock. `close` must still terminate the server, and the blocked
    # sender must get a clear error. The server prints its pid so that, if `close` hangs (it
    # is shielded from cancellation), the test can kill the server to unjam it and fail.
    command = [
        sys.executable,
        "-c",
        "import os, sys, time; print(os.getpid(), file=sys.stderr, flush=True); time.sleep(30)",
    ]
    stderr = StderrLines()
    message = Request(id=1, method="tools/call", params={"name": "x", "blob": "x" * (4 << 20)})
    errors: list[Exception] = []
    closed = anyio.Event()

    async def sender() -> None:
        try:
            await transport.send(message)
        except StdioTransportError as exc:
            errors.append(exc)

    async def closer() -> None:
        await transport.close()
        closed.set()

    with anyio.fail_after(15):
        async with StdioClientTransport(
            command, stderr_callback=stderr, shutdown_timeout=0.5
        ) as transport:
            await stderr.wait_for("")
            pid = int(stderr.lines[0])
            async with anyio.create_task_group() as tg:
                tg.start_soon(sender)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(closer)
                with anyio.move_on_after(5):
                    await closed.wait()
                close_finished = closed.is_set()
                if not close_finished:
                    os.kill(pid, signal.SIGKILL)
    assert close_finished, "close() hung behind a blocked send"
    assert transport.returncode == -signal.SIGTERM
    assert len(errors) == 1
    assert "closed while this message was being written" in str(errors[0])
