"""Where a server's daemon files live: an owner-only folder under the user's runtime folder.

Issue 6 (the shared daemon's lock file "created with owner-only permissions"). The folder is
`$XDG_RUNTIME_DIR/mcp-core` when that variable names an absolute path (a per-user tmpfs on
systemd systems, emptied at logout, which suits records of running processes), else
`$XDG_DATA_HOME/mcp-core/daemons` (by default `~/.local/share/mcp-core/daemons`). It is created
with mode 0700; an existing folder owned by another user, or a symlink, is refused, and one
whose mode lets others in is tightened to 0700.

Each server has three files there, keyed by its name (made filename-safe, plus a short hash of
the exact name so two names that sanitize alike never share files):

- `<key>.json`: the lock record (`mcp_core.ports.daemon.LockRecord`), mode 0600;
- `<key>.lock`: the file `fcntl.flock` serializes every change of the record on;
- `<key>.log`: the detached daemon's stdout and stderr, mode 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import attrs

from mcp_core.ports.daemon import DaemonHostError

__all__ = ["DaemonPaths", "daemon_folder", "ensure_private_folder", "paths_for"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def daemon_folder(environ: Mapping[str, str] | None = None) -> Path:
    """The folder that holds every daemon's files (not created here)."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "mcp-core"
    data = env.get("XDG_DATA_HOME", "")
    base = Path(data) if data and os.path.isabs(data) else Path.home() / ".local" / "share"
    return base / "mcp-core" / "daemons"


def ensure_private_folder(folder: Path) -> Path:
    """Create `folder` owner-only (0700) if needed; refuse one this user cannot trust."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = os.lstat(folder)
    except OSError as exc:
        raise DaemonHostError(f"cannot create {folder}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise DaemonHostError(f"{folder} is not a folder (a symlink or a file is refused)")
    if info.st_uid != os.getuid():
        raise DaemonHostError(f"{folder} belongs to another user (uid {info.st_uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise DaemonHostError(f"cannot make {folder} private: {exc.strerror}") from None
    return folder


@attrs.frozen(kw_only=True)
class DaemonPaths:
    """The files of one server's daemon."""

    folder: Path
    record: Path
    lock: Path
    log: Path


def paths_for(server_name: str, environ: Mapping[str, str] | None = None) -> DaemonPaths:
    """The daemon files of the server called `server_name` (nothing is created)."""
    if not server_name:
        raise ValueError("server_name must not be empty")
    safe = _UNSAFE.sub("_", server_name).strip("._")[:64] or "server"
    digest = hashlib.sha256(server_name.encode()).hexdigest()[:8]
    key = f"{safe}-{digest}"
    folder = daemon_folder(environ)
    return DaemonPaths(
        folder=folder,
        record=folder / f"{key}.json",
        lock=folder / f"{key}.lock",
        log=folder / f"{key}.log",
    )
