"""Streamable HTTP end to end: the ASGI app under a real uvicorn, driven by httpx
(2025-11-25 Transports > Streamable HTTP: sessions, response modes, the standalone stream,
resumability, server-to-client requests).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.storage.memory import InMemoryEventStore
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio

ACCEPT_BOTH = "application/json, text/event-stream"
TIMEOUT_S = 5.0


# ---- a small MCP client over httpx, and an SSE reader ---------------------------------------


@attrs.frozen
class SseEvent:
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


class SseParser:
    """Lines in, events out (WHATWG "event stream interpretation", the parts MCP uses)."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            event = None
            if self._data or self._fields:
                retry = self._fields.get("retry")
                event = SseEvent(
                    data="\n".join(self._data),
                    id=self._fields.get("id"),
                    retry=int(retry) if retry is not None else None,
                )
            self._fields, self._data = {}, []
            return event
        if not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self._data.append(value)
            elif name in ("id", "retry"):
                self._fields[name] = value
        return None


def parse_sse(text: str) -> list[SseEvent]:
    parser = SseParser()
    return [event for line in text.split("\n") if (event := parser.feed(line)) is not None]


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    parser = SseParser()
    async for line in response.aiter_lines():
        event = parser.feed(line)
        if event is not None:
            yield event


def messages_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a POST's answer, JSON or SSE (priming events skipped)."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        return [response.json()]
    assert kind.startswith("text/event-stream"), kind
    return [event.json() for event in parse_sse(response.text) if event.data]


class McpClient:
    """What a Streamable HTTP client sends, spelled out for the tests."""

    def __init__(self, http: httpx.AsyncClient, path: str = "/mcp") -> None:
        self.http = http
        self.path = path
        self.session_id: str | None = None
        self.version: str | None = None
        self._ids = itertools.count(1)

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"accept": ACCEPT_BOTH, "content-type": "application/json"}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
        if self.version is not None:
            headers["mcp-protocol-version"] = self.version
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def message(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            out["params"] = params
        return out

    async def post(self, message: Any, **extra: str) -> httpx.Response:
        body = message if isinstance(message, bytes) else orjson.dumps(message)
        return await self.http.post(self.path, content=body, headers=self.headers(**extra))

    def stream_post(
        self, message: dict[str, Any]
    ) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        return self.http.stream(
            "POST", self.path, content=orjson.dumps(message), headers=self.headers()
        )

    def stream_get(self, **extra: str) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        return self.http.stream("GET", self.path, headers=self.headers(**extra))

    async def initialize(
        self, capabilities: dict[str, Any] | None = None, version: str = "2025-11-25"
    ) -> httpx.Response:
        response = await self.post(
            self.message(
                "initialize",
                {
                    "protocolVersion": version,
                    "capabilities": capabilities or {},
                    "clientInfo": {"name": "httpx-test", "version": "1"},
                },
            )
        )
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        self.version = messages_of(response)[0]["result"]["protocolVersion"]
        initialized = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert initialized.status_code == 202
        return response

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request's response, whichever way the server framed it."""
        response = await self.post(self.message(method, params))
        assert response.status_code == 200, response.text
        return messages_of(response)[-1]


@contextlib.asynccontextmanager
async def connected(live_server: Any, app: Any, path: str = "/mcp") -> AsyncIterator[McpClient]:
    async with (
        live_server(app) as url,
        httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S) as http,
    ):
        yield McpClient(http, path)


# ---- the server under test ------------------------------------------------------------------


@attrs.define
class Gates:
    """Events a test sets to let a tool go on."""

    release: anyio.Event = attrs.Factory(anyio.Event)


def _server(gates: Gates | None = None) -> McpServer:
    gates = gates or Gates()
    server = McpServer("http-test", "1.0")

    @server.tool()
    def echo(text: str) -> str:
        return text

    @server.tool()
    async def logs_first(ctx: Context) -> str:
        await ctx.info("working")
        return "logged"

    @server.tool()
    async def polls(ctx: Context) -> str:
        await ctx.close_stream()
        await gates.release.wait()
        await ctx.info("after the close")
        return "polled"

    @server.tool()
    async def two_steps(ctx: Context) -> str:
        await ctx.info("one")
        await gates.release.wait()
        await ctx.info("two")
        return "finished"

    @server.tool()
    async def samples(ctx: Context) -> str:
        result = await ctx.sample("Say hi", max_tokens=10)
        return f"sampled: {result.text}"

    return server


def _text(message: dict[str, Any]) -> str:
    text: str = message["result"]["content"][0]["text"]
    return text


