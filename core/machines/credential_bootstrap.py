"""Credential bootstrap: how a server gets one user's credentials, from nothing to stored.

Issue 3 ("Credential bootstrap"); DESIGN.md "State machines: the table is the spec" and
"Security defaults" (secrets compared with `hmac.compare_digest`, bad input changes nothing).

Theory of operation. An MCP server that wraps another service often needs a secret from each of
its users (an API key, a password followed by an OTP) before its tools can work. One machine
runs per (server, subject) and starts `unconfigured`. The service opens the relay form (a
loopback page in local-relay mode, a page of the deployed server in remote-relay mode) under a
nonce it drew from its `Random` port and reports `FormOpened`: the machine moves to
`form_open`, gives the page a deadline (`form_lifetime` from opening) and `max_attempts`
attempts, and asks for it to be shown (`RenderForm`).

A submission counts only when it carries the page's nonce (compared in constant time) and
arrives before the page's deadline; anything else is refused and changes nothing, so a forged
or replayed post cannot spend the user's attempts. An accepted submission spends one attempt and
moves to `validating`: the form handler hands the submitted values to the server author's
validation callback (`RunValidation`), whose answer is due within `validation_timeout`. The
callback decides:

- success: `storing`, and the vault seals and writes the values (`PersistCredentials`). Only
  when the service reports `CredentialsStored` does the machine claim `configured`; it then has
  the plaintext discarded and the subject's sessions told that their tool list changed. A
  failed write (`StoreFailed`) ends in `failed`: a state never claims an I/O outcome that did
  not happen.
- another step (an OTP, a second password): `step_required`, a new page with a fresh nonce, its
  own deadline (`step_lifetime`) and `max_attempts` attempts; its submission goes back to
  `validating`. At most `max_steps` steps per bootstrap, so a validator cannot loop forever.
- a retryable failure (a mistyped key): back to the page the user was on, with the error shown,
  while that page has attempts left; after its last attempt, `failed`.
- a definitive refusal: `failed`.

`Expired` reports that the clock passed the current deadline (the page's, or the validation's
in `validating`); before the deadline it is refused, so a timer or a sweep over persisted
machines may fire it freely. Entering `failed` discards whatever was submitted and tells the
user why (`ShowFailure`). A new form may then be opened: at once after an expiry or a failed
write, after `cooldown` when the validator had the last word (attempts used up, a definitive
refusal, too many steps), which brakes guessing. `configured` lasts until the service has
deleted the credentials from the vault and reports `Revoked`: back to `unconfigured`, and the
tool list changes again. A machine restored in `storing` after a crash waits for the service to
read the vault and report `CredentialsStored` or `StoreFailed`; it never guesses.

Secrets never enter the machine: submitted values go from the form handler to the validator
and the vault, and events and effects carry pages, step names, nonces, times and counts only.
Nonces are one-time CSRF tokens bound to one page (the form, or one step), not credentials;
they are persisted with the state but kept out of reprs. Times are seconds on whatever clock the
service uses and always arrive as event fields; this module reads no clock and draws no random
numbers. Deadlines are half-open: a submission at `t < expires_at` counts, `Expired(at)` needs
`at >= expires_at`, and a new form needs `at >= retry_at`.

Driving it. A service keeps one `CredentialBootstrap` per (server, subject), persists its
`progress` after every accepted event, performs the returned effects in order and reports each
outcome as the next event: `RenderForm` is answered by the user's post (`FormSubmitted`,
`StepSubmitted`); `RunValidation` by `ValidationSucceeded`, `ValidationFailed` or
`StepRequested`; `PersistCredentials` by `CredentialsStored` or `StoreFailed`; and a timer set
for `deadline` fires `Expired`. A refused event raises `LocalProtocolError` naming it; the
read-only properties (`deadline`, `nonce`, `attempts_left`, `retry_at`) tell the relay form
what to say ("this page expired", "try again after ...").

How the table sees the machine's data. The engine's guards and effect builders see only their
event, while these guards depend on what the machine holds: the nonce, the deadlines, the
attempts left. So `CredentialBootstrap` (the class services drive) keeps that data as a
`BootstrapProgress` and hands the table a *judged* event: the same class re-made in `Judged`
under the same name, carrying a `BootstrapContext` (the progress and the limits) as of the
event's arrival. Every guard and effect is then a pure function of one value, the table below
is the whole specification, and the machine tests of `tests/machines` apply to it unchanged.
Callers never build judged events, and the table refuses unjudged ones.

The table below is the specification; `specs/machines/credential_bootstrap.json` and
`docs/machines/credential_bootstrap.md` are generated from it, and tests fail when they drift.
"""

