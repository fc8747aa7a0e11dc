"""Plain Python functions as MCP handlers: JSON Schema from type hints, arguments back to types.

A tool's `inputSchema` is derived from its parameters: each parameter is a property, those
without a default are required, `Annotated[T, "text"]` (or `Annotated[T, Param(...)]`)
describes one, and a parameter annotated with `Context` is injected by the server and left out
of the schema. Supported types: str, int, float, bool, None, list/tuple/set, dict[str, T],
Literal, Enum, unions and Optional, TypedDict, attrs classes and dataclasses. Anything else is
an error at registration, not at call time.

Written by hand because no maintained library maps type hints to JSON Schema 2020-12 without
pulling in a model framework (pydantic) the core does not otherwise need. cattrs turns the
validated JSON back into the annotated types.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import attrs
import cattrs

__all__ = [
    "FunctionSignature",
    "Param",
    "SchemaError",
    "annotations_of",
    "context_param_of",
    "describe_function",
    "docstring_summary",
    "is_context",
    "schema_for_type",
]

_JSON_NATIVE = (str, int, float, bool, type(None), list, dict)


class SchemaError(TypeError):
    """A function's signature cannot be described as a JSON Schema."""


@attrs.frozen(kw_only=True)
class Param:
    """Extra facts about a parameter: `Annotated[int, Param(description="...", ge=0)]`."""

    description: str | None = None
    title: str | None = None
    examples: list[Any] | None = None
    # Any JSON Schema keywords to merge into the parameter's schema (minimum, pattern, ...).
    schema: Mapping[str, Any] | None = None


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


