"""`ClientSession`: the client role of MCP over any transport (legacy era).

Spec: MCP 2025-11-25 "Lifecycle" (initialize, version negotiation, `notifications/initialized`),
"Utilities" (ping, cancellation, progress, pagination, logging, completion), "Server Features"
(tools, resources, prompts), "Client Features" (sampling, elicitation in form and URL modes,
roots).

Theory of operation: the session speaks JSON-RPC message values (`core/protocol/jsonrpc.py`)
through a `ClientTransport` and knows nothing of HTTP or pipes. One task reads the transport's
`receive()` iterator for the session's whole life and routes each item:

- a `Response`/`ErrorResponse` goes to the request waiting on its id; an id nobody waits for
  (a late answer to a request we gave up on) is ignored;
- a `Request` from the server (sampling, elicitation, roots, ping) runs the handler the
  application registered, in its own task, and its result or error is sent back; a method
  without a handler is answered "method not found";
- a `Notification` goes to its callback: log messages, progress (by `progressToken`, to the
  callback of the request that carried the token), list changes, resource updates,
  cancellation of a server-to-client request (its handler is cancelled);
- a `RequestFailed` is the transport saying one request cannot be answered any more (its
  stream ended for good, the session expired): the waiter raises that error.

The read loop never runs application code, so application code may call the session (a
callback that refreshes `list_tools` on `list_changed`; a sampling handler that reads a
resource) without waiting for an answer only the read loop could deliver. Server-to-client
requests run in a task each. A progress report is queued on its request and its callback runs
in the requesting task, in order; `request` returns after the reports that came before the
answer. The other notifications go through a buffer (`NOTIFICATION_BUFFER`) to one callback
task, which runs their callbacks one at a time in arrival order; when that buffer is full the
read loop waits for it (backpressure). Cancellation is applied at once, in the read loop.

When the iterator ends, every pending request fails with `TransportClosed`. A request that
times out (`anyio.fail_after`) or whose caller is cancelled sends `notifications/cancelled`
for it, so the server stops working on it. The era is chosen by `initialize` (legacy); a
modern-era session would replace the handshake with per-request `_meta`, behind the same API.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, Protocol, TypeAlias

import anyio
import anyio.abc
import attrs

from ..protocol import errors
from ..protocol.errors import McpError
from ..protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)
from ..protocol.versions import LATEST_LEGACY_VERSION, LEGACY_VERSIONS

__all__ = [
    "ClientError",
    "ClientSession",
    "ClientTransport",
    "InitializeResult",
    "ListChangedCallback",
    "LoggingCallback",
    "ProgressCallback",
    "RequestFailed",
    "RequestHandler",
    "ResourceUpdatedCallback",
    "TransportClosed",
    "UnsupportedProtocolVersion",
]

log = logging.getLogger("mcp_core.client")

DEFAULT_TIMEOUT: Final = 60.0
# `timeout="default"` means the session's timeout; None means no limit.
UseDefault: TypeAlias = Literal["default"]
# How long sending `notifications/cancelled` may take when a request is abandoned.
CANCEL_NOTICE_TIMEOUT: Final = 5.0


# ---- errors -------------------------------------------------------------------------------------


class ClientError(Exception):
    """The client could not complete an operation (not an error answered by the server)."""


class TransportClosed(ClientError):
    """The transport ended while a request still waited for its response."""


class UnsupportedProtocolVersion(ClientError):
    """The server answered `initialize` with a protocol version this client does not speak."""

    def __init__(self, version: object, supported: tuple[str, ...]) -> None:
        super().__init__(
            f"the server chose protocol version {version!r}, which this client does not "
            f"support (supported: {', '.join(supported)})"
        )
        self.version = version
        self.supported = supported


# ---- the transport port -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RequestFailed:
    """From a transport: the request `request_id` will never be answered, because `error`."""

    request_id: RequestId
    error: Exception


Incoming: TypeAlias = Message | RequestFailed


class ClientTransport(Protocol):
    """What a `ClientSession` needs from a transport (HTTP, stdio, an in-memory pair).

    `send` delivers one message to the server (a request is only handed over: its answer comes
    through `receive`). `receive` yields what the server sent, in order, and ends when the
    transport is closed or the connection is gone for good. A transport that learns a request
    cannot be answered yields `RequestFailed` for it. `close` ends the connection (and the
    session, where the transport has one) and makes `receive` end.
    """

    async def send(self, message: Message) -> None: ...

    def receive(self) -> AsyncIterator[Incoming]: ...

    async def close(self) -> None: ...


# ---- callbacks the application registers --------------------------------------------------------

RequestHandler: TypeAlias = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers one server-to-client request: its `params` in, its `result` out (raise McpError to
answer with an error)."""
ProgressCallback: TypeAlias = Callable[[float, float | None, str | None], Awaitable[None]]
LoggingCallback: TypeAlias = Callable[[dict[str, Any]], Awaitable[None]]
ListChangedCallback: TypeAlias = Callable[[str], Awaitable[None]]
"""Called with the feature whose list changed: "tools", "resources" or "prompts"."""
ResourceUpdatedCallback: TypeAlias = Callable[[str], Awaitable[None]]
NotificationCallback: TypeAlias = Callable[[Notification], Awaitable[None]]

