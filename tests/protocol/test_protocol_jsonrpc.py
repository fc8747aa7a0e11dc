"""The JSON-RPC 2.0 envelope with MCP's restrictions (2025-11-25 Base Protocol > Messages)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core.core.protocol.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    McpError,
)
from mcp_core.core.protocol.jsonrpc import (
    ErrorResponse,
    InvalidMessage,
    Notification,
    Request,
    Response,
    decode,
    encode,
    error_payload,
    parse_message,
)


def _refusal(value: Any) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        parse_message(value)
    return caught.value


# ---- requests and their ids -----------------------------------------------------------------


@pytest.mark.parametrize("request_id", ["abc", "", 0, 7, -3, 2**53])
def test_string_and_integer_ids_make_requests(request_id: str | int) -> None:
    message = parse_message({"jsonrpc": "2.0", "id": request_id, "method": "tools/list"})
    assert message == Request(id=request_id, method="tools/list", params=None)


@pytest.mark.parametrize("bad_id", [None, True, False, 1.5, 1.0, [], {}, [1]])
def test_request_with_an_id_that_is_not_a_string_or_integer_is_refused_without_an_id(
    bad_id: Any,
) -> None:
    refusal = _refusal({"jsonrpc": "2.0", "id": bad_id, "method": "ping"})
    assert refusal.response is not None
    assert refusal.response.code == INVALID_REQUEST
    assert refusal.response.id is None
    assert "id" not in refusal.response.to_wire()


def test_a_bool_id_is_not_mistaken_for_an_integer() -> None:
    # bool is an int subclass in Python; `true` must not become request id 1.
    refusal = _refusal({"jsonrpc": "2.0", "id": True, "method": "ping"})
    assert refusal.response is not None
    assert refusal.response.id is None


def test_params_are_kept_when_they_are_an_object() -> None:
    message = parse_message(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}
    )
    assert isinstance(message, Request)
    assert message.params == {"name": "x"}


@pytest.mark.parametrize("params", [[1, 2], "x", 3, True])
def test_request_params_that_are_not_an_object_are_refused_with_its_id(params: Any) -> None:
    refusal = _refusal({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": params})
    assert refusal.response is not None
    assert refusal.response.code == INVALID_REQUEST
    assert refusal.response.id == 9


def test_notification_params_that_are_not_an_object_are_never_answered() -> None:
    refusal = _refusal({"jsonrpc": "2.0", "method": "notifications/x", "params": [1]})
    assert refusal.response is None


def test_null_params_count_as_absent() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": "a", "method": "ping", "params": None})
    assert message == Request(id="a", method="ping", params=None)


@pytest.mark.parametrize("method", [1, None, ["x"], {"a": 1}])
def test_a_method_that_is_not_a_string_is_refused(method: Any) -> None:
    value: dict[str, Any] = {"jsonrpc": "2.0", "id": 4, "method": method}
    if method is None:
        # No method at all: not a request, notification or response.
        value.pop("method")
    refusal = _refusal(value)
    assert refusal.response is not None
    assert refusal.response.code == INVALID_REQUEST
    assert refusal.response.id == 4


@pytest.mark.parametrize("version", [None, "1.0", "2", 2.0])
def test_a_request_without_jsonrpc_2_is_refused_with_its_id(version: Any) -> None:
    value: dict[str, Any] = {"id": 5, "method": "ping"}
    if version is not None:
        value["jsonrpc"] = version
    refusal = _refusal(value)
    assert refusal.response is not None
    assert refusal.response.code == INVALID_REQUEST
    assert refusal.response.id == 5


def test_a_notification_without_jsonrpc_2_is_never_answered() -> None:
    assert _refusal({"jsonrpc": "1.0", "method": "notifications/x"}).response is None


# ---- batches and non-objects ----------------------------------------------------------------


@pytest.mark.parametrize(
    "batch",
    [[], [{"jsonrpc": "2.0", "id": 1, "method": "ping"}], [{"jsonrpc": "2.0", "method": "n"}]],
)
def test_a_json_array_is_refused_as_a_batch_with_no_id(batch: list[Any]) -> None:
    refusal = _refusal(batch)
    assert refusal.response is not None
    assert refusal.response.code == INVALID_REQUEST
    assert refusal.response.id is None
    assert "batch" in refusal.reason


@pytest.mark.parametrize("value", ["ping", 3, None, True, 2.5])
def test_a_scalar_is_refused_with_no_id(value: Any) -> None:
    refusal = _refusal(value)
    assert refusal.response is not None
    assert refusal.response.code == INVALID_REQUEST
    assert refusal.response.id is None


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe", b'{"a": 1,}', b"[1, 2"])
def test_unparsable_input_is_a_parse_error_with_no_id(raw: bytes) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(raw)
    response = caught.value.response
    assert response is not None
    assert response.code == PARSE_ERROR
    assert response.id is None
    assert response.to_wire() == {
        "jsonrpc": "2.0",
        "error": {"code": PARSE_ERROR, "message": "Parse error"},
    }


# ---- notifications and responses ------------------------------------------------------------


def test_a_message_without_id_is_a_notification() -> None:
    message = parse_message({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert message == Notification(method="notifications/initialized", params=None)


def test_responses_are_parsed_with_their_result() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": 3, "result": {"roots": []}})
    assert message == Response(id=3, result={"roots": []})


def test_error_responses_are_parsed_with_code_message_and_data() -> None:
    message = parse_message(
        {"jsonrpc": "2.0", "id": "r", "error": {"code": -1, "message": "no", "data": {"x": 1}}}
    )
    assert message == ErrorResponse(id="r", code=-1, message="no", data={"x": 1})


def test_an_error_response_without_a_usable_id_keeps_id_none() -> None:
    message = parse_message({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "m"}})
    assert isinstance(message, ErrorResponse)
    assert message.id is None


@pytest.mark.parametrize(
    "value",
    [
        {"jsonrpc": "2.0", "id": None, "result": {}},
        {"jsonrpc": "2.0", "id": 1, "result": [1]},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": "x", "message": "m"}},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": True, "message": "m"}},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": 1}},
    ],
)
def test_malformed_responses_are_never_answered(value: dict[str, Any]) -> None:
    # Answering a response would start a ping-pong of errors between the peers.
    assert _refusal(value).response is None


# ---- encoding -------------------------------------------------------------------------------


def test_encoders_write_the_wire_shape() -> None:
    assert orjson.loads(encode(Request(id=1, method="ping"))) == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "ping",
    }
    assert orjson.loads(encode(Notification(method="n", params={"a": 1}))) == {
        "jsonrpc": "2.0",
        "method": "n",
        "params": {"a": 1},
    }
    assert orjson.loads(encode(Response(id="x", result={}))) == {
        "jsonrpc": "2.0",
        "id": "x",
        "result": {},
    }
    assert orjson.loads(encode({"jsonrpc": "2.0", "method": "raw"})) == {
        "jsonrpc": "2.0",
        "method": "raw",
    }


def test_an_error_payload_never_writes_a_null_id_or_null_data() -> None:
    assert error_payload(None, METHOD_NOT_FOUND, "nope") == {
        "jsonrpc": "2.0",
        "error": {"code": METHOD_NOT_FOUND, "message": "nope"},
    }
    assert error_payload(0, INTERNAL_ERROR, "x", {"k": 1}) == {
        "jsonrpc": "2.0",
        "id": 0,
        "error": {"code": INTERNAL_ERROR, "message": "x", "data": {"k": 1}},
    }


def test_mcp_error_carries_code_message_and_data() -> None:
    error = McpError(-32002, "Resource not found", {"uri": "a://b"})
    assert error.to_error() == {
        "code": -32002,
        "message": "Resource not found",
        "data": {"uri": "a://b"},
    }
    assert McpError(1, "m").to_error() == {"code": 1, "message": "m"}


# orjson writes 64-bit integers, and reads nothing larger as an integer.
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_ids = st.one_of(st.text(max_size=8), _int64)
_params = st.one_of(st.none(), st.dictionaries(st.text(max_size=5), _int64 | st.text(max_size=5)))


@settings(derandomize=True)
@given(request_id=_ids, method=st.text(max_size=20), params=_params)
def test_requests_round_trip_through_encode_and_parse(
    request_id: str | int, method: str, params: dict[str, Any] | None
) -> None:
    original = Request(id=request_id, method=method, params=params)
    assert parse_message(decode(encode(original))) == original


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(derandomize=True)
@given(value=_json | st.dictionaries(st.sampled_from(["jsonrpc", "id", "method"]), _json))
def test_any_json_value_parses_or_is_refused_and_no_answer_has_a_null_id(value: Any) -> None:
    try:
        message = parse_message(value)
    except InvalidMessage as exc:
        if exc.response is not None:
            wire = exc.response.to_wire()
            assert wire.get("id", "absent") is not None
            assert wire["error"]["code"] == INVALID_REQUEST
        return
    assert isinstance(message, (Request, Notification, Response, ErrorResponse))
