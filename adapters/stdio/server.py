"""Serve an `McpServer` over the process's own stdin and stdout.

Spec: MCP 2025-11-25 "Transports" > "stdio": the client launches the server as a subprocess,
writes messages to its stdin and reads them from its stdout; the server "MUST NOT write
anything to its stdout that is not a valid MCP message" and MAY log to stderr.

The protocol itself (framing, the line limit, dispatch, cancellation, shutdown on end of input)
is `mcp_core.core.services.stdio`; this module only connects it to real files:

- stdin is read from its file descriptor (`os.read`, so a chunk is whatever the pipe has, not
  a full buffer) in a daemon thread, and handed to the event loop through a blocking portal.
  A daemon thread, not an anyio worker, because a read blocked on an idle pipe cannot be
  interrupted: a worker thread would keep the interpreter from exiting (after Ctrl-C, or when
  the client stopped reading our stdout) until the client wrote or closed.
- stdout is written in binary and flushed after every message, in a worker thread so a client
  that is slow to read never stalls the event loop (or the reading of stdin).
- While serving the real stdout, `sys.stdout` points at stderr, so a stray `print()` in a tool
  lands in the log instead of corrupting the protocol stream, and logging handlers that wrote
  to stdout write to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import anyio
import anyio.from_thread
import anyio.to_thread

from mcp_core.core.services.server import McpServer
from mcp_core.core.services.stdio import DEFAULT_MAX_LINE_BYTES, StdioConfig, StdioService

from ..system import SystemClock

__all__ = ["run_stdio", "serve_stdio"]

log = logging.getLogger("mcp_core.stdio")

_CHUNK = 64 * 1024


class _ThreadedReader:
    """A `ByteSource` over a blocking binary file, read ahead one chunk by a daemon thread."""

    def __init__(self, file: BinaryIO, portal: anyio.from_thread.BlockingPortal) -> None:
        self._file = file
        self._portal = portal
        # No buffer: the thread hands over one chunk at a time, when the loop asks for it.
        self._send, self._receive = anyio.create_memory_object_stream[bytes]()
        self._thread = threading.Thread(target=self._run, name="mcp-core stdin", daemon=True)
        self._thread.start()

    def _reader(self) -> Callable[[int], bytes]:
        # The file descriptor, not the file object: a daemon thread blocked inside a buffered
        # file's read holds that file's lock, and the interpreter aborts when it finds the lock
        # taken while closing `sys.stdin` at exit. `os.read` also returns what the pipe has.
        try:
            fd = self._file.fileno()
        except (OSError, ValueError, AttributeError):  # an in-memory file: it never blocks
            read1: Callable[[int], bytes] | None = getattr(self._file, "read1", None)
            return read1 or self._file.read
        return functools.partial(os.read, fd)

    def _run(self) -> None:
        read = self._reader()
        while True:
            try:
                data = read(_CHUNK)
            except (OSError, ValueError) as exc:  # ValueError: the file was closed
                log.warning("reading stdin failed (%s): treating it as the end of input", exc)
                data = b""
            try:
                self._portal.call(self._send.send, data)
            except Exception:  # the portal stopped or the reader was closed: nobody listens
                return
            if not data:
                return

    async def receive(self) -> bytes:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return b""

    def close(self) -> None:
        self._receive.close()
        self._send.close()


class _FileWriter:
    """A `ByteSink` over a blocking binary file: write, flush, in a worker thread."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.broken = False

    async def send(self, item: bytes, /) -> None:
        await anyio.to_thread.run_sync(self._write, item)

    def _write(self, item: bytes) -> None:
        try:
            self._file.write(item)
            self._file.flush()
        except OSError:
            self.broken = True
            raise
        except ValueError as exc:  # the file was closed under us: as good as a broken pipe
            self.broken = True
            raise BrokenPipeError("stdout is closed") from exc


@contextlib.contextmanager
def _stdout_reserved(stdout: BinaryIO) -> Iterator[None]:
    """Keep everything but protocol messages off the real stdout while serving on it."""
    sys.stdout.flush()
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (
            sys.stdout,
            sys.__stdout__,
            stdout,
        ):
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


def _silence_broken_stdout(stdout: BinaryIO) -> None:
    """After the client closed our stdout, point fd 1 at devnull so the interpreter's final
    flush of `sys.stdout` does not print a BrokenPipeError (the Python docs' recipe)."""
    try:
        fd = stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError):
        pass


async def serve_stdio(
    server: McpServer,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> None:
    """Serve `server` over stdin/stdout (binary files) until the client closes stdin.

    By default the process's own `sys.stdin.buffer` and `sys.stdout.buffer`; while serving on
    the real stdout, `sys.stdout` is redirected to stderr (see the module docstring).
    """
    real_stdout = stdout is None
    reader_file = stdin if stdin is not None else sys.stdin.buffer
    writer_file = stdout if stdout is not None else sys.stdout.buffer
    service = StdioService(
        server, config=StdioConfig(max_line_bytes=max_line_bytes), clock=SystemClock()
    )
    writer = _FileWriter(writer_file)
    guard = _stdout_reserved(writer_file) if real_stdout else contextlib.nullcontext()
    with guard:
        async with anyio.from_thread.BlockingPortal() as portal:
            reader = _ThreadedReader(reader_file, portal)
            try:
                await service.serve(reader, writer)
            finally:
                reader.close()
                await portal.stop(cancel_remaining=True)
    if writer.broken and real_stdout:
        _silence_broken_stdout(writer_file)


def _log_to_stderr(level: int | str | None) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    if level is not None:
        root.setLevel(level.upper() if isinstance(level, str) else level)


def run_stdio(
    server: McpServer,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    log_level: int | str | None = None,
) -> None:
    """Serve `server` over this process's stdin and stdout; return when stdin closes.

    Logging goes to stderr: a handler is added to the root logger when it has none.

    ```python
    if __name__ == "__main__":
        run_stdio(server)
    ```
    """
    _log_to_stderr(log_level)
    anyio.run(functools.partial(serve_stdio, server, max_line_bytes=max_line_bytes))