_LIST_CHANGED: Final[Mapping[str, str]] = {
    "notifications/tools/list_changed": "tools",
    "notifications/resources/list_changed": "resources",
    "notifications/prompts/list_changed": "prompts",
}


@attrs.frozen(kw_only=True)
class InitializeResult:
    """What the server said about itself in its `initialize` answer."""

    protocol_version: str
    capabilities: dict[str, Any]
    server_info: dict[str, Any]
    instructions: str | None = None


# Notifications waiting for their callbacks; beyond this the read loop waits (backpressure).
NOTIFICATION_BUFFER: Final = 1024


class _Pending:
    """A request waiting for its answer, and the progress reports that came before it.

    The read loop only records (`report`, `settle`); the requesting task runs the progress
    callback, so a callback never holds up the read loop and all the reports that arrived
    before the answer have run when `request` returns.
    """

    __slots__ = ("changed", "method", "outcome", "progress", "reports")

    def __init__(self, method: str, progress: ProgressCallback | None) -> None:
        self.method = method
        self.progress = progress
        self.changed = anyio.Event()
        self.reports: collections.deque[tuple[float, float | None, str | None]] = (
            collections.deque()
        )
        self.outcome: Response | ErrorResponse | Exception | None = None

    def report(self, progress: float, total: float | None, message: str | None) -> None:
        self.reports.append((progress, total, message))
        self.changed.set()

    def settle(self, outcome: Response | ErrorResponse | Exception) -> None:
        self.outcome = outcome
        self.changed.set()

    @property
    def settled(self) -> bool:
        return self.outcome is not None

    async def wait(self) -> None:
        """Run the progress callback for each report, in order, until the answer is in."""
        while True:
            self.changed = changed = anyio.Event()
            while self.reports:
                progress, total, message = self.reports.popleft()
                if self.progress is None:
                    continue
                try:
                    await self.progress(progress, total, message)
                except Exception:
                    log.exception("the progress callback of %s failed", self.method)
            if self.settled:
                return
            await changed.wait()


