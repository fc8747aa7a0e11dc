"""The demo server that `mcp-core serve` runs without a target, as an example to read.

Spec: MCP 2025-11-25 "Server Features" and "Transports".

The server itself is built in `mcp_core.adapters.cli.demo` (it ships in the package, so the
CLI finds it in an installed wheel). Serve it with any of:

    mcp-core serve                               # the same server, over HTTP
    mcp-core serve examples/demo_server.py       # this file, over HTTP
    mcp-core serve examples/demo_server.py --stdio
    python examples/demo_server.py               # over stdio
"""

from __future__ import annotations

from mcp_core.adapters.cli.demo import build_demo_server
from mcp_core.adapters.stdio import run_stdio

server = build_demo_server()

if __name__ == "__main__":
    run_stdio(server)
