"""JSON-RPC 2.0 error codes and the errors MCP adds to them.

Spec: JSON-RPC 2.0 section 5.1; MCP 2025-11-25 "Base Protocol" (error handling) and
"Elicitation" (URL elicitation required, -32042); 2026-07-28 header validation (-32020).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "REQUEST_TIMEOUT",
    "RESOURCE_NOT_FOUND",
    "URL_ELICITATION_REQUIRED",
    "McpError",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP additions.
RESOURCE_NOT_FOUND = -32002
URL_ELICITATION_REQUIRED = -32042
HEADER_MISMATCH = -32020
# Used by this library for requests it gives up on; in the implementation-defined range.
REQUEST_TIMEOUT = -32001
REQUEST_CANCELLED = -32800


class McpError(Exception):
    """An error that becomes a JSON-RPC error response.

    Raise it from a handler to answer with exactly this code, message and data. Any other
    exception escaping a request handler is answered with INTERNAL_ERROR and a generic
    message, so no server internals leak to the peer.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    def __repr__(self) -> str:
        return f"McpError(code={self.code}, message={self.message!r})"
