"""The `CredentialStore` port: sealed per-user credentials, by (server, subject, kind).

The store never sees a secret: it keeps what the vault sealed (`ciphertext`, with the id of the
key that sealed it) and the metadata the vault needs to find and update it. Writes are
compare-and-set on `version`, so two nodes never silently overwrite each other.

Spec context: the vault of DESIGN.md ("per-user credentials encrypted at rest"), issue 3.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

__all__ = ["CredentialRecord", "CredentialStore", "StoreUnavailable", "VersionConflict"]


@attrs.frozen(kw_only=True)
class CredentialRecord:
    """One sealed credential bundle.

    `version` counts writes, starting at 1; `key_id` names the key that sealed `ciphertext`;
    `kind` separates bundles of one subject (the credentials a form collected, OAuth tokens, ...).
    """

    server: str
    subject: str
    kind: str
    version: int
    key_id: str
    ciphertext: bytes
    updated_at: float


class VersionConflict(Exception):
    """A compare-and-set write lost: the record is not at the version the writer expected."""

    def __init__(self, expected: int | None, actual: int | None) -> None:
        super().__init__(f"expected version {expected}, found {actual}")
        self.expected = expected
        self.actual = actual


class StoreUnavailable(Exception):
    """The backend cannot be reached or failed mid-operation; nothing was acknowledged.

    Adapters raise it (chaining the driver's error) instead of leaking driver exceptions, so a
    caller can tell "try again" from a bug. A write that raised it may or may not have been
    applied; re-reading tells which, and compare-and-set makes retrying safe.
    """


@runtime_checkable
class CredentialStore(Protocol):
    """Sealed credential records with compare-and-set writes.

    - `get` returns the record or None.
    - `put(record, expected_version)` writes `record` (its `version` is ignored) when the
      current version is `expected_version` (None: the record must not exist) and returns the
      stored record, whose version is `expected_version + 1` (1 for a new record); otherwise it
      raises `VersionConflict` and changes nothing.
    - `delete(server, subject, kind, expected_version=None)` removes the record (when
      `expected_version` is given, only at that version, else `VersionConflict`) and returns
      whether it existed.
    - `list_subject(server, subject)` returns that subject's records; `list_server(server)` every
      record of a server; both ordered by (subject, kind).
    - Any backend failure raises `StoreUnavailable`.
    """

    async def get(self, server: str, subject: str, kind: str) -> CredentialRecord | None: ...

    async def put(
        self, record: CredentialRecord, *, expected_version: int | None
    ) -> CredentialRecord: ...

    async def delete(
        self, server: str, subject: str, kind: str, *, expected_version: int | None = None
    ) -> bool: ...

    async def list_subject(self, server: str, subject: str) -> list[CredentialRecord]: ...

    async def list_server(self, server: str) -> list[CredentialRecord]: ...
