"""Whatever arrives, the ASGI app answers with a complete, well-formed HTTP response.

Hypothesis sends arbitrary bytes, arbitrary JSON, JSON-RPC-shaped messages (known and random
methods, params and ids, on a valid session or not) and arbitrary header sets, methods and paths
straight into the ASGI callable (no network). Each example gets a fresh app with one
initialized session. What must hold for every request:

- no exception escapes the app, and it never answers 500;
- exactly one `http.response.start`, with a status from the set the transport uses, then body
  messages ending with one whose `more_body` is false, and nothing after it (a stream the client
  left, which the app learnt from `http.disconnect`, may stop without that last message);
- a JSON body parses; every SSE event's data parses;
- a JSON-RPC error never carries `id: null` (no id is written when it is unknown);
- 202 has no body.
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_core.adapters.asgi import create_app
from mcp_core.core.services.context import Context
from mcp_core.core.services.server import McpServer

ALLOWED_STATUSES = {200, 202, 400, 403, 404, 405, 406, 409, 413, 415, 421}
VALID_SESSION = "<the session>"
MAX_BODY = 4096
TIMEOUT_S = 5.0

FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _server() -> McpServer:
    # Only handlers that finish on their own: nothing here waits on the client.
    server = McpServer("fuzz", page_size=2)

    @server.tool()
    def echo(text: str) -> str:
        return text

    @server.tool()
    def add(a: int, b: float = 1.5) -> float:
        return a + b

    @server.tool()
    async def chatty(ctx: Context, n: int = 1) -> dict[str, int]:
        await ctx.info("working")
        await ctx.report_progress(1, 2)
        return {"n": n}

    @server.tool()
    async def closes(ctx: Context) -> str:
        await ctx.close_stream()
        await ctx.info("after the close")
        return "closed"

    @server.resource("test://static")
    def static() -> str:
        return "static"

    @server.resource("test://items/{item}")
    def item(item: str) -> bytes:
        return item.encode()

    @server.prompt()
    def greet(name: str) -> str:
        return f"hi {name}"

    @server.completion("ref/prompt", "greet")
    def names(argument: str, value: str, context: dict[str, str]) -> list[str]:
        return [value + str(i) for i in range(150)]

    return server


# ---- strategies -----------------------------------------------------------------------------

# What orjson writes; larger integers are sent as raw text in RAW_BODIES.
wire_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | wire_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/roots/list_changed",
    "notifications/progress",
]

plausible_params = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["echo", "add", "chatty", "closes", "greet", "nope"]) | st.text(),
        "arguments": st.dictionaries(
            st.sampled_from(["text", "a", "b", "n", "name", "x"]), json_values, max_size=3
        )
        | json_values,
        "uri": st.sampled_from(["test://static", "test://items/1", "test://nope"]) | st.text(),
        "cursor": st.sampled_from(["eyJvIjoyfQ", "eyJvIjo5OX0", "!!"]) | json_values,
        "level": st.sampled_from(["debug", "error", "bogus"]) | json_values,
        "requestId": st.integers(0, 5) | json_values,
        "protocolVersion": st.sampled_from(["2025-11-25", "2025-06-18", "2099-01-01"]),
        "capabilities": st.just({}) | json_values,
        "ref": st.fixed_dictionaries(
            {"type": st.sampled_from(["ref/prompt", "ref/resource", "x"])},
            optional={"name": st.just("greet") | st.text(), "uri": st.text()},
        )
        | json_values,
        "argument": st.fixed_dictionaries(
            {"name": st.just("name") | json_values, "value": st.text() | json_values}
        )
        | json_values,
        "_meta": st.fixed_dictionaries(
            {},
            optional={
                "progressToken": st.text(max_size=4) | wire_ints,
                "io.modelcontextprotocol/protocolVersion": st.sampled_from(
                    ["2026-07-28", "2025-11-25"]
                ),
            },
        )
        | json_values,
    },
)

good_ids = st.integers(-5, 50) | st.text(max_size=6)
odd_ids = (
    st.none()
    | st.booleans()
    | wire_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(wire_ints, max_size=2)
    | st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)
)
short_text = st.text(max_size=8)

# Well-formed calls of everything the fuzz server offers, so most examples get past the
# envelope and reach the handlers, the streams and the store.
well_formed: list[st.SearchStrategy[tuple[str, dict[str, Any] | None]]] = [
    st.tuples(st.just("ping"), st.none()),
    st.tuples(st.just("tools/list"), st.just({}) | st.just({"cursor": "eyJvIjoyfQ"})),
    st.tuples(
        st.just("tools/call"),
        st.fixed_dictionaries(
            {"name": st.just("echo"), "arguments": st.fixed_dictionaries({"text": short_text})}
        ),
    ),
    st.tuples(
        st.just("tools/call"),
        st.fixed_dictionaries(
            {
                "name": st.just("add"),
                "arguments": st.fixed_dictionaries(
                    {"a": st.integers(-9, 9), "b": st.floats(-9, 9)}
                ),
            }
        ),
    ),
    st.tuples(
        st.just("tools/call"),
        st.fixed_dictionaries(
            {
                "name": st.just("chatty"),
                "arguments": st.fixed_dictionaries({"n": st.integers(0, 9)}),
                "_meta": st.fixed_dictionaries(
                    {"progressToken": st.just("tok") | st.integers(0, 9)}
                ),
            }
        ),
    ),
    st.tuples(st.just("tools/call"), st.just({"name": "closes"})),
    st.tuples(
        st.sampled_from(["resources/list", "resources/templates/list", "prompts/list"]), st.just({})
    ),
    st.tuples(
        st.sampled_from(["resources/read", "resources/subscribe", "resources/unsubscribe"]),
        st.fixed_dictionaries(
            {"uri": st.just("test://static") | short_text.map("test://items/{}".format)}
        ),
    ),
    st.tuples(
        st.just("prompts/get"),
        st.fixed_dictionaries(
            {"name": st.just("greet"), "arguments": st.fixed_dictionaries({"name": short_text})}
        ),
    ),
    st.tuples(
        st.just("completion/complete"),
        st.fixed_dictionaries(
            {
                "ref": st.just({"type": "ref/prompt", "name": "greet"}),
                "argument": st.fixed_dictionaries({"name": st.just("name"), "value": short_text}),
            }
        ),
    ),
    st.tuples(
        st.just("logging/setLevel"),
        st.fixed_dictionaries({"level": st.sampled_from(["debug", "error"])}),
    ),
    st.tuples(
        st.just("notifications/cancelled"), st.fixed_dictionaries({"requestId": st.integers(0, 9)})
    ),
    st.tuples(st.just("notifications/initialized"), st.none()),
]


@st.composite
def jsonrpc_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed messages, each part sometimes replaced by something odd."""
    message: dict[str, Any] = {}
    if draw(st.integers(0, 19)):
        message["jsonrpc"] = "2.0"
    elif draw(st.booleans()):
        message["jsonrpc"] = draw(json_values)
    kind = draw(st.integers(0, 9))
    if kind < 8:
        if draw(st.integers(0, 3)):
            method, params = draw(st.one_of(well_formed))
        else:
            method = draw(st.sampled_from(METHODS) | short_text | json_values)
            params = draw(plausible_params | json_values)
        message["method"] = method
        if params is not None and draw(st.integers(0, 9)):
            message["params"] = params
        notification = isinstance(method, str) and method.startswith("notifications/")
        if not notification and draw(st.integers(0, 9)):
            message["id"] = draw(good_ids if draw(st.integers(0, 5)) else odd_ids)
    else:
        message["id"] = draw(good_ids if draw(st.integers(0, 3)) else odd_ids)
        if kind < 9:
            message["result"] = draw(json_values)
        else:
            message["error"] = draw(
                st.fixed_dictionaries({"code": wire_ints | json_values, "message": st.text()})
                | json_values
            )
    return message


