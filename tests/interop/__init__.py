"""Interoperability: the official MCP SDK clients (Python and TypeScript) against this server."""
