"""`python -m mcp_core.adapters.cli`: the same as the `mcp-core` command."""

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())
