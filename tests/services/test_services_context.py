"""What a handler does through its `Context`: progress, and requests to the client (sampling,
elicitation in form and URL modes, roots), refused unless the client declared the capability
(2025-11-25 Client Features, Utilities > Progress)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcp_core.core.protocol.errors import INVALID_PARAMS, INVALID_REQUEST, REQUEST_TIMEOUT
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _server() -> McpServer:
    server = McpServer("ctx")

    @server.tool()
    async def sample(ctx: Context) -> str:
        result = await ctx.sample(
            "Say hi",
            max_tokens=50,
            system_prompt="Be brief",
            temperature=0.2,
            stop_sequences=["\n"],
            include_context="thisServer",
            metadata={"k": "v"},
        )
        return f"{result.model}: {result.text} ({result.stop_reason})"

    @server.tool()
    async def ask(ctx: Context) -> str:
        answer = await ctx.elicit("Your name?", SCHEMA)
        return f"{answer.action} {answer.content}"

    @server.tool()
    async def ask_url(ctx: Context) -> str:
        answer = await ctx.elicit_url("Log in", "https://auth.example/x", "el-1")
        return answer.action

    @server.tool()
    async def roots(ctx: Context) -> str:
        found = await ctx.list_roots()
        return ",".join(f"{r.uri}|{r.name}" for r in found)

    @server.tool()
    async def impatient(ctx: Context) -> str:
        await ctx.request("roots/list", timeout=0.05)
        return "answered"

    @server.tool()
    async def progress(ctx: Context) -> str:
        await ctx.report_progress(1, 4, "a quarter")
        await ctx.report_progress(2.5)
        return str(ctx.progress_token)

    return server


async def _call_and_answer(
    peer: Any,
    tool: str,
    method: str,
    result: dict[str, Any] | None = None,
    error: tuple[int, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Call a tool, wait for the request it sends to the client, answer it with `result` (or
    `error`) as the client would; return that request and the tool call's response."""
    out: list[dict[str, Any] | None] = []

    async def call() -> None:
        out.append(await peer.request("tools/call", {"name": tool}))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            request = await peer.outbound.wait_for(method)
            if error is not None:
                assert peer.answer_error(request, *error)
            else:
                assert peer.answer(request, result or {})
    response = out[0]
    assert response is not None
    return request, response


FULL_CAPABILITIES = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}}


@pytest.mark.parametrize(
    ("tool", "capability"),
    [("sample", "sampling"), ("ask", "elicitation"), ("ask_url", "URL elicitation")],
)
async def test_requests_to_the_client_are_refused_without_the_capability(
    connect, tool: str, capability: str
) -> None:
    peer = await connect(_server(), capabilities={"roots": {}})
    error = await peer.error("tools/call", {"name": tool})
    assert error == {
        "code": INVALID_REQUEST,
        "message": f"the client did not declare the {capability} capability",
    }
    assert peer.outbound.sent == []


async def test_roots_are_refused_without_the_capability(connect) -> None:
    peer = await connect(_server(), capabilities={"sampling": {}})
    error = await peer.error("tools/call", {"name": "roots"})
    assert error["message"] == "the client did not declare the roots capability"


async def test_url_elicitation_needs_the_url_mode_declared(connect) -> None:
    peer = await connect(_server(), capabilities={"elicitation": {}})
    error = await peer.error("tools/call", {"name": "ask_url"})
    assert error["code"] == INVALID_REQUEST


async def test_sampling_round_trip(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    request, response = await _call_and_answer(
        peer,
        "sample",
        "sampling/createMessage",
        result={
            "role": "assistant",
            "content": {"type": "text", "text": "hi"},
            "model": "m-1",
            "stopReason": "endTurn",
        },
    )
    assert request == {
        "jsonrpc": "2.0",
        "id": request["id"],
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": "Say hi"}}],
            "maxTokens": 50,
            "systemPrompt": "Be brief",
            "temperature": 0.2,
            "stopSequences": ["\n"],
            "includeContext": "thisServer",
            "metadata": {"k": "v"},
        },
    }
    assert isinstance(request["id"], int)
    assert response["result"]["content"] == [{"type": "text", "text": "m-1: hi (endTurn)"}]


async def test_a_sampling_result_with_a_list_of_blocks_keeps_the_first(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    _, response = await _call_and_answer(
        peer,
        "sample",
        "sampling/createMessage",
        result={
            "role": "assistant",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "2"}],
            "model": "m",
        },
    )
    assert response["result"]["content"][0]["text"] == "m: first (None)"


