"""The ASGI app in process, with a fake clock and random source: session expiry, limits,
subject and client binding (on one node and across two sharing a store), session ids, lifespan
and scopes it does not serve."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.storage.memory import InMemoryEventStore, InMemorySessionStore
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer
from mcp_core.ports.events import Replay

pytestmark = pytest.mark.anyio

HOST = (b"host", b"localhost:8000")
JSON_HEADERS = [
    HOST,
    (b"accept", b"application/json, text/event-stream"),
    (b"content-type", b"application/json"),
]


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t


class CountingRandom:
    """Predictable "random" bytes: 0x00, 0x01, ... so session ids are known in advance."""

    def __init__(self) -> None:
        self.calls = 0

    def token(self, nbytes: int) -> bytes:
        self.calls += 1
        return bytes((self.calls + i) % 256 for i in range(nbytes))


def _server() -> McpServer:
    server = McpServer("asgi")
    server.tool(name="echo")(lambda text: text)
    return server


INITIALIZE = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
    }
)
PING = orjson.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"})


async def _initialize(asgi: Any, app: Any, *extra: tuple[bytes, bytes]) -> str:
    exchange = await asgi(app, headers=[*JSON_HEADERS, *extra], body=INITIALIZE)
    assert exchange.status == 200
    return str(exchange.headers["mcp-session-id"])


async def _ping(asgi: Any, app: Any, session_id: str, *extra: tuple[bytes, bytes]) -> int:
    headers = [*JSON_HEADERS, (b"mcp-session-id", session_id.encode()), *extra]
    exchange = await asgi(app, headers=headers, body=PING)
    return int(exchange.status)


async def test_session_ids_come_from_the_random_port(asgi) -> None:
    app = create_app(_server(), random=CountingRandom(), clock=FakeClock())
    assert await _initialize(asgi, app) == bytes(range(1, 17)).hex()
    assert await _initialize(asgi, app) == bytes(range(2, 18)).hex()


async def test_an_idle_session_expires_and_activity_keeps_it_alive(asgi) -> None:
    clock = FakeClock()
    app = create_app(_server(), clock=clock, idle_timeout=60)
    session_id = await _initialize(asgi, app)
    clock.t += 50
    assert await _ping(asgi, app, session_id) == 200
    clock.t += 50  # 100 s since initialize, 50 since the last request
    assert await _ping(asgi, app, session_id) == 200
    clock.t += 61
    assert await _ping(asgi, app, session_id) == 404
    clock.t -= 61  # even if the clock went back, the session stays gone
    assert await _ping(asgi, app, session_id) == 404


async def test_expired_sessions_are_dropped_from_the_node(asgi) -> None:
    clock = FakeClock()
    app = create_app(_server(), clock=clock, idle_timeout=60)
    for _ in range(3):
        await _initialize(asgi, app)
    assert app.service.live_sessions == 3
    clock.t += 120
    await _initialize(asgi, app)  # a sweep runs on the way
    assert app.service.live_sessions == 1


async def test_too_many_sessions_is_503_with_retry_after(asgi) -> None:
    app = create_app(_server(), clock=FakeClock(), max_sessions=1)
    first = await _initialize(asgi, app)
    refused = await asgi(app, headers=JSON_HEADERS, body=INITIALIZE)
    assert refused.status == 503
    assert refused.headers["retry-after"] == "5"
    assert "id" not in orjson.loads(refused.body)
    deleted = await asgi(app, method="DELETE", headers=[HOST, (b"mcp-session-id", first.encode())])
    assert deleted.status == 200
    await _initialize(asgi, app)


async def test_a_session_is_bound_to_the_subject_that_opened_it(asgi) -> None:
    app = create_app(_server(), clock=FakeClock())

    def as_user(user: str | None) -> dict[str, Any]:
        return {"mcp_core.subject": user} if user else {}

    exchange = await asgi(app, headers=JSON_HEADERS, body=INITIALIZE, scope_extra=as_user("alice"))
    session_id = exchange.headers["mcp-session-id"].encode()
    headers = [*JSON_HEADERS, (b"mcp-session-id", session_id)]
    for user, status in (("alice", 200), ("bob", 404), (None, 404)):
        answer = await asgi(app, headers=headers, body=PING, scope_extra=as_user(user))
        assert answer.status == status, user


def _caller(subject: str | None, client_id: str | None) -> dict[str, Any]:
    """What `ProtectedResource` puts in the scope for a verified token."""
    found: dict[str, Any] = {}
    if subject is not None:
        found["mcp_core.subject"] = subject
    if client_id is not None:
        found["mcp_core.client_id"] = client_id
    return found


async def test_a_session_is_bound_to_the_client_that_opened_it(asgi) -> None:
    sessions = InMemorySessionStore()
    app = create_app(_server(), clock=FakeClock(), session_store=sessions)
    opened = await asgi(
        app, headers=JSON_HEADERS, body=INITIALIZE, scope_extra=_caller("alice", "client-a")
    )
    session_id = opened.headers["mcp-session-id"]
    record = await sessions.get(session_id, 1000.0)
    assert record is not None
    assert (record.subject, record.client_id) == ("alice", "client-a")
    headers = [*JSON_HEADERS, (b"mcp-session-id", session_id.encode())]
    for subject, client_id, status in (
        ("alice", "client-b", 404),
        ("alice", None, 404),
        ("bob", "client-a", 404),
        ("alice", "client-a", 200),
    ):
        answer = await asgi(
            app, headers=headers, body=PING, scope_extra=_caller(subject, client_id)
        )
        assert answer.status == status, (subject, client_id)
    # Another client can neither listen on the session nor end it.
    intruder = _caller("alice", "client-b")
    assert (await asgi(app, method="GET", headers=headers, scope_extra=intruder)).status == 404
    assert (await asgi(app, method="DELETE", headers=headers, scope_extra=intruder)).status == 404
    owner = _caller("alice", "client-a")
    assert (await asgi(app, headers=headers, body=PING, scope_extra=owner)).status == 200


async def test_client_of_picks_where_the_client_id_comes_from(asgi) -> None:
    app = create_app(_server(), clock=FakeClock(), client_of=lambda scope: scope.get("test.client"))
    assert app.client_of({"test.client": "x"}) == "x"
    opened = await asgi(
        app, headers=JSON_HEADERS, body=INITIALIZE, scope_extra={"test.client": "client-a"}
    )
    headers = [*JSON_HEADERS, (b"mcp-session-id", opened.headers["mcp-session-id"].encode())]
    for extra, status in (
        ({"test.client": "client-b"}, 404),
        # The default key is not read once `client_of` is replaced.
        ({"mcp_core.client_id": "client-a"}, 404),
        ({"test.client": "client-a"}, 200),
    ):
        answer = await asgi(app, headers=headers, body=PING, scope_extra=extra)
        assert answer.status == status, extra


async def test_two_nodes_sharing_a_store_enforce_the_client_binding(asgi) -> None:
    """Node 1 opens the session; node 2, which has never seen it, serves its owner and refuses
    another client: the binding travels in the shared record, not in a node's memory."""
    sessions = InMemorySessionStore()
    events = InMemoryEventStore()
    node1, node2 = (
        create_app(_server(), clock=FakeClock(), session_store=sessions, event_store=events)
        for _ in range(2)
    )
    opened = await asgi(
        node1, headers=JSON_HEADERS, body=INITIALIZE, scope_extra=_caller("alice", "client-a")
    )
    headers = [*JSON_HEADERS, (b"mcp-session-id", opened.headers["mcp-session-id"].encode())]
    intruder = _caller("alice", "client-b")
    answer = await asgi(node2, headers=headers, body=PING, scope_extra=intruder)
    assert answer.status == 404
    assert node2.service.live_sessions == 0  # nothing was rebuilt for the intruder
    owner = _caller("alice", "client-a")
    assert (await asgi(node2, headers=headers, body=PING, scope_extra=owner)).status == 200
    assert node2.service.live_sessions == 1
    answer = await asgi(node1, headers=headers, body=PING, scope_extra=intruder)
    assert answer.status == 404


