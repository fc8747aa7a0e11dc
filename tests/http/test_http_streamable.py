"""Sans-IO Streamable HTTP checks and SSE framing (2025-11-25 Transports > Streamable HTTP)."""

from __future__ import annotations

import orjson
import pytest

from mcp_core.core.http.messages import HttpResponse, error_response, json_response
from mcp_core.core.http.streamable import (
    accepts,
    check_get_headers,
    check_post_headers,
    protocol_version_of,
    sse_comment,
    sse_event,
)

BOTH = "application/json, text/event-stream"


@pytest.mark.parametrize(
    ("accept", "media_type", "ok"),
    [
        ("application/json", "application/json", True),
        ("APPLICATION/JSON", "application/json", True),
        ("text/event-stream;q=0.9", "text/event-stream", True),
        ("*/*", "text/event-stream", True),
        ("application/*", "application/json", True),
        ("text/*", "application/json", False),
        ("application/json; q=0", "application/json", False),
        ("application/json;q=0.0, */*", "application/json", True),
        ("application/jsonx", "application/json", False),
        ("", "application/json", False),
        (None, "application/json", False),
    ],
)
def test_accept_header_matching(accept: str | None, media_type: str, ok: bool) -> None:
    assert accepts(accept, media_type) is ok


@pytest.mark.parametrize(
    "accept",
    [BOTH, "*/*", "application/*, text/*", "text/event-stream,application/json;charset=utf-8"],
)
def test_post_accepting_json_and_sse_passes(accept: str) -> None:
    assert check_post_headers({"accept": accept, "content-type": "application/json"}) is None


@pytest.mark.parametrize(
    "accept", [None, "application/json", "text/event-stream", "text/html", "application/*"]
)
def test_post_not_accepting_both_json_and_sse_is_406(accept: str | None) -> None:
    headers = {"content-type": "application/json"}
    if accept is not None:
        headers["accept"] = accept
    refusal = check_post_headers(headers)
    assert refusal is not None
    assert refusal.status == 406


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=utf-8", " application/json "]
)
def test_post_with_a_json_body_passes(content_type: str) -> None:
    assert check_post_headers({"accept": BOTH, "content-type": content_type}) is None


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/json-seq"])
def test_post_with_another_content_type_is_415(content_type: str | None) -> None:
    headers = {"accept": BOTH}
    if content_type is not None:
        headers["content-type"] = content_type
    refusal = check_post_headers(headers)
    assert refusal is not None
    assert refusal.status == 415


def test_accept_is_checked_before_content_type() -> None:
    refusal = check_post_headers({"accept": "text/html", "content-type": "text/plain"})
    assert refusal is not None
    assert refusal.status == 406


@pytest.mark.parametrize(
    ("accept", "status"),
    [("text/event-stream", None), ("*/*", None), ("text/*", None), ("application/json", 406)],
)
def test_get_must_accept_an_event_stream(accept: str, status: int | None) -> None:
    refusal = check_get_headers({"accept": accept})
    assert (refusal.status if refusal else None) == status


def test_a_missing_protocol_version_header_means_2025_03_26() -> None:
    assert protocol_version_of({}) == "2025-03-26"


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2025-03-26", " 2025-11-25 "])
def test_a_known_protocol_version_header_is_taken(version: str) -> None:
    assert protocol_version_of({"mcp-protocol-version": version}) == version.strip()


@pytest.mark.parametrize("version", ["2024-11-05", "", "latest", "2025-11-25, 2025-06-18"])
def test_an_unknown_protocol_version_header_is_400(version: str) -> None:
    refusal = protocol_version_of({"mcp-protocol-version": version})
    assert isinstance(refusal, HttpResponse)
    assert refusal.status == 400
    assert "id" not in orjson.loads(refusal.body)


def test_an_sse_event_carries_id_retry_and_one_data_line() -> None:
    payload = orjson.dumps({"jsonrpc": "2.0", "method": "m", "params": {"t": "a\nb"}})
    framed = sse_event(payload, "s1:2", 500)
    assert framed == b"id: s1:2\nretry: 500\nevent: message\ndata: " + payload + b"\n\n"
    # orjson escapes newlines inside strings, so the data is one line.
    assert framed.count(b"\n") == 5


def test_a_priming_event_has_an_id_and_empty_data() -> None:
    assert sse_event(b"", "_:1", 1000) == b"id: _:1\nretry: 1000\ndata: \n\n"


def test_an_event_without_id_has_only_data() -> None:
    assert sse_event(b"{}") == b"event: message\ndata: {}\n\n"


def test_a_comment_is_ignored_by_sse_parsers() -> None:
    assert sse_comment("keepalive") == b": keepalive\n\n"


def test_json_and_error_responses_carry_their_status_and_json_body() -> None:
    ok = json_response({"a": 1}, 201, (("x-y", "z"),))
    assert ok.status == 201
    assert ok.headers == (("content-type", "application/json"), ("x-y", "z"))
    assert orjson.loads(ok.body) == {"a": 1}
    error = error_response(404, "Not Found", code=-32001, data={"k": 1})
    assert error.status == 404
    assert orjson.loads(error.body) == {
        "jsonrpc": "2.0",
        "error": {"code": -32001, "message": "Not Found", "data": {"k": 1}},
    }
