"""The Streamable HTTP server: sessions, POST/GET/DELETE and resumable SSE streams.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP" (and the 2025-06-18 and 2025-03-26
revisions it keeps working with).

Theory of operation. The ASGI adapter turns a request into an `HttpRequest` plus a body reader
and a `Responder`, and calls `handle`. Pure checks from `core/http` run first (Origin and Host,
Accept, Content-Type, protocol version); then the message goes to the `McpServer` dispatcher.

A POST that carries a request is answered as JSON or as an SSE stream, chosen per request
(`response_mode`): "json" always answers JSON; "sse" always streams; "auto" (the default) waits
for the handler's first output: if that is the response, it is sent as JSON; if the handler
first sends a notification or a request of its own, the answer becomes an SSE stream. A handler
that can suspend runs in a task of its own, so its messages are streamed while it runs; one
that cannot (`McpServer.runs_inline`) runs in the request's task, and what it sent is written
once it returns, the same messages in the same order. An SSE reply's first event goes out with
the priming event, and its response with the end of the stream, each in one write.

Every SSE event is appended to the `EventStore` before it is written, and gets an id unique in
its session. A stream starts with a priming event (an id, empty data and a `retry` hint) for
clients on 2025-11-25 or later. When a client loses a stream, or the handler closes it on
purpose (`Context.close_stream`, SSE polling), it reconnects with GET and `Last-Event-ID`: the
server replays what followed that event on the same stream, then goes on live until the
request's response has been sent. The handler never depends on the connection: it runs to its
end whether or not anybody is listening.

The standalone stream (GET without `Last-Event-ID`) carries messages that belong to no request
(list changes, resource updates, log messages, requests a handler sends in JSON mode). One may
be open per session at a time; messages posted while none is open wait in a bounded queue.

Shutdown (docs/shutdown.md): `begin_shutdown` ends every standalone stream with a last event
carrying `retry`, so clients reconnect (to another node, with a shared store) instead of holding
the process open; new requests and GET streams are refused with 503 and `Retry-After`, while
requests already being served run to their end. `close` then closes the stores.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, NamedTuple, Protocol

import anyio
import attrs
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcp_core.ports.events import EventStore
from mcp_core.ports.sessions import SessionLimitReached, SessionRecord, SessionStore
from mcp_core.ports.system import Clock, Random

from ..http import streamable as wire
from ..http.messages import HttpRequest, HttpResponse, error_response, json_response
from ..http.security import OriginPolicy
from ..machines.session import SessionState
from ..protocol import errors
from ..protocol.jsonrpc import (
    ErrorResponse,
    InvalidMessage,
    Notification,
    Request,
    Response,
    decode,
    error_payload,
    parse_message,
)
from ..protocol.versions import MODERN_VERSIONS, Era, era_of_request
from .server import McpServer
from .session import ServerSession

__all__ = ["BodyTooLarge", "HttpConfig", "Responder", "StreamableHttpService"]

log = logging.getLogger("mcp_core.http")

ResponseMode = Literal["auto", "json", "sse"]
_STANDALONE = "_"
_CLOSE = object()  # queue marker: the handler asked to close its SSE stream


class BodyTooLarge(Exception):
    """Raised by a body reader when the body exceeds the cap it was given."""


class Responder(Protocol):
    """How the service writes one HTTP response; implemented by the ASGI adapter."""

    async def respond(self, response: HttpResponse) -> None: ...

    async def start_stream(self, status: int, headers: tuple[tuple[str, str], ...]) -> None: ...

    async def write(self, chunk: bytes) -> bool:
        """Write a chunk of the stream; False once the client is gone."""
        ...

    async def end_stream(self, last: bytes = b"") -> None:
        """End the stream; `last`, if any, is its final chunk, sent with the end in one go."""
        ...

    async def wait_disconnect(self) -> None:
        """Return when the client has gone away."""
        ...


BodyReader = Callable[[int], Awaitable[bytes]]


@attrs.frozen(kw_only=True)
class HttpConfig:
    """Settings of the Streamable HTTP endpoint.

    - `response_mode`: "auto" (JSON unless the handler streams), "json" or "sse".
    - `max_body_bytes`: a larger POST body is refused with 413.
    - `retry_ms`: the reconnection delay the priming event suggests.
    - `idle_timeout` is the session store's; `touch_interval` is how often (seconds) activity is
      written back to the store (activity is always tracked in process).
    - `standalone_queue`: messages kept for a session's standalone stream while none is open.
    - `keepalive_s`: an SSE comment is sent on an idle standalone stream this often.
    """

    response_mode: ResponseMode = "auto"
    max_body_bytes: int = 4 * 1024 * 1024
    retry_ms: int = 1000
    touch_interval: float = 30.0
    standalone_queue: int = 1000
    keepalive_s: float = 15.0
    origin_policy: OriginPolicy = attrs.field(factory=OriginPolicy)

    def __attrs_post_init__(self) -> None:
        if self.response_mode not in ("auto", "json", "sse"):
            raise ValueError("response_mode must be 'auto', 'json' or 'sse'")
        if self.max_body_bytes < 1 or self.retry_ms < 0 or self.keepalive_s <= 0:
            raise ValueError("max_body_bytes, retry_ms and keepalive_s must be positive")


class _Standalone:
    """A session's channel for messages that belong to no request (its `Outbound`)."""

    __slots__ = ("closed", "connected", "pending", "wakeup")

    def __init__(self, size: int) -> None:
        self.pending: deque[dict[str, Any]] = deque(maxlen=size)
        self.wakeup = anyio.Event()
        self.connected = False
        self.closed = False

    def post(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if len(self.pending) == self.pending.maxlen:
            log.warning("standalone queue full: dropping the oldest message")
        self.pending.append(message)
        self.wakeup.set()

    async def send(self, message: dict[str, Any]) -> None:
        self.post(message)

    def close(self) -> None:
        self.closed = True
        self.wakeup.set()


class _LiveStream:
    """A request stream that is still producing: a resumed GET can listen to what comes."""

    __slots__ = ("listener",)

    def __init__(self) -> None:
        self.listener: MemoryObjectSendStream[tuple[str | None, bytes]] | None = None

    def forward(self, event_id: str | None, payload: bytes) -> None:
        if self.listener is None:
            return
        try:
            self.listener.send_nowait((event_id, payload))
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            # A listener that cannot keep up is dropped; it resumes from the store.
            self.listener.close()
            self.listener = None

    def finish(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None


class _Caller(NamedTuple):
    """Who is asking: the subject and the OAuth client of the request's access token.

    A named tuple, not an attrs class: one is built for every request."""

    subject: str | None
    client_id: str | None


class _HttpSession:
    """This node's transport state for one session."""

    __slots__ = ("last_touch", "live", "session", "standalone", "stream_counter")

    def __init__(self, session: ServerSession, standalone: _Standalone, now: float) -> None:
        self.session = session
        self.standalone = standalone
        self.live: dict[str, _LiveStream] = {}
        self.stream_counter = 0
        self.last_touch = now

    def new_stream_id(self) -> str:
        self.stream_counter += 1
        return f"s{self.stream_counter}"


class _RequestOutbound:
    """A POST request's stream, as the dispatcher sees it."""

    __slots__ = ("_queue", "close_requested")

    can_close = True

    def __init__(self, queue: MemoryObjectSendStream[Any]) -> None:
        self._queue = queue
        self.close_requested = False

    async def send(self, message: dict[str, Any]) -> None:
        self.post(message)

    def post(self, message: dict[str, Any]) -> None:
        self._queue.send_nowait((False, message))

    async def close_stream(self) -> None:
        if not self.close_requested:
            self.close_requested = True
            self._queue.send_nowait(_CLOSE)


class _JsonOutbound:
    """In JSON mode a request has no stream of its own.

    Its requests to the client (sampling, elicitation, roots) and log messages go to the
    session's standalone stream, where a client with a GET stream open receives them. Progress
    notifications are dropped: they would arrive after the response, which clients ignore.
    """

    __slots__ = ("_standalone",)

    can_close = False

    def __init__(self, standalone: _Standalone) -> None:
        self._standalone = standalone

    async def send(self, message: dict[str, Any]) -> None:
        self.post(message)

    def post(self, message: dict[str, Any]) -> None:
        if message.get("method") != "notifications/progress":
            self._standalone.post(message)


_SSE_HEADERS = (
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
)
_ACCEPTED = HttpResponse(status=202)


class StreamableHttpService:
    def __init__(
        self,
        server: McpServer,
        *,
        sessions: SessionStore,
        events: EventStore | None,
        clock: Clock,
        random: Random,
        config: HttpConfig | None = None,
    ) -> None:
        self.server = server
        self.sessions = sessions
        self.events = events
        self.clock = clock
        self.random = random
        self.config = config or HttpConfig()
        self._live: dict[str, _HttpSession] = {}
        self._last_sweep = clock.now()
        self._draining = False
        self._drain_retry_ms = self.config.retry_ms

    # ---- entry ----------------------------------------------------------------------------

    async def handle(
        self,
        request: HttpRequest,
        read_body: BodyReader,
        responder: Responder,
        *,
        subject: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """Serve one request. `subject` and `client_id` are who the request's access token
        names (None without authorization): a session is bound to both when it is created, and
        a request naming anyone else is told the session does not exist."""
        caller = _Caller(subject, client_id)
        refusal = self.config.origin_policy.check(request.headers)
        if refusal is not None:
            await responder.respond(refusal)
            return
        method = request.method
        if method == "GET" and self._draining:
            await responder.respond(self._unavailable())
            return
        if method == "POST":
            await self._post(request, read_body, responder, caller)
        elif method == "GET":
            await self._get(request, responder, caller)
        elif method == "DELETE":
            await responder.respond(await self._delete(request, caller))
        else:
            await responder.respond(
                error_response(405, "Method Not Allowed", headers=(("allow", "GET, POST, DELETE"),))
            )

    @property
    def live_sessions(self) -> int:
        return len(self._live)

    # ---- shutdown -------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining

    def begin_shutdown(self, retry_ms: int | None = None) -> None:
        """Start draining: end standalone streams with a `retry` hint, refuse new work.

        Synchronous and idempotent, so a signal handler can schedule it on the event loop.
        Requests already past their checks run to their end; messages for a standalone stream
        posted from now on are dropped (its client reconnects and resumes from the store).
        """
        if self._draining:
            return
        self._draining = True
        if retry_ms is not None:
            self._drain_retry_ms = max(0, retry_ms)
        for state in self._live.values():
            state.standalone.close()

    async def close(self) -> None:
        """Drain (if not yet), then flush and close the stores that can be closed."""
        self.begin_shutdown()
        closed: set[int] = set()
        for store in (self.sessions, self.events):
            closer = getattr(store, "close", None)
            if store is None or id(store) in closed or not callable(closer):
                continue
            closed.add(id(store))
            result = closer()
            if inspect.isawaitable(result):
                await result

    def _unavailable(self) -> HttpResponse:
        seconds = max(1, math.ceil(self._drain_retry_ms / 1000))
        return error_response(
            503,
            "Service Unavailable: the server is shutting down",
            code=errors.INTERNAL_ERROR,
            headers=(("retry-after", str(seconds)),),
        )

    # ---- sessions -------------------------------------------------------------------------

    async def _lookup(self, request: HttpRequest, caller: _Caller) -> _HttpSession | HttpResponse:
        session_id = request.headers.get(wire.SESSION_ID)
        if session_id is None:
            return error_response(400, "Bad Request: Mcp-Session-Id header is required")
        now = self.clock.now()
        self._maybe_sweep(now)
        record = await self.sessions.get(session_id, now)
        state = self._live.get(session_id)
        if record is None:
            if state is not None:
                self._drop(state, expired_after=now - state.session.last_active)
            return error_response(404, "Not Found: unknown or expired session", code=-32001)
        if record.subject != caller.subject or record.client_id != caller.client_id:
            # A session is bound to the subject and the client of the token that opened it
            # (MCP 2025-11-25 "Security Best Practices" > "Session Hijacking"): anyone else
            # cannot even see that it exists. Decided from the shared record, so every node
            # agrees, and before anything local is rebuilt for the intruder.
            return error_response(404, "Not Found: unknown or expired session", code=-32001)
        if state is None:
            state = self._restore(record, now)
        state.session.last_active = now
        if now - state.last_touch >= self.config.touch_interval:
            state.last_touch = now
            await self.sessions.touch(session_id, now)
        return state

    def _restore(self, record: SessionRecord, now: float) -> _HttpSession:
        """A session created on another node (shared store): rebuild its local state."""
        session = ServerSession(
            self.server,
            record.session_id,
            now=now,
            subject=record.subject,
            client_id=record.client_id,
            state=SessionState(record.state),
        )
        session.restore(record, self.server.capabilities())
        return self._register(session, now)

    def _register(self, session: ServerSession, now: float) -> _HttpSession:
        standalone = _Standalone(self.config.standalone_queue)
        session.standalone = standalone
        state = _HttpSession(session, standalone, now)
        assert session.id is not None
        self._live[session.id] = state
        self.server.attach(session)
        return state

    def _drop(self, state: _HttpSession, *, expired_after: float | None = None) -> None:
        session = state.session
        self._live.pop(session.id or "", None)
        self.server.detach(session)
        state.standalone.close()
        for stream in state.live.values():
            stream.finish()
        session.close(expired_after=expired_after)

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < min(60.0, self.sessions.idle_timeout / 4):
            return
        self._last_sweep = now
        idle = self.sessions.idle_timeout
        for state in list(self._live.values()):
            quiet = now - state.session.last_active
            if quiet > idle:
                self._drop(state, expired_after=quiet)

    def _mint_session_id(self) -> str:
        # 128 random bits as 32 hex digits: visible ASCII (0x21-0x7E) as the spec requires.
        return self.random.token(16).hex()

    # ---- POST -----------------------------------------------------------------------------

    async def _post(
        self,
        request: HttpRequest,
        read_body: BodyReader,
        responder: Responder,
        caller: _Caller,
    ) -> None:
        refusal = wire.check_post_headers(request.headers)
        if refusal is not None:
            await responder.respond(refusal)
            return
        version = wire.protocol_version_of(request.headers)
        if isinstance(version, HttpResponse):
            await responder.respond(version)
            return
        try:
            body = await read_body(self.config.max_body_bytes)
        except BodyTooLarge:
            await responder.respond(
                error_response(
                    413, f"Payload Too Large: the limit is {self.config.max_body_bytes} bytes"
                )
            )
            return
        try:
            message = parse_message(decode(body))
        except InvalidMessage as exc:
            response = exc.response
            payload = (
                response.to_wire()
                if response is not None
                else error_payload(None, errors.INVALID_REQUEST, f"Invalid request: {exc.reason}")
            )
            await responder.respond(json_response(payload, 400))
            return

        if isinstance(message, Request):
            if self._draining:
                # Notifications and responses still pass: in-flight handlers may wait on them.
                await responder.respond(self._unavailable())
                return
            era = era_of_request(message.method, message.params)
            if era is Era.MODERN or version in MODERN_VERSIONS:
                await responder.respond(
                    json_response(self.server.refuse_modern(message, version), 400)
                )
                return
            if message.method == "initialize" and wire.SESSION_ID not in request.headers:
                await self._initialize(message, responder, caller)
                return
        found = await self._lookup(request, caller)
        if isinstance(found, HttpResponse):
            await responder.respond(found)
            return
        session = found.session
        if isinstance(message, Notification):
            await self.server.handle_notification(session, message)
            if message.method == "notifications/initialized" and session.id is not None:
                await self._persist(session)
            await responder.respond(_ACCEPTED)
        elif isinstance(message, (Response, ErrorResponse)):
            self.server.handle_response(session, message)
            await responder.respond(_ACCEPTED)
        elif self.config.response_mode == "json":
            # JSON mode, the lightest path: the handler runs in this task, its answer is the body.
            answer = await self.server.handle_request(
                session, message, _JsonOutbound(found.standalone)
            )
            await responder.respond(
                json_response(answer if answer is not None else _cancelled(message))
            )
        else:
            await self._serve_request(found, message, responder)

    async def _initialize(self, request: Request, responder: Responder, caller: _Caller) -> None:
        now = self.clock.now()
        self._maybe_sweep(now)
        session = ServerSession(
            self.server,
            self._mint_session_id(),
            now=now,
            subject=caller.subject,
            client_id=caller.client_id,
        )
        response = await self.server.handle_request(session, request, _DISCARD_OUTBOUND)
        assert response is not None  # initialize cannot be cancelled
        if "error" in response:
            await responder.respond(json_response(response))
            return
        assert session.id is not None
        assert session.client is not None
        record = SessionRecord(
            session_id=session.id,
            protocol_version=session.client.protocol_version,
            state=session.state.value,
            created_at=now,
            last_active=now,
            client_capabilities=session.client.capabilities,
            client_info=session.client.info,
            subject=caller.subject,
            client_id=caller.client_id,
        )
        try:
            await self.sessions.create(record)
        except SessionLimitReached:
            await responder.respond(
                error_response(
                    503,
                    "Service Unavailable: too many open sessions",
                    code=errors.INTERNAL_ERROR,
                    headers=(("retry-after", "5"),),
                )
            )
            return
        self._register(session, now)
        headers = ((wire.SESSION_ID, session.id),)
        if self.config.response_mode == "sse":
            await responder.start_stream(200, (*_SSE_HEADERS, *headers))
            await responder.write(wire.sse_event(orjson.dumps(response)))
            await responder.end_stream()
        else:
            await responder.respond(json_response(response, headers=headers))

    async def _persist(self, session: ServerSession) -> None:
        assert session.id is not None
        record = await self.sessions.get(session.id, self.clock.now())
        if record is not None:
            await self.sessions.put(attrs.evolve(record, state=session.state.value))

    async def _serve_request(
        self, state: _HttpSession, request: Request, responder: Responder
    ) -> None:
        """Serve a request in "sse" or "auto" mode ("json" is served by `_post` itself)."""
        session = state.session
        mode = self.config.response_mode
        send, receive = anyio.create_memory_object_stream[Any](math.inf)
        outbound = _RequestOutbound(send)
        if self.server.runs_inline(request.method, request.params):
            # A handler that never suspends needs no task: once it returns, everything it sent
            # is in the stream, in order, followed by its response.
            with send:
                response = await self.server.handle_request(session, request, outbound)
                send.send_nowait((True, response))
            with receive:
                first = receive.receive_nowait()
                if mode == "auto" and first is not _CLOSE and first[0]:
                    response = first[1] if first[1] is not None else _cancelled(request)
                    await responder.respond(json_response(response))
                    return
                await self._stream(state, first, receive, outbound, responder)
            return

        async def run() -> None:
            with send:
                response = await self.server.handle_request(session, request, outbound)
                send.send_nowait((True, response))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with receive:
                first = await receive.receive()
                # A handler that closes its stream before saying anything still gets a stream:
                # the priming event, then the close, and the client resumes (SSE polling).
                if mode == "auto" and first is not _CLOSE and first[0]:
                    response = first[1] if first[1] is not None else _cancelled(request)
                    await responder.respond(json_response(response))
                    return
                await self._stream(state, first, receive, outbound, responder)

    async def _stream(
        self,
        state: _HttpSession,
        first: Any,
        receive: AsyncIterator[Any],
        outbound: _RequestOutbound,
        responder: Responder,
    ) -> None:
        """Write a request's messages as SSE until its response; see the module docstring.

        The connection is given up when the handler closes the stream or when the client
        resumes the stream elsewhere (a GET with `Last-Event-ID`, which a client only sends
        when it lost the original): from then on every message is stored and handed to the
        resumed listener, if any. ASGI servers drop writes to a client that left without
        telling, which is harmless here: what was written is in the store for the resume.
        """
        session = state.session
        session_id = session.id
        assert session_id is not None
        stream_id = state.new_stream_id()
        live = state.live[stream_id] = _LiveStream()
        connected = True
        head = b""
        try:
            await responder.start_stream(200, _SSE_HEADERS)
            # The priming event is stored now and written with the first message's event, in
            # one chunk: the same bytes in the same order as two writes, one socket write less.
            head = await self._priming_event(session, stream_id)
            item: Any = first
            while True:
                if connected and (item is _CLOSE or live.listener is not None):
                    await responder.end_stream(head)  # a priming event not yet written goes last
                    head = b""
                    connected = False
                if item is not _CLOSE:
                    final, message = item
                    if message is None:  # cancelled: the stream ends without a response
                        break
                    payload = orjson.dumps(message)
                    event_id = (
                        await self.events.append(session_id, stream_id, payload)
                        if self.events is not None
                        else None
                    )
                    if connected and final:  # the response: its event and the end in one go
                        await responder.end_stream(head + wire.sse_event(payload, event_id))
                        connected = False
                        break
                    if connected:
                        connected = await responder.write(head + wire.sse_event(payload, event_id))
                        head = b""
                    else:
                        live.forward(event_id, payload)
                    if final:
                        break
                try:
                    item = await receive.__anext__()
                except StopAsyncIteration:
                    break
        finally:
            state.live.pop(stream_id, None)
            live.finish()
            if connected:  # with the priming event if nothing followed it (a cancelled request)
                await responder.end_stream(head)

    async def _priming_event(self, session: ServerSession, stream_id: str) -> bytes:
        """Store the priming event (2025-11-25+, with resumability on) and return its bytes;
        empty when the stream gets none."""
        if self.events is None or (session.protocol_version or "") < "2025-11-25":
            return b""
        assert session.id is not None
        event_id = await self.events.append(session.id, stream_id, b"")
        return wire.sse_event(b"", event_id, self.config.retry_ms)

    async def _prime(self, session: ServerSession, stream_id: str, responder: Responder) -> bool:
        """Send the priming event (see `_priming_event`); False if disconnected."""
        event = await self._priming_event(session, stream_id)
        return await responder.write(event) if event else True

    # ---- GET ------------------------------------------------------------------------------

    async def _get(self, request: HttpRequest, responder: Responder, caller: _Caller) -> None:
        refusal = wire.check_get_headers(request.headers)
        if refusal is None:
            version = wire.protocol_version_of(request.headers)
            refusal = version if isinstance(version, HttpResponse) else None
        if refusal is not None:
            await responder.respond(refusal)
            return
        found = await self._lookup(request, caller)
        if isinstance(found, HttpResponse):
            await responder.respond(found)
            return
        last_event_id = request.headers.get(wire.LAST_EVENT_ID)
        if last_event_id is not None:
            await self._resume(found, last_event_id, responder)
            return
        if found.standalone.connected:
            await responder.respond(
                error_response(409, "Conflict: a standalone stream is already open")
            )
            return
        await self._standalone(found, responder, replayed=())

    async def _resume(self, state: _HttpSession, last_event_id: str, responder: Responder) -> None:
        session_id = state.session.id
        assert session_id is not None
        replay = (
            await self.events.replay_after(session_id, last_event_id)
            if self.events is not None
            else None
        )
        if replay is None:
            await responder.respond(
                error_response(400, "Bad Request: Last-Event-ID is unknown or no longer stored")
            )
            return
        if replay.stream_id == _STANDALONE:
            if state.standalone.connected:
                await responder.respond(
                    error_response(409, "Conflict: a standalone stream is already open")
                )
                return
            await self._standalone(state, responder, replayed=replay.events)
            return
        # Listen before reading the replay's end: events appended in between arrive twice
        # and are skipped by id, never lost.
        live = state.live.get(replay.stream_id)
        receive: MemoryObjectReceiveStream[tuple[str | None, bytes]] | None = None
        if live is not None:
            send, receive = anyio.create_memory_object_stream[tuple[str | None, bytes]](10_000)
            if live.listener is not None:
                live.listener.close()
            live.listener = send
        # The replay above was read before listening, and a store that yields while it reads
        # (any database) misses what the stream appended meanwhile: read on from its end.
        assert self.events is not None
        end = replay.events[-1].event_id if replay.events else last_event_id
        rest = await self.events.replay_after(session_id, end)
        events = replay.events + (rest.events if rest is not None else ())
        await responder.start_stream(200, _SSE_HEADERS)
        seen: set[str] = set()
        connected = True
        for event in events:
            seen.add(event.event_id)
            if event.payload and connected:
                connected = await responder.write(wire.sse_event(event.payload, event.event_id))
        if receive is not None:
            with receive:
                async for event_id, payload in receive:
                    if not connected:
                        break
                    if event_id is not None and event_id in seen:
                        continue
                    connected = await responder.write(wire.sse_event(payload, event_id))
        if connected:
            await responder.end_stream()

    async def _standalone(
        self, state: _HttpSession, responder: Responder, replayed: tuple[Any, ...]
    ) -> None:
        channel = state.standalone
        session_id = state.session.id
        assert session_id is not None
        channel.connected = True
        try:
            await responder.start_stream(200, _SSE_HEADERS)
            connected = await self._prime(state.session, _STANDALONE, responder)
            for event in replayed:
                if event.payload and connected:
                    connected = await responder.write(wire.sse_event(event.payload, event.event_id))
            if not connected:
                return
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    await responder.wait_disconnect()
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                while not channel.closed:
                    while channel.pending:
                        message = channel.pending.popleft()
                        payload = orjson.dumps(message)
                        event_id = (
                            await self.events.append(session_id, _STANDALONE, payload)
                            if self.events is not None
                            else None
                        )
                        if not await responder.write(wire.sse_event(payload, event_id)):
                            tg.cancel_scope.cancel()
                            return
                    channel.wakeup = anyio.Event()
                    if channel.pending or channel.closed:
                        continue
                    with anyio.move_on_after(self.config.keepalive_s):
                        await channel.wakeup.wait()
                    idle = not channel.pending and not channel.closed
                    if idle and not await responder.write(wire.sse_comment("keepalive")):
                        break
                tg.cancel_scope.cancel()
            if channel.closed and self._draining:
                # The last event: an id to resume from, and how soon to reconnect (elsewhere).
                event_id = (
                    await self.events.append(session_id, _STANDALONE, b"")
                    if self.events is not None
                    else None
                )
                await responder.write(wire.sse_event(b"", event_id, self._drain_retry_ms))
            await responder.end_stream()
        finally:
            channel.connected = False

    # ---- DELETE ---------------------------------------------------------------------------

    async def _delete(self, request: HttpRequest, caller: _Caller) -> HttpResponse:
        found = await self._lookup(request, caller)
        if isinstance(found, HttpResponse):
            return found
        session_id = found.session.id
        assert session_id is not None
        self._drop(found)
        await self.sessions.delete(session_id)
        if self.events is not None:
            await self.events.forget_session(session_id)
        return HttpResponse(status=200)


class _Discard:
    can_close = False

    async def send(self, message: dict[str, Any]) -> None:
        return None

    def post(self, message: dict[str, Any]) -> None:
        return None


_DISCARD_OUTBOUND = _Discard()


def _cancelled(request: Request) -> dict[str, Any]:
    return error_payload(request.id, errors.REQUEST_CANCELLED, "Request cancelled")
