"""The legacy-era session lifecycle: totality, a reference model, and named behaviours.

Spec: MCP 2025-11-25 "Lifecycle" and "Transports" > "Session Management". The reference model
below restates the lifecycle in plain Python, independently of `TABLE`, so a wrong row in the
table shows up as a disagreement rather than being checked against itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mcp_core.core.machines._fsm import Rule
from mcp_core.core.machines.session import (
    EVENTS,
    TABLE,
    AnswerInitialize,
    CloseRequested,
    IdleExpired,
    InitializedReceived,
    InitializeReceived,
    LocalProtocolError,
    OutgoingRequestStarted,
    PingReceived,
    ReleaseSession,
    RequestReceived,
    SessionMachine,
    SessionState,
)
from mcp_core.core.protocol.versions import LEGACY_VERSIONS

from .machine_testing import (
    HYPOTHESIS_SETTINGS,
    assert_table_well_formed,
    assert_total,
    assert_total_hypothesis,
    assert_walks_follow_table,
    samples_of,
)

# Written out rather than read from the code under test: what an unsupported request gets.
LATEST = "2025-11-25"

SAMPLES = {
    InitializeReceived: lambda: [
        InitializeReceived(requested_version="2025-06-18"),
        InitializeReceived(requested_version="1999-01-01"),
    ],
    InitializedReceived: InitializedReceived,
    RequestReceived: lambda: RequestReceived(method="tools/list"),
    PingReceived: PingReceived,
    OutgoingRequestStarted: lambda: OutgoingRequestStarted(method="sampling/createMessage"),
    CloseRequested: CloseRequested,
    IdleExpired: lambda: IdleExpired(idle_seconds=1800.0),
}

# What clients send as `protocolVersion`: supported, modern, older, garbage and non-strings.
requested_versions = st.one_of(
    st.sampled_from([*LEGACY_VERSIONS, "2026-07-28", "2024-11-05", "", "2025-11-25 "]),
    st.text(max_size=12),
    st.none(),
    st.integers(),
    st.lists(st.sampled_from(LEGACY_VERSIONS), max_size=2),
)
methods = st.sampled_from(["tools/list", "tools/call", "resources/read", "prompts/get", "x"])
outgoing_methods = st.sampled_from(["sampling/createMessage", "elicitation/create", "roots/list"])

EVENT_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    InitializeReceived: st.builds(
        InitializeReceived,
        requested_version=requested_versions,
        client_capabilities=st.dictionaries(st.sampled_from(["roots", "sampling"]), st.just({})),
        client_info=st.none() | st.just({"name": "c", "version": "1"}),
    ),
    RequestReceived: st.builds(RequestReceived, method=methods),
    OutgoingRequestStarted: st.builds(OutgoingRequestStarted, method=outgoing_methods),
    IdleExpired: st.builds(IdleExpired, idle_seconds=st.floats(0, 1e6)),
}


# ---- the reference model ----------------------------------------------------------------------

REFUSED = "refused"


class ReferenceSession:
    """The lifecycle in plain words and ifs. `step` returns the effects, or REFUSED."""

    def __init__(self) -> None:
        self.state = "new"
        self.protocol_version: str | None = None

    def step(self, event: object) -> list[Any] | str:
        live = self.state != "closed"
        if isinstance(event, InitializeReceived):
            # The handshake happens once, first.
            if self.state != "new":
                return REFUSED
            requested = event.requested_version
            version = requested if requested in LEGACY_VERSIONS else LATEST
            self.state = "initializing"
            self.protocol_version = version
            return [AnswerInitialize(protocol_version=version)]
        if isinstance(event, InitializedReceived):
            # Only answers our `initialize` answer, and only once.
            if self.state != "initializing":
                return REFUSED
            self.state = "ready"
            return []
        if isinstance(event, RequestReceived):
            # Served once initialize was answered (a request may overtake `initialized`).
            return [] if self.state in ("initializing", "ready") else REFUSED
        if isinstance(event, OutgoingRequestStarted):
            # The server asks the client things only after `initialized`.
            return [] if self.state == "ready" else REFUSED
        if isinstance(event, PingReceived):
            return [] if live else REFUSED
        if isinstance(event, CloseRequested | IdleExpired):
            if not live:
                return REFUSED
            self.state = "closed"
            reason = "closed" if isinstance(event, CloseRequested) else "expired"
            return [ReleaseSession(reason=reason)]
        return REFUSED


def _fire(machine: SessionMachine, event: object) -> list[Any] | str:
    try:
        return machine.handle(event)
    except LocalProtocolError:
        return REFUSED


class SessionAgreesWithReference(RuleBasedStateMachine):
    """Any sequence of events: the machine and the reference agree at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = SessionMachine()
        self.reference = ReferenceSession()

    def _both(self, event: object) -> None:
        before = self.machine.state
        want = self.reference.step(event)
        got = _fire(self.machine, event)
        assert got == want, f"{event!r} in {before.value}: machine {got!r}, reference {want!r}"

    @rule(event=EVENT_STRATEGIES[InitializeReceived])
    def initialize(self, event: InitializeReceived) -> None:
        self._both(event)

    @rule()
    def initialized(self) -> None:
        self._both(InitializedReceived())

    @rule(event=EVENT_STRATEGIES[RequestReceived])
    def request(self, event: RequestReceived) -> None:
        self._both(event)

    @rule(event=EVENT_STRATEGIES[OutgoingRequestStarted])
    def outgoing_request(self, event: OutgoingRequestStarted) -> None:
        self._both(event)

    @rule()
    def ping(self) -> None:
        self._both(PingReceived())

    @rule()
    def close(self) -> None:
        self._both(CloseRequested())

    @rule(event=EVENT_STRATEGIES[IdleExpired])
    def expire(self, event: IdleExpired) -> None:
        self._both(event)

    @invariant()
    def same_state(self) -> None:
        assert self.machine.state.value == self.reference.state

    @invariant()
    def same_negotiated_version(self) -> None:
        assert self.machine.protocol_version == self.reference.protocol_version