# JSON that orjson would not write: ids beyond 64 bits, floats out of range, deep nesting.
RAW_BODIES = [
    b'{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":-9223372036854775809,"method":"tools/list"}',
    b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}',
    b"[" * 1500 + b"]" * 1500,
    b'{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}',
    b"\xef\xbb\xbf" + b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
]

bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(orjson.dumps),
    jsonrpc_shaped().map(orjson.dumps),
    jsonrpc_shaped().map(orjson.dumps),
    st.lists(jsonrpc_shaped(), max_size=2).map(orjson.dumps),
    st.integers(MAX_BODY - 10, MAX_BODY + 10).map(lambda n: b" " * n),
    st.sampled_from(RAW_BODIES),
)

header_values = {
    "host": st.sampled_from(["localhost:8000", "127.0.0.1", "[::1]:1", "evil.example", ""]),
    "origin": st.sampled_from(["http://localhost:3000", "http://evil.example", "null"]),
    "accept": st.sampled_from(
        [
            "application/json, text/event-stream",
            "*/*",
            "text/event-stream",
            "application/json",
            "text/*;q=0",
        ]
    ),
    "content-type": st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain"]
    ),
    "mcp-protocol-version": st.sampled_from(
        ["2025-11-25", "2025-06-18", "2025-03-26", "2026-07-28", "junk"]
    ),
    "mcp-session-id": st.sampled_from([VALID_SESSION, VALID_SESSION, "0" * 32, ""]),
    "last-event-id": st.sampled_from(["s1:1", "s1:2", "_:1", "_:2", "s9:9", ""]),
    "content-length": st.sampled_from(["0", "5", "99999999", "-1", "x"]),
}


