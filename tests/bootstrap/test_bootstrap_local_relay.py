"""Local-relay mode: a one-time loopback page on 127.0.0.1, opened through the `BrowserOpener`
port, shut down after success or when idle (issue 3, "the relay form"). Real sockets, httpx as
the browser; the page's tiny HTTP server is tested on raw sockets too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from mcp_core.adapters.asgi.loopback import LoopbackHttpServer, listen_loopback
from mcp_core.adapters.asgi.relay import LocalRelay
from mcp_core.core.http.relay_form import NONCE_FIELD

from .bootstrap_testing import SECRET, Rig, nonce_of

pytestmark = pytest.mark.anyio

Connect = Callable[..., Awaitable[Any]]


class RecordingOpener:
    def __init__(self, *, opens: bool = True) -> None:
        self.urls: list[str] = []
        self.opens = opens

    def open(self, url: str) -> bool:
        self.urls.append(url)
        return self.opens


def _local_rig(relay: LocalRelay) -> Rig:
    rig = Rig(relay=relay, anonymous_subject="local")

    @rig.server.tool()
    @rig.bootstrap.requires_credentials
    async def forecast(credentials: dict[str, str]) -> str:
        return f"sunny for {credentials['account']}"

    return rig


async def test_a_tool_opens_the_browser_on_a_one_time_loopback_page(connect: Connect) -> None:
    opener = RecordingOpener()
    async with LocalRelay(opener=opener) as relay:
        rig = _local_rig(relay)
        peer = await connect(rig.server)
        first = await peer.call_tool("forecast")
        text = first["content"][0]["text"]
        assert first["isError"] is True
        assert text.startswith("not configured: open http://127.0.0.1:")
        url = text.removeprefix("not configured: open ")
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        assert parts.port not in (None, 80)
        assert parts.path.startswith("/relay/")
        assert len(parts.path) > len("/relay/") + 40
        assert opener.urls == [url]
        again = await peer.call_tool("forecast")
        assert again["content"][0]["text"] == text
        assert opener.urls == [url]  # opened once

        async with httpx.AsyncClient(timeout=5) as browser:
            page = await browser.get(url)
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["connection"] == "close"
            assert f'action="{parts.path}"' in page.text
            form = {NONCE_FIELD: nonce_of(page.text), "account": "me", "api_key": SECRET}
            done = await browser.post(url, data=form, headers={"origin": "null"})
            assert done.status_code == 200
            assert "Connected" in done.text

        with anyio.fail_after(5):
            await relay.wait_closed("local")
        assert relay.url_of("local") is None
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(timeout=2) as late:
                await late.get(url)

        assert peer.standalone.methods() == ["notifications/tools/list_changed"]
        assert (await peer.call_tool("forecast"))["content"][0]["text"] == "sunny for me"


async def test_only_the_tokened_path_and_the_exact_host_are_served() -> None:
    async with LocalRelay(opener=RecordingOpener()) as relay:
        rig = _local_rig(relay)
        url = await rig.bootstrap.form_url("local")
        parts = urlsplit(url)
        base = f"http://127.0.0.1:{parts.port}"
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(base + "/relay")).status_code == 404
            assert (await client.get(base + "/relay/wrong-token")).status_code == 404
            rebound = await client.get(url, headers={"host": f"evil.example:{parts.port}"})
            assert rebound.status_code == 421
            localhost = await client.get(url, headers={"host": f"localhost:{parts.port}"})
            assert localhost.status_code == 421
            cross = await client.post(url, data={"a": "b"}, headers={"origin": "http://evil"})
            assert cross.status_code == 403


async def test_an_idle_page_shuts_down_and_a_new_one_gets_a_new_url() -> None:
    opener = RecordingOpener(opens=False)
    async with LocalRelay(opener=opener, idle_timeout=0.2) as relay:
        rig = _local_rig(relay)
        first = await rig.bootstrap.form_url("local")
        with anyio.fail_after(5):
            await relay.wait_closed("local")
        second = await rig.bootstrap.form_url("local")
        assert second != first
        assert opener.urls == [first, second]


async def test_pages_are_served_only_inside_the_context_manager() -> None:
    relay = LocalRelay(opener=RecordingOpener())
    rig = _local_rig(relay)
    with pytest.raises(RuntimeError, match="async with LocalRelay"):
        await rig.bootstrap.form_url("local")


async def test_leaving_the_context_closes_every_page() -> None:
    async with LocalRelay(opener=RecordingOpener()) as relay:
        rig = _local_rig(relay)
        url = await rig.bootstrap.form_url("local")
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(url)


# ---- the loopback server itself ------------------------------------------------------------------


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    message = await receive()
    body = f"{scope['method']} {scope['path']} {scope['query_string'].decode()} ".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body + message["body"]})


async def _raw(port: int, data: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        chunks = []
        with anyio.fail_after(5):
            try:
                while True:
                    chunks.append(await stream.receive())
            except anyio.EndOfStream:
                pass
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", b"HTTP/1.1 200 OK"),
        (b"GET / HTTP/2\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET nothing HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 411 Length Required",
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", b"HTTP/1.1 413 "),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n", b"HTTP/1.1 431"),
    ],
)
async def test_the_loopback_server_takes_only_simple_requests(
    request_bytes: bytes, status_line: bytes
) -> None:
    listener, port = await listen_loopback()
    server = LoopbackHttpServer(_echo, port=port, read_timeout=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, listener)
        answer = await _raw(port, request_bytes)
        tg.cancel_scope.cancel()
    assert answer.startswith(status_line), answer[:80]
    assert b"connection: close" in answer
    if status_line.endswith(b"200 OK"):
        assert answer.endswith(b"POST /p q=1 abc")


async def test_the_loopback_server_listens_on_127_0_0_1_only() -> None:
    listener, port = await listen_loopback()
    async with listener:
        address = listener.extra(anyio.abc.SocketAttribute.local_address)
        assert address == ("127.0.0.1", port)


async def test_a_silent_connection_times_out() -> None:
    listener, port = await listen_loopback()
    server = LoopbackHttpServer(_echo, port=port, read_timeout=0.1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, listener)
        answer = await _raw(port, b"GET / HTTP/1.1\r\n")  # never finishes its head
        tg.cancel_scope.cancel()
    assert answer == b""
