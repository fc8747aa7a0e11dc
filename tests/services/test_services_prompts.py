"""The prompts feature: `prompts/list` and `prompts/get` (2025-11-25 Server Features >
Prompts)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from mcp_core.core.protocol.errors import INTERNAL_ERROR, INVALID_PARAMS
from mcp_core.core.protocol.types import (
    GetPromptResult,
    ImageContent,
    PromptMessage,
    TextContent,
)
from mcp_core.core.services.context import Context
from mcp_core.core.services.prompts import PromptArgument
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio


def _server() -> McpServer:
    server = McpServer("p")

    @server.prompt(title="Review")
    def review(code: Annotated[str, "The code"], style: str = "terse") -> str:
        """Review some code."""
        return f"Review ({style}): {code}"

    @server.prompt()
    async def chat(ctx: Context) -> list[Any]:
        return [
            PromptMessage(role="assistant", content=TextContent(text=f"id {ctx.request_id}")),
            {"role": "user", "content": {"type": "text", "text": "raw"}},
            ImageContent(data="AA==", mime_type="image/png"),
        ]

    @server.prompt(description="whole")
    def whole() -> GetPromptResult:
        return GetPromptResult(
            messages=[PromptMessage(role="user", content=TextContent(text="w"))],
            description="from the result",
        )

    return server


async def test_prompts_list_derives_arguments_from_the_signature(connect) -> None:
    peer = await connect(_server())
    listed = await peer.result("prompts/list")
    assert listed == {
        "prompts": [
            {
                "name": "review",
                "title": "Review",
                "description": "Review some code.",
                "arguments": [
                    {"name": "code", "description": "The code", "required": True},
                    {"name": "style", "required": False},
                ],
            },
            {"name": "chat"},
            {"name": "whole", "description": "whole"},
        ]
    }


async def test_a_string_is_one_user_text_message(connect) -> None:
    peer = await connect(_server())
    result = await peer.result("prompts/get", {"name": "review", "arguments": {"code": "x=1"}})
    assert result == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "Review (terse): x=1"}}],
        "description": "Review some code.",
    }


async def test_messages_dicts_and_content_values_keep_their_shapes(connect) -> None:
    peer = await connect(_server())
    response = await peer.request("prompts/get", {"name": "chat"}, request_id=11)
    assert response is not None
    assert response["result"]["messages"] == [
        {"role": "assistant", "content": {"type": "text", "text": "id 11"}},
        {"role": "user", "content": {"type": "text", "text": "raw"}},
        {"role": "user", "content": {"type": "image", "data": "AA==", "mimeType": "image/png"}},
    ]


async def test_a_whole_result_is_taken_as_it_is(connect) -> None:
    peer = await connect(_server())
    assert await peer.result("prompts/get", {"name": "whole"}) == {
        "messages": [{"role": "user", "content": {"type": "text", "text": "w"}}],
        "description": "from the result",
    }


async def test_a_missing_required_argument_is_invalid_params_naming_it(connect) -> None:
    peer = await connect(_server())
    error = await peer.error("prompts/get", {"name": "review", "arguments": {"style": "long"}})
    assert error["code"] == INVALID_PARAMS
    assert "code" in error["message"]


@pytest.mark.parametrize("value", [1, None, ["x"], {"a": 1}, True])
async def test_prompt_arguments_must_be_strings(connect, value: Any) -> None:
    peer = await connect(_server())
    error = await peer.error("prompts/get", {"name": "review", "arguments": {"code": value}})
    assert error["code"] == INVALID_PARAMS
    assert "strings" in error["message"]


async def test_unknown_arguments_are_ignored(connect) -> None:
    peer = await connect(_server())
    result = await peer.result(
        "prompts/get", {"name": "review", "arguments": {"code": "c", "other": 1}}
    )
    assert result["messages"][0]["content"]["text"] == "Review (terse): c"


@pytest.mark.parametrize(
    "params",
    [{"name": "nope"}, {}, {"name": "review", "arguments": ["code"]}],
)
async def test_bad_prompt_requests_are_invalid_params(connect, params: dict[str, Any]) -> None:
    peer = await connect(_server())
    assert (await peer.error("prompts/get", params))["code"] == INVALID_PARAMS


async def test_explicit_arguments_replace_the_derived_ones(connect) -> None:
    server = McpServer("p")

    @server.prompt(arguments=[PromptArgument(name="topic", description="T", required=True)])
    def anything(**kwargs: str) -> str:
        return kwargs["topic"]

    peer = await connect(server)
    listed = (await peer.result("prompts/list"))["prompts"][0]
    assert listed["arguments"] == [{"name": "topic", "description": "T", "required": True}]
    result = await peer.result("prompts/get", {"name": "anything", "arguments": {"topic": "z"}})
    assert result["messages"][0]["content"]["text"] == "z"


async def test_a_message_that_is_not_one_block_is_an_internal_error(connect) -> None:
    server = McpServer("p")

    @server.prompt()
    def nested() -> list[Any]:
        return [["a", "b"]]

    peer = await connect(server)
    assert (await peer.error("prompts/get", {"name": "nested"}))["code"] == INTERNAL_ERROR
