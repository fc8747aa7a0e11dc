"""`mcp-core serve`: real subprocesses over real HTTP, and the CLI's error handling.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP" (initialize, session id, tools/call over
POST) and its security warning (bind to loopback). The output contract checked here: one line
on stdout, `mcp-core: serving <name> at http://HOST:PORT/PATH`, once listening; errors are one
line on stderr and a non-zero exit, never a traceback.

Every server binds 127.0.0.1 on a port the OS picks (`--port 0`), is waited on with a timeout
and is always stopped.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import httpx
import orjson
import pytest
from oauth_e2e.flow import obtain_tokens

from mcp_core.adapters.cli import _http as cli_http
from mcp_core.adapters.cli import main
from mcp_core.adapters.cli._target import CliError, load_target

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 10.0
ANNOUNCEMENT = re.compile(
    r"^mcp-core: serving (?P<name>.+) at (?P<url>http://127\.0\.0\.1:(?P<port>\d+)(?P<path>/\S*))$"
)
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "cli-test", "version": "1.0"},
    },
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _cli() -> list[str]:
    script = shutil.which("mcp-core", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mcp_core.adapters.cli"]


@attrs.frozen
class Served:
    name: str
    url: str
    path: str
    process: subprocess.Popen[str]
    extra_stdout: queue.Queue[str]


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def demo_environ(data_home: Path) -> dict[str, str]:
    """An environment for the demo: a fresh vault key, its SQLite store under `data_home`."""
    env = {k: v for k, v in os.environ.items() if k != "MCP_CORE_VAULT_STORE"}
    env["KEYRING_SECRET"] = base64.b64encode(os.urandom(32)).decode()
    env["XDG_DATA_HOME"] = str(data_home)
    return env


@contextlib.contextmanager
def serving(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """Run `mcp-core serve ARGS --port 0` and wait for its announcement; always stop it."""
    with tempfile.TemporaryFile("w+") as stderr, tempfile.TemporaryDirectory() as home:
        process = subprocess.Popen(
            [*_cli(), "serve", *args, "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=cwd or REPO,
            env=env if env is not None else demo_environ(Path(home)),
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
                pytest.fail(f"no announcement within {START_TIMEOUT_S} s; stderr:\n{stderr.read()}")
            found = ANNOUNCEMENT.match(first.rstrip("\n"))
            assert found, f"unexpected first line on stdout: {first!r}"
            yield Served(
                name=found["name"],
                url=found["url"],
                path=found["path"],
                process=process,
                extra_stdout=lines,
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
            reader.join(timeout=STOP_TIMEOUT_S)
            process.stdout.close()


def _body(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a POST answered as JSON or as an SSE stream."""
    if response.headers["content-type"].startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message: dict[str, Any] = orjson.loads(line[5:])
                if "id" in message:
                    return message
        raise AssertionError(f"no response in the stream: {response.text!r}")
    body: dict[str, Any] = response.json()
    return body


