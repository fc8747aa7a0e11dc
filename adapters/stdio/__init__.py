"""The stdio adapter: serve an MCP server over this process's stdin and stdout.

```python
from mcp_core.adapters.stdio import run_stdio

run_stdio(server)  # blocks until the client closes stdin
```
"""

from .server import run_stdio, serve_stdio

__all__ = ["run_stdio", "serve_stdio"]
