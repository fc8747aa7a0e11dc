"""The tools feature: registration, `tools/list` and `tools/call`.

Spec: MCP 2025-11-25 "Server Features" > "Tools".

A tool is a Python function, sync or async. Its `inputSchema` is derived from the type hints
(see `signature.py`) or given by hand; a hand-written schema is advertised exactly as given
(JSON Schema 2020-12, `$schema`, `$defs` and all). Each schema is compiled once, at
registration, with jsonschema-rs; arguments that do not validate are answered with an
`isError` result that says why, so the model can correct itself (2025-11-25, SEP-1303).

What a tool returns becomes the result: a string is one text block; content values, or a list
of them, are the content; a `CallToolResult` is taken as is; a dict, or an attrs/dataclass
instance, is structured content (with its JSON as text too) and, when the return type says so,
advertised as `outputSchema` and validated against it. Raising `ToolError` (or any exception)
gives an `isError` result; raising `McpError` gives a JSON-RPC error.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, get_origin

import attrs
import cattrs
import jsonschema_rs
import orjson

from ..protocol import errors
from ..protocol.errors import McpError
from ..protocol.types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    Icon,
    ImageContent,
    ResourceLink,
    TextContent,
    ToolAnnotations,
)
from ..protocol.wire import to_wire
from .context import Context
from .handlers import Registry, definition, invoke
from .signature import (
    FunctionSignature,
    SchemaError,
    context_param_of,
    describe_function,
    docstring_summary,
    schema_for_type,
)

__all__ = ["Tool", "ToolError", "ToolRegistry", "content_from_value"]

log = logging.getLogger("mcp_core.tools")

_CONTENT_TYPES = ("text", "image", "audio", "resource_link", "resource")
# Returning one of these is content (or the whole result), never structured content.
_CONTENT_CLASSES = (TextContent, ImageContent, AudioContent, ResourceLink, EmbeddedResource)


class ToolError(Exception):
    """Raise from a tool to answer with `isError: true` and this message as text."""


def _compile(schema: Mapping[str, Any], what: str) -> Any:
    try:
        return jsonschema_rs.validator_for(dict(schema))
    except Exception as exc:  # jsonschema_rs raises ValidationError/ValueError on bad schemas
        raise SchemaError(f"{what} is not a valid JSON Schema: {exc}") from exc


def _is_object_schema(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object"


def _output_schema_for(annotation: Any) -> dict[str, Any] | None:
    """outputSchema for an object-shaped return type; None for text-like returns."""
    if annotation is inspect.Signature.empty or annotation is None or annotation is str:
        return None
    if isinstance(annotation, type) and issubclass(annotation, (*_CONTENT_CLASSES, CallToolResult)):
        return None
    origin = get_origin(annotation) or annotation
    if origin is dict or attrs.has(annotation) or dataclasses.is_dataclass(annotation):
        schema = schema_for_type(annotation)
        return schema if _is_object_schema(schema) else None
    if (
        isinstance(annotation, type)
        and issubclass(annotation, dict)
        and hasattr(annotation, "__total__")
    ):
        return schema_for_type(annotation)
    return None


@attrs.define(kw_only=True, eq=False)
class Tool:
    name: str
    fn: Callable[..., Any]
    input_schema: dict[str, Any]
    description: str | None = None
    title: str | None = None
    output_schema: dict[str, Any] | None = None
    annotations: ToolAnnotations | None = None
    icons: list[Icon] | None = None
    meta: dict[str, Any] | None = None
    run_in_thread: bool = False
    signature: FunctionSignature | None = None
    # For hand-written schemas: which keyword arguments the function accepts (None: all).
    accepted: frozenset[str] | None = None
    context_param: str | None = None
    is_async: bool = False
    # OAuth scopes a caller's access token must hold to call this tool (issue 4). Enforced by
    # the resource-server middleware, which answers 403 insufficient_scope for step-up.
    scopes: frozenset[str] = frozenset()
    _validator: Any = None
    _output_validator: Any = None
    _definition: dict[str, Any] | None = None

    def __attrs_post_init__(self) -> None:
        self._validator = _compile(self.input_schema, f"the inputSchema of tool {self.name!r}")
        if self.output_schema is not None:
            if not _is_object_schema(self.output_schema):
                raise SchemaError(f"the outputSchema of tool {self.name!r} must be of type object")
            self._output_validator = _compile(
                self.output_schema, f"the outputSchema of tool {self.name!r}"
            )

    def definition(self) -> dict[str, Any]:
        """The tool as `tools/list` shows it (computed once)."""
        if self._definition is None:
            self._definition = definition(
                {"name": self.name, "inputSchema": self.input_schema},
                title=self.title,
                description=self.description,
                outputSchema=self.output_schema,
                annotations=self.annotations,
                icons=self.icons,
                meta=self.meta,
            )
        return self._definition

    def argument_errors(self, arguments: Mapping[str, Any]) -> list[str]:
        if self._validator.is_valid(arguments):
            return []
        return [
            f"{'/'.join(str(p) for p in e.instance_path) or '(root)'}: {e.message}"
            for e in self._validator.iter_errors(arguments)
        ]

    async def call(
        self, arguments: dict[str, Any], ctx: Context, converter: cattrs.Converter
    ) -> dict[str, Any]:
        problems = self.argument_errors(arguments)
        if problems:
            return _error_result(f"Invalid arguments for tool {self.name}: " + "; ".join(problems))
        if self.signature is not None:
            kwargs = self.signature.bind(arguments, converter)
        elif self.accepted is None:
            kwargs = dict(arguments)
        else:
            kwargs = {k: v for k, v in arguments.items() if k in self.accepted}
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        try:
            value = await invoke(
                self.fn, kwargs, is_async=self.is_async, run_in_thread=self.run_in_thread
            )
        except McpError:
            raise
        except ToolError as exc:
            return _error_result(str(exc))
        except Exception as exc:
            log.exception("tool %s failed", self.name)
            return _error_result(f"Error executing tool {self.name}: {exc}")
        return self._result(value)

    def _result(self, value: Any) -> dict[str, Any]:
        if isinstance(value, CallToolResult):
            result: dict[str, Any] = to_wire(value)
        else:
            structured = _structured(value) if self.output_schema is not None else None
            if structured is None and isinstance(value, dict) and not _looks_like_content(value):
                structured = value
            if structured is not None:
                text = orjson.dumps(structured).decode()
                result = {
                    "content": [{"type": "text", "text": text}],
                    "structuredContent": structured,
                    "isError": False,
                }
            else:
                result = {"content": content_from_value(value), "isError": False}
        if self._output_validator is not None and not result.get("isError"):
            structured_content = result.get("structuredContent")
            if structured_content is None:
                raise McpError(
                    errors.INTERNAL_ERROR,
                    f"tool {self.name} declares an outputSchema but returned no structured content",
                )
            if not self._output_validator.is_valid(structured_content):
                raise McpError(
                    errors.INTERNAL_ERROR,
                    f"tool {self.name} returned structured content that does not match its "
                    "outputSchema",
                )
        return result


def _error_result(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _looks_like_content(value: Mapping[str, Any]) -> bool:
    return value.get("type") in _CONTENT_TYPES


# Structured content keeps the Python field names: the outputSchema derived from the return type
# (`schema_for_type`) names them so. The wire converter would rename them to camelCase.
_FIELDS = cattrs.Converter()


def _structured(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if attrs.has(type(value)) or dataclasses.is_dataclass(value):
        data = _FIELDS.unstructure(value)
        return data if isinstance(data, dict) else None
    return None


def content_from_value(value: Any) -> list[dict[str, Any]]:
    """Content blocks for what a handler returned."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, (list, tuple)):
        out: list[dict[str, Any]] = []
        for item in value:
            out.extend(content_from_value(item))
        return out
    if isinstance(value, dict) and _looks_like_content(value):
        return [value]
    if attrs.has(type(value)):
        wire = to_wire(value)
        if isinstance(wire, dict) and _looks_like_content(wire):
            return [wire]
        return [{"type": "text", "text": orjson.dumps(wire).decode()}]
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = str(value)
    return [{"type": "text", "text": text}]