from __future__ import annotations

import enum
import hmac
import math
from typing import Any, Final, TypeAlias

import attrs

from ._fsm import (
    JudgedMachine,
    LocalProtocolError,
    Rule,
    StateMachine,
    effects,
    export_table,
)

__all__ = [
    "DEFAULT_LIMITS",
    "EFFECTS",
    "EVENTS",
    "MIN_NONCE_LENGTH",
    "TABLE",
    "BootstrapContext",
    "BootstrapLimits",
    "BootstrapProgress",
    "CredentialBootstrap",
    "CredentialBootstrapMachine",
    "CredentialBootstrapState",
    "CredentialsStored",
    "DiscardSecrets",
    "Effect",
    "Event",
    "Expired",
    "FormOpened",
    "FormSubmitted",
    "Judged",
    "LocalProtocolError",
    "NotifyToolsChanged",
    "PersistCredentials",
    "RenderForm",
    "Revoked",
    "RunValidation",
    "ShowError",
    "ShowFailure",
    "StepRequested",
    "StepSubmitted",
    "StoreFailed",
    "ValidationFailed",
    "ValidationSucceeded",
    "spec",
]

# A nonce the service draws must be long enough not to be guessed within a page's lifetime;
# `secrets.token_urlsafe(32)` (43 characters) is what the relay form uses.
MIN_NONCE_LENGTH: Final = 16


class CredentialBootstrapState(enum.Enum):
    UNCONFIGURED = "unconfigured"
    FORM_OPEN = "form_open"
    VALIDATING = "validating"
    STEP_REQUIRED = "step_required"
    STORING = "storing"
    CONFIGURED = "configured"
    FAILED = "failed"


# ---- validators -------------------------------------------------------------------------------


