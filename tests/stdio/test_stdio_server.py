"""The stdio transport, server side: `StdioService` over in-memory pipes, and `mcp-core serve
--stdio` as a real subprocess.

Spec: MCP 2025-11-25 "Transports" > "stdio" (newline-delimited messages, nothing but messages
on stdout), "Lifecycle" > "Shutdown" (the client closes stdin), "Utilities" > "Cancellation"
(a cancelled request gets no response), "Client Features" > "Sampling" (a server-to-client
request over the same pipe).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import orjson
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core.core import Context, McpServer
from mcp_core.core.machines.session import SessionState
from mcp_core.core.protocol import errors
from mcp_core.core.services.session import ServerSession
from mcp_core.core.services.stdio import LineFramer, LineTooLong, StdioConfig, StdioService

pytestmark = pytest.mark.anyio

TIMEOUT_S = 5.0
PROCESS_TIMEOUT_S = 20.0
INITIALIZE = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "stdio-test", "version": "1.0"},
}


# ---- the client's end of an in-memory connection ----------------------------------------------


class Pipe:
    """The client's end: writes lines to the server's input, reads lines from its output."""

    def __init__(self) -> None:
        self.to_server, self.server_input = anyio.create_memory_object_stream[bytes](100)
        self.server_output, self.from_server = anyio.create_memory_object_stream[bytes](100)
        self.lines = BufferedByteReceiveStream(self.from_server)
        self._ids = 0

    async def write_raw(self, data: bytes) -> None:
        await self.to_server.send(data)

    async def write(self, message: dict[str, Any]) -> None:
        await self.write_raw(orjson.dumps(message) + b"\n")

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, request_id: int | None = None
    ) -> int:
        if request_id is None:
            self._ids += 1
            request_id = self._ids
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.write(message)
        return request_id

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.write(message)

    async def read(self) -> dict[str, Any]:
        with anyio.fail_after(TIMEOUT_S):
            line = await self.lines.receive_until(b"\n", 10 * 1024 * 1024)
        message: dict[str, Any] = orjson.loads(line)
        return message

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and read until its response (nothing else may come first)."""
        request_id = await self.request(method, params)
        response = await self.read()
        assert response.get("id") == request_id, response
        return response

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.call("initialize", {**INITIALIZE, "capabilities": capabilities or {}})
        assert "result" in response, response
        await self.notify("notifications/initialized")
        return response

    def close_input(self) -> None:
        self.to_server.close()

    def close(self) -> None:
        for stream in (self.to_server, self.server_input, self.server_output, self.from_server):
            stream.close()


