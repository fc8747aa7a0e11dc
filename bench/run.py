"""Benchmark mcp-core against the official MCP Python SDK and FastMCP, in one run.

    .venv/bin/python bench/run.py            # or: bash bench/run.sh (sets up the peers' venv)
    .venv/bin/python bench/run.py --quick    # a smoke run (short cells, 500 sessions)

What it does (bench/README.md has the method and the figures):

1. Throughput and latency. For each mode (`json`, `sse`) it starts the echo servers
   (`echo_server.py`, `sdk_echo_server.py`, `fastmcp_echo_server.py`, and `floor_app.py`, a
   canned answer with no MCP machinery that shows what uvicorn alone costs) under the same
   uvicorn, one worker each, same flags, all pinned to CPU 0. The load generator runs on CPU 1:
   `wrk` with `wrk_tools_call.lua` when installed, else `loadgen.py load`. For each concurrency
   (1, 16, 64) each server in turn gets a warm-up, then a measured cell of `tools/call echo`.
   Stateful servers get one session per connection, opened beforehand (`loadgen.py sessions`).
   Every response is checked (status 200 and the echoed text in the body); errors are counted
   and a cell with errors is reported as such. Interleaving the servers cell by cell spreads any
   background load on the machine over all of them.
2. Memory per idle session. Each server in its stateful mode is started fresh; after a warm-up
   of 100 sessions its RSS (VmRSS) is read, 5,000 more sessions are opened (`initialize` +
   `notifications/initialized`), and after a pause RSS is read again: (after - before) / 5,000.
   Then `echo` is called on 64 of those sessions to check they are still open.
3. A table, the ratios to the SDK, one verdict line per target, and a JSON file in
   `bench/results/`.

Every process it starts is stopped before it exits, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
LOADGEN = BENCH / "loadgen.py"
WRK_SCRIPT = BENCH / "wrk_tools_call.lua"
NEEDLE = "bench-echo-5e1f0c"  # loadgen.NEEDLE; loadgen is run as a script, not imported

SERVER_CPU = 0
CLIENT_CPU = 1

# Targets from issue 2.
TARGET_RPS = {"json": 5.0, "sse": 3.0}  # ours / SDK, tools/call throughput
TARGET_P99_C16 = 1 / 3  # ours / SDK, p99 at concurrency 16
TARGET_MEMORY = 1 / 4  # ours / SDK, KB per idle session


@dataclass(frozen=True)
class Server:
    key: str  # "ours", "sdk", "fastmcp"
    label: str
    module: str
    python: str
    stateless_json: bool  # the peer's JSON mode has no sessions


@dataclass
class Cell:
    server: str
    mode: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_pct: float | None
    client_cpu_pct: float | None
    other_cpu_pct: float | None  # CPU used on the two cores by processes that are not ours
    server_wait_pct: float | None  # the server runnable but waiting for its CPU (schedstat)
    loadgen: str
    notes: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


# ---- environment ----------------------------------------------------------------------------


def _probe(python: str, code: str) -> dict[str, Any] | None:
    try:
        out = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            cwd=BENCH,  # not the repository root, whose mcp_core.egg-info any venv would see
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


_VERSIONS = """
import json, sys
from importlib import metadata
out = {"python": sys.version.split()[0]}
for name in ("uvicorn", "uvloop", "httptools", "mcp", "fastmcp", "mcp-core", "starlette"):
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def _find_servers(args: argparse.Namespace) -> tuple[list[Server], dict[str, Any], list[str]]:
    notes: list[str] = []
    ours_py = args.ours_python or sys.executable
    bench_venv = BENCH / ".venv" / "bin" / "python"
    peer_py = args.peer_python or (str(bench_venv) if bench_venv.exists() else sys.executable)
    versions = {"ours": _probe(ours_py, _VERSIONS), "peers": _probe(peer_py, _VERSIONS)}
    ours_v, peer_v = versions["ours"], versions["peers"]
    if ours_v is None or ours_v.get("mcp-core") is None:
        raise SystemExit(f"{ours_py} cannot import mcp-core; run bench/run.sh")
    if peer_v is None or peer_v.get("mcp") is None:
        if ours_v.get("mcp") is None:
            raise SystemExit("no interpreter with the mcp SDK; run bench/run.sh")
        peer_py, peer_v = ours_py, ours_v
        versions["peers"] = ours_v
    servers = [Server("ours", "mcp-core", "echo_server", ours_py, stateless_json=False)]
    servers.append(Server("sdk", f"mcp {peer_v['mcp']}", "sdk_echo_server", peer_py, True))
    if peer_v.get("fastmcp"):
        servers.append(
            Server("fastmcp", f"FastMCP {peer_v['fastmcp']}", "fastmcp_echo_server", peer_py, True)
        )
    else:
        notes.append("FastMCP is not installed next to the SDK: skipped (bash bench/run.sh)")
    # A reference, not a contender: a canned tools/call answer with no MCP machinery.
    servers.append(Server("floor", "bare ASGI", "floor_app", ours_py, stateless_json=True))
    wanted = set(args.servers.split(","))
    servers = [s for s in servers if s.key in wanted]
    for name in ("uvicorn", "uvloop", "httptools"):
        if ours_v.get(name) != peer_v.get(name):
            notes.append(
                f"{name} differs: mcp-core runs {ours_v.get(name)}, the peers {peer_v.get(name)}"
            )
    return servers, versions, notes


