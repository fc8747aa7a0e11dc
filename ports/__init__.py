"""The interfaces the core needs from the outside world, and their contract suites.

Ports are small `typing.Protocol`s over this project's own values. Every adapter passes the
port's contract in `mcp_core.ports.contracts`.
"""

from .credentials import CredentialRecord, CredentialStore, StoreUnavailable, VersionConflict
from .events import EventStore, Replay, StoredEvent
from .sessions import SessionLimitReached, SessionRecord, SessionStore
from .system import Clock, Random

__all__ = [
    "Clock",
    "CredentialRecord",
    "CredentialStore",
    "EventStore",
    "Random",
    "Replay",
    "SessionLimitReached",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "StoredEvent",
    "VersionConflict",
]