@contextlib.asynccontextmanager
async def connected(
    server: McpServer, config: StdioConfig | None = None
) -> AsyncIterator[tuple[Pipe, anyio.Event]]:
    """Serve `server` on an in-memory pipe; yields the client's end and an event set when
    `serve` has returned. Leaving the block closes the input and waits for `serve` to end."""
    pipe = Pipe()
    finished = anyio.Event()

    async def run() -> None:
        try:
            await StdioService(server, config=config).serve(pipe.server_input, pipe.server_output)
        finally:
            finished.set()

    with anyio.fail_after(TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield pipe, finished
            finally:
                pipe.close_input()
                await finished.wait()
                pipe.close()


class Probe:
    """What a slow tool saw: that it started, and whether it was cancelled."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.cancelled = anyio.Event()


def make_server(probe: Probe | None = None) -> McpServer:
    server = McpServer("stdio-test-server", version="1.0")
    probe = probe or Probe()

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    async def wait_forever(ctx: Context) -> str:
        """Block until cancelled."""
        probe.started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            probe.cancelled.set()
            raise
        return "unreachable"

    @server.tool()
    async def ask(question: str, ctx: Context) -> str:
        """Ask the client's model."""
        answer = await ctx.sample(question, max_tokens=50)
        return f"the model said: {answer.text}"

    return server


# ---- the lifecycle and requests -----------------------------------------------------------------


async def test_initialize_then_tools_call_round_trip() -> None:
    async with connected(make_server()) as (pipe, _):
        init = await pipe.initialize()
        assert init["result"]["protocolVersion"] == "2025-11-25"
        assert init["result"]["serverInfo"]["name"] == "stdio-test-server"
        assert "tools" in init["result"]["capabilities"]

        response = await pipe.call("tools/call", {"name": "add", "arguments": {"a": 2, "b": 40}})
        assert response["result"]["isError"] is False
        assert response["result"]["content"] == [{"type": "text", "text": "42"}]


async def test_a_request_before_initialize_is_refused_with_its_id() -> None:
    async with connected(make_server()) as (pipe, _):
        response = await pipe.call("tools/list")
        assert response["error"]["code"] == errors.INVALID_REQUEST


async def test_a_session_lives_for_the_connection_without_an_id() -> None:
    server = make_server()
    async with connected(server) as (pipe, _):
        await pipe.initialize()
        await pipe.call("ping")
        (session,) = server.sessions
        assert session.id is None
        assert session.state is SessionState.READY
    assert server.sessions == frozenset()
    assert session.machine.state is SessionState.CLOSED  # (not `.state`: mypy narrowed it)


async def test_sampling_request_goes_out_and_its_response_comes_back_on_the_pipe() -> None:
    async with connected(make_server()) as (pipe, _):
        await pipe.initialize(capabilities={"sampling": {}})
        call_id = await pipe.request(
            "tools/call", {"name": "ask", "arguments": {"question": "What is 6 x 7?"}}
        )
        outgoing = await pipe.read()
        assert outgoing["method"] == "sampling/createMessage"
        assert outgoing["params"]["messages"][0]["content"]["text"] == "What is 6 x 7?"
        # The pipe stays open for other requests while the tool waits on the client.
        assert (await pipe.call("ping"))["result"] == {}
        await pipe.write(
            {
                "jsonrpc": "2.0",
                "id": outgoing["id"],
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "42"},
                    "model": "test-model",
                },
            }
        )
        response = await pipe.read()
        assert response["id"] == call_id
        assert response["result"]["content"][0]["text"] == "the model said: 42"


async def test_cancelled_request_stops_its_handler_and_gets_no_response() -> None:
    probe = Probe()
    async with connected(make_server(probe)) as (pipe, _):
        await pipe.initialize()
        call_id = await pipe.request("tools/call", {"name": "wait_forever"})
        with anyio.fail_after(TIMEOUT_S):
            await probe.started.wait()
        await pipe.notify(
            "notifications/cancelled", {"requestId": call_id, "reason": "no longer needed"}
        )
        with anyio.fail_after(TIMEOUT_S):
            await probe.cancelled.wait()
        # The next message on the pipe answers the ping: the cancelled call got no response.
        ping = await pipe.call("ping")
        assert ping["result"] == {}


async def test_cancellation_right_behind_its_request_is_not_lost() -> None:
    probe = Probe()
    async with connected(make_server(probe)) as (pipe, _):
        await pipe.initialize()
        request = {
            "jsonrpc": "2.0",
            "id": 99,
            "method": "tools/call",
            "params": {"name": "wait_forever"},
        }
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 99},
        }
        # Both lines in one chunk: the request must be registered before the cancel is read.
        await pipe.write_raw(orjson.dumps(request) + b"\n" + orjson.dumps(cancel) + b"\n")
        assert (await pipe.call("ping"))["result"] == {}
        with anyio.fail_after(TIMEOUT_S):
            await probe.cancelled.wait()


async def test_requests_run_concurrently() -> None:
    probe = Probe()
    async with connected(make_server(probe)) as (pipe, _):
        await pipe.initialize()
        await pipe.request("tools/call", {"name": "wait_forever"})
        with anyio.fail_after(TIMEOUT_S):
            await probe.started.wait()
        response = await pipe.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
        assert response["result"]["content"][0]["text"] == "2"


async def test_list_changed_broadcast_is_written_to_the_pipe() -> None:
    server = make_server()
    async with connected(server) as (pipe, _):
        await pipe.initialize()
        await pipe.call("ping")  # the initialized notification has been applied

        @server.tool()
        def later() -> str:
            """Added while the session is open."""
            return "late"

        note = await pipe.read()
        assert note == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


