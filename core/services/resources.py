"""The resources feature: static resources, URI templates, reads and subscriptions.

Spec: MCP 2025-11-25 "Server Features" > "Resources"; RFC 6570 for templates (levels 1 and 2:
`{var}` matches one path segment, `{+var}` anything).

A resource function returns its contents: `str` is text, `bytes` is a base64 blob, a dict or
list is JSON text, and `TextResourceContents`/`BlobResourceContents` (or a list of them) are
taken as they are. A template function receives the template's variables as keyword
arguments. Reading an unknown URI is error -32002 with the URI in `data`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import attrs
import orjson

from ..protocol import errors
from ..protocol.errors import McpError
from ..protocol.types import (
    Annotations,
    BlobResourceContents,
    Icon,
    TextResourceContents,
)
from ..protocol.wire import to_wire
from .context import Context
from .handlers import definition, invoke
from .signature import context_param_of

__all__ = ["Resource", "ResourceRegistry", "ResourceTemplate", "compile_template"]

_VAR = re.compile(r"\{(\+?)([A-Za-z_][A-Za-z0-9_]*)\}")


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regex that matches URIs of an RFC 6570 template, and its variable names."""
    parts: list[str] = []
    names: list[str] = []
    pos = 0
    for match in _VAR.finditer(template):
        parts.append(_literal(template, template[pos : match.start()]))
        reserved, name = match.groups()
        if name in names:
            raise ValueError(f"template {template!r} repeats variable {name!r}")
        names.append(name)
        parts.append(f"(?P<{name}>.+)" if reserved else f"(?P<{name}>[^/?#]+)")
        pos = match.end()
    parts.append(_literal(template, template[pos:]))
    return re.compile("".join(parts) + r"\Z"), tuple(names)


def _literal(template: str, text: str) -> str:
    # A brace left between the expressions we match is one we do not (`{?q}`, `{#f}`, ...).
    if "{" in text or "}" in text:
        raise ValueError(f"template {template!r} has an expression this server cannot match")
    return re.escape(text)


async def _read(
    fn: Callable[..., Any], kwargs: dict[str, Any], ctx: Context, run_in_thread: bool
) -> Any:
    param = context_param_of(fn, Context)
    if param:
        kwargs[param] = ctx
    return await invoke(
        fn, kwargs, is_async=inspect.iscoroutinefunction(fn), run_in_thread=run_in_thread
    )


def contents_from_value(uri: str, value: Any, mime_type: str | None) -> list[dict[str, Any]]:
    if isinstance(value, (TextResourceContents, BlobResourceContents)):
        return [to_wire(value)]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (TextResourceContents, BlobResourceContents)) for v in value)
    ):
        return [to_wire(v) for v in value]
    if isinstance(value, str):
        item: dict[str, Any] = {"uri": uri, "text": value}
    elif isinstance(value, (bytes, bytearray, memoryview)):
        item = to_wire(BlobResourceContents.from_bytes(uri, bytes(value)))
    else:
        item = {"uri": uri, "text": orjson.dumps(value).decode()}
        mime_type = mime_type or "application/json"
    if mime_type is not None:
        item["mimeType"] = mime_type
    return [item]


@attrs.define(kw_only=True, eq=False)
class Resource:
    uri: str
    name: str
    fn: Callable[..., Any]
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None
    annotations: Annotations | None = None
    icons: list[Icon] | None = None
    meta: dict[str, Any] | None = None
    run_in_thread: bool = False

    def definition(self) -> dict[str, Any]:
        return definition(
            {"uri": self.uri, "name": self.name},
            title=self.title,
            description=self.description,
            mimeType=self.mime_type,
            size=self.size,
            annotations=self.annotations,
            icons=self.icons,
            meta=self.meta,
        )

    async def read(self, ctx: Context) -> list[dict[str, Any]]:
        value = await _read(self.fn, {}, ctx, self.run_in_thread)
        return contents_from_value(self.uri, value, self.mime_type)


@attrs.define(kw_only=True, eq=False)
class ResourceTemplate:
    uri_template: str
    name: str
    fn: Callable[..., Any]
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    annotations: Annotations | None = None
    icons: list[Icon] | None = None
    meta: dict[str, Any] | None = None
    run_in_thread: bool = False
    pattern: re.Pattern[str] = attrs.field(init=False)
    variables: tuple[str, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.pattern, self.variables = compile_template(self.uri_template)

    def definition(self) -> dict[str, Any]:
        return definition(
            {"uriTemplate": self.uri_template, "name": self.name},
            title=self.title,
            description=self.description,
            mimeType=self.mime_type,
            annotations=self.annotations,
            icons=self.icons,
            meta=self.meta,
        )

    def match(self, uri: str) -> dict[str, str] | None:
        found = self.pattern.match(uri)
        return found.groupdict() if found else None

    async def read(self, uri: str, variables: dict[str, str], ctx: Context) -> list[dict[str, Any]]:
        value = await _read(self.fn, dict(variables), ctx, self.run_in_thread)
        return contents_from_value(uri, value, self.mime_type)


class ResourceRegistry:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._resources: dict[str, Resource] = {}
        self._templates: dict[str, ResourceTemplate] = {}
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._resources) + len(self._templates)

    def resources(self) -> list[Resource]:
        return list(self._resources.values())

    def templates(self) -> list[ResourceTemplate]:
        return list(self._templates.values())

    def add(self, resource: Resource, *, replace: bool = False) -> Resource:
        if resource.uri in self._resources and not replace:
            raise ValueError(f"a resource {resource.uri!r} is already registered")
        self._resources[resource.uri] = resource
        self._on_change()
        return resource

    def add_template(
        self, template: ResourceTemplate, *, replace: bool = False
    ) -> ResourceTemplate:
        if template.uri_template in self._templates and not replace:
            raise ValueError(f"a template {template.uri_template!r} is already registered")
        signature = inspect.signature(template.fn)
        missing = [v for v in template.variables if v not in signature.parameters]
        if missing and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
        ):
            raise ValueError(
                f"template {template.uri_template!r}: the function does not take {missing}"
            )
        self._templates[template.uri_template] = template
        self._on_change()
        return template

    def remove(self, uri: str) -> bool:
        if self._resources.pop(uri, None) is None and self._templates.pop(uri, None) is None:
            return False
        self._on_change()
        return True

    def knows(self, uri: str) -> bool:
        return uri in self._resources or any(t.match(uri) for t in self._templates.values())

    async def read(self, uri: str, ctx: Context) -> list[dict[str, Any]]:
        resource = self._resources.get(uri)
        if resource is not None:
            return await resource.read(ctx)
        for template in self._templates.values():
            variables = template.match(uri)
            if variables is not None:
                return await template.read(uri, variables, ctx)
        raise McpError(errors.RESOURCE_NOT_FOUND, "Resource not found", {"uri": uri})
