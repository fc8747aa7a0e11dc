"""The `EventStore` port: the log that makes SSE streams resumable.

Every message the server writes to an SSE stream is appended here first and gets an event id,
unique within its session. A client that lost a stream reconnects with `Last-Event-ID`; the
server replays what came after that event on the same stream and then continues live.

Spec: MCP 2025-11-25 "Transports" > "Resumability and Redelivery".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

__all__ = ["EventStore", "Replay", "StoredEvent"]


@attrs.frozen(kw_only=True)
class StoredEvent:
    event_id: str
    # An empty payload is a priming event: it carries an id to resume from, and no message.
    payload: bytes


@attrs.frozen(kw_only=True)
class Replay:
    stream_id: str
    events: tuple[StoredEvent, ...]


@runtime_checkable
class EventStore(Protocol):
    """An append-only, bounded log of SSE events per (session, stream).

    - `append` stores one payload and returns its event id. Ids are unique within a session and
      say which stream they belong to; within a stream they are ordered.
    - `replay_after` returns the stream of `last_event_id` and every event of that stream
      stored after it, in order; None when the id is unknown to this session (never issued, or
      already evicted by the bound).
    - `forget_session` drops everything of a session.
    """

    async def append(self, session_id: str, stream_id: str, payload: bytes) -> str: ...

    async def replay_after(self, session_id: str, last_event_id: str) -> Replay | None: ...

    async def forget_session(self, session_id: str) -> None: ...
