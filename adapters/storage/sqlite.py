"""SQLite adapters: the embedded default for what must survive a restart on one machine.

Theory of operation. Each store owns one `sqlite3` connection to a file, opened on first use.
The standard library's driver blocks, so every call runs in an anyio worker thread; a capacity
limiter of one (and a lock, in case the store is shared between event loops) makes sure only one
thread uses the connection at a time, while waiting callers queue in the event loop, not in
threads. A call is never abandoned half-way: cancelling the caller waits for the thread.
Written by hand on the standard library rather than on aiosqlite, which does the same with a
thread per connection and adds a dependency.

Durability and concurrency. The file is in WAL mode (readers never block the writer) with
`synchronous=FULL`, so a write that returned survives a crash of the process or the machine.
Writes that read before they write (compare-and-set, the session cap) run in `BEGIN IMMEDIATE`
transactions, which take the write lock up front: two processes on one file serialise instead
of deadlocking. A busy file is retried for `busy_timeout` seconds before giving up.

Files. The parent folder is created owner-only (0700) and the database file is created 0600
(SQLite gives its `-wal` and `-shm` files the same mode). `default_data_path()` is where the
vault lives unless configured: `$XDG_DATA_HOME/mcp-core/vault.sqlite3`, or
`~/.local/share/mcp-core/vault.sqlite3`.

Schema. Created and upgraded on first use, per component, as `_sql` describes; a database from
a newer release is refused with `SchemaTooNew`.

Errors. Every driver or file-system error raises `StoreUnavailable`, chaining the original; the
transaction it interrupted is rolled back and the connection reopened on the next call.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import attrs
import orjson

from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable, VersionConflict
from mcp_core.ports.events import Replay, StoredEvent
from mcp_core.ports.oauth_stores import (
    CODE_REPLAYED,
    REFRESH_REUSED,
    CodeOutcome,
    CodeRecord,
    CodeStatus,
    GrantConflict,
    RefreshFamily,
    RefreshOutcome,
    RefreshStatus,
    RegisteredClient,
)
from mcp_core.ports.sessions import SessionLimitReached, SessionRecord

from ._sql import (
    CODE_COLUMNS,
    FAMILY_COLUMNS,
    SCHEMA_TABLE,
    SESSION_COLUMNS,
    Migration,
    SchemaTooNew,
    check_code_record,
    check_storable,
    code_outcome_of_row,
    decode_family,
    decode_session,
    encode_session,
    event_id,
    parse_event_id,
    pending_steps,
    storable,
)

__all__ = [
    "SchemaTooNew",
    "SqliteClientStore",
    "SqliteCredentialStore",
    "SqliteEventStore",
    "SqliteGrantStore",
    "SqliteSessionStore",
    "default_data_path",
    "migrate",
]

T = TypeVar("T")

APP_FOLDER = "mcp-core"
VAULT_FILE = "vault.sqlite3"


def default_data_path(filename: str = VAULT_FILE) -> Path:
    """A file in mcp-core's folder under the user's data folder (XDG base directory spec)."""
    base = os.environ.get("XDG_DATA_HOME", "")
    # The spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / APP_FOLDER / filename


# ---- the connection ---------------------------------------------------------------------------


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that holds the write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _schema_version(conn: sqlite3.Connection, component: str) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_TABLE,)
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute(
        f"SELECT version FROM {SCHEMA_TABLE} WHERE component = ?", (component,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: sqlite3.Connection, component: str, steps: Sequence[Migration]) -> int:
    """Bring `component` to the newest version this code knows; return the version applied."""
    if _schema_version(conn, component) == len(steps):
        return len(steps)
    # Re-read under the write lock: another process may have migrated meanwhile.
    with _immediate(conn):
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} "
            "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for version, statements in pending_steps(
            component, _schema_version(conn, component), steps
        ):
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {SCHEMA_TABLE} (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, version),
            )
    return len(steps)


class _Database:
    """One connection to one file for one component, opened (and migrated) on first use."""

    def __init__(
        self, path: Path, *, component: str, steps: Sequence[Migration], busy_timeout: float
    ) -> None:
        if busy_timeout < 0:
            raise ValueError("busy_timeout must not be negative")
        self.path = path
        self._component = component
        self._steps = steps
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(self._run, fn, limiter=self._limiter)

    async def close(self) -> None:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        await anyio.to_thread.run_sync(self._close, limiter=self._limiter)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._open()
                return fn(self._conn)
            except (sqlite3.Error, OSError) as exc:
                # Start from a fresh connection next time: whatever state this one is in.
                self._discard()
                raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            # Created here so that it is owner-only from the first byte.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; transactions are explicit
            check_same_thread=False,  # one thread at a time, guarded by self._lock
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            self._enter_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            migrate(conn, self._component, self._steps)
        except BaseException:
            conn.close()
            raise
        return conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, retrying while another process holds it.

        Changing the journal mode needs an exclusive lock, and SQLite may answer SQLITE_BUSY at
        once rather than wait in the busy handler (when waiting could deadlock), so processes
        opening a new file together retry here, within the same `busy_timeout`.
        """
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.001
        while True:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not switch to WAL (journal mode {mode})")
            return

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(sqlite3.Error):
                conn.close()

    def _close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc


