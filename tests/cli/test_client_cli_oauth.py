"""`mcp-core tools/call` against the demo with its authorization server on, as real processes:
the CLI meets the 401, registers, prints the authorization URL (no browser here) and receives
the redirect on its one-time loopback port; the tokens are kept sealed in the vault, so the next
command needs no browser at all. `--no-oauth` turns the flow off."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
from cli.test_cli import _cli
from oauth_e2e.test_demo_oauth import _free_port, demo

AUTHORIZE = re.compile(r"Open this page in your web browser to continue: (\S+)")
COMMAND_TIMEOUT_S = 60.0


def _environ(data_home: Path, *, keyring: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_CORE_VAULT_STORE", "BROWSER")}
    env["XDG_DATA_HOME"] = str(data_home)
    env["KEYRING_SECRET"] = base64.b64encode(os.urandom(32)).decode()
    # No display: the opener prints the URL instead of starting a browser.
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    if not keyring:
        del env["KEYRING_SECRET"]
    return env


def _run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str, list[str]]:
    """Run the CLI; play the user's browser for every authorization URL it prints."""
    process = subprocess.Popen(
        [*_cli(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    opened: list[str] = []
    err_lines: list[str] = []

    def watch_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            err_lines.append(line)
            found = AUTHORIZE.search(line)
            if found:
                opened.append(found.group(1))
                # The browser: follow the authorization server's redirect to the loopback port.
                httpx.get(found.group(1), follow_redirects=True, timeout=10)

    out_parts: list[str] = []

    def read_stdout() -> None:
        assert process.stdout is not None
        out_parts.append(process.stdout.read())

    # Each pipe has one reader (communicate() would read stderr too, stealing the URL).
    readers = [
        threading.Thread(target=watch_stderr, daemon=True),
        threading.Thread(target=read_stdout, daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=COMMAND_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
    return process.returncode, "".join(out_parts), "".join(err_lines), opened


def test_cli_authorizes_once_and_reuses_the_sealed_tokens(tmp_path: Path) -> None:
    server_env = _environ(tmp_path / "server")
    client_env = _environ(tmp_path / "client")
    port = _free_port()
    with demo(server_env, port) as url:
        code, out, err, opened = _run_cli(["tools", url], client_env)
        assert code == 0, err
        assert len(opened) == 1, err
        assert "code_challenge_method=S256" in opened[0]
        assert "resource=" in opened[0]
        assert "add" in out
        assert "echo" in out
        # The grant is in the client's vault, sealed: the next command needs no browser.
        vault_file = tmp_path / "client" / "mcp-core" / "vault.sqlite3"
        assert vault_file.exists()
        assert b"refresh_token" not in vault_file.read_bytes()
        code, out, err, opened = _run_cli(
            ["call", url, "add", "--arg", "numbers=[20, 22]"], client_env
        )
        assert code == 0, err
        assert opened == []
        assert out.strip() == "42.0"
        # Without the flow, the 401 is a clear one-line error.
        code, out, err, opened = _run_cli(["tools", url, "--no-oauth"], client_env)
        assert code == 1
        assert opened == []
        assert "401" in err
        assert "Traceback" not in err


def test_cli_without_a_keyring_authorizes_for_one_command_and_says_so(tmp_path: Path) -> None:
    server_env = _environ(tmp_path / "server")
    client_env = _environ(tmp_path / "client", keyring=False)
    with demo(server_env, _free_port()) as url:
        code, out, err, opened = _run_cli(["call", url, "echo", "--arg", "text=hi"], client_env)
        assert code == 0, err
        assert out.strip() == "hi"
        assert len(opened) == 1
        assert "KEYRING_SECRET is not set" in err
        assert not (tmp_path / "client" / "mcp-core" / "vault.sqlite3").exists()
