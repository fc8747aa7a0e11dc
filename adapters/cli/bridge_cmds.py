"""`mcp-core bridge`: the stdio entry of the shared local daemon; `mcp-core daemon`, the daemon.

```
mcp-core bridge [TARGET] [--idle-timeout S] [--max-attempts N] [--probe-timeout S]
                [--log-level L]
mcp-core daemon [TARGET] [--idle-timeout S] [--log-level L]     (started by a bridge)
```

Issue 6; docs/daemon.md. A desktop client launches `mcp-core bridge TARGET` as a stdio server.
The bridge loads TARGET (the same TARGET `mcp-core serve` takes; none is the demo server) only
to learn its name and version, finds the server's daemon through its lock file or spawns one
(`python -m mcp_core.adapters.cli daemon TARGET ...`, detached, in the bridge's working folder),
and relays stdin/stdout to it (`mcp_core.adapters.daemon.bridge`). `--idle-timeout` is the
idle time of a daemon this bridge spawns; `--max-attempts` and `--probe-timeout` bound its
recovery (`RecoveryLimits`).

Output contract: stdout carries nothing but MCP messages; logs go to stderr (warnings by
default), the daemon's to its log file next to the lock. A TARGET that cannot be loaded is one
line on stderr and exit status 1; otherwise the bridge exits 0 when the client closes stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
from typing import Any

from ._target import CliError

__all__ = ["add_bridge_commands"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _attempts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())


def _bridge(args: argparse.Namespace) -> int:
    import anyio

    from mcp_core.core.machines.daemon_recovery import RecoveryLimits
    from mcp_core.core.services.supervisor import DaemonSupervisor

    from ..daemon import LocalDaemonHost, daemon_version, paths_for, serve_bridge
    from ..system import SystemRandom
    from ._target import load_target

    _logging(args.log_level)
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the client's protocol stream
        target = load_target(args.target)
    server = target.mcp_server
    if server is None:
        raise CliError(f"{target.name}: the bridge needs an McpServer (or an app from create_app)")
    version = daemon_version(server)
    command = [sys.executable, "-m", "mcp_core.adapters.cli", "daemon"]
    if args.target is not None:
        command.append(args.target)
    command += ["--idle-timeout", repr(args.idle_timeout), "--log-level", args.daemon_log_level]
    try:
        limits = RecoveryLimits(max_attempts=args.max_attempts, probe_timeout=args.probe_timeout)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    host = LocalDaemonHost(
        paths_for(server.name), version=version, command=command, cwd=os.getcwd()
    )
    supervisor = DaemonSupervisor(host, version=version, random=SystemRandom(), limits=limits)
    anyio.run(functools.partial(serve_bridge, supervisor, path=target.path))
    return 0


def _daemon(args: argparse.Namespace) -> int:
    from ..daemon import run_daemon

    _logging(args.log_level)
    run_daemon(args.target, idle_timeout=args.idle_timeout, log_level=args.log_level)
    return 0


def add_bridge_commands(commands: Any) -> None:
    """Register `bridge` and `daemon` on the CLI's subparsers."""
    from ..daemon.daemon import DEFAULT_IDLE_TIMEOUT

    bridge = commands.add_parser(
        "bridge",
        help="stdio entry for desktop clients: relay to the shared local daemon",
        description=(
            "Relay stdio to the shared local daemon of TARGET, starting it if needed and "
            "restarting it if it dies. TARGET is what `mcp-core serve` takes; without it, "
            "the demo server."
        ),
    )
    bridge.add_argument("target", nargs="?", metavar="TARGET", help="the server to relay to")
    bridge.add_argument(
        "--idle-timeout",
        type=_positive,
        default=DEFAULT_IDLE_TIMEOUT,
        help="seconds without requests before a daemon this bridge starts exits (default: 600)",
    )
    bridge.add_argument(
        "--max-attempts",
        type=_attempts,
        default=5,
        help="failed tries in a row before giving up on the daemon (default: 5)",
    )
    bridge.add_argument(
        "--probe-timeout",
        type=_positive,
        default=10.0,
        help="seconds a daemon may take to answer its health route (default: 10)",
    )
    bridge.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="warning", help="the bridge's log on stderr"
    )
    bridge.add_argument(
        "--daemon-log-level",
        choices=_LOG_LEVELS,
        default="info",
        help="the log level of a daemon this bridge starts (its log file; default: info)",
    )
    bridge.set_defaults(run=_bridge)

    daemon = commands.add_parser("daemon", help="(internal) the shared daemon a bridge starts")
    daemon.add_argument("target", nargs="?", metavar="TARGET")
    daemon.add_argument("--idle-timeout", type=_positive, default=DEFAULT_IDLE_TIMEOUT)
    daemon.add_argument("--log-level", choices=_LOG_LEVELS, default="info")
    daemon.set_defaults(run=_daemon)
