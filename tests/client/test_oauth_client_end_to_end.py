"""Our client and our server, end to end over real sockets, with and without authorization.

The server is the README's demo (`build_demo_app`: the `add` tool, and its built-in
authorization server with automatic consent for the local user) under uvicorn on 127.0.0.1 in
a background thread. The client is `open_session`: a 401 runs discovery, dynamic registration,
PKCE and the exchange (the headless receiver follows the consent redirect), the request is
retried with the token, and the grant is sealed in the vault (`VaultTokenStorage`); a second
session finds it there and never sees a 401.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn

from mcp_core.adapters.cli.demo_app import build_demo_app
from mcp_core.adapters.crypto import CryptographyAead, CryptographyKdf
from mcp_core.adapters.http_client import HttpxClient
from mcp_core.adapters.oauth_client import open_session
from mcp_core.adapters.oauth_client_receivers import HeadlessRedirectReceiver
from mcp_core.adapters.oauth_client_storage import VaultTokenStorage
from mcp_core.adapters.storage.memory import InMemoryCredentialStore
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core.http.ssrf import OutboundPolicy
from mcp_core.core.services.vault import Vault
from mcp_core.core.vault.keys import Keyring, MasterKey

pytestmark = pytest.mark.anyio

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 5.0
REDIRECT_URI = "http://127.0.0.1:43123/callback"


@contextlib.contextmanager
def serve(make_app: Callable[[int], Any]) -> Iterator[str]:
    """Serve `make_app(port)` on 127.0.0.1 in a background thread; yields the MCP URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Built on a thread of its own: the demo loads its keys with `anyio.run`.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        app = pool.submit(make_app, port).result(timeout=STARTUP_TIMEOUT)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT)
        sock.close()


def demo(tmp_path: Path, *, auth: bool) -> Callable[[int], Any]:
    environ = {"KEYRING_SECRET": base64.b64encode(os.urandom(32)).decode()}

    def make(port: int) -> Any:
        return build_demo_app(
            host="127.0.0.1",
            port=port,
            environ=environ,
            store=str(tmp_path / "server-vault.sqlite3"),
            auth=auth,
        )

    return make


class CountingReceiver(HeadlessRedirectReceiver):
    def __init__(self) -> None:
        super().__init__(HttpxClient(OutboundPolicy.development()), redirect_uri=REDIRECT_URI)
        self.opened = 0

    async def authorize(self, url: str) -> Mapping[str, str]:
        self.opened += 1
        return await super().authorize(url)


def client_vault(store: InMemoryCredentialStore) -> Vault:
    return Vault(
        store=store,
        keyring=Keyring((MasterKey.random("k1", os.urandom(32)),)),
        aead=CryptographyAead(),
        kdf=CryptographyKdf(),
        random=SystemRandom(),
        clock=SystemClock(),
    )


async def _add(url: str, receiver: CountingReceiver, storage: VaultTokenStorage | None) -> str:
    async with open_session(url, receiver=receiver, storage=storage) as session:
        names = [tool["name"] for tool in await session.list_tools()]
        assert "add" in names
        result = await session.call_tool("add", {"numbers": [2, 40]})
    text: str = result["content"][0]["text"]
    return text


async def test_the_client_authorizes_with_our_server_and_reuses_the_sealed_grant(
    tmp_path: Path,
) -> None:
    store = InMemoryCredentialStore()
    vault = client_vault(store)
    storage = VaultTokenStorage(vault)
    with serve(demo(tmp_path, auth=True)) as url:
        receiver = CountingReceiver()
        with anyio.fail_after(30):
            assert await _add(url, receiver, storage) == "42.0"
        assert receiver.opened == 1
        grant = await storage.find(url)
        assert grant is not None
        assert grant.issuer == url.removesuffix("/mcp")
        # Sealed: the token is in the vault's record only encrypted.
        [info] = await vault.list_server("mcp-core-client")
        record = await store.get(info.server, info.subject, info.kind)
        assert record is not None
        access_token = grant.progress["tokens"]["access_token"]
        assert access_token.encode() not in record.ciphertext

        again = CountingReceiver()
        with anyio.fail_after(30):
            assert await _add(url, again, storage) == "42.0"
        assert again.opened == 0  # the stored grant was enough


async def test_the_client_works_with_our_server_without_authorization(tmp_path: Path) -> None:
    with serve(demo(tmp_path, auth=False)) as url:
        receiver = CountingReceiver()
        with anyio.fail_after(30):
            assert await _add(url, receiver, None) == "42.0"
        assert receiver.opened == 0
