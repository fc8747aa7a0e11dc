"""A lean HTTP/1.1 load generator for MCP `tools/call`, and the session opener.

`run.py` drives the servers with `wrk` when it is installed (a C load generator, never the
bottleneck) and falls back to the `load` command here otherwise. The `sessions` command is used
either way: it performs the legacy-era handshake (`initialize`, then
`notifications/initialized`) for stateful servers and for the memory measurement.

Why a hand-written client: an HTTP library (httpx, aiohttp) costs more CPU per request than the
servers under test spend answering it, so it would measure itself. This one is an asyncio
`Protocol` on uvloop that writes a prebuilt request and parses just enough of the response
(status line, Content-Length or chunked framing, `Mcp-Session-Id`). Each worker owns one
keep-alive connection and keeps one request in flight, so concurrency = connections. It reports
its own CPU use: when it nears 100% of its core the figures are the client's, not the server's.

    python bench/loadgen.py sessions URL --count 5000 --concurrency 16 [--out ids.txt]
    python bench/loadgen.py load URL --concurrency 16 --duration 6 --warmup 2 \
        [--sessions ids.txt] [--server-pid PID]

Both print one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["NEEDLE", "PROTOCOL_VERSION", "HttpConnection", "open_sessions", "run_load"]

PROTOCOL_VERSION = "2025-11-25"
# The echoed text; a response counts as good only if it is 200 and carries this back.
NEEDLE = "bench-echo-5e1f0c"

_INITIALIZE = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"'
    + PROTOCOL_VERSION.encode()
    + b'","capabilities":{},"clientInfo":{"name":"mcp-bench","version":"0"}}}'
)
_INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
_CALL = (
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call",'
    '"params":{"name":"echo","arguments":{"text":"' + NEEDLE + '"}}}'
)


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports do not subclass asyncio.Transport
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes | None, bytes]] | None = None
        self.lost = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by the server"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            self._parse()

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes | None, bytes]]:
        """Send a complete request; the future gives (status, Mcp-Session-Id, body)."""
        if self.lost or self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> None:
        buf = self.buffer
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(buf[:head_end])
        lower = head.lower()
        status = int(head[9:12])
        start = head_end + 4
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            eol = lower.find(b"\r\n", at + 2)
            length = int(lower[at + 17 : eol if eol >= 0 else len(lower)])
            end = start + length
            if len(buf) < end:
                return
            body = bytes(buf[start:end])
        elif b"\r\ntransfer-encoding: chunked" in lower:
            parts = []
            pos = start
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return
                size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
                if size == 0:
                    end = eol + 4  # no trailers: "0\r\n\r\n"
                    if len(buf) < end:
                        return
                    break
                chunk_end = eol + 2 + size
                if len(buf) < chunk_end + 2:
                    return
                parts.append(bytes(buf[eol + 2 : chunk_end]))
                pos = chunk_end + 2
            body = b"".join(parts)
        else:
            end = start  # no body (202, 204)
            body = b""
        session_id = None
        at = lower.find(b"\r\nmcp-session-id:")
        if at >= 0:
            eol = head.find(b"\r\n", at + 2)
            session_id = head[at + 17 : eol if eol >= 0 else len(head)].strip()
        del buf[:end]
        waiter = self.waiter
        self.waiter = None
        assert waiter is not None
        waiter.set_result((status, session_id, body))


def _post(host_header: bytes, path: bytes, body: bytes, session_id: bytes | None) -> bytes:
    lines = [
        b"POST " + path + b" HTTP/1.1",
        b"Host: " + host_header,
        b"Content-Type: application/json",
        b"Accept: application/json, text/event-stream",
    ]
    if session_id is not None:
        lines.append(b"Mcp-Session-Id: " + session_id)
        lines.append(b"MCP-Protocol-Version: " + PROTOCOL_VERSION.encode())
    lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _target(url: str) -> tuple[str, int, bytes, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    return host, port, f"{host}:{port}".encode(), (parts.path or "/").encode()


async def open_sessions(url: str, count: int, concurrency: int) -> dict[str, object]:
    """Open `count` sessions: `initialize` (200 + a session id) then `initialized` (202)."""
    host, port, host_header, path = _target(url)
    ids: list[str] = []
    errors: list[str] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        conn = await HttpConnection.open(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                if conn.lost:
                    conn = await HttpConnection.open(host, port)
                try:
                    status, sid, body = await conn.request(
                        _post(host_header, path, _INITIALIZE, None)
                    )
                    if status != 200 or sid is None or b'"protocolVersion"' not in body:
                        errors.append(f"initialize: {status} {body[:200]!r}")
                        continue
                    status, _, body = await conn.request(
                        _post(host_header, path, _INITIALIZED, sid)
                    )
                    if status not in (200, 202, 204):
                        errors.append(f"initialized: {status} {body[:200]!r}")
                        continue
                    ids.append(sid.decode())
                except ConnectionError as exc:
                    errors.append(f"connection: {exc}")
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return {
        "ids": ids,
        "opened": len(ids),
        "distinct": len(set(ids)),
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": round(time.perf_counter() - started, 3),
    }


def _proc_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_delay_seconds(pid: int) -> float | None:
    """Seconds the process's threads were runnable but not running (schedstat, all threads)."""
    total = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return total