class _SqliteStore:
    """What every SQLite store has: its file, a connection, `close()`."""

    _component: str
    _steps: Sequence[Migration]

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self._db = _Database(
            Path(path), component=self._component, steps=self._steps, busy_timeout=busy_timeout
        )

    @property
    def path(self) -> Path:
        return self._db.path

    async def close(self) -> None:
        """Close the connection; a later call opens a new one."""
        await self._db.close()


# ---- credentials ------------------------------------------------------------------------------

_CREDENTIALS = "mcp_core_credentials"
_CREDENTIAL_COLUMNS = "server, subject, kind, version, key_id, ciphertext, updated_at"

CREDENTIAL_STEPS: tuple[Migration, ...] = (
    (
        f"CREATE TABLE {_CREDENTIALS} ("
        "server TEXT NOT NULL, subject TEXT NOT NULL, kind TEXT NOT NULL, "
        "version INTEGER NOT NULL, key_id TEXT NOT NULL, ciphertext BLOB NOT NULL, "
        "updated_at REAL NOT NULL, PRIMARY KEY (server, subject, kind)) WITHOUT ROWID",
    ),
)


def _credential(row: Sequence[Any]) -> CredentialRecord:
    return CredentialRecord(
        server=row[0],
        subject=row[1],
        kind=row[2],
        version=row[3],
        key_id=row[4],
        ciphertext=bytes(row[5]),
        updated_at=row[6],
    )


def _current_version(conn: sqlite3.Connection, server: str, subject: str, kind: str) -> int | None:
    row = conn.execute(
        f"SELECT version FROM {_CREDENTIALS} WHERE server = ? AND subject = ? AND kind = ?",
        (server, subject, kind),
    ).fetchone()
    return None if row is None else int(row[0])