SessionAgreesWithReference.TestCase.settings = HYPOTHESIS_SETTINGS
TestSessionAgreesWithReference = SessionAgreesWithReference.TestCase


# ---- totality -----------------------------------------------------------------------------------


def test_session_table_is_well_formed() -> None:
    assert_table_well_formed(SessionState, TABLE)


def test_events_list_every_event_of_the_table() -> None:
    assert {event_type for _state, event_type in TABLE} == set(EVENTS)
    assert set(SAMPLES) == set(EVENTS)


def test_session_is_total() -> None:
    seen = assert_total(SessionMachine, SessionState, SAMPLES, TABLE)
    assert len(seen) == len(SessionState) * len(EVENTS)


def test_session_is_total_under_hypothesis() -> None:
    assert_total_hypothesis(SessionMachine, SessionState, SAMPLES, TABLE, EVENT_STRATEGIES)


def test_session_walks_follow_table() -> None:
    assert_walks_follow_table(SessionMachine, TABLE, SAMPLES, EVENT_STRATEGIES)


# ---- named behaviours -----------------------------------------------------------------------


def _initializing(version: object = LATEST) -> SessionMachine:
    machine = SessionMachine()
    machine.handle(InitializeReceived(requested_version=version))
    return machine


def _ready(version: object = LATEST) -> SessionMachine:
    machine = _initializing(version)
    machine.handle(InitializedReceived())
    return machine


def _closed() -> SessionMachine:
    machine = _ready()
    machine.handle(CloseRequested())
    return machine


def test_new_session_starts_new_without_a_version() -> None:
    machine = SessionMachine()
    assert machine.state is SessionState.NEW
    assert machine.protocol_version is None


def test_handshake_reaches_ready() -> None:
    machine = SessionMachine()
    answer = machine.handle(InitializeReceived(requested_version=LATEST))
    assert answer == [AnswerInitialize(protocol_version=LATEST)]
    assert machine.state is SessionState.INITIALIZING
    assert machine.handle(InitializedReceived()) == []
    assert machine.state is SessionState.READY


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_supported_version_is_answered_as_requested(version: str) -> None:
    machine = SessionMachine()
    assert machine.handle(InitializeReceived(requested_version=version)) == [
        AnswerInitialize(protocol_version=version)
    ]
    assert machine.protocol_version == version


@pytest.mark.parametrize("version", ["2024-11-05", "2026-07-28", "", "latest", None, 20251125])
def test_unknown_version_gets_latest(version: object) -> None:
    machine = SessionMachine()
    assert machine.handle(InitializeReceived(requested_version=version)) == [
        AnswerInitialize(protocol_version=LATEST)
    ]
    assert machine.protocol_version == LATEST


@pytest.mark.parametrize("make", [_initializing, _ready], ids=["initializing", "ready"])
def test_second_initialize_is_refused(make: Any) -> None:
    machine = make("2025-06-18")
    before = machine.state
    with pytest.raises(LocalProtocolError):
        machine.handle(InitializeReceived(requested_version=LATEST))
    assert machine.state is before
    assert machine.protocol_version == "2025-06-18"  # the first negotiation stands


def test_initialized_before_initialize_is_refused() -> None:
    machine = SessionMachine()
    with pytest.raises(LocalProtocolError):
        machine.handle(InitializedReceived())
    assert machine.state is SessionState.NEW


