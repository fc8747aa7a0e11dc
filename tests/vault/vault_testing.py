"""Test doubles and builders for the vault tests: a fake clock, predictable nonces, fixed keys,
a store that can stage races and crashes."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

from mcp_core.adapters.crypto import CryptographyAead, CryptographyKdf
from mcp_core.adapters.storage.memory import InMemoryCredentialStore
from mcp_core.core.services.vault import Vault
from mcp_core.core.vault.keys import Keyring, MasterKey
from mcp_core.ports.credentials import CredentialRecord, CredentialStore, StoreUnavailable

# Distinctive key material, so a test can look for it in logs, reprs and messages.
K1 = bytes(range(0x40, 0x60))
K2 = bytes(range(0xA0, 0xC0))
K3 = bytes(range(0x10, 0x30))


def b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode("ascii")


def keyring(*keys: tuple[str, bytes]) -> Keyring:
    return Keyring(tuple(MasterKey.random(key_id, secret) for key_id, secret in keys))


class FakeClock:
    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.t = wall

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeRandom:
    """Distinct, predictable nonces: a 12-byte big-endian counter (tests only: real nonces are
    random)."""

    def __init__(self) -> None:
        self.calls = 0

    def token(self, nbytes: int) -> bytes:
        self.calls += 1
        return self.calls.to_bytes(nbytes, "big")


def make_vault(
    store: CredentialStore,
    ring: Keyring,
    *,
    clock: FakeClock | None = None,
    random: FakeRandom | None = None,
) -> Vault:
    return Vault(
        store=store,
        keyring=ring,
        aead=CryptographyAead(),
        kdf=CryptographyKdf(),
        random=random or FakeRandom(),
        clock=clock or FakeClock(),
    )


Hook = Callable[[CredentialRecord, int | None], Awaitable[None]]
ReadHook = Callable[[str], Awaitable[None]]


class HookedStore(InMemoryCredentialStore):
    """The in-memory store with hooks to stage races (`after_read` runs once, the next time a
    `get` or `list_server` has its answer, before the caller sees it; `before_put` runs before
    each `put`) and crashes (`StoreUnavailable` once `fail_after` puts succeeded)."""

    def __init__(self) -> None:
        super().__init__()
        self.before_put: Hook | None = None
        self.after_read: ReadHook | None = None
        self.fail_after: int | None = None
        self.puts = 0

    async def _read(self, operation: str) -> None:
        # One shot: the hook is disarmed before it runs, so it never sees its own reads.
        hook, self.after_read = self.after_read, None
        if hook is not None:
            await hook(operation)

    async def get(self, server: str, subject: str, kind: str) -> CredentialRecord | None:
        record = await super().get(server, subject, kind)
        await self._read("get")
        return record

    async def list_server(self, server: str) -> list[CredentialRecord]:
        records = await super().list_server(server)
        await self._read("list_server")
        return records

    async def put(
        self, record: CredentialRecord, *, expected_version: int | None
    ) -> CredentialRecord:
        if self.before_put is not None:
            await self.before_put(record, expected_version)
        if self.fail_after is not None and self.puts >= self.fail_after:
            raise StoreUnavailable("the backend went away")
        stored = await super().put(record, expected_version=expected_version)
        self.puts += 1
        return stored
