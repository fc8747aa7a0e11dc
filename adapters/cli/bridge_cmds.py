"""`mcp-core bridge`: the stdio entry of the shared local daemon; `mcp-core daemon`, the daemon.

```
mcp-core bridge [TARGET] [--idle-timeout S] [--max-attempts N] [--probe-timeout S]
                [--log-level L] [--daemon-log-level L] [--config PATH]
mcp-core daemon [TARGET] [--idle-timeout S] [--log-level L]     (started by a bridge)
```

Issue 6; docs/daemon.md. A desktop client launches `mcp-core bridge TARGET` as a stdio server.
The bridge loads TARGET (the same TARGET `mcp-core serve` takes; none is the demo server) only
to learn its name and version, finds the server's daemon through its lock file or spawns one
(`python -m mcp_core.adapters.cli daemon TARGET ...`, detached, in the bridge's working folder),
and relays stdin/stdout to it (`mcp_core.adapters.daemon.bridge`). `--idle-timeout` is the
idle time of a daemon this bridge spawns; `--max-attempts` and `--probe-timeout` bound its
recovery (`RecoveryLimits`).

Settings: each option is the explicit layer of a `bridge_*` setting of `mcp_core.adapters.config`
(docs/configuration.md), so an option not given falls to `MCP_CORE_BRIDGE_*`, then the config
file, then the defaults. The options are therefore kept as strings and validated by the
resolver, whose errors name the option, variable or file key. `plan_bridge` is that whole
step, with no I/O but reading the config file: it returns the daemon command, the recovery
limits and the bridge's log level, and `_bridge` uses exactly that. The settings are resolved
before TARGET is loaded, so a bad one fails fast. The internal `daemon` command reads no
configuration: the bridge that starts it passes everything on its command line.

Output contract: stdout carries nothing but MCP messages; logs go to stderr (warnings by
default), the daemon's to its log file next to the lock. A TARGET that cannot be loaded is one
line on stderr and exit status 1; otherwise the bridge exits 0 when the client closes stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._target import CliError

if TYPE_CHECKING:
    from mcp_core.core.machines.daemon_recovery import RecoveryLimits

__all__ = ["BridgePlan", "add_bridge_commands", "plan_bridge"]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


@attrs.frozen(kw_only=True)
class BridgePlan:
    """What `mcp-core bridge` will do, once its settings are resolved."""

    # The command that starts this TARGET's daemon (`... daemon [TARGET] --idle-timeout S
    # --log-level L`); the supervisor spawns it detached.
    daemon_command: tuple[str, ...]
    limits: RecoveryLimits
    log_level: str  # the bridge's own, on stderr


def plan_bridge(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> BridgePlan:
    """Resolve the bridge's settings (options > `environ` > config file > defaults).

    `environ` defaults to the real environment. Raises `CliError` with every problem.
    """
    from mcp_core.core.machines.daemon_recovery import RecoveryLimits

    from ..config import ConfigError, load_settings

    explicit = {
        "config": args.config,
        "bridge_idle_timeout": args.idle_timeout,
        "bridge_max_attempts": args.max_attempts,
        "bridge_probe_timeout": args.probe_timeout,
        "bridge_log_level": args.log_level,
        "bridge_daemon_log_level": args.daemon_log_level,
    }
    try:
        settings = load_settings(explicit, environ)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    command = [sys.executable, "-m", "mcp_core.adapters.cli", "daemon"]
    if args.target is not None:
        command.append(args.target)
    command += [
        "--idle-timeout",
        repr(settings.bridge_idle_timeout),
        "--log-level",
        settings.bridge_daemon_log_level,
    ]
    try:
        limits = RecoveryLimits(
            max_attempts=settings.bridge_max_attempts,
            probe_timeout=settings.bridge_probe_timeout,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return BridgePlan(
        daemon_command=tuple(command), limits=limits, log_level=settings.bridge_log_level
    )


def _bridge(args: argparse.Namespace) -> int:
    import anyio

    from mcp_core.core.services.supervisor import DaemonSupervisor

    from ..daemon import LocalDaemonHost, daemon_version, paths_for, serve_bridge
    from ..stdio.server import _log_to_stderr
    from ..system import SystemRandom
    from ._target import load_target

    plan = plan_bridge(args)
    _log_to_stderr(plan.log_level)
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the client's protocol stream
        target = load_target(args.target)
    server = target.mcp_server
    if server is None:
        raise CliError(f"{target.name}: the bridge needs an McpServer (or an app from create_app)")
    version = daemon_version(server)
    host = LocalDaemonHost(
        paths_for(server.name),
        version=version,
        command=list(plan.daemon_command),
        cwd=os.getcwd(),
    )
    supervisor = DaemonSupervisor(host, version=version, random=SystemRandom(), limits=plan.limits)
    anyio.run(functools.partial(serve_bridge, supervisor, path=target.path))
    return 0


def _daemon(args: argparse.Namespace) -> int:
    from ..daemon import run_daemon
    from ..stdio.server import _log_to_stderr

    _log_to_stderr(args.log_level)
    run_daemon(args.target, idle_timeout=args.idle_timeout, log_level=args.log_level)
    return 0


def add_bridge_commands(commands: Any) -> None:
    """Register `bridge` and `daemon` on the CLI's subparsers."""
    # Not the daemon package: this runs for every command, and config holds the default.
    from ..config import BRIDGE_IDLE_TIMEOUT, BRIDGE_LOG_LEVELS

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
    # No types and no defaults on purpose: an option not given leaves the value to
    # MCP_CORE_BRIDGE_*, the config file and the defaults, and the resolver validates it.
    bridge.add_argument(
        "--idle-timeout",
        default=None,
        metavar="S",
        help="seconds without requests before a daemon this bridge starts exits "
        "(MCP_CORE_BRIDGE_IDLE_TIMEOUT; default: 600)",
    )
    bridge.add_argument(
        "--max-attempts",
        default=None,
        metavar="N",
        help="failed tries in a row before giving up on the daemon "
        "(MCP_CORE_BRIDGE_MAX_ATTEMPTS; default: 5)",
    )
    bridge.add_argument(
        "--probe-timeout",
        default=None,
        metavar="S",
        help="seconds a daemon may take to answer its health route "
        "(MCP_CORE_BRIDGE_PROBE_TIMEOUT; default: 10)",
    )
    levels = ", ".join(BRIDGE_LOG_LEVELS)
    bridge.add_argument(
        "--log-level",
        default=None,
        metavar="L",
        help=f"the bridge's log on stderr: {levels} (MCP_CORE_BRIDGE_LOG_LEVEL; default: warning)",
    )
    bridge.add_argument(
        "--daemon-log-level",
        default=None,
        metavar="L",
        help="the log level of a daemon this bridge starts, in its log file "
        "(MCP_CORE_BRIDGE_DAEMON_LOG_LEVEL; default: info)",
    )
    bridge.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="the TOML config file (default: $MCP_CORE_CONFIG, else "
        "$XDG_CONFIG_HOME/mcp-core/config.toml if it exists)",
    )
    bridge.set_defaults(run=_bridge)

    daemon = commands.add_parser("daemon", help="(internal) the shared daemon a bridge starts")
    daemon.add_argument("target", nargs="?", metavar="TARGET")
    daemon.add_argument("--idle-timeout", type=_positive, default=BRIDGE_IDLE_TIMEOUT)
    daemon.add_argument("--log-level", choices=BRIDGE_LOG_LEVELS, default="info")
    daemon.set_defaults(run=_daemon)
