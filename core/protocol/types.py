"""MCP values a server author builds results from, and their wire form.

Spec: MCP 2025-11-25 "Server Features" (tools, resources, prompts), "Basic" > content blocks,
and the schema's `ContentBlock`, `CallToolResult`, `Tool`, `Resource`, `Prompt` definitions.

Values are frozen, keyword-only attrs classes with snake_case fields. `to_wire` (in `wire.py`)
turns any of them into the camelCase JSON object the schema defines, dropping fields left at
None; the `_meta` field is spelt `meta` here.
"""

from __future__ import annotations

import base64
from typing import Any, Literal, TypeAlias

import attrs

__all__ = [
    "LOGGING_LEVELS",
    "Annotations",
    "AudioContent",
    "BlobResourceContents",
    "CallToolResult",
    "Completion",
    "ContentBlock",
    "EmbeddedResource",
    "GetPromptResult",
    "Icon",
    "ImageContent",
    "LoggingLevel",
    "PromptMessage",
    "ResourceContents",
    "ResourceLink",
    "Role",
    "TextContent",
    "TextResourceContents",
    "ToolAnnotations",
]

Role: TypeAlias = Literal["user", "assistant"]
LoggingLevel: TypeAlias = Literal[
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"
]
# RFC 5424 severities, least severe first: a level's index orders it.
LOGGING_LEVELS: tuple[str, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


@attrs.frozen(kw_only=True)
class Annotations:
    audience: list[Role] | None = None
    priority: float | None = None
    last_modified: str | None = None


@attrs.frozen(kw_only=True)
class Icon:
    src: str
    mime_type: str | None = None
    sizes: list[str] | None = None
    theme: Literal["light", "dark"] | None = None


@attrs.frozen(kw_only=True)
class TextContent:
    text: str
    type: Literal["text"] = "text"
    annotations: Annotations | None = None
    meta: dict[str, Any] | None = None


def _b64(data: bytes | str) -> str:
    return data if isinstance(data, str) else base64.b64encode(data).decode("ascii")


@attrs.frozen(kw_only=True)
class ImageContent:
    """An image; `data` is base64 text (build from raw bytes with `from_bytes`)."""

    data: str
    mime_type: str
    type: Literal["image"] = "image"
    annotations: Annotations | None = None
    meta: dict[str, Any] | None = None

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str) -> ImageContent:
        return cls(data=_b64(data), mime_type=mime_type)


@attrs.frozen(kw_only=True)
class AudioContent:
    """Audio; `data` is base64 text (build from raw bytes with `from_bytes`)."""

    data: str
    mime_type: str
    type: Literal["audio"] = "audio"
    annotations: Annotations | None = None
    meta: dict[str, Any] | None = None

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str) -> AudioContent:
        return cls(data=_b64(data), mime_type=mime_type)


@attrs.frozen(kw_only=True)
class TextResourceContents:
    uri: str
    text: str
    mime_type: str | None = None
    meta: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class BlobResourceContents:
    """Binary resource contents; `blob` is base64 text (see `from_bytes`)."""

    uri: str
    blob: str
    mime_type: str | None = None
    meta: dict[str, Any] | None = None

    @classmethod
    def from_bytes(
        cls, uri: str, data: bytes, mime_type: str | None = None
    ) -> BlobResourceContents:
        return cls(uri=uri, blob=_b64(data), mime_type=mime_type)


ResourceContents: TypeAlias = TextResourceContents | BlobResourceContents


@attrs.frozen(kw_only=True)
class EmbeddedResource:
    resource: ResourceContents
    type: Literal["resource"] = "resource"
    annotations: Annotations | None = None
    meta: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ResourceLink:
    uri: str
    name: str
    type: Literal["resource_link"] = "resource_link"
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None
    annotations: Annotations | None = None
    meta: dict[str, Any] | None = None


ContentBlock: TypeAlias = (
    TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource
)


@attrs.frozen(kw_only=True)
class ToolAnnotations:
    """Hints about a tool's behaviour (untrusted by clients unless the server is trusted)."""

    title: str | None = None
    read_only_hint: bool | None = None
    destructive_hint: bool | None = None
    idempotent_hint: bool | None = None
    open_world_hint: bool | None = None


@attrs.frozen(kw_only=True)
class CallToolResult:
    """A complete tool result, for handlers that want full control over it."""

    content: list[ContentBlock] = attrs.field(factory=list)
    structured_content: dict[str, Any] | None = None
    is_error: bool = False
    meta: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class PromptMessage:
    role: Role
    content: ContentBlock


@attrs.frozen(kw_only=True)
class GetPromptResult:
    messages: list[PromptMessage]
    description: str | None = None
    meta: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Completion:
    """Completion values. The server sends at most 100 and sets `hasMore` past that."""

    values: list[str]
    total: int | None = None
    has_more: bool | None = None
