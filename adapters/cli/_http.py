"""`mcp-core serve` over HTTP: uvicorn on a socket the CLI binds itself.

Spec: MCP 2025-11-25 "Transports" > "Streamable HTTP" > "Security Warning" (bind to localhost
when running locally).

The CLI binds the listening socket before starting uvicorn, so that a port in use is a clean
one-line error, and `--port 0` has a real port to announce. Once uvicorn is serving, exactly
one line goes to stdout, `mcp-core: serving <name> at http://HOST:PORT/mcp`, flushed, for
scripts to read; every log line (uvicorn's access log included) goes to stderr.

Graceful shutdown (docs/shutdown.md). On the first SIGTERM or SIGINT, the MCP app's drain
hook (`McpAsgiApp.begin_shutdown`, found in the app as the endpoint path is) runs on the event
loop: standalone SSE streams end with a `retry` hint, new requests get 503. uvicorn then stops
accepting, waits up to `_GRACEFUL_SHUTDOWN_S` for in-flight requests, sends the lifespan
shutdown (the app closes its stores), and the process exits 0. A second signal of either kind
forces the exit: uvicorn stops waiting and the signal is re-raised, so the process ends by it.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._target import CliError, _find_mcp_app

__all__ = ["bind_socket", "drain_hook", "is_loopback", "serve_http", "url_host"]

log = logging.getLogger("mcp_core.cli")

# The deadline for in-flight requests once a stop is asked for; then uvicorn cancels them.
_GRACEFUL_SHUTDOWN_S = 5


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (uvicorn makes it listen); CliError when that is impossible."""
    bare = host.strip("[]")
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":
            # Rebind at once after a restart (a listener still holding the port is refused).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise CliError(f"cannot listen on {url_host(host)}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _run_drain(drain: Callable[[], None]) -> None:
    try:
        drain()
    except Exception:
        log.exception("the application's drain hook failed; shutting down without it")


def _log_config() -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    # uvicorn writes its access log to stdout; stdout is reserved for the one announced line.
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def drain_hook(app: Any) -> Callable[[], None] | None:
    """The app's drain hook: its own `begin_shutdown`, or that of an McpAsgiApp it mounts."""
    found = _find_mcp_app(app)
    if found is not None:
        return found[0].begin_shutdown
    hook = getattr(app, "begin_shutdown", None)
    return hook if callable(hook) else None


class Deferred:
    """An app that needs the port it will listen on (a URL it hands out): built after binding."""

    def __init__(self, build: Callable[[int], Any]) -> None:
        self.build = build


def serve_http(app: Any, *, name: str, host: str, port: int, path: str, log_level: str) -> None:
    """Serve `app` until interrupted. Raises CliError for what the user can fix.

    `app` may also be a `Deferred`: built once the socket is bound, from the real port.
    """
    try:
        import uvicorn
    except ImportError:
        raise CliError("serving over HTTP needs uvicorn: pip install 'mcp-core[serve]'") from None

    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    if isinstance(app, Deferred):
        try:
            app = app.build(actual_port)
        except BaseException:
            sock.close()
            raise
    line = f"mcp-core: serving {name} at http://{url_host(host)}:{actual_port}{path}"
    drain = drain_hook(app)

    class AnnouncingServer(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)
            if self.started:
                print(line, flush=True)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Not super(): uvicorn records every signal and re-raises it once serving ends,
            # which would turn a graceful stop into death by SIGTERM; and it forces the exit
            # only on a second SIGINT, where a second SIGTERM should force it too.
            if self.should_exit:
                self.force_exit = True
                self._captured_signals.append(sig)  # re-raised: the process ends by it
                return
            self.should_exit = True
            if drain is not None and self.loop is not None:
                # A signal handler must not touch the loop's objects: schedule the drain.
                self.loop.call_soon_threadsafe(_run_drain, drain)

    config = uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=actual_port,
        log_level=log_level,
        log_config=_log_config(),
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    server = AnnouncingServer(config)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        # uvicorn exits this way when the application's lifespan startup fails (it logged why).
        raise CliError("the application failed to start (see the log above)") from None
    finally:
        sock.close()
    if not server.started:
        raise CliError("the server did not start (see the log above)")
