"""The session lifecycle of the legacy era (protocol versions 2025-03-26 to 2025-11-25).

Spec: MCP 2025-11-25 "Lifecycle" (initialization, operation, shutdown) and "Transports" >
"Session Management".

Theory of operation. A session is born `new` when a transport meets a peer (a stdio pipe opens,
or an HTTP `initialize` arrives). The client's `initialize` request moves it to `initializing`
and the machine answers with the negotiated version: the requested one when supported, else our
latest. The client's `notifications/initialized` moves it to `ready`. Pings are legal in every
live state. Client requests are served from `initializing` on (over HTTP a request can overtake
the `initialized` notification), but the server sends its own requests (sampling, elicitation,
roots) only once `ready`, as the spec asks. A second `initialize` is refused. Closing (HTTP
DELETE, end of the stdio pipe) or idle expiry ends the session in `closed`, where nothing is
legal any more. Time arrives as event fields; this module never reads a clock.

The table below is the specification; `specs/machines/session.json` and `docs/machines/session.md`
are generated from it, and tests fail when they drift.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ..protocol.versions import LEGACY_VERSIONS, negotiate_legacy_version
from ._fsm import LocalProtocolError, Rule, StateMachine, effects, export_table

__all__ = [
    "EVENTS",
    "TABLE",
    "AnswerInitialize",
    "CloseRequested",
    "IdleExpired",
    "InitializeReceived",
    "InitializedReceived",
    "LocalProtocolError",
    "OutgoingRequestStarted",
    "PingReceived",
    "ReleaseSession",
    "RequestReceived",
    "SessionMachine",
    "SessionState",
    "spec",
]


class SessionState(enum.Enum):
    NEW = "new"
    INITIALIZING = "initializing"
    READY = "ready"
    CLOSED = "closed"


# ---- events: facts that happened -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InitializeReceived:
    """The client sent `initialize` (2025-11-25 Lifecycle > Initialization)."""

    requested_version: object
    client_capabilities: dict[str, Any] = attrs.field(factory=dict)
    client_info: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class InitializedReceived:
    """The client sent `notifications/initialized`."""


@attrs.frozen(kw_only=True)
class RequestReceived:
    """The client sent a request other than `initialize` and `ping`."""

    method: str


@attrs.frozen(kw_only=True)
class PingReceived:
    """The client sent `ping` (2025-11-25 Utilities > Ping): legal before initialization too."""


@attrs.frozen(kw_only=True)
class OutgoingRequestStarted:
    """The server is about to send a request to the client (sampling, elicitation, roots)."""

    method: str


@attrs.frozen(kw_only=True)
class CloseRequested:
    """The client ended the session (HTTP DELETE) or its transport closed."""


@attrs.frozen(kw_only=True)
class IdleExpired:
    """No activity for longer than the idle timeout; `idle_seconds` is how long it was."""

    idle_seconds: float


# ---- effects: what the driver must do ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class AnswerInitialize:
    """Answer `initialize` with this negotiated protocol version."""

    protocol_version: str


@attrs.frozen(kw_only=True)
class ReleaseSession:
    """Forget the session: its id now answers 404, its streams close."""

    reason: str


@effects("AnswerInitialize")
def _answer_initialize(event: InitializeReceived) -> list[Any]:
    return [AnswerInitialize(protocol_version=negotiate_legacy_version(event.requested_version))]


@effects("ReleaseSession")
def _release_closed(_event: CloseRequested) -> list[Any]:
    return [ReleaseSession(reason="closed")]


@effects("ReleaseSession")
def _release_expired(_event: IdleExpired) -> list[Any]:
    return [ReleaseSession(reason="expired")]


# One letter per state keeps the table below readable as a grid.
N, I, R, C = (  # noqa: E741
    SessionState.NEW,
    SessionState.INITIALIZING,
    SessionState.READY,
    SessionState.CLOSED,
)

TABLE: dict[tuple[SessionState, type], Rule[SessionState]] = {
    (N, InitializeReceived): Rule(to=I, effects=_answer_initialize),
    (N, PingReceived): Rule(to=N),
    (N, CloseRequested): Rule(to=C, effects=_release_closed),
    (N, IdleExpired): Rule(to=C, effects=_release_expired),
    (I, InitializedReceived): Rule(to=R),
    (I, RequestReceived): Rule(to=I),
    (I, PingReceived): Rule(to=I),
    (I, CloseRequested): Rule(to=C, effects=_release_closed),
    (I, IdleExpired): Rule(to=C, effects=_release_expired),
    (R, RequestReceived): Rule(to=R),
    (R, PingReceived): Rule(to=R),
    (R, OutgoingRequestStarted): Rule(to=R),
    (R, CloseRequested): Rule(to=C, effects=_release_closed),
    (R, IdleExpired): Rule(to=C, effects=_release_expired),
}

EVENTS: tuple[type, ...] = (
    InitializeReceived,
    InitializedReceived,
    RequestReceived,
    PingReceived,
    OutgoingRequestStarted,
    CloseRequested,
    IdleExpired,
)


class SessionMachine(StateMachine[SessionState]):
    """One session's lifecycle. `protocol_version` is set once `initialize` was answered."""

    name = "session"
    supported_versions = LEGACY_VERSIONS

    def __init__(self, state: SessionState = SessionState.NEW) -> None:
        # A state other than `new` restores a session persisted elsewhere (a shared store).
        super().__init__(SessionState, TABLE, state)
        self.protocol_version: str | None = None

    def handle(self, event: object) -> list[Any]:
        out = super().handle(event)
        for effect in out:
            if isinstance(effect, AnswerInitialize):
                self.protocol_version = effect.protocol_version
        return out


def spec() -> dict[str, Any]:
    """The exported table (`specs/machines/session.json`)."""
    return export_table(SessionMachine.name, SessionState, SessionState.NEW, TABLE)
