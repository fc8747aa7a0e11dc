"""Everything the server emits validates against the official 2025-11-25 JSON schema.

Each message is checked against the envelope (`JSONRPCResultResponse`, `JSONRPCErrorResponse`,
`JSONRPCNotification`, `JSONRPCRequest`), the specific definition (`CallToolResult`,
`ProgressNotification`, `CreateMessageRequest`, ...) and the union the spec files it under
(`ServerResult`, `ServerNotification`, `ServerRequest`). Results and server requests are
produced by the dispatcher (what every transport frames unchanged); HTTP error bodies come from
the ASGI app.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import attrs
import httpx
import orjson
import pytest

from mcp_core.adapters.asgi import create_app
from mcp_core.core.protocol.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    GetPromptResult,
    Icon,
    ImageContent,
    PromptMessage,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer
from mcp_core.core.services.tools import ToolError

pytestmark = pytest.mark.anyio

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
FORM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Your name"},
        "age": {"type": "integer", "minimum": 0},
        "color": {"type": "string", "enum": ["red", "green"]},
        "agree": {"type": "boolean", "default": False},
    },
    "required": ["name"],
}
ALL_CLIENT_CAPABILITIES = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}}


@attrs.frozen
class Forecast:
    city: str
    max_temp: float


def _everything() -> McpServer:
    server = McpServer(
        "everything",
        "1.2.3",
        title="Everything",
        description="Emits every kind of message",
        website_url="https://everything.example",
        icons=[Icon(src="https://everything.example/icon.png", mime_type="image/png")],
        instructions="Use the tools.",
        page_size=3,
    )

    @server.tool(
        title="Text",
        annotations=ToolAnnotations(title="Text tool", read_only_hint=True),
        icons=[Icon(src="https://everything.example/t.svg", sizes=["any"], theme="dark")],
        meta={"vendor/key": 1},
    )
    def text(message: Annotated[str, "What to say"] = "hi") -> str:
        """Say something."""
        return message

    @server.tool()
    def image() -> ImageContent:
        return ImageContent(data=PNG, mime_type="image/png")

    @server.tool()
    def audio() -> AudioContent:
        return AudioContent.from_bytes(b"RIFF....WAVE", "audio/wav")

    @server.tool()
    def link() -> ResourceLink:
        return ResourceLink(
            uri="test://static", name="static", title="Static", mime_type="text/plain", size=6
        )

    @server.tool()
    def embedded_text() -> EmbeddedResource:
        return EmbeddedResource(
            resource=TextResourceContents(uri="test://e", text="e", mime_type="text/plain")
        )

    @server.tool()
    def embedded_blob() -> EmbeddedResource:
        return EmbeddedResource(resource=BlobResourceContents.from_bytes("test://b", b"\x00\x01"))

    @server.tool()
    def mixed() -> list[Any]:
        return ["a", ImageContent(data=PNG, mime_type="image/png"), TextContent(text="b")]

    @server.tool()
    def structured() -> dict[str, Any]:
        return {"answer": 42, "nested": {"ok": True}}

    @server.tool()
    def forecast(city: str) -> Forecast:
        return Forecast(city=city, max_temp=20.5)

    @server.tool()
    def whole() -> CallToolResult:
        return CallToolResult(
            content=[TextContent(text="w")],
            structured_content={"w": 1},
            is_error=False,
            meta={"vendor/trace": "x"},
        )

    @server.tool()
    def fails() -> str:
        raise ToolError("nope")

    @server.tool()
    def nothing() -> None:
        return None

    @server.tool(output_schema={"type": "object", "required": ["n"]})
    def liar() -> dict[str, Any]:
        return {"m": 1}

    @server.tool()
    async def chatty(ctx: Context) -> str:
        await ctx.report_progress(1, 3, "one third")
        await ctx.report_progress(3, 3)
        await ctx.info({"step": "done"}, logger="everything")
        await ctx.warning("careful")
        return "ok"

    @server.tool()
    async def sample(ctx: Context) -> str:
        result = await ctx.sample(
            [{"role": "user", "content": {"type": "text", "text": "hi"}}],
            max_tokens=64,
            system_prompt="Be brief",
            temperature=0.5,
            stop_sequences=["END"],
            model_preferences={"hints": [{"name": "claude"}], "speedPriority": 0.5},
            include_context="thisServer",
            metadata={"k": "v"},
        )
        return str(result.text)

    @server.tool()
    async def ask(ctx: Context) -> str:
        return (await ctx.elicit("Who are you?", FORM)).action

    @server.tool()
    async def ask_url(ctx: Context) -> str:
        return (await ctx.elicit_url("Sign in", "https://auth.example/s", "el-7")).action

    @server.tool()
    async def roots(ctx: Context) -> str:
        return str(len(await ctx.list_roots()))

    @server.resource("test://static", title="Static", description="Text", mime_type="text/plain")
    def static() -> str:
        return "static"

    @server.resource("test://blob", mime_type="application/octet-stream", size=2)
    def blob() -> bytes:
        return b"\x00\xff"

    @server.resource("test://json")
    def json_resource() -> dict[str, Any]:
        return {"a": [1, 2]}

    @server.resource("test://items/{item}", title="Item", mime_type="text/plain")
    def item(item: str) -> str:
        return f"item {item}"

    @server.prompt(title="Greeting", description="Greets")
    def greet(name: Annotated[str, "Who"], mood: str = "happy") -> str:
        return f"Hello {name}, you seem {mood}"

    @server.prompt()
    def rich() -> list[Any]:
        return [
            ImageContent(data=PNG, mime_type="image/png"),
            EmbeddedResource(resource=TextResourceContents(uri="test://static", text="static")),
            PromptMessage(role="assistant", content=TextContent(text="noted")),
        ]

    @server.prompt()
    def whole_prompt() -> GetPromptResult:
        return GetPromptResult(
            messages=[
                PromptMessage(role="user", content=AudioContent(data="AA==", mime_type="a/b"))
            ],
            description="a whole result",
            meta={"m": 1},
        )

    @server.completion("ref/prompt", "greet")
    def complete_name(argument: str, value: str, context: dict[str, str]) -> list[str]:
        return [f"{value}{i}" for i in range(120)]

    @server.completion("ref/resource", "test://items/{item}")
    def complete_item(argument: str, value: str, context: dict[str, str]) -> list[str]:
        raise RuntimeError("broken completion")

    return server


# ---- helpers --------------------------------------------------------------------------------


def check_result(schema: Any, response: dict[str, Any] | None, definition: str) -> dict[str, Any]:
    assert response is not None
    schema.validate(response, "JSONRPCResultResponse", "JSONRPCMessage")
    schema.validate(response["result"], definition, "ServerResult")
    result: dict[str, Any] = response["result"]
    return result


def check_error(schema: Any, response: dict[str, Any] | None) -> dict[str, Any]:
    assert response is not None
    schema.validate(response, "JSONRPCErrorResponse", "JSONRPCMessage")
    error: dict[str, Any] = response["error"]
    return error


async def answered(peer: Any, tool: str, method: str, result: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that sends `method` to the client; answer it; return the request sent."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(peer.request, "tools/call", {"name": tool})
        with anyio.fail_after(5):
            request = await peer.outbound.wait_for(method)
        assert peer.answer(request, result)
    return request


# ---- the harness catches what it should -----------------------------------------------------


def test_the_schema_refuses_what_mcp_forbids(mcp_schema) -> None:
    assert not mcp_schema.is_valid({"type": "text"}, "TextContent")
    assert not mcp_schema.is_valid(
        {"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "m"}},
        "JSONRPCErrorResponse",
    )
    assert not mcp_schema.is_valid({"content": [{"type": "image", "data": "x"}]}, "CallToolResult")
    with pytest.raises(KeyError):
        mcp_schema.validate({}, "NoSuchDefinition")


# ---- results --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2025-03-26"])
async def test_initialize_result(connect, mcp_schema, version: str) -> None:
    peer = await connect(_everything(), protocol_version=version)
    result = check_result(mcp_schema, peer.initialize_response, "InitializeResult")
    assert result["protocolVersion"] == version
    assert set(result["capabilities"]) == {
        "tools",
        "resources",
        "prompts",
        "completions",
        "logging",
    }


async def test_tools_list_pages(connect, mcp_schema) -> None:
    peer = await connect(_everything())
    params: dict[str, Any] = {}
    names: list[str] = []
    while True:
        result = check_result(
            mcp_schema, await peer.request("tools/list", params), "ListToolsResult"
        )
        names.extend(tool["name"] for tool in result["tools"])
        if "nextCursor" not in result:
            break
        params = {"cursor": result["nextCursor"]}
    assert "forecast" in names
    assert len(names) == len(set(names)) == len(peer.server.tools)


@pytest.mark.parametrize(
    ("tool", "arguments", "is_error"),
    [
        ("text", {"message": "x"}, False),
        ("image", None, False),
        ("audio", None, False),
        ("link", None, False),
        ("embedded_text", None, False),
        ("embedded_blob", None, False),
        ("mixed", None, False),
        ("structured", None, False),
        ("forecast", {"city": "Oslo"}, False),
        ("whole", None, False),
        ("nothing", None, False),
        ("fails", None, True),
        ("text", {"message": 1}, True),
        ("forecast", {}, True),
        ("chatty", None, False),
    ],
)
async def test_tool_results(
    connect, mcp_schema, tool: str, arguments: dict[str, Any] | None, is_error: bool
) -> None:
    peer = await connect(_everything())
    params: dict[str, Any] = {"name": tool, "_meta": {"progressToken": 5}}
    if arguments is not None:
        params["arguments"] = arguments
    result = check_result(mcp_schema, await peer.request("tools/call", params), "CallToolResult")
    assert result.get("isError", False) is is_error


async def test_resource_results(connect, mcp_schema) -> None:
    peer = await connect(_everything())
    listed = check_result(mcp_schema, await peer.request("resources/list"), "ListResourcesResult")
    assert "nextCursor" not in listed
    check_result(
        mcp_schema, await peer.request("resources/templates/list"), "ListResourceTemplatesResult"
    )
    kinds = []
    for uri in ("test://static", "test://blob", "test://json", "test://items/7"):
        response = await peer.request("resources/read", {"uri": uri})
        result = check_result(mcp_schema, response, "ReadResourceResult")
        kinds.append("blob" if "blob" in result["contents"][0] else "text")
    assert kinds == ["text", "blob", "text", "text"]
    for method in ("resources/subscribe", "resources/unsubscribe"):
        check_result(
            mcp_schema, await peer.request(method, {"uri": "test://static"}), "EmptyResult"
        )


async def test_prompt_results(connect, mcp_schema) -> None:
    peer = await connect(_everything())
    listed = check_result(mcp_schema, await peer.request("prompts/list"), "ListPromptsResult")
    assert [p["name"] for p in listed["prompts"]] == ["greet", "rich", "whole_prompt"]
    for name, arguments in (("greet", {"name": "Ada"}), ("rich", {}), ("whole_prompt", {})):
        response = await peer.request("prompts/get", {"name": name, "arguments": arguments})
        check_result(mcp_schema, response, "GetPromptResult")


async def test_completion_result(connect, mcp_schema) -> None:
    peer = await connect(_everything())
    response = await peer.request(
        "completion/complete",
        {
            "ref": {"type": "ref/prompt", "name": "greet"},
            "argument": {"name": "name", "value": "a"},
        },
    )
    result = check_result(mcp_schema, response, "CompleteResult")
    assert len(result["completion"]["values"]) == 100


async def test_empty_results(connect, mcp_schema) -> None:
    peer = await connect(_everything())
    check_result(mcp_schema, await peer.request("ping"), "EmptyResult")
    check_result(
        mcp_schema, await peer.request("logging/setLevel", {"level": "error"}), "EmptyResult"
    )


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("nope/nope", None, -32601),
        ("tools/call", {"name": "missing"}, -32602),
        ("tools/call", {"name": "liar"}, -32603),
        ("tools/call", {"name": "sample"}, -32600),  # the client has no sampling capability
        ("resources/read", {"uri": "test://missing"}, -32002),
        ("prompts/get", {"name": "greet"}, -32602),
        ("tools/list", {"cursor": "???"}, -32602),
        (
            "completion/complete",
            {
                "ref": {"type": "ref/resource", "uri": "test://items/{item}"},
                "argument": {"name": "item", "value": ""},
            },
            -32603,
        ),
        ("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}}, -32600),
    ],
)
async def test_error_responses(
    connect, mcp_schema, method: str, params: dict[str, Any] | None, code: int
) -> None:
    peer = await connect(_everything())
    error = check_error(mcp_schema, await peer.request(method, params, request_id="e-1"))
    assert error["code"] == code


async def test_http_error_bodies(mcp_schema) -> None:
    app = create_app(_everything(), max_body_bytes=1024)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as http:
        good = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        ping = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        modern = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": "d",
                "method": "server/discover",
                "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
            }
        )
        cases: list[tuple[dict[str, str], bytes, int]] = [
            (good, b"{oops", 400),
            (good, b"[]", 400),
            (good, b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', 400),
            (good, ping, 400),  # no session id
            ({**good, "mcp-session-id": "f" * 32}, ping, 404),
            ({**good, "accept": "application/json"}, ping, 406),
            ({**good, "content-type": "text/plain"}, ping, 415),
            ({**good, "host": "evil.example"}, ping, 421),
            ({**good, "origin": "http://evil.example"}, ping, 403),
            ({**good, "mcp-protocol-version": "1.0"}, ping, 400),
            (good, b" " * 2048, 413),
            (good, modern, 400),
        ]
        for headers, body, status in cases:
            response = await http.post("/mcp", content=body, headers=headers)
            assert response.status_code == status, (headers, body)
            payload = response.json()
            mcp_schema.validate(payload, "JSONRPCErrorResponse", "JSONRPCMessage")
            assert ("id" in payload) is (body is modern)


# ---- notifications --------------------------------------------------------------------------


async def test_progress_and_log_notifications(connect, mcp_schema) -> None:
    peer = await connect(_everything())
    await peer.request("tools/call", {"name": "chatty", "_meta": {"progressToken": "p-1"}})
    expected = {
        "notifications/progress": "ProgressNotification",
        "notifications/message": "LoggingMessageNotification",
    }
    assert peer.outbound.methods() == [
        "notifications/progress",
        "notifications/progress",
        "notifications/message",
        "notifications/message",
    ]
    for message in peer.outbound.sent:
        mcp_schema.validate(
            message, "JSONRPCNotification", expected[message["method"]], "ServerNotification"
        )


async def test_list_changed_and_resource_updated_notifications(connect, mcp_schema) -> None:
    server = _everything()
    peer = await connect(server)
    await peer.request("resources/subscribe", {"uri": "test://static"})
    server.add_tool(lambda: "x", name="late")
    server.resource("test://late")(lambda: "late")
    server.prompt(name="late")(lambda: "late")
    server.notify_resource_updated("test://static")
    expected = {
        "notifications/tools/list_changed": "ToolListChangedNotification",
        "notifications/resources/list_changed": "ResourceListChangedNotification",
        "notifications/prompts/list_changed": "PromptListChangedNotification",
        "notifications/resources/updated": "ResourceUpdatedNotification",
    }
    assert peer.standalone.methods() == list(expected)
    for message in peer.standalone.sent:
        mcp_schema.validate(
            message, "JSONRPCNotification", expected[message["method"]], "ServerNotification"
        )


# ---- requests the server sends --------------------------------------------------------------


async def test_sampling_request(connect, mcp_schema) -> None:
    peer = await connect(_everything(), capabilities=ALL_CLIENT_CAPABILITIES)
    request = await answered(
        peer,
        "sample",
        "sampling/createMessage",
        {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"},
    )
    mcp_schema.validate(request, "JSONRPCRequest", "CreateMessageRequest", "ServerRequest")
    mcp_schema.validate(request["params"], "CreateMessageRequestParams")


async def test_form_elicitation_request(connect, mcp_schema) -> None:
    peer = await connect(_everything(), capabilities=ALL_CLIENT_CAPABILITIES)
    request = await answered(peer, "ask", "elicitation/create", {"action": "cancel"})
    mcp_schema.validate(request, "JSONRPCRequest", "ElicitRequest", "ServerRequest")
    mcp_schema.validate(request["params"], "ElicitRequestFormParams")
    assert request["params"]["mode"] == "form"


async def test_url_elicitation_request(connect, mcp_schema) -> None:
    peer = await connect(_everything(), capabilities=ALL_CLIENT_CAPABILITIES)
    request = await answered(peer, "ask_url", "elicitation/create", {"action": "accept"})
    mcp_schema.validate(request, "JSONRPCRequest", "ElicitRequest", "ServerRequest")
    mcp_schema.validate(request["params"], "ElicitRequestURLParams")


async def test_roots_request(connect, mcp_schema) -> None:
    peer = await connect(_everything(), capabilities=ALL_CLIENT_CAPABILITIES)
    request = await answered(peer, "roots", "roots/list", {"roots": []})
    mcp_schema.validate(request, "JSONRPCRequest", "ListRootsRequest", "ServerRequest")