def _time(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds, got {value!r}")


def _optional_time(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _time(instance, attribute, value)


def _drawn_nonce(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or len(value) < MIN_NONCE_LENGTH:
        raise ValueError(f"{attribute.name} must be a string of {MIN_NONCE_LENGTH}+ characters")


def _text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{attribute.name} must be a string, got {type(value).__name__}")


def _step_name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _count(minimum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


# ---- the machine's data -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BootstrapLimits:
    """How long pages live and how often a user may try. One value per server, shared by its
    machines. Times are seconds."""

    # Submissions per page (the form, or one step) before the bootstrap fails.
    max_attempts: int = attrs.field(default=3, validator=_count(1))
    # Extra steps (OTP, second password) one bootstrap may ask for.
    max_steps: int = attrs.field(default=3, validator=_count(0))
    form_lifetime: float = attrs.field(default=900.0, validator=_positive)
    step_lifetime: float = attrs.field(default=300.0, validator=_positive)
    # How long the validation callback may run before `Expired` fails the bootstrap.
    validation_timeout: float = attrs.field(default=60.0, validator=_positive)
    # After the validator had the last word, how long before a new form may be opened.
    cooldown: float = attrs.field(default=300.0, validator=_positive)


DEFAULT_LIMITS: Final = BootstrapLimits()

_S = CredentialBootstrapState
_PAGE_STATES = frozenset({_S.FORM_OPEN, _S.VALIDATING, _S.STEP_REQUIRED})


@attrs.frozen(kw_only=True)
class BootstrapProgress:
    """Everything one machine holds: its state and the data its guards read. This is what a
    service persists and passes back to `CredentialBootstrap(progress=...)`.

    - `nonce`, `page_expires_at`, `attempts_left`: the current page (the form, or the step
      named `step`), in `form_open`, `validating` (the page being validated) and
      `step_required`.
    - `validation_expires_at`: in `validating`, when the callback's answer is overdue.
    - `steps_taken`: steps requested since the form opened.
    - `retry_at`: in `failed`, when a new form may be opened (None: at once).
    Values that do not fit the state are refused with `ValueError`.
    """

    state: CredentialBootstrapState = CredentialBootstrapState.UNCONFIGURED
    nonce: str | None = attrs.field(default=None, repr=False)
    step: str | None = None
    page_expires_at: float | None = attrs.field(default=None, validator=_optional_time)
    attempts_left: int = attrs.field(default=0, validator=_count(0))
    steps_taken: int = attrs.field(default=0, validator=_count(0))
    validation_expires_at: float | None = attrs.field(default=None, validator=_optional_time)
    retry_at: float | None = attrs.field(default=None, validator=_optional_time)

    def __attrs_post_init__(self) -> None:
        state = self.state
        on_page = state in _PAGE_STATES
        problems = []
        page = (self.nonce, self.page_expires_at)
        if (on_page and None in page) or (not on_page and page != (None, None)):
            problems.append("a nonce and page_expires_at exactly in the page states")
        if self.step is not None and not on_page:
            problems.append("a step only in the page states")
        if (self.step is not None) != (self.steps_taken > 0) and on_page:
            problems.append("a step exactly when steps were taken")
        if state is _S.STEP_REQUIRED and self.step is None:
            problems.append("a step in step_required")
        if state is _S.FORM_OPEN and self.step is not None:
            problems.append("no step in form_open")
        if not on_page and (self.attempts_left or self.steps_taken):
            problems.append("no attempts or steps outside the page states")
        if state in (_S.FORM_OPEN, _S.STEP_REQUIRED) and self.attempts_left < 1:
            problems.append("an attempt left on an open page")
        if (state is _S.VALIDATING) != (self.validation_expires_at is not None):
            problems.append("validation_expires_at exactly in validating")
        if state is not _S.FAILED and self.retry_at is not None:
            problems.append("retry_at only in failed")
        if problems:
            needs = "; ".join(problems)
            raise ValueError(f"inconsistent progress in state {state.value!r}: needs {needs}")


@attrs.frozen(kw_only=True)
class BootstrapContext:
    """What the machine held when an event arrived: the data its guards and effects read."""

    progress: BootstrapProgress
    limits: BootstrapLimits


# ---- events: facts the service reports --------------------------------------------------------


@attrs.frozen(kw_only=True)
class FormOpened:
    """The service opened the relay form under `nonce` (drawn from its `Random` port) at `at`:
    a loopback page in local-relay mode, or a page of the deployed server in remote-relay mode."""

    nonce: str = attrs.field(repr=False, validator=_drawn_nonce)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class FormSubmitted:
    """A post of the form arrived at `at`, carrying `nonce` as the page sent it (anything: it
    is the client's word). The values stay with the form handler."""

    nonce: str = attrs.field(repr=False, validator=_text)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class StepRequested:
    """The validation callback asked for another step (`step` names it: "otp", ...); the
    service drew a fresh `nonce` for its page."""

    step: str = attrs.field(validator=_step_name)
    nonce: str = attrs.field(repr=False, validator=_drawn_nonce)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class StepSubmitted:
    """A post of the current step's page arrived at `at`, carrying `nonce`."""

    nonce: str = attrs.field(repr=False, validator=_text)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class ValidationSucceeded:
    """The validation callback accepted what was submitted."""


@attrs.frozen(kw_only=True)
class ValidationFailed:
    """The validation callback refused at `at`. `retryable`: the user may correct and resubmit
    the same page (a mistyped key); otherwise the refusal is definitive. `reason` is shown to
    the user, so it must not contain what was submitted."""

    retryable: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    reason: str = attrs.field(validator=_text)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class CredentialsStored:
    """The vault sealed and wrote the validated values (`PersistCredentials` succeeded)."""


@attrs.frozen(kw_only=True)
class StoreFailed:
    """`PersistCredentials` failed (the store is down, a version conflict); nothing is
    configured. `reason` is shown to the user."""

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class Expired:
    """A timer or a sweep noticed the time `at`; it counts only once the current deadline
    has passed."""

    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class Revoked:
    """The subject's credentials were deleted from the vault (by the user, the operator, or
    `mcp-core vault delete`)."""


Event: TypeAlias = (
    FormOpened
    | FormSubmitted
    | StepRequested
    | StepSubmitted
    | ValidationSucceeded
    | ValidationFailed
    | CredentialsStored
    | StoreFailed
    | Expired
    | Revoked
)

EVENTS: Final[tuple[type, ...]] = (
    FormOpened,
    FormSubmitted,
    StepRequested,
    StepSubmitted,
    ValidationSucceeded,
    ValidationFailed,
    CredentialsStored,
    StoreFailed,
    Expired,
    Revoked,
)

# Aliases so that `Judged` can re-make each class under its own name.
_FormOpened = FormOpened
_FormSubmitted = FormSubmitted
_StepRequested = StepRequested
_StepSubmitted = StepSubmitted
_ValidationFailed = ValidationFailed
_Expired = Expired


class Judged:
    """The events whose rules read the machine's data, as the table receives them: each with
    the `BootstrapContext` of its arrival. Built by `CredentialBootstrap.handle` (and by tests
    of the table); a service never builds one. Same names as the events they judge, so the
    exported spec reads in the service's words."""

    @attrs.frozen(kw_only=True)
    class FormOpened(_FormOpened):
        context: BootstrapContext

    @attrs.frozen(kw_only=True)
    class FormSubmitted(_FormSubmitted):
        context: BootstrapContext

    @attrs.frozen(kw_only=True)
    class StepRequested(_StepRequested):
        context: BootstrapContext

    @attrs.frozen(kw_only=True)
    class StepSubmitted(_StepSubmitted):
        context: BootstrapContext

    @attrs.frozen(kw_only=True)
    class ValidationFailed(_ValidationFailed):
        context: BootstrapContext

    @attrs.frozen(kw_only=True)
    class Expired(_Expired):
        context: BootstrapContext


_JUDGED: Final[dict[type, type]] = {
    FormOpened: Judged.FormOpened,
    FormSubmitted: Judged.FormSubmitted,
    StepRequested: Judged.StepRequested,
    StepSubmitted: Judged.StepSubmitted,
    ValidationFailed: Judged.ValidationFailed,
    Expired: Judged.Expired,
}


# ---- effects: what the service must do --------------------------------------------------------


@attrs.frozen(kw_only=True)
class RenderForm:
    """Show the page: the form when `step` is None, else that step. Embed `nonce` in it; it
    accepts posts until `expires_at`; `attempts_left` may be shown."""

    nonce: str = attrs.field(repr=False)
    step: str | None
    expires_at: float
    attempts_left: int


@attrs.frozen(kw_only=True)
class RunValidation:
    """Hand the values just submitted (the form when `step` is None, else that step) to the
    validation callback, and report its answer; at `expires_at` the answer is overdue."""

    step: str | None
    expires_at: float


@attrs.frozen(kw_only=True)
class ShowError:
    """Tell the user why the submission was refused; the page stays open for another try."""

    reason: str


@attrs.frozen(kw_only=True)
class ShowFailure:
    """Tell the user the bootstrap failed and why; a new form may be opened from `retry_at`
    (None: at once)."""

    reason: str
    retry_at: float | None


@attrs.frozen(kw_only=True)
class PersistCredentials:
    """Seal the validated values in the vault for this (server, subject), then report
    `CredentialsStored` or `StoreFailed`."""


@attrs.frozen(kw_only=True)
class NotifyToolsChanged:
    """Send `notifications/tools/list_changed` to every session of the subject."""


@attrs.frozen(kw_only=True)
class DiscardSecrets:
    """Forget every value submitted in this bootstrap, and abandon a validation still running."""


Effect: TypeAlias = (
    RenderForm
    | RunValidation
    | ShowError
    | ShowFailure
    | PersistCredentials
    | NotifyToolsChanged
    | DiscardSecrets
)

EFFECTS: Final[tuple[type, ...]] = (
    RenderForm,
    RunValidation,
    ShowError,
    ShowFailure,
    PersistCredentials,
    NotifyToolsChanged,
    DiscardSecrets,
)


# ---- guards: pure functions of a judged event -------------------------------------------------


def _same_nonce(held: str | None, given: str) -> bool:
    """Constant-time comparison of the page's nonce with the one a post carried. Encoded
    first: `compare_digest` refuses non-ASCII text, and a post may carry anything."""
    if held is None:
        return False
    return hmac.compare_digest(
        held.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def _page_accepts(event: Judged.FormSubmitted | Judged.StepSubmitted) -> bool:
    progress = event.context.progress
    expires_at = progress.page_expires_at
    return (
        expires_at is not None
        and event.at < expires_at
        and progress.attempts_left > 0
        and _same_nonce(progress.nonce, event.nonce)
    )


def _retry_on_form(event: Judged.ValidationFailed) -> bool:
    progress = event.context.progress
    return event.retryable and progress.attempts_left > 0 and progress.step is None


def _retry_on_step(event: Judged.ValidationFailed) -> bool:
    progress = event.context.progress
    return event.retryable and progress.attempts_left > 0 and progress.step is not None


def _fresh_nonce(event: Judged.StepRequested) -> bool:
    return not _same_nonce(event.context.progress.nonce, event.nonce)


def _steps_left(event: Judged.StepRequested) -> bool:
    context = event.context
    return _fresh_nonce(event) and context.progress.steps_taken < context.limits.max_steps


def _page_expired(event: Judged.Expired) -> bool:
    expires_at = event.context.progress.page_expires_at
    return expires_at is not None and event.at >= expires_at


def _validation_overdue(event: Judged.Expired) -> bool:
    expires_at = event.context.progress.validation_expires_at
    return expires_at is not None and event.at >= expires_at


def _cooldown_over(event: Judged.FormOpened) -> bool:
    retry_at = event.context.progress.retry_at
    return retry_at is None or event.at >= retry_at


# ---- effect builders: pure functions of an event ----------------------------------------------


def _failed_retry_at(event: object) -> float | None:
    """When a new form may follow a failure: after `cooldown` when the validator had the last
    word (the brake on guessing), at once after an expiry or a failed write."""
    if isinstance(event, Judged.ValidationFailed | Judged.StepRequested):
        return event.at + event.context.limits.cooldown
    return None


def _failure(reason: str, event: object) -> list[Any]:
    return [DiscardSecrets(), ShowFailure(reason=reason, retry_at=_failed_retry_at(event))]


@effects("RenderForm")
def _render_new_form(event: Judged.FormOpened) -> list[Any]:
    limits = event.context.limits
    return [
        RenderForm(
            nonce=event.nonce,
            step=None,
            expires_at=event.at + limits.form_lifetime,
            attempts_left=limits.max_attempts,
        )
    ]


@effects("RunValidation")
def _run_validation(event: Judged.FormSubmitted | Judged.StepSubmitted) -> list[Any]:
    context = event.context
    return [
        RunValidation(
            step=context.progress.step, expires_at=event.at + context.limits.validation_timeout
        )
    ]


@effects("ShowError", "RenderForm")
def _show_page_again(event: Judged.ValidationFailed) -> list[Any]:
    progress = event.context.progress
    # In `validating` the page's data is always there (`BootstrapProgress` checks it).
    assert progress.nonce is not None
    assert progress.page_expires_at is not None
    return [
        ShowError(reason=event.reason),
        RenderForm(
            nonce=progress.nonce,
            step=progress.step,
            expires_at=progress.page_expires_at,
            attempts_left=progress.attempts_left,
        ),
    ]


@effects("DiscardSecrets", "ShowFailure")
def _validation_refused(event: Judged.ValidationFailed) -> list[Any]:
    reason = f"{event.reason} (no attempts left)" if event.retryable else event.reason
    return _failure(reason, event)


@effects("RenderForm")
def _render_step(event: Judged.StepRequested) -> list[Any]:
    limits = event.context.limits
    return [
        RenderForm(
            nonce=event.nonce,
            step=event.step,
            expires_at=event.at + limits.step_lifetime,
            attempts_left=limits.max_attempts,
        )
    ]


@effects("DiscardSecrets", "ShowFailure")
def _too_many_steps(event: Judged.StepRequested) -> list[Any]:
    return _failure("too many steps", event)


@effects("DiscardSecrets", "ShowFailure")
def _form_expired(event: Judged.Expired) -> list[Any]:
    return _failure("the form expired", event)


@effects("DiscardSecrets", "ShowFailure")
def _step_expired(event: Judged.Expired) -> list[Any]:
    return _failure("the step expired", event)


@effects("DiscardSecrets", "ShowFailure")
def _validation_timed_out(event: Judged.Expired) -> list[Any]:
    return _failure("validation timed out", event)


@effects("PersistCredentials")
def _persist(_event: ValidationSucceeded) -> list[Any]:
    return [PersistCredentials()]


@effects("DiscardSecrets", "NotifyToolsChanged")
def _configured(_event: CredentialsStored) -> list[Any]:
    return [DiscardSecrets(), NotifyToolsChanged()]


@effects("DiscardSecrets", "ShowFailure")
def _store_failed(event: StoreFailed) -> list[Any]:
    return _failure(event.reason, event)


@effects("NotifyToolsChanged")
def _revoked(_event: Revoked) -> list[Any]:
    return [NotifyToolsChanged()]


# ---- the table --------------------------------------------------------------------------------

U, FO, V, SR, ST, C, F = (
    CredentialBootstrapState.UNCONFIGURED,
    CredentialBootstrapState.FORM_OPEN,
    CredentialBootstrapState.VALIDATING,
    CredentialBootstrapState.STEP_REQUIRED,
    CredentialBootstrapState.STORING,
    CredentialBootstrapState.CONFIGURED,
    CredentialBootstrapState.FAILED,
)

_Rules = Rule[CredentialBootstrapState] | list[Rule[CredentialBootstrapState]]

TABLE: dict[tuple[CredentialBootstrapState, type], _Rules] = {
    (U, Judged.FormOpened): Rule(to=FO, effects=_render_new_form),
    (FO, Judged.FormSubmitted): Rule(
        to=V, effects=_run_validation, when=_page_accepts, guard_name="nonce matches, page open"
    ),
    (FO, Judged.Expired): Rule(
        to=F, effects=_form_expired, when=_page_expired, guard_name="page deadline passed"
    ),
    (V, ValidationSucceeded): Rule(to=ST, effects=_persist),
    (V, Judged.ValidationFailed): [
        Rule(
            to=FO,
            effects=_show_page_again,
            when=_retry_on_form,
            guard_name="retryable, attempts left, on the form",
        ),
        Rule(
            to=SR,
            effects=_show_page_again,
            when=_retry_on_step,
            guard_name="retryable, attempts left, on a step",
        ),
        Rule(to=F, effects=_validation_refused, guard_name="otherwise"),
    ],
    (V, Judged.StepRequested): [
        Rule(to=SR, effects=_render_step, when=_steps_left, guard_name="fresh nonce, steps left"),
        Rule(
            to=F,
            effects=_too_many_steps,
            when=_fresh_nonce,
            guard_name="fresh nonce, no steps left",
        ),
    ],
    (V, Judged.Expired): Rule(
        to=F,
        effects=_validation_timed_out,
        when=_validation_overdue,
        guard_name="validation deadline passed",
    ),
    (SR, Judged.StepSubmitted): Rule(
        to=V, effects=_run_validation, when=_page_accepts, guard_name="nonce matches, page open"
    ),
    (SR, Judged.Expired): Rule(
        to=F, effects=_step_expired, when=_page_expired, guard_name="page deadline passed"
    ),
    (ST, CredentialsStored): Rule(to=C, effects=_configured),
    (ST, StoreFailed): Rule(to=F, effects=_store_failed),
    (C, Revoked): Rule(to=U, effects=_revoked),
    (F, Judged.FormOpened): Rule(
        to=FO, effects=_render_new_form, when=_cooldown_over, guard_name="cooldown over"
    ),
}


class CredentialBootstrapMachine(StateMachine[CredentialBootstrapState]):
    """The table alone, driven by judged events. Services drive `CredentialBootstrap`, which
    keeps the data and judges each event; this class is what the table's tests exercise."""

    name = "credential_bootstrap"

    def __init__(self, state: CredentialBootstrapState = CredentialBootstrapState.UNCONFIGURED):
        super().__init__(CredentialBootstrapState, TABLE, state)


# ---- the data after a move ----------------------------------------------------------------------


def _next_progress(
    progress: BootstrapProgress,
    limits: BootstrapLimits,
    event: object,
    to: CredentialBootstrapState,
) -> BootstrapProgress:
    """The progress after the table moved to `to` on `event` (as judged, and accepted)."""
    if to is F:
        return BootstrapProgress(state=F, retry_at=_failed_retry_at(event))
    if to not in _PAGE_STATES:
        return BootstrapProgress(state=to)
    if isinstance(event, FormOpened):
        return BootstrapProgress(
            state=FO,
            nonce=event.nonce,
            page_expires_at=event.at + limits.form_lifetime,
            attempts_left=limits.max_attempts,
        )
    if isinstance(event, StepRequested):
        return attrs.evolve(
            progress,
            state=SR,
            nonce=event.nonce,
            step=event.step,
            page_expires_at=event.at + limits.step_lifetime,
            attempts_left=limits.max_attempts,
            steps_taken=progress.steps_taken + 1,
            validation_expires_at=None,
        )
    if isinstance(event, FormSubmitted | StepSubmitted):
        return attrs.evolve(
            progress,
            state=V,
            attempts_left=progress.attempts_left - 1,
            validation_expires_at=event.at + limits.validation_timeout,
        )
    if isinstance(event, ValidationFailed):  # a retry: back to the same page
        return attrs.evolve(progress, state=to, validation_expires_at=None)
    raise AssertionError(f"no progress rule for {type(event).__name__} to {to.value}")


# ---- the class services drive -----------------------------------------------------------------


class CredentialBootstrap(JudgedMachine[CredentialBootstrapState, BootstrapProgress]):
    """One subject's credential bootstrap: `handle(event) -> effects`, plus its data read-only.

    `limits` are the server's; `progress` restores a machine persisted elsewhere (by default a
    new one starts `unconfigured`). A refused event raises `LocalProtocolError` naming that
    event, and changes nothing. Not thread-safe: drive one machine from one task at a time.
    """

    name = CredentialBootstrapMachine.name
    __slots__ = ("_limits",)
    judged = _JUDGED

    def __init__(
        self,
        limits: BootstrapLimits = DEFAULT_LIMITS,
        *,
        progress: BootstrapProgress | None = None,
    ) -> None:
        progress = progress if progress is not None else BootstrapProgress()
        if progress.attempts_left > limits.max_attempts:
            raise ValueError("progress has more attempts left than limits.max_attempts allows")
        if progress.steps_taken > limits.max_steps:
            raise ValueError("progress took more steps than limits.max_steps allows")
        self._limits = limits
        self._progress = progress
        self._machine = CredentialBootstrapMachine(progress.state)

    def __repr__(self) -> str:
        return f"<CredentialBootstrap {self._progress!r}>"

    # ---- driving ----

    def _context(self) -> object:
        return BootstrapContext(progress=self._progress, limits=self._limits)

    def _refusal(self, state: CredentialBootstrapState, fed: object) -> str:
        return _refusal(state, fed)

    def _advance(self, fed: object, effects: list[Any]) -> BootstrapProgress:
        return _next_progress(self._progress, self._limits, fed, self._machine.state)

    # ---- reading ----

    @property
    def limits(self) -> BootstrapLimits:
        return self._limits

    @property
    def nonce(self) -> str | None:
        """The current page's nonce (the form's, or the step's); None off the page states."""
        return self._progress.nonce

    @property
    def step(self) -> str | None:
        """The step the current page asks for; None on the form and off the page states."""
        return self._progress.step

    @property
    def attempts_left(self) -> int:
        """Submissions the current page still accepts (in `validating`: after this one)."""
        return self._progress.attempts_left

    @property
    def steps_left(self) -> int:
        """Further steps the validator may still ask for in this bootstrap."""
        return self._limits.max_steps - self._progress.steps_taken

    @property
    def page_expires_at(self) -> float | None:
        """When the current page stops accepting posts."""
        return self._progress.page_expires_at

    @property
    def validation_expires_at(self) -> float | None:
        """In `validating`, when the callback's answer is overdue."""
        return self._progress.validation_expires_at

    @property
    def deadline(self) -> float | None:
        """When `Expired` will count in the current state: the page's deadline in `form_open`
        and `step_required`, the validation's in `validating`; None elsewhere."""
        if self.state is V:
            return self._progress.validation_expires_at
        if self.state in (FO, SR):
            return self._progress.page_expires_at
        return None

    @property
    def retry_at(self) -> float | None:
        """In `failed`, when a new form may be opened (None: at once)."""
        return self._progress.retry_at


def _refusal(state: CredentialBootstrapState, fed: object) -> str:
    value = TABLE.get((state, type(fed)))
    if value is None:
        return ""
    rules = [value] if isinstance(value, Rule) else value
    return "needs " + " or ".join(repr(rule.guard_name) for rule in rules)


def spec() -> dict[str, Any]:
    """The exported table (`specs/machines/credential_bootstrap.json`)."""
    return export_table(
        CredentialBootstrapMachine.name,
        CredentialBootstrapState,
        CredentialBootstrapState.UNCONFIGURED,
        TABLE,
    )
