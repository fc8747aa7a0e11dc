"""The converter between the library's values and MCP's wire JSON."""

from __future__ import annotations

import base64

import pytest

from mcp_core.core.protocol.types import (
    Annotations,
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    Completion,
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
from mcp_core.core.protocol.wire import camel, to_wire


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("mime_type", "mimeType"),
        ("structured_content", "structuredContent"),
        ("read_only_hint", "readOnlyHint"),
        ("meta", "_meta"),
        ("uri", "uri"),
        ("last_modified", "lastModified"),
    ],
)
def test_field_names_are_camel_case_on_the_wire(name: str, wire: str) -> None:
    assert camel(name) == wire


def test_text_content_always_writes_its_type_and_drops_none_fields() -> None:
    assert to_wire(TextContent(text="hi")) == {"type": "text", "text": "hi"}


def test_image_and_audio_content_from_bytes_are_base64_with_a_camel_mime_type() -> None:
    image = to_wire(ImageContent.from_bytes(b"\x89PNG", "image/png"))
    assert image == {
        "type": "image",
        "data": base64.b64encode(b"\x89PNG").decode(),
        "mimeType": "image/png",
    }
    audio = to_wire(AudioContent(data="AAAA", mime_type="audio/wav"))
    assert audio == {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"}


def test_meta_and_annotations_are_written_when_set() -> None:
    value = TextContent(
        text="t",
        annotations=Annotations(audience=["user"], priority=0.5, last_modified="2025-01-01"),
        meta={"k": 1},
    )
    assert to_wire(value) == {
        "type": "text",
        "text": "t",
        "annotations": {"audience": ["user"], "priority": 0.5, "lastModified": "2025-01-01"},
        "_meta": {"k": 1},
    }


def test_embedded_resources_write_their_contents_by_runtime_type() -> None:
    text = to_wire(EmbeddedResource(resource=TextResourceContents(uri="a://t", text="x")))
    assert text == {"type": "resource", "resource": {"uri": "a://t", "text": "x"}}
    blob = to_wire(
        EmbeddedResource(resource=BlobResourceContents.from_bytes("a://b", b"\x00", "x/y"))
    )
    assert blob == {
        "type": "resource",
        "resource": {"uri": "a://b", "blob": "AA==", "mimeType": "x/y"},
    }


def test_resource_link_writes_its_tag_and_optional_fields() -> None:
    assert to_wire(ResourceLink(uri="a://x", name="x", size=3)) == {
        "type": "resource_link",
        "uri": "a://x",
        "name": "x",
        "size": 3,
    }


def test_a_call_tool_result_always_has_content_and_is_error() -> None:
    assert to_wire(CallToolResult()) == {"content": [], "isError": False}
    result = CallToolResult(
        content=[TextContent(text="a"), ImageContent(data="AA==", mime_type="image/png")],
        structured_content={"n": 1},
        is_error=True,
    )
    assert to_wire(result) == {
        "content": [
            {"type": "text", "text": "a"},
            {"type": "image", "data": "AA==", "mimeType": "image/png"},
        ],
        "structuredContent": {"n": 1},
        "isError": True,
    }


def test_false_and_zero_are_not_dropped_only_none_is() -> None:
    hints = to_wire(ToolAnnotations(read_only_hint=False, destructive_hint=None))
    assert hints == {"readOnlyHint": False}
    assert to_wire(Completion(values=[], total=0, has_more=False)) == {
        "values": [],
        "total": 0,
        "hasMore": False,
    }


def test_prompt_results_nest_messages_and_content() -> None:
    result = GetPromptResult(
        messages=[PromptMessage(role="assistant", content=TextContent(text="x"))],
        description="d",
    )
    assert to_wire(result) == {
        "messages": [{"role": "assistant", "content": {"type": "text", "text": "x"}}],
        "description": "d",
    }


def test_lists_of_values_are_converted_item_by_item() -> None:
    icons = [Icon(src="https://x/i.png", mime_type="image/png", sizes=["48x48"]), Icon(src="s")]
    assert to_wire(icons) == [
        {"src": "https://x/i.png", "mimeType": "image/png", "sizes": ["48x48"]},
        {"src": "s"},
    ]
