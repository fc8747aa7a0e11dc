"""mcp-core's pure core and its services: build a server here, serve it with an adapter.

```python
from mcp_core.core import McpServer, Context
```

The names below are loaded on first use (PEP 562), so importing a pure module such as
`mcp_core.core.machines.session` does not pull in the services and their I/O libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocol.errors import McpError
    from .protocol.types import (
        AudioContent,
        BlobResourceContents,
        CallToolResult,
        Completion,
        EmbeddedResource,
        GetPromptResult,
        ImageContent,
        PromptMessage,
        ResourceLink,
        TextContent,
        TextResourceContents,
        ToolAnnotations,
    )
    from .services.context import Context, ElicitResult, Root, SamplingResult
    from .services.prompts import PromptArgument
    from .services.server import McpServer
    from .services.signature import Param
    from .services.tools import ToolError

_WHERE = {
    "McpError": ".protocol.errors",
    "AudioContent": ".protocol.types",
    "BlobResourceContents": ".protocol.types",
    "CallToolResult": ".protocol.types",
    "Completion": ".protocol.types",
    "EmbeddedResource": ".protocol.types",
    "GetPromptResult": ".protocol.types",
    "ImageContent": ".protocol.types",
    "PromptMessage": ".protocol.types",
    "ResourceLink": ".protocol.types",
    "TextContent": ".protocol.types",
    "TextResourceContents": ".protocol.types",
    "ToolAnnotations": ".protocol.types",
    "Context": ".services.context",
    "ElicitResult": ".services.context",
    "Root": ".services.context",
    "SamplingResult": ".services.context",
    "PromptArgument": ".services.prompts",
    "McpServer": ".services.server",
    "Param": ".services.signature",
    "ToolError": ".services.tools",
}

__all__ = [
    "AudioContent",
    "BlobResourceContents",
    "CallToolResult",
    "Completion",
    "Context",
    "ElicitResult",
    "EmbeddedResource",
    "GetPromptResult",
    "ImageContent",
    "McpError",
    "McpServer",
    "Param",
    "PromptArgument",
    "PromptMessage",
    "ResourceLink",
    "Root",
    "SamplingResult",
    "TextContent",
    "TextResourceContents",
    "ToolAnnotations",
    "ToolError",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
