"""The daemon's front door: a bearer token on the MCP endpoint, and an idle timer.

Issue 6. The daemon listens on loopback, where any local user's process could connect; its MCP
endpoint therefore requires `Authorization: Bearer <token>` with the random token published in
the owner-only lock record, so only processes of the user who can read that record get in
(MCP 2025-11-25 "Transports" > "Streamable HTTP" > "Security Warning": "implement proper
authentication for all connections"). The token is compared with `hmac.compare_digest`; a
missing or wrong one gets 401 with `WWW-Authenticate: Bearer` and reaches nothing else. Other
paths (the health route) pass through: they reveal nothing but liveness.

`IdleMonitor` counts the MCP requests in flight (POST and DELETE; a standalone GET stream
only listens, so opening one is activity but holding it open is not) and the time of the last
one to start or end. Once none has been in flight for `idle_timeout` seconds it calls `on_idle`,
once, from its own thread; the daemon then removes its own lock record and stops itself.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

__all__ = ["DaemonGate", "IdleMonitor"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class IdleMonitor:
    """Calls `on_idle` once no request was in flight for `idle_timeout` seconds."""

    def __init__(
        self,
        idle_timeout: float,
        on_idle: Callable[[], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self.idle_timeout = idle_timeout
        self._on_idle = on_idle
        self._clock = clock
        self._mutex = threading.Lock()
        self._active = 0
        self._last = clock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        with self._mutex:
            self._active += 1
            self._last = self._clock()

    def touch(self) -> None:
        """Activity that is not a request in flight (a stream opened)."""
        with self._mutex:
            self._last = self._clock()

    def end(self) -> None:
        with self._mutex:
            self._active -= 1
            self._last = self._clock()

    def idle_for(self) -> float:
        """Seconds without a request in flight (0 while one is)."""
        with self._mutex:
            return 0.0 if self._active else self._clock() - self._last

    def start(self) -> None:
        with self._mutex:
            self._last = self._clock()
        self._thread = threading.Thread(target=self._run, name="mcp-core idle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        tick = min(1.0, self.idle_timeout / 4)
        while not self._stopped.wait(tick):
            if self.idle_for() >= self.idle_timeout:
                self._on_idle()
                return


class DaemonGate:
    """ASGI middleware: bearer-token check and idle accounting on the MCP endpoint `path`."""

    def __init__(self, app: App, *, token: str, path: str, idle: IdleMonitor | None) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.app = app
        self.path = path.rstrip("/") or "/"
        self._expected = f"Bearer {token}".encode()
        self.idle = idle

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"].rstrip("/") or "/") != self.path:
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            body = orjson.dumps({"error": "unauthorized", "error_description": "bearer token"})
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="mcp-core daemon"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if self.idle is not None and scope["method"] == "GET":
            # A standalone SSE stream only listens: it shows a client was here, but a quiet
            # client holding one open does not keep the daemon up forever.
            self.idle.touch()
            await self.app(scope, receive, send)
            return
        if self.idle is not None:
            self.idle.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            if self.idle is not None:
                self.idle.end()

    def begin_shutdown(self) -> None:
        """The wrapped app's drain hook (`mcp-core serve`'s graceful shutdown finds it here)."""
        from ..cli._http import drain_hook

        hook = drain_hook(self.app)
        if hook is not None:
            hook()
