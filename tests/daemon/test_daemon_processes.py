"""The shared daemon with real processes: bridges, a detached daemon, kill -9, races (issue 6).

Every test gets its own XDG_RUNTIME_DIR (so its own lock folder) and its own server file;
bridges are `mcp-core bridge` subprocesses spoken to over their real stdin/stdout; daemons are
the detached processes they spawn. Every wait is bounded, and the fixture kills every bridge
and every daemon of the test (found by the server file on their command line) at the end.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from mcp_core.adapters.daemon import paths_for, pid_alive

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX processes and /proc")

TIMEOUT_S = 30.0
SERVER_NAME = "daemon-test"
SERVER = textwrap.dedent(
    """
    import os
    import sys

    from mcp_core.core import McpServer

    if os.environ.get("DAEMON_TEST_CRASH") and "daemon" in sys.argv:
        sys.exit(3)  # the daemon cannot start; the bridge (same file) loads fine

    server = McpServer("daemon-test", version="2.0")

    @server.tool()
    def echo(text: str) -> str:
        \"\"\"Return the text.\"\"\"
        return text

    @server.tool()
    def whoami() -> str:
        \"\"\"The pid of the process serving this call.\"\"\"
        return str(os.getpid())
    """
)
INITIALIZE_PARAMS = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "daemon-test", "version": "1.0"},
}


class Bridge:
    """One `mcp-core bridge` subprocess, spoken to as a desktop client would."""

    def __init__(self, world: World, *extra: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = world.root / f"bridge-{len(world.bridges)}.log"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 (closed in close())
        command = [sys.executable, "-m", "mcp_core.adapters.cli", "bridge", str(world.server)]
        self.process = subprocess.Popen(
            [*command, "--log-level", "info", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**world.env, **(env or {})},
            cwd=world.root,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        self._next_id = 1

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self._next_id
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"{method}: no answer in {TIMEOUT_S}s; {self.log()}") from None
            if not line:
                raise AssertionError(f"{method}: the bridge closed stdout; {self.log()}")
            message = json.loads(line)
            if message.get("id") == request_id:
                return message

    def initialize(self) -> dict[str, Any]:
        answer = self.request("initialize", INITIALIZE_PARAMS)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer

    def call(self, tool: str, **arguments: Any) -> str:
        answer = self.request("tools/call", {"name": tool, "arguments": arguments})
        assert "result" in answer, f"{tool}: {answer}; {self.log()}"
        assert answer["result"]["isError"] is False, answer
        text: str = answer["result"]["content"][0]["text"]
        return text

    def log(self) -> str:
        self._stderr.flush()
        return "bridge log:\n" + self.stderr_path.read_text(errors="replace")[-3000:]

    def close(self) -> int | None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            code = None
        self._stderr.close()
        return code


class World:
    """One test's runtime folder, server file, bridges and daemons."""

    def __init__(self, root: Path) -> None:
        self.root = root
        runtime = root / "run"
        runtime.mkdir(mode=0o700)
        self.server = root / "server.py"
        self.server.write_text(SERVER)
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
        self.env.pop("DAEMON_TEST_CRASH", None)
        self.paths = paths_for(SERVER_NAME, {"XDG_RUNTIME_DIR": str(runtime)})
        self.bridges: list[Bridge] = []

    def bridge(self, *extra: str, env: dict[str, str] | None = None) -> Bridge:
        bridge = Bridge(self, *extra, env=env)
        self.bridges.append(bridge)
        return bridge

    def record(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.paths.record.read_bytes())
        except FileNotFoundError:
            return None
        return data

    def daemons(self) -> list[int]:
        """Live daemon processes serving this test's server file."""
        marker = str(self.server).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"daemon" in argv and marker in argv and pid_alive(int(entry.name)):
                found.append(int(entry.name))
        return found

    def wait_for(self, condition: Any, what: str, timeout: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def cleanup(self) -> None:
        for bridge in self.bridges:
            if bridge.process.poll() is None:
                bridge.process.kill()
            bridge.close()
        for pid in self.daemons():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


def test_kill_9_under_a_live_bridge_then_the_next_call_succeeds(world: World) -> None:
    bridge = world.bridge()
    info = bridge.initialize()
    assert info["result"]["serverInfo"]["name"] == SERVER_NAME
    first = int(bridge.call("whoami"))
    assert world.daemons() == [first]
    record = world.record()
    assert record is not None
    assert record["pid"] == first

    os.kill(first, signal.SIGKILL)
    world.wait_for(lambda: not pid_alive(first), "the killed daemon to be gone")

    assert bridge.call("echo", text="still here") == "still here"
    second = int(bridge.call("whoami"))
    assert second != first
    assert world.daemons() == [second]
    assert bridge.close() == 0


def test_the_lock_is_owner_only_and_the_daemon_requires_its_token(world: World) -> None:
    bridge = world.bridge()
    bridge.initialize()
    record = world.record()
    assert record is not None
    assert world.paths.folder.stat().st_mode & 0o777 == 0o700
    assert world.paths.record.stat().st_mode & 0o777 == 0o600
    url = f"http://127.0.0.1:{record['port']}/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE_PARAMS}
    headers = {"accept": "application/json, text/event-stream"}
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.post(url, json=body, headers=headers).status_code == 401
        wrong = {**headers, "authorization": "Bearer " + "x" * len(record["token"])}
        assert client.post(url, json=body, headers=wrong).status_code == 401
        right = {**headers, "authorization": f"Bearer {record['token']}"}
        assert client.post(url, json=body, headers=right).status_code == 200
        assert client.get(f"http://127.0.0.1:{record['port']}/healthz").status_code == 200


def test_ten_bridges_started_at_once_share_exactly_one_daemon(world: World) -> None:
    bridges = [world.bridge() for _ in range(10)]
    pids: list[int] = []
    errors: list[BaseException] = []

    def client(bridge: Bridge) -> None:
        try:
            bridge.initialize()
            pids.append(int(bridge.call("whoami")))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(b,)) for b in bridges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S * 2)
    assert not errors, errors[0]
    assert len(pids) == 10
    assert len(set(pids)) == 1
    assert world.daemons() == pids[:1]
    spawned = sum(b.log().count("spawned the daemon") for b in bridges)
    assert spawned == 1


