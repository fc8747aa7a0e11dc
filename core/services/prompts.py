"""The prompts feature: `prompts/list` and `prompts/get`.

Spec: MCP 2025-11-25 "Server Features" > "Prompts".

A prompt is a function whose parameters are the prompt's arguments (strings on the wire;
parameters without a default are required). It returns a string (one user message), a content
value, a `PromptMessage` or a list of those, or a whole `GetPromptResult`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..protocol import errors
from ..protocol.errors import McpError
from ..protocol.types import GetPromptResult, Icon, PromptMessage
from ..protocol.wire import to_wire
from .context import Context
from .handlers import Registry, definition, invoke
from .signature import annotations_of, context_param_of, docstring_summary
from .tools import content_from_value

__all__ = ["Prompt", "PromptArgument", "PromptRegistry"]


@attrs.frozen(kw_only=True)
class PromptArgument:
    name: str
    description: str | None = None
    required: bool = False


@attrs.define(kw_only=True, eq=False)
class Prompt:
    name: str
    fn: Callable[..., Any]
    arguments: list[PromptArgument]
    title: str | None = None
    description: str | None = None
    icons: list[Icon] | None = None
    meta: dict[str, Any] | None = None
    context_param: str | None = None
    run_in_thread: bool = False

    def definition(self) -> dict[str, Any]:
        return definition(
            {"name": self.name},
            title=self.title,
            description=self.description,
            arguments=[to_wire(a) for a in self.arguments] or None,
            icons=self.icons,
            meta=self.meta,
        )

    async def get(self, arguments: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        known = {a.name for a in self.arguments}
        missing = [a.name for a in self.arguments if a.required and a.name not in arguments]
        if missing:
            raise McpError(
                errors.INVALID_PARAMS,
                f"prompt {self.name!r} is missing required arguments: {', '.join(missing)}",
            )
        bad = [k for k, v in arguments.items() if k in known and not isinstance(v, str)]
        if bad:
            raise McpError(
                errors.INVALID_PARAMS, f"prompt arguments must be strings: {', '.join(bad)}"
            )
        kwargs: dict[str, Any] = {k: v for k, v in arguments.items() if k in known}
        if self.context_param:
            kwargs[self.context_param] = ctx
        value = await invoke(
            self.fn,
            kwargs,
            is_async=inspect.iscoroutinefunction(self.fn),
            run_in_thread=self.run_in_thread,
        )
        return _prompt_result(value, self.description)


def _message(item: Any) -> dict[str, Any]:
    if isinstance(item, PromptMessage):
        wire: dict[str, Any] = to_wire(item)
        return wire
    if isinstance(item, dict) and "role" in item and "content" in item:
        return item
    blocks = content_from_value(item)
    if len(blocks) != 1:
        raise McpError(errors.INTERNAL_ERROR, "a prompt message must hold exactly one block")
    return {"role": "user", "content": blocks[0]}


def _prompt_result(value: Any, description: str | None) -> dict[str, Any]:
    if isinstance(value, GetPromptResult):
        result: dict[str, Any] = to_wire(value)
        return result
    items = value if isinstance(value, (list, tuple)) else [value]
    out: dict[str, Any] = {"messages": [_message(item) for item in items]}
    if description is not None:
        out["description"] = description
    return out


class PromptRegistry(Registry[Prompt]):
    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__("prompt", on_change)

    def add(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        arguments: list[PromptArgument] | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        run_in_thread: bool = False,
        replace: bool = False,
    ) -> Prompt:
        prompt_name = name or getattr(fn, "__name__", None)
        if not prompt_name or not isinstance(prompt_name, str):
            raise ValueError("a prompt needs a name")
        derived, context_param = _arguments_of(fn)
        prompt = Prompt(
            name=prompt_name,
            fn=fn,
            arguments=arguments if arguments is not None else derived,
            title=title,
            description=description or docstring_summary(fn),
            icons=icons,
            meta=meta,
            context_param=context_param,
            run_in_thread=run_in_thread,
        )
        return self.put(prompt_name, prompt, replace=replace)


def _arguments_of(fn: Callable[..., Any]) -> tuple[list[PromptArgument], str | None]:
    hints = annotations_of(fn)
    context_param = context_param_of(fn, Context)
    out: list[PromptArgument] = []
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name)
        if param.name == context_param:
            continue
        description = None
        metadata = getattr(annotation, "__metadata__", ())
        for extra in metadata:
            if isinstance(extra, str):
                description = extra
        out.append(
            PromptArgument(
                name=param.name,
                description=description,
                required=param.default is inspect.Parameter.empty,
            )
        )
    return out, context_param
