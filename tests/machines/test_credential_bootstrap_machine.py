"""The credential bootstrap machine: its table, a reference model, and named behaviours.

Issue 3 ("Credential bootstrap"). Two layers are tested. The table (`CredentialBootstrapMachine`,
driven by judged events that carry the machine's data) gets the checks every machine gets:
totality, Hypothesis over every (state, event), random walks. The class services drive
(`CredentialBootstrap`, which keeps the data and judges each event) is run against a reference
model below that restates the bootstrap in plain Python, independently of `TABLE`: state,
effects and counters must agree after every step, so a wrong row, guard or counter update shows
up as a disagreement rather than being checked against itself.
"""

from __future__ import annotations

import hmac
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mcp_core.core.machines import credential_bootstrap as cb
from mcp_core.core.machines.credential_bootstrap import (
    EFFECTS,
    EVENTS,
    TABLE,
    BootstrapContext,
    BootstrapLimits,
    BootstrapProgress,
    CredentialBootstrap,
    CredentialBootstrapMachine,
    CredentialBootstrapState,
    CredentialsStored,
    DiscardSecrets,
    Expired,
    FormOpened,
    FormSubmitted,
    Judged,
    LocalProtocolError,
    NotifyToolsChanged,
    PersistCredentials,
    RenderForm,
    Revoked,
    RunValidation,
    ShowError,
    ShowFailure,
    StepRequested,
    StepSubmitted,
    StoreFailed,
    ValidationFailed,
    ValidationSucceeded,
)

from .machine_testing import (
    HYPOTHESIS_SETTINGS,
    assert_samples_take_every_rule,
    assert_spec_file_matches_table,
    assert_table_well_formed,
    assert_total,
    assert_total_hypothesis,
    assert_walks_follow_table,
    samples_of,
)

ROOT = Path(__file__).resolve().parents[2]
S = CredentialBootstrapState

# Nonces as the service draws them (16+ characters), and what a post may carry instead.
NONCE_A = "A" * 22 + "nonce-one"
NONCE_B = "B" * 22 + "nonce-two"
NONCE_C = "C" * 22 + "nonce-three"
WRONG_NONCES = ["", "x", NONCE_A[:-1], NONCE_A + "x", NONCE_A.lower(), "é" * 31, "\ud800" * 4]

# Small limits so that every bound is reached in a few steps.
LIMITS = BootstrapLimits(
    max_attempts=2,
    max_steps=2,
    form_lifetime=10.0,
    step_lifetime=6.0,
    validation_timeout=3.0,
    cooldown=4.0,
)


# ---- the table: judged samples ----------------------------------------------------------------


def _context(limits: BootstrapLimits = LIMITS, **progress: Any) -> BootstrapContext:
    return BootstrapContext(progress=BootstrapProgress(**progress), limits=limits)


# Contexts as the machine would hold them in each state (times in seconds from 0).
ON_FORM = _context(state=S.FORM_OPEN, nonce=NONCE_A, page_expires_at=10.0, attempts_left=2)
ON_STEP = _context(
    state=S.STEP_REQUIRED,
    nonce=NONCE_B,
    step="otp",
    page_expires_at=10.0,
    attempts_left=2,
    steps_taken=1,
)
VALIDATING_FORM = _context(
    state=S.VALIDATING,
    nonce=NONCE_A,
    page_expires_at=10.0,
    attempts_left=1,
    validation_expires_at=5.0,
)
VALIDATING_LAST_TRY = attrs.evolve(
    VALIDATING_FORM, progress=attrs.evolve(VALIDATING_FORM.progress, attempts_left=0)
)
VALIDATING_STEP = _context(
    state=S.VALIDATING,
    nonce=NONCE_B,
    step="otp",
    page_expires_at=10.0,
    attempts_left=1,
    steps_taken=1,
    validation_expires_at=5.0,
)
VALIDATING_NO_STEPS_LEFT = attrs.evolve(
    VALIDATING_STEP, progress=attrs.evolve(VALIDATING_STEP.progress, steps_taken=2)
)
FRESH = _context()
COOLING = _context(state=S.FAILED, retry_at=10.0)

