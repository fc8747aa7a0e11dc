"""Run an async adapter from synchronous test code, on one event loop for its whole life."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

T = TypeVar("T")

__all__ = ["Driver", "driver"]


class Driver:
    """Calls coroutine functions on the portal's loop and returns their results."""

    def __init__(self, portal: BlockingPortal) -> None:
        self._portal = portal

    def __call__(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if kwargs:
            return self._portal.call(partial(fn, *args, **kwargs))
        return self._portal.call(fn, *args)

    def build(self, factory: Callable[[], T]) -> T:
        """Build the adapter on the loop (pools and clients bind to the loop they start on)."""

        async def make() -> T:
            return factory()

        return self._portal.call(make)


@contextmanager
def driver() -> Iterator[Driver]:
    with start_blocking_portal() as portal:
        yield Driver(portal)
