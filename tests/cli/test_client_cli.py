"""`mcp-core tools|call|resources|prompts`: the CLI's client role against real servers.

Spec: MCP 2025-11-25 "Server Features" > "Tools" (`inputSchema`, `isError`,
`structuredContent`), "Resources", "Prompts"; "Transports" > "Streamable HTTP" and "stdio";
"Authorization" > "Token Handling" (the bearer token on every request). The output contract
checked here is in `mcp_core.adapters.cli.client_cmds`: text or `--output json` on stdout,
failures as one `mcp-core: error:` line on stderr with exit status 1.

Over HTTP the server is the demo server (plus two tools that exercise argument conversion and
`isError`) under uvicorn in a thread on 127.0.0.1, port picked by the OS; over stdio it is
`mcp-core serve --stdio` launched by the command under test. The CLI runs in this process
through `main(argv)`, except where the exit status of the real program is the point.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import attrs
import pytest
import uvicorn

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.asgi.resource_server import ProtectedResource
from mcp_core.adapters.cli import main
from mcp_core.adapters.cli._target import CliError
from mcp_core.adapters.cli.client_cmds import TOKEN_VARIABLE, arguments_for, parse_target
from mcp_core.adapters.cli.demo import build_demo_server
from mcp_core.core import McpServer, ToolError
from mcp_core.ports.tokens import AccessTokenInfo, TokenInvalid

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
GOOD_TOKEN = "cli-test-token-1"


def _server(calls: list[dict[str, Any]]) -> McpServer:
    """The demo server plus `configure` (every JSON type of argument, recorded) and `fail`."""
    server = build_demo_server()

    @server.tool()
    def configure(
        count: int,
        ratio: float,
        verbose: bool,
        tags: list[str],
        options: dict[str, int],
        label: str,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Echo the arguments back as structured content."""
        received = {
            "count": count,
            "ratio": ratio,
            "verbose": verbose,
            "tags": tags,
            "options": options,
            "label": label,
            "limit": limit,
        }
        calls.append(received)
        return received

    @server.tool()
    def fail(reason: Annotated[str, "Why the tool fails."]) -> str:
        """Always fail, with `reason` as the error text."""
        raise ToolError(f"it failed: {reason}")

    return server


@contextlib.contextmanager
def _uvicorn(app_for_port: Any) -> Iterator[str]:
    """Serve `app_for_port(port)` on 127.0.0.1 in a thread; yields the MCP endpoint's URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app_for_port(port), log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during startup"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_TIMEOUT_S)
        sock.close()


@attrs.frozen
class Demo:
    url: str
    calls: list[dict[str, Any]]


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    calls: list[dict[str, Any]] = []
    with _uvicorn(lambda port: create_app(_server(calls))) as url:
        yield Demo(url=url, calls=calls)


class StaticTokenVerifier:
    """Accepts exactly `GOOD_TOKEN`, for the resource it is asked about."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def verify(self, token: str, *, resource: str) -> AccessTokenInfo:
        self.seen.append(token)
        if token != GOOD_TOKEN:
            raise TokenInvalid("unknown", "not the test token")
        return AccessTokenInfo(
            subject="alice",
            client_id="mcp-core-cli",
            scopes=frozenset(),
            audience=(resource,),
            issuer="https://auth.example",
            expires_at=time.time() + 3600,
        )


@attrs.frozen
class Protected:
    url: str
    verifier: StaticTokenVerifier


@pytest.fixture(scope="module")
def protected() -> Iterator[Protected]:
    verifier = StaticTokenVerifier()

    def app(port: int) -> Any:
        return ProtectedResource(
            create_app(build_demo_server()),
            verifier,
            resource=f"http://127.0.0.1:{port}/mcp",
            authorization_servers=["https://auth.example"],
        )

    with _uvicorn(app) as url:
        yield Protected(url=url, verifier=verifier)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mcp-core: error: "), err
    assert "Traceback" not in err
    return lines[0]


STDIO_SERVER = (sys.executable, "-m", "mcp_core.adapters.cli", "serve", "--stdio")


# ---- listing --------------------------------------------------------------------------------


