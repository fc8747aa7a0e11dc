"""Streamable HTTP, client side, without I/O: requests to send and decisions about responses.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP":
- "Sending Messages to the Server": every JSON-RPC message is a POST whose `Accept` lists both
  `application/json` and `text/event-stream`. A notification or response is answered 202 with
  no body; a request is answered with one JSON message or an SSE stream that ends with the
  response.
- "Session Management": the session id the server returns on the `initialize` response goes on
  every later request as `Mcp-Session-Id`; it is visible ASCII only (0x21 to 0x7E). A 404 to a
  request that carried it means the session is gone: start a new one with `initialize`. DELETE
  ends a session (405 means the server does not let clients end it).
- "Protocol Version Header": `MCP-Protocol-Version` on every request after initialization.
- "Listening for Messages from the Server": GET with `Accept: text/event-stream`; 405 means the
  server offers no such stream.
- "Resumability and Redelivery": a stream that breaks is resumed with GET and `Last-Event-ID`,
  after the `retry` the server sent; a stream whose events carried no id cannot be resumed.

Theory of operation: the transport (an httpx adapter) asks this module what to send
(`post_request`, `get_request`, `delete_request`), sends it, and hands the status, headers and
body back to `classify_post_response` / `classify_get_response` / `classify_delete_response`,
which answer with one outcome value. For an `OpenStream` it parses the body with
`sse_parser.SseParser`; when the stream ends before the response, `decide_reconnect` says when to
resume, or that the request has failed. Nothing here reads a clock: the time is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeAlias

import attrs

from ..protocol.jsonrpc import (
    ErrorResponse,
    InvalidMessage,
    Message,
    Notification,
    Request,
    Response,
    decode,
    encode,
    parse_message,
)
from .sse_parser import SseEvent
from .streamable import JSON, LAST_EVENT_ID, PROTOCOL_VERSION, SESSION_ID, SSE

__all__ = [
    "ACCEPT_POST",
    "Accepted",
    "ClientRequest",
    "ClientSessionState",
    "GiveUp",
    "HttpFailure",
    "InvalidSessionId",
    "JsonMessage",
    "OpenStream",
    "PostOutcome",
    "ReconnectPolicy",
    "Resume",
    "SessionClosed",
    "SessionExpired",
    "StreamNotOffered",
    "answer_of",
    "check_session_id",
    "classify_delete_response",
    "classify_get_response",
    "classify_post_response",
    "decide_reconnect",
    "delete_request",
    "get_request",
    "is_event_stream",
    "is_valid_session_id",
    "message_of_event",
    "post_request",
]

ACCEPT_POST: Final = f"{JSON}, {SSE}"


# ---- session ids --------------------------------------------------------------------------------


class InvalidSessionId(ValueError):
    """The server sent a session id that is not visible ASCII; the client refuses it."""


def is_valid_session_id(value: str) -> bool:
    """Visible ASCII only (0x21 to 0x7E), at least one character ("Session Management")."""
    return bool(value) and all("\x21" <= c <= "\x7e" for c in value)


def check_session_id(value: str) -> str:
    if not is_valid_session_id(value):
        raise InvalidSessionId(
            f"refusing session id {value[:64]!r}: it must be one or more visible ASCII "
            "characters (0x21 to 0x7E)"
        )
    return value


def _session_id_of(headers: Mapping[str, str]) -> str | None:
    value = headers.get(SESSION_ID)
    return None if value is None else check_session_id(value)


# ---- what to send -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ClientSessionState:
    """What the transport knows of its session: both None before `initialize` completes."""

    session_id: str | None = attrs.field(default=None)
    protocol_version: str | None = None

    @session_id.validator
    def _check(self, _: object, value: str | None) -> None:
        if value is not None:
            check_session_id(value)


@attrs.frozen(kw_only=True)
class ClientRequest:
    """One HTTP request to send to the MCP endpoint. Header names are lowercase."""

    method: Literal["POST", "GET", "DELETE"]
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


def _session_headers(
    state: ClientSessionState, extra: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    if state.session_id is not None:
        out.append((SESSION_ID, state.session_id))
    if state.protocol_version is not None:
        out.append((PROTOCOL_VERSION, state.protocol_version))
    return (*out, *extra)


def _is_initialize(message: Message) -> bool:
    return isinstance(message, Request) and message.method == "initialize"


def post_request(
    message: Message | bytes,
    state: ClientSessionState,
    *,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> ClientRequest:
    """The POST that carries one JSON-RPC message.

    `initialize` goes without session id and protocol version: it starts a new session, and the
    version is only known once it is answered. `extra_headers` (authorization, say) come last.
    """
    headers: tuple[tuple[str, str], ...] = (("accept", ACCEPT_POST), ("content-type", JSON))
    if isinstance(message, bytes):
        body = message
        initialize = _is_initialize(parse_message(decode(body)))
    else:
        body = encode(message)
        initialize = _is_initialize(message)
    if initialize:
        headers += extra_headers
    else:
        headers += _session_headers(state, extra_headers)
    return ClientRequest(method="POST", headers=headers, body=body)


def get_request(
    state: ClientSessionState,
    *,
    last_event_id: str | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> ClientRequest:
    """The GET that opens the standalone stream, or resumes a broken one after an event id."""
    headers: tuple[tuple[str, str], ...] = (("accept", SSE),)
    if last_event_id:
        headers += ((LAST_EVENT_ID, last_event_id),)
    return ClientRequest(method="GET", headers=headers + _session_headers(state, extra_headers))


def delete_request(
    state: ClientSessionState, *, extra_headers: tuple[tuple[str, str], ...] = ()
) -> ClientRequest:
    """The DELETE that ends the session. Only a session with an id can be ended."""
    if state.session_id is None:
        raise ValueError("no session id: there is no session to end with DELETE")
    return ClientRequest(method="DELETE", headers=_session_headers(state, extra_headers))


# ---- what came back -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Accepted:
    """202: the server took the notification or response. Nothing more will come for it."""


@attrs.frozen(kw_only=True)
class JsonMessage:
    """200 `application/json`: the answer to the request, in the body.

    `session_id` is the `Mcp-Session-Id` the response carried (the new session's, after
    `initialize`), already validated.
    """

    message: Response | ErrorResponse
    session_id: str | None = None


@attrs.frozen(kw_only=True)
class OpenStream:
    """200 `text/event-stream`: parse the body as SSE until the answer arrives."""

    session_id: str | None = None


@attrs.frozen(kw_only=True)
class SessionExpired:
    """404 to a request that carried a session id: forget the session and `initialize` again."""

    session_id: str


@attrs.frozen(kw_only=True)
class StreamNotOffered:
    """405 to GET: the server has no standalone stream. Not an error."""


@attrs.frozen(kw_only=True)
class SessionClosed:
    """The DELETE is done: the session ended, was already gone, or may not be ended by us."""

    status: int


@attrs.frozen(kw_only=True)
class HttpFailure:
    """Anything else: the request failed. `error` is the JSON-RPC error the body held, if any.

    `status` is the HTTP status (0 when the status was fine but the response was not: a
    malformed body, a wrong content type, a message that does not answer the request).
    """

    status: int
    reason: str
    error: ErrorResponse | None = None


PostOutcome: TypeAlias = Accepted | JsonMessage | OpenStream | SessionExpired | HttpFailure
GetOutcome: TypeAlias = OpenStream | StreamNotOffered | SessionExpired | HttpFailure

_STATUS_REASONS: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _media_type(headers: Mapping[str, str]) -> str:
    return (headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def is_event_stream(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the body is an SSE stream (read it incrementally, do not buffer it)."""
    return status == 200 and _media_type(headers) == SSE


