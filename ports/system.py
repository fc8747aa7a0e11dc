"""Time and randomness, as ports: the core never reads a clock or rolls dice by itself."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Clock", "Random"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds, monotonic; only differences are meaningful."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch."""
        ...


@runtime_checkable
class Random(Protocol):
    def token(self, nbytes: int) -> bytes:
        """Cryptographically strong random bytes."""
        ...
