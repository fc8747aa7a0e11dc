"""Where a session's outgoing messages go: the seam between the dispatcher and a transport.

A transport gives the dispatcher one `Outbound` per request (the request's own stream: the
POST's SSE stream over HTTP, the pipe over stdio) and one per session for messages that belong
to no request (list changes, resource updates). The dispatcher never knows which transport it
serves.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["DiscardOutbound", "Outbound"]


class Outbound(Protocol):
    async def send(self, message: dict[str, Any]) -> None:
        """Deliver one JSON-RPC message (already in wire form) to the peer."""
        ...

    def post(self, message: dict[str, Any]) -> None:
        """Queue one message without waiting (used from synchronous code: broadcasts)."""
        ...


class DiscardOutbound:
    """A session with nowhere to send unrelated messages (no GET stream open): drop them."""

    async def send(self, message: dict[str, Any]) -> None:
        return None

    def post(self, message: dict[str, Any]) -> None:
        return None


DISCARD = DiscardOutbound()