def _error_body(headers: Mapping[str, str], body: bytes) -> ErrorResponse | None:
    if _media_type(headers) != JSON or not body:
        return None
    try:
        message = parse_message(decode(body))
    except InvalidMessage:
        return None
    return message if isinstance(message, ErrorResponse) else None


def _failure(status: int, headers: Mapping[str, str], body: bytes, what: str) -> HttpFailure:
    error = _error_body(headers, body)
    reason = f"{what} failed: HTTP {status} {_STATUS_REASONS.get(status, '')}".rstrip()
    if error is not None:
        reason += f": {error.message} ({error.code})"
    return HttpFailure(status=status, reason=reason, error=error)


def _invalid(reason: str) -> HttpFailure:
    return HttpFailure(status=0, reason=reason)


def classify_post_response(
    sent: Message,
    status: int,
    headers: Mapping[str, str],
    body: bytes = b"",
    *,
    session_id: str | None = None,
) -> PostOutcome:
    """Decide what a POST's response means.

    `sent` is the message that was POSTed and `session_id` the one its request carried.
    `headers` have lowercase names; `body` is the whole body, except for an event stream
    (`is_event_stream`), whose body the caller parses itself and may leave out.
    """
    what = f"POST {sent.method}" if isinstance(sent, (Request, Notification)) else "POST"
    # `initialize` carries no session id, so its 404 is a plain failure.
    if status == 404 and session_id is not None and not _is_initialize(sent):
        return SessionExpired(session_id=session_id)
    if not 200 <= status < 300:
        return _failure(status, headers, body, what)
    if not isinstance(sent, Request):
        # "202 Accepted with no body". Any other 2xx is taken the same way, its body ignored:
        # nothing can answer a notification or a response, and servers in the wild (the
        # conformance suite's mocks among them) send 200 with a JSON body.
        return Accepted()
    if status != 200:
        return _invalid(f"{what}: a request must be answered with 200, got {status}")
    try:
        new_session = _session_id_of(headers)
    except InvalidSessionId as exc:
        return _invalid(str(exc))
    media_type = _media_type(headers)
    if media_type == SSE:
        return OpenStream(session_id=new_session)
    if media_type != JSON:
        return _invalid(f"{what}: unexpected content type {media_type or '(none)'!r}")
    answer = answer_of(sent, body)
    if isinstance(answer, HttpFailure):
        return answer
    return JsonMessage(message=answer, session_id=new_session)