def test_tools_lists_names_descriptions_and_arguments(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "tools", demo.url)
    assert code == 0, err
    lines = out.splitlines()
    for name in ("echo", "add", "now", "word_count", "countdown", "configure", "fail"):
        assert name in lines
    at = lines.index("echo")
    assert "Return the text unchanged" in lines[at + 1]
    assert lines[at + 2] == "    --arg text=...  (string, required)  The text to send back."
    assert any("max_tokens=...  (integer, default 200)" in line for line in lines)


def test_tools_json_output_is_the_servers_tool_list(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "tools", demo.url, "--output", "json")
    assert code == 0
    listed = json.loads(out)["tools"]
    expected = [tool.definition() for tool in _server([]).tools.all()]
    assert listed == json.loads(json.dumps(expected))


# ---- calling --------------------------------------------------------------------------------


def test_call_converts_arguments_by_the_input_schema(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        "call",
        demo.url,
        "configure",
        "--arg", "count=3",
        "--arg", "ratio=0.5",
        "--arg", "verbose=true",
        "--arg", 'tags=["a", "b"]',
        "--arg", 'options={"x": 1}',
        "--arg", "label=123",
        "--arg", "limit=7",
        "--output", "json",
    )  # fmt: skip
    assert code == 0, err
    expected = {
        "count": 3,
        "ratio": 0.5,
        "verbose": True,
        "tags": ["a", "b"],
        "options": {"x": 1},
        "label": "123",  # a string property keeps the text, even when it looks like a number
        "limit": 7,
    }
    assert json.loads(out)["structuredContent"] == expected
    assert demo.calls[-1] == expected


def test_call_prints_structured_content_once_and_text(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "call", demo.url, "word_count", "--arg", "text=to be or not")
    assert code == 0
    assert json.loads(out) == {"words": 4, "characters": 12, "lines": 1, "unique_words": 4}
    code, out, _ = run(capsys, "call", demo.url, "echo", "--arg", "text=hello there")
    assert (code, out) == (0, "hello there\n")


