"""The in-memory OAuth stores pass the `ClientStore` and `GrantStore` contracts."""

from __future__ import annotations

from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.ports.contracts.oauth_stores import ClientStoreContract, GrantStoreContract
from mcp_core.ports.oauth_stores import ClientStore, GrantStore


class TestInMemoryClientStore(ClientStoreContract):
    def make_store(self) -> ClientStore:
        return InMemoryClientStore()


class TestInMemoryGrantStore(GrantStoreContract):
    def make_store(self) -> GrantStore:
        return InMemoryGrantStore()