def _cores_busy() -> dict[int, float]:
    """Busy seconds per CPU since boot (/proc/stat: all but idle and iowait)."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *vals = line.split()
                if name.startswith("cpu") and name != "cpu":
                    v = [int(x) for x in vals]
                    out[int(name[3:])] = (sum(v[:8]) - v[3] - v[4]) / tick
    except OSError:
        pass
    return out


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    # Nearest rank: the smallest value with at least q% of the samples at or below it.
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def run_load(
    url: str,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    sessions: list[str],
    server_pid: int | None = None,
) -> dict[str, object]:
    """Keep `concurrency` requests in flight for `warmup + duration` seconds; time the last part.

    A request counts when it started and finished inside the measured window. Stateful servers
    get one session per connection (`sessions[i % len(sessions)]`).
    """
    host, port, host_header, path = _target(url)
    loop_clock = time.perf_counter
    t0 = loop_clock()
    t_start = t0 + warmup
    t_end = t_start + duration
    latencies: list[float] = []
    bad: list[str] = []
    needle = NEEDLE.encode()
    marks: dict[str, float | None] = {}
    cores: list[dict[int, float]] = []

    async def worker(index: int) -> None:
        sid = sessions[index % len(sessions)].encode() if sessions else None
        conn = await HttpConnection.open(host, port)
        prefix = _post(host_header, path, b"", sid)[: -len(b"0\r\n\r\n")]
        request_id = index * 10_000_000
        try:
            while True:
                began = loop_clock()
                if began >= t_end:
                    return
                request_id += 1
                body = (_CALL % request_id).encode()
                raw = prefix + str(len(body)).encode() + b"\r\n\r\n" + body
                try:
                    if conn.lost:
                        conn = await HttpConnection.open(host, port)
                    status, _, reply = await conn.request(raw)
                except ConnectionError as exc:
                    if began >= t_start:
                        bad.append(f"connection: {exc}")
                    await asyncio.sleep(0.01)
                    continue
                finished = loop_clock()
                if began < t_start or finished > t_end:
                    continue
                if status == 200 and needle in reply:
                    latencies.append(finished - began)
                else:
                    bad.append(f"{status} {reply[:200]!r}")
        finally:
            conn.close()

    async def window() -> None:
        await asyncio.sleep(max(0.0, t_start - loop_clock()))
        marks["self0"] = _self_cpu_seconds()
        marks["server0"] = _proc_cpu_seconds(server_pid) if server_pid else None
        marks["wait0"] = _run_delay_seconds(server_pid) if server_pid else None
        cores.append(_cores_busy())
        await asyncio.sleep(max(0.0, t_end - loop_clock()))
        marks["self1"] = _self_cpu_seconds()
        marks["server1"] = _proc_cpu_seconds(server_pid) if server_pid else None
        marks["wait1"] = _run_delay_seconds(server_pid) if server_pid else None
        cores.append(_cores_busy())

    await asyncio.gather(window(), *(worker(i) for i in range(concurrency)))
    latencies.sort()

    def share(key: str) -> float | None:
        a, b = marks.get(key + "0"), marks.get(key + "1")
        return None if a is None or b is None else round(100 * (b - a) / duration, 1)

    return {
        "requests": len(latencies),
        "errors": len(bad),
        "first_errors": bad[:5],
        "seconds": duration,
        "rps": len(latencies) / duration,
        "p50_ms": 1000 * _percentile(latencies, 50),
        "p99_ms": 1000 * _percentile(latencies, 99),
        "mean_ms": 1000 * sum(latencies) / len(latencies) if latencies else float("nan"),
        "client_cpu_pct": share("self"),
        "server_cpu_pct": share("server"),
        "server_wait_pct": share("wait"),
        "cores_busy_pct": {
            cpu: round(100 * (cores[1][cpu] - busy) / duration, 1) for cpu, busy in cores[0].items()
        }
        if len(cores) == 2
        else {},
    }


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    uvloop.install()
    return "uvloop"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sessions", help="open sessions (initialize + notifications/initialized)")
    s.add_argument("url")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--concurrency", type=int, default=16)
    s.add_argument("--out", help="write the session ids here, one a line")
    s.add_argument("--quiet", action="store_true", help="do not print the ids")
    lo = sub.add_parser("load", help="drive tools/call at a fixed concurrency")
    lo.add_argument("url")
    lo.add_argument("--concurrency", type=int, required=True)
    lo.add_argument("--duration", type=float, default=6.0)
    lo.add_argument("--warmup", type=float, default=2.0)
    lo.add_argument("--sessions", help="file of session ids, one a line (stateful servers)")
    lo.add_argument("--server-pid", type=int, help="report this process's CPU use too")
    args = parser.parse_args(argv)
    loop_name = _install_uvloop()

    if args.command == "sessions":
        result = asyncio.run(open_sessions(args.url, args.count, args.concurrency))
        if args.out:
            with open(args.out, "w") as f:
                f.write("".join(i + "\n" for i in result["ids"]))  # type: ignore[attr-defined]
        if args.quiet:
            del result["ids"]
    else:
        ids: list[str] = []
        if args.sessions:
            with open(args.sessions) as f:
                ids = [line.strip() for line in f if line.strip()]
        result = asyncio.run(
            run_load(
                args.url,
                concurrency=args.concurrency,
                duration=args.duration,
                warmup=args.warmup,
                sessions=ids,
                server_pid=args.server_pid,
            )
        )
    result["event_loop"] = loop_name
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