def _initialize_and_call(
    url: str, tool: str, arguments: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Initialize and call `tool`; behind OAuth (the demo), with a token got the way a client
    gets one (tests/oauth_e2e/flow.py)."""
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        headers = dict(HEADERS)
        init = client.post(url, json=INITIALIZE, headers=headers)
        if init.status_code == 401:
            tokens = obtain_tokens(url)
            headers["authorization"] = f"Bearer {tokens['access_token']}"
            init = client.post(url, json=INITIALIZE, headers=headers)
        assert init.status_code == 200, init.text
        session = {**headers, "mcp-session-id": init.headers["mcp-session-id"]}
        session["mcp-protocol-version"] = "2025-11-25"
        note = client.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
        )
        assert note.status_code == 202
        call = client.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            },
            headers=session,
        )
        assert call.status_code == 200, call.text
        return _body(init), _body(call)


# ---- serving over HTTP --------------------------------------------------------------------------


def test_serve_demo_with_port_zero_announces_the_url_and_answers_mcp() -> None:
    with serving() as served:
        assert served.name == "mcp-core-demo"
        assert served.path == "/mcp"
        init, call = _initialize_and_call(served.url, "add", {"numbers": [1, 2, 3.5]})
        assert init["result"]["serverInfo"]["name"] == "mcp-core-demo"
        assert call["result"]["content"] == [{"type": "text", "text": "6.5"}]
    # Exactly one line went to stdout: access logs and the rest went to stderr.
    assert served.extra_stdout.empty()


def test_demo_asks_for_its_credential_once_and_keeps_it_sealed_in_sqlite(
    tmp_path: Path,
) -> None:
    env = demo_environ(tmp_path)
    with serving(env=env) as served:
        relay = served.url.removesuffix("/mcp") + "/relay"
        _, before = _initialize_and_call(served.url, "fortune", {})
        assert before["result"]["isError"] is True
        assert before["result"]["content"][0]["text"] == f"not configured: open {relay}"
        page = httpx.get(relay, timeout=10)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        nonce = re.search(r'name="mcp_core_nonce" value="([^"]+)"', page.text)
        assert nonce is not None
        posted = httpx.post(
            relay,
            data={"mcp_core_nonce": nonce.group(1), "api_key": "demo-SECRETVALUE42"},
            timeout=10,
        )
        assert posted.status_code == 200
        assert "demo-SECRETVALUE42" not in posted.text
        _, after = _initialize_and_call(served.url, "fortune", {})
        assert after["result"]["isError"] is False
        assert "key ending UE42" in after["result"]["content"][0]["text"]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "mcp-core").glob("vault.sqlite3*"))
    assert stored, "the demo's vault is the embedded SQLite store"
    assert b"demo-SECRETVALUE42" not in stored


def test_demo_without_a_keyring_refuses_to_start(tmp_path: Path) -> None:
    env = demo_environ(tmp_path)
    del env["KEYRING_SECRET"]
    result = subprocess.run(
        [*_cli(), "serve", "--host", "127.0.0.1", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert "KEYRING_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mcp-core").exists()


def test_serve_module_object_target_calls_a_factory(tmp_path: Path) -> None:
    (tmp_path / "factory_target.py").write_text(
        textwrap.dedent(
            '''
            from mcp_core.core import McpServer

            def make_server() -> McpServer:
                server = McpServer("from-a-factory")

                @server.tool()
                def double(x: int) -> int:
                    """Twice x."""
                    return 2 * x

                return server
            '''
        )
    )
    with serving("factory_target:make_server", cwd=tmp_path) as served:
        assert served.name == "from-a-factory"
        _, call = _initialize_and_call(served.url, "double", {"x": 21})
        assert call["result"]["content"][0]["text"] == "42"


def test_serve_file_path_target_finds_server_and_honours_response_mode(tmp_path: Path) -> None:
    target = tmp_path / "app.py"
    target.write_text(
        textwrap.dedent(
            '''
            from mcp_core.core import McpServer

            server = McpServer("from-a-file")

            @server.tool()
            def shout(text: str) -> str:
                """Upper-case a text."""
                return text.upper()
            '''
        )
    )
    with serving(str(target), "--response-mode", "sse") as served:
        assert served.name == "from-a-file"
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            init = client.post(served.url, json=INITIALIZE, headers=HEADERS)
            assert init.headers["content-type"].startswith("text/event-stream")
        _, call = _initialize_and_call(served.url, "shout", {"text": "hey"})
        assert call["result"]["content"][0]["text"] == "HEY"


def test_serve_reads_its_settings_from_the_environment_and_the_config_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "app.py"
    target.write_text(
        "from mcp_core.core import McpServer\n"
        "server = McpServer('configured')\n"
        "@server.tool()\n"
        "def ping_tool() -> str:\n"
        "    'Answer pong.'\n"
        "    return 'pong'\n"
    )
    config = tmp_path / "config.toml"
    config.write_text('response_mode = "json"\nmax_body_bytes = 2048\n')
    env = demo_environ(tmp_path)
    env["MCP_CORE_CONFIG"] = str(config)
    env["MCP_CORE_RESPONSE_MODE"] = "sse"  # the environment beats the file
    with serving(str(target), env=env) as served, httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        init = client.post(served.url, json=INITIALIZE, headers=HEADERS)
        assert init.headers["content-type"].startswith("text/event-stream")
        big = client.post(
            served.url,
            content=b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"'
            + b"x" * 4096
            + b'"}}',
            headers={**HEADERS, "mcp-session-id": init.headers["mcp-session-id"]},
        )
        assert big.status_code == 413  # the file's max_body_bytes


def test_serve_with_a_bad_setting_names_it_and_its_source(tmp_path: Path) -> None:
    env = demo_environ(tmp_path)
    env["MCP_CORE_PORT"] = "seventy"
    result = subprocess.run(
        [*_cli(), "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "MCP_CORE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_asgi_app_announces_the_mounted_endpoint() -> None:
    with serving("examples/fastapi_app.py") as served:
        assert served.name == "fastapi-example"
        assert served.path == "/api/mcp"
        _, call = _initialize_and_call(served.url, "greet", {"name": "Ada"})
        assert call["result"]["content"][0]["text"] == "Hello, Ada!"


# ---- errors -------------------------------------------------------------------------------------


def _run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_cli(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=START_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def test_bad_target_exits_non_zero_with_one_line_and_no_traceback() -> None:
    done = _run_cli("serve", "no/such/file.py", "--port", "0")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "mcp-core: error: no such file: no/such/file.py\n"


def test_port_in_use_exits_non_zero_with_a_clear_message() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_cli("serve", "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"mcp-core: error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("source", "suffix", "message"),
    [
        ("x = 1\n", "", "defines neither `app` nor `server`"),
        ("x = 1\n", ":missing", "has no attribute 'missing'"),
        ("x = 1\n", ":x", "is a int, not an McpServer, an ASGI application"),
        ("raise RuntimeError('boom at import')\n", "", "RuntimeError: boom at import"),
        ("import no_such_module_for_mcp_core_tests\n", "", "ModuleNotFoundError"),
        ("def app():\n    return 42\n", "", "app() returned a int, not an McpServer"),
        ("def app():\n    raise ValueError('no')\n", "", "calling "),
    ],
)
def test_unusable_target_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, suffix: str, message: str
) -> None:
    target = tmp_path / "target_under_test.py"
    target.write_text(source)
    assert main(["serve", f"{target}{suffix}", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mcp-core: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_missing_module_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "no_such_package_for_mcp_core.sub:app"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "mcp-core: error: no module named 'no_such_package_for_mcp_core' "
        "(run from the folder that holds it, or give a file path)\n"
    )


def test_stdio_needs_an_mcp_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "plain_asgi.py"
    target.write_text("async def app(scope, receive, send):\n    pass\n")
    assert main(["serve", str(target), "--stdio"]) == 1
    assert "--stdio needs an McpServer" in capsys.readouterr().err


def test_usage_errors_and_no_command_exit_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["serve", "--port", "70000"]) == 2
    assert "a port is 0 to 65535" in capsys.readouterr().err


# ---- in process: what the CLI decides before serving --------------------------------------------


def test_non_loopback_host_warns_about_host_validation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli_http, "serve_http", lambda app, **kw: calls.append(kw))
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 0
    assert calls[0]["host"] == "0.0.0.0"
    err = capsys.readouterr().err
    assert "mcp-core: warning: listening on 0.0.0.0" in err
    assert "allowed_hosts" in err
    assert main(["serve", "--host", "localhost", "--port", "0"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.5.5.5", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("0.0.0.0", False), ("::", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert cli_http.is_loopback(host) is loopback


def test_url_host_brackets_ipv6() -> None:
    assert cli_http.url_host("::1") == "[::1]"
    assert cli_http.url_host("[::1]") == "[::1]"
    assert cli_http.url_host("127.0.0.1") == "127.0.0.1"


def test_no_target_is_the_demo_server() -> None:
    target = load_target(None)
    assert target.server is not None
    assert target.name == "mcp-core-demo"
    assert {"echo", "add", "now", "word_count"} <= {t.name for t in target.server.tools.all()}


def test_module_without_object_prefers_app_over_server(tmp_path: Path) -> None:
    target = tmp_path / "both.py"
    target.write_text(
        textwrap.dedent(
            """
            from mcp_core.adapters.asgi import create_app
            from mcp_core.core import McpServer

            server = McpServer("plain")
            app = create_app(McpServer("wrapped"), path="/custom")
            """
        )
    )
    loaded = load_target(str(target))
    assert loaded.app is not None
    assert (loaded.name, loaded.path) == ("wrapped", "/custom")
    assert loaded.mcp_server is not None
    assert loaded.mcp_server.name == "wrapped"
    assert load_target(f"{target}:server").name == "plain"


def test_a_file_is_imported_under_a_unique_module_name(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "app.py", tmp_path / "b" / "app.py"
    for path, name in ((first, "first"), (second, "second")):
        path.parent.mkdir()
        path.write_text(f"from mcp_core.core import McpServer\nserver = McpServer({name!r})\n")
    assert load_target(str(first)).name == "first"
    assert load_target(str(second)).name == "second"


def test_errors_are_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="not an attribute name"):
        load_target(f"{tmp_path / 'x.py'}:not-valid")
    with pytest.raises(CliError, match="neither a file that exists nor a module path"):
        load_target("not a module")


@pytest.fixture(autouse=True)
def _keep_sys_path() -> Iterator[None]:
    # Loading targets puts folders on sys.path; keep each test's change to itself.
    saved = list(sys.path)
    yield
    sys.path[:] = saved
