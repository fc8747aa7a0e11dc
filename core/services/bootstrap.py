"""Credential bootstrap, the service: a user's credentials from the relay form into the vault.

Issue 3 ("Credential bootstrap" and the relay form); the machine it drives is
`mcp_core.core.machines.credential_bootstrap` (its docstring is the theory of the flow), the
page is `mcp_core.core.http.relay_form`, the guide is `docs/credentials.md`.

The server author declares the fields (`CredentialField`) and an async validation callback:

```python
async def validate(values: dict[str, str], step: str | None) -> Outcome:
    # values: everything submitted so far in this bootstrap (the form, then each step's
    # fields); step: None for the form, else the step just submitted ("otp", ...)
    return Accepted()                      # store the values (or Accepted(data={...}))
    return StepRequired(step="otp", fields=(...), prompt="Enter the code we sent you")
    return Rejected(reason="the key was refused", retryable=True)
```

What the service does, per (server, subject):
- one `CredentialBootstrap` machine, kept in this process, driven through its public API; a
  subject whose credentials are already in the vault starts `configured`;
- `page(subject, action)` (a GET of the form) opens the form under a one-time nonce drawn from
  the `Random` port, or shows the page still open, "already connected", or "try again later";
- `submit(subject, action, body, content_type)` (its POST) parses the size-capped body, checks
  the nonce in constant time (a wrong or reused nonce is refused and changes nothing), checks
  the declared fields, runs the validator (bounded by the machine's `validation_timeout`),
  renders a step page, stores accepted credentials in the `Vault` (kind `kind`, compare-and-set
  on the version it saw), and on `configured` tells exactly that subject's sessions
  `notifications/tools/list_changed` (`McpServer.notify_subject_list_changed`);
- failures count per subject (`FailureLimit`): refused nonces and refusals by the validator;
  too many in a window close the form to that subject for a cooldown (429 with Retry-After),
  on top of the machine's own attempts per page and cooldown after the validator's last word;
- `status(subject)`, `revoke(subject)`, `credentials(subject)` (decrypted, for tools), and
  `requires_credentials`, a decorator for tools that need them: until the subject is
  configured such a tool answers an `isError` result "not configured: open <url>".

Where the form is reached is a `FormRelay`: `RemoteRelay(url)` for a deployed server (the
ASGI app `mcp_core.adapters.asgi.relay.RelayApp` serves it at that URL), or the loopback
`LocalRelay` of the same module, which opens the user's browser.

Secrets. Submitted values live only in this service's memory between the post that brought them
and the end of the bootstrap (stored, failed or expired: `DiscardSecrets`); they never enter the
machine, its events or effects, a log line, a repr or an exception message, and secret fields
are never rendered back. The validator's exceptions are logged by type only, since their
messages may quote what was submitted.

Times come from the `Clock` port (`now()`, monotonic) and are what the machine sees. The
machines live in this process: in a deployment of several nodes the vault is shared (so every
node agrees on who is configured), but a form must be posted to the node that rendered it.
"""

from __future__ import annotations

import base64
import functools
import hmac
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeAlias, get_type_hints, overload

import anyio
import attrs

from mcp_core.ports.credentials import StoreUnavailable, VersionConflict
from mcp_core.ports.system import Clock, Random

