"""`McpServer`: initialize, capabilities, the dispatcher, completion, logging, pagination,
cancellation and broadcasts (2025-11-25 Lifecycle, Server Features, Utilities)."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import orjson
import pytest

from mcp_core.core.machines.session import SessionState
from mcp_core.core.protocol.errors import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND
from mcp_core.core.protocol.types import Completion, Icon
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio


def _noop() -> str:
    return "ok"


def _with_tools(*names: str, **options: Any) -> McpServer:
    server = McpServer("s", **options)
    for name in names:
        server.add_tool(_noop, name=name)
    return server


# ---- initialize -----------------------------------------------------------------------------


async def test_initialize_answers_identity_capabilities_and_instructions(connect) -> None:
    server = McpServer(
        "weather",
        "2.0",
        title="Weather",
        description="Forecasts",
        website_url="https://w.example",
        icons=[Icon(src="https://w.example/i.png")],
        instructions="Ask about cities.",
    )
    peer = await connect(server, protocol_version="2025-06-18")
    assert peer.initialize_result == {
        "protocolVersion": "2025-06-18",
        "capabilities": {"logging": {}},
        "serverInfo": {
            "name": "weather",
            "version": "2.0",
            "title": "Weather",
            "description": "Forecasts",
            "websiteUrl": "https://w.example",
            "icons": [{"src": "https://w.example/i.png"}],
        },
        "instructions": "Ask about cities.",
    }
    assert peer.session.client is not None
    assert peer.session.client.info == {"name": "test-client", "version": "1.0"}


async def test_an_unsupported_version_is_answered_with_the_latest(connect) -> None:
    peer = await connect(McpServer("s"), protocol_version="2024-11-05")
    assert peer.initialize_result["protocolVersion"] == "2025-11-25"
    assert peer.session.protocol_version == "2025-11-25"


async def test_a_second_initialize_is_refused(connect) -> None:
    peer = await connect(McpServer("s"))
    error = await peer.error(
        "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}}
    )
    assert error["code"] == INVALID_REQUEST
    assert "already initialized" in error["message"]


async def test_requests_are_served_before_the_initialized_notification(connect) -> None:
    peer = await connect(_with_tools("a"), ready=False)
    assert peer.session.state is SessionState.INITIALIZING
    assert [t["name"] for t in (await peer.result("tools/list"))["tools"]] == ["a"]
    await peer.notify("notifications/initialized")
    assert peer.session.state is SessionState.READY


async def test_ping_is_answered_with_an_empty_result(connect) -> None:
    peer = await connect(McpServer("s"))
    assert await peer.result("ping") == {}


async def test_a_closed_session_refuses_requests(connect) -> None:
    peer = await connect(_with_tools("a"))
    peer.session.close()
    error = await peer.error("tools/list")
    assert error["code"] == INVALID_REQUEST
    assert "closed" in error["message"]


async def test_an_unknown_method_is_method_not_found(connect) -> None:
    peer = await connect(McpServer("s"))
    assert await peer.error("tools/frobnicate") == {
        "code": METHOD_NOT_FOUND,
        "message": "Method not found: tools/frobnicate",
    }


async def test_an_unexpected_handler_failure_is_a_generic_internal_error(connect) -> None:
    server = McpServer("s")

    @server.completion("ref/prompt", "p")
    def explodes(argument: str, value: str, context: dict[str, str]) -> list[str]:
        raise RuntimeError("secret internals")

    server.prompt(name="p")(lambda: "x")
    peer = await connect(server)
    error = await peer.error(
        "completion/complete",
        {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": ""}},
    )
    assert error == {"code": -32603, "message": "Internal error"}


# ---- capabilities ---------------------------------------------------------------------------


async def test_an_empty_server_advertises_only_logging(connect) -> None:
    peer = await connect(McpServer("s"))
    assert peer.initialize_result["capabilities"] == {"logging": {}}
    peer = await connect(McpServer("s", logging_enabled=False))
    assert peer.initialize_result["capabilities"] == {}


async def test_features_are_advertised_once_they_have_something(connect) -> None:
    server = _with_tools("t")
    server.resource("a://r")(lambda: "r")
    server.prompt(name="p")(lambda: "p")
    server.completion("ref/prompt", "p")(lambda argument, value, context: [])
    peer = await connect(server)
    assert peer.initialize_result["capabilities"] == {
        "tools": {"listChanged": True},
        "resources": {"subscribe": True, "listChanged": True},
        "prompts": {"listChanged": True},
        "completions": {},
        "logging": {},
    }


async def test_enabled_features_are_advertised_while_empty(connect) -> None:
    server = McpServer("s", logging_enabled=False)
    server.enable("tools", "resources", "prompts", "completions")
    peer = await connect(server)
    assert set(peer.initialize_result["capabilities"]) == {
        "tools",
        "resources",
        "prompts",
        "completions",
    }
    assert await peer.result("tools/list") == {"tools": []}
    assert await peer.result("resources/templates/list") == {"resourceTemplates": []}
    with pytest.raises(ValueError, match="unknown features"):
        server.enable("sampling")


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/list", {}),
        ("tools/call", {"name": "x"}),
        ("resources/list", {}),
        ("resources/templates/list", {}),
        ("resources/read", {"uri": "a://x"}),
        ("resources/subscribe", {"uri": "a://x"}),
        ("resources/unsubscribe", {"uri": "a://x"}),
        ("prompts/list", {}),
        ("prompts/get", {"name": "x"}),
        ("completion/complete", {"ref": {"type": "ref/prompt", "name": "x"}}),
        ("logging/setLevel", {"level": "info"}),
    ],
)
async def test_methods_of_features_not_advertised_are_method_not_found(
    connect, method: str, params: dict[str, Any]
) -> None:
    peer = await connect(McpServer("s", logging_enabled=False))
    error = await peer.error(method, params)
    assert error["code"] == METHOD_NOT_FOUND


async def test_a_session_keeps_the_capabilities_it_negotiated(connect) -> None:
    server = McpServer("s")
    early = await connect(server)
    server.add_tool(_noop, name="late")
    late = await connect(server)
    assert (await early.error("tools/call", {"name": "late"}))["code"] == METHOD_NOT_FOUND
    assert (await late.call_tool("late"))["content"] == [{"type": "text", "text": "ok"}]


# ---- completion -----------------------------------------------------------------------------


def _completing_server() -> McpServer:
    server = McpServer("c")

    @server.prompt()
    def greet(name: str, lang: str = "en") -> str:
        return name

    @server.completion("ref/prompt", "greet")
    def names(argument: str, value: str, context: dict[str, str]) -> list[str]:
        if argument == "lang":
            return [f"{context.get('name', '?')}-{code}" for code in ("en", "fr")]
        return [n for n in ("ada", "alan", "grace") if n.startswith(value)]

    @server.resource("u://{n}")
    def numbered(n: str) -> str:
        return n

    @server.completion("ref/resource", "u://{n}")
    async def many(argument: str, value: str, context: dict[str, str]) -> list[str]:
        return [str(i) for i in range(250)]

    return server


def _complete_params(ref: dict[str, Any], name: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"ref": ref, "argument": {"name": name, "value": value}, **extra}


async def test_completion_values_come_from_the_registered_function(connect) -> None:
    peer = await connect(_completing_server())
    ref = {"type": "ref/prompt", "name": "greet"}
    result = await peer.result("completion/complete", _complete_params(ref, "name", "a"))
    assert result == {"completion": {"values": ["ada", "alan"], "hasMore": False}}
    result = await peer.result(
        "completion/complete",
        _complete_params(ref, "lang", "", context={"arguments": {"name": "ada"}}),
    )
    assert result["completion"]["values"] == ["ada-en", "ada-fr"]


async def test_completion_sends_at_most_100_values_with_has_more_and_total(connect) -> None:
    peer = await connect(_completing_server())
    ref = {"type": "ref/resource", "uri": "u://{n}"}
    completion = (await peer.result("completion/complete", _complete_params(ref, "n", "")))[
        "completion"
    ]
    assert completion["values"] == [str(i) for i in range(100)]
    assert completion["hasMore"] is True
    assert completion["total"] == 250


async def test_a_completion_value_keeps_its_total_and_has_more(connect) -> None:
    server = McpServer("c")
    server.prompt(name="p")(lambda: "p")
    server.completion("ref/prompt", "p")(
        lambda argument, value, context: Completion(values=["x"], total=7, has_more=True)
    )
    peer = await connect(server)
    result = await peer.result(
        "completion/complete", _complete_params({"type": "ref/prompt", "name": "p"}, "a", "")
    )
    assert result == {"completion": {"values": ["x"], "hasMore": True, "total": 7}}


async def test_completion_without_a_handler_is_empty(connect) -> None:
    peer = await connect(_completing_server())
    ref = {"type": "ref/resource", "uri": "other://{x}"}
    result = await peer.result("completion/complete", _complete_params(ref, "x", ""))
    assert result == {"completion": {"values": [], "hasMore": False}}


@pytest.mark.parametrize(
    "params",
    [
        _complete_params({"type": "ref/prompt", "name": "nope"}, "a", ""),
        _complete_params({"type": "ref/tool", "name": "greet"}, "a", ""),
        _complete_params({"type": "ref/prompt"}, "a", ""),
        {"ref": {"type": "ref/prompt", "name": "greet"}},
        {"ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": 1, "value": ""}},
        {"ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "a", "value": 2}},
    ],
)
async def test_bad_completion_requests_are_invalid_params(connect, params: dict[str, Any]) -> None:
    peer = await connect(_completing_server())
    assert (await peer.error("completion/complete", params))["code"] == INVALID_PARAMS


def test_completion_refs_are_prompts_or_resources() -> None:
    with pytest.raises(ValueError, match="ref_type"):
        McpServer("c").completion("ref/tool", "x")


# ---- logging --------------------------------------------------------------------------------


async def chatty(ctx: Context) -> str:
    await ctx.debug("d")
    await ctx.info("i", logger="app")
    await ctx.warning({"w": 1})
    await ctx.error("e")
    await ctx.log("emergency", "x")
    return "done"


def _logging_server(**options: Any) -> McpServer:
    server = McpServer("l", **options)
    server.add_tool(chatty)
    return server


async def test_without_set_level_every_log_message_is_sent(connect) -> None:
    peer = await connect(_logging_server())
    await peer.call_tool("chatty")
    params = [m["params"] for m in peer.outbound.sent]
    assert all(m["method"] == "notifications/message" for m in peer.outbound.sent)
    assert params == [
        {"level": "debug", "data": "d"},
        {"level": "info", "data": "i", "logger": "app"},
        {"level": "warning", "data": {"w": 1}},
        {"level": "error", "data": "e"},
        {"level": "emergency", "data": "x"},
    ]


async def test_set_level_filters_less_severe_messages(connect) -> None:
    peer = await connect(_logging_server())
    assert await peer.result("logging/setLevel", {"level": "warning"}) == {}
    await peer.call_tool("chatty")
    assert [m["params"]["level"] for m in peer.outbound.sent] == ["warning", "error", "emergency"]


@pytest.mark.parametrize("level", ["verbose", "WARNING", None, 3])
async def test_set_level_with_an_unknown_level_is_invalid_params(connect, level: Any) -> None:
    peer = await connect(_logging_server())
    assert (await peer.error("logging/setLevel", {"level": level}))["code"] == INVALID_PARAMS
    assert peer.session.log_level is None


async def test_a_server_without_logging_sends_no_log_messages(connect) -> None:
    peer = await connect(_logging_server(logging_enabled=False))
    assert (await peer.call_tool("chatty"))["content"][0]["text"] == "done"
    assert peer.outbound.sent == []


async def test_an_unknown_log_level_from_a_handler_is_a_programming_error(connect) -> None:
    server = McpServer("l")

    @server.tool()
    async def bad(ctx: Context) -> str:
        await ctx.log("verbose", "x")  # type: ignore[arg-type]
        return "unreachable"

    peer = await connect(server)
    result = await peer.call_tool("bad")
    assert result["isError"] is True
    assert "verbose" in result["content"][0]["text"]


# ---- pagination -----------------------------------------------------------------------------


def _cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


async def _walk(peer: Any, method: str, key: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    pages = 0
    while True:
        page = await peer.result(method, params)
        pages += 1
        items.extend(page[key])
        if "nextCursor" not in page:
            return items, pages
        params = {"cursor": page["nextCursor"]}


async def test_cursors_walk_every_list_in_order(connect) -> None:
    server = _with_tools(*(f"t{i}" for i in range(5)), page_size=2)
    for i in range(3):
        server.resource(f"a://r{i}")(lambda: "r")
        server.resource(f"a://{{x}}/t{i}")(lambda x: x)
        server.prompt(name=f"p{i}")(lambda: "p")
    peer = await connect(server)
    tools, pages = await _walk(peer, "tools/list", "tools")
    assert [t["name"] for t in tools] == [f"t{i}" for i in range(5)]
    assert pages == 3
    resources, _ = await _walk(peer, "resources/list", "resources")
    assert [r["uri"] for r in resources] == [f"a://r{i}" for i in range(3)]
    templates, _ = await _walk(peer, "resources/templates/list", "resourceTemplates")
    assert [t["uriTemplate"] for t in templates] == [f"a://{{x}}/t{i}" for i in range(3)]
    prompts, _ = await _walk(peer, "prompts/list", "prompts")
    assert [p["name"] for p in prompts] == ["p0", "p1", "p2"]


async def test_a_full_last_page_has_no_next_cursor(connect) -> None:
    peer = await connect(_with_tools("a", "b", page_size=2))
    assert "nextCursor" not in await peer.result("tools/list")


async def test_without_a_page_size_everything_is_one_page(connect) -> None:
    peer = await connect(_with_tools(*(f"t{i}" for i in range(150)), page_size=None))
    page = await peer.result("tools/list")
    assert len(page["tools"]) == 150
    assert "nextCursor" not in page


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "",
        3,
        {"o": 1},
        _cursor({"o": 99}),
        _cursor({"o": -1}),
        _cursor({"o": True}),
        _cursor({"o": "1"}),
        _cursor([1]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_a_bad_cursor_is_invalid_params(connect, cursor: Any) -> None:
    peer = await connect(_with_tools("a", "b", "c", page_size=2))
    error = await peer.error("tools/list", {"cursor": cursor})
    assert error == {"code": INVALID_PARAMS, "message": "Invalid cursor"}


def test_a_page_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="page_size"):
        McpServer("s", page_size=0)


# ---- cancellation ---------------------------------------------------------------------------


async def test_a_cancelled_request_is_really_cancelled_and_gets_no_response(connect) -> None:
    server = McpServer("c")
    started = anyio.Event()
    observed: list[str] = []

    @server.tool()
    async def slow() -> str:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            observed.append("cancelled")
            raise
        observed.append("finished")
        return "finished"

    peer = await connect(server)
    responses: list[dict[str, Any] | None] = []

    async def call() -> None:
        responses.append(await peer.request("tools/call", {"name": "slow"}, request_id="c1"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await started.wait()
            await peer.notify("notifications/cancelled", {"requestId": "c1", "reason": "user"})
    assert observed == ["cancelled"]
    assert responses == [None]
    assert peer.session.cancel("c1") is False  # no longer in flight


async def test_cancelling_another_id_leaves_the_request_alone(connect) -> None:
    server = McpServer("c")
    release = anyio.Event()
    started = anyio.Event()

    @server.tool()
    async def waits() -> str:
        started.set()
        await release.wait()
        return "done"

    peer = await connect(server)
    responses: list[dict[str, Any] | None] = []

    async def call() -> None:
        responses.append(await peer.request("tools/call", {"name": "waits"}, request_id=1))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await started.wait()
            for other in ("1", 2, True, None, [1]):
                await peer.notify("notifications/cancelled", {"requestId": other})
            await peer.notify("notifications/cancelled", {})
            release.set()
    assert len(responses) == 1
    assert responses[0] is not None
    assert responses[0]["result"]["content"] == [{"type": "text", "text": "done"}]


async def test_closing_a_session_cancels_its_handlers(connect) -> None:
    server = McpServer("c")
    started = anyio.Event()
    observed: list[str] = []

    @server.tool()
    async def slow() -> str:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            observed.append("cancelled")
            raise
        return "x"

    peer = await connect(server)
    responses: list[dict[str, Any] | None] = []

    async def call() -> None:
        responses.append(await peer.request("tools/call", {"name": "slow"}))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await started.wait()
            peer.session.close()
    assert observed == ["cancelled"]
    assert responses == [None]


# ---- broadcasts -----------------------------------------------------------------------------


async def test_list_changed_goes_only_to_ready_sessions_that_were_advertised_it(connect) -> None:
    server = McpServer("b")
    unadvertised = await connect(server)  # initialized while there were no tools
    server.add_tool(_noop, name="first")
    ready = await connect(server)
    initializing = await connect(server, ready=False)
    assert server.notify_list_changed("tools") == 1
    server.add_tool(_noop, name="second")
    expected = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    assert ready.standalone.sent == [expected, expected]
    assert initializing.standalone.sent == []
    assert unadvertised.standalone.sent == []
    # Request streams are not used for broadcasts.
    assert ready.outbound.sent == []


async def test_each_feature_change_sends_its_own_notification(connect) -> None:
    server = _with_tools("t")
    server.resource("a://r")(lambda: "r")
    server.prompt(name="p")(lambda: "p")
    peer = await connect(server)
    server.tools.remove("t")
    server.resources.remove("a://r")
    server.prompts.remove("p")
    assert server.tools.remove("t") is False  # nothing removed, nothing sent
    assert peer.standalone.methods() == [
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
        "notifications/prompts/list_changed",
    ]


async def test_a_detached_session_gets_no_broadcasts(connect) -> None:
    server = _with_tools("t")
    peer = await connect(server)
    server.detach(peer.session)
    assert server.notify_list_changed("tools") == 0
    assert peer.standalone.sent == []


async def test_resource_updated_goes_only_to_subscribers_of_that_uri(connect) -> None:
    server = McpServer("b")
    server.resource("a://watched")(lambda: "w")
    server.resource("a://other")(lambda: "o")
    subscriber = await connect(server)
    bystander = await connect(server)
    await subscriber.result("resources/subscribe", {"uri": "a://watched"})
    await bystander.result("resources/subscribe", {"uri": "a://other"})
    assert server.notify_resource_updated("a://watched") == 1
    assert subscriber.standalone.sent == [
        {
            "jsonrpc": "2.0",
            "method": "notifications/resources/updated",
            "params": {"uri": "a://watched"},
        }
    ]
    assert bystander.standalone.sent == []
    await subscriber.result("resources/unsubscribe", {"uri": "a://watched"})
    assert server.notify_resource_updated("a://watched") == 0


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("notifications/initialized", None),  # a second one, out of place
        ("notifications/progress", {"progressToken": 1, "progress": 1}),
        ("notifications/cancelled", {"requestId": 404}),
        ("notifications/whatever", {"x": 1}),
    ],
)
async def test_notifications_are_never_answered(
    connect, method: str, params: dict[str, Any] | None
) -> None:
    peer = await connect(_with_tools("t"))
    await peer.notify(method, params)
    assert peer.outbound.sent == []
    assert peer.standalone.sent == []
    assert peer.session.state is SessionState.READY


async def test_roots_changed_calls_the_registered_callbacks(connect) -> None:
    server = McpServer("r")
    seen: list[str | None] = []

    @server.on_roots_changed
    async def changed(session: Any) -> None:
        seen.append(session.id)

    @server.on_roots_changed
    def broken(session: Any) -> None:
        raise RuntimeError("ignored")

    peer = await connect(server)
    await peer.notify("notifications/roots/list_changed")
    assert seen == [peer.session.id]
