"""The OAuth stores on each backend, for the end-to-end tests: memory, SQLite, PostgreSQL and
Redis (the last two against the servers on this machine; missing ones skip with the reason,
or fail under CI=true)."""

from __future__ import annotations

import importlib.util
import os
import secrets
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from contracts.conftest import POSTGRES_DSN, _postgres_execute, unavailable

from mcp_core.ports.oauth_stores import ClientStore, GrantStore

BACKENDS = ("memory", "sqlite", "postgres", "redis")
REDIS_URL = os.environ.get("MCP_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _closing(stack: AsyncExitStack, *stores: Any) -> None:
    for store in stores:
        for name in ("aclose", "close"):
            close = getattr(store, name, None)
            if callable(close):
                stack.push_async_callback(close)
                break


async def open_backend(
    name: str, folder: Path, stack: AsyncExitStack
) -> tuple[ClientStore, GrantStore]:
    if name == "memory":
        from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore

        return InMemoryClientStore(), InMemoryGrantStore()
    if name == "sqlite":
        from mcp_core.adapters.storage.sqlite import SqliteClientStore, SqliteGrantStore

        path = folder / "oauth.sqlite3"
        sqlite_pair = SqliteClientStore(path), SqliteGrantStore(path)
        await _closing(stack, *sqlite_pair)
        return sqlite_pair
    tag = f"e2e_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        if name == "postgres":
            if importlib.util.find_spec("asyncpg") is None:
                unavailable("asyncpg is not installed (the postgres extra)")
            from mcp_core.adapters.storage.postgres import (
                PostgresClientStore,
                PostgresGrantStore,
            )

            spec = POSTGRES_DSN
            pg_pair = (
                PostgresClientStore(spec, schema=tag),
                PostgresGrantStore(spec, schema=tag),
            )
            stack.push_async_callback(
                _postgres_execute, spec, f'DROP SCHEMA IF EXISTS "{tag}" CASCADE'
            )
            clients, grants = pg_pair[0], pg_pair[1]
        else:
            if importlib.util.find_spec("redis") is None:
                unavailable("redis is not installed (the redis extra)")
            from mcp_core.adapters.storage.redis import RedisClientStore, RedisGrantStore

            spec = REDIS_URL
            clients, grants = RedisClientStore(spec, prefix=tag), RedisGrantStore(spec, prefix=tag)
            stack.push_async_callback(_drop_keys, spec, tag)
        await _closing(stack, clients, grants)
        # Touch both so that an unreachable server is reported here, not mid-test.
        await clients.get(f"probe-{secrets.token_hex(4)}")
        await grants.is_revoked(f"probe-{secrets.token_hex(4)}")
    except Exception as exc:
        unavailable(f"{name} at {spec} is unreachable: {type(exc).__name__}: {exc}")
    return clients, grants


async def _drop_keys(url: str, prefix: str) -> None:
    """Remove every key the test wrote under its own prefix."""
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
