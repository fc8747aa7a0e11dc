"""The floor: a bare ASGI app that answers `tools/call echo` with no MCP machinery at all.

Not an MCP server: no validation, no sessions kept, no capabilities. It decodes the JSON-RPC
body, echoes `params.arguments.text` back in a `tools/call` result, and answers `initialize`
with a random `Mcp-Session-Id` it then forgets. Served by the same uvicorn with the same flags,
it shows how fast any Python server can answer this request on this machine: the time left
between it and a real server is that server's own cost. At concurrency 1 it also bounds the
ratio any server can reach over the SDK, because loopback, uvicorn and the load generator take
their share of every round trip whoever answers.

`MCP_BENCH_MODE=json` (the default) answers `application/json`; `sse` answers the same message
as one `text/event-stream` event.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

__all__ = ["app"]

MODE = os.environ.get("MCP_BENCH_MODE", "json").lower()
if MODE not in ("json", "sse"):
    raise SystemExit(f"MCP_BENCH_MODE must be json or sse, got {MODE!r}")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_INIT_RESULT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {}},
    "serverInfo": {"name": "floor", "version": "0"},
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]  # startup | shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = orjson.loads(body) if body else {}
    headers = [(b"content-type", b"text/event-stream" if MODE == "sse" else b"application/json")]
    if "id" not in request:  # a notification
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if request.get("method") == "initialize":
        result: dict[str, Any] = _INIT_RESULT
        headers.append((b"mcp-session-id", secrets.token_hex(16).encode()))
    else:
        text = request["params"]["arguments"]["text"]
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    payload = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result})
    if MODE == "sse":
        payload = b"event: message\ndata: " + payload + b"\n\n"
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