def test_a_corrupt_lock_file_is_swept_and_recovered(world: World) -> None:
    world.paths.folder.mkdir(mode=0o700)
    world.paths.record.write_bytes(b'{"pid": 12, "port": ')  # truncated mid-write
    bridge = world.bridge()
    bridge.initialize()
    daemon = int(bridge.call("whoami"))
    record = world.record()
    assert record is not None
    assert record["pid"] == daemon
    assert "not JSON" in bridge.log()

    # Corrupted again under the live daemon: a new bridge sweeps it and starts its own daemon,
    # and the first bridge keeps working with the daemon it has.
    world.paths.record.write_bytes(b"\x00garbage")
    late = world.bridge()
    late.initialize()
    assert int(late.call("whoami")) != daemon
    assert int(bridge.call("whoami")) == daemon


def test_a_lock_of_another_version_is_swept(world: World) -> None:
    world.paths.folder.mkdir(mode=0o700)
    # A live process of the other version (not a daemon: it must not be signalled).
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = {"pid": other.pid, "port": 9, "token": "old", "version": "1.0; mcp-core 0.0.1"}
        world.paths.record.write_text(json.dumps(stale))
        bridge = world.bridge()
        bridge.initialize()
        daemon = int(bridge.call("whoami"))
        record = world.record()
        assert record is not None
        assert record["pid"] == daemon
        assert record["version"].startswith("2.0; mcp-core ")
        assert other.poll() is None  # swept, not killed
    finally:
        other.kill()
        other.wait(timeout=10)


def test_an_idle_daemon_exits_and_the_next_request_starts_one(world: World) -> None:
    bridge = world.bridge("--idle-timeout", "1.5")
    bridge.initialize()
    first = int(bridge.call("whoami"))
    world.wait_for(lambda: not pid_alive(first), "the idle daemon to exit", timeout=15)
    assert world.record() is None  # it removed its own record on the way out
    time.sleep(1.0)  # the bridge's watchdog saw the exit ...
    assert world.daemons() == []  # ... and did not start a daemon nobody asked for
    second = int(bridge.call("whoami"))
    assert second != first
    assert bridge.close() == 0


def test_a_daemon_that_cannot_start_is_given_up_with_a_clear_error(world: World) -> None:
    bridge = world.bridge("--max-attempts", "2", env={"DAEMON_TEST_CRASH": "1"})
    answer = bridge.request("initialize", INITIALIZE_PARAMS)
    assert answer["error"]["code"] == -32603
    message = answer["error"]["message"]
    assert "the local mcp-core daemon is unavailable" in message
    assert "died with exit code 1" in message  # the import failed: `mcp-core` exits 1
    assert "gave up after 2 failed attempts" in message
    # Later requests get the same answer at once; the bridge stays up until stdin closes.
    again = bridge.request("tools/list")
    assert again["error"]["message"] == message
    assert bridge.close() == 0


def test_a_lock_whose_pid_was_recycled_is_swept_and_that_process_left_alone(world: World) -> None:
    """A crashed daemon's record whose pid the kernel gave to an unrelated process (here a
    `sleep`): the bridge sweeps it and starts a daemon, instead of probing, failing to stop
    and giving up until the file is deleted by hand."""
    world.paths.folder.mkdir(mode=0o700)
    version = f"2.0; mcp-core {importlib.metadata.version('mcp-core')}"
    recycled = subprocess.Popen(["sleep", "60"])
    try:
        stale = {"pid": recycled.pid, "port": 9, "token": "gone", "version": version}
        world.paths.record.write_text(json.dumps(stale))
        bridge = world.bridge("--probe-timeout", "2", "--max-attempts", "2")
        bridge.initialize()
        daemon = int(bridge.call("whoami"))
        record = world.record()
        assert record is not None
        assert record["pid"] == daemon != recycled.pid
        assert recycled.poll() is None  # swept, never signalled
        assert "did not prove" not in bridge.log()  # not even probed
    finally:
        recycled.kill()
        recycled.wait(timeout=10)
