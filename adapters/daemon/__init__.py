"""The shared local daemon: lock file, process host, the daemon process and the stdio bridge.

Issue 6; docs/daemon.md. `mcp-core bridge SERVER` (`adapters/cli/bridge_cmds.py`) is the stdio
entry a desktop client launches: it finds or spawns the server's daemon through
`LocalDaemonHost` (the `DaemonHost` port: `LockFile`, a detached subprocess, the health probe),
kept alive by `mcp_core.core.services.supervisor.DaemonSupervisor`, and relays stdio to it with
`serve_bridge`. The daemon is `run_daemon` (`mcp-core daemon SERVER`, spawned by a bridge).
"""

from .bridge import StdioBridge, serve_bridge
from .daemon import DEFAULT_IDLE_TIMEOUT, daemon_version, run_daemon
from .gate import DaemonGate, IdleMonitor
from .host import LocalDaemonHost, pid_alive
from .lockfile import LockFile, parse_record
from .paths import DaemonPaths, daemon_folder, ensure_private_folder, paths_for

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DaemonGate",
    "DaemonPaths",
    "IdleMonitor",
    "LocalDaemonHost",
    "LockFile",
    "StdioBridge",
    "daemon_folder",
    "daemon_version",
    "ensure_private_folder",
    "parse_record",
    "paths_for",
    "pid_alive",
    "run_daemon",
    "serve_bridge",
]
