"""Test doubles and builders for the credential bootstrap tests: a fake clock and random source,
a relay and a browser opener that record, a validator that records what it was given, and a
service wired on the in-memory store with the real AES-GCM adapter."""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcp_core.adapters.crypto import CryptographyAead, CryptographyKdf
from mcp_core.adapters.storage.memory import InMemoryCredentialStore
from mcp_core.core.http.relay_form import NONCE_FIELD, CredentialField
from mcp_core.core.machines.credential_bootstrap import BootstrapLimits
from mcp_core.core.services.bootstrap import (
    Accepted,
    CredentialBootstrapService,
    FailureLimit,
    FormRelay,
    Outcome,
    Rejected,
    StepRequired,
)
from mcp_core.core.services.server import McpServer
from mcp_core.core.services.vault import Vault
from mcp_core.core.vault.keys import Keyring, MasterKey
from mcp_core.ports.credentials import CredentialStore

SERVER = "weather"
RELAY_URL = "https://mcp.example/relay"
# Distinctive values, so a test can look for them anywhere.
SECRET = "sk-SECRET-4f1d9c2a-never-shown"
WRONG_SECRET = "sk-WRONG-77aa01-never-shown"
PASSWORD = "hunter2-PASSWORD-e5b7"
KEY = bytes(range(0x40, 0x60))

API_FIELDS = (
    CredentialField(name="account", label="Account", secret=False, help="Your account name"),
    CredentialField(name="api_key", label="API key", pattern="sk-[A-Za-z0-9-]+"),
)
OTP_FIELDS = (CredentialField(name="otp", label="One-time code", secret=False, pattern="[0-9]{6}"),)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeRandom:
    """Distinct, predictable bytes (a counter); enough for nonces that must differ."""

    def __init__(self) -> None:
        self.calls = 0

    def token(self, nbytes: int) -> bytes:
        self.calls += 1
        return self.calls.to_bytes(nbytes, "big")


class RecordingRelay:
    """A `FormRelay` that answers a fixed URL and records who asked."""

    def __init__(self, url: str = RELAY_URL) -> None:
        self.url = url
        self.presented: list[str] = []

    async def present(self, bootstrap: CredentialBootstrapService, subject: str) -> str:
        self.presented.append(subject)
        return self.url


class RecordingValidator:
    """Answers from a script, one outcome per call (the last one repeats), and records calls."""

    def __init__(self, *outcomes: Outcome | Callable[[dict[str, str], str | None], Outcome]):
        self.outcomes = list(outcomes) or [Accepted()]
        self.calls: list[tuple[dict[str, str], str | None]] = []

    async def __call__(self, values: dict[str, str], step: str | None) -> Outcome:
        self.calls.append((dict(values), step))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        return outcome(values, step) if callable(outcome) else outcome


def accept_key(values: dict[str, str], step: str | None) -> Outcome:
    """The API key is good only when it is `SECRET`."""
    if values.get("api_key") == SECRET:
        return Accepted()
    return Rejected(reason="the API key was refused")


def password_then_otp(values: dict[str, str], step: str | None) -> Outcome:
    """A password, then a six-digit code; the code 123456 gets a token stored (not the password)."""
    if step is None:
        if values.get("password") != PASSWORD:
            return Rejected(reason="wrong password")
        return StepRequired(step="otp", fields=OTP_FIELDS, prompt="Enter the code from your app")
    if values.get("otp") == "123456" and values.get("password") == PASSWORD:
        return Accepted(data={"token": "tok-from-otp"})
    return Rejected(reason="wrong code")


def make_vault(store: CredentialStore, clock: FakeClock, random: FakeRandom) -> Vault:
    return Vault(
        store=store,
        keyring=Keyring((MasterKey.random("k1", KEY),)),
        aead=CryptographyAead(),
        kdf=CryptographyKdf(),
        random=random,
        clock=clock,
    )


class Rig:
    """A server with one bootstrap service, and everything a test looks at."""

    def __init__(
        self,
        *,
        validate: Callable[[dict[str, str], str | None], Awaitable[Outcome]] | None = None,
        fields: Sequence[CredentialField] = API_FIELDS,
        limits: BootstrapLimits | None = None,
        failure_limit: FailureLimit | None = None,
        store: CredentialStore | None = None,
        relay: FormRelay | None = None,
        anonymous_subject: str | None = None,
        server: McpServer | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.random = FakeRandom()
        self.store = store if store is not None else InMemoryCredentialStore()
        self.vault = make_vault(self.store, self.clock, self.random)
        self.server = server if server is not None else McpServer(SERVER)
        self.relay = relay if relay is not None else RecordingRelay()
        self.validator = validate if validate is not None else RecordingValidator(accept_key)
        options: dict[str, Any] = {}
        if limits is not None:
            options["limits"] = limits
        if failure_limit is not None:
            options["failure_limit"] = failure_limit
        self.bootstrap = CredentialBootstrapService(
            self.server,
            vault=self.vault,
            fields=fields,
            validate=self.validator,
            relay=self.relay,
            clock=self.clock,
            random=self.random,
            anonymous_subject=anonymous_subject,
            **options,
        )

    async def open(self, subject: str = "alice") -> Page:
        response = await self.bootstrap.page(subject, "/relay")
        return Page(response.status, response.body.decode(), dict(response.headers))

    async def post(
        self,
        subject: str = "alice",
        *,
        nonce: str | None,
        content_type: str = "application/x-www-form-urlencoded",
        **values: str,
    ) -> Page:
        form = dict(values)
        if nonce is not None:
            form[NONCE_FIELD] = nonce
        response = await self.bootstrap.submit(subject, "/relay", urlencode(form), content_type)
        return Page(response.status, response.body.decode(), dict(response.headers))


class Page:
    """A response of the relay form, decoded."""

    def __init__(self, status: int, html: str, headers: dict[str, str]) -> None:
        self.status = status
        self.html = html
        self.headers = headers

    def __repr__(self) -> str:
        return f"<Page {self.status} {self.html[:200]!r}>"

    @property
    def nonce(self) -> str:
        return nonce_of(self.html)


def nonce_of(html: str) -> str:
    match = re.search(rf'name="{NONCE_FIELD}" value="([^"]*)"', html)
    assert match is not None, f"no nonce in {html[:300]!r}"
    return match.group(1)


def urlencode(form: dict[str, str]) -> bytes:
    from urllib.parse import urlencode as encode

    return encode(form).encode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
