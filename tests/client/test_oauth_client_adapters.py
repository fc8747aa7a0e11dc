"""The OAuth client's adapters: token storages (one contract, both adapters) and the redirect
receivers (loopback listener, application callback, headless)."""

from __future__ import annotations

import os
from collections.abc import Callable

import anyio
import httpx
import pytest

from mcp_core.adapters.crypto import CryptographyAead, CryptographyKdf
from mcp_core.adapters.oauth_client_receivers import (
    CallbackRedirectReceiver,
    HeadlessRedirectReceiver,
    LoopbackRedirectReceiver,
)
from mcp_core.adapters.oauth_client_storage import InMemoryTokenStorage, VaultTokenStorage
from mcp_core.adapters.storage.memory import InMemoryCredentialStore
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core.services.vault import Vault
from mcp_core.core.vault.keys import Keyring, MasterKey
from mcp_core.ports.oauth_client import (
    AuthorizationAbandonedError,
    RedirectReceiver,
    StoredGrant,
    TokenStorage,
)

from .oauth_fakes import FakeAuthorizationServer

pytestmark = pytest.mark.anyio

MCP = "https://mcp.example/mcp"
OTHER_MCP = "https://other.example/mcp"


def vault_storage() -> VaultTokenStorage:
    vault = Vault(
        store=InMemoryCredentialStore(),
        keyring=Keyring((MasterKey.random("k1", os.urandom(32)),)),
        aead=CryptographyAead(),
        kdf=CryptographyKdf(),
        random=SystemRandom(),
        clock=SystemClock(),
    )
    return VaultTokenStorage(vault)


STORAGES: dict[str, Callable[[], TokenStorage]] = {
    "memory": InMemoryTokenStorage,
    "vault": vault_storage,
}


def grant(issuer: str, resource: str = MCP, token: str = "t") -> StoredGrant:
    return StoredGrant(
        issuer=issuer,
        resource=resource,
        progress={"state": "authorized", "tokens": {"access_token": token}},
        client_secret="secret",
    )


@pytest.mark.parametrize("kind", sorted(STORAGES))
async def test_token_storage_contract(kind: str) -> None:
    storage = STORAGES[kind]()
    assert isinstance(storage, TokenStorage)
    assert await storage.find(MCP) is None
    await storage.save(grant("https://a.example"))
    await storage.save(grant("https://b.example", OTHER_MCP))
    assert await storage.load("https://a.example", MCP) == grant("https://a.example")
    # Keyed by issuer: another issuer never sees it.
    assert await storage.load("https://b.example", MCP) is None
    assert await storage.find(MCP) == grant("https://a.example")
    # Replaced, not added to (a rotated refresh token replaces the old one).
    await storage.save(grant("https://a.example", token="rotated"))
    assert await storage.load("https://a.example", MCP) == grant(
        "https://a.example", token="rotated"
    )
    await storage.delete("https://a.example", MCP)
    await storage.delete("https://a.example", MCP)  # absent: no error
    assert await storage.find(MCP) is None
    assert await storage.find(OTHER_MCP) == grant("https://b.example", OTHER_MCP)


async def test_the_vault_storage_keeps_grants_sealed() -> None:
    store = InMemoryCredentialStore()
    vault = Vault(
        store=store,
        keyring=Keyring((MasterKey.random("k1", os.urandom(32)),)),
        aead=CryptographyAead(),
        kdf=CryptographyKdf(),
        random=SystemRandom(),
        clock=SystemClock(),
    )
    storage = VaultTokenStorage(vault)
    await storage.save(grant("https://a.example", token="very-secret-token"))
    [info] = await vault.list_server("mcp-core-client")
    record = await store.get(info.server, info.subject, info.kind)
    assert record is not None
    assert b"very-secret-token" not in record.ciphertext
    assert "a.example" not in info.kind + info.subject  # names are hashes
    assert "very-secret-token" not in repr(await storage.load("https://a.example", MCP))


def test_stored_grants_refuse_malformed_json() -> None:
    with pytest.raises(ValueError, match="issuer"):
        StoredGrant.from_json({"resource": MCP, "progress": {}})
    assert StoredGrant.from_json(grant("https://a.example").to_json()) == grant("https://a.example")


# ---- receivers ----


async def test_the_headless_receiver_reads_the_redirect_it_does_not_follow() -> None:
    server = FakeAuthorizationServer()
    receiver = HeadlessRedirectReceiver(server, redirect_uri="http://127.0.0.1:9/cb")
    assert isinstance(receiver, RedirectReceiver)
    params = await receiver.authorize(
        "https://as.example/authorize?client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb"
        "&state=s-1&code_challenge=x"
    )
    assert params["state"] == "s-1"
    assert params["code"].startswith("code-")
    assert all(url.startswith("https://as.example/") for _, url in server.requests)


async def test_the_headless_receiver_gives_up_on_a_login_page() -> None:
    server = FakeAuthorizationServer()
    receiver = HeadlessRedirectReceiver(server, redirect_uri="http://127.0.0.1:9/cb")
    with pytest.raises(AuthorizationAbandonedError, match="HTTP 404"):
        await receiver.authorize("https://as.example/login")