def answer_of(sent: Request, data: bytes | str) -> Response | ErrorResponse | HttpFailure:
    """The response to `sent` in one JSON body, or why the body is not that."""
    try:
        message = parse_message(decode(data))
    except InvalidMessage as exc:
        return _invalid(f"{sent.method}: the response is not a JSON-RPC message: {exc.reason}")
    if not isinstance(message, (Response, ErrorResponse)):
        return _invalid(f"{sent.method}: expected the response, got a {type(message).__name__}")
    if message.id != sent.id and not (isinstance(message, ErrorResponse) and message.id is None):
        return _invalid(
            f"{sent.method}: the response answers request {message.id!r}, not {sent.id!r}"
        )
    return message


def message_of_event(event: SseEvent) -> Message | None:
    """The JSON-RPC message an SSE event carries; None for one with empty data (a priming
    event, sent only to hand the client an event id). Raises `InvalidMessage` for bad data."""
    if not event.data.strip():
        return None
    return parse_message(decode(event.data))


def classify_get_response(
    status: int, headers: Mapping[str, str], body: bytes = b"", *, session_id: str | None = None
) -> GetOutcome:
    """Decide what the response to a GET (a new standalone stream, or a resumption) means."""
    if status == 404 and session_id is not None:
        return SessionExpired(session_id=session_id)
    if status == 405:
        return StreamNotOffered()
    if status != 200:
        return _failure(status, headers, body, "GET")
    if _media_type(headers) != SSE:
        return _invalid(f"GET: expected an event stream, got {_media_type(headers) or '(none)'!r}")
    return OpenStream()


def classify_delete_response(
    status: int, headers: Mapping[str, str], body: bytes = b""
) -> SessionClosed | HttpFailure:
    """2xx ends the session; 404 (already gone) and 405 (the server's to end) are fine too."""
    if 200 <= status < 300 or status in (404, 405):
        return SessionClosed(status=status)
    return _failure(status, headers, body, "DELETE")


# ---- reconnection -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """How long to wait before resuming, and how often to try.

    The server's `retry` wins over the backoff when it sent one ("Resumability": the client
    SHOULD respect it). Attempts count consecutive reconnections that delivered no event; the
    caller resets its count when a resumed stream makes progress.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    initial_delay: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))

    def delay(self, attempts: int, retry_ms: int | None) -> float:
        if retry_ms is not None:
            return retry_ms / 1000
        return min(self.initial_delay * self.multiplier**attempts, self.max_delay)


@attrs.frozen(kw_only=True)
class Resume:
    """Reconnect with GET at time `at` (`delay` seconds after `now`).

    `last_event_id` goes in `Last-Event-ID`; None opens a fresh standalone stream.
    """

    last_event_id: str | None
    delay: float
    at: float
    attempt: int


@attrs.frozen(kw_only=True)
class GiveUp:
    """The stream cannot be resumed: fail what waits on it with `reason`."""

    reason: str


def decide_reconnect(
    *,
    now: float,
    last_event_id: str,
    retry_ms: int | None,
    attempts: int,
    awaiting_response: bool = True,
    policy: ReconnectPolicy = ReconnectPolicy(),
) -> Resume | GiveUp:
    """What to do when an SSE stream ended (or broke) before it was done.

    `last_event_id` and `retry_ms` are the stream's (`SseParser.last_event_id`, `.retry`);
    `attempts` counts the reconnections already made without progress. With
    `awaiting_response` (a POST's stream that has not delivered its response yet) a stream with
    no event id cannot be resumed, and the request fails; the standalone GET stream simply
    opens again.
    """
    if attempts < 0:
        raise ValueError("attempts must not be negative")
    if awaiting_response and not last_event_id:
        return GiveUp(
            reason="the server closed the stream before sending the response, and sent no "
            "event id to resume it with"
        )
    if attempts >= policy.max_attempts:
        return GiveUp(
            reason=f"the stream could not be resumed after {attempts} attempts"
            + (f" (last event id {last_event_id!r})" if last_event_id else "")
        )
    delay = policy.delay(attempts, retry_ms)
    return Resume(
        last_event_id=last_event_id or None, delay=delay, at=now + delay, attempt=attempts + 1
    )
