"""The lock record of one server's daemon: a JSON file, changed atomically under `flock`.

Issue 6; the protocol is the one `mcp_core.core.machines.daemon_recovery` relies on (its
docstring, "The lock protocol"). The file holds one JSON object:

```json
{"pid": 4242, "port": 53817, "token": "…", "version": "1.0.0; mcp-core 0.1.0", "created": 1.7e9}
```

`port` and `token` are null in a bridge's spawning record. Theory of operation:

- Every change (acquire, sweep, release, publish, remove) happens while holding an exclusive
  `fcntl.flock` on the separate `<key>.lock` file, and re-reads the record under that lock
  before deciding: "create unless present" and "remove only while it still holds what was
  read" are then atomic between processes. The kernel drops a flock when its holder dies, so a
  crashed bridge never leaves the lock held; the record it leaves behind is what gets swept.
- The record is written to a temporary file in the same folder (`mkstemp`: mode 0600 from the
  start, never readable by others even for a moment), flushed to disk, then renamed over the
  record: readers, which take no lock, see the old record or the new one, never half of one.
- Reading never follows a symlink (`O_NOFOLLOW`) and reads at most 64 KiB. Anything that is not
  a well-formed record (not JSON, fields missing or of the wrong type, a port without a token)
  is reported as `UnreadableLock` with the reason, for the supervisor to sweep.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from mcp_core.ports.daemon import DaemonHostError, LockRecord, UnreadableLock

from .paths import DaemonPaths, ensure_private_folder

__all__ = ["LockFile", "parse_record"]

_MAX_BYTES = 64 * 1024


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_record(raw: bytes) -> LockRecord | UnreadableLock:
    """The record in `raw`, or why it is unusable."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return UnreadableLock(reason=f"the lock file is not JSON ({exc})")
    if not isinstance(data, dict):
        return UnreadableLock(reason="the lock file does not hold a JSON object")
    pid: Any = data.get("pid")
    port: Any = data.get("port")
    token: Any = data.get("token")
    version: Any = data.get("version")
    if not _is_int(pid) or pid < 1:
        return UnreadableLock(reason=f"the lock file has no valid pid ({pid!r})")
    if not isinstance(version, str) or not version:
        return UnreadableLock(reason="the lock file has no version")
    if port is not None and (not _is_int(port) or not 1 <= port <= 65535):
        return UnreadableLock(reason=f"the lock file has an invalid port ({port!r})")
    if token is not None and (not isinstance(token, str) or not token):
        return UnreadableLock(reason="the lock file has an invalid token")
    if (port is None) != (token is None):
        return UnreadableLock(reason="the lock file has a port without a token, or the reverse")
    return LockRecord(pid=pid, port=port, token=token, version=version)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class LockFile:
    """The lock record of one server (`paths`), for bridges and for the daemon itself."""

    def __init__(self, paths: DaemonPaths) -> None:
        self.paths = paths

    # ---- reading (no lock taken: writes are atomic renames) ----

    def read(self) -> LockRecord | UnreadableLock | None:
        """The record; None when there is none. `DaemonHostError` when it cannot be read."""
        try:
            fd = os.open(self.paths.record, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return UnreadableLock(reason="the lock file is a symlink")
            raise DaemonHostError(f"cannot read {self.paths.record}: {_reason(exc)}") from None
        try:
            with os.fdopen(fd, "rb") as file:
                raw = file.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise DaemonHostError(f"cannot read {self.paths.record}: {_reason(exc)}") from None
        if len(raw) > _MAX_BYTES:
            return UnreadableLock(reason="the lock file is too large")
        return parse_record(raw)

    # ---- changing (under the cross-process lock) ----

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the server's cross-process lock (`flock` on the `.lock` file)."""
        ensure_private_folder(self.paths.folder)
        try:
            fd = os.open(
                self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise DaemonHostError(f"cannot open {self.paths.lock}: {_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _write(self, record: LockRecord) -> None:
        document = {
            "pid": record.pid,
            "port": record.port,
            "token": record.token,
            "version": record.version,
            "created": time.time(),
        }
        folder = self.paths.folder
        try:
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".record-", suffix=".tmp")
        except OSError as exc:
            raise DaemonHostError(f"cannot write in {folder}: {_reason(exc)}") from None
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(json.dumps(document).encode())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.paths.record)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise DaemonHostError(f"cannot write {self.paths.record}: {_reason(exc)}") from None

    def _unlink(self) -> None:
        try:
            os.unlink(self.paths.record)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise DaemonHostError(f"cannot remove {self.paths.record}: {_reason(exc)}") from None

    def acquire(self, pid: int, version: str) -> bool:
        """Write the spawning record of bridge `pid` unless any lock file exists."""
        with self.exclusive():
            if self.read() is not None:
                return False
            self._write(LockRecord(pid=pid, version=version))
            return True

    def sweep(self, pid: int | None) -> None:
        """Remove the record while it still names `pid` (None: while it is still unusable)."""
        with self.exclusive():
            current = self.read()
            stale_file = pid is None and isinstance(current, UnreadableLock)
            if stale_file or (isinstance(current, LockRecord) and current.pid == pid):
                self._unlink()

    def release(self, pid: int) -> None:
        """Remove the record while it is bridge `pid`'s spawning record."""
        with self.exclusive():
            current = self.read()
            if isinstance(current, LockRecord) and current.pid == pid and current.spawning:
                self._unlink()

    def publish(self, record: LockRecord, alive: Callable[[int], bool]) -> LockRecord | None:
        """The daemon's step: replace the record with its own. Refused (the record in the way
        is returned) when another live daemon of the same version already published itself."""
        with self.exclusive():
            current = self.read()
            if (
                isinstance(current, LockRecord)
                and not current.spawning
                and current.pid != record.pid
                and current.version == record.version
                and alive(current.pid)
            ):
                return current
            self._write(record)
            return None

    def remove_own(self, pid: int) -> None:
        """The daemon's last step: remove the record while it is daemon `pid`'s."""
        with self.exclusive():
            current = self.read()
            if isinstance(current, LockRecord) and current.pid == pid:
                self._unlink()