@st.composite
def header_sets(draw: st.DrawFn) -> list[tuple[str, str | bytes]]:
    headers: list[tuple[str, str | bytes]] = []
    for name, values in header_values.items():
        # Mostly the headers a real client sends; sometimes missing, sometimes doubled.
        include = draw(st.integers(0, 9))
        wanted = name in (
            "host",
            "accept",
            "content-type",
            "mcp-session-id",
            "mcp-protocol-version",
        )
        if (wanted and include > 1) or (not wanted and include > 7):
            headers.append((name, draw(values)))
        if include == 9 and draw(st.booleans()):
            headers.append((name, draw(values)))
    if draw(st.integers(0, 9)) == 0:
        headers.append((draw(st.text(min_size=1, max_size=10)), draw(st.binary(max_size=20))))
    return headers


def mostly(common: list[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One of `common` (repeat an item to weigh it), or once in a while anything `odd` draws."""
    return st.sampled_from([*common, ""]).flatmap(lambda v: st.just(v) if v else odd)


requests = st.fixed_dictionaries(
    {
        "method": mostly(
            ["POST"] * 12 + ["GET"] * 4 + ["DELETE", "PUT", "HEAD", "OPTIONS"], st.text(max_size=8)
        ),
        "path": mostly(["/mcp"] * 16 + ["/mcp/", "/healthz", "/", "/mcpx"], st.text(max_size=10)),
        "headers": header_sets(),
        "body": bodies,
    }
)


# ---- running and checking one example -------------------------------------------------------


def _initialize_body() -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {"sampling": {}, "roots": {}},
                "clientInfo": {"name": "fuzz", "version": "0"},
            },
        }
    )


async def _exchange(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[list[dict[str, Any]], bool]:
    """What the app sent, and whether it learnt that the client left."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "replace"),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        # The body, then the client leaves (a standalone stream would otherwise never end).
        nonlocal received
        received += 1
        if received == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(TIMEOUT_S):
        await app(scope, receive, send)
    return sent, received > 1


def _check_jsonrpc(payload: Any) -> None:
    if isinstance(payload, dict):
        assert payload.get("id", "absent") is not None, payload
        if "error" in payload:
            assert isinstance(payload["error"].get("code"), int), payload
            assert isinstance(payload["error"].get("message"), str), payload


def _check_response(sent: list[dict[str, Any]], client_left: bool) -> None:
    assert sent, "the app sent nothing"
    start, *body_messages = sent
    assert start["type"] == "http.response.start", sent
    status = start["status"]
    assert status in ALLOWED_STATUSES, (status, sent)
    assert body_messages, "no body message"
    assert all(m["type"] == "http.response.body" for m in body_messages), sent
    assert all(m.get("more_body", False) for m in body_messages[:-1]), sent
    ended = not body_messages[-1].get("more_body", False)
    assert ended or client_left, "the response never ended"
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in body_messages)
    if "content-length" in headers:
        assert int(headers["content-length"]) == len(body)
    if status == 202:
        assert body == b""
    kind = headers.get("content-type", "")
    if kind == "application/json":
        _check_jsonrpc(orjson.loads(body))
    elif kind == "text/event-stream":
        assert status == 200
        for line in body.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: ":
                _check_jsonrpc(orjson.loads(line[len(b"data: ") :]))
    else:
        assert body == b"", (status, kind, body)


async def _run(examples: list[dict[str, Any]]) -> None:
    app = create_app(_server(), max_body_bytes=MAX_BODY)
    opened, _ = await _exchange(
        app,
        "POST",
        "/mcp",
        [
            (b"host", b"localhost:8000"),
            (b"accept", b"application/json, text/event-stream"),
            (b"content-type", b"application/json"),
        ],
        _initialize_body(),
    )
    session_id = dict(opened[0]["headers"])[b"mcp-session-id"]
    for example in examples:
        headers = [
            (
                name.encode("utf-8"),
                session_id
                if value == VALID_SESSION
                else value
                if isinstance(value, bytes)
                else value.encode(),
            )
            for name, value in example["headers"]
        ]
        sent, client_left = await _exchange(
            app, example["method"], example["path"], headers, example["body"]
        )
        _check_response(sent, client_left)


@FUZZ_SETTINGS
@given(examples=st.lists(requests, min_size=1, max_size=4))
def test_the_asgi_app_answers_anything_with_a_well_formed_response(
    examples: list[dict[str, Any]],
) -> None:
    anyio.run(_run, examples)


@FUZZ_SETTINGS
@given(messages=st.lists(jsonrpc_shaped(), min_size=1, max_size=6))
def test_json_rpc_shaped_messages_on_a_valid_session_are_answered_well_formed(
    messages: list[dict[str, Any]],
) -> None:
    examples = [
        {
            "method": "POST",
            "path": "/mcp",
            "headers": [
                ("host", "localhost:8000"),
                ("accept", "application/json, text/event-stream"),
                ("content-type", "application/json"),
                ("mcp-session-id", VALID_SESSION),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            "body": orjson.dumps(message),
        }
        for message in messages
    ]
    anyio.run(_run, examples)
