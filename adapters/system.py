"""The real clock and the operating system's random source."""

from __future__ import annotations

import os
import time

__all__ = ["SystemClock", "SystemRandom"]


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class SystemRandom:
    def token(self, nbytes: int) -> bytes:
        return os.urandom(nbytes)
