"""The SQLite adapters pass the port contracts, each store on a fresh file."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from mcp_core.adapters.storage.sqlite import (
    SqliteCredentialStore,
    SqliteEventStore,
    SqliteSessionStore,
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


class _Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class _FreshFiles:
    """`self.opened(Store)(...)` makes a store on a new file in the test's temporary folder,
    closed when the test ends."""

    @pytest.fixture
    def run(self, tmp_path: Path) -> Iterator[Driver]:
        self._folder = tmp_path
        self._counter = itertools.count()
        self._stores: list[_Closable] = []
        with driver() as d:
            try:
                yield d
            finally:
                for store in self._stores:
                    d(store.close)

    def fresh_path(self) -> Path:
        return self._folder / "data" / f"store-{next(self._counter)}.sqlite3"

    def opened(self, store: S) -> S:
        self._stores.append(store)
        return store


class TestSqliteCredentialStore(_FreshFiles, CredentialStoreContract):
    def make_store(self) -> CredentialStore:
        return self.opened(SqliteCredentialStore(self.fresh_path()))


class TestSqliteSessionStore(_FreshFiles, SessionStoreContract):
    def make_store(self, *, idle_timeout: float, max_sessions: int) -> SessionStore:
        return self.opened(
            SqliteSessionStore(
                self.fresh_path(), idle_timeout=idle_timeout, max_sessions=max_sessions
            )
        )


class TestSqliteEventStore(_FreshFiles, EventStoreContract):
    def make_store(self) -> EventStore:
        return self.opened(SqliteEventStore(self.fresh_path(), max_events_per_session=self.bound))
