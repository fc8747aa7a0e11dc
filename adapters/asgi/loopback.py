"""A tiny HTTP/1.1 server for one-time loopback pages: an ASGI app on 127.0.0.1 only.

Issue 3 ("Credential bootstrap", local-relay mode: "the server opens the user's browser on a
one-time loopback page"). `mcp_core.adapters.asgi.relay.LocalRelay` runs the relay form on it.

Why by hand and not uvicorn: the page takes a handful of requests from one browser, uvicorn is
an optional extra (a stdio server need not install it), it runs on asyncio only and, started
from inside a running server, installs signal handlers of its own. This server is written on
anyio (so it runs wherever the MCP server runs) and does only what the page needs:

- it listens on 127.0.0.1 (never another interface) on a port the OS picks;
- one request per connection (`Connection: close` on every response), a request head of at
  most `max_head_bytes`, a body only with `Content-Length` and at most `max_body_bytes`
  (chunked bodies are refused with 411), and `read_timeout` seconds to send it all; anything
  else gets a plain 400 and the connection is closed;
- the ASGI app sees an ordinary HTTP scope (its response is buffered, then written).
"""

from __future__ import annotations

import http
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.abc

__all__ = ["LOOPBACK_HOST", "LoopbackHttpServer", "RequestError", "listen_loopback"]

log = logging.getLogger("mcp_core.loopback")

LOOPBACK_HOST = "127.0.0.1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

_MAX_HEADERS = 64
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class RequestError(Exception):
    """A request this server does not take; `status` is what it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def listen_loopback() -> tuple[anyio.abc.Listener[anyio.abc.SocketStream], int]:
    """A listener on 127.0.0.1 and a port picked by the system, and that port."""
    listener = await anyio.create_tcp_listener(local_host=LOOPBACK_HOST, local_port=0)
    return listener, int(listener.extra(anyio.abc.SocketAttribute.local_port))


class LoopbackHttpServer:
    """Serves `app` on a listener from `listen_loopback` (whose port is `port`)."""

    def __init__(
        self,
        app: AsgiApp,
        *,
        port: int,
        max_head_bytes: int = 16 * 1024,
        max_body_bytes: int = 64 * 1024,
        read_timeout: float = 10.0,
        on_response: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        # Called after every response is written (the relay uses it to shut down when done).
        self.on_response = on_response
        self.port = port

    async def serve(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        """Accept connections until cancelled; closes the listener at the end."""
        async with listener:
            await listener.serve(self._connection)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(self.read_timeout):
                    scope, body = await self._read_request(stream)
            except RequestError as exc:
                await _write(stream, exc.status, [], str(exc).encode())
                return
            except (TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return  # a preconnect that never spoke, or a client that went away
            status, headers, payload = await self._call(scope, body)
            try:
                await _write(stream, status, headers, payload)
            except (anyio.BrokenResourceError, OSError):
                return
        if self.on_response is not None:
            await self.on_response()

    async def _read_request(self, stream: anyio.abc.SocketStream) -> tuple[Scope, bytes]:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > self.max_head_bytes:
                raise RequestError(431, "request head too large")
            buffer += await stream.receive(4096)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if len(head) > self.max_head_bytes:
            raise RequestError(431, "request head too large")
        method, target, headers = _parse_head(head)
        if "transfer-encoding" in {name for name, _ in headers}:
            raise RequestError(411, "send the body with Content-Length")
        lengths = [value for name, value in headers if name == "content-length"]
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            raise RequestError(400, "bad Content-Length")
        length = int(lengths[0]) if lengths else 0
        if length > self.max_body_bytes:
            raise RequestError(413, "body too large")
        body = rest
        while len(body) < length:
            body += await stream.receive(65536)
        if len(body) != length:
            raise RequestError(400, "more data than Content-Length")
        path, _, query = target.partition("?")
        peer = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
            ],
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "server": (LOOPBACK_HOST, self.port),
        }
        return scope, body

    async def _call(
        self, scope: Scope, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        sent_body = False
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await anyio.sleep_forever()
            raise AssertionError("unreachable")  # pragma: no cover

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("the loopback page's handler failed")
            return 500, [], b"internal error"
        payload = b"".join(chunks)
        return status, headers, b"" if scope["method"] == "HEAD" else payload


def _parse_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise RequestError(400, "the request head is not ASCII") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise RequestError(400, "bad request line")
    method, target, _ = parts
    if not method or not set(method) <= _TOKEN or not target.startswith("/"):
        raise RequestError(400, "bad request line")
    if len(lines) - 1 > _MAX_HEADERS:
        raise RequestError(431, "too many headers")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or not set(name) <= _TOKEN:
            raise RequestError(400, "bad header line")
        headers.append((name.lower(), value.strip(" \t")))
    return method, target, headers


async def _write(
    stream: anyio.abc.SocketStream, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}".encode("ascii")]
    for name, value in headers:
        if name.lower() not in (b"connection", b"content-length", b"transfer-encoding"):
            lines.append(name + b": " + value)
    if not any(name.lower() == b"content-type" for name, _ in headers):
        lines.append(b"content-type: text/plain; charset=utf-8")
    lines.append(b"content-length: " + str(len(body)).encode("ascii"))
    lines.append(b"connection: close")
    await stream.send(b"\r\n".join(lines) + b"\r\n\r\n" + body)
