"""The JSON-RPC 2.0 envelope with MCP's restrictions.

Theory of operation: `parse_message` turns one decoded JSON value into exactly one of four
message values (`Request`, `Notification`, `Response`, `ErrorResponse`), or raises
`InvalidMessage` carrying the JSON-RPC error to answer with. The encoders do the reverse.
Nothing here does I/O; bytes are decoded and encoded with orjson by `decode`/`encode`.

MCP's rules on top of JSON-RPC 2.0 (MCP 2025-11-25 "Base Protocol" > "Messages"):
- request ids are strings or integers, never null, never a boolean or a float;
- `params`, when present, is an object;
- there are no batches: a JSON array is an invalid request (batching was removed in
  2025-06-18);
- notifications get no response, not even an error;
- unparsable input is answered with -32700 and no id (the id cannot be known).
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias, TypeGuard

import attrs
import orjson

from .errors import INVALID_REQUEST, PARSE_ERROR

__all__ = [
    "ErrorResponse",
    "InvalidMessage",
    "Message",
    "Notification",
    "Request",
    "RequestId",
    "Response",
    "decode",
    "encode",
    "error_payload",
    "parse_message",
]

RequestId: TypeAlias = str | int
JSONRPC: Final = "2.0"


@attrs.frozen(slots=True, kw_only=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"jsonrpc": JSONRPC, "id": self.id, "method": self.method}
        if self.params is not None:
            out["params"] = self.params
        return out


@attrs.frozen(slots=True, kw_only=True)
class Notification:
    method: str
    params: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"jsonrpc": JSONRPC, "method": self.method}
        if self.params is not None:
            out["params"] = self.params
        return out


@attrs.frozen(slots=True, kw_only=True)
class Response:
    id: RequestId
    result: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"jsonrpc": JSONRPC, "id": self.id, "result": self.result}


@attrs.frozen(slots=True, kw_only=True)
class ErrorResponse:
    """An error answer. `id` is None only when the request's id could not be read."""

    id: RequestId | None
    code: int
    message: str
    data: Any = None

    def to_wire(self) -> dict[str, Any]:
        return error_payload(self.id, self.code, self.message, self.data)


Message: TypeAlias = Request | Notification | Response | ErrorResponse


class InvalidMessage(Exception):
    """The input is not a valid MCP JSON-RPC message.

    `response` is what to answer with, or None when the input looked like a notification or
    response (those are never answered).
    """

    def __init__(self, reason: str, response: ErrorResponse | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


def error_payload(
    id: RequestId | None, code: int, message: str, data: Any = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": JSONRPC}
    if id is not None:
        out["id"] = id
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    out["error"] = error
    return out


def _valid_id(value: object) -> TypeGuard[RequestId]:
    # bool is an int subclass in Python but not a JSON-RPC id.
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def decode(raw: bytes | str) -> Any:
    """Decode JSON text; raise InvalidMessage(-32700, no id) when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(
            f"parse error: {exc}",
            ErrorResponse(id=None, code=PARSE_ERROR, message="Parse error"),
        ) from None


def encode(message: Message | dict[str, Any]) -> bytes:
    payload = message if isinstance(message, dict) else message.to_wire()
    return orjson.dumps(payload)


def _invalid(reason: str, id: RequestId | None, answer: bool) -> InvalidMessage:
    response = (
        ErrorResponse(id=id, code=INVALID_REQUEST, message=f"Invalid request: {reason}")
        if answer
        else None
    )
    return InvalidMessage(reason, response)


def parse_message(value: Any) -> Message:
    """Classify one decoded JSON value as an MCP JSON-RPC message."""
    if isinstance(value, list):
        raise _invalid("batches are not supported", None, answer=True)
    if not isinstance(value, dict):
        raise _invalid("a message must be a JSON object", None, answer=True)
    has_id = "id" in value
    raw_id = value.get("id")
    reply_id: RequestId | None = raw_id if _valid_id(raw_id) else None
    method = value.get("method")
    if value.get("jsonrpc") != JSONRPC:
        # Only answer when the sender plausibly expects an answer (it sent an id).
        raise _invalid('"jsonrpc" must be "2.0"', reply_id, answer=has_id or method is None)
    if method is not None:
        if not isinstance(method, str):
            raise _invalid('"method" must be a string', reply_id, answer=True)
        params = value.get("params")
        if params is not None and not isinstance(params, dict):
            raise _invalid('"params" must be an object', reply_id, answer=has_id)
        if not has_id:
            return Notification(method=method, params=params)
        if reply_id is None:
            raise _invalid("a request id must be a string or an integer", None, answer=True)
        return Request(id=reply_id, method=method, params=params)
    # No method: a response from the peer.
    if "result" in value:
        if reply_id is None:
            raise _invalid("a response id must be a string or an integer", None, answer=False)
        result = value["result"]
        if not isinstance(result, dict):
            raise _invalid('"result" must be an object', reply_id, answer=False)
        return Response(id=reply_id, result=result)
    error = value.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
            raise _invalid("malformed error object", reply_id, answer=False)
        return ErrorResponse(id=reply_id, code=code, message=message, data=error.get("data"))
    raise _invalid("not a request, notification or response", reply_id, answer=True)
