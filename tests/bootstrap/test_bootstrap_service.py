"""The credential bootstrap service on fakes: a fake clock and random source, the in-memory
credential store, the real AES-GCM adapter (issue 3, "Credential bootstrap").

It drives the bootstrap machine through the form's GET (`page`) and POST (`submit`): the form
opens under a nonce, refuses what does not carry it, validates, asks for a step, stores in the
vault, tells the right sessions, brakes guessing, and never lets a secret out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from mcp_core.core.http.relay_form import CredentialField
from mcp_core.core.machines.credential_bootstrap import BootstrapLimits, CredentialBootstrapState
from mcp_core.core.services.bootstrap import (
    Accepted,
    CredentialBootstrapService,
    FailureLimit,
    Rejected,
    RemoteRelay,
    StepRequired,
)
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer
from mcp_core.ports.credentials import StoreUnavailable

from .bootstrap_testing import (
    OTP_FIELDS,
    PASSWORD,
    RELAY_URL,
    SECRET,
    SERVER,
    WRONG_SECRET,
    RecordingValidator,
    Rig,
    accept_key,
    password_then_otp,
)

pytestmark = pytest.mark.anyio

# The `connect` fixture of tests/conftest.py: `await connect(server, ready=...)` -> a Peer.
Connect = Callable[..., Awaitable[Any]]

S = CredentialBootstrapState
PASSWORD_FIELDS = (CredentialField(name="password", label="Password"),)


# ---- the form ----------------------------------------------------------------------------------


async def test_form_opens_with_a_nonce_and_the_declared_fields(rig: Rig) -> None:
    page = await rig.open()

    assert page.status == 200
    assert page.headers["cache-control"] == "no-store"
    assert "<title>weather: credentials</title>" in page.html
    assert '<label for="f-account">Account</label>' in page.html
    assert 'name="api_key" type="password" autocomplete="off"' in page.html
    assert 'pattern="sk-[A-Za-z0-9-]+"' in page.html
    assert "Your account name" in page.html
    assert len(page.nonce) >= 43
    status = await rig.bootstrap.status("alice")
    assert status.state is S.FORM_OPEN
    assert status.attempts_left == 3


async def test_reloading_the_form_shows_the_same_page_and_nonce(rig: Rig) -> None:
    first = await rig.open()
    second = await rig.open()
    assert second.nonce == first.nonce


async def test_each_subject_has_its_own_form_and_nonce(rig: Rig) -> None:
    alice = await rig.open("alice")
    bob = await rig.open("bob")
    assert alice.nonce != bob.nonce
    refused = await rig.post("bob", nonce=alice.nonce, account="b", api_key=SECRET)
    assert refused.status == 403
    assert (await rig.bootstrap.status("bob")).attempts_left == 3


async def test_a_wrong_nonce_is_refused_and_changes_nothing() -> None:
    rig = Rig(failure_limit=FailureLimit(max_failures=100))  # the rate limit has its own test
    page = await rig.open()
    before = await rig.bootstrap.status("alice")

    for nonce in ("x" * 43, page.nonce[:-1], "", None, page.nonce + "x", "é" * 43):
        refused = await rig.post(nonce=nonce, account="a", api_key=SECRET)
        assert refused.status == 403, nonce
        assert "This form is no longer valid" in refused.html

    assert await rig.bootstrap.status("alice") == before
    assert isinstance(rig.validator, RecordingValidator)
    assert rig.validator.calls == []
    assert await rig.vault.list_subject(SERVER, "alice") == []


async def test_a_post_without_an_open_form_is_refused(rig: Rig) -> None:
    refused = await rig.post(nonce="n" * 43, account="a", api_key=SECRET)
    assert refused.status == 403
    assert (await rig.bootstrap.status("alice")).state is S.UNCONFIGURED


async def test_the_right_nonce_stores_the_credentials_encrypted(rig: Rig) -> None:
    page = await rig.open()
    done = await rig.post(nonce=page.nonce, account="acme", api_key=SECRET)

    assert done.status == 200
    assert "Connected" in done.html
    assert (await rig.bootstrap.status("alice")).configured
    assert await rig.bootstrap.credentials("alice") == {"account": "acme", "api_key": SECRET}
    record = await rig.store.get(SERVER, "alice", "credentials")
    assert record is not None
    assert SECRET.encode() not in record.ciphertext
    assert b"acme" not in record.ciphertext


async def test_a_used_nonce_cannot_be_posted_again(rig: Rig) -> None:
    page = await rig.open()
    assert (await rig.post(nonce=page.nonce, account="a", api_key=SECRET)).status == 200
    replay = await rig.post(nonce=page.nonce, account="evil", api_key="sk-evil")
    assert replay.status == 403
    assert await rig.bootstrap.credentials("alice") == {"account": "a", "api_key": SECRET}


async def test_a_field_problem_re_renders_the_form_without_spending_an_attempt(rig: Rig) -> None:
    page = await rig.open()
    again = await rig.post(nonce=page.nonce, account="acme", api_key="not-a-key")

    assert again.status == 422
    assert "API key does not have the expected format" in again.html
    assert again.nonce == page.nonce
    assert 'value="acme"' in again.html  # the non-secret value is kept
    assert "not-a-key" not in again.html  # the secret one is not
    assert (await rig.bootstrap.status("alice")).attempts_left == 3
    missing = await rig.post(nonce=page.nonce, account="acme", api_key="")
    assert "API key is required" in missing.html


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"a=b", 415),
        ("application/x-www-form-urlencoded; charset=latin-1", b"a=b", 415),
        ("application/x-www-form-urlencoded", b"a=" + b"x" * 20_000, 413),
        ("application/x-www-form-urlencoded", b"a=%ff", 400),
        ("application/x-www-form-urlencoded", b"a=1&a=2", 400),
        ("application/x-www-form-urlencoded", b"a=%00", 400),
    ],
)
async def test_bad_bodies_get_a_clear_error_and_change_nothing(
    rig: Rig, content_type: str, body: bytes, status: int
) -> None:
    await rig.open()
    before = await rig.bootstrap.status("alice")
    response = await rig.bootstrap.submit("alice", "/relay", body, content_type)
    assert response.status == status
    assert await rig.bootstrap.status("alice") == before


async def test_a_field_the_form_does_not_have_is_refused(rig: Rig) -> None:
    page = await rig.open()
    refused = await rig.post(nonce=page.nonce, account="a", api_key=SECRET, extra="1")
    assert refused.status == 400
    assert "the form has no field &#x27;extra&#x27;" in refused.html


# ---- secrets -----------------------------------------------------------------------------------


async def test_secrets_never_reach_logs_pages_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def validate(values: dict[str, str], step: str | None) -> Any:
        if values["api_key"] == WRONG_SECRET:
            raise ValueError(f"the backend refused {values['api_key']}")  # a careless validator
        return accept_key(values, step)

    rig = Rig(validate=validate)
    page = await rig.open()
    failed = await rig.post(nonce=page.nonce, account="acme", api_key=WRONG_SECRET)
    assert failed.status == 422
    assert "could not be checked" in failed.html
    done = await rig.post(nonce=page.nonce, account="acme", api_key=SECRET)
    assert done.status == 200

    pages = failed.html + done.html + (await rig.open()).html
    seen = [caplog.text, pages, repr(rig.bootstrap), repr(rig.vault), repr(rig.bootstrap.__dict__)]
    for secret in (SECRET, WRONG_SECRET):
        for text in seen:
            assert secret not in text
    assert page.nonce not in caplog.text  # nor is the CSRF nonce
    assert "ValueError" in caplog.text  # the failure is logged, by type


async def test_submitted_values_are_discarded_when_the_bootstrap_ends() -> None:
    rig = Rig(validate=RecordingValidator(password_then_otp), fields=PASSWORD_FIELDS)
    page = await rig.open()
    await rig.post(nonce=page.nonce, password=PASSWORD)
    entry = rig.bootstrap._subjects["alice"]
    assert entry.values == {"password": PASSWORD}  # held for the step, in memory only
    rig.clock.advance(rig.bootstrap.limits.step_lifetime)
    assert await rig.bootstrap.sweep() == 1
    assert entry.values == {}
    assert (await rig.bootstrap.status("alice")).state is S.FAILED


# ---- the step loop -----------------------------------------------------------------------------


async def test_a_password_then_an_otp_step_stores_what_the_validator_returns() -> None:
    validator = RecordingValidator(password_then_otp)
    rig = Rig(validate=validator, fields=PASSWORD_FIELDS)
    page = await rig.open()

    step = await rig.post(nonce=page.nonce, password=PASSWORD)
    assert step.status == 200
    assert "one more step" in step.html
    assert "Enter the code from your app" in step.html
    assert 'name="otp" type="text"' in step.html
    assert 'name="password"' not in step.html
    assert step.nonce != page.nonce
    assert (await rig.bootstrap.status("alice")).step == "otp"

    # The form's nonce is spent; the step has its own.
    assert (await rig.post(nonce=page.nonce, otp="123456")).status == 403
    wrong = await rig.post(nonce=step.nonce, otp="000000")
    assert wrong.status == 422
    assert "Wrong code." in wrong.html
    assert wrong.nonce == step.nonce
    assert "2 attempts left" in wrong.html
    done = await rig.post(nonce=step.nonce, otp="123456")
    assert done.status == 200

    assert validator.calls == [
        ({"password": PASSWORD}, None),
        ({"password": PASSWORD, "otp": "000000"}, "otp"),
        ({"password": PASSWORD, "otp": "123456"}, "otp"),
    ]
    assert await rig.bootstrap.credentials("alice") == {"token": "tok-from-otp"}


async def test_steps_are_bounded() -> None:
    endless = StepRequired(step="again", fields=OTP_FIELDS, prompt="once more")
    rig = Rig(
        validate=RecordingValidator(endless),
        fields=PASSWORD_FIELDS,
        limits=BootstrapLimits(max_steps=2),
    )
    page = await rig.open()
    step = await rig.post(nonce=page.nonce, password=PASSWORD)
    step = await rig.post(nonce=step.nonce, otp="111111")
    assert step.status == 200
    failed = await rig.post(nonce=step.nonce, otp="222222")
    assert failed.status == 422
    assert "Too many steps." in failed.html
    assert (await rig.bootstrap.status("alice")).state is S.FAILED


# ---- attempts, cooldowns and the rate limit ---------------------------------------------------


async def test_attempts_are_bounded_then_a_cooldown_applies() -> None:
    limits = BootstrapLimits(max_attempts=2, cooldown=300.0)
    rig = Rig(limits=limits)
    page = await rig.open()
    first = await rig.post(nonce=page.nonce, account="a", api_key="sk-wrong1")
    assert first.status == 422
    assert "The API key was refused." in first.html
    assert "1 attempt left" in first.html
    last = await rig.post(nonce=page.nonce, account="a", api_key="sk-wrong2")
    assert last.status == 422
    assert "The API key was refused (no attempts left)." in last.html
    assert last.headers["retry-after"] == "300"

    status = await rig.bootstrap.status("alice")
    assert status.state is S.FAILED
    assert status.retry_in == 300.0
    assert (await rig.open()).status == 429
    rig.clock.advance(300.0)
    reopened = await rig.open()
    assert reopened.status == 200
    assert reopened.nonce != page.nonce


async def test_a_definitive_refusal_fails_at_once() -> None:
    rig = Rig(validate=RecordingValidator(Rejected(reason="account closed", retryable=False)))
    page = await rig.open()
    failed = await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    assert failed.status == 422
    assert "Account closed." in failed.html
    assert (await rig.bootstrap.status("alice")).state is S.FAILED


async def test_repeated_failures_close_the_form_to_that_subject_for_a_while() -> None:
    rig = Rig(failure_limit=FailureLimit(max_failures=3, window=60.0, cooldown=120.0))
    page = await rig.open()
    for _ in range(3):
        assert (await rig.post(nonce="forged" * 8, account="a", api_key=SECRET)).status == 403

    blocked = await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    assert blocked.status == 429
    assert blocked.headers["retry-after"] == "120"
    assert (await rig.open()).status == 429
    assert (await rig.bootstrap.status("alice")).retry_in == 120.0
    assert (await rig.open("bob")).status == 200  # only that subject

    rig.clock.advance(120.0)
    # The form itself outlived the cooldown? No: 900 s lifetime, 120 s passed.
    done = await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    assert done.status == 200


async def test_failures_outside_the_window_are_forgotten() -> None:
    rig = Rig(failure_limit=FailureLimit(max_failures=2, window=10.0, cooldown=100.0))
    page = await rig.open()
    assert (await rig.post(nonce="forged" * 8, account="a", api_key=SECRET)).status == 403
    rig.clock.advance(11.0)
    assert (await rig.post(nonce="forged" * 8, account="a", api_key=SECRET)).status == 403
    assert (await rig.post(nonce=page.nonce, account="a", api_key=SECRET)).status == 200


# ---- time --------------------------------------------------------------------------------------


async def test_an_expired_form_is_refused_and_a_new_one_opens() -> None:
    rig = Rig(limits=BootstrapLimits(form_lifetime=60.0))
    page = await rig.open()
    rig.clock.advance(60.0)
    expired = await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    assert expired.status == 410
    assert "The form expired." in expired.html
    assert await rig.vault.list_subject(SERVER, "alice") == []
    fresh = await rig.open()
    assert fresh.status == 200
    assert fresh.nonce != page.nonce


async def test_a_validator_that_overruns_fails_the_bootstrap() -> None:
    async def slow(values: dict[str, str], step: str | None) -> Any:
        await anyio.sleep(5)
        return Accepted()

    rig = Rig(validate=slow, limits=BootstrapLimits(validation_timeout=0.05))
    page = await rig.open()
    with anyio.fail_after(2):
        failed = await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    assert failed.status == 504
    assert "Validation timed out." in failed.html
    assert (await rig.bootstrap.status("alice")).state is S.FAILED
    assert (await rig.open()).status == 200  # no cooldown after a timeout


# ---- the store ---------------------------------------------------------------------------------


class DownStore:
    """A credential store whose writes fail."""

    def __init__(self) -> None:
        from mcp_core.adapters.storage.memory import InMemoryCredentialStore

        self.inner = InMemoryCredentialStore()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, record: Any, *, expected_version: int | None) -> Any:
        raise StoreUnavailable("down")


async def test_a_failed_write_is_not_configured() -> None:
    rig = Rig(store=DownStore())  # type: ignore[arg-type]
    page = await rig.open()
    failed = await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    assert failed.status == 503
    assert "The credential store is unavailable; try again later." in failed.html
    status = await rig.bootstrap.status("alice")
    assert status.state is S.FAILED
    assert status.retry_in is None


async def test_credentials_already_in_the_vault_count_as_configured() -> None:
    first = Rig()
    await first.vault.put(
        SERVER, "alice", "credentials", {"api_key": SECRET}, expected_version=None
    )
    again = CredentialBootstrapService(
        first.server,
        vault=first.vault,
        fields=first.bootstrap.fields,
        validate=RecordingValidator(),
        relay=RemoteRelay(RELAY_URL),
        clock=first.clock,
        random=first.random,
    )
    assert (await again.status("alice")).configured
    assert await again.credentials("alice") == {"api_key": SECRET}
    page = await again.page("alice", "/relay")
    assert page.status == 200
    assert b"Already connected" in page.body


async def test_credentials_deleted_elsewhere_unconfigure_the_subject(
    rig: Rig, connect: Connect
) -> None:
    rig.server.add_tool(lambda: "ok", name="noop")
    peer = await connect(rig.server)
    peer.session.subject = "alice"
    page = await rig.open()
    await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    peer.standalone.sent.clear()

    await rig.vault.delete(SERVER, "alice", "credentials")  # `mcp-core vault delete`
    assert await rig.bootstrap.credentials("alice") is None
    assert (await rig.bootstrap.status("alice")).state is S.UNCONFIGURED
    assert peer.standalone.methods() == ["notifications/tools/list_changed"]


# ---- revoke and list_changed -------------------------------------------------------------------


async def test_list_changed_goes_to_exactly_that_subjects_ready_sessions(
    rig: Rig, connect: Connect
) -> None:
    rig.server.add_tool(lambda: "ok", name="noop")
    alice = await connect(rig.server)
    alice_too = await connect(rig.server)
    alice_new = await connect(rig.server, ready=False)
    bob = await connect(rig.server)
    anonymous = await connect(rig.server)
    for peer in (alice, alice_too, alice_new):
        peer.session.subject = "alice"
    bob.session.subject = "bob"

    page = await rig.open()
    await rig.post(nonce=page.nonce, account="a", api_key=SECRET)

    assert alice.standalone.methods() == ["notifications/tools/list_changed"]
    assert alice_too.standalone.methods() == ["notifications/tools/list_changed"]
    assert alice_new.standalone.sent == []
    assert bob.standalone.sent == []
    assert anonymous.standalone.sent == []


async def test_revoke_deletes_and_tells_the_subjects_sessions(rig: Rig, connect: Connect) -> None:
    rig.server.add_tool(lambda: "ok", name="noop")
    alice = await connect(rig.server)
    alice.session.subject = "alice"
    page = await rig.open()
    await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    alice.standalone.sent.clear()

    assert await rig.bootstrap.revoke("alice") is True
    assert await rig.bootstrap.credentials("alice") is None
    assert await rig.store.get(SERVER, "alice", "credentials") is None
    assert (await rig.bootstrap.status("alice")).state is S.UNCONFIGURED
    assert alice.standalone.methods() == ["notifications/tools/list_changed"]
    assert await rig.bootstrap.revoke("alice") is False
    reopened = await rig.open()
    assert reopened.status == 200


async def test_the_anonymous_subject_is_the_sessions_without_one(connect: Connect) -> None:
    rig = Rig(anonymous_subject="local")
    rig.server.add_tool(lambda: "ok", name="noop")
    stdio_like = await connect(rig.server)
    other = await connect(rig.server)
    other.session.subject = "bob"
    page = await rig.open("local")
    await rig.post("local", nonce=page.nonce, account="a", api_key=SECRET)
    assert stdio_like.standalone.methods() == ["notifications/tools/list_changed"]
    assert other.standalone.sent == []
    assert rig.bootstrap.subject_for(None) == "local"
    assert rig.bootstrap.subject_for("bob") == "bob"


# ---- tools that need credentials ---------------------------------------------------------------


def _tool_server(rig: Rig) -> None:
    @rig.server.tool()
    @rig.bootstrap.requires_credentials
    async def forecast(city: str, credentials: dict[str, str]) -> str:
        """The forecast, fetched with the user's key."""
        return f"{city}: sunny (account {credentials['account']})"