SAMPLES: dict[type, Any] = {
    Judged.FormOpened: lambda: [
        Judged.FormOpened(nonce=NONCE_A, at=0.0, context=FRESH),
        Judged.FormOpened(nonce=NONCE_A, at=10.0, context=COOLING),  # cooldown just over
        Judged.FormOpened(nonce=NONCE_A, at=9.5, context=COOLING),  # still cooling
    ],
    Judged.FormSubmitted: lambda: [
        Judged.FormSubmitted(nonce=NONCE_A, at=9.5, context=ON_FORM),
        Judged.FormSubmitted(nonce=NONCE_B, at=1.0, context=ON_FORM),  # wrong nonce
        Judged.FormSubmitted(nonce=NONCE_A, at=10.0, context=ON_FORM),  # at the deadline
        Judged.FormSubmitted(nonce="\ud800é", at=1.0, context=ON_FORM),  # not even ASCII
    ],
    Judged.StepRequested: lambda: [
        Judged.StepRequested(step="otp", nonce=NONCE_B, at=2.0, context=VALIDATING_FORM),
        Judged.StepRequested(step="otp", nonce=NONCE_C, at=2.0, context=VALIDATING_NO_STEPS_LEFT),
        Judged.StepRequested(step="otp", nonce=NONCE_A, at=2.0, context=VALIDATING_FORM),  # stale
    ],
    Judged.StepSubmitted: lambda: [
        Judged.StepSubmitted(nonce=NONCE_B, at=3.0, context=ON_STEP),
        Judged.StepSubmitted(nonce=NONCE_A, at=3.0, context=ON_STEP),  # the form's nonce
        Judged.StepSubmitted(nonce=NONCE_B, at=11.0, context=ON_STEP),  # late
    ],
    ValidationSucceeded: ValidationSucceeded,
    Judged.ValidationFailed: lambda: [
        Judged.ValidationFailed(retryable=True, reason="typo", at=2.0, context=VALIDATING_FORM),
        Judged.ValidationFailed(retryable=True, reason="typo", at=2.0, context=VALIDATING_STEP),
        Judged.ValidationFailed(retryable=True, reason="no", at=2.0, context=VALIDATING_LAST_TRY),
        Judged.ValidationFailed(retryable=False, reason="banned", at=2.0, context=VALIDATING_FORM),
    ],
    CredentialsStored: CredentialsStored,
    StoreFailed: lambda: StoreFailed(reason="store unavailable"),
    Judged.Expired: lambda: [
        Judged.Expired(at=10.0, context=ON_FORM),  # the page's deadline
        Judged.Expired(at=9.0, context=ON_FORM),
        Judged.Expired(at=5.0, context=VALIDATING_FORM),  # the validation's deadline
        Judged.Expired(at=4.0, context=VALIDATING_FORM),
    ],
    Revoked: Revoked,
    # The public classes of judged events: the table refuses them everywhere.
    FormOpened: lambda: FormOpened(nonce=NONCE_A, at=0.0),
    FormSubmitted: lambda: FormSubmitted(nonce=NONCE_A, at=1.0),
    StepRequested: lambda: StepRequested(step="otp", nonce=NONCE_B, at=2.0),
    StepSubmitted: lambda: StepSubmitted(nonce=NONCE_B, at=3.0),
    ValidationFailed: lambda: ValidationFailed(retryable=True, reason="typo", at=2.0),
    Expired: lambda: Expired(at=100.0),
}

# ---- the table: Hypothesis strategies for judged events -------------------------------------

times = st.integers(-2, 40).map(float) | st.floats(-1e6, 1e6, allow_nan=False)
drawn_nonces = st.sampled_from([NONCE_A, NONCE_B, NONCE_C])
posted_nonces = drawn_nonces | st.sampled_from(WRONG_NONCES) | st.text(max_size=40)
limits_strategy = st.builds(
    BootstrapLimits,
    max_attempts=st.integers(1, 4),
    max_steps=st.integers(0, 3),
    form_lifetime=st.sampled_from([1.0, 10.0, 900.0]),
    step_lifetime=st.sampled_from([1.0, 6.0, 300.0]),
    validation_timeout=st.sampled_from([0.5, 3.0, 60.0]),
    cooldown=st.sampled_from([0.5, 4.0, 300.0]),
)


@st.composite
def progress_strategy(draw: st.DrawFn) -> BootstrapProgress:
    state = draw(st.sampled_from(list(S)))
    if state in (S.FORM_OPEN, S.STEP_REQUIRED, S.VALIDATING):
        on_step = state is S.STEP_REQUIRED or (state is S.VALIDATING and draw(st.booleans()))
        least = 1 if state is not S.VALIDATING else 0
        return BootstrapProgress(
            state=state,
            nonce=draw(drawn_nonces),
            step=draw(st.sampled_from(["otp", "second-password"])) if on_step else None,
            page_expires_at=draw(times),
            attempts_left=draw(st.integers(least, 4)),
            steps_taken=draw(st.integers(1, 3)) if on_step else 0,
            validation_expires_at=draw(times) if state is S.VALIDATING else None,
        )
    if state is S.FAILED:
        return BootstrapProgress(state=state, retry_at=draw(st.none() | times))
    return BootstrapProgress(state=state)


contexts = st.builds(BootstrapContext, progress=progress_strategy(), limits=limits_strategy)

