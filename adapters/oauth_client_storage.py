"""`TokenStorage` adapters: in memory, and sealed in the vault.

Port: `mcp_core.ports.oauth_client.TokenStorage` (issue 5: "token storage (in-memory, and the
vault's encrypted storage) ... Credentials are keyed by the authorization server's issuer").

`VaultTokenStorage` keeps each grant as one vault record (AES-256-GCM, the record's names bound
as associated data; `core/services/vault.py`): server `namespace` (default
"mcp-core-client"), subject the SHA-256 of the MCP server's canonical URI, kind "oauth:" and
the SHA-256 of the issuer. Hashes keep the names short and free of URL syntax; the issuer and
resource themselves are inside the sealed data, and `load` checks them, so a record can never
answer for another issuer. `find(resource)` lists the subject's records (no decryption) and
opens the newest. Writes are compare-and-set on the version read just before; a writer that
loses a race retries once with the fresh version (the newer grant wins).
"""

from __future__ import annotations

import hashlib

from mcp_core.core.services.vault import Vault
from mcp_core.ports.credentials import VersionConflict
from mcp_core.ports.oauth_client import StoredGrant

__all__ = ["InMemoryTokenStorage", "VaultTokenStorage"]


class InMemoryTokenStorage:
    """Grants in a dict, for one process. `saved` counts saves (tests read it)."""

    def __init__(self) -> None:
        # Oldest saved first (a save moves its key to the end): `find` wants the newest.
        self._grants: dict[tuple[str, str], StoredGrant] = {}
        self.saved = 0

    def __repr__(self) -> str:
        return f"InMemoryTokenStorage({len(self._grants)} grants)"

    async def load(self, issuer: str, resource: str) -> StoredGrant | None:
        return self._grants.get((issuer, resource))

    async def find(self, resource: str) -> StoredGrant | None:
        for (_, held), grant in reversed(self._grants.items()):
            if held == resource:
                return grant
        return None

    async def save(self, grant: StoredGrant) -> None:
        key = (grant.issuer, grant.resource)
        self._grants.pop(key, None)
        self._grants[key] = grant
        self.saved += 1

    async def delete(self, issuer: str, resource: str) -> None:
        self._grants.pop((issuer, resource), None)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class VaultTokenStorage:
    """Grants sealed in a `Vault`; see the module docstring."""

    KIND_PREFIX = "oauth:"

    def __init__(self, vault: Vault, *, namespace: str = "mcp-core-client") -> None:
        self._vault = vault
        self._namespace = namespace

    def __repr__(self) -> str:
        return f"VaultTokenStorage(namespace={self._namespace!r})"

    def _names(self, issuer: str, resource: str) -> tuple[str, str, str]:
        return self._namespace, _digest(resource), self.KIND_PREFIX + _digest(issuer)

    async def load(self, issuer: str, resource: str) -> StoredGrant | None:
        credential = await self._vault.get(*self._names(issuer, resource))
        if credential is None or not isinstance(credential.data, dict):
            return None
        grant = StoredGrant.from_json(credential.data)
        if (grant.issuer, grant.resource) != (issuer, resource):
            return None  # not ours: never hand one issuer's tokens to another
        return grant

    async def find(self, resource: str) -> StoredGrant | None:
        infos = await self._vault.list_subject(self._namespace, _digest(resource))
        infos = [i for i in infos if i.kind.startswith(self.KIND_PREFIX)]
        for info in sorted(infos, key=lambda i: i.updated_at, reverse=True):
            credential = await self._vault.get(info.server, info.subject, info.kind)
            if credential is None or not isinstance(credential.data, dict):
                continue
            grant = StoredGrant.from_json(credential.data)
            if grant.resource == resource and self._names(grant.issuer, resource)[2] == info.kind:
                return grant
        return None

    async def save(self, grant: StoredGrant) -> None:
        names = self._names(grant.issuer, grant.resource)
        for attempt in (1, 2):
            current = await self._vault.get(*names)
            try:
                await self._vault.put(
                    *names,
                    grant.to_json(),
                    expected_version=None if current is None else current.version,
                )
                return
            except VersionConflict:
                if attempt == 2:
                    raise

    async def delete(self, issuer: str, resource: str) -> None:
        await self._vault.delete(*self._names(issuer, resource))
