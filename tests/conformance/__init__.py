"""The official MCP conformance suite (`@modelcontextprotocol/conformance`) against mcp-core."""
