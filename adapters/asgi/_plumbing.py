"""ASGI plumbing every app in this package shares: types, headers, bodies, plain responses.

One copy, so that the MCP endpoint, the relay form and the authorization server read headers
and cap bodies the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp_core.core.http.messages import HttpResponse
from mcp_core.core.services.streamable_http import BodyTooLarge

__all__ = [
    "BodyTooLarge",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "header_map",
    "read_body",
    "respond",
    "serve_lifespan",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lowercase names; a header sent several times joined with ", " (RFC 9110 5.3)."""
    if not isinstance(raw, (list, tuple)):  # ASGI allows any iterable; read it once
        raw = list(raw)
    # The usual case, every name once, in one comprehension (it runs for every request); a
    # repeated name leaves fewer keys than headers, and the loop below joins the values.
    fast = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in raw}
    if len(fast) == len(raw):
        return fast
    out: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[name] = f"{out[name]}, {text}" if name in out else text
    return out


async def read_body(headers: dict[str, str], receive: Receive, limit: int) -> bytes:
    """The request body; `BodyTooLarge` as soon as it (or its declared length) passes `limit`."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(send: Send, response: HttpResponse) -> None:
    """Write a complete response with its Content-Length."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Answer the lifespan protocol for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