def _code_state() -> dict[str, Any]:
    """Which mcp-core was measured: the commit, and library files changed since it."""

    def git(*argv: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(
                ["git", "-C", str(ROOT), *argv], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        return ""

    changed = git("status", "--porcelain", "--", "core", "adapters", "ports")
    return {"commit": git("rev-parse", "HEAD") or None, "uncommitted": changed.splitlines()}


def _uvicorn_flags(versions: dict[str, Any]) -> list[str]:
    fast = all(v and v.get("uvloop") and v.get("httptools") for v in versions.values())
    loop, http = ("uvloop", "httptools") if fast else ("asyncio", "h11")
    return ["--loop", loop, "--http", http, "--log-level", "warning", "--no-access-log"]


def _pinning() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


# Niceness of every process the bench starts (servers and load generators alike). On a shared
# machine a negative value keeps other jobs from taking the pinned cores mid-cell; only root
# may lower it, so it is skipped otherwise. Set by main() from --nice.
NICE = 0


def _pin(cpu: int, argv: list[str], enabled: bool) -> list[str]:
    if enabled:
        argv = ["taskset", "-c", str(cpu), *argv]
    if NICE:
        argv = ["nice", "-n", str(NICE), *argv]
    return argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- processes ------------------------------------------------------------------------------


class Processes:
    """Every process this run starts; all are stopped on exit.

    Each child gets a session of its own (`start_new_session`), hence its own scheduler
    autogroup on Linux, and that autogroup gets the `--nice` value: with autogroups on, a
    process's own niceness only ranks it inside its group, so this is what actually gives the
    bench priority over other jobs on a shared machine.
    """

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[Any]] = []

    def start(self, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, start_new_session=True, **kw)
        self.live.append(proc)
        if NICE:
            with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/autogroup", "w") as f:
                f.write(str(NICE))
        return proc

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Run to completion; (returncode, stdout, stderr)."""
        proc = self.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            self.stop(proc)
        return proc.returncode, out, err

    def stop(self, proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.live):
            self.stop(proc)


PROCS = Processes()


@dataclass
class Running:
    server: Server
    mode: str
    proc: subprocess.Popen[Any]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def _start_server(
    server: Server,
    mode: str,
    flags: list[str],
    pin: bool,
    logdir: Path,
    *,
    profile: Path | None = None,
) -> Running:
    """Start `server` under uvicorn (or under cProfile, writing `profile` at exit)."""
    port = _free_port()
    log = logdir / f"{server.key}-{mode}-{port}.log"
    argv = [server.python]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile)]
    argv += ["-m", "uvicorn", f"{server.module}:app", "--app-dir", str(BENCH)]
    argv += ["--host", "127.0.0.1", "--port", str(port), *flags]
    env = {**os.environ, "MCP_BENCH_MODE": mode, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = PROCS.start(
            _pin(SERVER_CPU, argv, pin), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=BENCH
        )
    running = Running(server, mode, proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{server.label} ({mode}) exited:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return running
        time.sleep(0.1)
    PROCS.stop(proc)
    raise SystemExit(f"{server.label} ({mode}) did not listen on {port} within 60 s")


def _run_json(argv: list[str], timeout: float) -> dict[str, Any]:
    code, out, err = PROCS.run(argv, timeout)
    if code != 0:
        raise RuntimeError(f"{argv} failed ({code}): {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _open_sessions(
    running: Running, count: int, concurrency: int, pin: bool, out: Path | None
) -> dict[str, Any]:
    argv = [sys.executable, str(LOADGEN), "sessions", running.url, "--count", str(count)]
    argv += ["--concurrency", str(concurrency), "--quiet"]
    if out is not None:
        argv += ["--out", str(out)]
    return _run_json(_pin(CLIENT_CPU, argv, pin), timeout=600)


# ---- CPU accounting -------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_delay(pid: int) -> float:
    """Seconds the process's threads were runnable but not running (/proc/PID/task/*/schedstat).

    The direct measure of interference: another job on the server's CPU shows up here.
    """
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(OSError, IndexError, ValueError),
            open(f"/proc/{pid}/task/{tid}/schedstat") as f,
        ):
            total += int(f.read().split()[1]) / 1e9
    return total


def _cores_busy() -> dict[int, float]:
    """Busy seconds per CPU since boot (/proc/stat: everything but idle and iowait)."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name.startswith("cpu") and name != "cpu":
                v = [int(x) for x in vals]
                out[int(name[3:])] = (sum(v[:8]) - v[3] - v[4]) / tick
    return out


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# ---- one cell -------------------------------------------------------------------------------


def _cell_wrk(
    running: Running, concurrency: int, args: argparse.Namespace, sessions: Path | None, pin: bool
) -> dict[str, Any]:
    host = f"127.0.0.1:{running.port}"
    script_args = ["--", host, NEEDLE, str(sessions) if sessions else ""]

    def wrk(seconds: float) -> list[str]:
        argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s"]
        argv += ["-s", str(WRK_SCRIPT), running.url, *script_args]
        return _pin(CLIENT_CPU, argv, pin)

    if args.warmup > 0:
        code, out, err = PROCS.run(wrk(args.warmup), timeout=args.warmup + 60)
        if code != 0:
            raise RuntimeError(f"wrk warm-up failed ({code}): {out}{err}")
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0, cores0 = _proc_cpu(running.proc.pid), _cores_busy()
    wait0 = _run_delay(running.proc.pid)
    started = time.monotonic()
    code, out, err = PROCS.run(wrk(args.duration), timeout=args.duration + 60)
    wall = time.monotonic() - started
    server1, cores1 = _proc_cpu(running.proc.pid), _cores_busy()
    wait1 = _run_delay(running.proc.pid)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if code != 0 or line is None:
        raise RuntimeError(f"wrk failed ({code}): {out}{err}")
    w = json.loads(line[len("WRKJSON ") :])
    seconds = w["duration_us"] / 1e6
    socket_errors = w["connect"] + w["read"] + w["write"] + w["timeout"]
    good = w["requests"] - w["bad"]
    client = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    return {
        "rps": good / seconds,
        "p50_ms": w["p50_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "requests": good,
        "errors": w["bad"] + socket_errors,
        "server_cpu_pct": 100 * (server1 - server0) / wall,
        "server_wait_pct": 100 * (wait1 - wait0) / wall,
        "client_cpu_pct": 100 * client / wall,
        "cores_busy_pct": {c: 100 * (cores1[c] - cores0[c]) / wall for c in cores0},
        "wrk": w,
    }


def _cell_python(
    running: Running, concurrency: int, args: argparse.Namespace, sessions: Path | None, pin: bool
) -> dict[str, Any]:
    argv = [sys.executable, str(LOADGEN), "load", running.url]
    argv += ["--concurrency", str(concurrency), "--duration", str(args.duration)]
    argv += ["--warmup", str(args.warmup), "--server-pid", str(running.proc.pid)]
    if sessions is not None:
        argv += ["--sessions", str(sessions)]
    r = _run_json(_pin(CLIENT_CPU, argv, pin), timeout=args.duration + args.warmup + 120)
    # JSON object keys are strings; the CPU numbers are ints here.
    r["cores_busy_pct"] = {int(c): v for c, v in r.get("cores_busy_pct", {}).items()}
    return r


def _measure(
    running: Running,
    concurrency: int,
    args: argparse.Namespace,
    sessions: Path | None,
    pin: bool,
    loadgen: str,
) -> Cell:
    runs = []
    for _ in range(args.repeat):
        if loadgen == "wrk":
            runs.append(_cell_wrk(running, concurrency, args, sessions, pin))
        else:
            runs.append(_cell_python(running, concurrency, args, sessions, pin))
    # With --repeat N the cell is the run with the median throughput (not a mix of runs).
    best = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    other = None
    busy = best.get("cores_busy_pct") or {}
    if pin and SERVER_CPU in busy and CLIENT_CPU in busy:
        ours = (best.get("server_cpu_pct") or 0) + (best.get("client_cpu_pct") or 0)
        other = max(0.0, busy[SERVER_CPU] + busy[CLIENT_CPU] - ours)
    cell = Cell(
        server=running.server.key,
        mode=running.mode,
        concurrency=concurrency,
        rps=best["rps"],
        p50_ms=best["p50_ms"],
        p99_ms=best["p99_ms"],
        requests=best["requests"],
        errors=sum(r["errors"] for r in runs),
        server_cpu_pct=best.get("server_cpu_pct"),
        client_cpu_pct=best.get("client_cpu_pct"),
        other_cpu_pct=other,
        server_wait_pct=best.get("server_wait_pct"),
        loadgen=loadgen,
        runs=runs,
    )
    if cell.client_cpu_pct is not None and cell.client_cpu_pct > 90:
        cell.notes.append("load generator near 100% of its core: figures are a lower bound")
    if cell.server_wait_pct is not None and cell.server_wait_pct > 10:
        cell.notes.append(
            f"the server waited for its CPU {cell.server_wait_pct:.0f}% of the time: "
            "other jobs interfered"
        )
    if cell.errors:
        errs = [e for r in runs for e in r.get("first_errors", [])][:3]
        cell.notes.append(f"{cell.errors} errors {errs}")
    return cell


# ---- phases ---------------------------------------------------------------------------------


def _throughput(
    servers: list[Server],
    args: argparse.Namespace,
    flags: list[str],
    pin: bool,
    loadgen: str,
    workdir: Path,
) -> list[Cell]:
    cells: list[Cell] = []
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    for mode in args.modes.split(","):
        running = [_start_server(s, mode, flags, pin, workdir) for s in servers]
        session_files: dict[str, Path | None] = {}
        for r in running:
            if mode == "json" and r.server.stateless_json:
                session_files[r.server.key] = None
                continue
            path = workdir / f"sessions-{r.server.key}-{mode}.txt"
            opened = _open_sessions(r, max(concurrencies), 8, pin, path)
            if opened["errors"] or opened["opened"] < max(concurrencies):
                raise SystemExit(f"{r.server.label} ({mode}): cannot open sessions: {opened}")
            session_files[r.server.key] = path
        try:
            for c in concurrencies:
                for r in running:
                    cell = _measure(r, c, args, session_files[r.server.key], pin, loadgen)
                    cells.append(cell)
                    _progress(
                        f"{r.server.label:14} {mode:4} c={c:<3} {cell.rps:9.0f} req/s  "
                        f"p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                        f"errors {cell.errors}"
                    )
        finally:
            for r in running:
                PROCS.stop(r.proc)
    return cells


def _check_sessions(running: Running, ids_file: Path, workdir: Path, pin: bool) -> dict[str, Any]:
    """After the RSS reading: are the sessions still there? Call the tool on 64 of them."""
    ids = ids_file.read_text().split()
    if not ids:
        return {"requests": 0, "errors": 1, "first_errors": ["no sessions"]}
    step = max(1, len(ids) // 63)
    sample = [*ids[::step][:63], ids[-1]]
    sample_file = workdir / "sample.txt"
    sample_file.write_text("\n".join(sample) + "\n")
    argv = [sys.executable, str(LOADGEN), "load", running.url, "--warmup", "0"]
    argv += ["--duration", "1", "--concurrency", str(len(sample)), "--sessions", str(sample_file)]
    return _run_json(_pin(CLIENT_CPU, argv, pin), timeout=120)


def _memory(
    servers: list[Server],
    args: argparse.Namespace,
    flags: list[str],
    pin: bool,
    workdir: Path,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for server in servers:
        if server.key == "floor":
            continue  # keeps no sessions
        # The peers' sessions exist in their stateful (SSE) mode only; ours has them in both.
        for mode in ("json", "sse") if server.key == "ours" else ("sse",):
            running = _start_server(server, mode, flags, pin, workdir)
            try:
                warm = _open_sessions(running, args.warm_sessions, 16, pin, None)
                time.sleep(args.settle)
                before = _rss_kb(running.proc.pid)
                ids_file = workdir / f"memory-{server.key}-{mode}.txt"
                opened = _open_sessions(running, args.sessions, 16, pin, ids_file)
                time.sleep(args.settle)
                after = _rss_kb(running.proc.pid)
                check = _check_sessions(running, ids_file, workdir, pin)
            finally:
                PROCS.stop(running.proc)
            n = opened["opened"]
            row = {
                "server": server.key,
                "mode": mode,
                "sessions": n,
                "errors": opened["errors"] + warm["errors"] + check["errors"],
                "rss_before_kb": before,
                "rss_after_kb": after,
                "kb_per_session": (after - before) / n if n else float("nan"),
                "open_seconds": opened["seconds"],
                "still_open_check": {k: check[k] for k in ("requests", "errors", "first_errors")},
                "first_errors": opened["first_errors"],
            }
            rows.append(row)
            _progress(
                f"{server.label:14} {mode:4} {n} sessions: RSS {before} -> {after} KB, "
                f"{row['kb_per_session']:.1f} KB/session, errors {row['errors']}"
            )
    return rows


# ---- report ---------------------------------------------------------------------------------


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _report(
    cells: list[Cell], memory: list[dict[str, Any]], labels: dict[str, str]
) -> tuple[str, list[dict[str, Any]]]:
    lines: list[str] = []
    sdk = {(c.mode, c.concurrency): c for c in cells if c.server == "sdk"}
    if cells:
        head = (
            f"{'server':14} {'mode':4} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'errors':>6} {'x SDK req/s':>11} {'p99/SDK':>8} {'srv cpu':>7} {'gen cpu':>7} "
            f"{'rq wait':>7}"
        )
        lines += [head, "-" * len(head)]
        for c in sorted(cells, key=lambda c: (c.mode, c.concurrency, c.server != "ours")):
            base = sdk.get((c.mode, c.concurrency))
            ratio = c.rps / base.rps if base and base.rps else None
            p99r = c.p99_ms / base.p99_ms if base and base.p99_ms else None
            lines.append(
                f"{labels[c.server]:14} {c.mode:4} {c.concurrency:>4} {c.rps:>9.0f} "
                f"{c.p50_ms:>8.2f} {c.p99_ms:>8.2f} {c.errors:>6} {_fmt(ratio, '.2f'):>11} "
                f"{_fmt(p99r, '.2f'):>8} {_fmt(c.server_cpu_pct, '.0f'):>6}% "
                f"{_fmt(c.client_cpu_pct, '.0f'):>6}% {_fmt(c.server_wait_pct, '.0f'):>6}%"
            )
            for note in c.notes:
                lines.append(f"{'':20}! {note}")
    sdk_mem = next((m for m in memory if m["server"] == "sdk"), None)
    if memory:
        lines.append("")
        head = (
            f"{'server':14} {'mode':4} {'sessions':>8} {'RSS before':>11} {'RSS after':>10} "
            f"{'KB/session':>10} {'x SDK':>6} {'errors':>6}"
        )
        lines += [head, "-" * len(head)]
        for m in memory:
            ratio = (
                m["kb_per_session"] / sdk_mem["kb_per_session"]
                if sdk_mem and sdk_mem["kb_per_session"] > 0
                else None
            )
            lines.append(
                f"{labels[m['server']]:14} {m['mode']:4} {m['sessions']:>8} "
                f"{m['rss_before_kb']:>8} KB {m['rss_after_kb']:>7} KB "
                f"{m['kb_per_session']:>10.2f} {_fmt(ratio, '.2f'):>6} {m['errors']:>6}"
            )

    verdicts = _verdicts(cells, memory)
    lines.append("")
    for v in verdicts:
        lines.append(f"{v['status'].upper():7} {v['target']}: {v['detail']}")
    return "\n".join(lines), verdicts


def _verdicts(cells: list[Cell], memory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    by = {(c.server, c.mode, c.concurrency): c for c in cells}
    modes = sorted({c.mode for c in cells})
    concs = sorted({c.concurrency for c in cells})

    def verdict(target: str, ok: bool | None, detail: str, errors: bool) -> None:
        status = "invalid" if errors else ("n/a" if ok is None else ("met" if ok else "missed"))
        out.append({"target": target, "status": status, "detail": detail})

    for mode in modes:
        want = TARGET_RPS[mode]
        pairs = [(by.get(("ours", mode, c)), by.get(("sdk", mode, c))) for c in concs]
        pairs = [(o, s) for o, s in pairs if o and s]
        ratios = [(o.concurrency, o.rps / s.rps) for o, s in pairs if s.rps]
        errors = any(o.errors or s.errors for o, s in pairs)
        detail = ", ".join(f"c={c}: {r:.2f}x" for c, r in ratios) or "not measured"
        ok = all(r >= want for _, r in ratios) if ratios else None
        verdict(f"{mode} throughput >= {want:g}x SDK", ok, detail, errors)
    for mode in modes:
        o, s = by.get(("ours", mode, 16)), by.get(("sdk", mode, 16))
        if o and s and s.p99_ms:
            ratio = o.p99_ms / s.p99_ms
            detail = f"{o.p99_ms:.2f} ms vs {s.p99_ms:.2f} ms = {ratio:.2f}x"
            verdict(
                f"{mode} p99 at c=16 <= 1/3 SDK",
                ratio <= TARGET_P99_C16,
                detail,
                bool(o.errors or s.errors),
            )
    sdk_mem = next((m for m in memory if m["server"] == "sdk"), None)
    for m in memory:
        if m["server"] != "ours" or not sdk_mem:
            continue
        ratio = m["kb_per_session"] / sdk_mem["kb_per_session"]
        detail = (
            f"{m['kb_per_session']:.2f} KB vs {sdk_mem['kb_per_session']:.2f} KB "
            f"(SDK stateful) = {ratio:.2f}x"
        )
        verdict(
            f"memory per idle session ({m['mode']}) <= 1/4 SDK",
            ratio <= TARGET_MEMORY,
            detail,
            bool(m["errors"] or sdk_mem["errors"]),
        )
    return out


# ---- main -----------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="mcp-core vs the official MCP SDK (and FastMCP).")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell")
    p.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is kept")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--modes", default="json,sse")
    p.add_argument(
        "--servers",
        default="ours,sdk,fastmcp,floor",
        help="ours, sdk, fastmcp, and floor (floor_app.py: the same request with no MCP at all)",
    )
    p.add_argument("--sessions", type=int, default=5000, help="sessions for the memory test")
    p.add_argument("--warm-sessions", type=int, default=100)
    p.add_argument("--settle", type=float, default=2.0, help="pause before reading RSS")
    p.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="niceness of the servers and load generators (default -10 as root, else 0)",
    )
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--quick", action="store_true", help="short cells and 500 sessions")
    p.add_argument("--ours-python", help="interpreter with mcp-core (default: this one)")
    p.add_argument("--peer-python", help="interpreter with mcp and fastmcp (default bench/.venv)")
    p.add_argument("--out", help="results JSON (default bench/results/bench-<time>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.sessions, args.settle = 2.0, 1.0, 500, 1.0
    return args


@contextlib.contextmanager
def _stopping() -> Iterator[None]:
    """Stop every started process on the way out, whatever ends the run.

    The children live in sessions of their own, so a terminal's Ctrl-C reaches only this
    process; SIGINT is handled here even when it was inherited as ignored (a background job).
    """
    handlers = {
        signal.SIGTERM: lambda *_: sys.exit(143),
        signal.SIGHUP: lambda *_: sys.exit(129),
        signal.SIGINT: signal.default_int_handler,
    }
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        PROCS.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    global NICE
    args = _parse(argv)
    NICE = args.nice if shutil.which("nice") else 0
    servers, versions, notes = _find_servers(args)
    flags = _uvicorn_flags(versions)
    pin = _pinning()
    if not pin:
        notes.append("no taskset or fewer than 2 CPUs: server and load generator share CPUs")
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    if loadgen == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk, or --loadgen python)")
    labels = {s.key: s.label for s in servers}
    load_before = os.getloadavg()
    print(
        f"servers: {', '.join(s.label for s in servers)}; uvicorn {' '.join(flags)}",
        file=sys.stderr,
    )
    pinning = f"server CPU {SERVER_CPU}, load CPU {CLIENT_CPU}" if pin else "none"
    print(f"load generator: {loadgen}; pinning: {pinning}; nice {NICE}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    started = time.time()
    with _stopping(), tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
        workdir = Path(tmp)
        cells = (
            [] if args.skip_throughput else _throughput(servers, args, flags, pin, loadgen, workdir)
        )
        memory = [] if args.skip_memory else _memory(servers, args, flags, pin, workdir)
    table, verdicts = _report(cells, memory, labels)
    print(table)

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    out = Path(args.out) if args.out else RESULTS / f"bench-{stamp}.json"
    result = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "settings": {k: v for k, v in vars(args).items()},
        "loadgen": loadgen,
        "pinned": pin,
        "nice": NICE,
        "uvicorn_flags": flags,
        "versions": versions,
        "mcp_core_code": _code_state(),
        "servers": {s.key: s.label for s in servers},
        "notes": notes,
        "cells": [asdict(c) for c in cells],
        "memory": memory,
        "verdicts": verdicts,
        "table": table,
    }
    out.write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / "latest.json").write_text(out.read_text())
    print(f"\nresults: {out} ({result['seconds']} s)", file=sys.stderr)
    errors = any(c.errors for c in cells) or any(m["errors"] for m in memory)
    if errors:
        print("THIS RUN HAD ERRORS: the figures above are not valid", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted: every process the bench started was stopped", file=sys.stderr)
        raise SystemExit(130) from None