# ---- bad input ----------------------------------------------------------------------------------


async def test_unparsable_line_is_answered_with_parse_error_and_no_id() -> None:
    async with connected(make_server()) as (pipe, _):
        await pipe.write_raw(b"this is not json\n")
        response = await pipe.read()
        assert response == {
            "jsonrpc": "2.0",
            "error": {"code": errors.PARSE_ERROR, "message": "Parse error"},
        }
        await pipe.write_raw(b"\xff\xfe{\n")  # not UTF-8 either
        assert (await pipe.read())["error"]["code"] == errors.PARSE_ERROR
        assert (await pipe.call("ping"))["result"] == {}


async def test_invalid_request_is_answered_and_invalid_notification_is_not() -> None:
    async with connected(make_server()) as (pipe, _):
        await pipe.write({"jsonrpc": "2.0", "id": 5, "method": 42})
        response = await pipe.read()
        assert response["id"] == 5
        assert response["error"]["code"] == errors.INVALID_REQUEST
        await pipe.write_raw(b"[1, 2]\n")  # batches were removed in 2025-06-18
        batch = await pipe.read()
        assert "id" not in batch
        assert batch["error"]["code"] == errors.INVALID_REQUEST
        # A malformed notification and a stray response get no answer at all.
        await pipe.write({"jsonrpc": "2.0", "method": "notifications/x", "params": [1]})
        await pipe.write({"jsonrpc": "2.0", "id": 1234, "result": {}})
        await pipe.write_raw(b"\n   \n")  # blank lines are skipped
        assert (await pipe.call("ping"))["result"] == {}


async def test_over_long_line_is_refused_as_soon_as_it_overflows_and_skipped() -> None:
    config = StdioConfig(max_line_bytes=1024)
    async with connected(make_server(), config) as (pipe, _):
        await pipe.initialize()
        huge = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "add", "arguments": {"a": 1, "b": 2, "pad": "x" * 5000}},
            }
        )
        # The error comes before the line's end has even been sent.
        await pipe.write_raw(huge[:2000])
        error = await pipe.read()
        assert "id" not in error
        assert error["error"]["code"] == errors.INVALID_REQUEST
        assert error["error"]["data"] == {"maxLineBytes": 1024}
        await pipe.write_raw(huge[2000:4000])
        await pipe.write_raw(huge[4000:] + b"\n")
        # The rest of the long line was dropped; the next line is served normally.
        response = await pipe.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert response["result"]["content"][0]["text"] == "3"


async def test_modern_era_request_is_told_to_initialize() -> None:
    async with connected(make_server()) as (pipe, _):
        response = await pipe.call(
            "tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}
        )
        assert response["error"]["code"] == errors.INVALID_REQUEST
        assert "2025-11-25" in response["error"]["data"]["supported"]


# ---- shutdown -----------------------------------------------------------------------------------


async def test_end_of_input_closes_the_session_and_cancels_handlers() -> None:
    probe = Probe()
    server = make_server(probe)
    async with connected(server) as (pipe, finished):
        await pipe.initialize()
        await pipe.request("tools/call", {"name": "wait_forever"})
        with anyio.fail_after(TIMEOUT_S):
            await probe.started.wait()
        (session,) = server.sessions
        pipe.close_input()
        with anyio.fail_after(TIMEOUT_S):
            await finished.wait()
        assert probe.cancelled.is_set()
        assert session.state is SessionState.CLOSED
        assert server.sessions == frozenset()
        # Nothing was written for the cancelled call.
        pipe.server_output.close()
        with pytest.raises(anyio.IncompleteRead):
            await pipe.lines.receive_until(b"\n", 1024)


async def test_unterminated_last_line_is_still_served() -> None:
    async with connected(make_server()) as (pipe, finished):
        request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}
        await pipe.write_raw(orjson.dumps(request))  # no newline, then end of input
        pipe.close_input()
        response = await pipe.read()
        assert response["id"] == 1
        assert "result" in response
        with anyio.fail_after(TIMEOUT_S):
            await finished.wait()