async def test_a_header_sent_twice_is_joined_and_judged_whole(asgi) -> None:
    app = create_app(_server())
    twice = await asgi(
        app, method="GET", path="/healthz", headers=[HOST, (b"host", b"evil.example")]
    )
    assert twice.status == 421


async def test_dns_rebinding_protection_can_be_turned_off_behind_a_proxy(asgi) -> None:
    app = create_app(_server(), dns_rebinding_protection=False)
    exchange = await asgi(
        app,
        headers=[
            (b"host", b"mcp.example.com"),
            (b"origin", b"https://elsewhere.example"),
            *JSON_HEADERS[1:],
        ],
        body=INITIALIZE,
    )
    assert exchange.status == 200


async def test_configured_hosts_and_origins_replace_loopback(asgi) -> None:
    app = create_app(
        _server(),
        allowed_hosts=("mcp.example.com",),
        allowed_origins=("https://app.example.com",),
    )
    cases = [
        ([(b"host", b"mcp.example.com")], 200),
        ([(b"host", b"mcp.example.com"), (b"origin", b"https://app.example.com")], 200),
        ([(b"host", b"localhost:8000")], 421),
        ([(b"host", b"mcp.example.com"), (b"origin", b"http://localhost:3000")], 403),
    ]
    for headers, status in cases:
        exchange = await asgi(app, method="GET", path="/healthz", headers=headers)
        assert exchange.status == status, headers