class SqliteCredentialStore(_SqliteStore):
    """`CredentialStore` in a SQLite file (see the module docstring)."""

    _component = "credentials"
    _steps = CREDENTIAL_STEPS

    async def get(self, server: str, subject: str, kind: str) -> CredentialRecord | None:
        def get(conn: sqlite3.Connection) -> CredentialRecord | None:
            row = conn.execute(
                f"SELECT {_CREDENTIAL_COLUMNS} FROM {_CREDENTIALS} "
                "WHERE server = ? AND subject = ? AND kind = ?",
                (server, subject, kind),
            ).fetchone()
            return None if row is None else _credential(row)

        return await self._db.call(get)

    async def put(
        self, record: CredentialRecord, *, expected_version: int | None
    ) -> CredentialRecord:
        version = (expected_version or 0) + 1
        key = (record.server, record.subject, record.kind)
        values = (version, record.key_id, bytes(record.ciphertext), record.updated_at)

        def put(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                if expected_version is None:
                    cursor = conn.execute(
                        f"INSERT INTO {_CREDENTIALS} ({_CREDENTIAL_COLUMNS}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (*key, *values),
                    )
                else:
                    cursor = conn.execute(
                        f"UPDATE {_CREDENTIALS} SET version = ?, key_id = ?, ciphertext = ?, "
                        "updated_at = ? WHERE server = ? AND subject = ? AND kind = ? "
                        "AND version = ?",
                        (*values, *key, expected_version),
                    )
                if cursor.rowcount != 1:
                    raise VersionConflict(expected_version, _current_version(conn, *key))

        await self._db.call(put)
        return CredentialRecord(
            server=record.server,
            subject=record.subject,
            kind=record.kind,
            version=version,
            key_id=record.key_id,
            ciphertext=bytes(record.ciphertext),
            updated_at=record.updated_at,
        )

    async def delete(
        self, server: str, subject: str, kind: str, *, expected_version: int | None = None
    ) -> bool:
        key = (server, subject, kind)

        def delete(conn: sqlite3.Connection) -> bool:
            with _immediate(conn):
                cursor = conn.execute(
                    f"DELETE FROM {_CREDENTIALS} WHERE server = ? AND subject = ? AND kind = ? "
                    "AND (? IS NULL OR version = ?)",
                    (*key, expected_version, expected_version),
                )
                if cursor.rowcount == 1:
                    return True
                if expected_version is not None:
                    raise VersionConflict(expected_version, _current_version(conn, *key))
                return False

        return await self._db.call(delete)

    async def list_subject(self, server: str, subject: str) -> list[CredentialRecord]:
        def list_subject(conn: sqlite3.Connection) -> list[CredentialRecord]:
            rows = conn.execute(
                f"SELECT {_CREDENTIAL_COLUMNS} FROM {_CREDENTIALS} "
                "WHERE server = ? AND subject = ? ORDER BY kind",
                (server, subject),
            ).fetchall()
            return [_credential(row) for row in rows]

        return await self._db.call(list_subject)

    async def list_server(self, server: str) -> list[CredentialRecord]:
        def list_server(conn: sqlite3.Connection) -> list[CredentialRecord]:
            rows = conn.execute(
                f"SELECT {_CREDENTIAL_COLUMNS} FROM {_CREDENTIALS} "
                "WHERE server = ? ORDER BY subject, kind",
                (server,),
            ).fetchall()
            return [_credential(row) for row in rows]

        return await self._db.call(list_server)


# ---- sessions ---------------------------------------------------------------------------------

_SESSIONS = "mcp_core_sessions"
_SESSION_SELECT = f"SELECT {', '.join(SESSION_COLUMNS)} FROM {_SESSIONS}"
# Expiry is `now - last_active > idle_timeout`, written exactly so in SQL: floating-point
# rounding must not make the store and the port's rule disagree at the boundary. The range
# condition before it only lets an index narrow the rows (its slack dwarfs any rounding).
_EXPIRED = "last_active <= :now - :idle + 1.0 AND :now - last_active > :idle"
_LIVE = "last_active >= :now - :idle - 1.0 AND NOT (:now - last_active > :idle)"

SESSION_STEPS: tuple[Migration, ...] = (
    (
        f"CREATE TABLE {_SESSIONS} ("
        "session_id TEXT PRIMARY KEY, protocol_version TEXT NOT NULL, state TEXT NOT NULL, "
        "created_at REAL NOT NULL, last_active REAL NOT NULL, "
        "client_capabilities TEXT NOT NULL, client_info TEXT, subject TEXT, client_id TEXT, "
        "log_level TEXT, subscriptions TEXT NOT NULL)",
        f"CREATE INDEX {_SESSIONS}_last_active ON {_SESSIONS} (last_active)",
    ),
)


class SqliteSessionStore(_SqliteStore):
    """`SessionStore` in a SQLite file: sessions that survive a restart of the process."""

    _component = "sessions"
    _steps = SESSION_STEPS

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        idle_timeout: float = 1800.0,
        max_sessions: int = 10_000,
        busy_timeout: float = 5.0,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        super().__init__(path, busy_timeout=busy_timeout)
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions

    async def create(self, record: SessionRecord) -> None:
        at = {"now": record.created_at, "idle": self.idle_timeout}
        row = encode_session(record)

        def create(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute(
                    f"DELETE FROM {_SESSIONS} WHERE session_id = :id AND {_EXPIRED}",
                    {**at, "id": record.session_id},
                )
                taken = conn.execute(
                    f"SELECT 1 FROM {_SESSIONS} WHERE session_id = ?", (record.session_id,)
                ).fetchone()
                if taken is not None:
                    raise ValueError(f"session id {record.session_id!r} is taken")
                (live,) = conn.execute(
                    f"SELECT count(*) FROM {_SESSIONS} WHERE {_LIVE}", at
                ).fetchone()
                if live >= self.max_sessions:
                    raise SessionLimitReached(f"{self.max_sessions} sessions are open")
                conn.execute(
                    f"INSERT INTO {_SESSIONS} ({', '.join(SESSION_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})",
                    row,
                )

        await self._db.call(create)

    async def get(self, session_id: str, now: float) -> SessionRecord | None:
        at = {"now": now, "idle": self.idle_timeout, "id": session_id}

        def get(conn: sqlite3.Connection) -> SessionRecord | None:
            found = conn.execute(
                f"{_SESSION_SELECT} WHERE session_id = ?", (session_id,)
            ).fetchone()
            if found is None:
                return None
            record = decode_session(found)
            if now - record.last_active > self.idle_timeout:
                conn.execute(f"DELETE FROM {_SESSIONS} WHERE session_id = :id AND {_EXPIRED}", at)
                return None
            return record

        return await self._db.call(get)

    async def touch(self, session_id: str, now: float) -> None:
        at = {"now": now, "idle": self.idle_timeout, "id": session_id}

        def touch(conn: sqlite3.Connection) -> None:
            # An expired session stays expired: activity cannot revive it.
            conn.execute(
                f"UPDATE {_SESSIONS} SET last_active = :now WHERE session_id = :id "
                "AND :now > last_active AND NOT (:now - last_active > :idle)",
                at,
            )

        await self._db.call(touch)

    async def put(self, record: SessionRecord) -> None:
        row = encode_session(record)
        assignments = ", ".join(f"{column} = ?" for column in SESSION_COLUMNS[1:])

        def put(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                f"UPDATE {_SESSIONS} SET {assignments} WHERE session_id = ?", (*row[1:], row[0])
            )
            return cursor.rowcount

        if await self._db.call(put) != 1:
            raise KeyError(record.session_id)

    async def delete(self, session_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(f"DELETE FROM {_SESSIONS} WHERE session_id = ?", (session_id,))
            return cursor.rowcount == 1

        return await self._db.call(delete)

    async def sweep(self, now: float) -> list[str]:
        at = {"now": now, "idle": self.idle_timeout}

        def sweep(conn: sqlite3.Connection) -> list[str]:
            with _immediate(conn):
                rows = conn.execute(
                    f"DELETE FROM {_SESSIONS} WHERE {_EXPIRED} RETURNING session_id", at
                ).fetchall()
            return [row[0] for row in rows]

        return await self._db.call(sweep)


# ---- events -----------------------------------------------------------------------------------

_EVENT_LOGS = "mcp_core_event_logs"
_EVENTS = "mcp_core_events"

EVENT_STEPS: tuple[Migration, ...] = (
    (
        # One row per session: its event counter, and when its log began (for eviction).
        f"CREATE TABLE {_EVENT_LOGS} ("
        "session_id TEXT PRIMARY KEY, last_n INTEGER NOT NULL, born INTEGER NOT NULL)",
        f"CREATE INDEX {_EVENT_LOGS}_born ON {_EVENT_LOGS} (born)",
        f"CREATE TABLE {_EVENTS} ("
        "session_id TEXT NOT NULL, n INTEGER NOT NULL, stream_id TEXT NOT NULL, "
        "payload BLOB NOT NULL, PRIMARY KEY (session_id, n)) WITHOUT ROWID",
        f"CREATE INDEX {_EVENTS}_stream ON {_EVENTS} (session_id, stream_id, n)",
    ),
)


class SqliteEventStore(_SqliteStore):
    """`EventStore` in a SQLite file. Event ids are `<stream_id>:<n>`, `n` counting the
    session's events; a session keeps its newest `max_events_per_session` events, and the logs
    of at most `max_sessions` sessions are kept (the oldest log goes first)."""

    _component = "events"
    _steps = EVENT_STEPS

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_events_per_session: int = 1_000,
        max_sessions: int = 10_000,
        busy_timeout: float = 5.0,
    ) -> None:
        if max_events_per_session < 1 or max_sessions < 1:
            raise ValueError("bounds must be at least 1")
        super().__init__(path, busy_timeout=busy_timeout)
        self.max_events_per_session = max_events_per_session
        self.max_sessions = max_sessions

    async def append(self, session_id: str, stream_id: str, payload: bytes) -> str:
        def append(conn: sqlite3.Connection) -> int:
            with _immediate(conn):
                counted = conn.execute(
                    f"UPDATE {_EVENT_LOGS} SET last_n = last_n + 1 WHERE session_id = ? "
                    "RETURNING last_n",
                    (session_id,),
                ).fetchone()
                if counted is None:
                    self._make_room(conn)
                    conn.execute(
                        f"INSERT INTO {_EVENT_LOGS} (session_id, last_n, born) VALUES "
                        f"(?, 1, (SELECT coalesce(max(born), 0) + 1 FROM {_EVENT_LOGS}))",
                        (session_id,),
                    )
                    n = 1
                else:
                    n = int(counted[0])
                conn.execute(
                    f"INSERT INTO {_EVENTS} (session_id, n, stream_id, payload) "
                    "VALUES (?, ?, ?, ?)",
                    (session_id, n, stream_id, bytes(payload)),
                )
                if n > self.max_events_per_session:
                    conn.execute(
                        f"DELETE FROM {_EVENTS} WHERE session_id = ? AND n <= ?",
                        (session_id, n - self.max_events_per_session),
                    )
            return n

        return event_id(stream_id, await self._db.call(append))

    def _make_room(self, conn: sqlite3.Connection) -> None:
        (logs,) = conn.execute(f"SELECT count(*) FROM {_EVENT_LOGS}").fetchone()
        excess = logs - self.max_sessions + 1
        if excess > 0:
            oldest = conn.execute(
                f"SELECT session_id FROM {_EVENT_LOGS} ORDER BY born LIMIT ?", (excess,)
            ).fetchall()
            for (session_id,) in oldest:
                conn.execute(f"DELETE FROM {_EVENTS} WHERE session_id = ?", (session_id,))
                conn.execute(f"DELETE FROM {_EVENT_LOGS} WHERE session_id = ?", (session_id,))

    async def replay_after(self, session_id: str, last_event_id: str) -> Replay | None:
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return None
        stream_id, after = parsed

        def replay(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
            # One statement, one snapshot: the anchor event itself comes first when it exists.
            rows = conn.execute(
                f"SELECT n, payload FROM {_EVENTS} WHERE session_id = ? AND stream_id = ? "
                "AND n >= ? ORDER BY n",
                (session_id, stream_id, after),
            ).fetchall()
            return [(int(n), bytes(payload)) for n, payload in rows]

        rows = await self._db.call(replay)
        if not rows or rows[0][0] != after:
            return None
        return Replay(
            stream_id=stream_id,
            events=tuple(
                StoredEvent(event_id=event_id(stream_id, n), payload=payload)
                for n, payload in rows[1:]
            ),
        )

    async def forget_session(self, session_id: str) -> None:
        def forget(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute(f"DELETE FROM {_EVENTS} WHERE session_id = ?", (session_id,))
                conn.execute(f"DELETE FROM {_EVENT_LOGS} WHERE session_id = ?", (session_id,))

        await self._db.call(forget)


# ---- OAuth: clients and grants ----------------------------------------------------------------
# Imported here, not at the top, so that this section stays one self-contained block.


_CLIENTS = "mcp_core_oauth_clients"
_CLIENT_COLUMNS = "client_id, metadata, secret_hash, registered_at, source"

OAUTH_CLIENT_STEPS: tuple[Migration, ...] = (
    (
        f"CREATE TABLE {_CLIENTS} ("
        "client_id TEXT PRIMARY KEY, metadata TEXT NOT NULL, secret_hash TEXT, "
        "registered_at REAL NOT NULL, source TEXT NOT NULL) WITHOUT ROWID",
    ),
)


def _client(row: Sequence[Any]) -> RegisteredClient:
    return RegisteredClient(
        client_id=row[0],
        metadata=orjson.loads(row[1]),
        secret_hash=row[2],
        registered_at=row[3],
        source=row[4],
    )


class SqliteClientStore(_SqliteStore):
    """`ClientStore` in a SQLite file; metadata is kept as JSON text."""

    _component = "oauth_clients"
    _steps = OAUTH_CLIENT_STEPS

    async def put(self, client: RegisteredClient) -> None:
        row = (
            client.client_id,
            orjson.dumps(dict(client.metadata)).decode(),
            client.secret_hash,
            client.registered_at,
            client.source,
        )

        def put(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO {_CLIENTS} ({_CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (client_id) DO UPDATE SET metadata = excluded.metadata, "
                "secret_hash = excluded.secret_hash, registered_at = excluded.registered_at, "
                "source = excluded.source",
                row,
            )

        await self._db.call(put)

    async def get(self, client_id: str) -> RegisteredClient | None:
        def get(conn: sqlite3.Connection) -> RegisteredClient | None:
            row = conn.execute(
                f"SELECT {_CLIENT_COLUMNS} FROM {_CLIENTS} WHERE client_id = ?", (client_id,)
            ).fetchone()
            return None if row is None else _client(row)

        return await self._db.call(get)

    async def delete(self, client_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(f"DELETE FROM {_CLIENTS} WHERE client_id = ?", (client_id,))
            return cursor.rowcount == 1

        return await self._db.call(delete)


_CODES = "mcp_core_oauth_codes"
_FAMILIES = "mcp_core_oauth_families"
_REFRESH = "mcp_core_oauth_refresh_tokens"
_FAMILY_REVOCATIONS = "mcp_core_oauth_family_revocations"
_ACCESS_REVOCATIONS = "mcp_core_oauth_access_revocations"

OAUTH_GRANT_STEPS: tuple[Migration, ...] = (
    (
        f"CREATE TABLE {_CODES} ("
        "code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, "
        "resource TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL, "
        "code_challenge TEXT NOT NULL, family_id TEXT NOT NULL, issued_at REAL NOT NULL, "
        "expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
        f"CREATE TABLE {_FAMILIES} ("
        "family_id TEXT PRIMARY KEY, subject TEXT NOT NULL, client_id TEXT NOT NULL, "
        "resource TEXT NOT NULL, scope TEXT NOT NULL, created_at REAL NOT NULL, "
        "rotated_at REAL NOT NULL, current_token_hash TEXT NOT NULL, "
        "generation INTEGER NOT NULL) WITHOUT ROWID",
        # Every token a family ever had: an old one presented again is reuse.
        f"CREATE TABLE {_REFRESH} ("
        "token_hash TEXT PRIMARY KEY, family_id TEXT NOT NULL) WITHOUT ROWID",
        # Apart from the families: a replayed code may revoke a family not yet created.
        f"CREATE TABLE {_FAMILY_REVOCATIONS} ("
        "family_id TEXT PRIMARY KEY, reason TEXT NOT NULL) WITHOUT ROWID",
        f"CREATE TABLE {_ACCESS_REVOCATIONS} ("
        "jti TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
    ),
    (
        # For `purge`: what it deletes by time, and a family's tokens by family.
        f"CREATE INDEX {_CODES}_expires_at ON {_CODES} (expires_at)",
        f"CREATE INDEX {_ACCESS_REVOCATIONS}_expires_at ON {_ACCESS_REVOCATIONS} (expires_at)",
        f"CREATE INDEX {_FAMILIES}_rotated_at ON {_FAMILIES} (rotated_at)",
        f"CREATE INDEX {_REFRESH}_family_id ON {_REFRESH} (family_id)",
    ),
)


def _family(conn: sqlite3.Connection, family_id: str) -> RefreshFamily | None:
    row = conn.execute(
        f"SELECT {FAMILY_COLUMNS}, r.reason FROM {_FAMILIES} AS f "
        f"LEFT JOIN {_FAMILY_REVOCATIONS} AS r USING (family_id) WHERE family_id = ?",
        (family_id,),
    ).fetchone()
    return None if row is None else decode_family(row, row[9])


def _revoke_family(conn: sqlite3.Connection, family_id: str, reason: str) -> bool:
    cursor = conn.execute(
        f"INSERT INTO {_FAMILY_REVOCATIONS} (family_id, reason) VALUES (?, ?) "
        "ON CONFLICT DO NOTHING",
        (family_id, reason),
    )
    return cursor.rowcount == 1


def _token_stored(conn: sqlite3.Connection, token_hash: str) -> bool:
    row = conn.execute(f"SELECT 1 FROM {_REFRESH} WHERE token_hash = ?", (token_hash,))
    return row.fetchone() is not None


class SqliteGrantStore(_SqliteStore):
    """`GrantStore` in a SQLite file.

    Redeeming and rotating read, decide and write inside one `BEGIN IMMEDIATE` transaction, and
    the write is itself conditional (`UPDATE ... WHERE used = 0`), so two connections (or two
    processes) on one file never both win.
    """

    _component = "oauth_grants"
    _steps = OAUTH_GRANT_STEPS

    async def save_code(self, record: CodeRecord) -> None:
        check_code_record(record)
        row = (
            record.code_hash,
            record.client_id,
            record.redirect_uri,
            record.resource,
            record.scope,
            record.subject,
            record.code_challenge,
            record.family_id,
            record.issued_at,
            record.expires_at,
        )

        def save(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                f"INSERT INTO {_CODES} ({CODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                row,
            )
            if cursor.rowcount != 1:
                raise GrantConflict(f"code hash {record.code_hash!r} is already stored")

        await self._db.call(save)

    async def redeem_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)

        def redeem(conn: sqlite3.Connection) -> CodeRecord | CodeOutcome:
            with _immediate(conn):
                row = conn.execute(
                    f"SELECT {CODE_COLUMNS}, used FROM {_CODES} WHERE code_hash = ?",
                    (code_hash,),
                ).fetchone()
                outcome = code_outcome_of_row(row, now)
                if isinstance(outcome, CodeOutcome):
                    if outcome.status is CodeStatus.REPLAYED and outcome.family_id is not None:
                        _revoke_family(conn, outcome.family_id, CODE_REPLAYED)
                    return outcome
                cursor = conn.execute(
                    f"UPDATE {_CODES} SET used = 1 WHERE code_hash = ? AND used = 0",
                    (code_hash,),
                )
                if cursor.rowcount != 1:  # cannot happen under the write lock; never guess
                    raise StoreUnavailable("the code changed under the write lock")
                return outcome

        return await self._db.call(redeem)

    async def peek_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)

        def peek(conn: sqlite3.Connection) -> CodeRecord | CodeOutcome:
            # One SELECT: a consistent snapshot, and no write lock taken.
            row = conn.execute(
                f"SELECT {CODE_COLUMNS}, used FROM {_CODES} WHERE code_hash = ?",
                (code_hash,),
            ).fetchone()
            return code_outcome_of_row(row, now)

        return await self._db.call(peek)

    async def create_family(
        self,
        family_id: str,
        *,
        subject: str,
        client_id: str,
        resource: str,
        scope: str,
        first_token_hash: str,
        now: float,
    ) -> RefreshFamily:
        check_storable(family_id, subject, client_id, resource, scope, first_token_hash)

        def create(conn: sqlite3.Connection) -> RefreshFamily:
            with _immediate(conn):
                taken = conn.execute(
                    f"SELECT 1 FROM {_FAMILIES} WHERE family_id = ? "
                    f"UNION ALL SELECT 1 FROM {_FAMILY_REVOCATIONS} WHERE family_id = ?",
                    (family_id, family_id),
                ).fetchone()
                if taken is not None:
                    raise GrantConflict(f"family {family_id!r} already exists or was revoked")
                if _token_stored(conn, first_token_hash):
                    raise GrantConflict("the refresh token hash is already stored")
                conn.execute(
                    f"INSERT INTO {_FAMILIES} ({FAMILY_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (family_id, subject, client_id, resource, scope, now, now, first_token_hash),
                )
                conn.execute(
                    f"INSERT INTO {_REFRESH} (token_hash, family_id) VALUES (?, ?)",
                    (first_token_hash, family_id),
                )
            return RefreshFamily(
                family_id=family_id,
                subject=subject,
                client_id=client_id,
                resource=resource,
                scope=scope,
                created_at=now,
                rotated_at=now,
                current_token_hash=first_token_hash,
                generation=0,
                revoked_reason=None,
            )

        return await self._db.call(create)

    async def rotate_refresh(
        self, token_hash: str, new_token_hash: str, now: float
    ) -> RefreshOutcome:
        check_storable(token_hash, new_token_hash)

        def rotate(conn: sqlite3.Connection) -> RefreshOutcome:
            with _immediate(conn):
                row = conn.execute(
                    f"SELECT family_id FROM {_REFRESH} WHERE token_hash = ?", (token_hash,)
                ).fetchone()
                family = None if row is None else _family(conn, row[0])
                if family is None:
                    return RefreshOutcome(status=RefreshStatus.UNKNOWN)
                if family.revoked:
                    return RefreshOutcome(status=RefreshStatus.REVOKED, family=family)
                if family.current_token_hash != token_hash:
                    _revoke_family(conn, family.family_id, REFRESH_REUSED)
                    return RefreshOutcome(
                        status=RefreshStatus.REUSED,
                        family=attrs.evolve(family, revoked_reason=REFRESH_REUSED),
                    )
                if _token_stored(conn, new_token_hash):
                    raise GrantConflict("the new refresh token hash is already stored")
                cursor = conn.execute(
                    f"UPDATE {_FAMILIES} SET current_token_hash = ?, "
                    "generation = generation + 1, rotated_at = ? "
                    "WHERE family_id = ? AND current_token_hash = ?",
                    (new_token_hash, now, family.family_id, token_hash),
                )
                if cursor.rowcount != 1:  # cannot happen under the write lock; never guess
                    raise StoreUnavailable("the family changed under the write lock")
                conn.execute(
                    f"INSERT INTO {_REFRESH} (token_hash, family_id) VALUES (?, ?)",
                    (new_token_hash, family.family_id),
                )
                return RefreshOutcome(
                    status=RefreshStatus.ROTATED,
                    family=attrs.evolve(
                        family,
                        current_token_hash=new_token_hash,
                        generation=family.generation + 1,
                        rotated_at=now,
                    ),
                )

        return await self._db.call(rotate)

    async def revoke_family(self, family_id: str, reason: str) -> bool:
        check_storable(family_id, reason)
        return await self._db.call(lambda conn: _revoke_family(conn, family_id, reason))

    async def family(self, family_id: str) -> RefreshFamily | None:
        if not storable(family_id):  # never written, so never found
            return None
        return await self._db.call(lambda conn: _family(conn, family_id))

    async def is_revoked(self, family_id: str) -> bool:
        if not storable(family_id):
            return False

        def is_revoked(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                f"SELECT 1 FROM {_FAMILY_REVOCATIONS} WHERE family_id = ?", (family_id,)
            ).fetchone()
            return row is not None

        return await self._db.call(is_revoked)

    async def revoke_access(self, jti: str, expires_at: float) -> None:
        check_storable(jti)

        def revoke(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO {_ACCESS_REVOCATIONS} (jti, expires_at) VALUES (?, ?) "
                "ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                (jti, expires_at),
            )

        await self._db.call(revoke)

    async def is_access_revoked(self, jti: str, now: float) -> bool:
        if not storable(jti):
            return False

        def is_revoked(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                f"SELECT 1 FROM {_ACCESS_REVOCATIONS} WHERE jti = ? AND ? <= expires_at",
                (jti, now),
            ).fetchone()
            return row is not None

        return await self._db.call(is_revoked)

    async def purge(self, before: float) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            old_families = f"SELECT family_id FROM {_FAMILIES} WHERE rotated_at < ?"
            with _immediate(conn):
                codes = conn.execute(f"DELETE FROM {_CODES} WHERE expires_at < ?", (before,))
                access = conn.execute(
                    f"DELETE FROM {_ACCESS_REVOCATIONS} WHERE expires_at < ?", (before,)
                )
                conn.execute(
                    f"DELETE FROM {_REFRESH} WHERE family_id IN ({old_families})", (before,)
                )
                conn.execute(
                    f"DELETE FROM {_FAMILY_REVOCATIONS} WHERE family_id IN ({old_families})",
                    (before,),
                )
                families = conn.execute(f"DELETE FROM {_FAMILIES} WHERE rotated_at < ?", (before,))
                return codes.rowcount + access.rowcount + families.rowcount

        return await self._db.call(purge)