class ClientSession:
    """One MCP session, client side.

    ```python
    async with HttpClientTransport(url) as transport, ClientSession(transport) as session:
        await session.initialize()
        tools = await session.list_tools()
        result = await session.call_tool("forecast", {"city": "Paris"})
    ```

    Handlers for server-to-client requests (`sampling_handler`, `elicitation_handler` for form
    mode, `url_elicitation_handler` for URL mode, `roots_handler`) also declare the matching
    client capability in `initialize`. Leaving the `async with` block closes the transport.

    Callbacks and handlers never run in the task that reads the transport, so they may call
    the session (`await session.list_tools()` in `list_changed_callback`). Notification
    callbacks run one at a time, in the order the notifications arrived, in one task of the
    session: a slow callback delays the callbacks after it, never the answers to requests. A
    request's progress callback runs in the task that made the request, in order, and all the
    reports received before the answer have run when the request returns. Each
    server-to-client request runs its handler in a task of its own. Callbacks still pending
    when the `async with` block is left are cancelled.
    """

    def __init__(
        self,
        transport: ClientTransport,
        *,
        client_name: str = "mcp-core",
        client_version: str = "0.1.0",
        protocol_versions: tuple[str, ...] = LEGACY_VERSIONS,
        timeout: float | None = DEFAULT_TIMEOUT,
        sampling_handler: RequestHandler | None = None,
        elicitation_handler: RequestHandler | None = None,
        url_elicitation_handler: RequestHandler | None = None,
        roots_handler: RequestHandler | None = None,
        roots_list_changed: bool = False,
        logging_callback: LoggingCallback | None = None,
        list_changed_callback: ListChangedCallback | None = None,
        resource_updated_callback: ResourceUpdatedCallback | None = None,
        notification_callback: NotificationCallback | None = None,
    ) -> None:
        if not protocol_versions:
            raise ValueError("protocol_versions must name at least one version")
        unknown = set(protocol_versions) - set(LEGACY_VERSIONS)
        if unknown:
            raise ValueError(f"not legacy-era protocol versions: {sorted(unknown)}")
        self.transport = transport
        self.client_info = {"name": client_name, "version": client_version}
        self.protocol_versions = protocol_versions
        self.timeout = timeout
        self.sampling_handler = sampling_handler
        self.elicitation_handler = elicitation_handler
        self.url_elicitation_handler = url_elicitation_handler
        self.roots_handler = roots_handler
        self.roots_list_changed = roots_list_changed
        self.logging_callback = logging_callback
        self.list_changed_callback = list_changed_callback
        self.resource_updated_callback = resource_updated_callback
        self.notification_callback = notification_callback
        self.server: InitializeResult | None = None
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._pending: dict[RequestId, _Pending] = {}
        self._progress: dict[str | int, _Pending] = {}
        self._notes_in, self._notes_out = anyio.create_memory_object_stream[Notification](
            NOTIFICATION_BUFFER
        )
        self._handling: dict[RequestId, anyio.CancelScope] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed_reason: str | None = None

    # ---- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> ClientSession:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._read_loop)
        self._task_group.start_soon(self._run_callbacks)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        try:
            with anyio.CancelScope(shield=True):
                await self.transport.close()
        finally:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
        return None

    def capabilities(self) -> dict[str, Any]:
        """The client capabilities `initialize` declares: one per registered handler."""
        caps: dict[str, Any] = {}
        if self.sampling_handler is not None:
            caps["sampling"] = {}
        if self.elicitation_handler is not None or self.url_elicitation_handler is not None:
            elicitation: dict[str, Any] = {}
            if self.elicitation_handler is not None:
                elicitation["form"] = {}
            if self.url_elicitation_handler is not None:
                elicitation["url"] = {}
            caps["elicitation"] = elicitation
        if self.roots_handler is not None:
            caps["roots"] = {"listChanged": self.roots_list_changed}
        return caps

    async def initialize(self) -> InitializeResult:
        """The handshake: `initialize`, check the version, then `notifications/initialized`.

        The newest version we support is offered; a server that answers with one we do not
        support is refused (`UnsupportedProtocolVersion`) before anything else is sent.
        """
        result = await self.request(
            "initialize",
            {
                "protocolVersion": self.protocol_versions[0],
                "capabilities": self.capabilities(),
                "clientInfo": self.client_info,
            },
        )
        version = result.get("protocolVersion")
        if not isinstance(version, str) or version not in self.protocol_versions:
            raise UnsupportedProtocolVersion(version, self.protocol_versions)
        capabilities = result.get("capabilities")
        server_info = result.get("serverInfo")
        instructions = result.get("instructions")
        self.server = InitializeResult(
            protocol_version=version,
            capabilities=capabilities if isinstance(capabilities, dict) else {},
            server_info=server_info if isinstance(server_info, dict) else {},
            instructions=instructions if isinstance(instructions, str) else None,
        )
        await self.notify("notifications/initialized")
        return self.server

    @property
    def protocol_version(self) -> str:
        return self.server.protocol_version if self.server else LATEST_LEGACY_VERSION

    # ---- sending --------------------------------------------------------------------------

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self.transport.send(Notification(method=method, params=params))

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | UseDefault | None = "default",
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Send a request and wait for its result.

        Raises `McpError` for an error answer, `TimeoutError` after `timeout` seconds (the
        session's default unless given; None waits forever), `TransportClosed` or the
        transport's error when no answer can come. A request abandoned by a timeout or a
        cancellation is cancelled on the server with `notifications/cancelled`.
        """
        if self._closed_reason is not None:
            raise TransportClosed(f"cannot send {method}: {self._closed_reason}")
        request_id = next(self._ids)
        token: int | None = None
        if progress is not None:
            token = next(self._tokens)
            params = dict(params or {})
            meta = dict(params.get("_meta") or {})
            meta["progressToken"] = token
            params["_meta"] = meta
        pending = _Pending(method, progress)
        self._pending[request_id] = pending
        if token is not None:
            self._progress[token] = pending
        limit = self.timeout if isinstance(timeout, str) else timeout
        try:
            with anyio.fail_after(math.inf if limit is None else limit):
                await self.transport.send(Request(id=request_id, method=method, params=params))
                await pending.wait()
        except BaseException as exc:
            if not pending.settled and method != "initialize":
                reason = "timed out" if isinstance(exc, TimeoutError) else "cancelled"
                await self._send_cancel(request_id, f"{method} {reason} by the client")
            raise
        finally:
            self._pending.pop(request_id, None)
            if token is not None:
                self._progress.pop(token, None)
        outcome = pending.outcome
        if isinstance(outcome, Response):
            return outcome.result
        if isinstance(outcome, ErrorResponse):
            raise McpError(outcome.code, outcome.message, outcome.data)
        assert isinstance(outcome, Exception)
        raise outcome

    async def _send_cancel(self, request_id: RequestId, reason: str) -> None:
        with anyio.move_on_after(CANCEL_NOTICE_TIMEOUT, shield=True):
            try:
                await self.notify(
                    "notifications/cancelled", {"requestId": request_id, "reason": reason}
                )
            except Exception as exc:  # the transport may be gone; nothing more to do
                log.debug("could not send notifications/cancelled: %s", exc)

    # ---- the methods of the protocol ------------------------------------------------------

    async def ping(self) -> None:
        await self.request("ping")

    async def _list_all(
        self, method: str, key: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a paginated list, following `nextCursor` to the end."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page_params = dict(params or {})
            if cursor is not None:
                page_params["cursor"] = cursor
            result = await self.request(method, page_params or None)
            page = result.get(key)
            if isinstance(page, list):
                items.extend(item for item in page if isinstance(item, dict))
            next_cursor = result.get("nextCursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                return items
            if next_cursor in seen:  # a server that loops would keep us here forever
                raise ClientError(f"{method}: the server repeated cursor {next_cursor!r}")
            seen.add(next_cursor)
            cursor = next_cursor

    async def list_tools(self) -> list[dict[str, Any]]:
        return await self._list_all("tools/list", "tools")

    async def list_resources(self) -> list[dict[str, Any]]:
        return await self._list_all("resources/list", "resources")

    async def list_resource_templates(self) -> list[dict[str, Any]]:
        return await self._list_all("resources/templates/list", "resourceTemplates")

    async def list_prompts(self) -> list[dict[str, Any]]:
        return await self._list_all("prompts/list", "prompts")

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | UseDefault | None = "default",
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """The tool's `CallToolResult` (a failed tool answers `isError: true`, not an error)."""
        params: dict[str, Any] = {"name": name, "arguments": dict(arguments or {})}
        return await self.request("tools/call", params, timeout=timeout, progress=progress)

    async def read_resource(self, uri: str) -> dict[str, Any]:
        return await self.request("resources/read", {"uri": uri})

    async def subscribe_resource(self, uri: str) -> None:
        await self.request("resources/subscribe", {"uri": uri})

    async def unsubscribe_resource(self, uri: str) -> None:
        await self.request("resources/unsubscribe", {"uri": uri})

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = dict(arguments)
        return await self.request("prompts/get", params)

    async def complete(
        self,
        ref: Mapping[str, Any],
        argument_name: str,
        value: str,
        *,
        context: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """`completion/complete`; `ref` is `{"type": "ref/prompt", "name": ...}` or
        `{"type": "ref/resource", "uri": ...}`. Returns the `completion` object."""
        params: dict[str, Any] = {
            "ref": dict(ref),
            "argument": {"name": argument_name, "value": value},
        }
        if context:
            params["context"] = {"arguments": dict(context)}
        result = await self.request("completion/complete", params)
        completion = result.get("completion")
        return completion if isinstance(completion, dict) else {}

    async def set_logging_level(self, level: str) -> None:
        await self.request("logging/setLevel", {"level": level})

    async def send_roots_list_changed(self) -> None:
        await self.notify("notifications/roots/list_changed")

    # ---- receiving ------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "the transport closed"
        try:
            async for item in self.transport.receive():
                await self._route(item)
        except Exception as exc:
            reason = f"the transport failed: {exc}"
            log.warning("client transport failed: %s", exc)
        finally:
            self._closed_reason = reason
            self._notes_in.close()  # the callbacks still run for what was received
            for request_id, pending in list(self._pending.items()):
                self._settle(
                    request_id,
                    TransportClosed(f"{pending.method}: {reason} before the response arrived"),
                )

    def _settle(self, request_id: RequestId, outcome: Response | ErrorResponse | Exception) -> None:
        pending = self._pending.get(request_id)
        if pending is None or pending.settled:
            log.debug("ignoring an answer to unknown request %r", request_id)
            return
        pending.settle(outcome)

    async def _route(self, item: Incoming) -> None:
        if isinstance(item, (Response, ErrorResponse)):
            if item.id is None:
                log.warning("the server sent an error with no id: %s (%s)", item.message, item.code)
                return
            self._settle(item.id, item)
        elif isinstance(item, RequestFailed):
            self._settle(item.request_id, item.error)
        elif isinstance(item, Request):
            assert self._task_group is not None
            scope = anyio.CancelScope()
            self._handling[item.id] = scope
            self._task_group.start_soon(self._answer, item, scope)
        else:
            self._note_received(item)
            # Waits only when NOTIFICATION_BUFFER notifications are waiting for callbacks.
            await self._notes_in.send(item)

    def _note_received(self, note: Notification) -> None:
        """What a notification does to the session itself, at once, in the read loop."""
        params = note.params or {}
        if note.method == "notifications/progress":
            pending = self._progress.get(params.get("progressToken"))  # type: ignore[arg-type]
            progress = params.get("progress")
            if pending is not None and isinstance(progress, (int, float)):
                total = params.get("total")
                message = params.get("message")
                pending.report(
                    float(progress),
                    float(total) if isinstance(total, (int, float)) else None,
                    message if isinstance(message, str) else None,
                )
        elif note.method == "notifications/cancelled":
            scope = self._handling.get(params.get("requestId"))  # type: ignore[arg-type]
            if scope is not None:
                scope.cancel()

    async def _run_callbacks(self) -> None:
        """The application's notification callbacks, one at a time, in arrival order.

        Their own task, not the read loop's: a callback may call the session (`list_tools`
        on `list_changed`), whose answer only the read loop can deliver.
        """
        async with self._notes_out:
            async for note in self._notes_out:
                await self._notified(note)

    async def _notified(self, note: Notification) -> None:
        params = note.params or {}
        try:
            if note.method == "notifications/message":
                if self.logging_callback is not None:
                    await self.logging_callback(params)
            elif note.method in _LIST_CHANGED:
                if self.list_changed_callback is not None:
                    await self.list_changed_callback(_LIST_CHANGED[note.method])
            elif note.method == "notifications/resources/updated":
                uri = params.get("uri")
                if self.resource_updated_callback is not None and isinstance(uri, str):
                    await self.resource_updated_callback(uri)
            if self.notification_callback is not None:
                await self.notification_callback(note)
        except Exception:
            # A faulty callback must not take the session down.
            log.exception("a notification callback for %s failed", note.method)

    def _handler_for(self, request: Request) -> RequestHandler | None:
        if request.method == "sampling/createMessage":
            return self.sampling_handler
        if request.method == "roots/list":
            return self.roots_handler
        if request.method == "elicitation/create":
            mode = (request.params or {}).get("mode", "form")
            return self.url_elicitation_handler if mode == "url" else self.elicitation_handler
        return None

    async def _answer(self, request: Request, scope: anyio.CancelScope) -> None:
        answer: Response | ErrorResponse | None = None
        try:
            with scope:
                if request.method == "ping":
                    answer = Response(id=request.id, result={})
                else:
                    handler = self._handler_for(request)
                    if handler is None:
                        answer = ErrorResponse(
                            id=request.id,
                            code=errors.METHOD_NOT_FOUND,
                            message=f"Method not found: {request.method}",
                        )
                    else:
                        result = await handler(dict(request.params or {}))
                        answer = Response(id=request.id, result=result)
        except McpError as exc:
            answer = ErrorResponse(id=request.id, code=exc.code, message=exc.message, data=exc.data)
        except Exception:
            log.exception("the handler for %s failed", request.method)
            answer = ErrorResponse(
                id=request.id, code=errors.INTERNAL_ERROR, message="Internal error"
            )
        finally:
            self._handling.pop(request.id, None)
        if answer is None:  # cancelled by the server: no response (Utilities > Cancellation)
            return
        try:
            await self.transport.send(answer)
        except Exception as exc:
            log.warning("could not answer %s: %s", request.method, exc)
