"""mcp-core's own cost per `tools/call`, with no HTTP server and no sockets.

    .venv/bin/python bench/inprocess.py            # both modes
    .venv/bin/python bench/inprocess.py --profile  # and the top functions under cProfile

Calls `echo_server.app` (the benchmark's ASGI app) directly with ASGI messages built in
memory, on uvloop, one request at a time, in several timed rounds: what is left is the adapter,
the Streamable HTTP service, the dispatcher and the tool. The best round is the figure least
disturbed by other work on the machine (the median is printed too). Subtract it from a real
request's cost to see what uvicorn and the kernel take (`run.py`'s "bare ASGI" row is the other
half of that picture).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import io
import os
import pstats
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

Message = MutableMapping[str, Any]

_BASE = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"accept", b"application/json, text/event-stream"),
]
_INIT = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"inprocess","version":"0"}}}'
)
_CALL = (
    b'{"jsonrpc":"2.0","id":%d,"method":"tools/call",'
    b'"params":{"name":"echo","arguments":{"text":"bench-echo-5e1f0c"}}}'
)


async def _post(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a server: nothing more until the client leaves
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    return sent


async def measure(mode: str, count: int, rounds: int, profile: bool) -> str:
    os.environ["MCP_BENCH_MODE"] = mode
    sys.modules.pop("echo_server", None)
    app = importlib.import_module("echo_server").app
    sent = await _post(app, _INIT, _BASE)
    session = dict(sent[0]["headers"])[b"mcp-session-id"]
    headers = [*_BASE, (b"mcp-session-id", session), (b"mcp-protocol-version", b"2025-11-25")]
    await _post(app, b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers)
    bodies = [_CALL % i for i in range(count)]
    for body in bodies[: count // 10]:  # warm-up
        await _post(app, body, headers)
    per_call: list[float] = []
    reply: list[Message] = []
    for _ in range(rounds):
        started = time.perf_counter()
        for body in bodies:
            reply = await _post(app, body, headers)
        per_call.append(1e6 * (time.perf_counter() - started) / count)
    assert any(b"bench-echo-5e1f0c" in m.get("body", b"") for m in reply), reply
    per_call.sort()
    out = (
        f"{mode}: {per_call[0]:.1f} us per tools/call inside mcp-core, best of {rounds} rounds"
        f" (median {per_call[len(per_call) // 2]:.1f} us; {count} calls a round)"
    )
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for body in bodies[: count // 2]:
            await _post(app, body, headers)
        profiler.disable()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(20)
        out += "\n" + buf.getvalue()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="mcp-core's own cost per tools/call (no sockets).")
    p.add_argument("--mode", choices=("json", "sse", "both"), default="both")
    p.add_argument("--count", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5, help="timed rounds; the best is reported")
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    runner = uvloop.run if uvloop is not None else asyncio.run
    for mode in ("json", "sse") if args.mode == "both" else (args.mode,):
        print(runner(measure(mode, args.count, max(1, args.rounds), args.profile)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
