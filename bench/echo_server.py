"""mcp-core's side of the benchmark: one `echo` tool served over Streamable HTTP.

The same server as `sdk_echo_server.py` and `fastmcp_echo_server.py` (one tool, `echo(text) ->
text`), built with this project. `app` is a plain ASGI app, served by the same uvicorn with the
same flags as the peers (see `run.py`).

- `MCP_BENCH_MODE=json` (the default): every request is answered with `application/json`.
- `MCP_BENCH_MODE=sse`: every request is answered with a `text/event-stream`.

Both modes use sessions (`initialize` mints an `Mcp-Session-Id`); mcp-core has no sessionless
legacy mode, so in JSON mode it is compared with the SDK's stateless server, which does less work
per request than a stateful one.

Run it on its own:  MCP_BENCH_MODE=sse uvicorn --app-dir bench echo_server:app --port 8000
"""

from __future__ import annotations

import os

from mcp_core.adapters.asgi import create_app
from mcp_core.core import McpServer

__all__ = ["MODE", "app", "server"]

MODE = os.environ.get("MCP_BENCH_MODE", "json").lower()
if MODE not in ("json", "sse"):
    raise SystemExit(f"MCP_BENCH_MODE must be json or sse, got {MODE!r}")

server = McpServer("mcp-core-echo", "0.1.0")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


app = create_app(server, response_mode="sse" if MODE == "sse" else "json")
