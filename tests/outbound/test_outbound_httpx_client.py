"""`HttpxClient`: the SSRF policy enforced at every hop, caps, redirects and the cache.

Most tests run against an `httpx.MockTransport` with a fake resolver (a name table), so the
addresses a name resolves to are chosen by the test; a few run a real server on 127.0.0.1 to
show that a refused fetch never opens a connection and an allowed one works end to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio
import attrs
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream

from mcp_core.adapters.http_client import HttpxClient
from mcp_core.core.http.ssrf import OutboundPolicy
from mcp_core.ports.http_client import HttpClient, HttpResult, OutboundFailed, OutboundRefused

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.216.34"
PUBLIC_2 = "93.184.216.35"
DOC = b'{"client_id": "https://cimd.example/client.json"}'


class FakeResolver:
    """A fixed name table that records every lookup."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return self.table[host]


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Recorder:
    """A MockTransport handler that records every request it was given."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.handler(request)


def ok(body: bytes = DOC, /, **headers: str) -> Handler:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=headers)

    return handle


def make(
    handler: Handler,
    table: Mapping[str, Sequence[str]] | None = None,
    policy: OutboundPolicy | None = None,
    **kwargs: object,
) -> tuple[HttpxClient, Recorder, FakeResolver]:
    recorder = Recorder(handler)
    resolver = FakeResolver(table if table is not None else {"cimd.example": [PUBLIC]})
    client = HttpxClient(
        policy,
        resolver=resolver,
        transport=httpx.MockTransport(recorder),
        **kwargs,  # type: ignore[arg-type]
    )
    return client, recorder, resolver


# ---- the pinned connection ---------------------------------------------------------------------


async def test_fetch_connects_to_the_vetted_address_keeping_the_name() -> None:
    client, recorder, resolver = make(ok(**{"content-type": "application/json"}))
    assert isinstance(client, HttpClient)
    result = await client.get("https://cimd.example/client.json", headers={"Accept": "app/json"})
    assert result == HttpResult(
        status=200,
        headers=result.headers,
        body=DOC,
        final_url="https://cimd.example/client.json",
    )
    assert result.header("Content-Type") == "application/json"
    [request] = recorder.requests
    assert request.url.host == PUBLIC  # httpx never resolves the name itself
    assert request.headers["host"] == "cimd.example"
    assert request.headers["accept"] == "app/json"
    assert request.extensions["sni_hostname"] == "cimd.example"
    assert resolver.lookups == ["cimd.example"]


async def test_caller_cannot_override_the_host_header() -> None:
    client, recorder, _ = make(ok())
    await client.get("https://cimd.example:8443/x", headers={"Host": "169.254.169.254"})
    assert recorder.requests[0].headers["host"] == "cimd.example:8443"
    assert recorder.requests[0].url.port == 8443


async def test_ipv6_vetted_address_is_bracketed() -> None:
    client, recorder, _ = make(ok(), {"cimd.example": ["2606:4700::1111"]})
    await client.get("https://cimd.example/")
    assert recorder.requests[0].url.host == "2606:4700::1111"


async def test_connect_failure_falls_back_to_the_next_vetted_address() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, content=b"second")

    client, recorder, _ = make(handle, {"cimd.example": [PUBLIC, PUBLIC_2]})
    assert (await client.get("https://cimd.example/")).body == b"second"
    assert [r.url.host for r in recorder.requests] == [PUBLIC, PUBLIC_2]


async def test_unreachable_host_fails() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, _, _ = make(handle)
    with pytest.raises(OutboundFailed, match="cannot connect"):
        await client.get("https://cimd.example/")


async def test_unresolvable_host_fails() -> None:
    client, recorder, _ = make(ok(), {})
    with pytest.raises(OutboundFailed, match="cannot resolve"):
        await client.get("https://nowhere.example/")
    client, _, _ = make(ok(), {"empty.example": []})
    with pytest.raises(OutboundFailed, match="no address"):
        await client.get("https://empty.example/")
    assert recorder.requests == []


async def test_protocol_error_becomes_outbound_failed() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("garbage", request=request)

    client, _, _ = make(handle)
    with pytest.raises(OutboundFailed, match="RemoteProtocolError"):
        await client.get("https://cimd.example/")


# ---- refusals happen before any connection -----------------------------------------------------

REFUSED = [
    ("https://127.0.0.1/", {}),
    ("https://[::1]/", {}),
    ("https://169.254.169.254/latest/meta-data/", {}),
    ("https://2130706433/", {}),
    ("http://cimd.example/", {}),
    ("https://user@cimd.example/", {}),
    ("https://localhost/", {}),
    ("https://rebind.example/", {"rebind.example": ["127.0.0.1"]}),
    ("https://mixed.example/", {"mixed.example": [PUBLIC, "10.0.0.7"]}),
    ("https://mapped.example/", {"mapped.example": ["::ffff:169.254.169.254"]}),
    ("https://zone.example/", {"zone.example": ["fe80::1%eth0"]}),
    ("https://cgnat.example/", {"cgnat.example": ["100.64.1.1"]}),
]


@pytest.mark.parametrize(("url", "table"), REFUSED)
async def test_refused_target_is_never_contacted(url: str, table: dict[str, list[str]]) -> None:
    client, recorder, _ = make(ok(), table)
    with pytest.raises(OutboundRefused):
        await client.get(url)
    assert recorder.requests == []


async def test_url_refusal_happens_before_dns() -> None:
    client, _, resolver = make(ok())
    with pytest.raises(OutboundRefused):
        await client.get("https://127.0.0.1/")
    with pytest.raises(OutboundRefused):
        await client.get("https://cimd.example/#x")
    assert resolver.lookups == []


async def test_per_call_policy_overrides_the_default() -> None:
    client, recorder, _ = make(ok(), {"dev.internal": ["10.0.0.5"]})
    with pytest.raises(OutboundRefused):
        await client.get("https://dev.internal/")
    result = await client.get("http://dev.internal/", policy=OutboundPolicy.development())
    assert result.status == 200
    assert recorder.requests[0].url.host == "10.0.0.5"


# ---- redirects ---------------------------------------------------------------------------------


def redirecting(locations: dict[str, str], final: bytes = DOC) -> Handler:
    """Answer `path -> Location` with a 302, and anything else with 200 `final`."""

    async def handle(request: httpx.Request) -> httpx.Response:
        location = locations.get(request.url.path)
        if location is not None:
            return httpx.Response(302, headers={"location": location})
        return httpx.Response(200, content=final)

    return handle


async def test_redirect_is_followed_and_revetted() -> None:
    handler = redirecting({"/a": "https://other.example/b"})
    table = {"cimd.example": [PUBLIC], "other.example": [PUBLIC_2]}
    client, recorder, resolver = make(handler, table)
    result = await client.get("https://cimd.example/a", headers={"Authorization": "Bearer t"})
    assert result.final_url == "https://other.example/b"
    assert result.body == DOC
    assert [r.url.host for r in recorder.requests] == [PUBLIC, PUBLIC_2]
    assert recorder.requests[1].headers["host"] == "other.example"
    assert resolver.lookups == ["cimd.example", "other.example"]
    # credentials never follow a redirect to another origin
    assert recorder.requests[0].headers["authorization"] == "Bearer t"
    assert "authorization" not in recorder.requests[1].headers


async def test_same_origin_redirect_keeps_headers() -> None:
    client, recorder, _ = make(redirecting({"/a": "/b"}))
    result = await client.get("https://cimd.example/a", headers={"Authorization": "Bearer t"})
    assert result.final_url == "https://cimd.example/b"
    assert recorder.requests[1].headers["authorization"] == "Bearer t"


@pytest.mark.parametrize(
    ("location", "table"),
    [
        ("https://10.0.0.1/x", {}),
        ("https://169.254.169.254/latest/meta-data/", {}),
        ("https://[::ffff:127.0.0.1]/", {}),
        ("https://inside.example/x", {"inside.example": ["192.168.1.10"]}),
        ("http://cimd.example/downgrade", {}),
        ("file:///etc/passwd", {}),
    ],
)
async def test_redirect_to_a_forbidden_target_is_refused(
    location: str, table: dict[str, list[str]]
) -> None:
    client, recorder, _ = make(redirecting({"/a": location}), {"cimd.example": [PUBLIC], **table})
    with pytest.raises(OutboundRefused):
        await client.get("https://cimd.example/a")
    assert len(recorder.requests) == 1  # only the first, public hop was contacted


async def test_too_many_redirects_are_refused() -> None:
    policy = OutboundPolicy(max_redirects=2)
    client, recorder, _ = make(redirecting({"/0": "/1", "/1": "/2", "/2": "/3"}), policy=policy)
    with pytest.raises(OutboundRefused, match="more than 2 redirects"):
        await client.get("https://cimd.example/0")
    assert len(recorder.requests) == 3
    assert (await client.get("https://cimd.example/1")).final_url == "https://cimd.example/3"


async def test_no_redirects_allowed_with_zero() -> None:
    policy = OutboundPolicy(max_redirects=0)
    client, _, _ = make(redirecting({"/a": "/b"}), policy=policy)
    with pytest.raises(OutboundRefused):
        await client.get("https://cimd.example/a")


async def test_redirect_without_location_is_returned_as_is() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302)

    client, _, _ = make(handle)
    assert (await client.get("https://cimd.example/")).status == 302


# ---- size and time caps ------------------------------------------------------------------------


async def test_declared_oversized_body_fails() -> None:
    policy = OutboundPolicy(max_bytes=100)
    client, _, _ = make(ok(b"x" * 101), policy=policy)
    with pytest.raises(OutboundFailed, match="announced 101 bytes"):
        await client.get("https://cimd.example/")


async def test_streamed_oversized_body_is_abandoned() -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1000):
            sent.append(1)
            yield b"x" * 64

    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())  # no Content-Length

    client, _, _ = make(handle, policy=OutboundPolicy(max_bytes=1000))
    with pytest.raises(OutboundFailed, match="more than 1000 bytes"):
        await client.get("https://cimd.example/")
    assert len(sent) < 20  # stopped reading, did not drain the stream


async def test_body_at_the_cap_is_accepted() -> None:
    client, _, _ = make(ok(b"x" * 100), policy=OutboundPolicy(max_bytes=100))
    assert len((await client.get("https://cimd.example/")).body) == 100


async def test_compressed_bomb_is_capped_after_decoding() -> None:
    import gzip

    bomb = gzip.compress(b"\0" * 1_000_000)

    client, _, _ = make(ok(bomb, **{"content-encoding": "gzip"}), policy=OutboundPolicy())
    assert len(bomb) < OutboundPolicy().max_bytes
    with pytest.raises(OutboundFailed, match="more than"):
        await client.get("https://cimd.example/")


async def test_slow_server_times_out() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        return httpx.Response(200)

    client, _, _ = make(handle, policy=OutboundPolicy(timeout=0.2))
    with anyio.fail_after(5):
        with pytest.raises(OutboundFailed, match=r"within 0\.2 s"):
            await client.get("https://cimd.example/")


async def test_slow_dns_counts_against_the_timeout() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await anyio.sleep(30)
        return [PUBLIC]

    client = HttpxClient(
        OutboundPolicy(timeout=0.2), resolver=slow, transport=httpx.MockTransport(ok())
    )
    with anyio.fail_after(5), pytest.raises(OutboundFailed):
        await client.get("https://cimd.example/")


async def test_redirect_chain_shares_one_deadline() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.1)
        return httpx.Response(302, headers={"location": "/again"})

    policy = OutboundPolicy(timeout=0.25, max_redirects=100)
    client, recorder, _ = make(handle, policy=policy)
    with anyio.fail_after(5), pytest.raises(OutboundFailed):
        await client.get("https://cimd.example/")
    assert len(recorder.requests) <= 3


# ---- the cache ---------------------------------------------------------------------------------


async def test_max_age_response_is_served_from_cache_until_it_expires() -> None:
    clock = FakeClock()
    client, recorder, _ = make(ok(**{"cache-control": "public, max-age=60"}), clock=clock)
    first = await client.get("https://cimd.example/c")
    assert await client.get("https://cimd.example/c") == first  # hit
    assert len(recorder.requests) == 1
    clock.t += 59
    await client.get("https://cimd.example/c")
    assert len(recorder.requests) == 1
    clock.t += 2  # expired
    await client.get("https://cimd.example/c")
    assert len(recorder.requests) == 2


async def test_age_header_shortens_the_lifetime() -> None:
    clock = FakeClock()
    client, recorder, _ = make(ok(**{"cache-control": "max-age=60", "age": "50"}), clock=clock)
    await client.get("https://cimd.example/c")
    clock.t += 11
    await client.get("https://cimd.example/c")
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    "cache_control",
    ["no-store", "max-age=60, no-store", "no-cache, max-age=60", "max-age=0", "max-age=x", ""],
)
async def test_uncacheable_response_is_fetched_every_time(cache_control: str) -> None:
    client, recorder, _ = make(ok(**{"cache-control": cache_control}), clock=FakeClock())
    await client.get("https://cimd.example/c")
    await client.get("https://cimd.example/c")
    assert len(recorder.requests) == 2
    assert client.cached_entries == 0


async def test_error_status_is_not_cached() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, headers={"cache-control": "max-age=60"})

    client, recorder, _ = make(handle)
    assert (await client.get("https://cimd.example/c")).status == 404
    await client.get("https://cimd.example/c")
    assert len(recorder.requests) == 2


async def test_cache_key_includes_headers_and_policy() -> None:
    client, recorder, _ = make(ok(**{"cache-control": "max-age=60"}), clock=FakeClock())
    await client.get("https://cimd.example/c")
    await client.get("https://cimd.example/c", headers={"Accept": "application/json"})
    await client.get("https://cimd.example/c", policy=OutboundPolicy(max_bytes=5000))
    assert len(recorder.requests) == 3


async def test_cache_never_serves_what_the_policy_now_refuses() -> None:
    table = {"cimd.example": [PUBLIC]}
    client, recorder, _ = make(ok(**{"cache-control": "max-age=60"}), table, clock=FakeClock())
    await client.get("https://cimd.example/c")
    with pytest.raises(OutboundRefused):
        await client.get("https://cimd.example/c", policy=OutboundPolicy(allowed_ports=[8443]))
    assert len(recorder.requests) == 1


async def test_cache_is_bounded_and_evicts_the_least_recent() -> None:
    client, recorder, _ = make(
        ok(**{"cache-control": "max-age=60"}), clock=FakeClock(), cache_entries=2
    )
    for path in ("/a", "/b", "/a", "/c"):  # /b is the least recent when /c arrives
        await client.get(f"https://cimd.example{path}")
    assert client.cached_entries == 2
    await client.get("https://cimd.example/a")
    assert len(recorder.requests) == 3
    await client.get("https://cimd.example/b")
    assert len(recorder.requests) == 4


# ---- a real server on 127.0.0.1 ----------------------------------------------------------------


@attrs.define
class LocalServer:
    port: int
    connections: int = 0
    requests: list[bytes] = attrs.Factory(list)


@asynccontextmanager
async def local_server(reply: bytes | None) -> AsyncIterator[LocalServer]:
    """A minimal HTTP/1.1 server on 127.0.0.1: answers `reply` (None: never answers)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server = LocalServer(port=listener.extra(SocketAttribute.local_port))

    async def handle(stream: SocketStream) -> None:
        server.connections += 1
        async with stream:
            data = b""
            with anyio.move_on_after(5):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                server.requests.append(data)
                if reply is None:
                    await anyio.sleep(5)
                else:
                    await stream.send(reply)

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def http_reply(body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
    return head.encode() + body


async def test_local_server_is_fetched_with_the_development_policy() -> None:
    with anyio.fail_after(10):
        async with local_server(http_reply(DOC, "content-type: application/json\r\n")) as server:
            client = HttpxClient(OutboundPolicy.development())
            result = await client.get(f"http://127.0.0.1:{server.port}/client.json")
    assert result.status == 200
    assert result.body == DOC
    assert result.header("content-type") == "application/json"
    assert result.final_url == f"http://127.0.0.1:{server.port}/client.json"
    assert server.requests[0].startswith(b"GET /client.json HTTP/1.1\r\n")


async def test_local_name_resolves_and_connects_with_the_development_policy() -> None:
    with anyio.fail_after(10):
        async with local_server(http_reply(b"ok")) as server:
            client = HttpxClient(OutboundPolicy.development())
            result = await client.get(f"http://localhost:{server.port}/")
    assert result.body == b"ok"
    assert f"host: localhost:{server.port}".encode() in server.requests[0].lower()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_default_policy_refuses_loopback_before_any_connection(host: str) -> None:
    production_http = OutboundPolicy(allowed_schemes=("https", "http"))
    with anyio.fail_after(10):
        async with local_server(http_reply(b"secret")) as server:
            for policy in (OutboundPolicy(), production_http):
                client = HttpxClient(policy)
                for scheme in ("https", "http"):
                    with pytest.raises(OutboundRefused):
                        await client.get(f"{scheme}://{host}:{server.port}/")
            # a name that resolves to loopback through the real resolver path, too
            resolver = FakeResolver({"evil.example": ["127.0.0.1"]})
            with pytest.raises(OutboundRefused):
                await HttpxClient(production_http, resolver=resolver).get(
                    f"http://evil.example:{server.port}/"
                )
            await anyio.sleep(0.05)
    assert server.connections == 0


async def test_real_server_that_never_answers_times_out() -> None:
    policy = attrs.evolve(OutboundPolicy.development(), timeout=0.3)
    with anyio.fail_after(10):
        async with local_server(None) as server:
            with pytest.raises(OutboundFailed):
                await HttpxClient(policy).get(f"http://127.0.0.1:{server.port}/")
    assert server.connections == 1


async def test_real_server_oversized_body_fails() -> None:
    policy = attrs.evolve(OutboundPolicy.development(), max_bytes=1024)
    with anyio.fail_after(10):
        async with local_server(http_reply(b"x" * 5000)) as server:
            with pytest.raises(OutboundFailed, match="5000 bytes"):
                await HttpxClient(policy).get(f"http://127.0.0.1:{server.port}/")


async def test_closed_local_port_fails_cleanly() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    await listener.aclose()
    with anyio.fail_after(10), pytest.raises(OutboundFailed, match="cannot connect"):
        await HttpxClient(OutboundPolicy.development()).get(f"http://127.0.0.1:{port}/")