async def test_a_tool_answers_not_configured_with_the_form_url(rig: Rig, connect: Connect) -> None:
    _tool_server(rig)
    peer = await connect(rig.server)
    peer.session.subject = "alice"

    result = await peer.call_tool("forecast", {"city": "Oslo"})
    assert result == {
        "content": [{"type": "text", "text": f"not configured: open {RELAY_URL}"}],
        "isError": True,
    }
    assert isinstance(rig.relay, object)
    assert rig.relay.presented == ["alice"]  # type: ignore[attr-defined]

    page = await rig.open()
    await rig.post(nonce=page.nonce, account="acme", api_key=SECRET)
    assert peer.standalone.methods() == ["notifications/tools/list_changed"]
    result = await peer.call_tool("forecast", {"city": "Oslo"})
    assert result == {
        "content": [{"type": "text", "text": "Oslo: sunny (account acme)"}],
        "isError": False,
    }


async def test_the_credentials_parameter_stays_out_of_the_tool_schema(
    rig: Rig, connect: Connect
) -> None:
    _tool_server(rig)
    peer = await connect(rig.server)
    listed = await peer.result("tools/list")
    (tool,) = listed["tools"]
    assert tool["name"] == "forecast"
    assert tool["description"] == "The forecast, fetched with the user's key."
    assert tool["inputSchema"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }


async def test_a_tool_of_an_unauthenticated_session_says_so(rig: Rig, connect: Connect) -> None:
    _tool_server(rig)
    peer = await connect(rig.server)  # no subject, and no anonymous subject
    result = await peer.call_tool("forecast", {"city": "Oslo"})
    assert result["isError"] is True
    assert "not authenticated" in result["content"][0]["text"]
    assert rig.relay.presented == []  # type: ignore[attr-defined]


async def test_a_sync_tool_with_its_own_context_parameter_works(connect: Connect) -> None:
    rig = Rig(anonymous_subject="local")

    @rig.server.tool()
    @rig.bootstrap.requires_credentials(param="creds")
    def whoami(ctx: Context, creds: dict[str, str]) -> str:
        return f"{ctx.subject}:{creds['account']}"

    peer = await connect(rig.server)
    denied = await peer.call_tool("whoami")
    assert denied["content"][0]["text"] == f"not configured: open {RELAY_URL}"
    page = await rig.open("local")
    await rig.post("local", nonce=page.nonce, account="acme", api_key=SECRET)
    assert (await peer.call_tool("whoami"))["content"][0]["text"] == "None:acme"


def test_requires_credentials_needs_the_parameter(rig: Rig) -> None:
    def no_param(city: str) -> str:
        return city

    with pytest.raises(TypeError, match="no parameter 'credentials'"):
        rig.bootstrap.requires_credentials(no_param)