def schema_for_type(tp: Any) -> dict[str, Any]:
    """JSON Schema for a Python type."""
    if tp is Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [member.value for member in tp]
        return {"enum": values}
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Annotated:
        base = schema_for_type(args[0])
        return _apply_annotations(base, args[1:])
    if origin in (typing.Required, typing.NotRequired):
        # A TypedDict key's marker: which keys are required is read from `__required_keys__`.
        return schema_for_type(args[0])
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [schema_for_type(arg) for arg in args]
        non_null = [o for o in options if o != {"type": "null"}]
        if len(non_null) == 1 and len(options) == 2:
            inner = non_null[0]
            if set(inner) == {"type"} and isinstance(inner["type"], str):
                return {"type": [inner["type"], "null"]}
        return {"anyOf": options}
    if origin in (list, set, frozenset, Sequence) or tp in (list, set, frozenset):
        item = schema_for_type(args[0]) if args else {}
        out: dict[str, Any] = {"type": "array", "items": item}
        if origin in (set, frozenset) or tp in (set, frozenset):
            out["uniqueItems"] = True
        return out
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_for_type(args[0])}
        return {
            "type": "array",
            "prefixItems": [schema_for_type(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin in (dict, typing.Mapping, Mapping) or tp is dict:
        if args and args[0] is not str:
            raise SchemaError(f"dict keys must be str for JSON, not {args[0]!r}")
        value = schema_for_type(args[1]) if args else {}
        return {"type": "object", "additionalProperties": value} if value else {"type": "object"}
    if _is_typeddict(tp):
        hints = get_type_hints(tp, include_extras=True)
        declared = getattr(tp, "__required_keys__", hints.keys())
        # A Required/NotRequired marker decides: `__required_keys__` misses markers written as
        # strings (`from __future__ import annotations`) on Python 3.11.
        required = sorted(
            key
            for key, hint in hints.items()
            if get_origin(hint) is typing.Required
            or (get_origin(hint) is not typing.NotRequired and key in declared)
        )
        return {
            "type": "object",
            "properties": {k: schema_for_type(v) for k, v in hints.items()},
            "required": required,
        }
    if attrs.has(tp) or dataclasses.is_dataclass(tp):
        return _schema_for_record(tp)
    raise SchemaError(f"cannot describe {tp!r} as JSON Schema")


def _schema_for_record(tp: Any) -> dict[str, Any]:
    hints = get_type_hints(tp, include_extras=True)
    props: dict[str, Any] = {}
    required: list[str] = []
    fields: list[tuple[str, bool]]
    if attrs.has(tp):
        fields = [(f.name, f.default is attrs.NOTHING) for f in attrs.fields(tp)]
    else:
        fields = [
            (
                f.name,
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            )
            for f in dataclasses.fields(tp)
        ]
    for name, is_required in fields:
        props[name] = schema_for_type(hints.get(name, Any))
        if is_required:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _apply_annotations(base: dict[str, Any], extras: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(base)
    for extra in extras:
        if isinstance(extra, str):
            out["description"] = extra
        elif isinstance(extra, Param):
            if extra.description is not None:
                out["description"] = extra.description
            if extra.title is not None:
                out["title"] = extra.title
            if extra.examples is not None:
                out["examples"] = list(extra.examples)
            if extra.schema:
                out.update(extra.schema)
    return out


def _needs_structuring(tp: Any) -> bool:
    """Whether validated JSON must be converted before the function sees it."""
    if tp in _JSON_NATIVE or tp is Any or tp is object:
        # An integral JSON number arrives as int; and JSON Schema's "integer" admits 1.0.
        return tp is float or tp is int
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _needs_structuring(get_args(tp)[0])
    if origin is Literal:
        return False
    if origin in (Union, types.UnionType, list, dict):
        return any(_needs_structuring(a) for a in get_args(tp))
    return True


@attrs.frozen(kw_only=True)
class FunctionSignature:
    """What the server needs to call a function from JSON arguments."""

    input_schema: dict[str, Any]
    # Parameter names, in order, that come from the JSON arguments.
    arguments: tuple[str, ...]
    # The parameter that receives the request Context, if any.
    context_param: str | None
    # Parameters whose JSON value must be structured into the annotated type.
    structured: Mapping[str, Any]
    return_annotation: Any
    description: str | None
    is_async: bool

    def bind(self, raw: Mapping[str, Any], converter: cattrs.Converter) -> dict[str, Any]:
        """Keyword arguments for the function from already validated JSON arguments."""
        kwargs = {name: raw[name] for name in self.arguments if name in raw}
        for name, tp in self.structured.items():
            if name in kwargs:
                kwargs[name] = converter.structure(kwargs[name], tp)
        return kwargs


def is_context(tp: Any, context_type: type) -> bool:
    """Whether a parameter asks for the request context (`Context`, `Context | None`, ...)."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return is_context(get_args(tp)[0], context_type)
    if origin in (Union, types.UnionType):
        return any(is_context(arg, context_type) for arg in get_args(tp))
    return isinstance(tp, type) and issubclass(tp, context_type)


def docstring_summary(fn: Callable[..., Any]) -> str | None:
    """The first paragraph of a function's docstring, on one line: its default description."""
    doc = inspect.getdoc(fn)
    if not doc:
        return None
    return doc.strip().split("\n\n", 1)[0].replace("\n", " ").strip() or None


def annotations_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """A function's annotations with string annotations resolved ({} when they cannot be)."""
    try:
        return inspect.get_annotations(fn, eval_str=True)
    except Exception:
        return {}


def context_param_of(fn: Callable[..., Any], context_type: type) -> str | None:
    """The parameter that asks for the request context, if any."""
    for name, annotation in annotations_of(fn).items():
        if name != "return" and is_context(annotation, context_type):
            return name
    return None


def describe_function(
    fn: Callable[..., Any], *, context_type: type | None = None
) -> FunctionSignature:
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolvable forward references and the like
        raise SchemaError(f"cannot read the type hints of {fn!r}: {exc}") from exc
    sig = inspect.signature(fn)
    props: dict[str, Any] = {}
    required: list[str] = []
    arguments: list[str] = []
    structured: dict[str, Any] = {}
    context_param: str | None = None
    for name, param in sig.parameters.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise SchemaError(f"{fn.__qualname__}: *args and **kwargs cannot be described")
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise SchemaError(f"{fn.__qualname__}: positional-only parameters are not supported")
        tp = hints.get(name, Any)
        bare = get_args(tp)[0] if get_origin(tp) is typing.Annotated else tp
        if context_type is not None and is_context(tp, context_type):
            context_param = name
            continue
        schema = schema_for_type(tp)
        if param.default is not inspect.Parameter.empty:
            default = param.default
            if isinstance(default, enum.Enum):
                default = default.value
            if default is None or isinstance(default, (str, int, float, bool)):
                schema = {**schema, "default": default}
        else:
            required.append(name)
        props[name] = schema
        arguments.append(name)
        if _needs_structuring(tp):
            # The bare type: cattrs hashes what it structures, and Annotated metadata (a Param
            # holding a schema dict) is unhashable and only matters to the schema anyway.
            structured[name] = bare
    input_schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        input_schema["required"] = required
    return FunctionSignature(
        input_schema=input_schema,
        arguments=tuple(arguments),
        context_param=context_param,
        structured=structured,
        return_annotation=hints.get("return", inspect.Signature.empty),
        description=docstring_summary(fn),
        is_async=inspect.iscoroutinefunction(fn),
    )
