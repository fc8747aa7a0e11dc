"""A real server for the official SDK clients: a test `McpServer` under uvicorn on 127.0.0.1.

The interop tests drive the official clients over real sockets, so the server runs the way a
deployment runs it: `create_app(server)` under uvicorn, here in a background thread with its
own event loop. The listening socket is bound in this process to a port the OS picks and handed
to uvicorn, so no other process can take the port between choosing and binding it. Startup is
awaited with a deadline, and every server a test started is shut down when the test ends,
passed or failed (graceful first, then forced, both bounded).

What the server saw is recorded on its side, so tests assert the wire and not only what a
client library chose to report:

- `RecordingApp` wraps the ASGI app and keeps one `Exchange` per HTTP request: method, the
  request headers, the body (the JSON-RPC message), and the status, headers and body
  answered. That is how a test sees that a `server/discover` probe was answered 400 and
  followed by `initialize`, or that closing a client sent DELETE with its session id.
- `Probe` is what the tool functions report (a tool started, was cancelled, the client said
  its roots changed). Tools run on the server's thread, so it is built on `threading.Event`.

The test server (`build_server`) has one tool, resource or prompt per feature the clients are
checked against, and a small page size, so listing its tools takes several pages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import anyio
import pytest
import uvicorn

from mcp_core.adapters.asgi import McpAsgiApp, create_app
from mcp_core.core import Completion, Context, McpServer, ToolError

__all__ = ["Exchange", "LiveServer", "Probe", "RecordingApp", "build_server"]

STARTUP_TIMEOUT = 10.0  # seconds for uvicorn to start listening
SHUTDOWN_TIMEOUT = 5.0  # seconds for each of the graceful and the forced shutdown
CANCEL_WAIT = 20.0  # how long `wait_for_cancel` waits; a test fails long before that
PAGE_SIZE = 4
GREETING = "Hello from mcp-core"
LOGO = b"\x89PNG\r\n\x1a\n-not-really-a-png"
NAMES = ("alice", "albert", "bob", "carol")
ITEM_IDS = ("a1", "a2", "b7")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


# ---- what the server saw ----------------------------------------------------------------


@dataclasses.dataclass
class Exchange:
    """One HTTP request the server received, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    status: int | None = None
    response_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    response_body: bytes = b""

    @property
    def message(self) -> Any:
        """The parsed JSON body (a JSON-RPC message), or None."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def answer(self) -> Any:
        """The parsed JSON answer of a JSON (not event-stream) response, or None."""
        if not self.response_headers.get("content-type", "").startswith("application/json"):
            return None
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    @property
    def rpc_method(self) -> str | None:
        """The JSON-RPC method of a POSTed request or notification ("response" for answers)."""
        message = self.message
        if not isinstance(message, dict):
            return None
        if "method" in message:
            return str(message["method"])
        return "response" if "result" in message or "error" in message else None

    @property
    def session_id(self) -> str | None:
        return self.headers.get("mcp-session-id")


class RecordingApp:
    """An ASGI wrapper that records every HTTP exchange of the app it wraps."""

    def __init__(self, app: McpAsgiApp) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Any],
        send: Callable[[Message], Any],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        exchange = Exchange(method=scope["method"], path=scope["path"], headers=headers)
        self.exchanges.append(exchange)

        async def recording_receive() -> Message:
            message: Message = await receive()
            if message["type"] == "http.request":
                exchange.body += message.get("body", b"")
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.response_headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                exchange.response_body += message.get("body", b"")
            await send(message)

        await self.app(scope, recording_receive, recording_send)


class Probe:
    """What the test server's handlers observed; safe to read from the test's thread."""

    def __init__(self) -> None:
        self.cancel_started = threading.Event()
        self.cancelled = threading.Event()
        self.roots_changed = threading.Event()


# ---- the test server ----------------------------------------------------------------------


@dataclasses.dataclass
class Sum:
    """A structured tool result: the tool's outputSchema is derived from this class."""

    total: int
    operands: list[int]