# ---- the validator's answers -------------------------------------------------------------------


def test_outcomes_validate_themselves() -> None:
    with pytest.raises(ValueError, match="step"):
        StepRequired(step="", fields=OTP_FIELDS, prompt="p")
    with pytest.raises(ValueError, match="at least one field"):
        StepRequired(step="otp", fields=(), prompt="p")
    with pytest.raises(ValueError, match="reason"):
        Rejected(reason="")
    assert SECRET not in repr(Accepted(data={"k": SECRET}))
    with pytest.raises(ValueError, match="unique"):
        Rig(fields=(CredentialField(name="a", label="A"), CredentialField(name="a", label="B")))
    with pytest.raises(ValueError, match="http"):
        RemoteRelay("javascript:alert(1)")
    with pytest.raises(ValueError, match="FailureLimit"):
        FailureLimit(max_failures=0)


async def test_a_validator_answer_of_the_wrong_type_is_a_definitive_refusal() -> None:
    async def confused(values: dict[str, str], step: str | None) -> Any:
        return True

    rig = Rig(validate=confused)
    page = await rig.open()
    failed = await rig.post(nonce=page.nonce, account="a", api_key=SECRET)
    assert failed.status == 422
    assert (await rig.bootstrap.status("alice")).state is S.FAILED


async def test_the_server_title_names_the_form() -> None:
    rig = Rig(server=McpServer(SERVER, title="Weather <Pro>"))
    page = await rig.open()
    assert "Connect Weather &lt;Pro&gt;" in page.html
