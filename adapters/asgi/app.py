"""A pure ASGI application serving one MCP server over Streamable HTTP.

No framework in the hot path: the app speaks ASGI 3 directly, so it runs under any ASGI server
(uvicorn, hypercorn, granian) and mounts in any framework (Starlette and FastAPI `Mount`,
Litestar, Quart, Falcon-ASGI). It answers:

- the MCP endpoint (`path`, default `/mcp`): POST, GET, DELETE;
- a health route (`health_path`, default `/healthz`): `{"status": "ok", "sessions": N}`;
- `extra_routes`, other ASGI apps at exact paths (the relay form of issue 3 at `/relay`);
- 404 for anything else.

Mounted under a prefix, paths are matched after the mount's `root_path`.

Shutdown (docs/shutdown.md): `begin_shutdown()` is the drain hook an ASGI server calls as soon
as it is told to stop (`mcp-core serve` does, on the first SIGTERM or SIGINT); the lifespan
shutdown drains too, for servers that only send that, and then closes the stores.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping

import orjson

from mcp_core.core.http.messages import JSON_HEADERS, HttpRequest, HttpResponse, error_response
from mcp_core.core.http.security import OriginPolicy
from mcp_core.core.services.server import McpServer
from mcp_core.core.services.streamable_http import (
    HttpConfig,
    ResponseMode,
    StreamableHttpService,
)
from mcp_core.ports.events import EventStore
from mcp_core.ports.sessions import SessionStore
from mcp_core.ports.system import Clock, Random

from ..storage.memory import InMemoryEventStore, InMemorySessionStore
from ..system import SystemClock, SystemRandom
from ._plumbing import Receive, Scope, Send, header_map, read_body

__all__ = ["McpAsgiApp", "create_app"]

SubjectOf = Callable[[Scope], str | None]
ClientOf = Callable[[Scope], str | None]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def _default_subject(scope: Scope) -> str | None:
    """The authenticated subject an outer middleware put in the scope, if any.

    mcp-core's own authorization middleware sets `scope["mcp_core.subject"]`; Starlette's
    AuthenticationMiddleware sets `scope["user"]` (its `identity` when authenticated).
    """
    subject = scope.get("mcp_core.subject")
    if isinstance(subject, str):
        return subject
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        identity = getattr(user, "identity", None)
        if isinstance(identity, str):
            return identity
    return None


def _default_client(scope: Scope) -> str | None:
    """The OAuth client of the request's access token, if an outer middleware put it in the
    scope: mcp-core's `ProtectedResource` sets `scope["mcp_core.client_id"]`. A session is
    bound to it as well as to the subject (see `StreamableHttpService.handle`)."""
    client_id = scope.get("mcp_core.client_id")
    return client_id if isinstance(client_id, str) else None


class _AsgiResponder:
    """Writes one response through ASGI `send`; notices when the client goes away."""

    __slots__ = ("_disconnected", "_receive", "_send", "_started")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._started = False
        self._disconnected = False

    async def respond(self, response: HttpResponse) -> None:
        length = (b"content-length", str(len(response.body)).encode())
        if response.headers is JSON_HEADERS:  # most responses: skip encoding the same header
            headers = [_JSON_CONTENT_TYPE, length]
        else:
            headers = [(k.encode(), v.encode()) for k, v in response.headers]
            headers.append(length)
        await self._send(
            {"type": "http.response.start", "status": response.status, "headers": headers}
        )
        await self._send({"type": "http.response.body", "body": response.body})

    async def start_stream(self, status: int, headers: tuple[tuple[str, str], ...]) -> None:
        self._started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )

    async def write(self, chunk: bytes) -> bool:
        if self._disconnected:
            return False
        try:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:  # the server reports a gone client this way (uvicorn: ClientDisconnected)
            self._disconnected = True
            return False
        return True

    async def end_stream(self, last: bytes = b"") -> None:
        if self._disconnected:
            return
        try:
            await self._send({"type": "http.response.body", "body": last, "more_body": False})
        except OSError:
            self._disconnected = True

    async def wait_disconnect(self) -> None:
        while not self._disconnected:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._disconnected = True


class McpAsgiApp:
    """The ASGI callable. Build it with `create_app`."""

    def __init__(
        self,
        service: StreamableHttpService,
        *,
        path: str = "/mcp",
        health_path: str | None = "/healthz",
        subject_of: SubjectOf = _default_subject,
        client_of: ClientOf = _default_client,
        extra_routes: Mapping[str, AsgiApp] | None = None,
    ) -> None:
        self.service = service
        self.path = path.rstrip("/") or "/"
        self.health_path = health_path
        self.subject_of = subject_of
        self.client_of = client_of
        # Other ASGI apps served next to MCP by exact path (the relay form: issue 3).
        self.extra_routes = {p.rstrip("/") or "/": app for p, app in (extra_routes or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return  # websockets are not part of MCP
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = path.rstrip("/") or "/"
        headers = header_map(scope["headers"])
        responder = _AsgiResponder(receive, send)
        if path == self.path:
            request = HttpRequest(
                method=scope["method"],
                path=path,
                headers=headers,
                query=query.decode("latin-1") if (query := scope.get("query_string")) else "",
            )
            await self.service.handle(
                request,
                _body_reader(headers, receive),
                responder,
                subject=self.subject_of(scope),
                client_id=self.client_of(scope),
            )
        elif path == self.health_path and scope["method"] in ("GET", "HEAD"):
            refusal = self.service.config.origin_policy.check(headers)
            if refusal is not None:
                await responder.respond(refusal)
                return
            # While draining, say so: load balancers stop routing here before the socket closes.
            draining = self.service.draining
            body = orjson.dumps(
                {
                    "status": "draining" if draining else "ok",
                    "sessions": self.service.live_sessions,
                }
            )
            await responder.respond(
                HttpResponse(
                    status=503 if draining else 200,
                    headers=(("content-type", "application/json"), ("cache-control", "no-store")),
                    body=body,
                )
            )
        elif path in self.extra_routes:
            await self.extra_routes[path](scope, receive, send)
        else:
            await responder.respond(error_response(404, "Not Found"))

    def begin_shutdown(self, retry_ms: int | None = None) -> None:
        """Drain: end long-lived streams with a `retry` hint and refuse new work with 503.

        Idempotent; call it from the event loop's thread. `retry_ms` defaults to the
        configured reconnection delay.
        """
        self.service.begin_shutdown(retry_ms)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.service.close()
                except Exception as exc:  # reported to the server, which logs it
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def _body_reader(headers: dict[str, str], receive: Receive) -> Callable[[int], Awaitable[bytes]]:
    # A partial, not a closure around `read_body`: one coroutine less per request.
    return functools.partial(read_body, headers, receive)


def create_app(
    server: McpServer,
    *,
    path: str = "/mcp",
    health_path: str | None = "/healthz",
    response_mode: ResponseMode = "auto",
    allowed_hosts: tuple[str, ...] | None = None,
    allowed_origins: tuple[str, ...] | None = None,
    dns_rebinding_protection: bool = True,
    session_store: SessionStore | None = None,
    event_store: EventStore | None = None,
    resumable: bool = True,
    idle_timeout: float = 1800.0,
    max_sessions: int = 10_000,
    max_body_bytes: int = 4 * 1024 * 1024,
    retry_ms: int = 1000,
    clock: Clock | None = None,
    random: Random | None = None,
    subject_of: SubjectOf = _default_subject,
    client_of: ClientOf = _default_client,
    extra_routes: Mapping[str, AsgiApp] | None = None,
) -> McpAsgiApp:
    """An ASGI app serving `server` at `path`.

    By default sessions and the resumability log live in memory, Host and Origin must be
    loopback (pass `allowed_hosts`/`allowed_origins` for a deployed server), and each request
    is answered as JSON unless its handler streams (`response_mode`). `extra_routes` serves
    other ASGI apps at exact paths, e.g. the relay form (`{"/relay": RelayApp(bootstrap)}`,
    `mcp_core.adapters.asgi.relay`). `subject_of` and `client_of` read who the request's
    access token names from the ASGI scope (by default the keys `ProtectedResource` sets); a
    session is bound to both, in the session store, so the binding holds on every node that
    shares the store.
    """
    policy = OriginPolicy(enabled=dns_rebinding_protection)
    if allowed_hosts is not None:
        policy = OriginPolicy(
            allowed_hosts=allowed_hosts,
            allowed_origins=policy.allowed_origins,
            enabled=dns_rebinding_protection,
        )
    if allowed_origins is not None:
        policy = OriginPolicy(
            allowed_hosts=policy.allowed_hosts,
            allowed_origins=allowed_origins,
            enabled=dns_rebinding_protection,
        )
    config = HttpConfig(
        response_mode=response_mode,
        max_body_bytes=max_body_bytes,
        retry_ms=retry_ms,
        origin_policy=policy,
    )
    # `is None`, not `or`: an empty store has len() 0 and would count as false.
    sessions = (
        session_store
        if session_store is not None
        else InMemorySessionStore(idle_timeout=idle_timeout, max_sessions=max_sessions)
    )
    events = (
        event_store if event_store is not None else (InMemoryEventStore() if resumable else None)
    )
    service = StreamableHttpService(
        server,
        sessions=sessions,
        events=events,
        clock=clock or SystemClock(),
        random=random or SystemRandom(),
        config=config,
    )
    return McpAsgiApp(
        service,
        path=path,
        health_path=health_path,
        subject_of=subject_of,
        client_of=client_of,
        extra_routes=extra_routes,
    )