def build_server(probe: Probe) -> McpServer:
    """A server with one tool, resource or prompt per feature the clients are tested on."""
    server = McpServer(
        "mcp-core-interop",
        "1.2.3",
        instructions="A server for the interoperability tests.",
        page_size=PAGE_SIZE,
    )

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Add two integers; the result is structured.")
    def add(a: int, b: int) -> Sum:
        return Sum(total=a + b, operands=[a, b])

    @server.tool(description="Always fails with the given reason (an isError result).")
    def fail(reason: str) -> str:
        raise ToolError(reason)

    @server.tool(description="Logs and reports progress for each step.")
    async def log_and_progress(ctx: Context, steps: int = 3) -> str:
        for step in range(1, steps + 1):
            await ctx.info(f"step {step} of {steps}", logger="interop")
            await ctx.debug(f"debug detail {step}", logger="interop")
            await ctx.report_progress(step, steps, f"step {step}")
        return f"done {steps} steps"

    @server.tool(description="Asks the client's model (sampling) and returns what it said.")
    async def ask_model(question: str, ctx: Context) -> str:
        answer = await ctx.sample(question, max_tokens=64, system_prompt="Be brief.", timeout=10)
        return f"{answer.model} said: {answer.text}"

    @server.tool(description="Asks the user for their name (form elicitation).")
    async def ask_user(ctx: Context) -> str:
        answer = await ctx.elicit(
            "What is your name?",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "Your name"},
                    "age": {"type": "integer", "minimum": 0},
                },
                "required": ["name"],
            },
            timeout=10,
        )
        return json.dumps({"action": answer.action, "content": answer.content}, sort_keys=True)

    @server.tool(description="Lists the client's roots.")
    async def client_roots(ctx: Context) -> dict[str, Any]:
        roots = await ctx.list_roots(timeout=10)
        return {"roots": [{"uri": r.uri, "name": r.name} for r in roots]}

    @server.tool(description="Waits until the request is cancelled.")
    async def wait_for_cancel() -> str:
        probe.cancel_started.set()
        try:
            await anyio.sleep(CANCEL_WAIT)
        except anyio.get_cancelled_exc_class():
            probe.cancelled.set()
            raise
        return "was not cancelled"

    @server.resource("interop://greeting", name="greeting", mime_type="text/plain")
    def greeting() -> str:
        """A static text resource."""
        return GREETING

    @server.resource("interop://logo", name="logo", mime_type="application/octet-stream")
    def logo() -> bytes:
        """A static binary resource."""
        return LOGO

    @server.resource("interop://items/{item_id}", name="item", mime_type="application/json")
    def item(item_id: str) -> dict[str, Any]:
        """One item, by id."""
        return {"id": item_id, "label": f"Item {item_id}"}

    @server.prompt(description="Greets someone by name.")
    def greet(name: str, style: str = "plain") -> str:
        return f"Say hello to {name} in a {style} style."

    @server.completion("ref/prompt", "greet")
    def complete_name(argument: str, value: str, context: dict[str, str]) -> Completion | None:
        if argument != "name":
            return None
        values = [n for n in NAMES if n.startswith(value)]
        return Completion(values=values, total=len(values), has_more=False)

    @server.completion("ref/resource", "interop://items/{item_id}")
    def complete_item(argument: str, value: str, context: dict[str, str]) -> list[str]:
        return [i for i in ITEM_IDS if i.startswith(value)] if argument == "item_id" else []

    @server.on_roots_changed
    def roots_changed(session: Any) -> None:
        probe.roots_changed.set()

    return server


# ---- serving it ---------------------------------------------------------------------------


@dataclasses.dataclass
class LiveServer:
    """A running server: where to reach it and what it has seen."""

    url: str
    app: McpAsgiApp
    recorder: RecordingApp
    probe: Probe

    @property
    def exchanges(self) -> list[Exchange]:
        return list(self.recorder.exchanges)

    def posted(self) -> list[tuple[str | None, int | None]]:
        """(JSON-RPC method, HTTP status) of every POST, in arrival order."""
        return [(e.rpc_method, e.status) for e in self.exchanges if e.method == "POST"]

    def exchanges_for(self, method: str, rpc_method: str | None = None) -> list[Exchange]:
        return [
            e
            for e in self.exchanges
            if e.method == method and (rpc_method is None or e.rpc_method == rpc_method)
        ]

    @property
    def live_sessions(self) -> int:
        return self.app.service.live_sessions

    async def wait_for(
        self, predicate: Callable[[], bool], what: str, timeout: float = 5.0
    ) -> None:
        """Poll until `predicate()` holds; fail the test with `what` after `timeout` seconds."""
        with anyio.move_on_after(timeout):
            while not predicate():  # noqa: ASYNC110 (the state lives on the server's thread)
                await anyio.sleep(0.01)
            return
        pytest.fail(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def run_uvicorn(app: Any) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a background thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only on the main thread, so a thread is safe here.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {STARTUP_TIMEOUT}s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on port {port} did not shut down")


ServeFn = Callable[..., LiveServer]


@pytest.fixture
def serve() -> Iterator[ServeFn]:
    """Start the test server with `create_app` options (e.g. `response_mode="json"`).

    Every server started through this fixture is stopped when the test ends.
    """
    with contextlib.ExitStack() as stack:

        def start(**app_options: Any) -> LiveServer:
            probe = Probe()
            app = create_app(build_server(probe), **app_options)
            recorder = RecordingApp(app)
            base = stack.enter_context(run_uvicorn(recorder))
            return LiveServer(url=f"{base}{app.path}", app=app, recorder=recorder, probe=probe)

        yield start


@pytest.fixture
def live(serve: ServeFn) -> LiveServer:
    """The test server with default options."""
    return serve()