def test_initialized_twice_is_refused() -> None:
    machine = _ready()
    with pytest.raises(LocalProtocolError):
        machine.handle(InitializedReceived())
    assert machine.state is SessionState.READY


def test_request_before_initialize_is_refused() -> None:
    machine = SessionMachine()
    with pytest.raises(LocalProtocolError):
        machine.handle(RequestReceived(method="tools/list"))
    assert machine.state is SessionState.NEW


def test_request_may_overtake_initialized_notification() -> None:
    machine = _initializing()
    assert machine.handle(RequestReceived(method="tools/list")) == []
    assert machine.state is SessionState.INITIALIZING


def test_requests_are_served_when_ready() -> None:
    machine = _ready()
    assert machine.handle(RequestReceived(method="tools/call")) == []
    assert machine.state is SessionState.READY


def test_server_requests_wait_for_ready() -> None:
    machine = _initializing()
    with pytest.raises(LocalProtocolError):
        machine.handle(OutgoingRequestStarted(method="sampling/createMessage"))
    machine.handle(InitializedReceived())
    assert machine.handle(OutgoingRequestStarted(method="sampling/createMessage")) == []


@pytest.mark.parametrize(
    "make", [SessionMachine, _initializing, _ready], ids=["new", "initializing", "ready"]
)
def test_ping_is_legal_in_every_live_state(make: Any) -> None:
    machine = make()
    before = machine.state
    assert machine.handle(PingReceived()) == []
    assert machine.state is before


@pytest.mark.parametrize(
    "make", [SessionMachine, _initializing, _ready], ids=["new", "initializing", "ready"]
)
def test_close_releases_session_from_every_live_state(make: Any) -> None:
    machine = make()
    assert machine.handle(CloseRequested()) == [ReleaseSession(reason="closed")]
    assert machine.state is SessionState.CLOSED


@pytest.mark.parametrize(
    "make", [SessionMachine, _initializing, _ready], ids=["new", "initializing", "ready"]
)
def test_idle_expiry_releases_session_as_expired(make: Any) -> None:
    machine = make()
    assert machine.handle(IdleExpired(idle_seconds=3600.0)) == [ReleaseSession(reason="expired")]
    assert machine.state is SessionState.CLOSED


@pytest.mark.parametrize("event_type", EVENTS, ids=lambda t: t.__name__)
def test_closed_is_terminal(event_type: type) -> None:
    machine = _closed()
    for event in samples_of(SAMPLES, event_type):
        with pytest.raises(LocalProtocolError):
            machine.handle(event)
        assert machine.state is SessionState.CLOSED
        assert not machine.allows(event_type)


def test_closing_twice_releases_once() -> None:
    machine = _ready()
    assert machine.handle(CloseRequested()) == [ReleaseSession(reason="closed")]
    with pytest.raises(LocalProtocolError):
        machine.handle(IdleExpired(idle_seconds=10.0))


def test_refusal_keeps_the_session_usable() -> None:
    machine = _initializing()
    with pytest.raises(LocalProtocolError):
        machine.handle(OutgoingRequestStarted(method="roots/list"))
    assert machine.handle(InitializedReceived()) == []
    assert machine.state is SessionState.READY


@pytest.mark.parametrize("state", list(SessionState), ids=lambda s: s.value)
def test_restored_session_resumes_in_its_persisted_state(state: SessionState) -> None:
    machine = SessionMachine(state)
    assert machine.state is state
    assert SessionMachine().state is SessionState.NEW


def test_restored_ready_session_serves_server_requests_and_refuses_initialize() -> None:
    machine = SessionMachine(SessionState.READY)
    assert machine.handle(OutgoingRequestStarted(method="roots/list")) == []
    with pytest.raises(LocalProtocolError):
        machine.handle(InitializeReceived(requested_version=LATEST))
    assert machine.state is SessionState.READY


def test_restored_closed_session_stays_closed() -> None:
    machine = SessionMachine(SessionState.CLOSED)
    with pytest.raises(LocalProtocolError):
        machine.handle(PingReceived())


def test_a_request_is_inert_only_where_the_table_says_it_changes_nothing() -> None:
    """The dispatcher skips `handle` for inert rows (the hot path); the table decides which."""
    for state in SessionState:
        machine = SessionMachine(state)
        rules = TABLE.get((state, RequestReceived))
        expected = (
            isinstance(rules, Rule)
            and rules.to is state
            and rules.when is None
            and rules.effects(RequestReceived(method="tools/list")) == []
        )
        assert machine.inert(RequestReceived) is expected, state
    assert SessionMachine(SessionState.READY).inert(RequestReceived)
