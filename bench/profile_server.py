"""Profile one benchmark server under load: where does a `tools/call` spend its CPU?

    .venv/bin/python bench/profile_server.py              # mcp-core, JSON mode, concurrency 16
    .venv/bin/python bench/profile_server.py --mode sse --server sdk --seconds 10

It starts the server exactly as `run.py` does (same uvicorn flags, pinned to CPU 0), drives it
with the same load generator on CPU 1, and samples it with py-spy (`bench/.venv/bin/py-spy`, or
one on PATH; `bash bench/run.sh` installs it). Without py-spy it runs the server under cProfile
instead, which slows it down but ranks the same functions. It prints the functions with the most
self time, the most inclusive time, and the share of samples per layer (uvicorn, the event loop,
each part of mcp-core, anyio, ...). Coroutine stacks are flat in py-spy: a sample shows the
coroutine that was running, not the one awaiting it, so "inclusive" is within one task.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pstats
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import run  # bench/run.py: the servers, pinning and load generator are shared

# Where a frame's file lives -> the layer it is billed to (first match wins).
_LAYERS = (
    ("mcp-core core/http", f"{run.ROOT}/core/http/"),
    ("mcp-core core/services", f"{run.ROOT}/core/services/"),
    ("mcp-core core/protocol", f"{run.ROOT}/core/protocol/"),
    ("mcp-core core/machines", f"{run.ROOT}/core/machines/"),
    ("mcp-core adapters", f"{run.ROOT}/adapters/"),
    ("uvicorn", "/uvicorn/"),
    ("anyio", "/anyio/"),
    ("cattrs", "/cattrs/"),
    ("attrs", "attrs generated"),
    ("attrs", "/attr/"),
    ("mcp SDK", "/mcp/"),
    ("pydantic", "/pydantic"),
    ("starlette", "/starlette/"),
    ("sse-starlette", "/sse_starlette/"),
    ("fastmcp", "/fastmcp/"),
    ("asyncio", "/asyncio/"),
)


def _layer(frame: str) -> str:
    for name, marker in _LAYERS:
        if marker in frame:
            return name
    return "other"


def _short(frame: str) -> str:
    frame = re.sub(r":\d+\)$", ")", frame)
    frame = re.sub(r"\(/.*?/site-packages/", "(", frame)
    frame = frame.replace(str(run.ROOT) + "/", "")
    return re.sub(r"\(/usr/.*?/python3\.\d+/", "(", frame)


def summarize_pyspy(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        frames = stack.split(";")
        own[_short(frames[-1]) or "(no Python frame)"] += n
        layers[_layer(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n
    if not total:
        return "no samples"
    # The runner frames (uvicorn main, asyncio.run, click) hold every sample of the main task.
    skip = re.compile(
        r"^(<module>|_run_code|_run_module_as_main|main|run|asyncio_run|Command\.|"
        r"Context\.invoke|Server\.run|Runner\.run)"
    )
    out = [f"{total} samples (self time = the running Python frame, C calls included)", ""]
    out.append("self time, by layer:")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in layers.most_common()]
    out.append("")
    out.append("self time, by function:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append("")
    out.append("inclusive time (within a task), by function:")
    shown = [(f, n) for f, n in inclusive.most_common() if not skip.match(f)][:top]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in shown]
    return "\n".join(out)


def summarize_cprofile(path: Path, top: int) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Profile a benchmark server under load.")
    p.add_argument("--server", choices=("ours", "sdk", "fastmcp"), default="ours")
    p.add_argument("--mode", choices=("json", "sse"), default="json")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--cprofile", action="store_true", help="use cProfile even if py-spy exists")
    p.add_argument("--native", action="store_true", help="py-spy --native: C frames too")
    p.add_argument("--raw", help="keep py-spy's collapsed stacks here")
    args = p.parse_args(argv)

    run.NICE = -10 if os.geteuid() == 0 and shutil.which("nice") else 0
    ns = argparse.Namespace(servers="ours,sdk,fastmcp", ours_python=None, peer_python=None)
    servers, versions, _ = run._find_servers(ns)
    server = next((s for s in servers if s.key == args.server), None)
    if server is None:
        raise SystemExit(f"{args.server} is not available (bash bench/run.sh sets it up)")
    flags = run._uvicorn_flags(versions)
    pin = run._pinning()
    pyspy = shutil.which("py-spy", path=f"{run.BENCH / '.venv' / 'bin'}:{os.environ['PATH']}")
    use_cprofile = args.cprofile or pyspy is None
    loadgen = "wrk" if shutil.which("wrk") else "python"

    with run._stopping(), tempfile.TemporaryDirectory(prefix="mcp-profile-") as tmp:
        workdir = Path(tmp)
        prof = workdir / "server.prof"
        running = run._start_server(
            server, args.mode, flags, pin, workdir, profile=prof if use_cprofile else None
        )
        sessions = None
        if not (args.mode == "json" and server.stateless_json):
            sessions = workdir / "sessions.txt"
            run._open_sessions(running, args.concurrency, 8, pin, sessions)
        if loadgen == "wrk":
            host = f"127.0.0.1:{running.port}"
            argv = ["wrk", "-t1", f"-c{args.concurrency}", f"-d{args.seconds + 2:g}s"]
            argv += ["--timeout", "10s", "-s", str(run.WRK_SCRIPT), running.url]
            argv += ["--", host, run.NEEDLE, str(sessions or "")]
        else:
            argv = [sys.executable, str(run.LOADGEN), "load", running.url, "--warmup", "0"]
            argv += ["--concurrency", str(args.concurrency), "--duration", str(args.seconds + 2)]
            if sessions:
                argv += ["--sessions", str(sessions)]
        load = run.PROCS.start(run._pin(run.CLIENT_CPU, argv, pin), stdout=-1, stderr=-1)
        time.sleep(1.0)
        raw = Path(args.raw) if args.raw else workdir / "stacks.txt"
        if not use_cprofile:
            assert pyspy is not None
            spy = [pyspy, "record", "--pid", str(running.proc.pid), "--rate", str(args.rate)]
            spy += ["--duration", f"{args.seconds:g}", "--format", "raw", "--output", str(raw)]
            spy.append("--full-filenames")
            # --native needs to pause the process for each sample; plain sampling does not.
            spy.append("--native" if args.native else "--nonblocking")
            code, out, err = run.PROCS.run(run._pin(run.CLIENT_CPU, spy, pin), args.seconds + 60)
            if code != 0:
                raise SystemExit(f"py-spy failed ({code}): {err}{out}")
        out, _ = load.communicate(timeout=args.seconds + 60)
        run.PROCS.stop(load)
        if use_cprofile:
            running.proc.send_signal(signal.SIGINT)
            running.proc.wait(timeout=30)
        run.PROCS.stop(running.proc)
        text = out.decode()
        line = next((x for x in text.splitlines() if x.startswith("WRKJSON ")), text.strip())
        print(f"{server.label} {args.mode} c={args.concurrency}, {loadgen}: {line}")
        print()
        if use_cprofile:
            print(summarize_cprofile(prof, args.top))
        else:
            print(summarize_pyspy(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
