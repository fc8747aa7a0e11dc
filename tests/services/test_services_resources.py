"""The resources feature: static resources, URI templates, reads and subscriptions
(2025-11-25 Server Features > Resources; RFC 6570 levels 1 and 2)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mcp_core.core.protocol.errors import INVALID_PARAMS, RESOURCE_NOT_FOUND
from mcp_core.core.protocol.types import BlobResourceContents, TextResourceContents
from mcp_core.core.services.context import Context
from mcp_core.core.services.resources import compile_template
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio


def _server() -> McpServer:
    server = McpServer("r")

    @server.resource("file:///readme", mime_type="text/markdown", description="The readme")
    def readme() -> str:
        return "# hi"

    @server.resource("file:///logo.png", name="logo", mime_type="image/png", size=3)
    def logo() -> bytes:
        return b"\x89PN"

    @server.resource("data://config")
    def config() -> dict[str, Any]:
        return {"debug": True}

    @server.resource("users://{user_id}/profile", mime_type="application/json")
    def profile(user_id: str) -> dict[str, str]:
        return {"id": user_id}

    @server.resource("files://{+path}")
    async def any_file(path: str, ctx: Context) -> str:
        return f"{path} for {ctx.request_id}"

    return server


async def test_resources_list_shows_static_resources_only(connect) -> None:
    peer = await connect(_server())
    listed = await peer.result("resources/list")
    assert listed == {
        "resources": [
            {
                "uri": "file:///readme",
                "name": "readme",
                "description": "The readme",
                "mimeType": "text/markdown",
            },
            {"uri": "file:///logo.png", "name": "logo", "mimeType": "image/png", "size": 3},
            {"uri": "data://config", "name": "config"},
        ]
    }


async def test_templates_list_shows_uri_templates(connect) -> None:
    peer = await connect(_server())
    listed = await peer.result("resources/templates/list")
    assert listed == {
        "resourceTemplates": [
            {
                "uriTemplate": "users://{user_id}/profile",
                "name": "profile",
                "mimeType": "application/json",
            },
            {"uriTemplate": "files://{+path}", "name": "any_file"},
        ]
    }


async def test_reading_text_keeps_the_declared_mime_type(connect) -> None:
    peer = await connect(_server())
    assert await peer.result("resources/read", {"uri": "file:///readme"}) == {
        "contents": [{"uri": "file:///readme", "text": "# hi", "mimeType": "text/markdown"}]
    }


async def test_reading_bytes_gives_a_base64_blob(connect) -> None:
    peer = await connect(_server())
    contents = (await peer.result("resources/read", {"uri": "file:///logo.png"}))["contents"]
    assert contents == [
        {
            "uri": "file:///logo.png",
            "blob": base64.b64encode(b"\x89PN").decode(),
            "mimeType": "image/png",
        }
    ]


async def test_reading_a_dict_gives_json_text(connect) -> None:
    peer = await connect(_server())
    contents = (await peer.result("resources/read", {"uri": "data://config"}))["contents"]
    assert contents == [
        {"uri": "data://config", "text": '{"debug":true}', "mimeType": "application/json"}
    ]


async def test_a_template_variable_matches_one_path_segment(connect) -> None:
    peer = await connect(_server())
    contents = (await peer.result("resources/read", {"uri": "users://42/profile"}))["contents"]
    assert contents == [
        {"uri": "users://42/profile", "text": '{"id":"42"}', "mimeType": "application/json"}
    ]
    error = await peer.error("resources/read", {"uri": "users://4/2/profile"})
    assert error["code"] == RESOURCE_NOT_FOUND


async def test_a_reserved_template_variable_matches_slashes_and_gets_the_context(connect) -> None:
    peer = await connect(_server())
    response = await peer.request(
        "resources/read", {"uri": "files://a/b/c.txt"}, request_id="read-1"
    )
    assert response is not None
    assert response["result"]["contents"] == [
        {"uri": "files://a/b/c.txt", "text": "a/b/c.txt for read-1"}
    ]


async def test_an_unknown_uri_is_resource_not_found_with_the_uri_in_data(connect) -> None:
    peer = await connect(_server())
    error = await peer.error("resources/read", {"uri": "file:///nope"})
    assert error == {
        "code": RESOURCE_NOT_FOUND,
        "message": "Resource not found",
        "data": {"uri": "file:///nope"},
    }


async def test_reading_without_a_string_uri_is_invalid_params(connect) -> None:
    peer = await connect(_server())
    assert (await peer.error("resources/read", {"uri": 3}))["code"] == INVALID_PARAMS
    assert (await peer.error("resources/read", {}))["code"] == INVALID_PARAMS


async def test_contents_values_are_taken_as_they_are(connect) -> None:
    server = McpServer("r")

    @server.resource("multi://x")
    def multi() -> list[Any]:
        return [
            TextResourceContents(uri="multi://x#1", text="one", mime_type="text/plain"),
            BlobResourceContents.from_bytes("multi://x#2", b"\x00\x01"),
        ]

    peer = await connect(server)
    assert (await peer.result("resources/read", {"uri": "multi://x"}))["contents"] == [
        {"uri": "multi://x#1", "text": "one", "mimeType": "text/plain"},
        {"uri": "multi://x#2", "blob": "AAE="},
    ]


async def test_subscribe_needs_a_known_uri_and_unsubscribe_forgets_it(connect) -> None:
    peer = await connect(_server())
    assert await peer.result("resources/subscribe", {"uri": "users://7/profile"}) == {}
    assert peer.session.subscriptions == {"users://7/profile"}
    error = await peer.error("resources/subscribe", {"uri": "nope://x"})
    assert error["code"] == RESOURCE_NOT_FOUND
    assert error["data"] == {"uri": "nope://x"}
    assert await peer.result("resources/unsubscribe", {"uri": "users://7/profile"}) == {}
    assert peer.session.subscriptions == set()


# ---- templates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "uri", "variables"),
    [
        ("a://{x}", "a://1", {"x": "1"}),
        ("a://{x}/b/{y}", "a://1/b/2", {"x": "1", "y": "2"}),
        ("a://{x}", "a://1/2", None),
        ("a://{x}", "a://1?q", None),
        ("a://{+x}", "a://1/2?q#f", {"x": "1/2?q#f"}),
        ("a://{x}.json", "a://cfg.json", {"x": "cfg"}),
        ("a://{x}", "a://", None),
        ("a.b://{x}", "aXb://1", None),  # literal parts are not regex
    ],
)
def test_template_matching(template: str, uri: str, variables: dict[str, str] | None) -> None:
    pattern, names = compile_template(template)
    found = pattern.match(uri)
    assert (found.groupdict() if found else None) == variables
    assert set(names) == set(variables or names)


@pytest.mark.parametrize(
    "template", ["a://{x}/{x}", "a://{?q}", "a://{x", "a://x}", "a://{?q}/{x}", "a://{#f}/{x}"]
)
def test_templates_this_server_cannot_match_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        compile_template(template)


def test_a_template_function_must_take_every_variable() -> None:
    server = McpServer("r")
    with pytest.raises(ValueError, match="does not take"):

        @server.resource("a://{x}/{y}")
        def only_x(x: str) -> str:
            return x


def test_a_resource_uri_can_be_registered_once() -> None:
    server = McpServer("r")
    server.resource("a://x")(lambda: "1")
    with pytest.raises(ValueError, match="already registered"):
        server.resource("a://x")(lambda: "2")
