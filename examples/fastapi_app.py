"""An MCP endpoint mounted in a FastAPI application under a prefix, next to an ordinary route.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP" (the MCP endpoint is one path).

Run it from the repository root with either of:

    uvicorn fastapi_app:app --app-dir examples --host 127.0.0.1 --port 8000
    mcp-core serve examples/fastapi_app.py

Then `GET http://127.0.0.1:8000/hello` is an ordinary FastAPI route and
`http://127.0.0.1:8000/api/mcp` is the MCP endpoint (`/api/healthz` reports the sessions).

`create_app` returns a pure ASGI app that matches its `path` (here the default `/mcp`) after
the mount's `root_path` (`/api`). Mount the app rather than wrapping it in a route: the MCP
endpoint streams (SSE) and answers GET, POST and DELETE itself.
"""

from __future__ import annotations

from fastapi import FastAPI

from mcp_core.adapters.asgi import create_app
from mcp_core.core import McpServer

server = McpServer("fastapi-example", version="1.0.0")


@server.tool()
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


app = FastAPI(title="mcp-core FastAPI example")


@app.get("/hello")
def hello() -> dict[str, str]:
    """An ordinary route, served by FastAPI itself."""
    return {"message": "hello from FastAPI"}


app.mount("/api", create_app(server))
