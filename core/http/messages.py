"""HTTP request and response values: what the sans-IO layer reads and decides.

Header names are lowercase; a header sent several times is joined with ", " (RFC 9110
section 5.3) by the adapter that builds the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from ..protocol.jsonrpc import error_payload

__all__ = ["JSON_HEADERS", "HttpRequest", "HttpResponse", "error_response", "json_response"]


@attrs.frozen(kw_only=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    query: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@attrs.frozen(kw_only=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


# The headers of a JSON response with no others: one shared tuple, so that an adapter can
# recognise it (`is`) and reuse its encoded form.
JSON_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


def json_response(
    payload: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()
) -> HttpResponse:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return HttpResponse(
        status=status, headers=(*JSON_HEADERS, *headers) if headers else JSON_HEADERS, body=body
    )


def error_response(
    status: int,
    message: str,
    *,
    code: int = -32600,
    headers: tuple[tuple[str, str], ...] = (),
    data: Any = None,
) -> HttpResponse:
    """An HTTP error whose body is a JSON-RPC error with no id (the request's is unknown)."""
    return json_response(error_payload(None, code, message, data), status, headers)
