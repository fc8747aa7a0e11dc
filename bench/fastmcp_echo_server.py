"""FastMCP's side of the benchmark (the newest FastMCP, built on the official SDK's transport).

The same one-tool server as `echo_server.py`: a `FastMCP` app with one `@tool`, served by
`http_app()`, whose Starlette app runs FastMCP's session manager in its own lifespan.

- `MCP_BENCH_MODE=json` (the default): `stateless_http=True, json_response=True`.
- `MCP_BENCH_MODE=sse`: stateful sessions (`Mcp-Session-Id`), `text/event-stream` replies.

FastMCP turns the SDK's DNS-rebinding check off by default; that is left as shipped.
"""

from __future__ import annotations

import os

from fastmcp import FastMCP

__all__ = ["MODE", "app", "mcp"]

MODE = os.environ.get("MCP_BENCH_MODE", "json").lower()
if MODE not in ("json", "sse"):
    raise SystemExit(f"MCP_BENCH_MODE must be json or sse, got {MODE!r}")

mcp = FastMCP("fastmcp-echo")


@mcp.tool
def echo(text: str) -> str:
    """Echo the text back."""
    return text


app = mcp.http_app(
    path="/mcp",
    json_response=MODE == "json",
    stateless_http=MODE == "json",
)