@pytest.mark.parametrize(
    ("version", "mode"), [("2025-11-25", {"mode": "form"}), ("2025-06-18", {})]
)
async def test_form_elicitation_round_trip(connect, version: str, mode: dict[str, str]) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES, protocol_version=version)
    request, response = await _call_and_answer(
        peer,
        "ask",
        "elicitation/create",
        result={"action": "accept", "content": {"name": "Ada"}},
    )
    assert request["params"] == {"message": "Your name?", "requestedSchema": SCHEMA, **mode}
    assert response["result"]["content"][0]["text"] == "accept {'name': 'Ada'}"


async def test_url_elicitation_round_trip(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    request, response = await _call_and_answer(
        peer,
        "ask_url",
        "elicitation/create",
        result={"action": "decline"},
    )
    assert request["params"] == {
        "mode": "url",
        "message": "Log in",
        "url": "https://auth.example/x",
        "elicitationId": "el-1",
    }
    assert response["result"]["content"][0]["text"] == "decline"


async def test_an_elicitation_answer_with_an_unknown_action_is_invalid_params(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    _, response = await _call_and_answer(peer, "ask", "elicitation/create", result={"action": "ok"})
    assert response["error"]["code"] == INVALID_PARAMS


async def test_roots_round_trip_skips_malformed_roots(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    request, response = await _call_and_answer(
        peer,
        "roots",
        "roots/list",
        result={
            "roots": [
                {"uri": "file:///a", "name": "A"},
                {"uri": "file:///b"},
                {"name": "no uri"},
                "junk",
            ]
        },
    )
    assert "params" not in request
    assert response["result"]["content"][0]["text"] == "file:///a|A,file:///b|None"


async def test_an_error_answer_from_the_client_becomes_the_tools_json_rpc_error(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    _, response = await _call_and_answer(
        peer,
        "roots",
        "roots/list",
        error=(-1, "user said no"),
    )
    assert response["error"] == {"code": -1, "message": "user said no"}


async def test_a_request_the_client_never_answers_times_out(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    with anyio.fail_after(5):
        error = await peer.error("tools/call", {"name": "impatient"})
    assert error["code"] == REQUEST_TIMEOUT
    # A late answer finds nobody waiting.
    assert peer.answer(peer.outbound.sent[0], {"roots": []}) is False


async def test_requests_to_the_client_wait_for_the_initialized_notification(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES, ready=False)
    error = await peer.error("tools/call", {"name": "roots"})
    assert error["code"] == INVALID_REQUEST
    assert "initialized" in error["message"]
    assert peer.outbound.sent == []


async def test_closing_the_session_ends_a_handler_waiting_on_the_client(connect) -> None:
    server = McpServer("ctx")
    outcome: list[str] = []

    @server.tool()
    async def waits(ctx: Context) -> str:
        try:
            await ctx.list_roots()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise
        outcome.append("answered")
        return "answered"

    peer = await connect(server, capabilities=FULL_CAPABILITIES)
    responses: list[dict[str, Any] | None] = []

    async def call() -> None:
        responses.append(await peer.request("tools/call", {"name": "waits"}))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await peer.outbound.wait_for("roots/list")
            peer.session.close()
    assert outcome == ["cancelled"]
    assert responses == [None]


async def test_a_response_to_an_unknown_request_is_dropped(connect) -> None:
    peer = await connect(_server(), capabilities=FULL_CAPABILITIES)
    assert peer.answer({"id": 999}, {}) is False


async def test_progress_is_reported_on_the_request_token(connect) -> None:
    peer = await connect(_server())
    result = await peer.result(
        "tools/call", {"name": "progress", "_meta": {"progressToken": "tok"}}
    )
    assert result["content"][0]["text"] == "tok"
    assert peer.outbound.sent == [
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "tok", "progress": 1, "total": 4, "message": "a quarter"},
        },
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": "tok", "progress": 2.5},
        },
    ]


@pytest.mark.parametrize("meta", [None, {}, {"progressToken": True}, {"progressToken": 1.5}])
async def test_without_a_usable_progress_token_nothing_is_reported(
    connect, meta: dict[str, Any] | None
) -> None:
    peer = await connect(_server())
    params: dict[str, Any] = {"name": "progress"}
    if meta is not None:
        params["_meta"] = meta
    result = await peer.result("tools/call", params)
    assert result["content"][0]["text"] == "None"
    assert peer.outbound.sent == []
