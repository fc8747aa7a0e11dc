"""Streamable HTTP, client side: requests built and responses classified as values."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.http.client import (
    ACCEPT_POST,
    Accepted,
    ClientRequest,
    ClientSessionState,
    GiveUp,
    HttpFailure,
    InvalidSessionId,
    JsonMessage,
    OpenStream,
    ReconnectPolicy,
    Resume,
    SessionClosed,
    SessionExpired,
    StreamNotOffered,
    answer_of,
    check_session_id,
    classify_delete_response,
    classify_get_response,
    classify_post_response,
    decide_reconnect,
    delete_request,
    get_request,
    is_event_stream,
    is_valid_session_id,
    message_of_event,
    post_request,
)
from mcp_core.core.http.sse_parser import SseEvent, parse_sse
from mcp_core.core.http.streamable import check_get_headers, check_post_headers, sse_event
from mcp_core.core.protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    Response,
    encode,
)

INITIALIZE = Request(id=0, method="initialize", params={"protocolVersion": "2025-11-25"})
CALL = Request(id=7, method="tools/call", params={"name": "echo"})
INITIALIZED = Notification(method="notifications/initialized")
ANSWER = Response(id=3, result={})
READY = ClientSessionState(session_id="abc-123", protocol_version="2025-11-25")
JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream"}


def _headers(request: ClientRequest) -> dict[str, str]:
    return dict(request.headers)


# ---- session ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("abc-123", True),
        ("!~", True),
        ("a" * 200, True),
        ("", False),
        ("has space", False),
        ("tab\t", False),
        ("del\x7f", False),
        ("nul\x00", False),
        ("é", False),
        ("line\nbreak", False),
    ],
)
def test_session_ids_are_visible_ascii_only(value: str, ok: bool) -> None:
    assert is_valid_session_id(value) is ok
    if ok:
        assert check_session_id(value) == value
    else:
        with pytest.raises(InvalidSessionId, match="visible ASCII"):
            check_session_id(value)


@given(st.text(max_size=20))
def test_session_id_validity_is_exactly_the_visible_ascii_range(value: str) -> None:
    expected = bool(value) and all(0x21 <= ord(c) <= 0x7E for c in value)
    assert is_valid_session_id(value) is expected


def test_a_session_state_refuses_an_invalid_id() -> None:
    with pytest.raises(InvalidSessionId):
        ClientSessionState(session_id="bad id")


# ---- requests -----------------------------------------------------------------------------------


def test_initialize_is_posted_without_session_or_version() -> None:
    request = post_request(INITIALIZE, READY)
    assert request.method == "POST"
    assert _headers(request) == {"accept": ACCEPT_POST, "content-type": "application/json"}
    assert orjson.loads(request.body) == INITIALIZE.to_wire()


@pytest.mark.parametrize("message", [CALL, INITIALIZED, ANSWER])
def test_later_posts_carry_session_and_version(message: Message) -> None:
    headers = _headers(post_request(message, READY))
    assert headers == {
        "accept": ACCEPT_POST,
        "content-type": "application/json",
        "mcp-session-id": "abc-123",
        "mcp-protocol-version": "2025-11-25",
    }


def test_a_sessionless_server_gets_only_the_version() -> None:
    state = ClientSessionState(protocol_version="2025-06-18")
    headers = _headers(post_request(CALL, state))
    assert "mcp-session-id" not in headers
    assert headers["mcp-protocol-version"] == "2025-06-18"


def test_a_post_of_raw_bytes_is_inspected_for_initialize() -> None:
    assert "mcp-session-id" not in _headers(post_request(encode(INITIALIZE), READY))
    assert "mcp-session-id" in _headers(post_request(encode(CALL), READY))


def test_extra_headers_come_last() -> None:
    extra = (("authorization", "Bearer t"),)
    assert post_request(CALL, READY, extra_headers=extra).headers[-1] == extra[0]
    assert post_request(INITIALIZE, READY, extra_headers=extra).headers[-1] == extra[0]
    assert get_request(READY, extra_headers=extra).header("authorization") == "Bearer t"


def test_our_posts_pass_the_server_s_own_header_checks() -> None:
    for message in (INITIALIZE, CALL, INITIALIZED):
        assert check_post_headers(_headers(post_request(message, READY))) is None
    assert check_get_headers(_headers(get_request(READY))) is None


def test_get_opens_the_stream_and_resumes_with_last_event_id() -> None:
    assert _headers(get_request(READY)) == {
        "accept": "text/event-stream",
        "mcp-session-id": "abc-123",
        "mcp-protocol-version": "2025-11-25",
    }
    resumed = get_request(READY, last_event_id="s:4")
    assert resumed.header("last-event-id") == "s:4"
    assert get_request(READY, last_event_id="").header("last-event-id") is None


def test_delete_carries_the_session_and_needs_one() -> None:
    request = delete_request(READY)
    assert request.method == "DELETE"
    assert request.header("mcp-session-id") == "abc-123"
    assert request.body == b""
    with pytest.raises(ValueError, match="no session id"):
        delete_request(ClientSessionState())


# ---- POST responses -----------------------------------------------------------------------------


def _json(payload: object) -> bytes:
    return orjson.dumps(payload)


CALL_RESULT = _json({"jsonrpc": "2.0", "id": 7, "result": {"content": []}})
CALL_ERROR = _json({"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "bad"}})
HTTP_ERROR = _json({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Bad Request: x"}})


@pytest.mark.parametrize(
    ("sent", "status", "headers", "body", "expected"),
    [
        (INITIALIZED, 202, {}, b"", Accepted()),
        (ANSWER, 202, {}, b"", Accepted()),
        (INITIALIZED, 200, {}, b"", Accepted()),
        (INITIALIZED, 204, {}, b"", Accepted()),
        (CALL, 200, SSE_HEADERS, b"", OpenStream()),
        (CALL, 200, {"content-type": "text/event-stream; charset=utf-8"}, b"", OpenStream()),
        (
            CALL,
            200,
            {"content-type": "application/json; charset=utf-8"},
            CALL_RESULT,
            JsonMessage(message=Response(id=7, result={"content": []})),
        ),
        (
            CALL,
            200,
            JSON_HEADERS,
            CALL_ERROR,
            JsonMessage(message=ErrorResponse(id=7, code=-32602, message="bad")),
        ),
    ],
)
def test_post_responses_that_succeed(
    sent: Message, status: int, headers: dict[str, str], body: bytes, expected: object
) -> None:
    assert classify_post_response(sent, status, headers, body, session_id="abc-123") == expected


def test_the_initialize_response_hands_over_the_session_id() -> None:
    body = _json({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25"}})
    headers = {**JSON_HEADERS, "mcp-session-id": "new-1"}
    outcome = classify_post_response(INITIALIZE, 200, headers, body)
    assert isinstance(outcome, JsonMessage)
    assert outcome.session_id == "new-1"
    stream = classify_post_response(INITIALIZE, 200, {**SSE_HEADERS, "mcp-session-id": "new-2"})
    assert stream == OpenStream(session_id="new-2")


@pytest.mark.parametrize("bad", ["has space", "", "é"])
def test_an_invalid_session_id_from_the_server_is_refused(bad: str) -> None:
    outcome = classify_post_response(INITIALIZE, 200, {**SSE_HEADERS, "mcp-session-id": bad})
    assert isinstance(outcome, HttpFailure)
    assert "visible ASCII" in outcome.reason


def test_a_404_with_a_session_means_initialize_again() -> None:
    outcome = classify_post_response(CALL, 404, JSON_HEADERS, HTTP_ERROR, session_id="abc-123")
    assert outcome == SessionExpired(session_id="abc-123")
    assert classify_get_response(404, {}, session_id="s") == SessionExpired(session_id="s")
    # initialize starts a session: its 404 is the endpoint's, not an expired session's.
    assert isinstance(classify_post_response(INITIALIZE, 404, {}, session_id="s"), HttpFailure)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 406, 409, 413, 415, 429, 500, 503])
def test_http_errors_carry_the_json_rpc_error_body(status: int) -> None:
    outcome = classify_post_response(CALL, status, JSON_HEADERS, HTTP_ERROR)
    assert isinstance(outcome, HttpFailure)
    assert outcome.status == status
    assert outcome.error == ErrorResponse(id=None, code=-32600, message="Bad Request: x")
    assert outcome.reason.startswith(f"POST tools/call failed: HTTP {status}")
    assert "Bad Request: x (-32600)" in outcome.reason


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b""),
        ({"content-type": "text/html"}, b"<h1>oops</h1>"),
        (JSON_HEADERS, b"not json"),
        (JSON_HEADERS, CALL_RESULT),  # a result, not an error
    ],
)
def test_http_errors_without_a_json_rpc_error_still_fail(
    headers: dict[str, str], body: bytes
) -> None:
    outcome = classify_post_response(CALL, 502, headers, body)
    assert outcome == HttpFailure(status=502, reason="POST tools/call failed: HTTP 502 Bad Gateway")


@pytest.mark.parametrize(
    ("sent", "status", "headers", "body", "reason"),
    [
        (CALL, 202, {}, b"", "must be answered with 200, got 202"),
        (CALL, 200, {"content-type": "text/html"}, b"x", "unexpected content type 'text/html'"),
        (CALL, 200, {}, b"{}", "unexpected content type '(none)'"),
        (CALL, 200, JSON_HEADERS, b"{", "not a JSON-RPC message"),
        (CALL, 200, JSON_HEADERS, _json([]), "not a JSON-RPC message"),
        (CALL, 200, JSON_HEADERS, encode(INITIALIZED), "expected the response, got a Notif"),
        (CALL, 200, JSON_HEADERS, encode(ANSWER), "answers request 3, not 7"),
    ],
)
def test_malformed_answers_fail_clearly(
    sent: Message, status: int, headers: dict[str, str], body: bytes, reason: str
) -> None:
    outcome = classify_post_response(sent, status, headers, body)
    assert isinstance(outcome, HttpFailure)
    assert outcome.status == 0
    assert reason in outcome.reason


@pytest.mark.parametrize("status", [200, 202, 204])
def test_any_2xx_to_a_notification_is_accepted_and_its_body_ignored(status: int) -> None:
    assert classify_post_response(INITIALIZED, status, JSON_HEADERS, b"{}") == Accepted()


def test_an_error_without_id_answers_the_request() -> None:
    body = _json({"jsonrpc": "2.0", "error": {"code": -32603, "message": "boom"}})
    assert answer_of(CALL, body) == ErrorResponse(id=None, code=-32603, message="boom")


def test_only_a_200_event_stream_is_read_as_a_stream() -> None:
    assert is_event_stream(200, SSE_HEADERS)
    assert not is_event_stream(200, JSON_HEADERS)
    assert not is_event_stream(400, SSE_HEADERS)


# ---- GET and DELETE responses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, SSE_HEADERS, OpenStream()),
        (405, {}, StreamNotOffered()),
        (404, {}, HttpFailure(status=404, reason="GET failed: HTTP 404 Not Found")),
        (
            406,
            {},
            HttpFailure(status=406, reason="GET failed: HTTP 406 Not Acceptable"),
        ),
        (
            200,
            JSON_HEADERS,
            HttpFailure(status=0, reason="GET: expected an event stream, got 'application/json'"),
        ),
    ],
)
def test_get_responses(status: int, headers: dict[str, str], expected: object) -> None:
    assert classify_get_response(status, headers) == expected


@pytest.mark.parametrize("status", [200, 202, 204, 404, 405])
def test_delete_ends_the_session_or_finds_nothing_to_end(status: int) -> None:
    assert classify_delete_response(status, {}) == SessionClosed(status=status)


def test_a_failed_delete_is_reported() -> None:
    outcome = classify_delete_response(500, JSON_HEADERS, HTTP_ERROR)
    assert isinstance(outcome, HttpFailure)
    assert outcome.error is not None


# ---- messages on a stream -----------------------------------------------------------------------


def test_a_post_stream_delivers_requests_then_the_response() -> None:
    ping = Request(id="s1", method="ping")
    stream = (
        sse_event(b"", "e:0", 1000) + sse_event(encode(ping), "e:1") + sse_event(CALL_RESULT, "e:2")
    )
    messages = [message_of_event(event) for event in parse_sse(stream)]
    assert messages == [None, ping, Response(id=7, result={"content": []})]


def test_a_priming_event_carries_no_message() -> None:
    assert message_of_event(SseEvent(data="", id="x")) is None


# ---- reconnection -------------------------------------------------------------------------------


def test_a_stream_with_an_event_id_is_resumed_after_the_server_s_retry() -> None:
    decision = decide_reconnect(now=100.0, last_event_id="e:2", retry_ms=2500, attempts=0)
    assert decision == Resume(last_event_id="e:2", delay=2.5, at=102.5, attempt=1)


def test_without_a_retry_the_backoff_grows_to_its_cap() -> None:
    policy = ReconnectPolicy(max_attempts=10, initial_delay=1.0, multiplier=2.0, max_delay=5.0)
    delays = [
        decide_reconnect(now=0, last_event_id="e", retry_ms=None, attempts=n, policy=policy)
        for n in range(5)
    ]
    assert [d.delay for d in delays if isinstance(d, Resume)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_stream_without_an_event_id_fails_the_request() -> None:
    decision = decide_reconnect(now=0, last_event_id="", retry_ms=1000, attempts=0)
    assert isinstance(decision, GiveUp)
    assert "no event id" in decision.reason


def test_the_standalone_stream_reopens_even_without_an_event_id() -> None:
    decision = decide_reconnect(
        now=0, last_event_id="", retry_ms=None, attempts=0, awaiting_response=False
    )
    assert decision == Resume(last_event_id=None, delay=1.0, at=1.0, attempt=1)


def test_attempts_are_bounded() -> None:
    policy = ReconnectPolicy(max_attempts=3)
    assert isinstance(
        decide_reconnect(now=0, last_event_id="e", retry_ms=0, attempts=2, policy=policy), Resume
    )
    decision = decide_reconnect(now=0, last_event_id="e", retry_ms=0, attempts=3, policy=policy)
    assert isinstance(decision, GiveUp)
    assert "after 3 attempts" in decision.reason
    assert "'e'" in decision.reason


def test_negative_attempts_and_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        decide_reconnect(now=0, last_event_id="e", retry_ms=None, attempts=-1)
    with pytest.raises(ValueError, match="max_attempts"):
        ReconnectPolicy(max_attempts=0)


@given(
    now=st.floats(0, 1e9),
    last_event_id=st.text(max_size=5),
    retry_ms=st.none() | st.integers(0, 10**7),
    attempts=st.integers(0, 20),
    awaiting=st.booleans(),
)
def test_reconnect_decisions_are_total_and_consistent(
    now: float, last_event_id: str, retry_ms: int | None, attempts: int, awaiting: bool
) -> None:
    policy = ReconnectPolicy()
    decision = decide_reconnect(
        now=now,
        last_event_id=last_event_id,
        retry_ms=retry_ms,
        attempts=attempts,
        awaiting_response=awaiting,
        policy=policy,
    )
    resumable = (last_event_id or not awaiting) and attempts < policy.max_attempts
    assert isinstance(decision, Resume if resumable else GiveUp)
    if isinstance(decision, Resume):
        assert decision.at == now + decision.delay
        assert decision.attempt == attempts + 1
        assert decision.last_event_id == (last_event_id or None)
        if retry_ms is not None:
            assert decision.delay == retry_ms / 1000
        else:
            assert 0 <= decision.delay <= policy.max_delay