from ..http.messages import HttpResponse
from ..http.relay_form import (
    CredentialField,
    FormError,
    FormPage,
    Notice,
    check_fields,
    field_problems,
    parse_form,
    read_submission,
    render_form,
    render_notice,
)
from ..machines.credential_bootstrap import (
    DEFAULT_LIMITS,
    BootstrapLimits,
    BootstrapProgress,
    CredentialBootstrap,
    CredentialBootstrapState,
    CredentialsStored,
    DiscardSecrets,
    Expired,
    FormOpened,
    FormSubmitted,
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
from .context import Context
from .server import McpServer
from .signature import SchemaError, is_context
from .tools import ToolError
from .vault import CredentialUnreadable, Vault

__all__ = [
    "DEFAULT_KIND",
    "Accepted",
    "BootstrapStatus",
    "CredentialBootstrapService",
    "CredentialField",
    "FailureLimit",
    "FormRelay",
    "Outcome",
    "Rejected",
    "RemoteRelay",
    "StepRequired",
    "Validator",
]

log = logging.getLogger("mcp_core.bootstrap")

DEFAULT_KIND: Final = "credentials"
NONCE_BYTES: Final = 32
_State = CredentialBootstrapState
_PAGES = frozenset({_State.FORM_OPEN, _State.STEP_REQUIRED})
# What `requires_credentials` makes of a tool function: always async.
ToolFunction: TypeAlias = Callable[..., Awaitable[Any]]


# ---- the validator's answers ------------------------------------------------------------------


def _non_empty(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


@attrs.frozen(kw_only=True)
class Accepted:
    """The credentials are good. `data` is what the vault stores for the subject (what tools
    get from `credentials`); None stores the values submitted (the form's and every step's)."""

    data: Mapping[str, Any] | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class StepRequired:
    """Ask for another page before deciding: `fields` to fill, `prompt` to read (an OTP, a
    second password). Its values are added to those already submitted."""

    step: str = attrs.field(validator=_non_empty)
    fields: tuple[CredentialField, ...] = attrs.field(converter=check_fields)
    prompt: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class Rejected:
    """Refused. `reason` is shown to the user, so it must not quote what was submitted.
    `retryable`: the user may correct the same page (while it has attempts left)."""

    reason: str = attrs.field(validator=_non_empty)
    retryable: bool = True


Outcome: TypeAlias = Accepted | StepRequired | Rejected
Validator: TypeAlias = Callable[[dict[str, str], str | None], Awaitable[Outcome]]


@attrs.frozen(kw_only=True)
class FailureLimit:
    """The brake on guessing, per subject: `max_failures` failures (refused nonces, refusals by
    the validator) within `window` seconds close the form to that subject for `cooldown`."""

    max_failures: int = 5
    window: float = 900.0
    cooldown: float = 900.0

    def __attrs_post_init__(self) -> None:
        if self.max_failures < 1 or self.window <= 0 or self.cooldown <= 0:
            raise ValueError("FailureLimit needs max_failures >= 1 and positive times")


@attrs.frozen(kw_only=True)
class BootstrapStatus:
    """Where one subject's bootstrap stands. `retry_in`: seconds until the form may be opened
    again (after a failure, or while the subject is rate limited), else None."""

    subject: str
    state: CredentialBootstrapState
    step: str | None = None
    attempts_left: int = 0
    retry_in: float | None = None

    @property
    def configured(self) -> bool:
        return self.state is CredentialBootstrapState.CONFIGURED


# ---- where the form is reached ----------------------------------------------------------------


class FormRelay(Protocol):
    """Makes the relay form reachable for a subject and says where: the URL a tool that needs
    credentials shows ("not configured: open <url>")."""

    async def present(self, bootstrap: CredentialBootstrapService, subject: str) -> str: ...


class RemoteRelay:
    """Remote-relay mode: the deployed server serves the form at one URL (`RelayApp`), where it
    renders for whichever subject is authenticated."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
            raise ValueError("the relay URL is an absolute http(s) URL without spaces")
        self.url = url

    def __repr__(self) -> str:
        return f"RemoteRelay({self.url!r})"

    async def present(self, bootstrap: CredentialBootstrapService, subject: str) -> str:
        return self.url


# ---- one subject ------------------------------------------------------------------------------


class _Subject:
    """What this process holds for one subject. `values` and `accepted` are the secrets."""

    __slots__ = (
        "accepted",
        "blocked_until",
        "failures",
        "loaded",
        "lock",
        "machine",
        "prompt",
        "step_fields",
        "values",
    )

    def __init__(self, limits: BootstrapLimits) -> None:
        self.lock = anyio.Lock()
        self.machine = CredentialBootstrap(limits)
        self.loaded = False
        self.values: dict[str, str] = {}
        self.accepted: Mapping[str, Any] | None = None
        self.step_fields: tuple[CredentialField, ...] | None = None
        self.prompt: str | None = None
        self.failures: deque[float] = deque()
        self.blocked_until: float | None = None

    def __repr__(self) -> str:
        return f"<_Subject {self.machine.state.value}>"

    def discard(self) -> None:
        self.values = {}
        self.accepted = None
        self.step_fields = None
        self.prompt = None


# ---- the service ------------------------------------------------------------------------------


class CredentialBootstrapService:
    """Credential bootstrap for one `McpServer`; see the module docstring.

    `anonymous_subject` is the vault subject of sessions that have none (a stdio server, a
    local server without authorization): set it (e.g. "local") in local-relay mode; leave it
    None on a deployed server, where a session without an authenticated subject has no
    credentials at all.
    """

    def __init__(
        self,
        server: McpServer,
        *,
        vault: Vault,
        fields: Sequence[CredentialField],
        validate: Validator,
        relay: FormRelay,
        clock: Clock,
        random: Random,
        limits: BootstrapLimits = DEFAULT_LIMITS,
        failure_limit: FailureLimit = FailureLimit(),
        kind: str = DEFAULT_KIND,
        anonymous_subject: str | None = None,
    ) -> None:
        self.server = server
        self.fields = check_fields(fields)
        self.kind = kind
        self.limits = limits
        self.failure_limit = failure_limit
        self.anonymous_subject = anonymous_subject
        self.relay = relay
        self._vault = vault
        self._validate = validate
        self._clock = clock
        self._random = random
        self._subjects: dict[str, _Subject] = {}

    def __repr__(self) -> str:
        return f"CredentialBootstrapService(server={self.server.name!r}, kind={self.kind!r})"

    @property
    def display_name(self) -> str:
        return self.server.title or self.server.name

    def subject_for(self, session_subject: str | None) -> str | None:
        """The vault subject of a session bound to `session_subject` (None: unauthenticated)."""
        return session_subject if session_subject is not None else self.anonymous_subject

    # ---- reading ------------------------------------------------------------------------------

    async def status(self, subject: str) -> BootstrapStatus:
        entry = await self._entry(subject)
        if not entry.lock.locked():
            infos = await self._vault.list_subject(self.server.name, subject)
            self._sync_if_idle(subject, entry, exists=any(i.kind == self.kind for i in infos))
        now = self._clock.now()
        machine = entry.machine
        retry_in = None
        if machine.state is _State.FAILED and machine.retry_at is not None:
            retry_in = machine.retry_at - now if machine.retry_at > now else None
        blocked = self._blocked_for(entry, now)
        if blocked is not None and machine.state is not _State.CONFIGURED:
            retry_in = max(retry_in or 0.0, blocked)
        return BootstrapStatus(
            subject=subject,
            state=machine.state,
            step=machine.step,
            attempts_left=machine.attempts_left,
            retry_in=retry_in,
        )

    async def credentials(self, subject: str) -> dict[str, Any] | None:
        """The subject's decrypted credentials (what the validator accepted), or None.

        Raises `CredentialUnreadable` when the record cannot be opened, `StoreUnavailable`
        when the store is down, `ValueError` when the record holds bytes (another writer's).
        """
        credential = await self._vault.get(self.server.name, subject, self.kind)
        entry = await self._entry(subject)
        self._sync_if_idle(subject, entry, exists=credential is not None)
        if credential is None:
            return None
        if not isinstance(credential.data, dict):
            raise ValueError(f"the {self.kind!r} record holds bytes, not a credentials bundle")
        return dict(credential.data)

    async def form_url(self, subject: str) -> str:
        """Where the subject can open the form (in local-relay mode this opens the browser)."""
        return await self.relay.present(self, subject)

    # ---- changing -----------------------------------------------------------------------------

    async def revoke(self, subject: str) -> bool:
        """Delete the subject's credentials; their sessions hear that the tool list changed.
        Returns whether there was anything to delete."""
        entry = await self._entry(subject)
        async with entry.lock:
            deleted = await self._vault.delete(self.server.name, subject, self.kind)
            if entry.machine.state is _State.CONFIGURED:
                self._apply(subject, entry, entry.machine.handle(Revoked()))
            elif deleted:
                self._notify(subject)
            log.info(
                "server %r: credentials revoked (%s)",
                self.server.name,
                "deleted" if deleted else "none stored",
            )
            return deleted

    async def sweep(self) -> int:
        """Expire the pages whose deadline passed (discarding what was submitted on them);
        returns how many. The form handlers do this lazily; a timer may call it too."""
        now = self._clock.now()
        expired = 0
        for subject, entry in list(self._subjects.items()):
            if entry.lock.locked():
                continue
            async with entry.lock:
                if self._expire_if_due(subject, entry, now) is not None:
                    expired += 1
        return expired

    # ---- the form -----------------------------------------------------------------------------

    async def page(self, subject: str, action: str) -> HttpResponse:
        """The answer to a GET of the relay form by `subject`; `action` is the form's path."""
        entry = await self._entry(subject)
        async with entry.lock:
            now = self._clock.now()
            self._expire_if_due(subject, entry, now)
            machine = entry.machine
            state = machine.state
            if state is _State.CONFIGURED:
                return self._notice(
                    "success",
                    "Already connected",
                    f"{self.display_name} already has your credentials. You can close this window.",
                )
            blocked = self._blocked_for(entry, now)
            if blocked is not None:
                return self._too_many(action, blocked)
            if state in _PAGES:
                return self._form(entry, action, now)
            if state in (_State.VALIDATING, _State.STORING):
                return self._notice(
                    "error",
                    "Still checking",
                    "Your last submission is still being checked. Reload this page shortly.",
                    status=409,
                    link=(action, "Reload"),
                )
            if state is _State.FAILED and machine.retry_at is not None and now < machine.retry_at:
                return self._notice(
                    "failure",
                    "Not yet",
                    "The last attempt failed; the form opens again after a pause.",
                    status=429,
                    retry_after=machine.retry_at - now,
                    link=(action, "Start again"),
                )
            effects = machine.handle(FormOpened(nonce=self._nonce(), at=now))
            log.info("server %r: relay form opened", self.server.name)
            return self._apply(subject, entry, effects, action=action) or self._form(
                entry, action, now
            )

    async def submit(
        self, subject: str, action: str, body: bytes, content_type: str | None
    ) -> HttpResponse:
        """The answer to a POST of the relay form by `subject`."""
        try:
            form = parse_form(body, content_type)
        except FormError as exc:
            return self._notice(
                "error",
                "Not a valid submission",
                exc.message,
                status=exc.status,
                link=(action, "Back to the form"),
            )
        entry = await self._entry(subject)
        async with entry.lock:
            now = self._clock.now()
            blocked = self._blocked_for(entry, now)
            if blocked is not None:
                return self._too_many(action, blocked)
            expired = self._expire_if_due(subject, entry, now)
            if expired is not None:
                return self._notice(
                    "failure",
                    "This page expired",
                    f"{expired}.",
                    status=410,
                    link=(action, "Start again"),
                )
            machine = entry.machine
            if machine.state not in _PAGES:
                return self._refused(entry, action, now)
            fields = entry.step_fields if machine.step is not None else self.fields
            assert fields is not None
            try:
                submission = read_submission(fields, form)
            except FormError as exc:
                return self._notice(
                    "error",
                    "Not a valid submission",
                    exc.message,
                    status=exc.status,
                    link=(action, "Back to the form"),
                )
            if not _same_nonce(machine.nonce, submission.nonce):
                return self._refused(entry, action, now)
            problems = field_problems(fields, submission.values)
            if problems:
                # The browser checks these too; no attempt is spent on what never left the page.
                return self._form(
                    entry,
                    action,
                    now,
                    error="; ".join(problems),
                    values=submission.values,
                    status=422,
                )
            event: FormSubmitted | StepSubmitted
            if machine.step is None:
                event = FormSubmitted(nonce=submission.nonce, at=now)
            else:
                event = StepSubmitted(nonce=submission.nonce, at=now)
            try:
                effects = machine.handle(event)
            except LocalProtocolError:
                return self._refused(entry, action, now)
            if machine.step is None:
                entry.values = {}
            entry.values.update(submission.values)
            # The rest runs to its end even if the client goes away: the validator is bounded
            # by `validation_timeout`, and a state must not be left half-done.
            with anyio.CancelScope(shield=True):
                try:
                    response = await self._drive(
                        subject, entry, effects, action, shown=submission.values
                    )
                finally:
                    if entry.machine.state not in _PAGES:
                        entry.discard()
            return response

    # ---- tools --------------------------------------------------------------------------------

    @overload
    def requires_credentials(self, fn: Callable[..., Any], /) -> ToolFunction: ...

    @overload
    def requires_credentials(
        self, fn: None = None, /, *, param: str = "credentials"
    ) -> Callable[[Callable[..., Any]], ToolFunction]: ...

    def requires_credentials(
        self, fn: Callable[..., Any] | None = None, /, *, param: str = "credentials"
    ) -> ToolFunction | Callable[[Callable[..., Any]], ToolFunction]:
        """Decorate a tool function that needs the subject's credentials.

        ```python
        @server.tool()
        @bootstrap.requires_credentials
        async def search(query: str, credentials: dict[str, str]) -> str: ...
        ```

        The parameter `param` receives the decrypted credentials and is left out of the tool's
        input schema. Until the session's subject is configured the tool answers an `isError`
        result "not configured: open <url>". Works on sync and async functions (a sync one runs
        in the event loop: keep it quick).
        """

        def decorate(fn: Callable[..., Any]) -> ToolFunction:
            return self._wrap(fn, param)

        return decorate(fn) if fn is not None else decorate

    def _wrap(self, fn: Callable[..., Any], param: str) -> ToolFunction:
        signature = inspect.signature(fn)
        if param not in signature.parameters:
            raise TypeError(f"{fn.__qualname__} has no parameter {param!r} for the credentials")
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception as exc:  # unresolvable forward references and the like
            raise SchemaError(f"cannot read the type hints of {fn!r}: {exc}") from exc
        context_name = next(
            (name for name, tp in hints.items() if name != "return" and is_context(tp, Context)),
            None,
        )
        injected = context_name is None
        ctx_param = context_name or "_bootstrap_context"
        parameters = [p for p in signature.parameters.values() if p.name != param]
        annotations = {name: tp for name, tp in hints.items() if name != param}
        if injected:
            parameters.append(
                inspect.Parameter(ctx_param, inspect.Parameter.KEYWORD_ONLY, annotation=Context)
            )
            annotations[ctx_param] = Context
        is_async = inspect.iscoroutinefunction(fn)

        @functools.wraps(fn)
        async def wrapper(**kwargs: Any) -> Any:
            ctx = kwargs.pop(ctx_param) if injected else kwargs[ctx_param]
            kwargs[param] = await self._tool_credentials(ctx)
            result = fn(**kwargs)
            return await result if is_async else result

        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = annotations
        return wrapper

    async def _tool_credentials(self, ctx: Context) -> dict[str, Any]:
        subject = self.subject_for(ctx.subject)
        if subject is None:
            raise ToolError(
                "not configured: this server keeps credentials per user, and this session is "
                "not authenticated"
            )
        try:
            credentials = await self.credentials(subject)
        except StoreUnavailable:
            log.warning("server %r: the credential store is unavailable", self.server.name)
            raise ToolError("the credential store is unavailable; try again later") from None
        except CredentialUnreadable as exc:
            log.warning(
                "server %r: stored credentials unreadable: %s", self.server.name, exc.reason
            )
            raise ToolError(
                "the stored credentials cannot be read; ask the operator to revoke them"
            ) from None
        if credentials is None:
            raise ToolError(f"not configured: open {await self.form_url(subject)}")
        return credentials

    # ---- driving the machine ------------------------------------------------------------------

    async def _entry(self, subject: str) -> _Subject:
        entry = self._subjects.get(subject)
        if entry is None:
            entry = self._subjects.setdefault(subject, _Subject(self.limits))
        if not entry.loaded:
            async with entry.lock:
                if not entry.loaded:
                    infos = await self._vault.list_subject(self.server.name, subject)
                    if any(info.kind == self.kind for info in infos):
                        entry.machine = CredentialBootstrap(
                            self.limits, progress=BootstrapProgress(state=_State.CONFIGURED)
                        )
                    entry.loaded = True
        return entry

    def _sync_if_idle(self, subject: str, entry: _Subject, *, exists: bool) -> None:
        """Align an idle machine with the vault, which other nodes and the CLI also write
        (a machine busy with a submission is left alone: its own outcome will tell)."""
        try:
            entry.lock.acquire_nowait()
        except anyio.WouldBlock:
            return
        try:
            state = entry.machine.state
            if exists and state in (_State.UNCONFIGURED, _State.FAILED):
                entry.machine = CredentialBootstrap(
                    self.limits, progress=BootstrapProgress(state=_State.CONFIGURED)
                )
            elif not exists and state is _State.CONFIGURED:
                self._apply(subject, entry, entry.machine.handle(Revoked()))
        finally:
            entry.lock.release()

    def _expire_if_due(self, subject: str, entry: _Subject, now: float) -> str | None:
        """Fire `Expired` on an open page whose deadline passed; the failure reason, or None."""
        machine = entry.machine
        deadline = machine.deadline
        if machine.state not in _PAGES or deadline is None or now < deadline:
            return None
        reason = "the page expired"
        for effect in machine.handle(Expired(at=now)):
            if isinstance(effect, DiscardSecrets):
                entry.discard()
            elif isinstance(effect, ShowFailure):
                reason = effect.reason
        log.info("server %r: relay page expired", self.server.name)
        return reason[:1].upper() + reason[1:]

    def _apply(
        self, subject: str, entry: _Subject, effects: list[Any], *, action: str = ""
    ) -> HttpResponse | None:
        """Perform effects that need no I/O beyond notifying; a page for `RenderForm`."""
        response = None
        for effect in effects:
            if isinstance(effect, DiscardSecrets):
                entry.discard()
            elif isinstance(effect, NotifyToolsChanged):
                self._notify(subject)
            elif isinstance(effect, RenderForm):
                response = self._form(entry, action, self._clock.now())
        return response

    async def _drive(
        self,
        subject: str,
        entry: _Subject,
        effects: list[Any],
        action: str,
        *,
        shown: Mapping[str, str],
    ) -> HttpResponse:
        """Perform the effects of an accepted submission, feeding each outcome back."""
        machine = entry.machine
        pending = deque(effects)
        error: str | None = None
        failure: ShowFailure | None = None
        failure_status = 422
        response: HttpResponse | None = None
        while pending:
            effect = pending.popleft()
            if isinstance(effect, RunValidation):
                event = await self._run_validation(entry, effect)
                if isinstance(event, Expired):
                    failure_status = 504
                pending.extend(machine.handle(event))
            elif isinstance(effect, PersistCredentials):
                stored = await self._persist(subject, entry)
                if isinstance(stored, StoreFailed):
                    failure_status = 503
                pending.extend(machine.handle(stored))
            elif isinstance(effect, ShowError):
                error = effect.reason
            elif isinstance(effect, ShowFailure):
                failure = effect
            elif isinstance(effect, RenderForm):
                now = self._clock.now()
                if error is not None:
                    response = self._form(entry, action, now, error=error, values=shown, status=422)
                else:
                    response = self._form(entry, action, now)
            else:
                self._apply(subject, entry, [effect])
        if machine.state is _State.CONFIGURED:
            log.info("server %r: credentials stored, subject configured", self.server.name)
            return self._notice(
                "success",
                "Connected",
                f"{self.display_name} has your credentials. You can close this window and go "
                "back to your client.",
            )
        if failure is not None:
            now = self._clock.now()
            retry = failure.retry_at - now if failure.retry_at is not None else None
            return self._notice(
                "failure",
                "Could not connect",
                _sentence(failure.reason),
                status=failure_status,
                retry_after=retry if retry is not None and retry > 0 else None,
                link=(action, "Start again"),
            )
        assert response is not None, f"no page for state {machine.state.value}"
        return response

    async def _run_validation(
        self, entry: _Subject, effect: RunValidation
    ) -> ValidationSucceeded | ValidationFailed | StepRequested | Expired:
        values = dict(entry.values)
        outcome: object = None
        with anyio.move_on_after(self.limits.validation_timeout) as scope:
            try:
                outcome = await self._validate(values, effect.step)
            except Exception as exc:
                # Only the type: the message of a validator's exception may quote a value.
                log.warning(
                    "server %r: the validator raised %s", self.server.name, type(exc).__name__
                )
                outcome = Rejected(reason="the credentials could not be checked; try again")
        now = self._clock.now()
        if scope.cancelled_caught:
            log.warning(
                "server %r: the validator took longer than %.0f s",
                self.server.name,
                self.limits.validation_timeout,
            )
            # Our timer says the deadline passed, whatever the injected clock reads.
            return Expired(at=max(now, effect.expires_at))
        if isinstance(outcome, Accepted):
            entry.accepted = dict(outcome.data) if outcome.data is not None else values
            return ValidationSucceeded()
        if isinstance(outcome, StepRequired):
            entry.step_fields = outcome.fields
            entry.prompt = outcome.prompt
            log.info("server %r: the validator asked for step %r", self.server.name, outcome.step)
            return StepRequested(step=outcome.step, nonce=self._nonce(), at=now)
        if not isinstance(outcome, Rejected):
            log.error(
                "server %r: the validator returned %s, not Accepted, StepRequired or Rejected",
                self.server.name,
                type(outcome).__name__,
            )
            outcome = Rejected(reason="the credentials could not be checked", retryable=False)
        self._count_failure(entry, now)
        log.info(
            "server %r: the validator refused (%s)",
            self.server.name,
            "retryable" if outcome.retryable else "definitive",
        )
        return ValidationFailed(retryable=outcome.retryable, reason=outcome.reason, at=now)

    async def _persist(self, subject: str, entry: _Subject) -> CredentialsStored | StoreFailed:
        data = entry.accepted if entry.accepted is not None else entry.values
        name = self.server.name
        try:
            infos = await self._vault.list_subject(name, subject)
            current = next((info.version for info in infos if info.kind == self.kind), None)
            await self._vault.put(name, subject, self.kind, data, expected_version=current)
        except VersionConflict:
            log.warning("server %r: credentials changed while being stored", name)
            return StoreFailed(reason="the credentials changed meanwhile; try again")
        except StoreUnavailable:
            log.warning("server %r: the credential store is unavailable", name)
            return StoreFailed(reason="the credential store is unavailable; try again later")
        except Exception as exc:
            log.error("server %r: storing credentials failed: %s", name, type(exc).__name__)
            return StoreFailed(reason="the credentials could not be stored")
        return CredentialsStored()

    def _notify(self, subject: str) -> None:
        sent = self.server.notify_subject_list_changed(subject, "tools")
        if subject == self.anonymous_subject:
            sent += self.server.notify_subject_list_changed(None, "tools")
        log.debug("server %r: tools/list_changed sent to %d sessions", self.server.name, sent)

    # ---- failures and pages -------------------------------------------------------------------

    def _count_failure(self, entry: _Subject, now: float) -> None:
        limit = self.failure_limit
        failures = entry.failures
        failures.append(now)
        while failures and failures[0] <= now - limit.window:
            failures.popleft()
        if len(failures) >= limit.max_failures:
            entry.blocked_until = now + limit.cooldown
            failures.clear()
            log.warning(
                "server %r: too many failed submissions; form closed for %.0f s",
                self.server.name,
                limit.cooldown,
            )

    def _blocked_for(self, entry: _Subject, now: float) -> float | None:
        if entry.blocked_until is None:
            return None
        if now >= entry.blocked_until:
            entry.blocked_until = None
            return None
        return entry.blocked_until - now

    def _refused(self, entry: _Subject, action: str, now: float) -> HttpResponse:
        self._count_failure(entry, now)
        log.info("server %r: a post with a wrong or used nonce was refused", self.server.name)
        return self._notice(
            "error",
            "This form is no longer valid",
            "It was already used, replaced by a newer one, or did not come from this server.",
            status=403,
            link=(action, "Open the current form"),
        )

    def _too_many(self, action: str, blocked: float) -> HttpResponse:
        return self._notice(
            "failure",
            "Too many attempts",
            "There were too many failed attempts.",
            status=429,
            retry_after=blocked,
            link=(action, "Start again"),
        )

    def _form(
        self,
        entry: _Subject,
        action: str,
        now: float,
        *,
        error: str | None = None,
        values: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> HttpResponse:
        machine = entry.machine
        assert machine.nonce is not None
        on_step = machine.step is not None
        fields = entry.step_fields if on_step and entry.step_fields else self.fields
        expires_at = machine.page_expires_at
        page = FormPage(
            server=self.display_name,
            action=action,
            nonce=machine.nonce,
            fields=fields,
            step=machine.step,
            prompt=entry.prompt if on_step else None,
            error=_sentence(error) if error is not None else None,
            values=values or {},
            attempts_left=machine.attempts_left,
            expires_in=expires_at - now if expires_at is not None else None,
        )
        return render_form(page, status=status)

    def _notice(
        self,
        kind: Any,
        heading: str,
        message: str,
        *,
        status: int = 200,
        link: tuple[str, str] | None = None,
        retry_after: float | None = None,
    ) -> HttpResponse:
        notice = Notice(
            server=self.display_name,
            kind=kind,
            heading=heading,
            message=message,
            link=link,
            retry_after=retry_after,
        )
        return render_notice(notice, status=status)

    def _nonce(self) -> str:
        return base64.urlsafe_b64encode(self._random.token(NONCE_BYTES)).rstrip(b"=").decode()


def _same_nonce(held: str | None, given: str) -> bool:
    if held is None:
        return False
    return hmac.compare_digest(
        held.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
