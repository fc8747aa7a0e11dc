"""`mcp-core`: the command line.

```
mcp-core serve [TARGET] [--host H] [--port P] [--stdio] [--no-auth]
               [--response-mode auto|json|sse] [--log-level L]
```

`serve` runs an MCP server: over Streamable HTTP with uvicorn (MCP 2025-11-25 "Transports" >
"Streamable HTTP"), or over stdin/stdout with `--stdio` ("Transports" > "stdio"). TARGET is a
file (`examples/app.py[:obj]`) or a module (`pkg.mod[:obj]`) holding an `McpServer`, an ASGI
app, or a function without arguments returning one (see `_target.py`); without TARGET the
bundled demo server is served.

Output contract, for scripts: over HTTP, stdout gets exactly one line once the server listens,
`mcp-core: serving <name> at http://HOST:PORT/mcp` (the real port with `--port 0`); over stdio,
stdout carries nothing but MCP messages. Logs and warnings go to stderr. Errors (a bad target,
a failed import, a port in use) exit with status 1 and one line on stderr, no traceback.

`keys` and `vault` (the credential vault's keys and records) live in `vault_cmds.py`, `config`
(the resolved settings) in `config_cmds.py`, the client commands `tools`, `call`, `resources`
and `prompts` (a server at a URL, or launched over stdio) in `client_cmds.py`; a subcommand
registered there sets `run(args) -> int`, which `main` calls.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import sys
from typing import Any, cast

from mcp_core.core.services.streamable_http import ResponseMode

from ._target import CliError, Target, load_target
from .bridge_cmds import add_bridge_commands
from .client_cmds import add_client_commands
from .config_cmds import add_config_commands
from .vault_cmds import add_vault_commands

__all__ = ["main"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_TRACE = 5  # uvicorn's TRACE level, below DEBUG


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0 picks a free one), not {value}")
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("mcp-core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-core", description="Run Model Context Protocol servers built with mcp-core."
    )
    parser.add_argument("--version", action="version", version=f"mcp-core {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve an MCP server over HTTP (default) or stdio",
        description=(
            "Serve an MCP server. TARGET is a file (path/app.py[:obj]) or a module "
            "(package.module[:obj]) holding an McpServer, an ASGI app, or a function without "
            "arguments returning one; without :obj, `app` then `server` is used. Without "
            "TARGET, the bundled demo server is served."
        ),
    )
    serve.add_argument("target", nargs="?", metavar="TARGET", help="what to serve")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="the demo without its OAuth authorization server (every session is the local user)",
    )
    # Defaults live in the configuration (adapters/config.py): an option not given leaves the
    # value to MCP_CORE_* variables, then the config file, then the defaults.
    serve.add_argument("--host", default=None, help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=None, help="port to listen on; 0 picks a free one"
    )
    serve.add_argument(
        "--config", default=None, help="a TOML config file (default: MCP_CORE_CONFIG, ...)"
    )
    serve.add_argument(
        "--stdio", action="store_true", help="serve over stdin/stdout instead of HTTP"
    )
    serve.add_argument(
        "--response-mode",
        choices=("auto", "json", "sse"),
        default=None,
        help="answer POSTs as JSON, SSE, or JSON unless the handler streams (default: auto)",
    )
    serve.add_argument(
        "--log-level",
        choices=_LOG_LEVELS,
        default=None,
        help="log verbosity on stderr (default: info over HTTP, warning over stdio)",
    )
    add_vault_commands(commands)
    add_config_commands(commands)
    add_client_commands(commands)
    add_bridge_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        run = getattr(args, "run", None)  # set by the subcommands of other modules
        if run is not None:
            return int(run(args))
        _serve(args)
    except CliError as exc:
        print(f"mcp-core: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _configure_logging(level_name: str) -> None:
    level = _TRACE if level_name == "trace" else getattr(logging, level_name.upper())
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


def _load(spec: str | None) -> Target:
    # Whatever the target prints while it is imported must not reach stdout (see above).
    with contextlib.redirect_stdout(sys.stderr):
        return load_target(spec)


def _serve(args: argparse.Namespace) -> None:
    from ..config import ConfigError, load_settings

    try:
        settings = load_settings(
            {
                "host": args.host,
                "port": args.port,
                "response_mode": args.response_mode,
                "log_level": args.log_level,
                "config": args.config,
            }
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.stdio:
        level = settings.log_level or "warning"
        _configure_logging(level)
        target = _load(args.target)
        server = target.mcp_server
        if server is None:
            raise CliError(
                f"{target.name} is an ASGI application; --stdio needs an McpServer "
                "(or an app made by create_app)"
            )
        from ..stdio import run_stdio

        run_stdio(server)
        return

    level = settings.log_level or "info"
    _configure_logging(level)
    target = _load(args.target)
    from ._http import is_loopback, serve_http, url_host

    mode = cast(ResponseMode, settings.response_mode)
    app: Any
    if args.target is None:
        # The demo runs with the vault on: its relay form's URL needs the real port.
        from ._http import Deferred
        from .demo_app import build_demo_app

        host, store = url_host(settings.host), settings.vault_store
        app = Deferred(
            lambda port: build_demo_app(
                host=host, port=port, response_mode=mode, store=store, auth=not args.no_auth
            )
        )
    elif target.server is not None:
        from ..asgi import create_app

        app = create_app(
            target.server,
            response_mode=mode,
            idle_timeout=settings.session_idle_timeout,
            max_sessions=settings.max_sessions,
            max_body_bytes=settings.max_body_bytes,
            allowed_hosts=settings.allowed_hosts,
            allowed_origins=settings.allowed_origins,
        )
    else:
        app = target.app
        if settings.response_mode != "auto":
            _warn(f"response mode {settings.response_mode} is ignored: the target is an ASGI app")
    if not is_loopback(settings.host):
        _warn(
            f"listening on {settings.host}, reachable from other machines; Host/Origin "
            "validation still admits only loopback names unless allowed_hosts is configured"
        )
    serve_http(
        app,
        name=target.name,
        host=settings.host,
        port=settings.port,
        path=target.path,
        log_level=level,
    )


def _warn(message: str) -> None:
    print(f"mcp-core: warning: {message}", file=sys.stderr, flush=True)
