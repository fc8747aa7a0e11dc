"""`LocalDaemonHost`: the `DaemonHost` port on this machine (POSIX).

Issue 6. The lock record is `LockFile` (JSON under `flock`, see `lockfile.py`); this module adds
processes and the health probe:

- `spawn` starts the daemon command detached: a new session (`setsid`, so the client's Ctrl-C
  or the bridge's exit never reaches it), stdin from /dev/null, stdout and stderr appended to
  the server's log file (mode 0600), the bridge's working folder (so a relative TARGET means
  the same file). The daemon is this process's child while the bridge lives: `pid_alive` and
  `exit_code` reap it with `Popen.poll`, so its death is seen at once and no zombie stays.
- A pid is trusted only while it is still what the lock says it is, because the kernel recycles
  pids: a record naming a process that died long ago may name an unrelated process now. For
  any pid but this bridge's children, "alive" means `kill(pid, 0)` succeeds (a
  `PermissionError` means another user's process, which never holds this user's 0700 lock),
  the process is not a zombie (state `Z` in `/proc/<pid>/stat`, a dead daemon whose parent has
  not reaped it), and, for a daemon, its command line (`/proc/<pid>/cmdline`) is an `mcp-core
  daemon`. `pid_alive` (a daemon's pid) and `holder_alive` (the pid of a daemon's record)
  apply all three; a spawning record's bridge is checked without the command line, since a
  bridge may be any program that embeds `serve_bridge`. Where the command line cannot be
  read (no `/proc`), the pid counts as alive: the health probe's proof (below) decides, and a
  failed probe sweeps the record instead of signalling what cannot be told apart.
- `probe_health` waits, polling every `poll_interval`, until the lock names the daemon with a
  port and `GET /healthz` on 127.0.0.1 answers 200 with the proof that the process behind
  the port holds the record's token (`gate.health_proof` over a fresh random challenge; the
  token itself is never sent), so a port another process took after the daemon died is never
  handed the token. It reports the pid's death (or its reuse) at once.
- `stop_daemon` signals a pid only while it is certainly the daemon: this bridge's own child,
  or a process whose command line is an `mcp-core daemon`, so a recycled pid is never
  signalled. SIGTERM (the daemon drains and exits), then SIGKILL after `stop_grace` seconds.
  A pid it declines to signal (no longer a daemon, or impossible to tell) has its record swept
  (while it still names that pid): the record can only be stale or unverifiable, and leaving
  it would make every bridge find it, fail to probe it and give up.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.to_thread
import httpx

from mcp_core.ports.daemon import (
    DaemonAddress,
    DaemonExited,
    DaemonHealthy,
    DaemonHostError,
    DaemonUnhealthy,
    LockRecord,
    ProbeOutcome,
    UnreadableLock,
)

from .gate import CHALLENGE_HEADER, HEALTH_PATH, PROOF_HEADER, health_proof
from .lockfile import LockFile
from .paths import DaemonPaths, ensure_private_folder

__all__ = ["LocalDaemonHost", "daemon_alive", "pid_alive"]

log = logging.getLogger("mcp_core.daemon")

# Marks a daemon's command line (`mcp-core daemon ...`), checked before signalling a pid.
DAEMON_MARKERS = (b"mcp_core", b"mcp-core")


def _proc_state(pid: int) -> str | None:
    """The state letter in /proc/<pid>/stat (Linux), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain anything: split after it.
    _, _, rest = stat.rpartition(b")")
    fields = rest.split()
    return fields[0].decode() if fields else None


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a running process (zombies are not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's process
    return _proc_state(pid) not in ("Z", "X")


def _own_process_alive(pid: int) -> bool:
    """Whether `pid` is a running process of this user: another user's process (the kernel
    refuses to signal it) cannot hold this user's lock."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return _proc_state(pid) not in ("Z", "X")


def _is_daemon_command(pid: int) -> bool | None:
    """Whether `pid`'s command line is an mcp-core daemon; None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            argv = file.read().split(b"\0")
    except OSError:
        return None
    return b"daemon" in argv and any(marker in arg for arg in argv for marker in DAEMON_MARKERS)


def daemon_alive(pid: int) -> bool:
    """Whether `pid` is a running mcp-core daemon of this user (where its command line cannot
    be read: whether it is a running process of this user)."""
    return _own_process_alive(pid) and _is_daemon_command(pid) is not False


class LocalDaemonHost:
    """The `DaemonHost` of one server's daemon on this machine."""

    def __init__(
        self,
        paths: DaemonPaths,
        *,
        version: str,
        command: Sequence[str],
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        health_path: str = HEALTH_PATH,
        poll_interval: float = 0.05,
        stop_grace: float = 3.0,
    ) -> None:
        self.paths = paths
        self.lock = LockFile(paths)
        self._version = version
        self._command = list(command)
        self._cwd = cwd
        self._env = dict(env) if env is not None else None
        self._health_path = health_path
        self._poll = poll_interval
        self._grace = stop_grace
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._pid = os.getpid()

    # ---- the lock ----

    async def read_lock(self) -> LockRecord | UnreadableLock | None:
        return await anyio.to_thread.run_sync(self.lock.read)

    async def sweep_lock(self, pid: int | None) -> None:
        await anyio.to_thread.run_sync(self.lock.sweep, pid)

    async def acquire_lock(self) -> bool:
        return await anyio.to_thread.run_sync(self.lock.acquire, self._pid, self._version)

    async def release_lock(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.lock.release, self._pid)
        except DaemonHostError as exc:
            log.warning("releasing the daemon lock failed: %s", exc)

    # ---- processes ----

    async def spawn(self) -> int:
        return await anyio.to_thread.run_sync(self._spawn)

    def _spawn(self) -> int:
        ensure_private_folder(self.paths.folder)
        try:
            log_fd = os.open(
                self.paths.log,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        except OSError as exc:
            raise DaemonHostError(f"cannot open {self.paths.log}: {exc.strerror}") from None
        try:
            process = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise DaemonHostError(f"cannot run {self._command[0]}: {exc}") from None
        finally:
            os.close(log_fd)
        self._children[process.pid] = process
        return process.pid

    def pid_alive(self, pid: int) -> bool:
        """Whether daemon `pid` still runs as an mcp-core daemon (unknown: yes)."""
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return daemon_alive(pid)

    def holder_alive(self, record: LockRecord) -> bool:
        if record.spawning and record.pid not in self._children:
            return _own_process_alive(record.pid)
        return self.pid_alive(record.pid)

    def exit_code(self, pid: int) -> int | None:
        child = self._children.get(pid)
        return None if child is None else child.poll()

    async def probe_health(self, pid: int, timeout: float) -> ProbeOutcome:
        deadline = time.monotonic() + timeout
        reason = f"pid {pid} never published its port in {self.paths.record}"
        async with httpx.AsyncClient(trust_env=False) as client:
            while True:
                if not self.pid_alive(pid):
                    return DaemonExited(pid=pid, exit_code=self.exit_code(pid))
                try:
                    record = await self.read_lock()
                except DaemonHostError as exc:
                    record, reason = None, str(exc)
                if isinstance(record, LockRecord) and record.pid == pid and record.token:
                    assert record.port is not None
                    url = f"http://127.0.0.1:{record.port}{self._health_path}"
                    left = max(0.05, deadline - time.monotonic())
                    challenge = secrets.token_urlsafe(16)
                    try:
                        response = await client.get(
                            url, headers={CHALLENGE_HEADER: challenge}, timeout=min(left, 2.0)
                        )
                    except httpx.HTTPError as exc:
                        reason = f"{url}: {type(exc).__name__} {exc}".rstrip()
                    else:
                        proof = response.headers.get(PROOF_HEADER, "")
                        expected = health_proof(record.token, challenge)
                        if response.status_code != 200:
                            reason = f"{url} answered {response.status_code}"
                        elif not hmac.compare_digest(proof.encode(), expected.encode()):
                            # Not the daemon of this record: the port may be another process's
                            # now. It never gets the token.
                            reason = f"{url} did not prove it is the daemon (pid {pid})"
                        else:
                            address = DaemonAddress(pid=pid, port=record.port, token=record.token)
                            return DaemonHealthy(address=address)
                if time.monotonic() >= deadline:
                    return DaemonUnhealthy(reason=f"{reason} (after {timeout:g}s)")
                await anyio.sleep(self._poll)

    async def stop_daemon(self, pid: int) -> None:
        await anyio.to_thread.run_sync(self._stop, pid)

    def _stop(self, pid: int) -> None:
        if not self.pid_alive(pid):
            return  # gone, or a recycled pid: the next read of the lock sweeps its record
        if pid not in self._children and _is_daemon_command(pid) is not True:
            log.warning("not stopping pid %d: it cannot be told to be an mcp-core daemon", pid)
            try:
                self.lock.sweep(pid)
            except DaemonHostError as exc:
                log.warning("sweeping the daemon lock failed: %s", exc)
            return
        for sig, wait in ((signal.SIGTERM, self._grace), (signal.SIGKILL, self._grace)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if not self.pid_alive(pid):
                    return
                time.sleep(self._poll)
        log.warning("the daemon (pid %d) did not exit after SIGKILL", pid)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    @property
    def log_path(self) -> Path:
        return self.paths.log
