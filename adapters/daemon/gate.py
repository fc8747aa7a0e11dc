"""The daemon's front door: a bearer token on every route but health, and an idle timer.

Issue 6. The daemon listens on loopback, where any local user's process could connect; every
HTTP (and WebSocket) request therefore requires `Authorization: Bearer <token>` with the random
token published in the owner-only lock record, so only processes of the user who can read that
record get in (MCP 2025-11-25 "Transports" > "Streamable HTTP" > "Security Warning": "implement
proper authentication for all connections"). That covers the MCP endpoint and every other route
of the TARGET app alike (a relay form mounted with `extra_routes`, a metadata document): the
gate cannot know which of them are meant to be public, so none is. The token is compared with
`hmac.compare_digest`; a missing or wrong one gets 401 with `WWW-Authenticate: Bearer` and
reaches nothing else. The one exception is `GET`/`HEAD` on the health route, which reveals
nothing but liveness and is how a bridge finds the daemon before it may send the token.

Proving the daemon's identity without the token. The port in a lock record may, after the
daemon's death, be bound by some other process; a bridge must not hand that process its bearer
token. So a bridge's health probe sends a fresh random challenge (`Mcp-Core-Challenge`, at most
128 visible ASCII characters) and the gate adds `Mcp-Core-Proof` to the health answer:
`HMAC-SHA256(token, "mcp-core daemon health v1" NUL challenge)`, in hex (`health_proof`). Only
a process that knows the token can answer, and the answer is useless for any other challenge;
the bridge checks it with `hmac.compare_digest` before it trusts the port. The gate is no
useful oracle for an impostor: to exploit one it would need the port of a live daemon, which
that daemon holds.

`IdleMonitor` counts the MCP requests in flight (POST and DELETE; a standalone GET stream
only listens, so opening one is activity but holding it open is not) and the time of the last
one to start or end. Once none has been in flight for `idle_timeout` seconds it calls `on_idle`,
once, from its own thread; the daemon then removes its own lock record and stops itself.
Requests to other routes do not count.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

__all__ = [
    "CHALLENGE_HEADER",
    "HEALTH_PATH",
    "PROOF_HEADER",
    "DaemonGate",
    "IdleMonitor",
    "health_proof",
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# The daemon's health route: the one path the gate leaves open, and the one the host probes.
HEALTH_PATH = "/healthz"
CHALLENGE_HEADER = "mcp-core-challenge"
PROOF_HEADER = "mcp-core-proof"
_PROOF_CONTEXT = b"mcp-core daemon health v1\x00"
_MAX_CHALLENGE = 128


def health_proof(token: str, challenge: str) -> str:
    """What only the daemon holding `token` can answer to a health probe's `challenge`."""
    message = _PROOF_CONTEXT + challenge.encode("ascii")
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def _valid_challenge(value: bytes) -> bool:
    return 0 < len(value) <= _MAX_CHALLENGE and all(0x21 <= byte <= 0x7E for byte in value)


def _normalized(path: str) -> str:
    return path.rstrip("/") or "/"


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
    """ASGI middleware: the bearer token on every route but `health_path`, the health proof,
    and idle accounting on the MCP endpoint `path`."""

    def __init__(
        self,
        app: App,
        *,
        token: str,
        path: str,
        idle: IdleMonitor | None,
        health_path: str = HEALTH_PATH,
    ) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.app = app
        self.path = _normalized(path)
        self.health_path = _normalized(health_path)
        self._token = token
        self._expected = f"Bearer {token}".encode()
        self.idle = idle

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan: no client behind it
            return
        path = _normalized(scope["path"])
        if kind == "http" and path == self.health_path and scope["method"] in ("GET", "HEAD"):
            await self._health(scope, receive, send)
            return
        if not self._authorized(scope):
            await self._refuse(kind, send)
            return
        if kind != "http" or path != self.path or self.idle is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            # A standalone SSE stream only listens: it shows a client was here, but a quiet
            # client holding one open does not keep the daemon up forever.
            self.idle.touch()
            await self.app(scope, receive, send)
            return
        self.idle.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.idle.end()

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's health answer, plus the proof when the probe sent a challenge."""
        challenge = None
        for name, value in scope.get("headers", ()):
            if name.lower() == CHALLENGE_HEADER.encode() and _valid_challenge(value):
                challenge = value.decode("ascii")
        if challenge is None:
            await self.app(scope, receive, send)
            return
        proof = (PROOF_HEADER.encode(), health_proof(self._token, challenge).encode())

        async def send_with_proof(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), proof]}
            await send(message)

        await self.app(scope, receive, send_with_proof)

    async def _refuse(self, kind: str, send: Send) -> None:
        if kind == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
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

    def begin_shutdown(self) -> None:
        """The wrapped app's drain hook (`mcp-core serve`'s graceful shutdown finds it here)."""
        from ..cli._http import drain_hook

        hook = drain_hook(self.app)
        if hook is not None:
            hook()
