"""Streamable HTTP decisions, without I/O: header checks and SSE framing.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP": POST carries one JSON-RPC message and
must accept both `application/json` and `text/event-stream`; GET opens the standalone SSE
stream; DELETE ends a session; `Mcp-Session-Id` names the session and `MCP-Protocol-Version`
the negotiated version (missing means 2025-03-26, unknown is 400).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from ..protocol.versions import DEFAULT_HEADER_VERSION, is_known_version
from .messages import HttpResponse, error_response

__all__ = [
    "LAST_EVENT_ID",
    "PROTOCOL_VERSION",
    "SESSION_ID",
    "accepts",
    "check_get_headers",
    "check_post_headers",
    "protocol_version_of",
    "sse_comment",
    "sse_event",
]

SESSION_ID = "mcp-session-id"
PROTOCOL_VERSION = "mcp-protocol-version"
LAST_EVENT_ID = "last-event-id"
JSON = "application/json"
SSE = "text/event-stream"


@lru_cache(maxsize=256)
def accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether an Accept header admits a media type (wildcards and parameters understood)."""
    if not accept_header:
        return False
    kind = media_type.split("/", 1)[0]
    for part in accept_header.split(","):
        item = part.split(";", 1)[0].strip().lower()
        if item in (media_type, "*/*", f"{kind}/*"):
            # q=0 means "not acceptable".
            params = part.split(";")[1:]
            if any(p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00") for p in params):
                continue
            return True
    return False


def check_post_headers(headers: Mapping[str, str]) -> HttpResponse | None:
    accept = headers.get("accept")
    if not (accepts(accept, JSON) and accepts(accept, SSE)):
        return error_response(
            406, "Not Acceptable: the client must accept application/json and text/event-stream"
        )
    content_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != JSON:
        return error_response(415, "Unsupported Media Type: the body must be application/json")
    return None


def check_get_headers(headers: Mapping[str, str]) -> HttpResponse | None:
    if not accepts(headers.get("accept"), SSE):
        return error_response(406, "Not Acceptable: the client must accept text/event-stream")
    return None


def protocol_version_of(headers: Mapping[str, str]) -> str | HttpResponse:
    """The request's protocol version, or the 400 that refuses an unknown one."""
    version = headers.get(PROTOCOL_VERSION)
    if version is None:
        return DEFAULT_HEADER_VERSION
    version = version.strip()
    if not is_known_version(version):
        return error_response(400, f"Bad Request: unsupported protocol version {version!r}")
    return version


def sse_event(data: bytes, event_id: str | None = None, retry_ms: int | None = None) -> bytes:
    """One SSE event. `data` is one line of JSON (orjson never emits newlines) or empty."""
    out = b""
    if event_id is not None:
        out += b"id: " + event_id.encode() + b"\n"
    if retry_ms is not None:
        out += b"retry: " + str(retry_ms).encode() + b"\n"
    if data:
        out += b"event: message\ndata: " + data + b"\n\n"
    else:
        out += b"data: \n\n"
    return out


def sse_comment(text: str = "") -> bytes:
    """A comment line: keeps idle connections open through proxies; clients ignore it."""
    return b": " + text.encode() + b"\n\n"