async def test_client_that_stops_reading_ends_the_session() -> None:
    server = make_server()
    async with connected(server) as (pipe, finished):
        await pipe.initialize()
        sessions: list[ServerSession] = list(server.sessions)
        pipe.from_server.close()  # the client closed its end of our stdout
        await pipe.request("ping")
        with anyio.fail_after(TIMEOUT_S):
            await finished.wait()
        assert sessions[0].state is SessionState.CLOSED


# ---- the framer ---------------------------------------------------------------------------------


def test_framer_joins_lines_split_across_chunks() -> None:
    framer = LineFramer(limit=100)
    assert framer.feed(b'{"a"') == []
    assert framer.feed(b":1}\n{") == [b'{"a":1}']
    assert framer.feed(b"}\n\n") == [b"{}", b""]
    assert framer.end() is None


def test_framer_accepts_a_line_of_exactly_the_limit() -> None:
    framer = LineFramer(limit=4)
    assert framer.feed(b"abcd\nabcde\nxy") == [b"abcd", LineTooLong(4)]
    assert framer.end() == b"xy"


def test_framer_reports_an_over_long_line_once_and_drops_it() -> None:
    framer = LineFramer(limit=3)
    assert framer.feed(b"ab") == []
    assert framer.feed(b"cd") == [LineTooLong(3)]
    assert framer.feed(b"efgh") == []
    assert framer.feed(b"ij\nok\n") == [b"ok"]
    assert framer.feed(b"toolong") == [LineTooLong(3)]
    assert framer.end() is None


_LINE = st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"."))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINE, max_size=8), cuts=st.lists(st.integers(0, 120), max_size=10))
def test_framer_output_does_not_depend_on_how_input_is_chunked(
    lines: list[bytes], cuts: list[int]
) -> None:
    limit = 6
    data = b"".join(line + b"\n" for line in lines)
    expected = [line if len(line) <= limit else LineTooLong(limit) for line in lines]
    framer = LineFramer(limit=limit)
    got: list[bytes | LineTooLong] = []
    start = 0
    for cut in [*sorted(c for c in cuts if c < len(data)), len(data)]:
        got.extend(framer.feed(data[start:cut]))
        start = max(start, cut)
    assert got == expected
    assert framer.end() is None


# ---- the real thing: `mcp-core serve --stdio` as a subprocess -----------------------------------


def _cli() -> list[str]:
    script = shutil.which("mcp-core", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mcp_core.adapters.cli"]


class ProcessPipe:
    """Newline-delimited JSON over a child process's stdin and stdout."""

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)

    async def write(self, message: dict[str, Any]) -> None:
        await self.stdin.send(orjson.dumps(message) + b"\n")

    async def read(self) -> dict[str, Any]:
        with anyio.fail_after(PROCESS_TIMEOUT_S):
            line = await self.stdout.receive_until(b"\n", 10 * 1024 * 1024)
        message: dict[str, Any] = orjson.loads(line)  # anything but JSON on stdout fails here
        return message

    async def rest_of_stdout(self) -> bytes:
        rest = self.stdout.buffer
        with anyio.fail_after(PROCESS_TIMEOUT_S), contextlib.suppress(anyio.EndOfStream):
            while True:
                rest += await self.stdout.receive()
        return rest

    async def rest_of_stderr(self) -> bytes:
        assert self.process.stderr is not None
        out = b""
        with anyio.fail_after(PROCESS_TIMEOUT_S), contextlib.suppress(anyio.EndOfStream):
            while True:
                out += await self.process.stderr.receive()
        return out


