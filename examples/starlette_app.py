"""An MCP endpoint mounted in a Starlette application, next to an ordinary route.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP" (the MCP endpoint is one path).

Run it from the repository root with either of:

    uvicorn starlette_app:app --app-dir examples --host 127.0.0.1 --port 8000
    mcp-core serve examples/starlette_app.py

Then `GET http://127.0.0.1:8000/hello` is an ordinary Starlette route and
`http://127.0.0.1:8000/mcp` is the MCP endpoint (`/healthz` reports the live sessions).

`create_app` returns a pure ASGI app that matches its `path` after the mount's `root_path`:
mounted at "/", its endpoint is `/mcp`; mounted at "/api", it would be `/api/mcp`. A mount at
"/" matches every path, so it goes after the framework's own routes.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from mcp_core.adapters.asgi import create_app
from mcp_core.core import McpServer

server = McpServer("starlette-example", version="1.0.0")


@server.tool()
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


async def hello(request: Request) -> JSONResponse:
    """An ordinary route, served by Starlette itself."""
    return JSONResponse({"message": "hello from Starlette"})


mcp_app = create_app(server)

app = Starlette(routes=[Route("/hello", hello), Mount("/", app=mcp_app)])
