"""Runs the conformance suite's authorization-server scenarios against mcp-core's built-in
authorization server. Called by `scripts/conformance.sh authorization`, which installs Node and
the suite first and passes their paths; not meant to be run alone.

What it does, all on loopback:
1. serves `examples/conformance_authorization_server.py` with `mcp-core serve` on a free port,
   with one public client pre-registered for the suite's callback port;
2. runs `conformance authorization --url <issuer> --client-id ... --resource <issuer>/mcp`;
3. plays the user's browser: when the harness prints the authorization URL, fetches it and
   follows the redirect (consent is automatic: one local user) to the harness's callback;
4. reads every scenario's checks.json and prints one line per scenario, then
   "N passed, M failed". A scenario passes when none of its checks is a FAILURE (and, with
   --strict-warnings, none is a WARNING).

Exit status: 0 when nothing failed, 1 otherwise, 4 when the server did not come up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "examples" / "conformance_authorization_server.py"
CLIENT_ID = "conformance-client"
START_TIMEOUT_S = 30.0
SERVING = re.compile(r"^mcp-core: serving .* at (http://127\.0\.0\.1:\d+)/mcp$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, callback_port: int) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        MCP_CORE_AS_ISSUER=f"http://127.0.0.1:{port}",
        MCP_CORE_AS_CALLBACK_PORT=str(callback_port),
        MCP_CORE_AS_CLIENT_ID=CLIENT_ID,
    )
    command = [sys.executable, "-m", "mcp_core.adapters.cli"]
    command += ["serve", f"{FIXTURE}:build", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True
    )
    assert server.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = ""
    # The one announced line; `readline` returns "" if the server dies first.
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line or SERVING.match(line.strip()):
            break
    if not SERVING.match(line.strip()):
        server.kill()
        server.wait()
        print("conformance_authorization: the authorization server did not start", file=sys.stderr)
        sys.exit(4)
    return server


def play_browser(url: str) -> None:
    """What the user's browser does: GET the authorization URL and follow the redirects to the
    harness's callback (urllib follows 302 by itself)."""
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            answer.read()
    except Exception as exc:  # the harness reports what it did not receive
        print(f"  (browser: {type(exc).__name__}: {exc})", file=sys.stderr)


def run_harness(args: argparse.Namespace, issuer: str, callback_port: int, out: Path) -> int:
    command = [args.node, "--import", args.preload, args.dist, "authorization"]
    command += ["--url", issuer, "--client-id", CLIENT_ID, "--resource", f"{issuer}/mcp"]
    command += ["-p", str(callback_port), "-o", str(out)]
    if args.scenario:
        command += ["--scenario", args.scenario]
    if args.spec_version:
        command += ["--spec-version", args.spec_version]
    harness = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=out
    )
    assert harness.stdout is not None
    authorize = re.compile(rf"^{re.escape(issuer)}/authorize\?\S+$")
    log = out / "harness.log"
    with log.open("w") as keep:
        for line in harness.stdout:
            keep.write(line)
            if authorize.match(line.strip()):
                # The harness starts its callback server right after printing the URL.
                threading.Timer(0.3, play_browser, args=(line.strip(),)).start()
    return harness.wait()


def summarize(out: Path, strict_warnings: bool) -> tuple[int, int]:
    passed = failed = 0
    for checks_file in sorted(out.glob("*/checks.json")):
        scenario = checks_file.parent.name.removeprefix("authorization-server-")
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", scenario)
        checks: list[dict[str, Any]] = json.loads(checks_file.read_text())
        statuses = [check.get("status") for check in checks]
        bad = {"FAILURE"} | ({"WARNING"} if strict_warnings else set())
        ok = bool(checks) and not any(status in bad for status in statuses)
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(map(str, statuses))))
        print(f"{'PASS' if ok else 'FAIL'} {scenario}: {counts}")
        if not ok:
            for check in checks:
                if check.get("status") in bad:
                    print(f"    {check.get('id')}: {check.get('errorMessage', '')}")
        passed, failed = passed + ok, failed + (not ok)
    return passed, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--dist", required=True)
    parser.add_argument("--preload", required=True)
    parser.add_argument("--scenario")
    parser.add_argument("--spec-version")
    parser.add_argument("--strict-warnings", action="store_true")
    parser.add_argument("-o", dest="output", help="keep the results there")
    args = parser.parse_args()
    out = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="mcp-core-as-"))
    out.mkdir(parents=True, exist_ok=True)
    port, callback_port = free_port(), free_port()
    server = start_server(port, callback_port)
    try:
        run_harness(args, f"http://127.0.0.1:{port}", callback_port, out)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    passed, failed = summarize(out, args.strict_warnings)
    if passed + failed == 0:
        print(f"no scenario ran (see {out / 'harness.log'})")
        failed = 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
