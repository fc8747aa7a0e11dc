"""The light per-request paths (bench/README.md, Analysis): what they skip must not change what
the client sees. Handlers that cannot suspend run without a cancel scope or a task of their own;
an SSE reply goes out in as few body messages as its events allow; headers are read in one pass.
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.asgi._plumbing import header_map
from mcp_core.adapters.storage.memory import InMemoryEventStore
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio

BASE = [
    (b"host", b"localhost:8000"),
    (b"accept", b"application/json, text/event-stream"),
    (b"content-type", b"application/json"),
]
INITIALIZE = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
    }
)


def _server() -> McpServer:
    server = McpServer("fast")

    @server.tool()
    def echo(text: str) -> str:
        return text

    @server.tool()
    async def chatty(text: str, ctx: Context) -> str:
        await ctx.info("before")
        return text

    @server.tool(run_in_thread=True)
    def threaded(text: str) -> str:
        return text

    return server


async def _session(asgi: Any, app: Any) -> list[tuple[bytes, bytes]]:
    opened = await asgi(app, headers=BASE, body=INITIALIZE)
    session = opened.headers["mcp-session-id"].encode()
    headers = [*BASE, (b"mcp-session-id", session), (b"mcp-protocol-version", b"2025-11-25")]
    done = await asgi(
        app, headers=headers, body=b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
    )
    assert done.status == 202
    return headers


def _call(request_id: int, tool: str) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": "hi"}},
        }
    )


def test_headers_are_read_in_one_pass_and_repeats_are_joined() -> None:
    assert header_map([(b"Host", b"a"), (b"X-A", b"1")]) == {"host": "a", "x-a": "1"}
    assert header_map([(b"accept", b"a/b"), (b"Accept", b"c/d")]) == {"accept": "a/b, c/d"}
    assert header_map(iter([(b"X", b"y"), (b"x", b"z")])) == {"x": "y, z"}


def test_only_handlers_that_cannot_suspend_run_inline() -> None:
    server = _server()
    assert server.runs_inline("tools/call", {"name": "echo"})
    assert not server.runs_inline("tools/call", {"name": "chatty"})
    assert not server.runs_inline("tools/call", {"name": "threaded"})
    assert not server.runs_inline("tools/call", {"name": "missing"})
    assert not server.runs_inline("tools/call", None)
    assert server.runs_inline("tools/list", None)
    assert not server.runs_inline("resources/read", {"uri": "x"})
    assert not server.runs_inline("prompts/get", {"name": "x"})


async def test_an_inline_tool_answers_sse_with_its_events_and_the_end_in_one_body(asgi) -> None:
    events = InMemoryEventStore()
    app = create_app(_server(), response_mode="sse", event_store=events)
    headers = await _session(asgi, app)
    reply = await asgi(app, headers=headers, body=_call(7, "echo"))
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    bodies = reply.sent[1:]
    assert len(bodies) == 1
    assert bodies[0]["more_body"] is False
    chunk = bodies[0]["body"]
    priming, message = chunk.split(b"\n\n")[:2]
    assert b"retry: " in priming
    assert b"event: message" not in priming
    payload = orjson.loads(message.split(b"data: ", 1)[1])
    assert payload == {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {"content": [{"type": "text", "text": "hi"}], "isError": False},
    }
    # Both events were stored, priming first, so the stream can be resumed from either.
    session_id = dict(headers)[b"mcp-session-id"].decode()
    first_id = priming.split(b"id: ", 1)[1].split(b"\n", 1)[0].decode()
    replay = await events.replay_after(session_id, first_id)
    assert replay is not None
    assert [orjson.loads(e.payload)["id"] for e in replay.events] == [7]


async def test_a_tool_that_sends_first_still_streams_in_order(asgi) -> None:
    app = create_app(_server(), response_mode="auto")
    headers = await _session(asgi, app)
    set_level = orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "info"}}
    )
    assert (await asgi(app, headers=headers, body=set_level)).status == 200
    reply = await asgi(app, headers=headers, body=_call(8, "chatty"))
    assert reply.headers["content-type"] == "text/event-stream"
    datas = [
        orjson.loads(line[len(b"data: ") :])
        for line in reply.body.split(b"\n")
        if line.startswith(b"data: ") and len(line) > len(b"data: ")
    ]
    assert [d.get("method") or d.get("id") for d in datas] == ["notifications/message", 8]
    assert reply.sent[-1]["more_body"] is False


async def test_an_inline_tool_in_auto_mode_answers_json(asgi) -> None:
    app = create_app(_server(), response_mode="auto")
    headers = await _session(asgi, app)
    reply = await asgi(app, headers=headers, body=_call(9, "echo"))
    assert reply.headers["content-type"] == "application/json"
    assert orjson.loads(reply.body)["result"]["content"][0]["text"] == "hi"


async def test_an_async_tool_is_still_cancelled_in_json_mode(asgi) -> None:
    server = McpServer("cancel")
    started = anyio.Event()

    @server.tool()
    async def slow(ctx: Context) -> str:
        started.set()
        await anyio.sleep(30)
        return "late"

    app = create_app(server, response_mode="json")
    headers = await _session(asgi, app)
    call = orjson.dumps(
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "slow"}}
    )
    cancel = orjson.dumps(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}
    )
    replies: list[Any] = []

    async def call_it() -> None:
        replies.append(await asgi(app, headers=headers, body=call))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call_it)
            await started.wait()
            assert (await asgi(app, headers=headers, body=cancel)).status == 202
    assert orjson.loads(replies[0].body)["error"]["code"] == -32800
