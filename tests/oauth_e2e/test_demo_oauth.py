"""The demo (`mcp-core serve`, README's first command) with its authorization server on, as a
real process on the embedded SQLite store: a client registers, authorizes with PKCE, calls a
tool, refreshes, and is refused after revocation; the signing keys and grants live in the
vault's store, so a token issued before a restart is still good after it, and a family revoked
before the restart stays revoked."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cli.test_cli import HEADERS, HTTP_TIMEOUT_S, INITIALIZE, STOP_TIMEOUT_S, _cli

from .flow import obtain_tokens

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def demo(env: dict[str, str], port: int) -> Iterator[str]:
    """The demo on 127.0.0.1:`port`; yields its MCP URL once it announced itself."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [*_cli(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env=env,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # the one announced line, or "" if it died
            if "serving" not in line:
                process.kill()
                stderr.seek(0)
                raise AssertionError(f"the demo did not start: {line!r}\n{stderr.read()}")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
            assert process.stdout is not None
            process.stdout.close()


def _call(url: str, token: str) -> httpx.Response:
    """Initialize and call `add` with `token`; the last response (401 stops early)."""
    headers = {**HEADERS, "authorization": f"Bearer {token}"}
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        init = http.post(url, json=INITIALIZE, headers=headers)
        if init.status_code != 200:
            return init
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
        headers["mcp-protocol-version"] = "2025-11-25"
        http.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        return http.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "add", "arguments": {"numbers": [2, 40]}},
            },
            headers=headers,
        )


def _text(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]["content"][0]["text"]


def test_demo_oauth_flow_survives_a_restart_and_revocation_sticks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MCP_CORE_VAULT_STORE"}
    env["KEYRING_SECRET"] = base64.b64encode(os.urandom(32)).decode()
    env["XDG_DATA_HOME"] = str(tmp_path)
    port = _free_port()
    with demo(env, port) as url:
        tokens = obtain_tokens(url)
        assert _text(_call(url, tokens["access_token"])) == "42.0"
        refreshed = httpx.post(
            tokens["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "client_id": tokens["client_id"],
                "refresh_token": tokens["refresh_token"],
            },
            timeout=HTTP_TIMEOUT_S,
        )
        assert refreshed.status_code == 200, refreshed.text
        second = refreshed.json()
        other = obtain_tokens(url)  # a second grant, revoked below
    # The store is the vault's SQLite file; the keys in it are sealed.
    vault_file = tmp_path / "mcp-core" / "vault.sqlite3"
    assert vault_file.exists()
    assert b"PRIVATE KEY" not in vault_file.read_bytes()

    with demo(env, port) as url:
        # Same keys, same grants: the refreshed token still works after the restart.
        assert _text(_call(url, second["access_token"])) == "42.0"
        revoked = httpx.post(
            other["token_endpoint"].replace("/token", "/revoke"),
            data={"client_id": other["client_id"], "token": other["refresh_token"]},
            timeout=HTTP_TIMEOUT_S,
        )
        assert revoked.status_code == 200
        assert _call(url, other["access_token"]).status_code == 401

    with demo(env, port) as url:
        assert _call(url, other["access_token"]).status_code == 401  # still revoked
        assert _text(_call(url, second["access_token"])) == "42.0"
