"""The stdio transport, server side: newline-delimited JSON-RPC over two byte streams.

Spec: MCP 2025-11-25 "Transports" > "stdio", and "Lifecycle" > "Shutdown" > "stdio".

The client launches the server as a subprocess and writes messages to its standard input; the
server writes messages to its standard output. Each message is one JSON-RPC request,
notification or response on one line: messages are delimited by newlines and never contain
embedded ones (orjson escapes every control character, so what this module writes never does).
The server writes nothing to stdout that is not a valid MCP message; logging goes to stderr,
which is the adapter's business. The client ends the session by closing the server's input.

Theory of operation. `StdioService.serve(source, sink)` serves one connection: the byte streams
are ports (`ByteSource`, `ByteSink`) shaped like anyio's byte streams, so an anyio subprocess
pipe, a socket stream or an in-memory stream plugs in as it is, and the core never touches
`sys.stdin`. One `ServerSession` (with no session id) lives as long as the connection.

- Input is cut into lines by `LineFramer`, which enforces `max_line_bytes`: an over-long line
  is answered with an error (no id: it was never parsed) and skipped up to its newline, without
  ever being held in memory whole. Blank lines are ignored.
- A line that is not JSON is answered with -32700 and no id; a JSON value that is not a valid
  message is answered (or not) as `parse_message` says: notifications and responses never get
  an answer, not even an error.
- `initialize` is served inline, so a `notifications/initialized` that follows it on the pipe
  always finds it applied. Every other request runs in its own task of the connection's task
  group: a slow tool never blocks the pipe, `notifications/cancelled` can cancel it (a cancelled
  request gets no response: "Utilities" > "Cancellation"), and a handler can call the client
  (sampling, elicitation, roots): its request goes out on the sink and the client's response,
  read from the source like any other message, is resolved via `McpServer.handle_response`.
  A request task is started before the next line is read, so a cancellation that follows its
  request in the same read always finds it.
- Notifications and responses are handled inline, in the order they arrive.
- Writes are serialized by one lock and shielded from cancellation, so lines never interleave
  or get cut short. Messages posted from synchronous code (list-changed broadcasts) wait in a
  bounded queue that a pump task drains.
- End of input (or a broken output pipe) closes the session: in-flight handlers are cancelled,
  requests waiting on the client fail, and `serve` returns.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs
import orjson

from mcp_core.ports.system import Clock

from ..protocol import errors
from ..protocol.jsonrpc import (
    ErrorResponse,
    InvalidMessage,
    Message,
    Notification,
    Request,
    Response,
    decode,
    error_payload,
    parse_message,
)
from ..protocol.versions import Era, era_of_request
from .server import McpServer
from .session import ServerSession

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "ByteSink",
    "ByteSource",
    "LineFramer",
    "LineTooLong",
    "StdioConfig",
    "StdioService",
    "message_of_line",
    "read_lines",
]

log = logging.getLogger("mcp_core.stdio")

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024

# What a source raises (besides returning b"") when its input is over.
_END_OF_INPUT = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)
# What a sink raises when the peer stopped reading (BrokenPipeError is an OSError).
_BROKEN_OUTPUT = (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError)


class ByteSource(Protocol):
    """The server's input (its stdin). anyio's `ByteReceiveStream` satisfies it.

    `receive` returns the next chunk of bytes, of any size and cut anywhere; at end of input
    it returns `b""` or raises `anyio.EndOfStream`.
    """

    async def receive(self) -> bytes: ...


class ByteSink(Protocol):
    """The server's output (its stdout). anyio's `ByteSendStream` satisfies it.

    `send` writes all of `item` (and flushes it) before returning.
    """

    async def send(self, item: bytes, /) -> None: ...


@attrs.frozen(kw_only=True)
class StdioConfig:
    """Settings of the stdio transport.

    - `max_line_bytes`: a longer input line (newline excluded) is refused and skipped.
    - `standalone_queue`: messages posted from synchronous code (broadcasts) that may wait to
      be written; beyond it the oldest is dropped with a warning.
    """

    max_line_bytes: int = attrs.field(default=DEFAULT_MAX_LINE_BYTES)
    standalone_queue: int = 10_000

    @max_line_bytes.validator
    def _check_max_line_bytes(self, _attribute: object, value: int) -> None:
        if value < 1:
            raise ValueError("max_line_bytes must be at least 1")


@attrs.frozen
class LineTooLong:
    """The framer met a line longer than `limit` bytes; the rest of it is being skipped."""

    limit: int


class LineFramer:
    """Cuts a byte stream into newline-terminated lines, holding at most one line's bytes.

    Pure: `feed` takes the next chunk and returns the lines it completed (without their
    newline), plus one `LineTooLong` per line that went over the limit. An over-long line is
    reported as soon as it goes over (the client hears of it without waiting for its end)
    and its remaining bytes are dropped as they arrive. `end` returns what is left after the
    last newline when the input ends.
    """

    __slots__ = ("_buffer", "_discarding", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        out: list[bytes | LineTooLong] = []
        buffer = self._buffer
        pos = 0
        size = len(data)
        # Each byte of the chunk is looked at once: no rescanning of the held partial line.
        while pos < size:
            newline = data.find(b"\n", pos)
            end = size if newline == -1 else newline
            if self._discarding:
                pass
            elif len(buffer) + (end - pos) > self.limit:
                buffer.clear()
                self._discarding = True
                out.append(LineTooLong(self.limit))
            elif newline == -1:
                buffer += data[pos:end]
            elif buffer:
                buffer += data[pos:end]
                out.append(bytes(buffer))
                buffer.clear()
            else:
                out.append(data[pos:end])
            if newline == -1:
                break
            self._discarding = False
            pos = newline + 1
        return out

    def end(self) -> bytes | None:
        """The unterminated last line, if any (a client may omit the final newline)."""
        if self._discarding or not self._buffer:
            return None
        tail = bytes(self._buffer)
        self._buffer.clear()
        return tail


async def read_lines(source: ByteSource, max_line_bytes: int) -> AsyncIterator[bytes | LineTooLong]:
    """The lines of `source` (`LineFramer` with `max_line_bytes`), the unterminated last one
    included, until the input ends or fails (a failure is logged and ends it too)."""
    framer = LineFramer(max_line_bytes)
    while True:
        try:
            chunk = await source.receive()
        except _END_OF_INPUT:
            chunk = b""
        except OSError as exc:
            log.warning("reading the input failed (%s): ending the session", exc)
            return
        if not chunk:
            tail = framer.end()
            if tail is not None:
                yield tail
            return
        for line in framer.feed(chunk):
            yield line


def message_of_line(line: bytes | LineTooLong) -> Message | dict[str, Any] | None:
    """What one input line is: a message to handle, an error response to write back (an
    over-long line, or one that is not a valid message but has an answer), or None (a blank
    line, or an invalid one that gets no answer)."""
    if isinstance(line, LineTooLong):
        log.warning("skipped an input line longer than %d bytes", line.limit)
        return error_payload(
            None,
            errors.INVALID_REQUEST,
            f"Invalid request: the message is longer than {line.limit} bytes",
            {"maxLineBytes": line.limit},
        )
    if not line.strip():
        return None
    try:
        return parse_message(decode(line))
    except InvalidMessage as exc:
        log.debug("invalid message: %s", exc.reason)
        return exc.response.to_wire() if exc.response is not None else None


class _PipeWriter:
    """Writes whole lines to the sink, one at a time, never cut by a cancellation."""

    __slots__ = ("_lock", "_on_broken", "_sink", "broken")

    def __init__(self, sink: ByteSink, on_broken: anyio.CancelScope) -> None:
        self._sink = sink
        self._lock = anyio.Lock()
        self._on_broken = on_broken
        self.broken = False

    async def write(self, message: dict[str, Any]) -> None:
        """Write one message; raises TypeError (before writing) if it is not JSON."""
        line = orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
        async with self._lock:
            if self.broken:
                return
            try:
                # Half a line on the pipe would corrupt every message after it.
                with anyio.CancelScope(shield=True):
                    await self._sink.send(line)
            except _BROKEN_OUTPUT as exc:
                self.broken = True
                log.info("output closed (%s): ending the session", type(exc).__name__)
                self._on_broken.cancel()

    async def write_response(self, response: dict[str, Any]) -> None:
        try:
            await self.write(response)
        except TypeError:
            log.exception("the response to request %r is not JSON", response.get("id"))
            await self.write(
                error_payload(response.get("id"), errors.INTERNAL_ERROR, "Internal error")
            )


class _PipeOutbound:
    """The dispatcher's `Outbound` over stdio: requests and the session share the one pipe."""

    __slots__ = ("_pending", "_wakeup", "_writer", "closed")

    can_close = False  # no stream of its own to close: `Context.close_stream` is a no-op

    def __init__(self, writer: _PipeWriter, queue_size: int) -> None:
        self._writer = writer
        self._pending: deque[dict[str, Any]] = deque(maxlen=queue_size)
        self._wakeup = anyio.Event()
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        await self._writer.write(message)

    def post(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if len(self._pending) == self._pending.maxlen:
            log.warning("outgoing queue full: dropping the oldest message")
        self._pending.append(message)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._wakeup.set()

    async def pump(self) -> None:
        """Write what `post` queued, in order, until closed."""
        while not self.closed:
            while self._pending:
                message = self._pending.popleft()
                try:
                    await self._writer.write(message)
                except TypeError:
                    log.exception("dropped a posted message that is not JSON")
            self._wakeup = anyio.Event()
            if not self._pending and not self.closed:
                await self._wakeup.wait()


class StdioService:
    """Serves an `McpServer` over stdio-style byte streams, one session per connection.

    ```python
    await StdioService(server).serve(source, sink)   # returns at end of input
    ```

    The process adapter (`mcp_core.adapters.stdio`) passes the real stdin and stdout.
    """

    def __init__(
        self,
        server: McpServer,
        *,
        config: StdioConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.server = server
        self.config = config or StdioConfig()
        self.clock = clock

    async def serve(self, source: ByteSource, sink: ByteSink) -> None:
        """Serve one connection until its input ends or its output breaks."""
        now = self.clock.now() if self.clock is not None else anyio.current_time()
        session = ServerSession(self.server, None, now=now)
        async with anyio.create_task_group() as tg:
            writer = _PipeWriter(sink, tg.cancel_scope)
            outbound = _PipeOutbound(writer, self.config.standalone_queue)
            session.standalone = outbound
            self.server.attach(session)
            try:
                tg.start_soon(outbound.pump)
                await self._read(session, source, writer, outbound, tg)
            finally:
                # End of input: the session ends with it (2025-11-25 Lifecycle > Shutdown).
                self.server.detach(session)
                session.close()
                outbound.close()
                tg.cancel_scope.cancel()

    async def _read(
        self,
        session: ServerSession,
        source: ByteSource,
        writer: _PipeWriter,
        outbound: _PipeOutbound,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        async for line in read_lines(source, self.config.max_line_bytes):
            await self._dispatch(session, line, writer, outbound, tg)
        log.debug("end of input: closing the session")

    async def _dispatch(
        self,
        session: ServerSession,
        line: bytes | LineTooLong,
        writer: _PipeWriter,
        outbound: _PipeOutbound,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        message = message_of_line(line)
        if isinstance(message, dict):
            await writer.write(message)
            return
        if message is None:
            return
        if isinstance(message, Request):
            if era_of_request(message.method, message.params) is Era.MODERN:
                await writer.write(self.server.refuse_modern(message))
            elif message.method == "initialize":
                response = await self.server.handle_request(session, message, outbound)
                if response is not None:
                    await writer.write_response(response)
            else:
                await tg.start(self._serve_request, session, message, writer, outbound)
        elif isinstance(message, Notification):
            await self.server.handle_notification(session, message)
        elif isinstance(message, (Response, ErrorResponse)):
            self.server.handle_response(session, message)

    async def _serve_request(
        self,
        session: ServerSession,
        request: Request,
        writer: _PipeWriter,
        outbound: _PipeOutbound,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        # Reported started at once: the dispatcher then registers the request (so it can be
        # cancelled) before its handler first awaits, which is before the next line is read.
        task_status.started()
        try:
            response = await self.server.handle_request(session, request, outbound)
            if response is not None:  # None: cancelled, and a cancelled request is not answered
                await writer.write_response(response)
        except Exception:
            # handle_request answers handler errors itself; this is a bug, not a request error.
            log.exception("serving request %r (%s) failed", request.id, request.method)
