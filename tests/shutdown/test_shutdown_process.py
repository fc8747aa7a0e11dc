"""Graceful shutdown of `mcp-core serve`, with real processes over real HTTP (issue 6).

On SIGTERM or SIGINT the server drains: standalone GET streams end with a `retry` hint, new
requests are refused (503 with Retry-After while the listener is still open, a refused or
dropped connection once it is closed: both count), requests already acknowledged run to their
end, and the process exits 0. A second signal forces the exit at once.

"Acknowledged" is exact here: each slow tool first reports progress, which turns its answer
into an SSE stream, so the POST's response headers arrive as soon as the server is serving the
request, long before the tool answers. Every server binds 127.0.0.1 on a port the OS picks,
every wait is bounded, and every process is killed in the end.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 15.0
# adapters/cli/_http.py: _GRACEFUL_SHUTDOWN_S, the deadline for in-flight requests.
DEADLINE_S = 5.0
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "shutdown-test", "version": "1.0"},
    },
}
SERVER = textwrap.dedent(
    '''
    import anyio

    from mcp_core.core import Context, McpServer

    server = McpServer("slow-server")

    @server.tool()
    async def slow(n: int, ctx: Context) -> str:
        """Answer n after about a second."""
        await ctx.report_progress(0, 1)
        await anyio.sleep(1.0)
        return f"done {n}"

    @server.tool()
    async def very_slow(ctx: Context) -> str:
        """Take longer than any shutdown deadline."""
        await ctx.report_progress(0, 1)
        await anyio.sleep(60.0)
        return "too late"
    '''
)


def _cli() -> list[str]:
    script = shutil.which("mcp-core", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mcp_core.adapters.cli"]


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@contextlib.contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`mcp-core serve <slow server> ARGS` on 127.0.0.1, port 0: (process, MCP URL)."""
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryFile("w+") as stderr:
        target = Path(home) / "slow_server.py"
        target.write_text(SERVER)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CORE_")}
        env["XDG_DATA_HOME"] = home
        process = subprocess.Popen(
            [*_cli(), "serve", str(target), "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            try:
                first = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                stderr.seek(0)
                pytest.fail(f"no announcement within {START_TIMEOUT_S} s:\n{stderr.read()}")
            yield process, first.rstrip("\n").rsplit(" at ", 1)[1]
        except BaseException:
            stderr.seek(0)
            sys.stderr.write(stderr.read())
            raise
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            reader.join(timeout=10)
            process.stdout.close()


def _open_session(url: str) -> dict[str, str]:
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        init = client.post(url, json=INITIALIZE, headers=HEADERS)
        assert init.status_code == 200, init.text
        session = {**HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
        done = client.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
        )
        assert done.status_code == 202, done.text
    return session


def _call(request_id: int, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": {"progressToken": request_id}},
    }


def _messages(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            out.append(orjson.loads(line[5:]))
    return out


class Call(threading.Thread):
    """One streamed tools/call: `acknowledged` once the response headers are in."""

    def __init__(self, url: str, session: dict[str, str], message: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.session, self.message = url, session, message
        self.acknowledged = threading.Event()
        self.status: int | None = None
        self.text = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=HTTP_TIMEOUT_S) as client,
                client.stream("POST", self.url, json=self.message, headers=self.session) as r,
            ):
                self.status = r.status_code
                self.acknowledged.set()
                for chunk in r.iter_text():
                    self.text += chunk
        except BaseException as exc:  # reported by the test
            self.error = exc


class StandaloneStream(threading.Thread):
    """The session's GET stream, read to its end."""

    def __init__(self, url: str, session: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.session = url, session
        self.opened = threading.Event()
        self.retried = threading.Event()
        self.status: int | None = None
        self.text = ""
        self.ended = False
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = {**self.session, "accept": "text/event-stream"}
        try:
            with (
                httpx.Client(timeout=HTTP_TIMEOUT_S) as client,
                client.stream("GET", self.url, headers=headers) as r,
            ):
                self.status = r.status_code
                for chunk in r.iter_text():
                    self.text += chunk
                    # The priming event has a retry too: the one that counts follows it.
                    if "retry:" in self.text:
                        self.opened.set()
                    if self.text.count("retry:") >= 2:
                        self.retried.set()
                self.ended = True
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.opened.set()


def _refused(url: str, session: dict[str, str]) -> str:
    """A new request during the drain: '503' or 'connection' (listener already closed)."""
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            response = client.post(url, json=_call(999, "slow", {"n": 999}), headers=session)
    except httpx.TransportError:
        return "connection"
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    return "503"


def test_sigterm_under_load_loses_no_acknowledged_request() -> None:
    with serving() as (process, url):
        session = _open_session(url)
        stream = StandaloneStream(url, session)
        stream.start()
        assert stream.opened.wait(HTTP_TIMEOUT_S)
        assert stream.status == 200
        calls = [Call(url, session, _call(n, "slow", {"n": n})) for n in range(1, 7)]
        for call in calls:
            call.start()
        for call in calls:
            assert call.acknowledged.wait(HTTP_TIMEOUT_S), call.error
            assert call.status == 200

        in_flight = [call for call in calls if '"result"' not in call.text]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert in_flight, "every call answered before the signal: nothing was tested"

        # The idle GET stream is ended by the drain, with a retry hint, not held to the deadline.
        assert stream.retried.wait(DEADLINE_S), stream.text
        stream.join(DEADLINE_S)
        assert stream.error is None, stream.error
        assert stream.ended
        assert stream.text.rstrip().splitlines()[-1].startswith("data:")
        assert _refused(url, session) in ("503", "connection")

        for call in calls:
            call.join(DEADLINE_S + 5)
            assert call.error is None, call.error
            answers = [m for m in _messages(call.text) if m.get("id") == call.message["id"]]
            assert len(answers) == 1, call.text
            n = call.message["params"]["arguments"]["n"]
            assert answers[0]["result"]["content"][0]["text"] == f"done {n}"

        assert process.wait(timeout=DEADLINE_S + 5) == 0
        assert time.monotonic() - started < DEADLINE_S


def test_idle_streams_do_not_hold_the_exit() -> None:
    with serving() as (process, url):
        session = _open_session(url)
        stream = StandaloneStream(url, session)
        stream.start()
        assert stream.opened.wait(HTTP_TIMEOUT_S)
        assert stream.status == 200
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_S + 5) == 0
        assert time.monotonic() - started < 2.0
        stream.join(HTTP_TIMEOUT_S)
        assert stream.retried.is_set(), stream.text


def test_sigint_stops_gracefully_with_exit_zero() -> None:
    with serving() as (process, url):
        _open_session(url)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=DEADLINE_S + 5) == 0


def test_second_sigterm_exits_at_once() -> None:
    with serving() as (process, url):
        session = _open_session(url)
        call = Call(url, session, _call(1, "very_slow", {}))
        call.start()
        assert call.acknowledged.wait(HTTP_TIMEOUT_S), call.error
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "the first signal must wait for the in-flight request"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=DEADLINE_S)
        assert time.monotonic() - started < 2.0
        assert code != 0  # forced: the process ends by the signal
