"""The `SessionStore` port: where legacy-era sessions live between requests.

A session record is what any node needs to serve a request for that session: the negotiated
version, the client's capabilities and identity, the authenticated subject it is bound to, the
logging level and resource subscriptions it asked for, and the lifecycle state (the session
machine's state value, persisted as its stable lowercase string). What is only meaningful in one
process (running handlers, open streams) stays out of it.

Spec: MCP 2025-11-25 "Transports" > "Session Management".
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["SessionLimitReached", "SessionRecord", "SessionStore"]


@attrs.frozen(kw_only=True)
class SessionRecord:
    session_id: str
    protocol_version: str
    state: str
    created_at: float
    last_active: float
    client_capabilities: dict[str, Any] = attrs.field(factory=dict)
    client_info: dict[str, Any] | None = None
    subject: str | None = None
    client_id: str | None = None
    log_level: str | None = None
    subscriptions: frozenset[str] = frozenset()


class SessionLimitReached(Exception):
    """The store holds as many live sessions as it may; the caller should answer 503."""


@runtime_checkable
class SessionStore(Protocol):
    """Sessions by id, with idle expiry.

    A record is expired once `now - last_active > idle_timeout`; an expired record behaves as
    if it were gone, whether or not the store has physically removed it yet.

    - `create` stores a new record (its `created_at` is the current time); raises
      `SessionLimitReached` when `max_sessions` live records exist and `ValueError` when a live
      record has the id.
    - `get` returns the record, or None when unknown or expired (measured against `now`).
    - `touch` records activity on a live record (an expired one stays expired); `put`
      replaces a record (`KeyError` when unknown); `delete` forgets one and returns whether it
      was there (for an expired record not yet removed, either answer is allowed).
    - `sweep` removes expired records and returns the ids it removed.
    """

    idle_timeout: float

    async def create(self, record: SessionRecord) -> None: ...

    async def get(self, session_id: str, now: float) -> SessionRecord | None: ...

    async def touch(self, session_id: str, now: float) -> None: ...

    async def put(self, record: SessionRecord) -> None: ...

    async def delete(self, session_id: str) -> bool: ...

    async def sweep(self, now: float) -> list[str]: ...
