"""The authorization server's storage ports: `ClientStore` and `GrantStore`.

`ClientStore` keeps registered OAuth clients (RFC 7591 dynamic registration, client ID metadata
documents, clients from configuration). `GrantStore` keeps what a grant leaves behind:

- Authorization codes (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3), stored by a hash of the code, never
  the code itself, so a leaked table holds nothing redeemable. Redeeming is atomic and single
  use, even with several nodes on one backend: the first redeem wins, every later one is told
  the code was replayed. A replay also revokes the refresh family the code started, in the same
  step (OAuth 2.1 §4.1.3: "SHOULD revoke all tokens issued based on that code"), so no token
  of that family outlives the replay, whichever node sees it.
- Refresh-token families (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): the chain of refresh tokens one
  code started. Rotation is atomic: presenting the current token replaces it; presenting an
  older token is reuse, which revokes the whole family in the same step.
- Revoked access tokens by `jti` (RFC 7009), remembered until the token would expire anyway.

Time is passed in (`now`, seconds since the epoch as from the `Clock` port); stores never read
a clock. Hashes are opaque strings chosen by the caller; the store compares them exactly.
Backend failures raise `StoreUnavailable` (from `mcp_core.ports.credentials`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from .credentials import StoreUnavailable

__all__ = [
    "ClientSource",
    "ClientStore",
    "CodeOutcome",
    "CodeRecord",
    "CodeStatus",
    "GrantConflict",
    "GrantStore",
    "RefreshFamily",
    "RefreshOutcome",
    "RefreshStatus",
    "RegisteredClient",
    "StoreUnavailable",
]

ClientSource = Literal["static", "dynamic", "cimd"]
CLIENT_SOURCES: frozenset[str] = frozenset({"static", "dynamic", "cimd"})

# Revocation reasons the stores write themselves; callers may pass any other string.
CODE_REPLAYED = "code_replayed"
REFRESH_REUSED = "refresh_reused"


def _source(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in CLIENT_SOURCES:
        raise ValueError(f"client source must be one of {sorted(CLIENT_SOURCES)}, not {value!r}")


@attrs.frozen(kw_only=True)
class RegisteredClient:
    """One registered client.

    `metadata` is the client's RFC 7591 metadata as JSON (redirect_uris, application_type, ...);
    `secret_hash` is the hash of its secret (None for public clients); `source` says how it was
    registered: from configuration, by RFC 7591 dynamic registration, or from a client ID
    metadata document.
    """

    client_id: str
    metadata: Mapping[str, Any]
    secret_hash: str | None
    registered_at: float
    source: ClientSource = attrs.field(validator=_source)


@attrs.frozen(kw_only=True)
class CodeRecord:
    """An issued authorization code, as the token endpoint needs it to redeem one.

    `scope` is space-delimited (RFC 6749 §3.3); `resource` is the RFC 8707 resource the tokens
    are for; `code_challenge` the PKCE S256 challenge; `family_id` names the refresh family the
    code's tokens will belong to, chosen when the code is issued so that a replay can revoke it.
    The code is valid while `now <= expires_at`.
    """

    code_hash: str
    client_id: str
    redirect_uri: str
    resource: str
    scope: str
    subject: str
    code_challenge: str
    family_id: str
    issued_at: float
    expires_at: float


class CodeStatus(enum.Enum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REPLAYED = "replayed"


@attrs.frozen(kw_only=True)
class CodeOutcome:
    """Why a redeem (or a peek) did not return the code; `family_id` is set for an expired or
    replayed code (for a replay seen by `redeem_code`, that family is already revoked; a peek
    revokes nothing)."""

    status: CodeStatus
    family_id: str | None = None


@attrs.frozen(kw_only=True)
class RefreshFamily:
    """The refresh tokens one authorization started.

    `current_token_hash` is the only token that rotates; `generation` counts rotations (0 for
    the first token); `revoked_reason` is None while the family is live.
    """

    family_id: str
    subject: str
    client_id: str
    resource: str
    scope: str
    created_at: float
    rotated_at: float
    current_token_hash: str
    generation: int
    revoked_reason: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_reason is not None


class RefreshStatus(enum.Enum):
    ROTATED = "rotated"
    REUSED = "reused"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@attrs.frozen(kw_only=True)
class RefreshOutcome:
    """What `rotate_refresh` did; `family` is the family after the call (None when unknown)."""

    status: RefreshStatus
    family: RefreshFamily | None = None


class GrantConflict(Exception):
    """A write would reuse a code hash, token hash or family id that the store already holds
    (or a family id that was revoked before it was created); nothing was changed."""


@runtime_checkable
class ClientStore(Protocol):
    """Registered clients by `client_id`.

    - `put(client)` stores the client, replacing one with the same id.
    - `get(client_id)` returns it or None; `delete(client_id)` removes it and says whether it
      existed.
    - Any backend failure raises `StoreUnavailable`.
    """

    async def put(self, client: RegisteredClient) -> None: ...

    async def get(self, client_id: str) -> RegisteredClient | None: ...

    async def delete(self, client_id: str) -> bool: ...


@runtime_checkable
class GrantStore(Protocol):
    """Authorization codes, refresh families and revoked access tokens.

    Codes:
    - `save_code(record)` stores a code; a `code_hash` already stored raises `GrantConflict`.
    - `redeem_code(code_hash, now)`, atomically: a code never redeemed and not expired
      (`now <= expires_at`) is marked used and returned. A code already redeemed returns
      `REPLAYED` (expired or not) and revokes its family (reason `code_replayed`). An unredeemed
      expired code returns `EXPIRED`; an unknown hash `UNKNOWN`.
    - `peek_code(code_hash, now)` answers what `redeem_code` would, with no side effect at all:
      a code never redeemed and not expired is returned and stays redeemable; a redeemed one
      gives `REPLAYED` (with its `family_id`) and revokes nothing; an unredeemed expired one
      `EXPIRED`; an unknown hash `UNKNOWN`. The token endpoint peeks to check every binding of
      a code (client, `redirect_uri`, PKCE verifier) before it redeems, so that a request
      failing a binding leaves the store exactly as it found it (OAuth 2.1 §4.1.3), and only
      then calls `redeem_code`, which alone decides, atomically, who wins: a peek is a
      snapshot and promises nothing about the redeem that follows it.

    Refresh families:
    - `create_family(...)` starts a family whose current token is `first_token_hash`. A family
      id already used (or already revoked, e.g. by a code replay that won the race) or a token
      hash already stored raises `GrantConflict`.
    - `rotate_refresh(token_hash, new_token_hash, now)`, atomically: the current token of a
      live family is replaced by `new_token_hash` (`ROTATED`, `generation + 1`); an older token
      of a live family is reuse: the family is revoked (reason `refresh_reused`) and `REUSED`
      returned; any token of a revoked family returns `REVOKED`; an unknown hash `UNKNOWN`.
      A `new_token_hash` already stored raises `GrantConflict` (checked after the outcomes
      above; nothing changes).
    - `revoke_family(family_id, reason)` revokes it (the first reason stays) and returns whether
      this call revoked it; an unknown id is remembered as revoked, so it can never be created.
    - `family(family_id)` returns the family or None; `is_revoked(family_id)` says whether it
      was revoked (False for an id never created nor revoked).

    Access tokens:
    - `revoke_access(jti, expires_at)` remembers the revocation until `expires_at` (the later
      one, when revoked twice); `is_access_revoked(jti, now)` is True while `now <= expires_at`.

    Housekeeping:
    - `purge(before)` forgets what can no longer matter and returns how many records it removed:
      codes whose `expires_at < before` (used or not: a replay of a purged code is `UNKNOWN`),
      revoked-access entries whose `expires_at < before`, and families, revoked or not, whose
      `rotated_at < before`, each with every refresh token it ever had and its revocation (a
      token of a purged family is `UNKNOWN`, and its id may be created again). A family counts
      as one record. A revocation of a family id that was never created carries no time and is
      kept. The caller picks `before` (e.g. `now` minus the refresh-token lifetime for families:
      a family rotated that long ago holds only expired tokens); the store reads no clock.
      Stores whose backend expires entries by itself (Redis TTLs) count only what this call
      removed.

    Text the store cannot hold is the caller's error, the same on every backend: a `str` with a
    lone surrogate (`'h\\udcff'`: no UTF-8 encoding) or a NUL (PostgreSQL text refuses it) in
    any text argument of `save_code` (any field of the record), `redeem_code`, `peek_code`,
    `create_family`, `rotate_refresh`, `revoke_family` or `revoke_access` raises `ValueError`
    before any I/O (never `StoreUnavailable`, and no backend stores what another refuses). The
    plain reads `family`, `is_revoked` and `is_access_revoked` answer such an id as one never
    stored (None, False), with no I/O: nothing can have been written under it, and the token and
    revocation endpoints look ids up straight from what a client sent.

    Any backend failure raises `StoreUnavailable`.
    """

    async def save_code(self, record: CodeRecord) -> None: ...

    async def redeem_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome: ...

    async def peek_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome: ...

    async def create_family(
        self,
        family_id: str,
        *,
        subject: str,
        client_id: str,
        resource: str,
        scope: str,
        first_token_hash: str,
        now: float,
    ) -> RefreshFamily: ...

    async def rotate_refresh(
        self, token_hash: str, new_token_hash: str, now: float
    ) -> RefreshOutcome: ...

    async def revoke_family(self, family_id: str, reason: str) -> bool: ...

    async def family(self, family_id: str) -> RefreshFamily | None: ...

    async def is_revoked(self, family_id: str) -> bool: ...

    async def revoke_access(self, jti: str, expires_at: float) -> None: ...

    async def is_access_revoked(self, jti: str, now: float) -> bool: ...

    async def purge(self, before: float) -> int: ...
