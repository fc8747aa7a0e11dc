"""The in-memory adapters pass the port contracts (they are the reference the others meet)."""

from __future__ import annotations

from mcp_core.adapters.storage.memory import (
    InMemoryCredentialStore,
    InMemoryEventStore,
    InMemorySessionStore,
)
from mcp_core.ports.contracts import (
    CredentialStoreContract,
    EventStoreContract,
    SessionStoreContract,
)
from mcp_core.ports.credentials import CredentialStore
from mcp_core.ports.events import EventStore
from mcp_core.ports.sessions import SessionStore


class TestInMemorySessionStore(SessionStoreContract):
    def make_store(self, *, idle_timeout: float, max_sessions: int) -> SessionStore:
        return InMemorySessionStore(idle_timeout=idle_timeout, max_sessions=max_sessions)


class TestInMemoryEventStore(EventStoreContract):
    def make_store(self) -> EventStore:
        return InMemoryEventStore(max_events_per_session=self.bound)


class TestInMemoryCredentialStore(CredentialStoreContract):
    def make_store(self) -> CredentialStore:
        return InMemoryCredentialStore()