def test_call_with_json_arguments_and_arg_override(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "call", demo.url, "add", "--json", '{"numbers": [1, 2, 3.5]}')
    assert (code, out) == (0, "6.5\n")
    code, out, _ = run(
        capsys, "call", demo.url, "add", "--json", '{"numbers": [1]}', "--arg", "numbers=[2, 2]"
    )
    assert (code, out) == (0, "4.0\n")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--arg", "count=abc"], "argument 'count': expected an integer, got 'abc'"),
        (["--arg", "verbose=maybe"], "argument 'verbose': expected a boolean, got 'maybe'"),
        (["--arg", "tags=[1"], "argument 'tags': expected an array"),
        (["--arg", "colour=red"], "tool 'configure' has no argument 'colour'"),
        (["--arg", "count=1", "--arg", "count=2"], "argument 'count' is given twice"),
        (["--arg", "count=1"], "missing required argument(s): ratio (number), verbose (boolean)"),
        (["--arg", "tags=[1]"], "argument 'tags' at 0: 1 is not of type \"string\""),
        (["--json", "[1]"], "--json must be a JSON object, not an array"),
    ],
)
def test_bad_arguments_are_refused_before_sending(
    demo: Demo, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    full = {
        "count": "1",
        "ratio": "1",
        "verbose": "false",
        "tags": "[]",
        "options": "{}",
        "label": "x",
    }
    given = {a.split("=", 1)[0] for a in argv if "=" in a}
    # Complete the call except where the case is about what is missing.
    if "missing" not in expected and not argv[0].startswith("--json"):
        for name, value in full.items():
            if name not in given:
                argv = [*argv, "--arg", f"{name}={value}"]
    before = len(demo.calls)
    code, out, err = run(capsys, "call", demo.url, "configure", *argv)
    assert code == 1
    assert out == ""
    assert expected in one_error_line(err)
    assert len(demo.calls) == before  # nothing was sent


def test_schema_limits_are_checked_and_no_validate_leaves_it_to_the_server(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "call", demo.url, "countdown", "--arg", "seconds=100")
    assert code == 1
    assert "argument 'seconds': 100 is greater than the maximum of 60" in one_error_line(err)
    code, out, err = run(
        capsys, "call", demo.url, "countdown", "--arg", "seconds=100", "--no-validate"
    )
    assert (code, out) == (1, "")  # the server's isError result
    assert err.startswith("mcp-core: tool countdown failed: Invalid arguments for tool countdown")


def test_is_error_result_exits_1_with_its_text_on_stderr(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "call", demo.url, "fail", "--arg", "reason=kaput")
    assert (code, out) == (1, "")
    assert err == "mcp-core: tool fail failed: it failed: kaput\n"
    code, out, _ = run(capsys, "call", demo.url, "fail", "--arg", "reason=x", "--output", "json")
    assert code == 1
    assert json.loads(out) == {
        "content": [{"type": "text", "text": "it failed: x"}],
        "isError": True,
    }


def test_unknown_tool_and_protocol_error(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "call", demo.url, "nope")
    assert code == 1
    assert "the server has no tool 'nope' (it offers: add, ask," in one_error_line(err)
    # `ask` needs the client's sampling capability, which the CLI does not declare.
    code, _, err = run(capsys, "call", demo.url, "ask", "--arg", "question=why")
    assert code == 1
    assert one_error_line(err) == (
        "mcp-core: error: the server answered with error -32600: "
        "the client did not declare the sampling capability"
    )


# ---- resources and prompts --------------------------------------------------------------------


def test_resources_list_and_read(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "resources", demo.url)
    assert code == 0
    assert "demo://readme  (About this server, text/markdown)" in out.splitlines()
    assert "demo://tools/{name}  (Tool definition, application/json)" in out.splitlines()
    code, out, _ = run(capsys, "resources", demo.url, "--output", "json")
    listing = json.loads(out)
    assert [r["uri"] for r in listing["resources"]] == ["demo://readme"]
    assert [t["uriTemplate"] for t in listing["resourceTemplates"]] == ["demo://tools/{name}"]
    code, out, _ = run(capsys, "resources", demo.url, "--read", "demo://tools/echo")
    assert code == 0
    assert json.loads(out)["name"] == "echo"
    code, out, _ = run(capsys, "resources", demo.url, "--read", "demo://readme", "-o", "json")
    assert code == 0
    assert json.loads(out)["contents"][0]["text"].startswith("# mcp-core demo server")


def test_reading_a_missing_resource_is_one_error_line(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "resources", demo.url, "--read", "demo://tools/nope")
    assert code == 1
    assert "Resource not found" in one_error_line(err)


def test_prompts_list_and_get(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prompts", demo.url)
    assert code == 0
    assert "summarize  (Summarize a text)" in out.splitlines()
    code, out, _ = run(
        capsys, "prompts", demo.url, "--get", "summarize", "--arg", "text=abc", "--arg",
        "style=bullets",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines()[0] == "[user]"
    assert "bullet points" in out
    assert out.rstrip().endswith("abc")
    code, _, err = run(capsys, "prompts", demo.url, "--get", "summarize")
    assert code == 1
    assert "missing required argument(s): text" in one_error_line(err)


# ---- stdio ----------------------------------------------------------------------------------


def test_stdio_server_tools_call_and_resources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tools", "--stdio", *STDIO_SERVER)
    assert code == 0, err
    assert "countdown" in out.splitlines()
    code, out, err = run(
        capsys, "call", "add", "--arg", "numbers=[1, 2]", "--output", "json",
        "--stdio", *STDIO_SERVER,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["content"] == [{"type": "text", "text": "3.0"}]
    code, out, _ = run(capsys, "resources", "--read", "demo://readme", "--stdio", *STDIO_SERVER)
    assert code == 0
    assert out.startswith("# mcp-core demo server")


def test_stdio_server_that_exits_is_reported_with_its_last_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = "import sys; print('no config found', file=sys.stderr); sys.exit(3)"
    code, _, err = run(capsys, "tools", "--stdio", sys.executable, "-c", script)
    assert code == 1
    line = one_error_line(err)
    assert "closed before the response arrived" in line
    assert line.endswith("(the server's last words: no config found)")
    code, _, err = run(capsys, "tools", "--stdio", "/nonexistent/mcp-server")
    assert code == 1
    assert one_error_line(err) == (
        "mcp-core: error: cannot start '/nonexistent/mcp-server': No such file or directory"
    )


# ---- failures and authorization -----------------------------------------------------------------


def _cli() -> list[str]:
    script = shutil.which("mcp-core", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mcp_core.adapters.cli"]


def test_unreachable_server_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    done = subprocess.run(
        [*_cli(), "tools", url], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert one_error_line(done.stderr).startswith(f"mcp-core: error: {url}: POST initialize")


def test_a_silent_server_times_out(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        started = time.monotonic()
        code, _, err = run(capsys, "tools", url, "--timeout", "0.3")
        elapsed = time.monotonic() - started
    assert code == 1
    assert one_error_line(err) == f"mcp-core: error: {url}: no answer within 0.3 s (see --timeout)"
    assert elapsed < 5


def test_http_error_status_is_one_line(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "tools", demo.url.removesuffix("/mcp") + "/elsewhere")
    assert code == 1
    assert "HTTP 404" in one_error_line(err)


def test_bearer_token_from_option_or_environment(
    protected: Protected, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    code, _, err = run(capsys, "tools", protected.url)
    assert code == 1
    assert "HTTP 401" in one_error_line(err)

    code, out, err = run(capsys, "tools", protected.url, "--token", "wrong-token")
    assert code == 1
    assert "HTTP 401" in one_error_line(err)
    assert protected.verifier.seen[-1] == "wrong-token"

    code, out, err = run(capsys, "call", protected.url, "echo", "--arg", "text=hi", "--token",
                         GOOD_TOKEN)  # fmt: skip
    assert (code, out) == (0, "hi\n"), err
    seen = len(protected.verifier.seen)
    monkeypatch.setenv(TOKEN_VARIABLE, GOOD_TOKEN)
    code, out, err = run(capsys, "tools", protected.url)
    assert code == 0, err
    assert "echo" in out.splitlines()
    # initialize, initialized, tools/list (and the GET stream, the DELETE) each carried it.
    assert protected.verifier.seen[seen:].count(GOOD_TOKEN) >= 3


def test_target_syntax_errors(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["tools"], "no server given"),
        (["tools", "localhost:8000/mcp"], "is not an http(s) URL"),
        (["tools", "http://127.0.0.1:1/mcp", "--stdio", "x"], "not both"),
        (["tools", "--stdio"], "--stdio needs the command"),
        (["tools", "--token", "t", "--stdio", "x"], "--token applies to HTTP servers"),
    ]
    for argv, expected in cases:
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert expected in one_error_line(err), argv
    code, _, err = run(capsys, "call", "http://127.0.0.1:1/mcp", "echo", "--arg", "novalue")
    assert code == 2
    assert "expected NAME=VALUE, got 'novalue'" in err


# ---- conversion rules, without a server ---------------------------------------------------------


def test_conversion_follows_unions_refs_and_unknown_types() -> None:
    tool = {
        "name": "t",
        "inputSchema": {
            "type": "object",
            "properties": {
                "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "either": {"type": ["integer", "string"]},
                "point": {"$ref": "#/$defs/Point"},
                "anything": {},
                "mode": {"enum": ["fast", "slow"]},
                "whole": {"type": "integer"},
            },
            "$defs": {"Point": {"type": "object"}},
        },
    }
    given = [
        ("maybe", "null"),
        ("either", "abc"),
        ("point", '{"x": 1}'),
        ("anything", "[1, 2]"),
        ("mode", "fast"),
        ("whole", "3.0"),
    ]
    assert arguments_for(tool, given) == {
        "maybe": None,
        "either": "abc",
        "point": {"x": 1},
        "anything": [1, 2],
        "mode": "fast",
        "whole": 3,
    }
    assert arguments_for(tool, [("either", "12")]) == {"either": 12}
    with pytest.raises(CliError, match=r"argument 'mode': .*is not one of"):
        arguments_for(tool, [("mode", "medium")])
    with pytest.raises(CliError, match="argument 'maybe': expected an integer or a null"):
        arguments_for(tool, [("maybe", "x")])
    # Without a schema (--no-validate): JSON when it parses, else the text.
    assert arguments_for(None, [("a", "1"), ("b", "x y"), ("c", "true")]) == {
        "a": 1,
        "b": "x y",
        "c": True,
    }


def test_parse_target_accepts_urls_and_commands() -> None:
    assert parse_target("https://example.com/mcp", None).url == "https://example.com/mcp"
    assert parse_target(None, ["srv", "--flag"]).command == ("srv", "--flag")
    assert parse_target(None, ["--", "srv"]).command == ("srv",)
