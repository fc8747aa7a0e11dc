"""The daemon process: `mcp-core daemon TARGET`, spawned detached by a bridge.

Issue 6. Serves TARGET (the same TARGET `mcp-core serve` takes) over Streamable HTTP on
127.0.0.1 with a port the OS picks, with `mcp-core serve`'s uvicorn runner (graceful shutdown
on SIGTERM/SIGINT included: docs/shutdown.md). Theory of operation:

1. A random bearer token is drawn (32 bytes, `secrets`): it never appears on a command line.
2. Once the socket is bound, the daemon publishes its record in the lock (`LockFile.publish`:
   pid, port, token, version), replacing the spawning bridge's record. If another live daemon
   of the same version published first (a live process of this user that is an mcp-core
   daemon: a recycled pid in a stale record does not count), this one exits with status 1 and
   the bridges use that one.
3. The app is wrapped in `DaemonGate`: every route but `/healthz` requires the token, the
   health answer carries the proof that this process holds the token (so a bridge never sends
   the token to a port another process took over), and after
   `idle_timeout` seconds with no MCP request in flight the daemon removes its own record and
   sends itself SIGTERM, which drains and exits 0 like any graceful stop.
4. However it ends (idle, a signal, an error), it removes its own record on the way out; a
   `kill -9` cannot, and that stale record is what bridges sweep.

The version in the record is `daemon_version(server)`: the server's own version and
mcp-core's, so a bridge of either another server version or another library version sees a
stale daemon and starts its own.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import secrets
import signal
import sys
from typing import Any

from mcp_core.adapters.config import BRIDGE_IDLE_TIMEOUT
from mcp_core.core.services.server import McpServer
from mcp_core.ports.daemon import DaemonHostError, LockRecord

from .gate import HEALTH_PATH, DaemonGate, IdleMonitor
from .host import daemon_alive
from .lockfile import LockFile
from .paths import paths_for

__all__ = ["DEFAULT_IDLE_TIMEOUT", "daemon_version", "run_daemon"]

log = logging.getLogger("mcp_core.daemon")

DEFAULT_IDLE_TIMEOUT = BRIDGE_IDLE_TIMEOUT
# The route a bridge's probe asks (`LocalDaemonHost`'s default): open without the token.


def daemon_version(server: McpServer) -> str:
    """What a daemon and its bridges must agree on: the server's and mcp-core's versions."""
    try:
        library = importlib.metadata.version("mcp-core")
    except importlib.metadata.PackageNotFoundError:
        library = "unknown"
    return f"{server.version}; mcp-core {library}"


def run_daemon(spec: str | None, *, idle_timeout: float, log_level: str) -> None:
    """Serve TARGET `spec` as the shared daemon until idle or stopped (blocks)."""
    from ..asgi import create_app
    from ..cli._http import Deferred, serve_http
    from ..cli._target import CliError, load_target

    with contextlib.redirect_stdout(sys.stderr):
        target = load_target(spec)
    server = target.mcp_server
    if server is None:
        raise CliError(f"{target.name}: a daemon needs an McpServer (or an app made by create_app)")
    lock = LockFile(paths_for(server.name))
    version = daemon_version(server)
    token = secrets.token_urlsafe(32)
    pid = os.getpid()
    app: Any = target.app if target.app is not None else create_app(server)

    def on_idle() -> None:
        log.info("no request for %gs: the daemon exits", idle_timeout)
        with contextlib.suppress(DaemonHostError):
            lock.remove_own(pid)
        os.kill(pid, signal.SIGTERM)

    monitor = IdleMonitor(idle_timeout, on_idle)

    def build(port: int) -> DaemonGate:
        record = LockRecord(pid=pid, port=port, token=token, version=version)
        try:
            other = lock.publish(record, alive=daemon_alive)
        except DaemonHostError as exc:
            raise CliError(f"cannot publish the daemon's lock record: {exc}") from None
        if other is not None:
            raise CliError(f"a daemon of {server.name} already runs (pid {other.pid})")
        monitor.start()
        return DaemonGate(app, token=token, path=target.path, idle=monitor, health_path=HEALTH_PATH)

    try:
        serve_http(
            Deferred(build),
            name=server.name,
            host="127.0.0.1",
            port=0,
            path=target.path,
            log_level=log_level,
        )
    finally:
        monitor.stop()
        with contextlib.suppress(DaemonHostError):
            lock.remove_own(pid)
