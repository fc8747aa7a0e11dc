"""The official Python SDK client (`mcp`, pinned in the dev extra) against this server.

Every test runs in both of the client's connect modes:

- `legacy`: the 2025 `initialize` handshake;
- `auto` (the client's default): it first probes `server/discover` at 2026-07-28. This server
  does not serve the modern era yet, so it must answer the probe in a way the client reads as
  "legacy server" (HTTP 400 with a JSON-RPC error that is not a modern code) and the client
  must fall back to `initialize` on the same transport and end up on 2025-11-25.

The server records every HTTP exchange (see conftest.py), so tests check the wire on the
server's side as well as what the client reports. The client's callbacks (sampling,
elicitation, roots, logging, progress) record what reached them and answer deterministically.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    ListRootsResult,
    LoggingMessageNotificationParams,
    PromptReference,
    ResourceTemplateReference,
    Root,
    TextContent,
)

from .conftest import GREETING, LOGO, PAGE_SIZE

if TYPE_CHECKING:
    from .conftest import LiveServer, ServeFn

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

ALL_TOOLS = [
    "echo",
    "add",
    "fail",
    "log_and_progress",
    "ask_model",
    "ask_user",
    "client_roots",
    "wait_for_cancel",
]
WAIT = 5.0  # seconds any single wait in these tests may take
CONNECTION_TIMEOUT = 15.0  # seconds one client connection may last, from connect to close


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def connect(live: LiveServer, mode: str, **options: Any) -> AsyncIterator[Client]:
    """A connected client; the whole connection, closing included, is bounded in time."""
    with anyio.fail_after(CONNECTION_TIMEOUT):
        async with Client(live.url, mode=mode, **options) as client:
            yield client


def text_of(result: Any) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


# ---- connecting ---------------------------------------------------------------------------


async def test_connect_ends_on_2025_11_25(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None
        assert (client.server_info.name, client.server_info.version) == (
            "mcp-core-interop",
            "1.2.3",
        )
        assert client.instructions == "A server for the interoperability tests."
        caps = client.server_capabilities
        assert caps.tools is not None
        assert caps.resources is not None
        assert caps.prompts is not None
        assert caps.completions is not None
        assert caps.logging is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.send_ping()

    posts = live.posted()
    if mode == "auto":
        # The probe came first, was refused as the 2025-11-25 transport requires for an
        # unsupported MCP-Protocol-Version, and the client fell back to the handshake.
        assert posts[:3] == [
            ("server/discover", 400),
            ("initialize", 200),
            ("notifications/initialized", 202),
        ]
        probe = live.exchanges_for("POST", "server/discover")[0]
        assert probe.headers["mcp-protocol-version"] == "2026-07-28"
        assert probe.session_id is None
        # The refusal echoes the probe's id, names the versions this server speaks, and its
        # code is a plain JSON-RPC one (Invalid Request or Method not found): a modern-era code
        # (-32020..-32022) would tell the client that the server speaks 2026-07-28.
        error = probe.answer
        assert error["id"] == probe.message["id"]
        assert error["error"]["code"] in (-32600, -32601)
        assert error["error"]["data"]["supported"][0] == "2025-11-25"
    else:
        assert "server/discover" not in [method for method, _ in posts]
        assert posts[:2] == [("initialize", 200), ("notifications/initialized", 202)]
    initialize = live.exchanges_for("POST", "initialize")[0].message
    assert initialize["params"]["protocolVersion"] == "2025-11-25"
    # After the handshake every request names the session and the negotiated version.
    later = [e for e in live.exchanges if e.rpc_method not in ("initialize", "server/discover")]
    assert later
    assert all(e.headers.get("mcp-protocol-version") == "2025-11-25" for e in later)
    (session_id,) = {e.session_id for e in later}
    assert session_id is not None


# ---- tools --------------------------------------------------------------------------------


async def test_list_tools_follows_cursors(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        names: list[str] = []
        pages = 0
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            pages += 1
            assert len(page.tools) <= PAGE_SIZE
            names.extend(tool.name for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
            assert pages < 10, "the server never stopped paginating"
        assert names == ALL_TOOLS
        assert pages == -(-len(ALL_TOOLS) // PAGE_SIZE)
    listed = live.exchanges_for("POST", "tools/list")
    assert len(listed) == pages
    assert "cursor" not in (listed[0].message.get("params") or {})
    assert all(e.message["params"]["cursor"] for e in listed[1:])


async def test_call_tool_text(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        result = await client.call_tool("echo", {"text": "hello, world"})
    assert result.is_error is False
    assert text_of(result) == ["hello, world"]
    assert result.structured_content is None


async def test_call_tool_structured_output(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        tools = await client.list_tools()
        add = next(tool for tool in tools.tools if tool.name == "add")
        assert add.output_schema is not None
        assert add.output_schema["properties"]["total"] == {"type": "integer"}
        # The client validates structuredContent against the listed outputSchema.
        result = await client.call_tool("add", {"a": 2, "b": 40})
    assert result.is_error is False
    assert result.structured_content == {"total": 42, "operands": [2, 40]}
    # Backwards compatibility: the same object as JSON text.
    assert [json.loads(t) for t in text_of(result)] == [{"total": 42, "operands": [2, 40]}]


async def test_call_of_an_unlisted_tool_lists_tools_first(live: LiveServer, mode: str) -> None:
    # mcp 2.3.0 fetches tools/list before validating the first result of a tool it has not
    # seen listed; the structured result still validates.
    async with connect(live, mode) as client:
        result = await client.call_tool("add", {"a": 1, "b": 1})
    assert result.structured_content == {"total": 2, "operands": [1, 1]}
    methods = [m for m, _ in live.posted()]
    assert methods.index("tools/call") < methods.index("tools/list")


async def test_tool_error_is_an_error_result(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        result = await client.call_tool("fail", {"reason": "the disk is full"})
    assert result.is_error is True
    assert text_of(result) == ["the disk is full"]


async def test_invalid_arguments_are_an_error_result(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        wrong_type = await client.call_tool("add", {"a": "two", "b": 3})
        missing = await client.call_tool("echo", {})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("no_such_tool", {})
    assert wrong_type.is_error is True
    assert "Invalid arguments for tool add" in text_of(wrong_type)[0]
    assert missing.is_error is True
    assert "text" in text_of(missing)[0]
    assert unknown.value.error.code == -32602
    # The invalid calls were answered as results (HTTP 200), not as protocol errors.
    statuses = [s for m, s in live.posted() if m == "tools/call"]
    assert statuses == [200, 200, 200]


# ---- resources, prompts, completion -------------------------------------------------------


async def test_resources_list_read_and_templates(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        listed = await client.list_resources()
        templates = await client.list_resource_templates()
        greeting = await client.read_resource("interop://greeting")
        logo = await client.read_resource("interop://logo")
        item = await client.read_resource("interop://items/b7")
        with pytest.raises(MCPError) as missing:
            await client.read_resource("interop://nothing-here")

    by_uri = {str(r.uri): r for r in listed.resources}
    assert set(by_uri) == {"interop://greeting", "interop://logo"}
    assert by_uri["interop://greeting"].mime_type == "text/plain"
    assert by_uri["interop://greeting"].description == "A static text resource."
    assert [t.uri_template for t in templates.resource_templates] == ["interop://items/{item_id}"]

    (text,) = greeting.contents
    assert (str(text.uri), text.mime_type, getattr(text, "text", None)) == (
        "interop://greeting",
        "text/plain",
        GREETING,
    )
    (blob,) = logo.contents
    assert base64.b64decode(getattr(blob, "blob", "")) == LOGO
    (data,) = item.contents
    assert json.loads(getattr(data, "text", "")) == {"id": "b7", "label": "Item b7"}
    assert missing.value.error.code == -32002


async def test_prompts_list_and_get(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        listed = await client.list_prompts()
        prompt = await client.get_prompt("greet", {"name": "Ada", "style": "formal"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("greet", {})

    (greet,) = listed.prompts
    assert greet.name == "greet"
    assert greet.description == "Greets someone by name."
    assert [(a.name, a.required) for a in greet.arguments or []] == [
        ("name", True),
        ("style", False),
    ]
    (message,) = prompt.messages
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    assert message.content.text == "Say hello to Ada in a formal style."
    assert missing.value.error.code == -32602


async def test_completion(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        names = await client.complete(
            PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "al"}
        )
        items = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="interop://items/{item_id}"),
            {"name": "item_id", "value": "a"},
        )
    assert names.completion.values == ["alice", "albert"]
    assert names.completion.total == 2
    assert names.completion.has_more is False
    assert items.completion.values == ["a1", "a2"]


# ---- logging and progress -----------------------------------------------------------------


async def test_logging_and_progress_notifications(live: LiveServer, mode: str) -> None:
    logs: list[LoggingMessageNotificationParams] = []
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect(live, mode, logging_callback=on_log) as client:
        result = await client.call_tool(
            "log_and_progress", {"steps": 3}, progress_callback=on_progress
        )
        assert text_of(result) == ["done 3 steps"]
        await live.wait_for(lambda: len(logs) == 6 and len(progress) == 3, "6 logs, 3 progress")
        assert [(m.level, m.logger, m.data) for m in logs[:2]] == [
            ("info", "interop", "step 1 of 3"),
            ("debug", "interop", "debug detail 1"),
        ]
        assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]

        # logging/setLevel filters what the server sends from then on.
        logs.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.set_logging_level("info")
        await client.call_tool("log_and_progress", {"steps": 2})
        await live.wait_for(lambda: len(logs) >= 2, "2 info logs")
        await anyio.sleep(0.05)  # room for a debug message that must not come
        assert [(m.level, m.data) for m in logs] == [
            ("info", "step 1 of 2"),
            ("info", "step 2 of 2"),
        ]

    # The progress token the client chose is the one the server echoed.
    call = live.exchanges_for("POST", "tools/call")[0].message
    assert "progressToken" in call["params"]["_meta"]


# ---- requests from the server to the client -----------------------------------------------


def sampling_answerer(seen: list[CreateMessageRequestParams]) -> Any:
    async def on_sampling(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        seen.append(params)
        question = params.messages[0].content
        asked = question.text if isinstance(question, TextContent) else "?"
        return CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=f"you asked {asked!r}"),
            model="interop-model",
            stop_reason="endTurn",
        )

    return on_sampling


async def test_sampling(live: LiveServer, mode: str) -> None:
    seen: list[CreateMessageRequestParams] = []
    async with connect(live, mode, sampling_callback=sampling_answerer(seen)) as client:
        result = await client.call_tool("ask_model", {"question": "What is 6 x 7?"})
    assert result.is_error is False
    assert text_of(result) == ["interop-model said: you asked 'What is 6 x 7?'"]
    (params,) = seen
    assert params.max_tokens == 64
    assert params.system_prompt == "Be brief."
    assert params.messages[0].role == "user"
    initialize = live.exchanges_for("POST", "initialize")[0].message
    assert "sampling" in initialize["params"]["capabilities"]


async def test_sampling_without_the_capability_is_refused(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("ask_model", {"question": "anyone there?"})
    assert "sampling" in refused.value.error.message


async def test_elicitation_form_mode(live: LiveServer, mode: str) -> None:
    seen: list[ElicitRequestParams] = []
    answers = iter(
        [
            ElicitResult(action="accept", content={"name": "Ada", "age": 36}),
            ElicitResult(action="decline"),
        ]
    )

    async def on_elicit(context: Any, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params)
        return next(answers)

    async with connect(live, mode, elicitation_callback=on_elicit) as client:
        accepted = await client.call_tool("ask_user", {})
        declined = await client.call_tool("ask_user", {})
    assert json.loads(text_of(accepted)[0]) == {
        "action": "accept",
        "content": {"name": "Ada", "age": 36},
    }
    assert json.loads(text_of(declined)[0]) == {"action": "decline", "content": None}
    first = seen[0]
    assert first.mode == "form"
    assert first.message == "What is your name?"
    assert first.requested_schema["required"] == ["name"]


async def test_roots(live: LiveServer, mode: str) -> None:
    async def on_list_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(
            roots=[
                Root(uri="file:///work/project", name="project"),
                Root(uri="file:///tmp/scratch"),
            ]
        )

    async with connect(live, mode, list_roots_callback=on_list_roots) as client:
        result = await client.call_tool("client_roots", {})
        assert result.structured_content == {
            "roots": [
                {"uri": "file:///work/project", "name": "project"},
                {"uri": "file:///tmp/scratch", "name": None},
            ]
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.send_roots_list_changed()
        await live.wait_for(live.probe.roots_changed.is_set, "the roots-changed callback")
    initialize = live.exchanges_for("POST", "initialize")[0].message
    assert initialize["params"]["capabilities"]["roots"] == {"listChanged": True}


# ---- cancellation and closing -------------------------------------------------------------


async def test_cancellation(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "wait_for_cancel", {})
            await live.wait_for(live.probe.cancel_started.is_set, "the tool to start")
            tg.cancel_scope.cancel()
        # The client told the server, and the server cancelled the running handler.
        await live.wait_for(live.probe.cancelled.is_set, "the handler to be cancelled")
        # The session goes on.
        result = await client.call_tool("echo", {"text": "still here"})
        assert text_of(result) == ["still here"]

    cancelled_call = live.exchanges_for("POST", "tools/call")[0]
    (cancel,) = live.exchanges_for("POST", "notifications/cancelled")
    assert cancel.message["params"]["requestId"] == cancelled_call.message["id"]
    assert cancel.status == 202
    # No result for the cancelled call: its POST got a "Request cancelled" error (an HTTP
    # request needs an answer) or, when it was streaming, a stream with no response.
    assert b'"result"' not in cancelled_call.response_body


async def test_close_deletes_the_session(live: LiveServer, mode: str) -> None:
    async with connect(live, mode) as client:
        await client.call_tool("echo", {"text": "bye"})
        assert live.live_sessions == 1
    (delete,) = live.exchanges_for("DELETE")
    session_id = delete.session_id
    assert session_id is not None
    assert delete.status == 200
    assert live.live_sessions == 0
    # The session is gone: the server answers 404 to anything that names it.
    async with httpx.AsyncClient(timeout=WAIT) as http:
        after = await http.post(
            live.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "accept": "application/json, text/event-stream",
                "mcp-session-id": session_id,
                "mcp-protocol-version": "2025-11-25",
            },
        )
    assert after.status_code == 404


# ---- the same traffic over each response mode ---------------------------------------------


@pytest.mark.parametrize("response_mode", ["json", "sse"])
async def test_server_to_client_traffic_in_each_response_mode(
    serve: ServeFn, mode: str, response_mode: str
) -> None:
    # "sse": every answer, initialize included, is an event stream. "json": requests have no
    # stream, so what a handler sends (the sampling request, log and progress notifications)
    # travels on the session's GET stream instead.
    live = serve(response_mode=response_mode)
    seen: list[CreateMessageRequestParams] = []
    logs: list[LoggingMessageNotificationParams] = []
    progress: list[float] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with connect(
        live, mode, sampling_callback=sampling_answerer(seen), logging_callback=on_log
    ) as client:
        assert client.protocol_version == "2025-11-25"
        sampled = await client.call_tool("ask_model", {"question": "ping?"})
        assert text_of(sampled) == ["interop-model said: you asked 'ping?'"]
        await client.call_tool("log_and_progress", {"steps": 2}, progress_callback=on_progress)
        await live.wait_for(lambda: len(logs) == 4, "4 log messages")
        assert [m.data for m in logs] == [
            "step 1 of 2",
            "debug detail 1",
            "step 2 of 2",
            "debug detail 2",
        ]
        if response_mode == "sse":
            await live.wait_for(lambda: len(progress) == 2, "2 progress notifications")
            assert progress == [1, 2]
        else:
            # In JSON mode a request has no stream: its logs go to the GET stream, and its
            # progress is dropped (it could only arrive after the response).
            (stream,) = live.exchanges_for("GET")
            assert stream.response_body.count(b'"method":"notifications/message"') == 4
            assert b'"method":"notifications/progress"' not in stream.response_body
            assert progress == []
    assert len(seen) == 1
    assert live.live_sessions == 0
    if mode == "auto":
        assert live.posted()[0] == ("server/discover", 400)
