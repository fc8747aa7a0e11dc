"""Storage adapters for the ports in `mcp_core.ports`.

In memory (the reference) and SQLite (the embedded default, standard library only) are exported
here. PostgreSQL (`mcp_core.adapters.storage.postgres`, the `postgres` extra) and Redis
(`mcp_core.adapters.storage.redis`, the `redis` extra) are imported from their modules, so
their drivers stay optional.
"""

from .memory import InMemoryCredentialStore, InMemoryEventStore, InMemorySessionStore
from .sqlite import (
    SqliteCredentialStore,
    SqliteEventStore,
    SqliteSessionStore,
    default_data_path,
)

__all__ = [
    "InMemoryCredentialStore",
    "InMemoryEventStore",
    "InMemorySessionStore",
    "SqliteCredentialStore",
    "SqliteEventStore",
    "SqliteSessionStore",
    "default_data_path",
]