class ToolRegistry(Registry[Tool]):
    """The tools of one server, in registration order."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__("tool", on_change)

    def add(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        run_in_thread: bool = False,
        replace: bool = False,
        scopes: Iterable[str] = (),
    ) -> Tool:
        tool_name = name or getattr(fn, "__name__", None)
        if not tool_name or not isinstance(tool_name, str):
            raise ValueError("a tool needs a name")
        if tool_name in self and not replace:
            raise ValueError(f"a tool named {tool_name!r} is already registered")
        is_async = inspect.iscoroutinefunction(fn)
        required = frozenset((scopes,) if isinstance(scopes, str) else scopes)
        if not all(isinstance(s, str) and s and " " not in s for s in required):
            raise ValueError("tool scopes must be non-empty strings without spaces")
        if input_schema is None:
            sig = describe_function(fn, context_type=Context)
            tool = Tool(
                name=tool_name,
                fn=fn,
                input_schema=sig.input_schema,
                description=description or sig.description,
                title=title,
                output_schema=(
                    dict(output_schema)
                    if output_schema is not None
                    else _output_schema_for(sig.return_annotation)
                ),
                annotations=annotations,
                icons=icons,
                meta=meta,
                run_in_thread=run_in_thread,
                signature=sig,
                context_param=sig.context_param,
                is_async=is_async,
                scopes=required,
            )
        else:
            if not _is_object_schema(input_schema):
                raise SchemaError(f"the inputSchema of tool {tool_name!r} must be of type object")
            accepted, context_param = _accepted_keywords(fn)
            tool = Tool(
                name=tool_name,
                fn=fn,
                input_schema=dict(input_schema),
                description=description or docstring_summary(fn),
                title=title,
                output_schema=dict(output_schema) if output_schema is not None else None,
                annotations=annotations,
                icons=icons,
                meta=meta,
                run_in_thread=run_in_thread,
                accepted=accepted,
                context_param=context_param,
                is_async=is_async,
                scopes=required,
            )
        return self.put(tool_name, tool, replace=replace)


def _accepted_keywords(fn: Callable[..., Any]) -> tuple[frozenset[str] | None, str | None]:
    """For hand-written schemas: the keyword names the function takes and its Context param."""
    context_param = context_param_of(fn, Context)
    names: set[str] = set()
    for param in inspect.signature(fn).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return None, context_param
        if param.name != context_param:
            names.add(param.name)
    return frozenset(names), context_param