# ---- sessions -------------------------------------------------------------------------------


async def test_initialize_gives_a_session_and_a_tool_call_is_answered_as_json(
    live_server,
) -> None:
    async with connected(live_server, create_app(_server())) as client:
        response = await client.initialize()
        assert response.headers["content-type"] == "application/json"
        session_id = response.headers["mcp-session-id"]
        assert re.fullmatch(r"[\x21-\x7e]{32}", session_id)
        result = response.json()["result"]
        assert result["protocolVersion"] == "2025-11-25"
        assert result["serverInfo"] == {"name": "http-test", "version": "1.0"}

        note = await client.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert note.status_code == 202
        assert note.content == b""

        answer = await client.post(
            client.message("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {
            "jsonrpc": "2.0",
            "id": 2,
            "result": {"content": [{"type": "text", "text": "hi"}], "isError": False},
        }


async def test_each_initialize_opens_a_new_session(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        first = client.session_id
        client.session_id = None
        await client.initialize()
        assert client.session_id != first


async def test_a_second_initialize_on_a_live_session_is_refused(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        response = await client.post(
            client.message(
                "initialize",
                {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
            )
        )
        message = messages_of(response)[-1]
        assert message["error"]["code"] == -32600
        assert message["id"] == 2


async def test_unknown_missing_and_deleted_sessions(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        session_id = client.session_id
        ping = client.message("ping")

        client.session_id = "0" * 32
        assert (await client.post(ping)).status_code == 404
        client.session_id = None
        missing = await client.post(ping)
        assert missing.status_code == 400
        assert "Mcp-Session-Id" in missing.json()["error"]["message"]

        client.session_id = session_id
        assert (await client.post(ping)).status_code == 200
        deleted = await client.http.delete("/mcp", headers=client.headers())
        assert deleted.status_code == 200
        gone = await client.post(ping)
        assert gone.status_code == 404
        assert "id" not in gone.json()
        assert (await client.http.get("/mcp", headers=client.headers())).status_code == 404
        assert (await client.http.delete("/mcp", headers=client.headers())).status_code == 404


async def test_a_body_over_the_cap_is_413(live_server) -> None:
    app = create_app(_server(), max_body_bytes=512)
    async with connected(live_server, app) as client:
        await client.initialize()
        big = client.message("tools/call", {"name": "echo", "arguments": {"text": "x" * 1000}})
        assert (await client.post(big)).status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: the cap is enforced while reading.
            body = orjson.dumps(big)
            for start in range(0, len(body), 100):
                yield body[start : start + 100]

        streamed = await client.http.post("/mcp", content=chunks(), headers=client.headers())
        assert streamed.status_code == 413
        small = client.message("tools/call", {"name": "echo", "arguments": {"text": "ok"}})
        assert _text(messages_of(await client.post(small))[0]) == "ok"


# ---- response modes -------------------------------------------------------------------------


async def test_auto_mode_answers_json_unless_the_tool_sends_something_first(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        plain = await client.post(
            client.message("tools/call", {"name": "echo", "arguments": {"text": "a"}})
        )
        assert plain.headers["content-type"] == "application/json"

        chatty = await client.post(client.message("tools/call", {"name": "logs_first"}))
        assert chatty.headers["content-type"] == "text/event-stream"
        events = parse_sse(chatty.text)
        assert events[0].data == ""  # priming: an id to resume from, and a retry hint
        assert events[0].id is not None
        assert events[0].retry == 1000
        messages = [e.json() for e in events[1:]]
        assert messages[0] == {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "working"},
        }
        assert _text(messages[1]) == "logged"
        assert len(messages) == 2
        ids = [e.id for e in events]
        assert None not in ids
        assert len(set(ids)) == len(ids)


async def test_sse_mode_always_streams(live_server) -> None:
    app = create_app(_server(), response_mode="sse")
    async with connected(live_server, app) as client:
        await client.initialize()
        response = await client.post(
            client.message("tools/call", {"name": "echo", "arguments": {"text": "s"}})
        )
        assert response.headers["content-type"] == "text/event-stream"
        events = parse_sse(response.text)
        assert [e.data == "" for e in events] == [True, False]
        assert _text(events[1].json()) == "s"


async def test_sse_mode_streams_without_priming_for_older_versions(live_server) -> None:
    app = create_app(_server(), response_mode="sse")
    async with connected(live_server, app) as client:
        await client.initialize(version="2025-06-18")
        response = await client.post(
            client.message("tools/call", {"name": "echo", "arguments": {"text": "s"}})
        )
        events = parse_sse(response.text)
        assert len(events) == 1
        assert _text(events[0].json()) == "s"


async def test_json_mode_answers_json_and_sends_notifications_on_the_standalone_stream(
    live_server,
) -> None:
    app = create_app(_server(), response_mode="json")
    async with connected(live_server, app) as client:
        await client.initialize()
        response = await client.post(client.message("tools/call", {"name": "logs_first"}))
        assert response.headers["content-type"] == "application/json"
        assert _text(response.json()) == "logged"
        with anyio.fail_after(TIMEOUT_S):
            async with client.stream_get() as stream:
                assert stream.status_code == 200
                data_events = (e async for e in sse_events(stream) if e.data)
                queued = await anext(data_events)
        assert queued.json()["params"] == {"level": "info", "data": "working"}


# ---- the standalone stream ------------------------------------------------------------------


async def test_the_standalone_stream_gets_list_changed_when_a_tool_is_added(live_server) -> None:
    server = _server()
    async with connected(live_server, create_app(server)) as client:
        await client.initialize()
        with anyio.fail_after(TIMEOUT_S):
            async with client.stream_get() as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"] == "text/event-stream"
                events = sse_events(stream)
                prime = await anext(events)
                assert prime.data == ""
                assert prime.id is not None

                second = await client.http.get("/mcp", headers=client.headers())
                assert second.status_code == 409

                server.add_tool(lambda: "new", name="added_at_runtime")
                event = await anext(events)
                assert event.json() == {
                    "jsonrpc": "2.0",
                    "method": "notifications/tools/list_changed",
                }
                assert event.id is not None
        tools = await client.call("tools/list")
        assert "added_at_runtime" in [t["name"] for t in tools["result"]["tools"]]


async def test_get_needs_an_event_stream_accept_header(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        refused = await client.http.get("/mcp", headers=client.headers(accept="application/json"))
        assert refused.status_code == 406


# ---- resumability ---------------------------------------------------------------------------


async def test_a_stream_the_tool_closed_is_resumed_with_last_event_id(live_server) -> None:
    gates = Gates()
    async with connected(live_server, create_app(_server(gates))) as client:
        await client.initialize()
        with anyio.fail_after(TIMEOUT_S):
            async with client.stream_post(client.message("tools/call", {"name": "polls"})) as first:
                assert first.headers["content-type"] == "text/event-stream"
                before_close = [e async for e in sse_events(first)]
            # The server ended the stream after the priming event; the call goes on.
            assert len(before_close) == 1
            prime = before_close[0]
            assert prime.data == ""
            assert prime.id is not None
            async with client.stream_get(last_event_id=prime.id) as resumed:
                assert resumed.status_code == 200
                gates.release.set()
                after = [e async for e in sse_events(resumed)]
        messages = [e.json() for e in after]
        assert messages[0]["params"] == {"level": "info", "data": "after the close"}
        assert _text(messages[1]) == "polled"
        assert len(messages) == 2


async def test_events_missed_after_a_dropped_connection_are_replayed_in_order(
    live_server,
) -> None:
    gates = Gates()
    store = InMemoryEventStore()
    app = create_app(_server(gates), event_store=store)
    async with connected(live_server, app) as client:
        await client.initialize()
        with anyio.fail_after(TIMEOUT_S):
            async with client.stream_post(
                client.message("tools/call", {"name": "two_steps"})
            ) as stream:
                events = sse_events(stream)
                await anext(events)  # priming
                one = await anext(events)
                assert one.json()["params"]["data"] == "one"
            # The client dropped the connection; the tool goes on without it.
            gates.release.set()
            assert client.session_id is not None
            assert one.id is not None
            while True:  # wait until the tool's last event is stored
                replay = await store.replay_after(client.session_id, one.id)
                if replay is not None and len(replay.events) == 2:
                    break
                await anyio.sleep(0.01)
            async with client.stream_get(last_event_id=one.id) as resumed:
                assert resumed.status_code == 200
                missed = [e async for e in sse_events(resumed)]
        assert [e.json().get("params", {}).get("data") for e in missed] == ["two", None]
        assert _text(missed[1].json()) == "finished"
        assert [e.id for e in missed] == [e.event_id for e in replay.events]

        unknown = await client.http.get("/mcp", headers=client.headers(last_event_id="s9:999"))
        assert unknown.status_code == 400


# ---- server-to-client requests --------------------------------------------------------------


async def test_sampling_round_trip_over_http(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize(capabilities={"sampling": {}})
        with anyio.fail_after(TIMEOUT_S):
            async with client.stream_post(
                client.message("tools/call", {"name": "samples"})
            ) as stream:
                assert stream.headers["content-type"] == "text/event-stream"
                events = (e async for e in sse_events(stream) if e.data)
                request = (await anext(events)).json()
                assert request["method"] == "sampling/createMessage"
                assert request["params"]["maxTokens"] == 10
                answer = await client.post(
                    {
                        "jsonrpc": "2.0",
                        "id": request["id"],
                        "result": {
                            "role": "assistant",
                            "content": {"type": "text", "text": "hello"},
                            "model": "test-model",
                        },
                    }
                )
                assert answer.status_code == 202
                assert answer.content == b""
                final = (await anext(events)).json()
        assert _text(final) == "sampled: hello"


async def test_sampling_is_refused_when_the_client_did_not_declare_it(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        message = await client.call("tools/call", {"name": "samples"})
        assert message["error"]["code"] == -32600


# ---- HTTP-level refusals --------------------------------------------------------------------


async def test_http_refusals(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        ping = client.message("ping")
        cases: list[tuple[dict[str, str], int]] = [
            ({"host": "evil.example"}, 421),
            ({"origin": "http://evil.example"}, 403),
            ({"origin": "http://localhost:6274"}, 200),
            ({"accept": "application/json"}, 406),
            ({"accept": "*/*"}, 200),
            ({"content_type": "text/plain"}, 415),
            ({"mcp_protocol_version": "1999-01-01"}, 400),
        ]
        for extra, status in cases:
            response = await client.post(ping, **extra)
            assert response.status_code == status, (extra, response.text)
            if status != 200:
                body = response.json()
                assert "id" not in body
                assert body["jsonrpc"] == "2.0"
        client.version = None  # no MCP-Protocol-Version header: 2025-03-26 is assumed
        assert (await client.post(ping)).status_code == 200
        put = await client.http.put("/mcp", content=b"{}", headers=client.headers())
        assert put.status_code == 405
        assert put.headers["allow"] == "GET, POST, DELETE"


async def test_bad_bodies_are_answered_with_json_rpc_errors(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        await client.initialize()
        unparsable = await client.post(b"{not json")
        assert unparsable.status_code == 400
        assert unparsable.json() == {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "Parse error"},
        }
        batch = await client.post([client.message("ping")])
        assert batch.status_code == 400
        assert batch.json()["error"]["code"] == -32600
        assert "id" not in batch.json()
        null_id = await client.post({"jsonrpc": "2.0", "id": None, "method": "ping"})
        assert null_id.status_code == 400
        assert "id" not in null_id.json()


async def test_a_modern_era_request_is_refused_with_the_supported_versions(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        response = await client.post(
            {
                "jsonrpc": "2.0",
                "id": "probe",
                "method": "server/discover",
                "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
            },
            mcp_protocol_version="2026-07-28",
        )
        assert response.status_code == 400
        body = response.json()
        assert body["id"] == "probe"
        assert body["error"]["code"] == -32600
        assert "2025-11-25" in body["error"]["data"]["supported"]


# ---- the health route and mounting ----------------------------------------------------------


async def test_the_health_route_counts_live_sessions(live_server) -> None:
    async with connected(live_server, create_app(_server())) as client:
        health = await client.http.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "sessions": 0}
        assert health.headers["cache-control"] == "no-store"
        await client.initialize()
        assert (await client.http.get("/healthz")).json() == {"status": "ok", "sessions": 1}
        await client.http.delete("/mcp", headers=client.headers())
        assert (await client.http.get("/healthz")).json()["sessions"] == 0
        assert (await client.http.head("/healthz")).status_code == 200
        assert (
            await client.http.get("/healthz", headers={"host": "evil.example"})
        ).status_code == 421
        assert (await client.http.post("/healthz")).status_code == 404
        assert (await client.http.get("/elsewhere")).status_code == 404


async def test_the_app_serves_under_a_starlette_mount_prefix(live_server) -> None:
    mcp_app = create_app(_server())
    outer = Starlette(routes=[Mount("/api/v1", app=mcp_app)])
    async with connected(live_server, outer, path="/api/v1/mcp") as client:
        await client.initialize()
        message = await client.call("tools/call", {"name": "echo", "arguments": {"text": "m"}})
        assert _text(message) == "m"
        health = await client.http.get("/api/v1/healthz")
        assert health.json() == {"status": "ok", "sessions": 1}
        unprefixed = await client.http.post(
            "/mcp", content=orjson.dumps(client.message("ping")), headers=client.headers()
        )
        assert unprefixed.status_code == 404
