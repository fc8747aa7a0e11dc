"""Who the daemon is, and who may talk to it (issue 6, review fixes).

- `DaemonGate` requires the bearer token on every route of the TARGET app but the health route
  (in process, through `httpx.ASGITransport`, with a real `create_app` and an extra route);
- the health answer carries `health_proof(token, challenge)`, and `LocalDaemonHost`'s probe
  refuses a port whose answer lacks it: an impostor that took a dead daemon's port never counts
  as healthy, so it is never sent the token (a real impostor process, spawned by the host);
- a lock record whose pid now belongs to an unrelated process reads as dead and is never
  signalled (a real `sleep` process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.daemon import DaemonGate, LocalDaemonHost, LockFile, paths_for
from mcp_core.adapters.daemon.gate import (
    CHALLENGE_HEADER,
    PROOF_HEADER,
    Receive,
    Scope,
    Send,
    health_proof,
)
from mcp_core.core import McpServer
from mcp_core.ports.daemon import DaemonHealthy, DaemonUnhealthy, LockRecord

TOKEN = "s3cret-token"
BASE = "http://127.0.0.1:8000"
VERSION = "2.0; mcp-core test"


async def _relay_form(scope: Scope, receive: Receive, send: Send) -> None:
    """An extra route standing for a relay form: it answers 200 to whoever reaches it."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"the relay form"})


def _gate() -> DaemonGate:
    server = McpServer("gate-test", version="1.0")
    app = create_app(server, extra_routes={"/relay": _relay_form})
    return DaemonGate(app, token=TOKEN, path="/mcp", idle=None)


@pytest.mark.anyio
async def test_every_route_but_health_requires_the_token() -> None:
    transport = httpx.ASGITransport(app=_gate())
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        for path in ("/relay", "/relay/", "/anything", "/mcp"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
            wrong = await client.get(path, headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401, path
        assert (await client.post("/relay", content=b"api_key=x")).status_code == 401
        right = {"authorization": f"Bearer {TOKEN}"}
        reached = await client.get("/relay", headers=right)
        assert (reached.status_code, reached.text) == (200, "the relay form")
        assert (await client.get("/anything", headers=right)).status_code == 404  # the app's
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert PROOF_HEADER not in health.headers  # no challenge, no proof


@pytest.mark.anyio
async def test_the_health_answer_proves_the_token_without_revealing_it() -> None:
    transport = httpx.ASGITransport(app=_gate())
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        answer = await client.get("/healthz", headers={CHALLENGE_HEADER: "abc-123"})
        assert answer.status_code == 200
        proof = answer.headers[PROOF_HEADER]
        assert proof == health_proof(TOKEN, "abc-123")
        assert proof != health_proof(TOKEN, "abc-124") != health_proof("other", "abc-123")
        assert TOKEN not in answer.text
        assert TOKEN not in proof
        too_long = await client.get("/healthz", headers={CHALLENGE_HEADER: "x" * 129})
        assert too_long.status_code == 200
        assert PROOF_HEADER not in too_long.headers


IMPOSTOR = textwrap.dedent(
    """
    import http.server, sys

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as file:
        file.write(str(server.server_address[1]))
    server.serve_forever()
    """
)


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX processes")
@pytest.mark.anyio
async def test_a_port_held_by_another_process_is_never_healthy(
    runtime: Path, tmp_path: Path
) -> None:
    """The record names a live pid and a port whose health route answers 200, but not with
    the proof: the probe reports it unhealthy, so the bridge never relays (or sends its token)
    there."""
    paths = paths_for("identity-test", {"XDG_RUNTIME_DIR": str(runtime)})
    port_file = tmp_path / "port"
    command = [sys.executable, "-c", IMPOSTOR, str(port_file)]
    host = LocalDaemonHost(paths, version=VERSION, command=command, stop_grace=2.0)
    pid = await host.spawn()
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline, "the impostor never listened"
            await anyio.sleep(0.02)
        port = int(port_file.read_text())
        async with httpx.AsyncClient(trust_env=False) as client:
            plain = await client.get(f"http://127.0.0.1:{port}/healthz")
        assert plain.status_code == 200  # it looks healthy to anyone who asks
        record = LockRecord(pid=pid, port=port, token=TOKEN, version=VERSION)
        assert LockFile(paths).publish(record, alive=lambda _: False) is None
        outcome = await host.probe_health(pid, timeout=0.5)
        assert isinstance(outcome, DaemonUnhealthy), outcome
        assert "did not prove it is the daemon" in outcome.reason
    finally:
        await host.stop_daemon(pid)
    assert not host.pid_alive(pid)


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX processes and /proc")
@pytest.mark.anyio
async def test_a_recycled_pid_is_not_the_daemon_and_is_never_signalled(
    runtime: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    paths = paths_for("identity-test", {"XDG_RUNTIME_DIR": str(runtime)})
    host = LocalDaemonHost(paths, version=VERSION, command=["false"], stop_grace=0.5)
    daemon_record = LockRecord(pid=sleeper.pid, port=9, token=TOKEN, version=VERSION)
    assert not host.holder_alive(daemon_record)
    assert not host.pid_alive(sleeper.pid)
    # A spawning record's writer is a bridge, which may be any program: a live process counts.
    assert host.holder_alive(LockRecord(pid=sleeper.pid, version=VERSION))
    paths.folder.mkdir(mode=0o700)
    stale = {"pid": sleeper.pid, "port": 9, "token": TOKEN, "version": VERSION}
    paths.record.write_text(json.dumps(stale))
    await host.stop_daemon(sleeper.pid)
    assert sleeper.poll() is None  # not signalled
    outcome = await host.probe_health(sleeper.pid, timeout=0.5)
    assert not isinstance(outcome, DaemonHealthy)
    assert sleeper.poll() is None