async def test_the_callback_receiver_waits_for_the_application() -> None:
    shown: list[str] = []
    ready = anyio.Event()

    async def show(url: str) -> None:
        shown.append(url)
        ready.set()

    receiver = CallbackRedirectReceiver("https://app.example/cb", show, timeout=5)
    result: dict[str, str] = {}

    async def authorize() -> None:
        result.update(await receiver.authorize("https://as.example/authorize?x=1"))

    async with anyio.create_task_group() as group:
        group.start_soon(authorize)
        await ready.wait()
        assert receiver.waiting
        receiver.complete("https://app.example/cb?code=abc&state=s")
    assert shown == ["https://as.example/authorize?x=1"]
    assert result == {"code": "abc", "state": "s"}
    with pytest.raises(ValueError, match="no authorization is waiting"):
        receiver.complete("code=late")


async def test_the_callback_receiver_refuses_a_forged_state_and_keeps_waiting() -> None:
    ready = anyio.Event()
    receiver = CallbackRedirectReceiver("https://app.example/cb", lambda url: ready.set())
    result: dict[str, str] = {}

    async def authorize() -> None:
        result.update(await receiver.authorize("https://as.example/authorize?state=s-9"))

    async with anyio.create_task_group() as group:
        group.start_soon(authorize)
        await ready.wait()
        for forged in ("code=evil&state=forged", "code=evil", "?error=access_denied&state=s-"):
            with pytest.raises(ValueError, match="state does not match"):
                receiver.complete(forged)
            assert receiver.waiting
        receiver.complete("https://app.example/cb?code=abc&state=s-9")
    assert result == {"code": "abc", "state": "s-9"}


async def test_the_callback_receiver_times_out() -> None:
    receiver = CallbackRedirectReceiver("https://app.example/cb", lambda url: None, timeout=0.05)
    with pytest.raises(AuthorizationAbandonedError, match="no redirect arrived"):
        await receiver.authorize("https://as.example/authorize")


class BrowserThatFollows:
    """A `BrowserOpener` whose 'user' hits the `queries` on the callback path in order (a
    stray path first, and whatever forged callbacks a local attacker sent before the real one)."""

    def __init__(self, redirect: Callable[[], str], *queries: str) -> None:
        self.redirect = redirect
        self.queries = queries or ("code=c1&state=s1&iss=x",)
        self.opened: list[str] = []
        self.statuses: list[int] = []

    def open(self, url: str) -> bool:
        self.opened.append(url)
        with httpx.Client(timeout=5) as http:
            base = self.redirect().rsplit("/", 1)[0]
            self.statuses.append(http.get(f"{base}/favicon.ico").status_code)
            for query in self.queries:
                self.statuses.append(http.get(f"{self.redirect()}?{query}").status_code)
        return True


async def test_the_loopback_receiver_answers_the_callback_on_loopback_only() -> None:
    holder: list[LoopbackRedirectReceiver] = []
    browser = BrowserThatFollows(lambda: holder[0].redirect_uri)
    async with LoopbackRedirectReceiver(browser, timeout=10) as receiver:
        holder.append(receiver)
        assert receiver.redirect_uri.startswith("http://127.0.0.1:")
        assert receiver.redirect_uri.endswith("/callback")
        params = await receiver.authorize("https://as.example/authorize?x=1&state=s1")
    assert params == {"code": "c1", "state": "s1", "iss": "x"}
    assert browser.opened == ["https://as.example/authorize?x=1&state=s1"]
    assert browser.statuses == [404, 200]


async def test_the_loopback_receiver_refuses_a_forged_state_and_waits_for_the_real_one() -> None:
    # Any local process or web page can GET the callback first; it must not end the flow.
    holder: list[LoopbackRedirectReceiver] = []
    browser = BrowserThatFollows(
        lambda: holder[0].redirect_uri,
        "error=access_denied&state=forged",
        "code=evil",  # no state at all
        "code=evil&state=s1x",
        "code=c1&state=s1&iss=x",  # the genuine redirect
        "code=late&state=s1",  # after it: nobody waits
    )
    async with LoopbackRedirectReceiver(browser, timeout=10) as receiver:
        holder.append(receiver)
        params = await receiver.authorize("https://as.example/authorize?x=1&state=s1")
    assert params == {"code": "c1", "state": "s1", "iss": "x"}
    assert browser.statuses == [404, 400, 400, 400, 200, 400]


async def test_the_loopback_receiver_takes_the_state_it_is_given() -> None:
    holder: list[LoopbackRedirectReceiver] = []
    browser = BrowserThatFollows(
        lambda: holder[0].redirect_uri, "code=evil&state=from-url", "code=c2&state=given"
    )
    async with LoopbackRedirectReceiver(browser, timeout=10) as receiver:
        holder.append(receiver)
        params = await receiver.authorize(
            "https://as.example/authorize?state=from-url", state="given"
        )
    assert params == {"code": "c2", "state": "given"}
    assert browser.statuses == [404, 400, 200]


async def test_only_forged_redirects_end_in_the_timeout() -> None:
    holder: list[LoopbackRedirectReceiver] = []
    browser = BrowserThatFollows(lambda: holder[0].redirect_uri, "code=evil&state=forged")
    async with LoopbackRedirectReceiver(browser, timeout=0.5) as receiver:
        holder.append(receiver)
        with pytest.raises(AuthorizationAbandonedError, match="no redirect reached"):
            await receiver.authorize("https://as.example/authorize?state=s1")
    assert browser.statuses == [404, 400]


class BrowserThatNeverReturns:
    def open(self, url: str) -> bool:
        return False


async def test_the_loopback_receiver_gives_up_after_its_timeout() -> None:
    async with LoopbackRedirectReceiver(BrowserThatNeverReturns(), timeout=0.1) as receiver:
        with pytest.raises(AuthorizationAbandonedError, match="no redirect reached"):
            await receiver.authorize("https://as.example/authorize")