@contextlib.asynccontextmanager
async def stdio_process(*args: str, cwd: Path | None = None) -> AsyncIterator[ProcessPipe]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await anyio.open_process(
        [*_cli(), "serve", "--stdio", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    try:
        yield ProcessPipe(process)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.move_on_after(PROCESS_TIMEOUT_S):
            await process.wait()
        await process.aclose()


async def test_cli_serves_stdio_as_a_real_subprocess() -> None:
    async with stdio_process() as proc:
        params = {**INITIALIZE, "capabilities": {"sampling": {}}}
        await proc.write({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
        init = await proc.read()
        assert init["id"] == 1
        assert init["result"]["serverInfo"]["name"] == "mcp-core-demo"
        await proc.write({"jsonrpc": "2.0", "method": "notifications/initialized"})

        await proc.write(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "word_count", "arguments": {"text": "to be or not to be"}},
            }
        )
        counted = await proc.read()
        assert counted["id"] == 2
        assert counted["result"]["structuredContent"]["words"] == 6
        assert counted["result"]["structuredContent"]["unique_words"] == 4

        # A sampling round trip through the real pipes.
        await proc.write(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "ask", "arguments": {"question": "Say hi"}},
            }
        )
        sampling = await proc.read()
        assert sampling["method"] == "sampling/createMessage"
        await proc.write(
            {
                "jsonrpc": "2.0",
                "id": sampling["id"],
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "hi!"},
                    "model": "pipe-model",
                },
            }
        )
        answered = await proc.read()
        assert answered["id"] == 3
        assert answered["result"]["content"][0]["text"] == "hi!"

        # Closing stdin ends the session and the process, cleanly.
        await proc.stdin.aclose()
        with anyio.fail_after(PROCESS_TIMEOUT_S):
            assert await proc.process.wait() == 0
        assert await proc.rest_of_stdout() == b""


async def test_cli_stdio_keeps_prints_off_stdout(tmp_path: Path) -> None:
    target = tmp_path / "noisy_server.py"
    target.write_text(
        textwrap.dedent(
            '''
            from mcp_core.core import McpServer

            print("noise while importing")
            server = McpServer("noisy")

            @server.tool()
            def shout(text: str) -> str:
                """Print, then answer."""
                print("noise from a tool")
                return text.upper()
            '''
        )
    )
    async with stdio_process(str(target)) as proc:
        await proc.write({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
        assert (await proc.read())["result"]["serverInfo"]["name"] == "noisy"
        await proc.write({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await proc.write(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "shout", "arguments": {"text": "hey"}},
            }
        )
        assert (await proc.read())["result"]["content"][0]["text"] == "HEY"
        await proc.stdin.aclose()
        with anyio.fail_after(PROCESS_TIMEOUT_S):
            assert await proc.process.wait() == 0
        assert await proc.rest_of_stdout() == b""  # nothing but the two responses
        stderr = await proc.rest_of_stderr()
        assert b"noise while importing" in stderr
        assert b"noise from a tool" in stderr


def test_cli_stdio_exits_cleanly_when_the_client_closes_its_stdout() -> None:
    # Plain subprocess: closing the pipe's file descriptor is the point of this test.
    process = subprocess.Popen(
        [*_cli(), "serve", "--stdio", "--log-level", "info"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdout.close()
        request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}
        process.stdin.write(orjson.dumps(request) + b"\n")
        process.stdin.flush()
        # stdin stays open: the process must end on the broken output alone.
        process.wait(timeout=PROCESS_TIMEOUT_S)
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=PROCESS_TIMEOUT_S)
        for stream in (process.stdin, process.stderr):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
    # Not an abort at interpreter exit (a reader thread holding stdin's lock would cause one).
    assert process.returncode == 0, stderr
    assert b"output closed" in stderr
    assert b"Fatal Python error" not in stderr


# ---- the adapter over ordinary binary files -----------------------------------------------------


async def test_serve_stdio_over_binary_files() -> None:
    from mcp_core.adapters.stdio import serve_stdio

    request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}
    stdin = io.BytesIO(orjson.dumps(request) + b"\nnot json\n")
    stdout = io.BytesIO()
    with anyio.fail_after(TIMEOUT_S):
        await serve_stdio(make_server(), stdin, stdout)
    first, second = stdout.getvalue().splitlines()
    assert orjson.loads(first)["result"]["serverInfo"]["name"] == "stdio-test-server"
    assert orjson.loads(second)["error"]["code"] == errors.PARSE_ERROR