JUDGED_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Judged.FormOpened: st.builds(Judged.FormOpened, nonce=drawn_nonces, at=times, context=contexts),
    Judged.FormSubmitted: st.builds(
        Judged.FormSubmitted, nonce=posted_nonces, at=times, context=contexts
    ),
    Judged.StepRequested: st.builds(
        Judged.StepRequested,
        step=st.sampled_from(["otp", "second-password"]),
        nonce=drawn_nonces,
        at=times,
        context=contexts,
    ),
    Judged.StepSubmitted: st.builds(
        Judged.StepSubmitted, nonce=posted_nonces, at=times, context=contexts
    ),
    Judged.ValidationFailed: st.builds(
        Judged.ValidationFailed,
        retryable=st.booleans(),
        reason=st.sampled_from(["typo", "expired key", ""]),
        at=times,
        context=contexts,
    ),
    Judged.Expired: st.builds(Judged.Expired, at=times, context=contexts),
    StoreFailed: st.builds(StoreFailed, reason=st.text(max_size=10)),
}


# ---- the table: totality --------------------------------------------------------------------


def test_credential_bootstrap_table_is_well_formed() -> None:
    assert_table_well_formed(S, TABLE)


def test_table_speaks_of_every_event_and_judges_those_that_read_data() -> None:
    in_table = {event_type for _state, event_type in TABLE}
    judged = {t for t in in_table if t.__qualname__.startswith("Judged.")}
    plain = in_table - judged
    # Each public event reaches the table either as itself or judged, never both.
    assert {t.__mro__[1] for t in judged} | plain == set(EVENTS)
    assert not {t.__mro__[1] for t in judged} & plain
    # The export reads in the service's words.
    assert {t.__name__ for t in in_table} == {t.__name__ for t in EVENTS}


def test_credential_bootstrap_table_is_total() -> None:
    seen = assert_total(CredentialBootstrapMachine, S, SAMPLES, TABLE)
    assert len(seen) == len(S) * len(SAMPLES)
    # Unjudged events of the classes the table judges are refused in every state.
    unjudged = {t for t in EVENTS if t not in {event_type for _state, event_type in TABLE}}
    assert len(unjudged) == 6
    assert all(outcomes == {"refused"} for (_s, t), outcomes in seen.items() if t in unjudged)


def test_credential_bootstrap_table_is_total_under_hypothesis() -> None:
    assert_total_hypothesis(CredentialBootstrapMachine, S, SAMPLES, TABLE, JUDGED_STRATEGIES)


def test_credential_bootstrap_table_walks_follow_table() -> None:
    assert_walks_follow_table(CredentialBootstrapMachine, TABLE, SAMPLES, JUDGED_STRATEGIES)


def test_samples_take_every_rule_of_the_table() -> None:
    assert_samples_take_every_rule(TABLE, SAMPLES)


def test_spec_file_matches_the_table() -> None:
    assert_spec_file_matches_table(
        ROOT / "specs" / "machines" / "credential_bootstrap.json",
        "credential_bootstrap",
        S,
        S.UNCONFIGURED,
        TABLE,
    )


# ---- the reference model ----------------------------------------------------------------------

REFUSED = "refused"


class ReferenceBootstrap:
    """The bootstrap in plain words and ifs. `step` returns the effects, or REFUSED."""

    def __init__(self, limits: BootstrapLimits) -> None:
        self.limits = limits
        self.state = "unconfigured"
        self._clear()
        self.retry_at: float | None = None

    def _clear(self) -> None:
        self.nonce: str | None = None
        self.step_name: str | None = None
        self.page_deadline: float | None = None
        self.validation_deadline: float | None = None
        self.attempts = 0
        self.steps = 0

    def _page(self) -> RenderForm:
        assert self.nonce is not None
        assert self.page_deadline is not None
        return RenderForm(
            nonce=self.nonce,
            step=self.step_name,
            expires_at=self.page_deadline,
            attempts_left=self.attempts,
        )

    def _fail(self, reason: str, retry_at: float | None) -> list[Any]:
        self.state = "failed"
        self._clear()
        self.retry_at = retry_at
        return [DiscardSecrets(), ShowFailure(reason=reason, retry_at=retry_at)]

    def step(self, event: object) -> list[Any] | str:
        limits = self.limits
        state = self.state
        if isinstance(event, FormOpened):
            # A first form, or a new one once a failure's cooldown is over.
            cooled = state == "failed" and (self.retry_at is None or event.at >= self.retry_at)
            if state != "unconfigured" and not cooled:
                return REFUSED
            self.state = "form_open"
            self._clear()
            self.retry_at = None
            self.nonce = event.nonce
            self.page_deadline = event.at + limits.form_lifetime
            self.attempts = limits.max_attempts
            return [self._page()]
        if isinstance(event, FormSubmitted | StepSubmitted):
            page = "form_open" if isinstance(event, FormSubmitted) else "step_required"
            if state != page or event.nonce != self.nonce:
                return REFUSED
            assert self.page_deadline is not None
            if event.at >= self.page_deadline:
                return REFUSED
            self.state = "validating"
            self.attempts -= 1
            self.validation_deadline = event.at + limits.validation_timeout
            return [RunValidation(step=self.step_name, expires_at=self.validation_deadline)]
        if isinstance(event, ValidationSucceeded):
            if state != "validating":
                return REFUSED
            self.state = "storing"
            self._clear()
            return [PersistCredentials()]
        if isinstance(event, ValidationFailed):
            if state != "validating":
                return REFUSED
            if event.retryable and self.attempts > 0:
                self.state = "form_open" if self.step_name is None else "step_required"
                self.validation_deadline = None
                return [ShowError(reason=event.reason), self._page()]
            reason = f"{event.reason} (no attempts left)" if event.retryable else event.reason
            return self._fail(reason, event.at + limits.cooldown)
        if isinstance(event, StepRequested):
            if state != "validating" or event.nonce == self.nonce:
                return REFUSED
            if self.steps >= limits.max_steps:
                return self._fail("too many steps", event.at + limits.cooldown)
            self.state = "step_required"
            self.nonce = event.nonce
            self.step_name = event.step
            self.page_deadline = event.at + limits.step_lifetime
            self.validation_deadline = None
            self.attempts = limits.max_attempts
            self.steps += 1
            return [self._page()]
        if isinstance(event, Expired):
            if state in ("form_open", "step_required"):
                assert self.page_deadline is not None
                if event.at < self.page_deadline:
                    return REFUSED
                what = "form" if state == "form_open" else "step"
                return self._fail(f"the {what} expired", None)
            if state == "validating":
                assert self.validation_deadline is not None
                if event.at < self.validation_deadline:
                    return REFUSED
                return self._fail("validation timed out", None)
            return REFUSED
        if isinstance(event, CredentialsStored):
            if state != "storing":
                return REFUSED
            self.state = "configured"
            return [DiscardSecrets(), NotifyToolsChanged()]
        if isinstance(event, StoreFailed):
            if state != "storing":
                return REFUSED
            return self._fail(event.reason, None)
        if isinstance(event, Revoked):
            if state != "configured":
                return REFUSED
            self.state = "unconfigured"
            return [NotifyToolsChanged()]
        return REFUSED

    @property
    def deadline(self) -> float | None:
        if self.state in ("form_open", "step_required"):
            return self.page_deadline
        if self.state == "validating":
            return self.validation_deadline
        return None


