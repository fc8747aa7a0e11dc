"""The bridge: a stdio MCP server that relays to the shared daemon over Streamable HTTP.

Issue 6; MCP 2025-11-25 "Transports" > "stdio" (towards the client) and > "Streamable HTTP"
(towards the daemon). A desktop client launches `mcp-core bridge SERVER` and speaks stdio to
it; the bridge relays each JSON-RPC message, unchanged, to the daemon's MCP endpoint on
127.0.0.1 with the daemon's bearer token, and writes back everything the daemon sends
(responses, notifications, server-to-client requests), one message per line.

Theory of operation. Input is cut into lines by the stdio transport's `LineFramer` (with its
line limit) and parsed with the protocol's `parse_message`; an unparseable line is answered as
the stdio server would answer it. Upstream, each connection to a daemon is an "upstream": one
`HttpClientTransport` (the library's Streamable HTTP client transport: sessions, SSE, stream
resumption) owned by one task, whose `receive()` is relayed to stdout. The daemon itself is
found, started and restarted by the `DaemonSupervisor` (the `daemon_recovery` machine).

Surviving a daemon's death, transparently for the client:
- The bridge remembers the client's `initialize` request (once answered) and whether it sent
  `notifications/initialized`. A new upstream replays both, under a bridge-owned request id,
  before anything else, and swallows the answer: the client's session goes on, its ids and
  capabilities unchanged.
- A request the daemon refuses with an HTTP status (400, 413, 503...: `HttpStatusError`) is
  that request's failure alone: the client gets the JSON-RPC error the body carried (under
  the request's id), or -32603 with the reason, and the upstream stays. A notification so
  refused is logged and dropped.
- A request failing in transport (connection refused or reset, a stream that cannot be
  resumed), a notification that cannot be delivered, or the watchdog (every
  `watchdog_interval`, the supervisor checks the daemon's pid) retires the upstream. The
  supervisor then diagnoses and restarts the daemon (backoff with jitter, bounded attempts),
  and every client request still waiting on the retired upstream is sent again on the new
  one: once. A second transport failure of the same request is answered with an error. A
  request that had reached the dead daemon may so run twice; tools that must not should be
  idempotent.
- A 404 for the session (the daemon expired it) re-opens a session on the same daemon.
- A client's `notifications/cancelled` is relayed, and the request it names leaves the
  bookkeeping: it is never sent again to a new daemon, and the client, which ignores any
  answer to it, gets no error for it either.
- When the supervisor gives up, every waiting request and every later one is answered with a
  JSON-RPC error (-32603) carrying its message; the client restarts the bridge to try again.

The bridge ends when its stdin closes: it ends its upstream session (DELETE) and exits; the
daemon stays up for other bridges until it is idle.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
from typing import Any, BinaryIO

import anyio
import anyio.abc
import anyio.from_thread
import attrs
import orjson

from mcp_core.core.machines.daemon_recovery import DaemonRecoveryState
from mcp_core.core.protocol import errors
from mcp_core.core.protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    error_payload,
)
from mcp_core.core.services.client import ClientError, Incoming, RequestFailed
from mcp_core.core.services.stdio import (
    DEFAULT_MAX_LINE_BYTES,
    ByteSource,
    LineTooLong,
    message_of_line,
    read_lines,
)
from mcp_core.core.services.supervisor import DaemonSupervisor, DaemonUnavailable
from mcp_core.ports.daemon import DaemonAddress

from ..client_http import HttpClientTransport, HttpStatusError, SessionExpiredError
from ..stdio.server import _FileWriter, _stdout_reserved, _ThreadedReader

__all__ = ["StdioBridge", "serve_bridge"]

log = logging.getLogger("mcp_core.bridge")

# Request ids the bridge uses for itself (the replayed initialize); never shown to the client.
_OWN_ID = "mcp-core-bridge:"
# Tries to open a session on a daemon the supervisor calls healthy before giving up a request.
_HANDSHAKE_TRIES = 4
_SEND_TRIES = 3
# How long the bridge waits, when its client leaves, for its upstream session to be ended.
_CLOSE_WAIT = 6.0


class _HandshakeFailed(Exception):
    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@attrs.define(eq=False)
class _Upstream:
    """One connection to one daemon: its transport, the task reading it, what was sent."""

    address: DaemonAddress
    transport: HttpClientTransport
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    sent: set[RequestId] = attrs.field(factory=set)
    handshake: dict[RequestId, Response | ErrorResponse | Exception] = attrs.field(factory=dict)
    answered: anyio.Event = attrs.field(factory=anyio.Event)
    finished: anyio.Event = attrs.field(factory=anyio.Event)


class StdioBridge:
    """Relays one stdio client to the daemon `supervisor` keeps alive.

    `write` puts one message on the client's stdout; `path` is the daemon's MCP endpoint.
    """

    def __init__(
        self,
        supervisor: DaemonSupervisor,
        write: Any,
        *,
        path: str = "/mcp",
        handshake_timeout: float = 30.0,
        watchdog_interval: float = 0.5,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self._supervisor = supervisor
        self._write_line = write
        self._path = path
        self._handshake_timeout = handshake_timeout
        self._watchdog_interval = watchdog_interval
        self._max_line_bytes = max_line_bytes
        self._write_lock = anyio.Lock()
        self._connect_lock = anyio.Lock()
        self._up: _Upstream | None = None
        self._pending: dict[RequestId, Request] = {}
        self._resent: set[RequestId] = set()
        self._initialize: Request | None = None
        self._initialize_answered = False
        self._initialized_sent = False
        self._unavailable: str | None = None
        self._ids = itertools.count(1)
        self._tg: anyio.abc.TaskGroup | None = None

    # ---- the client side ----

    async def run(self, source: ByteSource) -> None:
        """Relay until `source` (the client's stdin) ends."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._watchdog)
            async for line in read_lines(source, self._max_line_bytes):
                await self._from_client(line)
            log.info("the client closed stdin: the bridge ends")
            up, self._up = self._up, None
            if up is not None:
                up.scope.cancel()  # its task ends the upstream session (DELETE) on the way out
                with anyio.move_on_after(_CLOSE_WAIT):
                    await up.finished.wait()
            tg.cancel_scope.cancel()

    async def _write(self, message: dict[str, Any]) -> None:
        async with self._write_lock:
            with anyio.CancelScope(shield=True):  # half a line would corrupt the pipe
                await self._write_line(message)

    async def _answer_error(self, request_id: RequestId, message: str) -> None:
        self._pending.pop(request_id, None)
        await self._write(error_payload(request_id, errors.INTERNAL_ERROR, message))

    async def _from_client(self, line: bytes | LineTooLong) -> None:
        # Framed and parsed as the stdio server does (the same answer to a bad line).
        message = message_of_line(line)
        if isinstance(message, dict):
            await self._write(message)
            return
        if message is None:
            return
        if isinstance(message, Request):
            if self._unavailable is not None:
                await self._write(
                    error_payload(message.id, errors.INTERNAL_ERROR, self._unavailable)
                )
                return
            if message.method == "initialize":
                self._initialize, self._initialize_answered = message, False
            self._pending[message.id] = message
        elif isinstance(message, Notification):
            if self._unavailable is not None:
                return
            if message.method == "notifications/initialized":
                self._initialized_sent = True
            elif message.method == "notifications/cancelled":
                self._forget((message.params or {}).get("requestId"))
        await self._forward(message)

    def _forget(self, request_id: Any) -> None:
        """The client cancelled `request_id`: never send it again, never answer it with an
        error (MCP 2025-11-25 "Cancellation": the sender ignores what comes after)."""
        if not isinstance(request_id, (str, int)):
            return
        if self._pending.get(request_id) is self._initialize:
            return  # "initialize" MUST NOT be cancelled; the client's session depends on it
        self._pending.pop(request_id, None)
        self._resent.discard(request_id)
        if self._up is not None:
            self._up.sent.discard(request_id)

    # ---- the daemon side ----

    async def _forward(self, message: Message) -> None:
        """Send one client message upstream, reconnecting as needed."""
        for _ in range(_SEND_TRIES):
            try:
                up = await self._connect()
            except DaemonUnavailable as exc:
                await self._unreachable(message, str(exc))
                return
            try:
                await up.transport.send(message)
            except HttpStatusError as exc:
                # The daemon refused this one message (a request only fails through
                # `RequestFailed`): the connection is fine, nothing to retire.
                log.warning("the daemon refused a message: %s", exc)
                return
            except ClientError as exc:
                if not await self._retire(up, str(exc), isinstance(exc, SessionExpiredError)):
                    return
                if isinstance(message, (Response, ErrorResponse)):
                    return  # it answered a request of the session that is gone
                continue
            if isinstance(message, Request):
                up.sent.add(message.id)  # no await since send: a retire sees it or not at all
            return
        await self._unreachable(message, "the daemon kept refusing the message")

    async def _unreachable(self, message: Message, reason: str) -> None:
        if self._supervisor.state is DaemonRecoveryState.GIVEN_UP:
            await self._give_up(reason)
        elif isinstance(message, Request) and message.id in self._pending:
            await self._answer_error(message.id, reason)

    async def _connect(self) -> _Upstream:
        """The current upstream, or a new one with the client's handshake replayed."""
        async with self._connect_lock:
            if self._up is not None:
                return self._up
            assert self._tg is not None
            problem = "no daemon"
            for _ in range(_HANDSHAKE_TRIES):
                address = await self._supervisor.ensure()
                up: _Upstream = await self._tg.start(self._run_upstream, address)
                try:
                    await self._handshake(up)
                except _HandshakeFailed as exc:
                    up.scope.cancel()
                    problem = str(exc)
                    log.warning("re-opening the session failed: %s", problem)
                    if not exc.expired:
                        await self._supervisor.recover(address, problem)
                    continue
                self._up = up
                return up
            raise DaemonUnavailable(f"the daemon refused the session: {problem}")

    async def _handshake(self, up: _Upstream) -> None:
        """Replay the client's `initialize` (and `initialized`) on a new upstream."""
        initialize = self._initialize
        if initialize is None or not self._initialize_answered:
            return
        request_id = f"{_OWN_ID}{next(self._ids)}"
        try:
            replay = Request(id=request_id, method="initialize", **_params(initialize))
            await up.transport.send(replay)
            with anyio.fail_after(self._handshake_timeout):
                while request_id not in up.handshake:
                    await up.answered.wait()
                    up.answered = anyio.Event()
        except (ClientError, TimeoutError) as exc:
            raise _HandshakeFailed(f"initialize: {exc or type(exc).__name__}") from None
        answer = up.handshake.pop(request_id)
        if isinstance(answer, Exception):
            raise _HandshakeFailed(str(answer), expired=isinstance(answer, SessionExpiredError))
        if isinstance(answer, ErrorResponse):
            raise _HandshakeFailed(f"initialize was refused: {answer.message}")
        log.info("re-opened the client's session on the daemon (pid %d)", up.address.pid)
        if self._initialized_sent:
            try:
                await up.transport.send(Notification(method="notifications/initialized"))
            except ClientError as exc:
                raise _HandshakeFailed(f"notifications/initialized: {exc}") from None

    async def _run_upstream(
        self,
        address: DaemonAddress,
        *,
        task_status: anyio.abc.TaskStatus[_Upstream] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        url = f"http://127.0.0.1:{address.port}{self._path}"
        headers = {"authorization": f"Bearer {address.token}"}
        finished = anyio.Event()
        try:
            async with HttpClientTransport(url, headers=headers, connect_timeout=10.0) as client:
                up = _Upstream(address=address, transport=client, finished=finished)
                task_status.started(up)
                with up.scope:
                    async for item in client.receive():
                        await self._from_daemon(up, item)
        finally:
            finished.set()

    async def _from_daemon(self, up: _Upstream, item: Incoming) -> None:
        if isinstance(item, RequestFailed):
            if _is_own(item.request_id):
                up.handshake[item.request_id] = item.error
                up.answered.set()
            elif isinstance(item.error, HttpStatusError):
                up.sent.discard(item.request_id)
                await self._refused(item.request_id, item.error)
            elif item.request_id in self._pending:
                assert self._tg is not None
                expired = isinstance(item.error, SessionExpiredError)
                self._tg.start_soon(self._retire, up, str(item.error), expired)
            return
        if isinstance(item, (Response, ErrorResponse)) and item.id is not None:
            if _is_own(item.id):
                up.handshake[item.id] = item
                up.answered.set()
                return
            request = self._pending.pop(item.id, None)
            self._resent.discard(item.id)
            if request is not None and request is self._initialize:
                self._initialize_answered = isinstance(item, Response)
        await self._write(item.to_wire())

    async def _refused(self, request_id: RequestId, error: HttpStatusError) -> None:
        """The daemon answered one request with an HTTP status: relay its JSON-RPC error
        under the request's id (the body's id may be null), or -32603 with the reason."""
        request = self._pending.pop(request_id, None)
        self._resent.discard(request_id)
        if request is None:
            return  # cancelled by the client, or already answered
        log.info("the daemon refused %s (HTTP %d): %s", request.method, error.status, error)
        if error.error is not None:
            refusal = error.error
            await self._write(
                error_payload(request_id, refusal.code, refusal.message, refusal.data)
            )
        else:
            await self._write(error_payload(request_id, errors.INTERNAL_ERROR, str(error)))

    async def _retire(self, up: _Upstream, reason: str, expired: bool = False) -> bool:
        """Give up on upstream `up`: recover the daemon (unless only the session expired) and
        send its unanswered requests again. False when the supervisor gave up."""
        async with self._connect_lock:
            if self._up is not up:
                return True  # already retired, and its requests taken care of
            self._up = None
            up.scope.cancel()
            orphans = [self._pending[i] for i in sorted(up.sent, key=str) if i in self._pending]
            log.warning("lost the daemon (pid %d): %s", up.address.pid, reason)
            # After an idle exit (the watchdog saw it) the machine is absent: the orphans'
            # resending (or the next request) starts a daemon again, nothing is restarted.
            if not expired and self._supervisor.state is not DaemonRecoveryState.ABSENT:
                try:
                    await self._supervisor.recover(up.address, reason)
                except DaemonUnavailable as exc:
                    await self._give_up(str(exc))
                    return False
        for request in orphans:
            if request.id in self._resent:
                await self._answer_error(request.id, f"{request.method} failed twice: {reason}")
                continue
            self._resent.add(request.id)
            await self._forward(request)
        return True

    async def _give_up(self, message: str) -> None:
        self._unavailable = message
        for request_id in list(self._pending):
            await self._answer_error(request_id, message)

    async def _watchdog(self) -> None:
        """Notice a dead daemon before the next request has to fail on it."""
        while self._unavailable is None:
            await anyio.sleep(self._watchdog_interval)
            up = self._up
            if up is None:
                continue
            try:
                await self._supervisor.check()
            except DaemonUnavailable as exc:
                await self._retire(up, str(exc))
                continue
            if self._supervisor.address != up.address:
                await self._retire(up, f"the daemon (pid {up.address.pid}) is gone")


def _is_own(request_id: RequestId) -> bool:
    return isinstance(request_id, str) and request_id.startswith(_OWN_ID)


def _params(request: Request) -> dict[str, Any]:
    return {} if request.params is None else {"params": request.params}


async def serve_bridge(
    supervisor: DaemonSupervisor,
    *,
    path: str = "/mcp",
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    watchdog_interval: float = 0.5,
) -> None:
    """Relay this process's stdin/stdout (or the given binary files) to the daemon."""
    real_stdout = stdout is None
    writer = _FileWriter(stdout if stdout is not None else sys.stdout.buffer)

    async def write(message: dict[str, Any]) -> None:
        await writer.send(orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE))

    bridge = StdioBridge(supervisor, write, path=path, watchdog_interval=watchdog_interval)
    guard = _stdout_reserved(sys.stdout.buffer) if real_stdout else contextlib.nullcontext()
    with guard:
        async with anyio.from_thread.BlockingPortal() as portal:
            reader = _ThreadedReader(stdin if stdin is not None else sys.stdin.buffer, portal)
            try:
                await bridge.run(reader)
            finally:
                reader.close()
                await portal.stop(cancel_remaining=True)
