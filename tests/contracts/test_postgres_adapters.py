"""The PostgreSQL adapters pass the port contracts on the server of this machine.

Every store gets a schema of its own (a fresh one per `make_store`, dropped after the test);
the stores of one test share one pool, created on the contract's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from mcp_core.adapters.storage.postgres import (
    PostgresCredentialStore,
    PostgresEventStore,
    PostgresSessionStore,
)
from mcp_core.ports.contracts import (
    CredentialStoreContract,
    EventStoreContract,
    SessionStoreContract,
)
from mcp_core.ports.contracts._portal import Driver, driver
from mcp_core.ports.credentials import CredentialStore
from mcp_core.ports.events import EventStore
from mcp_core.ports.sessions import SessionStore

POOL_CLOSE_TIMEOUT_S = 10.0


async def _open_pool(dsn: str) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    return await asyncpg.create_pool(dsn, min_size=1, max_size=4, timeout=5.0)


async def _close_pool(pool: Any) -> None:
    with anyio.move_on_after(POOL_CLOSE_TIMEOUT_S) as scope:
        await pool.close()
    if scope.cancelled_caught:
        pool.terminate()


class _FreshSchemas:
    """`self.pool` is shared by the test's stores; `self.fresh_schema()` names a new schema."""

    pool: Any
    fresh_schema: Callable[[], str]

    @pytest.fixture
    def run(self, postgres_dsn: str, postgres_schemas: Callable[[], str]) -> Iterator[Driver]:
        self.fresh_schema = postgres_schemas
        with driver() as d:
            self.pool = d(_open_pool, postgres_dsn)
            try:
                yield d
            finally:
                d(_close_pool, self.pool)


class TestPostgresCredentialStore(_FreshSchemas, CredentialStoreContract):
    def make_store(self) -> CredentialStore:
        return PostgresCredentialStore(self.pool, schema=self.fresh_schema())


class TestPostgresSessionStore(_FreshSchemas, SessionStoreContract):
    def make_store(self, *, idle_timeout: float, max_sessions: int) -> SessionStore:
        return PostgresSessionStore(
            self.pool,
            schema=self.fresh_schema(),
            idle_timeout=idle_timeout,
            max_sessions=max_sessions,
        )


class TestPostgresEventStore(_FreshSchemas, EventStoreContract):
    def make_store(self) -> EventStore:
        return PostgresEventStore(
            self.pool, schema=self.fresh_schema(), max_events_per_session=self.bound
        )