def _fire(machine: CredentialBootstrap, event: object) -> list[Any] | str:
    before = machine.progress
    try:
        return machine.handle(event)
    except LocalProtocolError as exc:
        refusal = exc
    assert refusal.event is event
    assert machine.progress == before, "a refused event changed the machine"
    return REFUSED


deltas = st.sampled_from([0.0, 0.5, 1.0, 3.0, 6.0, 12.0])


class BootstrapAgreesWithReference(RuleBasedStateMachine):
    """Any sequence of events: the machine and the reference agree at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = CredentialBootstrap(LIMITS)
        self.reference = ReferenceBootstrap(LIMITS)
        self.now = 0.0
        self.drawn = iter([f"{i:04d}" + "n" * 20 for i in range(10_000)])

    def _both(self, event: object) -> None:
        before = self.machine.state
        want = self.reference.step(event)
        got = _fire(self.machine, event)
        assert got == want, f"{event!r} in {before.value}: machine {got!r}, reference {want!r}"

    @rule(delta=deltas)
    def time_passes(self, delta: float) -> None:
        self.now += delta

    @rule(drift=st.sampled_from([0.0, 0.0, -1.0, 2.0]))
    def open_form(self, drift: float) -> None:
        self._both(FormOpened(nonce=next(self.drawn), at=self.now + drift))

    @rule(nonce=st.sampled_from([None, None, "", NONCE_A, "é" * 24]), form=st.booleans())
    def submit(self, nonce: str | None, form: bool) -> None:
        # None: the nonce of the current page, as an honest post carries it.
        posted = nonce if nonce is not None else (self.reference.nonce or NONCE_A)
        event_type = FormSubmitted if form else StepSubmitted
        self._both(event_type(nonce=posted, at=self.now))

    @rule(stale=st.booleans(), step=st.sampled_from(["otp", "second-password"]))
    def request_step(self, stale: bool, step: str) -> None:
        nonce = self.reference.nonce if stale and self.reference.nonce else next(self.drawn)
        self._both(StepRequested(step=step, nonce=nonce, at=self.now))

    @rule()
    def validation_succeeds(self) -> None:
        self._both(ValidationSucceeded())

    @rule(retryable=st.booleans(), reason=st.sampled_from(["typo", "unknown account"]))
    def validation_fails(self, retryable: bool, reason: str) -> None:
        self._both(ValidationFailed(retryable=retryable, reason=reason, at=self.now))

    @rule()
    def stored(self) -> None:
        self._both(CredentialsStored())

    @rule()
    def store_fails(self) -> None:
        self._both(StoreFailed(reason="store unavailable"))

    @rule()
    def expire(self) -> None:
        self._both(Expired(at=self.now))

    @precondition(lambda self: self.reference.deadline is not None)
    @rule()
    def expire_at_the_deadline(self) -> None:
        deadline = self.reference.deadline
        assert deadline is not None
        self.now = max(self.now, deadline)
        self._both(Expired(at=self.now))

    @rule()
    def revoke(self) -> None:
        self._both(Revoked())

    @rule()
    def persist_and_restore(self) -> None:
        # What a service does across a restart: the progress alone is enough to continue.
        self.machine = CredentialBootstrap(LIMITS, progress=self.machine.progress)

    @invariant()
    def same_state(self) -> None:
        assert self.machine.state.value == self.reference.state

    @invariant()
    def same_data(self) -> None:
        machine, reference = self.machine, self.reference
        assert machine.nonce == reference.nonce
        assert machine.step == reference.step_name
        assert machine.attempts_left == reference.attempts
        assert machine.steps_left == LIMITS.max_steps - reference.steps
        assert machine.page_expires_at == reference.page_deadline
        assert machine.validation_expires_at == reference.validation_deadline
        assert machine.deadline == reference.deadline
        assert machine.retry_at == reference.retry_at

    @invariant()
    def counters_stay_in_bounds(self) -> None:
        assert 0 <= self.machine.attempts_left <= LIMITS.max_attempts
        assert 0 <= self.machine.steps_left <= LIMITS.max_steps


BootstrapAgreesWithReference.TestCase.settings = HYPOTHESIS_SETTINGS
TestBootstrapAgreesWithReference = BootstrapAgreesWithReference.TestCase


# ---- named behaviours -------------------------------------------------------------------------


def _form_open(limits: BootstrapLimits = LIMITS, at: float = 0.0) -> CredentialBootstrap:
    machine = CredentialBootstrap(limits)
    machine.handle(FormOpened(nonce=NONCE_A, at=at))
    return machine


def _validating_form(limits: BootstrapLimits = LIMITS) -> CredentialBootstrap:
    machine = _form_open(limits)
    machine.handle(FormSubmitted(nonce=NONCE_A, at=1.0))
    return machine


def _on_step(limits: BootstrapLimits = LIMITS) -> CredentialBootstrap:
    machine = _validating_form(limits)
    machine.handle(StepRequested(step="otp", nonce=NONCE_B, at=2.0))
    return machine


def _storing() -> CredentialBootstrap:
    machine = _validating_form()
    machine.handle(ValidationSucceeded())
    return machine


def _configured() -> CredentialBootstrap:
    machine = _storing()
    machine.handle(CredentialsStored())
    return machine


def _refused(machine: CredentialBootstrap, event: object) -> LocalProtocolError:
    before = machine.progress
    with pytest.raises(LocalProtocolError) as caught:
        machine.handle(event)
    assert machine.progress == before
    return caught.value


def test_new_machine_is_unconfigured_with_no_page() -> None:
    machine = CredentialBootstrap()
    assert machine.state is S.UNCONFIGURED
    assert machine.nonce is None
    assert machine.deadline is None
    assert machine.attempts_left == 0
    assert machine.limits == cb.DEFAULT_LIMITS


def test_default_limits_are_sane() -> None:
    limits = BootstrapLimits()
    assert 1 < limits.max_attempts <= 10
    assert 1 <= limits.max_steps <= 5
    assert 60 <= limits.form_lifetime <= 3600
    assert 60 <= limits.step_lifetime <= limits.form_lifetime
    assert 5 <= limits.validation_timeout <= 300
    assert limits.cooldown >= 60


def test_api_key_reaches_configured_and_tells_sessions_tools_changed() -> None:
    machine = CredentialBootstrap(LIMITS)
    assert machine.handle(FormOpened(nonce=NONCE_A, at=100.0)) == [
        RenderForm(nonce=NONCE_A, step=None, expires_at=110.0, attempts_left=2)
    ]
    assert machine.state is S.FORM_OPEN
    assert machine.nonce == NONCE_A
    assert machine.deadline == 110.0
    assert machine.handle(FormSubmitted(nonce=NONCE_A, at=101.0)) == [
        RunValidation(step=None, expires_at=104.0)
    ]
    assert machine.state is S.VALIDATING
    assert machine.deadline == 104.0
    assert machine.handle(ValidationSucceeded()) == [PersistCredentials()]
    assert machine.state is S.STORING
    assert machine.nonce is None  # the page is done: its nonce no longer opens anything
    assert machine.handle(CredentialsStored()) == [DiscardSecrets(), NotifyToolsChanged()]
    assert machine.state is S.CONFIGURED


def test_password_then_otp_step_reaches_configured() -> None:
    machine = _validating_form()
    assert machine.handle(StepRequested(step="otp", nonce=NONCE_B, at=2.0)) == [
        RenderForm(nonce=NONCE_B, step="otp", expires_at=8.0, attempts_left=2)
    ]
    assert machine.state is S.STEP_REQUIRED
    assert machine.step == "otp"
    assert machine.steps_left == 1
    assert machine.handle(StepSubmitted(nonce=NONCE_B, at=3.0)) == [
        RunValidation(step="otp", expires_at=6.0)
    ]
    assert machine.handle(ValidationSucceeded()) == [PersistCredentials()]
    assert machine.handle(CredentialsStored()) == [DiscardSecrets(), NotifyToolsChanged()]
    assert machine.state is S.CONFIGURED


@pytest.mark.parametrize("wrong", WRONG_NONCES, ids=repr)
@pytest.mark.parametrize("make", [_form_open, _on_step], ids=["form", "step"])
def test_wrong_nonce_is_refused_and_changes_nothing(make: Any, wrong: str) -> None:
    machine = make()
    event_type = FormSubmitted if machine.state is S.FORM_OPEN else StepSubmitted
    attempts = machine.attempts_left
    error = _refused(machine, event_type(nonce=wrong, at=3.0))
    assert "nonce matches" in str(error)
    # Refusals spend no attempt: the right nonce still gets every one.
    assert machine.attempts_left == attempts
    assert machine.handle(event_type(nonce=machine.nonce, at=3.0))[0].expires_at == 6.0


def test_nonces_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(cb.hmac, "compare_digest", spy)
    machine = _form_open()
    machine.handle(FormSubmitted(nonce=NONCE_A, at=1.0))
    assert calls == [(NONCE_A.encode(), NONCE_A.encode())]


def test_form_from_another_page_opens_nothing() -> None:
    # A replayed post of the form while the OTP step is up: the form's nonce is spent.
    machine = _on_step()
    _refused(machine, StepSubmitted(nonce=NONCE_A, at=3.0))
    _refused(machine, FormSubmitted(nonce=NONCE_A, at=3.0))


def test_attempts_are_bounded() -> None:
    machine = _form_open(attrs.evolve(LIMITS, max_attempts=3))
    shown = []
    for at in (1.0, 2.0):
        machine.handle(FormSubmitted(nonce=NONCE_A, at=at))
        effects = machine.handle(ValidationFailed(retryable=True, reason="typo", at=at))
        assert effects[0] == ShowError(reason="typo")
        shown.append(effects[1].attempts_left)
        assert machine.state is S.FORM_OPEN
    assert shown == [2, 1]
    machine.handle(FormSubmitted(nonce=NONCE_A, at=3.0))
    assert machine.attempts_left == 0
    assert machine.handle(ValidationFailed(retryable=True, reason="typo", at=3.0)) == [
        DiscardSecrets(),
        ShowFailure(reason="typo (no attempts left)", retry_at=7.0),
    ]
    assert machine.state is S.FAILED
    _refused(machine, FormSubmitted(nonce=NONCE_A, at=3.5))


def test_step_attempts_are_bounded_per_page() -> None:
    machine = _on_step()  # the form spent one attempt; the step has its own two
    assert machine.attempts_left == 2
    machine.handle(StepSubmitted(nonce=NONCE_B, at=3.0))
    assert machine.handle(ValidationFailed(retryable=True, reason="wrong code", at=3.0)) == [
        ShowError(reason="wrong code"),
        RenderForm(nonce=NONCE_B, step="otp", expires_at=8.0, attempts_left=1),
    ]
    assert machine.state is S.STEP_REQUIRED
    machine.handle(StepSubmitted(nonce=NONCE_B, at=4.0))
    machine.handle(ValidationFailed(retryable=True, reason="wrong code", at=4.0))
    assert machine.state is S.FAILED
    assert machine.retry_at == 8.0


def test_steps_are_bounded() -> None:
    machine = _validating_form()
    nonces = iter(["s" * 20 + str(i) for i in range(10)])
    for _ in range(LIMITS.max_steps):
        machine.handle(StepRequested(step="otp", nonce=next(nonces), at=2.0))
        machine.handle(StepSubmitted(nonce=machine.nonce, at=2.0))
    assert machine.steps_left == 0
    assert machine.handle(StepRequested(step="otp", nonce=next(nonces), at=2.0)) == [
        DiscardSecrets(),
        ShowFailure(reason="too many steps", retry_at=6.0),
    ]
    assert machine.state is S.FAILED


def test_step_request_must_bring_a_fresh_nonce() -> None:
    machine = _validating_form()
    error = _refused(machine, StepRequested(step="otp", nonce=NONCE_A, at=2.0))
    assert "fresh nonce" in str(error)


def test_a_new_step_gets_a_new_page() -> None:
    machine = _on_step(attrs.evolve(LIMITS, max_attempts=3))
    machine.handle(StepSubmitted(nonce=NONCE_B, at=3.0))
    machine.handle(StepRequested(step="second-password", nonce=NONCE_C, at=4.0))
    assert machine.step == "second-password"
    assert machine.attempts_left == 3
    assert machine.page_expires_at == 10.0
    _refused(machine, StepSubmitted(nonce=NONCE_B, at=4.5))


def test_retry_shows_the_same_page_until_its_deadline() -> None:
    machine = _validating_form()
    machine.handle(ValidationFailed(retryable=True, reason="typo", at=9.0))
    assert machine.nonce == NONCE_A
    assert machine.deadline == 10.0  # validation does not extend the page's life
    _refused(machine, FormSubmitted(nonce=NONCE_A, at=10.0))


def test_expired_form_cannot_be_submitted() -> None:
    machine = _form_open()  # opened at 0, lifetime 10
    error = _refused(machine, FormSubmitted(nonce=NONCE_A, at=10.0))
    assert "page open" in str(error)
    _refused(machine, FormSubmitted(nonce=NONCE_A, at=1e9))
    assert machine.handle(FormSubmitted(nonce=NONCE_A, at=9.5)) == [
        RunValidation(step=None, expires_at=12.5)
    ]


def test_expired_step_cannot_be_submitted() -> None:
    machine = _on_step()  # requested at 2, lifetime 6
    _refused(machine, StepSubmitted(nonce=NONCE_B, at=8.0))


def test_expiry_before_the_deadline_is_refused() -> None:
    for machine in (_form_open(), _on_step(), _validating_form()):
        assert machine.deadline is not None
        error = _refused(machine, Expired(at=machine.deadline - 0.001))
        assert "deadline passed" in str(error)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_form_open, "the form expired"),
        (_on_step, "the step expired"),
        (_validating_form, "validation timed out"),
    ],
    ids=["form", "step", "validation"],
)
def test_expiry_fails_and_a_new_form_may_open_at_once(make: Any, reason: str) -> None:
    machine = make()
    deadline = machine.deadline
    assert machine.handle(Expired(at=deadline)) == [
        DiscardSecrets(),
        ShowFailure(reason=reason, retry_at=None),
    ]
    assert machine.state is S.FAILED
    machine.handle(FormOpened(nonce=NONCE_C, at=deadline))
    assert machine.state is S.FORM_OPEN


def test_late_validation_answers_are_refused() -> None:
    machine = _validating_form()
    machine.handle(Expired(at=4.0))
    _refused(machine, ValidationSucceeded())
    _refused(machine, ValidationFailed(retryable=True, reason="typo", at=4.0))


def test_definitive_refusal_fails_with_cooldown() -> None:
    machine = _validating_form()
    assert machine.handle(ValidationFailed(retryable=False, reason="account locked", at=2.0)) == [
        DiscardSecrets(),
        ShowFailure(reason="account locked", retry_at=6.0),
    ]
    assert machine.state is S.FAILED


def test_cooldown_blocks_a_new_form_until_retry_at() -> None:
    machine = _validating_form()
    machine.handle(ValidationFailed(retryable=False, reason="no", at=2.0))
    error = _refused(machine, FormOpened(nonce=NONCE_C, at=5.999))
    assert "cooldown over" in str(error)
    machine.handle(FormOpened(nonce=NONCE_C, at=6.0))
    assert machine.state is S.FORM_OPEN
    assert machine.attempts_left == LIMITS.max_attempts
    assert machine.steps_left == LIMITS.max_steps
    assert machine.retry_at is None


def test_store_failure_does_not_claim_configured() -> None:
    machine = _storing()
    assert machine.state is S.STORING
    assert machine.handle(StoreFailed(reason="store unavailable")) == [
        DiscardSecrets(),
        ShowFailure(reason="store unavailable", retry_at=None),
    ]
    assert machine.state is S.FAILED
    _refused(machine, CredentialsStored())
    _refused(machine, Revoked())


def test_validation_alone_never_claims_configured() -> None:
    machine = _validating_form()
    effects = machine.handle(ValidationSucceeded())
    assert machine.state is S.STORING
    assert NotifyToolsChanged() not in effects
    assert not machine.allows(Revoked)


def test_revoke_returns_to_unconfigured() -> None:
    machine = _configured()
    assert machine.handle(Revoked()) == [NotifyToolsChanged()]
    assert machine.state is S.UNCONFIGURED
    assert machine.progress == BootstrapProgress()
    machine.handle(FormOpened(nonce=NONCE_C, at=50.0))
    assert machine.state is S.FORM_OPEN


@pytest.mark.parametrize(
    "make", [CredentialBootstrap, _form_open, _validating_form, _on_step, _storing]
)
def test_revoke_is_refused_unless_configured(make: Any) -> None:
    _refused(make(), Revoked())


@pytest.mark.parametrize("make", [_form_open, _validating_form, _on_step, _storing, _configured])
def test_a_second_form_cannot_open_over_a_bootstrap(make: Any) -> None:
    _refused(make(), FormOpened(nonce=NONCE_C, at=1.0))


def test_refusal_names_the_callers_event_and_state() -> None:
    machine = _configured()
    event = FormSubmitted(nonce=NONCE_A, at=1.0)
    error = _refused(machine, event)
    assert error.event is event
    assert error.state is S.CONFIGURED
    assert error.machine == "credential_bootstrap"


def test_allows_answers_for_public_event_classes() -> None:
    machine = _form_open()
    assert machine.allows(FormSubmitted)
    assert machine.allows(Expired)
    assert not machine.allows(StepSubmitted)
    assert not machine.allows(Revoked)
    assert _configured().allows(Revoked)


def test_deadline_follows_the_state() -> None:
    assert _form_open().deadline == 10.0
    assert _on_step().deadline == 8.0
    assert _validating_form().deadline == 4.0
    assert _storing().deadline is None
    assert _configured().deadline is None


# ---- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [CredentialBootstrap, _form_open, _validating_form, _on_step, _storing, _configured]
)
def test_restored_machine_continues_where_it_stood(make: Any) -> None:
    original = make()
    restored = CredentialBootstrap(LIMITS, progress=original.progress)
    assert restored.state is original.state
    assert restored.progress == original.progress
    for event_type in EVENTS:
        for event in samples_of(SAMPLES, event_type):
            assert _fire(CredentialBootstrap(LIMITS, progress=original.progress), event) == _fire(
                CredentialBootstrap(LIMITS, progress=restored.progress), event
            )


ON_FORM_FIELDS = {
    "state": S.FORM_OPEN,
    "nonce": NONCE_A,
    "page_expires_at": 1.0,
    "attempts_left": 1,
}


@pytest.mark.parametrize(
    "fields",
    [
        {"state": S.FORM_OPEN},  # no page
        {**ON_FORM_FIELDS, "attempts_left": 0},
        {**ON_FORM_FIELDS, "step": "otp", "steps_taken": 1},  # a step on the form
        {"state": S.STEP_REQUIRED, "nonce": NONCE_A, "page_expires_at": 1.0, "attempts_left": 1},
        {"state": S.VALIDATING, "nonce": NONCE_A, "page_expires_at": 1.0},  # no validation time
        {"state": S.CONFIGURED, "nonce": NONCE_A},
        {"state": S.UNCONFIGURED, "attempts_left": 2},
        {"state": S.STORING, "retry_at": 3.0},
        {"state": S.FAILED, "page_expires_at": 3.0},
        {"attempts_left": -1},
        {"retry_at": math.nan, "state": S.FAILED},
    ],
)
def test_inconsistent_progress_is_refused(fields: dict[str, Any]) -> None:
    assert BootstrapProgress(**ON_FORM_FIELDS).state is S.FORM_OPEN  # the base case is valid
    with pytest.raises(ValueError, match=r"must|needs"):
        BootstrapProgress(**fields)


def test_restore_refuses_progress_beyond_the_limits() -> None:
    progress = _on_step(attrs.evolve(LIMITS, max_attempts=5, max_steps=3)).progress
    with pytest.raises(ValueError, match="max_attempts"):
        CredentialBootstrap(LIMITS, progress=progress)
    with pytest.raises(ValueError, match="max_steps"):
        CredentialBootstrap(attrs.evolve(LIMITS, max_steps=0), progress=_on_step().progress)


# ---- values validate themselves and keep secrets out ------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: FormOpened(nonce="short", at=0.0),
        lambda: FormOpened(nonce=NONCE_A, at=math.inf),
        lambda: FormSubmitted(nonce=NONCE_A, at=math.nan),
        lambda: FormSubmitted(nonce=None, at=0.0),
        lambda: StepRequested(step="", nonce=NONCE_B, at=0.0),
        lambda: StepSubmitted(nonce=NONCE_B, at=True),
        lambda: ValidationFailed(retryable=1, reason="x", at=0.0),
        lambda: Expired(at="now"),
        lambda: BootstrapLimits(max_attempts=0),
        lambda: BootstrapLimits(form_lifetime=0.0),
        lambda: BootstrapLimits(cooldown=-1.0),
        lambda: BootstrapLimits(max_steps=-1),
    ],
)
def test_bad_values_are_refused_at_construction(make: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        make()


def test_nonces_stay_out_of_reprs() -> None:
    machine = _form_open()
    for value in (
        FormOpened(nonce=NONCE_A, at=0.0),
        FormSubmitted(nonce=NONCE_A, at=0.0),
        StepRequested(step="otp", nonce=NONCE_A, at=0.0),
        RenderForm(nonce=NONCE_A, step=None, expires_at=1.0, attempts_left=1),
        machine.progress,
        machine,
    ):
        assert NONCE_A not in repr(value)


# Every field an event or effect may have: names, times, counts and messages. A field for a
# submitted value (`value`, `password`, `api_key`, `fields`...) would have to be added here,
# in review.
ALLOWED_FIELDS = {
    "nonce",
    "at",
    "step",
    "retryable",
    "reason",
    "expires_at",
    "attempts_left",
    "retry_at",
}


@pytest.mark.parametrize("value_type", [*EVENTS, *EFFECTS], ids=lambda t: t.__name__)
def test_no_event_or_effect_carries_a_submitted_value(value_type: type) -> None:
    names = {field.name for field in attrs.fields(value_type)}
    assert names <= ALLOWED_FIELDS, names - ALLOWED_FIELDS
