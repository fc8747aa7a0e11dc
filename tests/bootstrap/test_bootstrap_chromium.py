"""The relay form in a real browser: headless Chromium (Debian's package, driven through
chromedriver's W3C WebDriver API) fills the form, submits, and the credential lands encrypted
in SQLite (issue 3, "Tested in a real browser").

Both modes: local relay (a loopback page opened through the `BrowserOpener` port, with an OTP
step, shut down after success) and remote relay (`RelayApp` next to the MCP endpoint under
uvicorn, for an authenticated subject). JavaScript is switched off in the browser: the page
must work without it. Everything listens on 127.0.0.1; every wait is bounded; the browser and
the driver are killed whatever happens.

Chromium and chromedriver come from `scripts/browser-tools.sh` (which `scripts/test.sh` runs).
Without them the tests are skipped with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_core.adapters.asgi.app import create_app
from mcp_core.adapters.asgi.relay import LocalRelay, RelayApp
from mcp_core.adapters.storage.sqlite import SqliteCredentialStore
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core.http.security import OriginPolicy
from mcp_core.core.services.bootstrap import Accepted, Rejected, RemoteRelay, StepRequired

from .bootstrap_testing import OTP_FIELDS, SECRET, SERVER, RecordingValidator, Rig, make_vault
from .webdriver import Chromedriver, Session, chromedriver_binary, chromium_binary

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SUBMIT = "button[type=submit]"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Chromedriver, str]]:
    chromium, chromedriver = chromium_binary(), chromedriver_binary()
    if chromium is None or chromedriver is None:
        missing = "chromium" if chromium is None else "chromedriver"
        reason = f"{missing} is not installed (run scripts/browser-tools.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    process = Chromedriver(chromedriver, log)
    try:
        process.wait_ready()
        yield process, chromium
    finally:
        process.stop()


@pytest.fixture
async def browser(driver: tuple[Chromedriver, str]) -> AsyncIterator[Session]:
    process, chromium = driver
    with anyio.fail_after(60):
        session = await Session.start(process, chromium)
    async with session:
        yield session


class Opener:
    """The `BrowserOpener` of the test: remembers the URL for the WebDriver to visit."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def open(self, url: str) -> bool:
        self.urls.append(url)
        return True


def _api_key_then_otp(values: dict[str, str], step: str | None) -> Any:
    if values.get("api_key") != SECRET:
        return Rejected(reason="the API key was refused")
    if step is None:
        return StepRequired(step="otp", fields=OTP_FIELDS, prompt="Enter the code we sent you")
    if values.get("otp") == "123456":
        return Accepted()
    return Rejected(reason="wrong code")


def _sqlite_rig(path: Path, validator: RecordingValidator, **options: Any) -> Rig:
    rig = Rig(validate=validator, store=SqliteCredentialStore(path), **options)
    # Real time and randomness: this is the whole system, as a user runs it.
    clock, random = SystemClock(), SystemRandom()
    rig.vault = make_vault(rig.store, clock, random)  # type: ignore[arg-type]
    rig.bootstrap._vault = rig.vault
    rig.bootstrap._clock = clock
    rig.bootstrap._random = random
    return rig


async def _assert_stored_encrypted(rig: Rig, subject: str, expected: dict[str, str]) -> None:
    record = await rig.store.get(SERVER, subject, "credentials")
    assert record is not None
    assert await rig.bootstrap.credentials(subject) == expected  # the vault decrypts it back
    store = rig.store
    assert isinstance(store, SqliteCredentialStore)
    await store.close()  # checkpoints the WAL into the file
    files = sorted(store.path.parent.glob(store.path.name + "*"))
    on_disk = b"".join(file.read_bytes() for file in files)
    assert record.ciphertext in on_disk
    assert SECRET.encode() not in on_disk
    assert b"acme" not in on_disk


async def test_local_relay_in_chromium_stores_the_credential_encrypted_in_sqlite(
    browser: Session, tmp_path: Path
) -> None:
    validator = RecordingValidator(_api_key_then_otp)
    opener = Opener()
    with anyio.fail_after(90):
        async with LocalRelay(opener=opener) as relay:
            rig = _sqlite_rig(tmp_path / "vault.sqlite3", validator, anonymous_subject="local")
            rig.bootstrap.relay = relay
            url = await rig.bootstrap.form_url("local")
            assert opener.urls == [url]
            assert url.startswith("http://127.0.0.1:")

            await browser.get(url)
            await browser.type("input[name=account]", "acme")
            await browser.type("input[name=api_key]", "sk-wrong-key")
            await browser.click(SUBMIT)
            refused = await browser.wait_for_text("The API key was refused.")
            assert "sk-wrong-key" not in refused  # a secret is never echoed back
            assert 'value="acme"' in refused

            await browser.type("input[name=api_key]", SECRET)
            await browser.click(SUBMIT)
            step = await browser.wait_for_text("Enter the code we sent you")
            assert SECRET not in step
            await browser.type("input[name=otp]", "123456")
            await browser.click(SUBMIT)
            done = await browser.wait_for_text("Connected")
            assert SECRET not in done

            await relay.wait_closed("local")  # the one-time page shut down after success

    assert [step for _, step in validator.calls] == [None, None, "otp"]
    expected = {"account": "acme", "api_key": SECRET, "otp": "123456"}
    await _assert_stored_encrypted(rig, "local", expected)


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


async def test_remote_relay_in_chromium_stores_the_credential_encrypted_in_sqlite(
    browser: Session, tmp_path: Path
) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    sock = _loopback_socket()
    port = sock.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    validator = RecordingValidator(lambda values, step: Accepted())
    rig = _sqlite_rig(tmp_path / "vault.sqlite3", validator, relay=RemoteRelay(origin + "/relay"))
    relay = RelayApp(
        rig.bootstrap,
        origin_policy=OriginPolicy(allowed_hosts=(f"127.0.0.1:{port}",), allowed_origins=(origin,)),
    )
    mcp = create_app(rig.server, extra_routes={"/relay": relay})

    async def signed_in(scope: Any, receive: Any, send: Any) -> None:
        # Stands in for the deployment's authentication middleware.
        if scope["type"] == "http":
            scope["mcp_core.subject"] = "alice"
        await mcp(scope, receive, send)

    config = uvicorn.Config(signed_in, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            try:
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                    await anyio.sleep(0.05)
                await browser.get(await rig.bootstrap.form_url("alice"))
                await browser.type("input[name=account]", "acme")
                await browser.type("input[name=api_key]", SECRET)
                await browser.click(SUBMIT)
                done = await browser.wait_for_text("Connected")
                assert SECRET not in done
            finally:
                server.should_exit = True
    sock.close()
    await _assert_stored_encrypted(rig, "alice", {"account": "acme", "api_key": SECRET})
