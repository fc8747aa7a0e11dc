"""The `DaemonHost` port: what the daemon supervisor needs from the operating system.

Issue 6 ("Process lifecycle", the shared local daemon); DESIGN.md "Ports and adapters"
(`Spawner`/`Lock`). The supervisor (`mcp_core.core.services.supervisor`) drives the
`daemon_recovery` machine and performs its effects through this port: read, sweep, acquire and
release the lock record, spawn the daemon, probe its health route, tell whether a daemon (or the
writer of a lock record) is still alive, stop a daemon, and sleep. The adapter is
`mcp_core.adapters.daemon.LocalDaemonHost` (a JSON lock file under the user's runtime folder,
`fcntl.flock`, a detached subprocess, httpx); the supervisor's tests use a fake that scripts
each answer and records what was done.

Pids are recycled by the kernel, and ports by whoever binds them next, so "alive" and "healthy"
are identity claims, not mere existence: a record whose pid now belongs to an unrelated process
is stale (`holder_alive` is False, the supervisor sweeps it), and a probe is healthy only when
the process behind the port proved it holds the record's token without being sent it.

The lock record is the one value both sides share: a spawning bridge's record holds its pid and
version and no port; the daemon's holds its pid, port, bearer token and version. Failures the
machine can retry (an OS error on the lock, a spawn that could not start) are raised as
`DaemonHostError` with a reason a user can read; nothing else is raised by the lock and spawn
methods.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

import attrs

__all__ = [
    "DaemonAddress",
    "DaemonExited",
    "DaemonHealthy",
    "DaemonHost",
    "DaemonHostError",
    "DaemonUnhealthy",
    "LockRecord",
    "ProbeOutcome",
    "UnreadableLock",
]


class DaemonHostError(Exception):
    """An operation on the lock or a spawn failed; `str(error)` says why, for the user."""


@attrs.frozen(kw_only=True)
class LockRecord:
    """The lock file's content, parsed and validated.

    `port` and `token` are both None in a bridge's spawning record and both set in the daemon's
    own record. The token is the daemon's bearer secret: it never appears in a repr.
    """

    pid: int
    version: str
    port: int | None = None
    token: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.port is None) != (self.token is None):
            raise ValueError("a lock record has both a port and a token, or neither")

    @property
    def spawning(self) -> bool:
        """A bridge's record: the daemon is being spawned and has not published itself yet."""
        return self.port is None


@attrs.frozen(kw_only=True)
class UnreadableLock:
    """A lock file exists but cannot be used (not JSON, truncated, fields missing or wrong)."""

    reason: str


@attrs.frozen(kw_only=True)
class DaemonAddress:
    """Where a healthy daemon listens, and the bearer token its MCP endpoint requires."""

    pid: int
    port: int
    token: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class DaemonHealthy:
    """The probe reached the daemon's health route, and the process answering proved it holds
    the record's token (so the token may be sent to that port)."""

    address: DaemonAddress


@attrs.frozen(kw_only=True)
class DaemonUnhealthy:
    """The daemon is alive but did not answer its health route in time; `reason` says how."""

    reason: str


@attrs.frozen(kw_only=True)
class DaemonExited:
    """The probed pid is gone; `exit_code` is known only to the process that spawned it."""

    pid: int
    exit_code: int | None = None


ProbeOutcome: TypeAlias = DaemonHealthy | DaemonUnhealthy | DaemonExited


@runtime_checkable
class DaemonHost(Protocol):
    """The operating system as one bridge's supervisor sees it, for one server.

    Lock methods act on the one lock record of the server this host was built for; every
    change to it is atomic (a reader sees the old record or the new one, never half of one)
    and serialized between processes.
    """

    async def read_lock(self) -> LockRecord | UnreadableLock | None:
        """The current lock record; None when there is no lock file. `DaemonHostError` when
        the file cannot be read at all (permissions, an I/O error)."""
        ...

    async def sweep_lock(self, pid: int | None) -> None:
        """Remove a stale lock, only while it still holds the record of `pid` (None: only while
        it is still unreadable). `DaemonHostError` when removing fails."""
        ...

    async def acquire_lock(self) -> bool:
        """Create this bridge's spawning record unless a lock exists: True when created (this
        bridge spawns), False when another record was there first. `DaemonHostError` on
        failure."""
        ...

    async def release_lock(self) -> None:
        """Remove the lock only while it holds this bridge's own spawning record."""
        ...

    async def spawn(self) -> int:
        """Start the daemon detached (it outlives the bridge); its pid. `DaemonHostError`
        when it cannot be started."""
        ...

    async def probe_health(self, pid: int, timeout: float) -> ProbeOutcome:
        """Wait up to `timeout` seconds for the lock to name daemon `pid` with a port, and for
        that port's health route to answer."""
        ...

    def pid_alive(self, pid: int) -> bool:
        """Whether daemon `pid` is still running as the daemon (a zombie is not, nor a pid the
        kernel has since given to an unrelated process)."""
        ...

    def holder_alive(self, record: LockRecord) -> bool:
        """Whether the process `record` names is still alive and still its writer: the daemon
        for a daemon's record, a live process for a bridge's spawning record. A recycled pid is
        not: a stale record must read as dead, or it is never swept."""
        ...

    def exit_code(self, pid: int) -> int | None:
        """The exit status of `pid` when this process spawned it and it has exited."""
        ...

    async def stop_daemon(self, pid: int) -> None:
        """Terminate daemon `pid` (then kill it after a grace period), only while that pid is
        still the daemon. Never raises: the next read of the lock shows what happened."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a fake host advances a fake clock instead)."""
        ...
