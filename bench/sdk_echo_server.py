"""The official MCP Python SDK's side of the benchmark (mcp 2.3.0, the newest release).

The same one-tool server as `echo_server.py`, written the way the SDK's documentation shows:
an `MCPServer` with one `@tool()`, served by `streamable_http_app()`, whose Starlette app
already runs the session manager in its lifespan (so uvicorn can serve `app` directly).

- `MCP_BENCH_MODE=json` (the default): `stateless_http=True, json_response=True`; no sessions,
  `application/json` replies. The SDK builds a fresh transport and server session per request.
- `MCP_BENCH_MODE=sse`: stateful; `initialize` mints an `Mcp-Session-Id` and every reply is a
  `text/event-stream`. Defaults kept: `max_sessions=10_000`, `session_idle_timeout=1800` s.

The tool is a plain function, as in `echo_server.py`; the SDK runs such a tool on a worker
thread (`anyio.to_thread.run_sync`), mcp-core calls it inline. `MCP_BENCH_ASYNC_TOOL=1` makes
it an `async def` instead, to see what that thread hop costs (not used by `run.py`).

The default `host="127.0.0.1"` leaves DNS-rebinding protection on with loopback hosts allowed,
as mcp-core's own default does.
"""

from __future__ import annotations

import os

from mcp.server import MCPServer

__all__ = ["MODE", "app", "mcp"]

MODE = os.environ.get("MCP_BENCH_MODE", "json").lower()
if MODE not in ("json", "sse"):
    raise SystemExit(f"MCP_BENCH_MODE must be json or sse, got {MODE!r}")

mcp = MCPServer("sdk-echo", log_level="WARNING")


if os.environ.get("MCP_BENCH_ASYNC_TOOL") == "1":

    @mcp.tool()
    async def echo(text: str) -> str:
        """Echo the text back."""
        return text

else:

    @mcp.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text


app = mcp.streamable_http_app(
    streamable_http_path="/mcp",
    json_response=MODE == "json",
    stateless_http=MODE == "json",
)
