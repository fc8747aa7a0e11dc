"""The tools feature: registration, `tools/list` and `tools/call` (2025-11-25 Server Features >
Tools), driven through the dispatcher."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, TypedDict

import anyio
import anyio.lowlevel
import attrs
import jsonschema
import orjson
import pytest

from mcp_core.core.protocol.errors import INTERNAL_ERROR, INVALID_PARAMS, McpError
from mcp_core.core.protocol.types import (
    CallToolResult,
    EmbeddedResource,
    Icon,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from mcp_core.core.services import tools as tools_module
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer
from mcp_core.core.services.signature import SchemaError
from mcp_core.core.services.tools import ToolError

pytestmark = pytest.mark.anyio


@attrs.frozen
class Weather:
    city: str
    max_temp: float
    rain_chance: int | None = None


@dataclasses.dataclass
class Total:
    sum: int
    items_seen: int


class Stats(TypedDict):
    mean: float
    count: int


def weather(city: str) -> Weather:
    return Weather(city=city, max_temp=21.5)


def total(values: list[int]) -> Total:
    return Total(sum=sum(values), items_seen=len(values))


def stats(values: list[float]) -> Stats:
    return {"mean": sum(values) / len(values), "count": len(values)}


def add(a: int, b: int = 2) -> int:
    """Add two numbers.

    Not part of the description.
    """
    return a + b


async def test_a_sync_tool_is_called_with_its_arguments_and_returns_text(connect) -> None:
    server = McpServer("t")
    server.add_tool(add)
    peer = await connect(server)
    assert await peer.call_tool("add", {"a": 40}) == {
        "content": [{"type": "text", "text": "42"}],
        "isError": False,
    }


async def test_an_async_tool_is_awaited(connect) -> None:
    server = McpServer("t")

    @server.tool()
    async def greet(name: str) -> str:
        await anyio.lowlevel.checkpoint()
        return f"hello {name}"

    peer = await connect(server)
    result = await peer.call_tool("greet", {"name": "ada"})
    assert result["content"] == [{"type": "text", "text": "hello ada"}]


async def test_a_tool_with_run_in_thread_runs_outside_the_event_loop_thread(connect) -> None:
    server = McpServer("t")
    loop_thread = threading.get_ident()

    @server.tool(run_in_thread=True)
    def where() -> str:
        return "worker" if threading.get_ident() != loop_thread else "loop"

    @server.tool()
    def inline() -> str:
        return "worker" if threading.get_ident() != loop_thread else "loop"

    peer = await connect(server)
    assert (await peer.call_tool("where"))["content"][0]["text"] == "worker"
    assert (await peer.call_tool("inline"))["content"][0]["text"] == "loop"


async def test_tools_list_shows_the_derived_definition(connect) -> None:
    server = McpServer("t")
    server.add_tool(
        add,
        title="Adder",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
        icons=[Icon(src="https://x/i.png", mime_type="image/png")],
        meta={"k": "v"},
    )
    peer = await connect(server)
    listed = await peer.result("tools/list")
    assert listed == {
        "tools": [
            {
                "name": "add",
                "title": "Adder",
                "description": "Add two numbers.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "a": {"type": "integer"},
                        "b": {"type": "integer", "default": 2},
                    },
                    "required": ["a"],
                },
                "annotations": {"readOnlyHint": True, "idempotentHint": True},
                "icons": [{"src": "https://x/i.png", "mimeType": "image/png"}],
                "_meta": {"k": "v"},
            }
        ]
    }


RAW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "required": ["name"],
    "additionalProperties": False,
}


async def test_a_hand_written_schema_is_advertised_byte_identical(connect) -> None:
    server = McpServer("t")
    original = orjson.dumps(RAW_SCHEMA)

    @server.tool(input_schema=RAW_SCHEMA)
    def book(name: str, address: dict[str, Any] | None = None) -> str:
        return name

    peer = await connect(server)
    listed = await peer.result("tools/list")
    assert orjson.dumps(listed["tools"][0]["inputSchema"]) == original
    assert orjson.dumps(RAW_SCHEMA) == original  # the caller's dict was not touched either


async def test_a_hand_written_schema_validates_and_passes_only_accepted_keywords(connect) -> None:
    server = McpServer("t")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "extra": {}}}

    @server.tool(input_schema=schema)
    def only_n(n: int = 0) -> str:
        return str(n)

    peer = await connect(server)
    assert (await peer.call_tool("only_n", {"n": 5, "extra": 1}))["content"][0]["text"] == "5"
    bad = await peer.call_tool("only_n", {"n": "five"})
    assert bad["isError"] is True


async def test_the_input_schema_is_compiled_once_at_registration(connect, monkeypatch) -> None:
    compiled: list[dict[str, Any]] = []
    real = tools_module.jsonschema_rs.validator_for

    class CountingJsonschemaRs:
        @staticmethod
        def validator_for(schema: dict[str, Any]) -> Any:
            compiled.append(schema)
            return real(schema)

    monkeypatch.setattr(tools_module, "jsonschema_rs", CountingJsonschemaRs)
    server = McpServer("t")
    server.add_tool(add)
    assert len(compiled) == 1
    peer = await connect(server)
    for a in range(3):
        await peer.call_tool("add", {"a": a})
    await peer.call_tool("add", {"a": "bad"})
    assert len(compiled) == 1


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"a": "x"}, "a: "),
        ({}, '"a" is a required property'),
        ({"a": True}, "a: "),
        ({"a": 1, "b": 1.5}, "b: "),
    ],
)
async def test_invalid_arguments_give_an_is_error_result_naming_the_problem(
    connect, arguments: dict[str, Any], problem: str
) -> None:
    called = []
    server = McpServer("t")

    @server.tool()
    def adder(a: int, b: int = 2) -> int:
        called.append((a, b))
        return a + b

    peer = await connect(server)
    result = await peer.call_tool("adder", arguments)
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert text.startswith("Invalid arguments for tool adder: ")
    assert problem in text
    assert called == []


async def test_a_tool_error_is_an_is_error_result_with_its_message(connect) -> None:
    server = McpServer("t")

    @server.tool()
    def fails() -> str:
        raise ToolError("the quota is used up")

    peer = await connect(server)
    assert await peer.call_tool("fails") == {
        "content": [{"type": "text", "text": "the quota is used up"}],
        "isError": True,
    }


async def test_any_other_exception_is_an_is_error_result_naming_the_tool(connect) -> None:
    server = McpServer("t")

    @server.tool()
    def broken() -> str:
        raise RuntimeError("disk on fire")

    peer = await connect(server)
    result = await peer.call_tool("broken")
    assert result["isError"] is True
    assert result["content"][0]["text"] == "Error executing tool broken: disk on fire"


async def test_an_mcp_error_becomes_a_json_rpc_error(connect) -> None:
    server = McpServer("t")

    @server.tool()
    async def strict() -> str:
        raise McpError(-32042, "go to the URL", {"elicitations": []})

    peer = await connect(server)
    error = await peer.error("tools/call", {"name": "strict"})
    assert error == {"code": -32042, "message": "go to the URL", "data": {"elicitations": []}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "nope"}, "Unknown tool: nope"),
        ({}, "tools/call needs a string 'name'"),
        ({"name": 3}, "tools/call needs a string 'name'"),
        ({"name": "add", "arguments": [1]}, "tools/call 'arguments' must be an object"),
    ],
)
async def test_bad_tool_calls_are_invalid_params(
    connect, params: dict[str, Any], message: str
) -> None:
    server = McpServer("t")
    server.add_tool(add)
    peer = await connect(server)
    error = await peer.error("tools/call", params)
    assert error == {"code": INVALID_PARAMS, "message": message}


async def test_null_arguments_count_as_none(connect) -> None:
    server = McpServer("t")

    @server.tool()
    def nothing() -> str:
        return "ok"

    peer = await connect(server)
    result = await peer.result("tools/call", {"name": "nothing", "arguments": None})
    assert result["content"] == [{"type": "text", "text": "ok"}]


async def test_the_context_is_injected_and_not_an_argument(connect) -> None:
    server = McpServer("t")

    @server.tool()
    async def whoami(ctx: Context, suffix: str = "") -> str:
        return f"{ctx.request_id}{suffix}"

    peer = await connect(server)
    schema = (await peer.result("tools/list"))["tools"][0]["inputSchema"]
    assert schema == {"type": "object", "properties": {"suffix": {"type": "string", "default": ""}}}
    response = await peer.request("tools/call", {"name": "whoami"}, request_id="req-7")
    assert response is not None
    assert response["result"]["content"][0]["text"] == "req-7"


# ---- what a tool returns --------------------------------------------------------------------


async def test_content_values_lists_and_results_are_taken_as_content(connect) -> None:
    server = McpServer("t")

    @server.tool()
    def image() -> ImageContent:
        return ImageContent(data="AAAA", mime_type="image/png")

    @server.tool()
    def several() -> list[Any]:
        return [
            "one",
            TextContent(text="two"),
            ResourceLink(uri="a://x", name="x"),
            EmbeddedResource(resource=TextResourceContents(uri="a://e", text="e")),
        ]

    @server.tool()
    def whole() -> CallToolResult:
        return CallToolResult(content=[TextContent(text="w")], is_error=True, meta={"m": 1})

    @server.tool()
    def empty() -> None:
        return None

    peer = await connect(server)
    assert (await peer.call_tool("image"))["content"] == [
        {"type": "image", "data": "AAAA", "mimeType": "image/png"}
    ]
    assert (await peer.call_tool("several"))["content"] == [
        {"type": "text", "text": "one"},
        {"type": "text", "text": "two"},
        {"type": "resource_link", "uri": "a://x", "name": "x"},
        {"type": "resource", "resource": {"uri": "a://e", "text": "e"}},
    ]
    assert await peer.call_tool("whole") == {
        "content": [{"type": "text", "text": "w"}],
        "isError": True,
        "_meta": {"m": 1},
    }
    assert await peer.call_tool("empty") == {"content": [], "isError": False}
    tools = {t["name"]: t for t in (await peer.result("tools/list"))["tools"]}
    assert all("outputSchema" not in tool for tool in tools.values())


async def test_a_returned_dict_is_structured_content_with_its_json_as_text(connect) -> None:
    server = McpServer("t")

    @server.tool()
    def data() -> dict[str, Any]:
        return {"a": 1, "b": [True]}

    peer = await connect(server)
    result = await peer.call_tool("data")
    assert result["structuredContent"] == {"a": 1, "b": [True]}
    assert orjson.loads(result["content"][0]["text"]) == {"a": 1, "b": [True]}
    assert result["isError"] is False


@pytest.mark.parametrize(
    ("fn", "arguments", "structured"),
    [
        (weather, {"city": "Oslo"}, {"city": "Oslo", "max_temp": 21.5, "rain_chance": None}),
        (total, {"values": [1, 2, 3]}, {"sum": 6, "items_seen": 3}),
        (stats, {"values": [1, 3]}, {"mean": 2.0, "count": 2}),
    ],
)
async def test_an_object_return_type_gives_an_output_schema_and_matching_structured_content(
    connect, fn: Any, arguments: dict[str, Any], structured: dict[str, Any]
) -> None:
    server = McpServer("t")
    server.add_tool(fn)
    peer = await connect(server)
    tool = (await peer.result("tools/list"))["tools"][0]
    output_schema = tool["outputSchema"]
    assert output_schema["type"] == "object"
    assert set(output_schema["properties"]) >= set(structured)
    result = await peer.call_tool(fn.__name__, arguments)
    assert result["isError"] is False
    assert result["structuredContent"] == structured
    # The structured content satisfies the schema the tool advertised.
    jsonschema.validate(result["structuredContent"], output_schema)


async def test_structured_content_that_does_not_match_the_output_schema_is_internal_error(
    connect,
) -> None:
    server = McpServer("t")

    @server.tool(output_schema={"type": "object", "required": ["n"]})
    def liar() -> dict[str, Any]:
        return {"m": 1}

    @server.tool(output_schema={"type": "object"})
    def silent() -> str:
        return "no structure"

    peer = await connect(server)
    error = await peer.error("tools/call", {"name": "liar"})
    assert error["code"] == INTERNAL_ERROR
    assert "outputSchema" in error["message"]
    error = await peer.error("tools/call", {"name": "silent"})
    assert error["code"] == INTERNAL_ERROR


async def test_an_is_error_result_is_not_checked_against_the_output_schema(connect) -> None:
    server = McpServer("t")

    @server.tool(output_schema={"type": "object", "required": ["n"]})
    def refuses() -> dict[str, Any]:
        raise ToolError("no")

    peer = await connect(server)
    assert (await peer.call_tool("refuses"))["isError"] is True


# ---- registration ---------------------------------------------------------------------------


def test_a_second_tool_with_the_same_name_is_refused() -> None:
    server = McpServer("t")
    server.add_tool(add)
    with pytest.raises(ValueError, match="already registered"):
        server.add_tool(add)
    server.tools.add(add, description="replaced", replace=True)
    tool = server.tools.get("add")
    assert tool is not None
    assert tool.description == "replaced"


def takes_bytes(data: bytes) -> str:
    return ""


@pytest.mark.parametrize(
    ("fn", "options"),
    [
        (takes_bytes, {}),
        (add, {"input_schema": {"type": "array"}}),
        (add, {"input_schema": {"type": "object", "properties": {"a": {"type": 12}}}}),
        (add, {"output_schema": {"type": "string"}}),
        (add, {"output_schema": {"type": "object", "minProperties": "x"}}),
    ],
)
def test_bad_signatures_and_schemas_raise_schema_error_at_registration(
    fn: Any, options: dict[str, Any]
) -> None:
    server = McpServer("t")
    with pytest.raises(SchemaError):
        server.tool(**options)(fn)
    assert len(server.tools) == 0
