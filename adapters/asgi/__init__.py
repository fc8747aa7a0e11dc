"""The ASGI adapter: mount an MCP server in any ASGI framework or server."""

from .app import McpAsgiApp, create_app

__all__ = ["McpAsgiApp", "create_app"]
