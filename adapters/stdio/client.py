"""The stdio client transport: run an MCP server as a subprocess and talk over its pipes.

Spec: MCP 2025-11-25 "Transports" > "stdio": the client launches the server, writes messages
to its stdin and reads them from its stdout, one JSON-RPC message per line (no embedded
newlines); the server may log to stderr, which the client may capture, forward or ignore.
"Lifecycle" > "Shutdown" > "stdio": the client closes the server's stdin, waits for it to
exit, sends SIGTERM if it does not within a reasonable time, then SIGKILL.

Theory of operation (`StdioClientTransport` implements `core/services/client.ClientTransport`):
the process is started on `async with` (`anyio.open_process`). One task cuts stdout into lines
with the server's own `LineFramer` and parses each as a message for `receive()`; another reads
stderr line by line and hands each to `stderr_callback` (default: the `mcp_core.client.stdio`
logger at INFO). `send` writes one line under a lock, so concurrent senders never interleave.
`close` waits for that lock at most `shutdown_timeout`: a sender blocked on a full pipe (the
server stopped reading) cannot keep it from terminating the server.
When stdout ends (the server exited), `receive()` ends and the session fails what was pending.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Final

import anyio
import anyio.abc

from mcp_core.core.protocol.jsonrpc import InvalidMessage, Message, decode, encode, parse_message
from mcp_core.core.services.client import ClientError, Incoming
from mcp_core.core.services.stdio import DEFAULT_MAX_LINE_BYTES, LineFramer, LineTooLong

__all__ = ["StdioClientTransport", "StdioTransportError"]

log = logging.getLogger("mcp_core.client.stdio")

SHUTDOWN_TIMEOUT: Final = 5.0  # seconds for each step: exit after stdin closed, after SIGTERM
_CHUNK: Final = 64 * 1024

StderrCallback = Callable[[str], Awaitable[None]]


class StdioTransportError(ClientError):
    """The server process could not be written to."""


async def _log_stderr(line: str) -> None:
    log.info("server stderr: %s", line)


class StdioClientTransport:
    """A `ClientTransport` over a server subprocess's stdin and stdout.

    ```python
    async with StdioClientTransport(["mcp-core", "serve", "--stdio", "app.py"]) as transport:
        async with ClientSession(transport) as session:
            await session.initialize()
    ```

    `returncode` is the process's exit status once it has ended.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stderr_callback: StderrCallback | None = None,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        if not command:
            raise ValueError("command must name the server program")
        self.command = list(command)
        self.env = env
        self.cwd = cwd
        self.stderr_callback = stderr_callback or _log_stderr
        self.shutdown_timeout = shutdown_timeout
        self.max_line_bytes = max_line_bytes
        self.returncode: int | None = None
        self._process: anyio.abc.Process | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._write_lock = anyio.Lock()
        self._incoming_send, self._incoming = anyio.create_memory_object_stream[Incoming](
            max_buffer_size=1024
        )
        self._closed = False

    async def __aenter__(self) -> StdioClientTransport:
        self._process = await anyio.open_process(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._read_stdout)
        self._task_group.start_soon(self._read_stderr)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            with anyio.CancelScope(shield=True):
                await self.close()
        finally:
            assert self._task_group is not None
            # The process is gone; its pipes hold nothing we still need.
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
        return None

    # ---- the ClientTransport port ---------------------------------------------------------

    async def send(self, message: Message) -> None:
        process = self._process
        if process is None or process.stdin is None or self._closed:
            raise StdioTransportError("the server process is not running")
        line = encode(message) + b"\n"
        try:
            async with self._write_lock:
                await process.stdin.send(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            if self._closed:
                raise StdioTransportError(
                    "the transport was closed while this message was being written "
                    "(the server was not reading its stdin)"
                ) from exc
            raise StdioTransportError(f"the server process stopped reading: {exc}") from exc

    async def receive(self) -> AsyncIterator[Incoming]:
        async with self._incoming:
            async for item in self._incoming:
                yield item

    async def close(self) -> None:
        """Close stdin, wait for the exit, then SIGTERM, then SIGKILL. Safe to call twice.

        Every step is bounded by `shutdown_timeout`, so `close` always reaches SIGTERM and
        SIGKILL. Stdin is closed under the write lock, so a message being written is not cut
        short; but a sender blocked because the server does not read (the pipe is full) would
        hold that lock forever. Past the timeout `close` stops waiting for it and terminates the
        server at once (it cannot read the end of its input when the pipe is jammed anyway);
        the broken pipe then fails the blocked `send` with `StdioTransportError`.
        """
        if self._closed:
            return
        self._closed = True
        process = self._process
        if process is None:
            self._incoming_send.close()
            return
        with anyio.CancelScope(shield=True):
            stdin_closed = process.stdin is None
            if process.stdin is not None:
                with anyio.move_on_after(self.shutdown_timeout):
                    async with self._write_lock:
                        await self._close_stdin(process.stdin)
                        stdin_closed = True
            if not stdin_closed:
                log.warning("a write to the server's stdin is blocked; terminating the server")
            if not stdin_closed or not await self._wait(process):
                if stdin_closed:
                    log.warning("the server did not exit after stdin closed; terminating it")
                process.terminate()
                if not await self._wait(process):
                    log.warning("the server did not exit after SIGTERM; killing it")
                    process.kill()
                    await process.wait()
            if process.stdin is not None and not stdin_closed:
                # The blocked writer still holds the lock; the pipe has no reader left.
                await self._close_stdin(process.stdin)
            self.returncode = process.returncode
        self._incoming_send.close()

    async def _close_stdin(self, stdin: anyio.abc.ByteSendStream) -> None:
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await stdin.aclose()

    async def _wait(self, process: anyio.abc.Process) -> bool:
        with anyio.move_on_after(self.shutdown_timeout):
            await process.wait()
            return True
        return False

    # ---- readers --------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        framer = LineFramer(self.max_line_bytes)
        try:
            async for chunk in self._process.stdout:
                for line in framer.feed(chunk):
                    await self._deliver_line(line)
            tail = framer.end()
            if tail is not None:
                await self._deliver_line(tail)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            log.info("reading the server's stdout failed: %s", exc)
        finally:
            self._incoming_send.close()

    async def _deliver_line(self, line: bytes | LineTooLong) -> None:
        if isinstance(line, LineTooLong):
            log.warning("the server sent a line over %d bytes; skipped", line.limit)
            return
        if not line.strip():
            return
        try:
            message = parse_message(decode(line))
        except InvalidMessage as exc:
            log.warning("ignoring invalid output from the server: %s", exc.reason)
            return
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._incoming_send.send(message)

    async def _read_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        framer = LineFramer(self.max_line_bytes)
        try:
            async for chunk in self._process.stderr:
                for line in framer.feed(chunk):
                    if isinstance(line, bytes):
                        await self._forward_stderr(line)
            tail = framer.end()
            if tail is not None:
                await self._forward_stderr(tail)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            log.debug("reading the server's stderr failed: %s", exc)

    async def _forward_stderr(self, line: bytes) -> None:
        try:
            await self.stderr_callback(line.decode("utf-8", "replace").rstrip("\r"))
        except Exception:
            log.exception("the stderr callback failed")