async def test_without_resumability_streams_have_no_event_ids(asgi) -> None:
    app = create_app(_server(), response_mode="sse", resumable=False)
    session_id = await _initialize(asgi, app)
    call = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        }
    )
    headers = [*JSON_HEADERS, (b"mcp-session-id", session_id.encode())]
    exchange = await asgi(app, headers=headers, body=call)
    assert exchange.headers["content-type"] == "text/event-stream"
    assert b"id:" not in exchange.body
    assert b"retry:" not in exchange.body
    assert exchange.body.startswith(b"event: message\ndata: {")


async def test_lifespan_is_answered(asgi) -> None:
    app = create_app(_server())
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


async def test_websocket_scopes_are_not_served(asgi) -> None:
    app = create_app(_server())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "websocket", "path": "/mcp", "headers": []}, receive, send)
    assert sent == []


async def test_a_custom_path_and_no_health_route(asgi) -> None:
    app = create_app(_server(), path="/rpc/", health_path=None)
    assert (await asgi(app, path="/rpc", headers=JSON_HEADERS, body=INITIALIZE)).status == 200
    assert (await asgi(app, path="/rpc/", headers=JSON_HEADERS, body=INITIALIZE)).status == 200
    assert (await asgi(app, path="/mcp", headers=JSON_HEADERS, body=INITIALIZE)).status == 404
    assert (await asgi(app, method="GET", path="/healthz", headers=[HOST])).status == 404


class SlowReplayStore(InMemoryEventStore):
    """An event store whose reads take a while, as a database's do: `replay_after` reads its
    snapshot, then waits (while `hold` is set) before returning it."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.reading = anyio.Event()
        self.release = anyio.Event()
        self.appended: list[str] = []
        self.grew = anyio.Event()

    async def append(self, session_id: str, stream_id: str, payload: bytes) -> str:
        event_id = await super().append(session_id, stream_id, payload)
        self.appended.append(event_id)
        self.grew.set()
        return event_id

    async def replay_after(self, session_id: str, last_event_id: str) -> Replay | None:
        snapshot = await super().replay_after(session_id, last_event_id)
        if self.hold:
            self.hold = False
            self.reading.set()
            await self.release.wait()
        return snapshot

    async def wait_for_events(self, count: int) -> None:
        while len(self.appended) < count:
            self.grew = anyio.Event()
            await self.grew.wait()


async def test_an_event_stored_while_a_resume_reads_the_store_is_not_lost(asgi) -> None:
    store = SlowReplayStore()
    during, finish = anyio.Event(), anyio.Event()
    server = McpServer("slow-store")

    @server.tool()
    async def steps(ctx: Context) -> str:
        await ctx.close_stream()
        await during.wait()
        await ctx.info("during the resume's read")
        await finish.wait()
        return "done"

    app = create_app(server, event_store=store, clock=FakeClock())
    session_id = await _initialize(asgi, app)
    headers = [*JSON_HEADERS, (b"mcp-session-id", session_id.encode())]
    call = orjson.dumps(
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "steps"}}
    )
    resumed: list[Any] = []

    async def resume(prime: str) -> None:
        get_headers = [*headers, (b"last-event-id", prime.encode())]
        resumed.append(await asgi(app, method="GET", headers=get_headers))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: asgi(app, headers=headers, body=call))
            await store.wait_for_events(1)  # the priming event; then the stream is closed
            store.hold = True
            tg.start_soon(resume, store.appended[0])
            await store.reading.wait()
            during.set()  # the tool sends a message while the resume is reading the store
            await store.wait_for_events(2)
            store.release.set()
            finish.set()
    messages = [
        orjson.loads(line[len(b"data: ") :])
        for line in resumed[0].body.split(b"\n")
        if line.startswith(b"data: {")
    ]
    assert [m.get("method") for m in messages] == ["notifications/message", None]
    assert messages[1]["result"]["content"] == [{"type": "text", "text": "done"}]
