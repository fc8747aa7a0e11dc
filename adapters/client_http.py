"""The Streamable HTTP client transport, on httpx.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP". Every decision (the headers of a POST,
GET or DELETE, what a response means, whether and when to resume a stream) is made by
`mcp_core.core.http.client`; this module only moves bytes with `httpx.AsyncClient` and parses
event streams with `core/http/sse_parser.SseParser`.

Theory of operation (`HttpClientTransport` implements `core/services/client.ClientTransport`):

- `send(request)` starts one task that POSTs it and reads the answer: a JSON body, or an
  event stream whose messages (server requests and notifications first, then the response)
  are handed to `receive()` in order. `send` of a notification or response POSTs it at once
  and expects 202.
- The answer to `initialize` carries the session id (`Mcp-Session-Id`) and, in its result, the
  negotiated protocol version; from then on both go on every request (`MCP-Protocol-Version`
  included). Once `notifications/initialized` is accepted the standalone GET stream is opened;
  a 405 means the server offers none, which is fine.
- A stream that ends or breaks before it delivered its response is resumed with GET and
  `Last-Event-ID` after the server's `retry` (or a bounded backoff) as `decide_reconnect`
  says; when it cannot be resumed the request fails with `StreamEnded`, never left waiting.
  The standalone stream reopens the same way while the transport is open.
- A 404 on an established session means the server forgot it ("Session Management": the
  client MUST start a new session by sending a new `InitializeRequest`). The transport
  re-initializes by itself: it POSTs the application's `initialize` again (same params, an id
  of its own, the answer kept from the session), then `notifications/initialized`, reopens
  the standalone stream, and retries the request once in the new session. The
  re-initialization runs in a task of its own (a `_Renewal`), so the cancellation of the
  request that met the 404 cannot stop it half-way; it is bounded by `reinitialize_timeout`.
  The new session is built aside and becomes `state` only once `initialize` was answered and
  `notifications/initialized` accepted. Every request or notification sent meanwhile, and
  every concurrent 404, waits for that one re-initialization and then goes out in the new
  session (or fails with its error): nothing is sent without a session id. When it fails, the
  transport remembers that the session is owed a re-initialization and the next message starts
  one before it is sent. The server's per-session state (subscriptions, log level) is not
  replayed: `on_reinitialized` tells the application, which may restore it (its errors are
  logged). With `reinitialize=False`, or when the retry meets a 404 again, the request fails
  with `SessionExpiredError`.
- Authorization (`auth`, a `RequestAuthorizer` such as `core/services/oauth_client.OAuthClient`):
  every request carries its `Authorization` header. A 401 hands the `WWW-Authenticate`
  challenge to `auth.unauthorized`, which runs the OAuth flow; a 403 to `auth.forbidden`,
  which steps up on `insufficient_scope` (MCP 2025-11-25 "Authorization" > "Step-Up
  Authorization Flow"). When they say so the request is sent again with the new token; at
  most `MAX_AUTH_RETRIES` times per request, so a server that keeps refusing ends the request
  with the reason instead of looping.
- No request is left waiting: whatever ends the task that POSTed it (an HTTP failure, an
  unexpected error, a stream that cannot be resumed) is delivered as `RequestFailed`. An HTTP
  status that is not an answer (400, 413, 503...) is an `HttpStatusError` carrying the status
  and the JSON-RPC error of the body, if any: the server refused that one message, the
  connection is fine. Other `HttpTransportError`s (connection refused or reset,
  `StreamEnded`, `SessionExpiredError`) say the connection or the session is lost.
- The standalone GET stream is the transport's own: whatever ends it (an HTTP error, an
  oversized event, an authorizer that raised) is logged and ends that stream only; requests go
  on.
- `send` of `notifications/cancelled` also abandons the POST of the request it names.
- `close()` stops every stream and ends the session with DELETE (bounded; 404 and 405 are
  fine), then `receive()` ends.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc
import attrs
import httpx

from mcp_core.core.http.client import (
    Accepted,
    ClientRequest,
    ClientSessionState,
    GiveUp,
    HttpFailure,
    JsonMessage,
    OpenStream,
    ReconnectPolicy,
    SessionExpired,
    StreamNotOffered,
    classify_delete_response,
    classify_get_response,
    classify_post_response,
    decide_reconnect,
    delete_request,
    get_request,
    message_of_event,
    post_request,
)
from mcp_core.core.http.sse_parser import SseParser
from mcp_core.core.protocol.jsonrpc import (
    ErrorResponse,
    InvalidMessage,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)
from mcp_core.core.services.client import ClientError, Incoming, RequestFailed
from mcp_core.core.services.oauth_client import RequestAuthorizer

__all__ = [
    "HttpClientTransport",
    "HttpStatusError",
    "HttpTransportError",
    "SessionExpiredError",
    "StreamEnded",
    "UnauthorizedError",
]

log = logging.getLogger("mcp_core.client.http")

CLOSE_TIMEOUT: Final = 5.0  # seconds for the DELETE that ends the session
MAX_AUTH_RETRIES: Final = 4  # 401/403 answers one request may meet before it fails
REINITIALIZE_TIMEOUT: Final = 30.0  # seconds a re-initialization after a 404 may take


class HttpTransportError(ClientError):
    """An HTTP exchange failed (status, content type, connection)."""


class HttpStatusError(HttpTransportError):
    """The server answered one message with an HTTP error status (400, 413, 503...).

    The connection and the session are fine: only this message was refused. `status` is the
    HTTP status; `error` the JSON-RPC error the body carried, if any (its `id` may be null).
    """

    def __init__(self, reason: str, *, status: int, error: ErrorResponse | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error


class SessionExpiredError(HttpTransportError):
    """The server answered 404 to our session id: the session is gone; initialize a new one."""


class StreamEnded(HttpTransportError):
    """A response stream ended before its response and could not be resumed."""


class UnauthorizedError(HttpStatusError):
    """The server refused the request (401 or 403) and authorization could not fix it."""

    def __init__(self, reason: str, *, status: int) -> None:
        super().__init__(reason, status=status)


def _failed(outcome: HttpFailure) -> HttpTransportError:
    """The error for a failed exchange: `HttpStatusError` when the server answered a status."""
    if outcome.status:
        return HttpStatusError(outcome.reason, status=outcome.status, error=outcome.error)
    return HttpTransportError(outcome.reason)


class _Answered(Exception):
    """Internal: the answer to a request the transport sent for itself (re-initialization)."""


@attrs.define(eq=False)
class _NewSession:
    """The session a re-initialization builds aside; `state` is adopted only once it works."""

    state: ClientSessionState = attrs.field(factory=ClientSessionState)


@attrs.define(eq=False)
class _Renewal:
    """One re-initialization in progress: what waits on it wakes on `done`, then reads
    `error` (None: the new session is `state`)."""

    done: anyio.Event = attrs.field(factory=anyio.Event)
    error: Exception | None = None


class HttpClientTransport:
    """A `ClientTransport` over Streamable HTTP.

    ```python
    async with HttpClientTransport("http://127.0.0.1:8000/mcp") as transport:
        async with ClientSession(transport) as session:
            await session.initialize()
    ```

    Pass `client` to reuse an `httpx.AsyncClient` (it is not closed here); `headers` go on
    every request; `auth` authorizes them (see the module docstring); `reinitialize` and
    `on_reinitialized` govern what a 404 on the session does.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        reconnect: ReconnectPolicy | None = None,
        standalone_stream: bool = True,
        connect_timeout: float = 30.0,
        auth: RequestAuthorizer | None = None,
        reinitialize: bool = True,
        on_reinitialized: Callable[[], Awaitable[None]] | None = None,
        reinitialize_timeout: float = REINITIALIZE_TIMEOUT,
    ) -> None:
        self.url = url
        self._owns_client = client is None
        # No read timeout: event streams stay open and quiet for as long as a tool runs.
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(connect_timeout, read=None)
        )
        self._extra = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self._policy = reconnect or ReconnectPolicy()
        self._standalone = standalone_stream
        self.state = ClientSessionState()
        self._incoming_send, self._incoming = anyio.create_memory_object_stream[Incoming](
            max_buffer_size=1024
        )
        self._task_group: anyio.abc.TaskGroup | None = None
        self._posts: dict[RequestId, anyio.CancelScope] = {}
        self._background: set[anyio.CancelScope] = set()
        self._closed = False
        self._auth = auth
        self._reinitialize = reinitialize
        self._on_reinitialized = on_reinitialized
        self._initialize: Request | None = None  # the application's, replayed after a 404
        self._reinitialize_timeout = reinitialize_timeout
        self._renewal: _Renewal | None = None  # the re-initialization in progress
        self._stale = False  # a re-initialization failed: the next message starts another
        self._reinitializations = 0

    # ---- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> HttpClientTransport:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            with anyio.CancelScope(shield=True):
                await self.close()
        finally:
            assert self._task_group is not None
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
        return None

    async def close(self) -> None:
        """Stop the streams, DELETE the session, end `receive()`. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # Not the task group's own scope: the caller's task runs inside it.
        for scope in list(self._background):
            scope.cancel()
        try:
            if self.state.session_id is not None:
                with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    try:
                        response = await self._send_http(
                            delete_request(self.state, extra_headers=await self._headers())
                        )
                        outcome = classify_delete_response(
                            response.status_code, response.headers, response.content
                        )
                        if isinstance(outcome, HttpFailure):
                            log.warning("ending the session: %s", outcome.reason)
                    except httpx.HTTPError as exc:
                        log.warning("ending the session failed: %s", exc)
        finally:
            self._incoming_send.close()
            if self._owns_client:
                with anyio.CancelScope(shield=True):
                    await self._client.aclose()

    # ---- the ClientTransport port ---------------------------------------------------------

    async def receive(self) -> AsyncIterator[Incoming]:
        async with self._incoming:
            async for item in self._incoming:
                yield item

    async def send(self, message: Message) -> None:
        if self._closed:
            raise HttpTransportError("the transport is closed")
        if isinstance(message, Request):
            assert self._task_group is not None, "use the transport with `async with`"
            if message.method == "initialize":
                self._initialize = message
            scope = anyio.CancelScope()
            self._posts[message.id] = scope
            self._task_group.start_soon(self._in_background, scope, self._post_request, message)
            return
        if isinstance(message, Notification) and message.method == "notifications/cancelled":
            request_id = (message.params or {}).get("requestId")
            abandoned = self._posts.get(request_id)  # type: ignore[arg-type]
            if abandoned is not None:
                abandoned.cancel()
        await self._post_other(message)

    # ---- HTTP ---------------------------------------------------------------------------

    def _build(self, request: ClientRequest) -> httpx.Request:
        return self._client.build_request(
            request.method, self.url, headers=list(request.headers), content=request.body
        )

    async def _send_http(self, request: ClientRequest) -> httpx.Response:
        return await self._client.send(self._build(request))

    @property
    def auth(self) -> RequestAuthorizer | None:
        """The authorization provider requests go through, if any."""
        return self._auth

    @property
    def reinitializations(self) -> int:
        """How many times a 404 made this transport start a new session."""
        return self._reinitializations

    async def _headers(self) -> tuple[tuple[str, str], ...]:
        """The extra headers of the next request: the caller's, then the authorization."""
        if self._auth is None:
            return self._extra
        value = await self._auth.authorization()
        if value is None:
            return self._extra
        return (*(h for h in self._extra if h[0] != "authorization"), ("authorization", value))

    async def _authorize_again(self, response: httpx.Response, sent: str | None) -> bool:
        """After a 401 or 403: whether the authorizer made a retry worthwhile."""
        if self._auth is None:
            return False
        challenge = response.headers.get("www-authenticate")
        if response.status_code == 401:
            return await self._auth.unauthorized(challenge, sent)
        return await self._auth.forbidden(challenge, sent)

    def _refused(self, what: str, response: httpx.Response) -> UnauthorizedError:
        why = self._auth.failure if self._auth is not None else None
        status = response.status_code
        return UnauthorizedError(
            f"{what}: HTTP {status}" + (f": {why}" if why else " (no authorization configured)"),
            status=status,
        )

    async def _recover_session(self, expired: str, what: str) -> Exception | None:
        """Start a new session after a 404 on `expired` (or join the re-initialization under
        way); None once the new session is `state`, else the error that fails the request."""
        if not self._reinitialize or self._initialize is None:
            return SessionExpiredError(
                f"{what}: the server no longer knows session {expired}; initialize a new session"
            )
        if self._renewal is None and not self._stale and self.state.session_id != expired:
            return None  # a new session already replaced the expired one
        return await self._await_renewal(what)

    async def _ready(self, what: str) -> Exception | None:
        """Before sending in the session: wait out a re-initialization under way, or start
        the one a failed attempt left owed. None when the message may go."""
        if self._renewal is None and not self._stale:
            return None
        return await self._await_renewal(what)

    async def _await_renewal(self, what: str) -> Exception | None:
        renewal = self._renewal
        if renewal is None:
            if self._closed or self._task_group is None:
                return SessionExpiredError(
                    f"{what}: the session expired and the transport is closed"
                )
            renewal = self._renewal = _Renewal()
            self._task_group.start_soon(
                self._in_background, anyio.CancelScope(), self._renew, renewal
            )
        await renewal.done.wait()
        if renewal.error is not None:
            return SessionExpiredError(f"{what}: {renewal.error}")
        return None

    async def _renew(self, renewal: _Renewal) -> None:
        """Start a new session in place of the expired one, in a task of its own: no caller's
        cancellation stops it half-way; `close()` and `reinitialize_timeout` do."""
        assert self._initialize is not None
        self._reinitializations += 1
        log.info("session %s expired (404): initializing a new session", self.state.session_id)
        replay = Request(
            id=f"mcp-core-reinitialize-{self._reinitializations}",
            method="initialize",
            params=self._initialize.params,
        )
        error: Exception = SessionExpiredError("re-initializing after a 404 was stopped")
        renewed = False
        try:
            try:
                with anyio.move_on_after(self._reinitialize_timeout) as deadline:
                    outcome = await self._start_session(replay)
                if deadline.cancelled_caught:
                    error = SessionExpiredError(
                        "re-initializing after a 404 took longer than "
                        f"{self._reinitialize_timeout:g}s"
                    )
                elif isinstance(outcome, Exception):
                    error = outcome
                else:
                    self.state, renewed = outcome, True
            except Exception as exc:  # an authorizer, say: the waiters get it, not the group
                log.warning("re-initializing after a 404 failed unexpectedly", exc_info=True)
                error = HttpTransportError(f"{type(exc).__name__}: {exc}")
            finally:
                self._renewal, self._stale = None, not renewed
            if renewed and self._on_reinitialized is not None:
                try:
                    await self._on_reinitialized()
                except Exception:
                    log.warning("on_reinitialized failed", exc_info=True)
        finally:
            renewal.error = None if renewed else error
            renewal.done.set()

    async def _start_session(self, replay: Request) -> ClientSessionState | Exception:
        """`initialize` (the application's params, `replay`'s id) and `initialized`, in a
        session built aside: its state, or why it could not be opened."""
        new = _NewSession()
        error = await self._exchange(replay, new_session=new)
        if error is not None:
            return SessionExpiredError(f"re-initializing after a 404 failed: {error}")
        try:
            await self._post_other(
                Notification(method="notifications/initialized"), state=new.state
            )
        except HttpTransportError as exc:
            return SessionExpiredError(f"re-initializing after a 404 failed: {exc}")
        return new.state

    async def _deliver(self, item: Incoming) -> None:
        # After close, or once nobody reads: there is no one left to tell.
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._incoming_send.send(item)

    async def _post_other(
        self, message: Message, *, retried: bool = False, state: ClientSessionState | None = None
    ) -> None:
        """POST a notification or a response; the server answers 202.

        `state`: the session a re-initialization is building (its own `initialized`), used
        instead of `state` and without waiting for the re-initialization.
        """
        what = f"POST {message.method}" if isinstance(message, Notification) else "POST"
        if state is None:
            not_ready = await self._ready(what)
            if not_ready is not None:
                raise not_ready
        for _ in range(MAX_AUTH_RETRIES + 1):
            current = self.state if state is None else state
            sent_session = current.session_id
            extra = await self._headers()
            try:
                response = await self._send_http(
                    post_request(message, current, extra_headers=extra)
                )
            except httpx.HTTPError as exc:
                raise HttpTransportError(f"POST failed: {exc}") from exc
            if response.status_code not in (401, 403):
                break
            if not await self._authorize_again(response, dict(extra).get("authorization")):
                raise self._refused(what, response)
        else:
            raise self._refused(what, response)
        outcome = classify_post_response(
            message,
            response.status_code,
            response.headers,
            response.content,
            session_id=sent_session,
        )
        if isinstance(outcome, SessionExpired):
            error = (
                None
                if retried or state is not None
                else await self._recover_session(outcome.session_id, what)
            )
            if retried or state is not None or error is not None:
                raise error or SessionExpiredError(
                    f"{what}: the server no longer knows session {outcome.session_id}"
                )
            await self._post_other(message, retried=True)
            return
        if isinstance(outcome, HttpFailure):
            raise _failed(outcome)
        if (
            isinstance(outcome, Accepted)
            and isinstance(message, Notification)
            and message.method == "notifications/initialized"
            and self._standalone
            and self._task_group is not None
        ):
            self._task_group.start_soon(
                self._in_background, anyio.CancelScope(), self._standalone_stream
            )

    async def _in_background(
        self, scope: anyio.CancelScope, fn: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        """Run `fn` under `scope`, which `close` cancels."""
        self._background.add(scope)
        try:
            with scope:
                await fn(*args)
        finally:
            self._background.discard(scope)

    async def _post_request(self, request: Request) -> None:
        try:
            try:
                error = await self._exchange(request)
            except Exception as exc:  # never leave the request waiting
                log.warning("%s failed unexpectedly", request.method, exc_info=True)
                error = HttpTransportError(f"{request.method}: {type(exc).__name__}: {exc}")
            if error is not None:
                await self._deliver(RequestFailed(request_id=request.id, error=error))
        finally:
            self._posts.pop(request.id, None)

    def _learn(self, new_session: _NewSession | None, state: ClientSessionState) -> None:
        """The application's `initialize` sets `state`; a re-initialization its own."""
        if new_session is None:
            self.state = state
        else:
            new_session.state = state

    def _adopt(
        self,
        request: Request,
        answer: Response | ErrorResponse,
        new_session: _NewSession | None = None,
    ) -> None:
        """Learn the negotiated version from the answer to `initialize`."""
        if request.method == "initialize" and isinstance(answer, Response):
            version = answer.result.get("protocolVersion")
            if isinstance(version, str):
                current = self.state if new_session is None else new_session.state
                self._learn(new_session, attrs.evolve(current, protocol_version=version))

    async def _exchange(
        self,
        request: Request,
        *,
        new_session: _NewSession | None = None,
        retried: bool = False,
    ) -> Exception | None:
        """POST one request and deliver what comes back; the error that failed it, if any.

        `new_session`: the request is the transport's own `initialize` (a re-initialization):
        its answer goes to `new_session`, not to `state`, and is not delivered; an error
        answer is returned as the failure.
        """
        what = request.method
        internal = new_session is not None
        if request.method != "initialize":
            not_ready = await self._ready(f"POST {what}")
            if not_ready is not None:
                return not_ready
        for _ in range(MAX_AUTH_RETRIES + 1):
            sent_session = None if request.method == "initialize" else self.state.session_id
            extra = await self._headers()
            built = self._build(post_request(request, self.state, extra_headers=extra))
            try:
                response = await self._client.send(built, stream=True)
            except httpx.HTTPError as exc:
                return HttpTransportError(f"POST {what} failed: {exc}")
            if response.status_code not in (401, 403):
                break
            await response.aread()
            await response.aclose()
            if not await self._authorize_again(response, dict(extra).get("authorization")):
                return self._refused(f"POST {what}", response)
        else:
            return self._refused(f"POST {what}", response)
        parser = SseParser()
        try:
            streaming = response.headers.get("content-type", "").startswith("text/event-stream")
            body = b"" if streaming and response.status_code == 200 else await response.aread()
            outcome = classify_post_response(
                request, response.status_code, response.headers, body, session_id=sent_session
            )
            if isinstance(outcome, SessionExpired):
                await response.aclose()
                if retried or internal:
                    return SessionExpiredError(
                        f"{what}: the server no longer knows session {outcome.session_id}"
                        "; initialize a new session"
                    )
                error = await self._recover_session(outcome.session_id, what)
                if error is not None:
                    return error
                return await self._exchange(request, retried=True)
            if isinstance(outcome, HttpFailure):
                return _failed(outcome)
            if isinstance(outcome, Accepted):
                return HttpTransportError(f"{request.method}: accepted without a response")
            if request.method == "initialize" and outcome.session_id is not None:
                self._learn(new_session, ClientSessionState(session_id=outcome.session_id))
            if isinstance(outcome, JsonMessage):
                self._adopt(request, outcome.message, new_session)
                return await self._hand_over(outcome.message, internal)
            assert isinstance(outcome, OpenStream)
            try:
                if await self._read_stream(response, parser, request, new_session=new_session):
                    return None
            except _Answered as answered:
                return answered.args[0]  # type: ignore[no-any-return]
        finally:
            await response.aclose()
        try:
            return await self._resume(request, parser, new_session=new_session)
        except _Answered as answered:
            return answered.args[0]  # type: ignore[no-any-return]

    async def _hand_over(
        self, answer: Response | ErrorResponse, internal: bool
    ) -> Exception | None:
        if not internal:
            await self._deliver(answer)
            return None
        if isinstance(answer, ErrorResponse):
            return HttpTransportError(f"initialize: {answer.message} ({answer.code})")
        return None

    async def _read_stream(
        self,
        response: httpx.Response,
        parser: SseParser,
        request: Request | None,
        *,
        new_session: _NewSession | None = None,
    ) -> bool:
        """Deliver the stream's messages; True once `request`'s response went by. For the
        transport's own request (`new_session`) its answer is not delivered: `_Answered`
        carries its outcome."""
        try:
            async for chunk in response.aiter_bytes():
                for event in parser.feed(chunk):
                    try:
                        message = message_of_event(event)
                    except InvalidMessage as exc:
                        log.warning("ignoring an invalid message on the stream: %s", exc)
                        continue
                    if message is None:
                        continue
                    answered = (
                        request is not None
                        and isinstance(message, (Response, ErrorResponse))
                        and message.id == request.id
                    )
                    if answered and request is not None:
                        assert isinstance(message, (Response, ErrorResponse))
                        self._adopt(request, message, new_session)
                        if new_session is not None:
                            raise _Answered(await self._hand_over(message, internal=True))
                    await self._deliver(message)
                    if answered:
                        return True
        except httpx.HTTPError as exc:
            log.info("event stream broke: %s", exc)
        return False

    async def _resume(
        self,
        request: Request | None,
        parser: SseParser,
        *,
        new_session: _NewSession | None = None,
    ) -> Exception | None:
        """Resume a stream that ended early with GET + Last-Event-ID until it is done.

        For a request: until its response arrived (None) or resuming is hopeless (the
        error). For the standalone stream (`request` None): while the transport is open.
        """
        attempts = 0
        while True:
            decision = decide_reconnect(
                now=time.monotonic(),
                last_event_id=parser.last_event_id,
                retry_ms=parser.retry,
                attempts=attempts,
                awaiting_response=request is not None,
                policy=self._policy,
            )
            what = request.method if request is not None else "the standalone stream"
            if isinstance(decision, GiveUp):
                return StreamEnded(f"{what}: {decision.reason}")
            await anyio.sleep(decision.delay)
            attempts = decision.attempt
            last_id = parser.last_event_id
            current = self.state if new_session is None else new_session.state
            sent_session = current.session_id
            built = self._build(
                get_request(
                    current,
                    last_event_id=decision.last_event_id,
                    extra_headers=await self._headers(),
                )
            )
            try:
                response = await self._client.send(built, stream=True)
            except httpx.HTTPError as exc:
                log.info("resuming %s failed: %s", what, exc)
                continue
            try:
                ok = response.status_code == 200
                body = b"" if ok else await response.aread()
                outcome = classify_get_response(
                    response.status_code, response.headers, body, session_id=sent_session
                )
                if isinstance(outcome, SessionExpired):
                    return SessionExpiredError(
                        f"{what}: the server no longer knows session {outcome.session_id}"
                    )
                if isinstance(outcome, StreamNotOffered):
                    return StreamEnded(f"{what}: the server does not offer resumption (405)")
                if isinstance(outcome, HttpFailure):
                    log.info("resuming %s: %s", what, outcome.reason)
                    continue
                if await self._read_stream(response, parser, request, new_session=new_session):
                    return None
            finally:
                await response.aclose()
            if parser.last_event_id != last_id:
                attempts = 0  # the resumed stream made progress

    async def _standalone_stream(self) -> None:
        """The GET stream for messages that belong to no request, reopened while open.

        It belongs to no caller, so nothing it raises may reach the transport's task group
        (where it would cancel the application): an unexpected error is logged and ends this
        stream only. Cancellation (a `BaseException`) still passes.
        """
        try:
            await self._listen()
        except Exception:
            log.warning("the standalone stream failed; it is not reopened", exc_info=True)

    async def _listen(self) -> None:
        sent_session = self.state.session_id
        built = self._build(get_request(self.state, extra_headers=await self._headers()))
        try:
            response = await self._client.send(built, stream=True)
        except httpx.HTTPError as exc:
            log.info("the standalone stream could not be opened: %s", exc)
            return
        parser = SseParser()
        try:
            ok = response.status_code == 200
            body = b"" if ok else await response.aread()
            outcome = classify_get_response(
                response.status_code, response.headers, body, session_id=sent_session
            )
            if isinstance(outcome, StreamNotOffered):
                return
            if not isinstance(outcome, OpenStream):
                log.info("the standalone stream was refused: %s", _describe(outcome))
                return
            await self._read_stream(response, parser, None)
        finally:
            await response.aclose()
        error = await self._resume(None, parser)
        if error is not None:
            log.info("the standalone stream ended: %s", error)


def _describe(outcome: Any) -> str:
    if isinstance(outcome, HttpFailure):
        return outcome.reason
    if isinstance(outcome, SessionExpired):
        return f"session {outcome.session_id} expired"
    return type(outcome).__name__
