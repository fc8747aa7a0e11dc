"""One client's live session on this node: the session machine plus what running it needs.

The record that other nodes can see lives in a `SessionStore`; this object adds what only this
process has: handlers in flight (to cancel them), requests this server sent to the client and
is waiting on, and where unrelated messages go (the standalone stream). Transports create it
through `McpServer.open_session` and close it with `close`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from mcp_core.ports.sessions import SessionRecord

from ..machines.session import (
    AnswerInitialize,
    CloseRequested,
    IdleExpired,
    InitializedReceived,
    InitializeReceived,
    LocalProtocolError,
    OutgoingRequestStarted,
    SessionMachine,
    SessionState,
)
from ..protocol import errors
from ..protocol.errors import McpError
from ..protocol.jsonrpc import ErrorResponse, RequestId, Response
from ..protocol.types import LOGGING_LEVELS
from .outbound import DISCARD, Outbound

if TYPE_CHECKING:
    from .server import McpServer

__all__ = ["ClientInfo", "ServerSession"]


@attrs.frozen(kw_only=True)
class ClientInfo:
    """What the client said about itself in `initialize`."""

    protocol_version: str
    capabilities: dict[str, Any]
    info: dict[str, Any] | None


class _Pending:
    """A request we sent to the client, waiting for its response."""

    __slots__ = ("done", "outcome")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.outcome: Response | ErrorResponse | None = None


class ServerSession:
    __slots__ = (
        "__weakref__",
        "_in_flight",
        "_next_id",
        "_pending",
        "client",
        "client_id",
        "id",
        "last_active",
        "log_level",
        "machine",
        "on_close",
        "server",
        "server_capabilities",
        "standalone",
        "subject",
        "subscriptions",
    )

    def __init__(
        self,
        server: McpServer,
        session_id: str | None,
        *,
        now: float,
        subject: str | None = None,
        client_id: str | None = None,
        state: SessionState = SessionState.NEW,
    ) -> None:
        self.server = server
        self.id = session_id
        self.machine = SessionMachine(state)
        self.client: ClientInfo | None = None
        # What `initialize` advertised to this client: the only features it may use.
        self.server_capabilities: dict[str, Any] = {}
        self.subject = subject
        self.client_id = client_id
        # Index into LOGGING_LEVELS of the least severe level the client wants; None: all.
        self.log_level: int | None = None
        self.subscriptions: set[str] = set()
        self.last_active = now
        self.standalone: Outbound = DISCARD
        self.on_close: Callable[[ServerSession], None] | None = None
        self._in_flight: dict[RequestId, anyio.CancelScope] = {}
        self._pending: dict[RequestId, _Pending] = {}
        self._next_id = 0

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self.machine.state

    @property
    def protocol_version(self) -> str | None:
        return self.client.protocol_version if self.client else None

    def initialize(self, params: dict[str, Any]) -> str:
        """Apply `initialize`; return the negotiated version. Raises McpError when refused."""
        capabilities = params.get("capabilities")
        info = params.get("clientInfo")
        if not isinstance(capabilities, dict):
            capabilities = {}
        try:
            effects = self.machine.handle(
                InitializeReceived(
                    requested_version=params.get("protocolVersion"),
                    client_capabilities=capabilities,
                    client_info=info if isinstance(info, dict) else None,
                )
            )
        except LocalProtocolError:
            raise McpError(
                errors.INVALID_REQUEST, "Invalid request: the session is already initialized"
            ) from None
        version = next(e.protocol_version for e in effects if isinstance(e, AnswerInitialize))
        self.client = ClientInfo(
            protocol_version=version,
            capabilities=capabilities,
            info=info if isinstance(info, dict) else None,
        )
        return version

    def restore(self, record: SessionRecord, server_capabilities: dict[str, Any]) -> None:
        """Take over a session another node initialized (its record from a shared store)."""
        self.client = ClientInfo(
            protocol_version=record.protocol_version,
            capabilities=record.client_capabilities,
            info=record.client_info,
        )
        self.server_capabilities = server_capabilities
        if record.log_level is not None:
            self.set_log_level(record.log_level)
        self.subscriptions = set(record.subscriptions)

    def initialized(self) -> bool:
        """Apply `notifications/initialized`; False when it was out of place (ignored)."""
        try:
            self.machine.handle(InitializedReceived())
        except LocalProtocolError:
            return False
        return True

    def close(self, *, expired_after: float | None = None) -> None:
        """End the session: cancel its handlers and fail what it waits on. Idempotent."""
        if self.machine.state is SessionState.CLOSED:
            return
        event = (
            IdleExpired(idle_seconds=expired_after)
            if expired_after is not None
            else CloseRequested()
        )
        self.machine.handle(event)
        for scope in self._in_flight.values():
            scope.cancel()
        self._in_flight.clear()
        for pending in self._pending.values():
            pending.outcome = ErrorResponse(
                id=None, code=errors.INTERNAL_ERROR, message="session closed"
            )
            pending.done.set()
        self._pending.clear()
        self.standalone = DISCARD
        if self.on_close is not None:
            self.on_close(self)

    # ---- requests in flight ---------------------------------------------------------------

    def track(self, request_id: RequestId, scope: anyio.CancelScope) -> None:
        self._in_flight[request_id] = scope

    def untrack(self, request_id: RequestId) -> None:
        self._in_flight.pop(request_id, None)

    def cancel(self, request_id: object) -> bool:
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            return False
        scope = self._in_flight.get(request_id)
        if scope is None:
            return False
        scope.cancel()
        return True

    # ---- requests to the client -----------------------------------------------------------

    def client_supports(self, *path: str) -> bool:
        node: Any = self.client.capabilities if self.client else {}
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        outbound: Outbound,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send a request to the client on `outbound` and wait for its result."""
        try:
            self.machine.handle(OutgoingRequestStarted(method=method))
        except LocalProtocolError:
            raise McpError(
                errors.INVALID_REQUEST,
                f"cannot send {method}: the session is {self.state.value}, not ready "
                "(the client has not sent notifications/initialized)",
            ) from None
        self._next_id += 1
        request_id = self._next_id
        pending = self._pending[request_id] = _Pending()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await outbound.send(message)
            with anyio.fail_after(math.inf if timeout is None else timeout):
                await pending.done.wait()
        except TimeoutError:
            raise McpError(
                errors.REQUEST_TIMEOUT, f"the client did not answer {method} in {timeout} s"
            ) from None
        finally:
            self._pending.pop(request_id, None)
        outcome = pending.outcome
        if isinstance(outcome, Response):
            return outcome.result
        assert outcome is not None
        raise McpError(outcome.code, outcome.message, outcome.data)

    def resolve(self, response: Response | ErrorResponse) -> bool:
        """Deliver the client's answer to a request we sent; False when nobody waits for it."""
        pending = self._pending.get(response.id) if response.id is not None else None
        if pending is None:
            return False
        pending.outcome = response
        pending.done.set()
        return True

    # ---- logging --------------------------------------------------------------------------

    def set_log_level(self, level: str) -> None:
        self.log_level = LOGGING_LEVELS.index(level)

    def wants_log(self, level: str) -> bool:
        return self.log_level is None or LOGGING_LEVELS.index(level) >= self.log_level
