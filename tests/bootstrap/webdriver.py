"""A minimal W3C WebDriver client on httpx, for driving Debian's chromedriver in tests.

Only what the relay form's browser test needs: start chromedriver on 127.0.0.1, open a
headless Chromium session, navigate, find elements, type, click, read the page. Plain HTTP and
JSON (W3C WebDriver, https://www.w3.org/TR/webdriver2/), so no Selenium or websockets package.
Everything is bounded in time, and `Chromedriver.stop` kills the driver and the browsers it
started (their whole process group) whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference

# The flags the issue names: headless, no sandbox (containers run as root), nothing that
# talks to the network behind the test's back, and a fresh profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
)


def chromium_binary() -> str | None:
    # The real binary, not Debian's launcher script (which adds flags of its own).
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def chromedriver_binary() -> str | None:
    return shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebDriverError(Exception):
    pass


class Chromedriver:
    """One chromedriver process on 127.0.0.1."""

    def __init__(self, binary: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [binary, f"--port={self.port}", "--allowed-ips=127.0.0.1", "--log-level=WARNING"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills it and its browsers
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise WebDriverError(f"chromedriver exited with {self.process.returncode}")
                try:
                    if client.get(f"{self.url}/status").json()["value"]["ready"]:
                        return
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                time.sleep(0.1)
        raise WebDriverError(f"chromedriver was not ready within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # The driver is gone; browsers it left in its group go too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


class Session:
    """One browser session: `async with Session.start(driver, ...) as browser`."""

    def __init__(self, client: httpx.AsyncClient, session_id: str, profile: str) -> None:
        self._client = client
        self.id = session_id
        self._profile = profile

    @classmethod
    async def start(
        cls, driver: Chromedriver, chromium: str, *, javascript: bool = False
    ) -> Session:
        client = httpx.AsyncClient(base_url=driver.url, timeout=30.0)
        profile = tempfile.mkdtemp(prefix="mcp-core-chromium-")
        prefs: dict[str, Any] = {}
        if not javascript:
            # The relay form must work without JavaScript: prove it with JavaScript off.
            prefs["profile.managed_default_content_settings.javascript"] = 2
        capabilities = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"],
                        "prefs": prefs,
                    },
                }
            }
        }
        try:
            value = await _call(client, "POST", "/session", capabilities)
        except BaseException:
            await client.aclose()
            shutil.rmtree(profile, ignore_errors=True)
            raise
        return cls(client, value["sessionId"], profile)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(10),
            contextlib.suppress(httpx.HTTPError, WebDriverError),
        ):
            await _call(self._client, "DELETE", f"/session/{self.id}")
        await self._client.aclose()
        shutil.rmtree(self._profile, ignore_errors=True)

    async def _session(self, method: str, path: str, body: Any = None) -> Any:
        return await _call(self._client, method, f"/session/{self.id}{path}", body)

    async def get(self, url: str) -> None:
        await self._session("POST", "/url", {"url": url})

    async def source(self) -> str:
        return str(await self._session("GET", "/source"))

    async def find(self, css: str, *, timeout: float = 10.0) -> str:
        """The element matching `css`, waiting (bounded) for it to appear."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    value = await self._session(
                        "POST", "/element", {"using": "css selector", "value": css}
                    )
                    return str(value[ELEMENT])
                except WebDriverError as exc:
                    if "no such element" not in str(exc):
                        raise
                await anyio.sleep(0.1)

    async def type(self, css: str, text: str) -> None:
        element = await self.find(css)
        await self._session("POST", f"/element/{element}/value", {"text": text})

    async def click(self, css: str) -> None:
        element = await self.find(css)
        await self._session("POST", f"/element/{element}/click", {})

    async def wait_for_text(self, text: str, *, timeout: float = 10.0) -> str:
        with anyio.fail_after(timeout):
            while True:
                source = await self.source()
                if text in source:
                    return source
                await anyio.sleep(0.1)


async def _call(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    response = await client.request(method, path, json=body)
    payload = response.json()
    value = payload.get("value") if isinstance(payload, dict) else None
    if response.status_code >= 400:
        error = value.get("error") if isinstance(value, dict) else None
        message = value.get("message", "") if isinstance(value, dict) else ""
        raise WebDriverError(f"{method} {path}: {error}: {message[:500]}")
    return value
