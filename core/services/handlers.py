"""What the tools, resources and prompts features share.

A feature keeps named handlers in a `Registry` (registration order, duplicates refused unless
replaced, every change reported so the server can send `list_changed`), calls them with
`invoke` (async functions awaited, sync ones called inline or, when they block, in a worker
thread), and lists them with `definition` (optional fields left out, never sent as null).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import anyio.to_thread

from ..protocol.types import Annotations, Icon, ToolAnnotations
from ..protocol.wire import to_wire

__all__ = ["Registry", "definition", "invoke"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name, in registration order."""

    def __init__(self, kind: str, on_change: Callable[[], None]) -> None:
        self._kind = kind
        self._items: dict[str, T] = {}
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def all(self) -> list[T]:
        return list(self._items.values())

    def put(self, name: str, item: T, *, replace: bool = False) -> T:
        if name in self._items and not replace:
            raise ValueError(f"a {self._kind} named {name!r} is already registered")
        self._items[name] = item
        self._on_change()
        return item

    def remove(self, name: str) -> bool:
        if self._items.pop(name, None) is None:
            return False
        self._on_change()
        return True


async def invoke(
    fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool, run_in_thread: bool
) -> Any:
    if is_async:
        return await fn(**kwargs)
    if run_in_thread:
        return await anyio.to_thread.run_sync(lambda: fn(**kwargs))
    return fn(**kwargs)


def definition(
    base: dict[str, Any],
    *,
    title: str | None = None,
    description: str | None = None,
    annotations: Annotations | ToolAnnotations | None = None,
    icons: list[Icon] | None = None,
    meta: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """`base` plus every optional field that is set; `fields` are given by their wire names."""
    out = dict(base)
    if title is not None:
        out["title"] = title
    if description is not None:
        out["description"] = description
    for key, value in fields.items():
        if value is not None:
            out[key] = value
    if annotations is not None:
        out["annotations"] = to_wire(annotations)
    if icons:
        out["icons"] = to_wire(icons)
    if meta:
        out["_meta"] = meta
    return out
