"""PostgreSQL adapters (asyncpg): the stores several nodes share.

Theory of operation. A store is given a DSN or an asyncpg pool, and a schema (a plain
identifier; created when missing) that holds its tables. Given a DSN, the store creates its
pool lazily, on first use, in the running event loop (asyncpg is asyncio-only, so these stores
need anyio's asyncio backend), and `close()` closes it; a pool passed in belongs to the caller,
which may share it between stores. On first use each store also brings its tables to the
newest schema version (see `_sql`): under a transaction-scoped advisory lock keyed by the schema,
so two nodes starting at once migrate once; a schema from a newer release is refused with
`SchemaTooNew`.

Stores: `PostgresCredentialStore`, `PostgresSessionStore`, `PostgresEventStore`, and the
authorization server's `PostgresClientStore` and `PostgresGrantStore` (components
`oauth_clients` and `oauth_grants`, tables `mcp_core_oauth_*`).

Atomicity. Every compare-and-set is one statement: `INSERT ... ON CONFLICT DO NOTHING` creates,
`UPDATE ... WHERE version = $n RETURNING` updates, `DELETE ... WHERE version = $n RETURNING`
deletes, so two nodes racing on one record cannot both win. Only after a write lost does a
second statement read the version that won, for the `VersionConflict`. The session cap is kept
exact across nodes by a transaction-scoped advisory lock around `create`. The grant store's
single-use codes and refresh rotation lock the row they decide on (`SELECT ... FOR UPDATE` in a
transaction), so the racers queue on it; see `PostgresGrantStore`.

Text columns are `COLLATE "C"`, so listings come back in code-point order (as Python sorts)
whatever the database's collation. PostgreSQL text cannot hold NUL: a name containing one is
refused with `ValueError` before anything is sent (the grant store applies the shared rule of
`_sql.check_storable`, lone surrogates too), and an argument asyncpg itself cannot encode is its
client-side `DataError`, a `ValueError` passed on as it is: the caller's error, not an outage.

Errors. Every driver, network or server error, and any operation that takes longer than
`timeout` seconds, raises `StoreUnavailable` chaining the original. A pool the store creates
sets the server's `statement_timeout` to 80% of `timeout`, so a statement that waits too long
(on a lock, say) is aborted by the server and reported, rather than abandoned by the client
while it might still commit; give a pool you pass in the same setting. Nothing is retried inside:
a write that raised may or may not have committed (the connection can drop between the commit
and its acknowledgement); re-reading tells which, and compare-and-set makes retrying safe.
Writes that returned were committed, and PostgreSQL keeps them across a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import asyncpg  # type: ignore[import-untyped]
import asyncpg.exceptions  # type: ignore[import-untyped]
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
    advisory_key,
    check_code_record,
    check_identifier,
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
    "PostgresClientStore",
    "PostgresCredentialStore",
    "PostgresEventStore",
    "PostgresGrantStore",
    "PostgresSessionStore",
    "SchemaTooNew",
    "migrate",
]

T = TypeVar("T")

# What a failing backend looks like through asyncpg: server errors, client/protocol errors,
# the network (OSError covers refused, reset, unreachable), and our own time limit.
_BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)

DEFAULT_SCHEMA = "public"


def _check_text(*values: str | None) -> None:
    for value in values:
        if value is not None and "\x00" in value:
            raise ValueError("PostgreSQL text cannot contain NUL characters")


def _sql(template: str, schema: str) -> str:
    """A statement with `{schema}` replaced by the quoted schema name (checked beforehand)."""
    return template.replace("{schema}", f'"{schema}"')


async def migrate(conn: Any, schema: str, component: str, steps: Sequence[Migration]) -> int:
    """Bring `component` in `schema` to the newest version this code knows; return it."""
    check_identifier(schema)
    table = _sql(f"{{schema}}.{SCHEMA_TABLE}", schema)
    try:
        current = await conn.fetchval(
            f"SELECT version FROM {table} WHERE component = $1", component
        )
    except (asyncpg.exceptions.UndefinedTableError, asyncpg.exceptions.InvalidSchemaNameError):
        current = None
    if current is not None and current == len(steps):
        return len(steps)
    async with conn.transaction():
        # Serialise migrators of this schema (all components: they share the schema table).
        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key("schema", schema))
        exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
        if exists is None:
            # Only when missing: CREATE SCHEMA needs a privilege even with IF NOT EXISTS.
            await conn.execute(_sql("CREATE SCHEMA {schema}", schema))
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            '(component TEXT COLLATE "C" PRIMARY KEY, version INTEGER NOT NULL)'
        )
        found = await conn.fetchval(f"SELECT version FROM {table} WHERE component = $1", component)
        for version, statements in pending_steps(component, int(found or 0), steps):
            for statement in statements:
                await conn.execute(_sql(statement, schema))
            await conn.execute(
                f"INSERT INTO {table} (component, version) VALUES ($1, $2) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                component,
                version,
            )
    return len(steps)


class _PostgresStore:
    """The pool, the migration on first use, the time limit and the error boundary."""

    _component: str
    _steps: Sequence[Migration]

    def __init__(
        self,
        database: str | asyncpg.Pool,
        *,
        schema: str = DEFAULT_SCHEMA,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        pool_options: Mapping[str, Any] | None = None,
    ) -> None:
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.schema = check_identifier(schema)
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        options = dict(pool_options or {})
        # The server gives up on a statement a little before the client does, so that a slow
        # write fails cleanly (rolled back, reported) instead of landing after the caller was
        # told it failed. The client's limit stays as the backstop for a hung network.
        settings = {"statement_timeout": f"{max(1, int(timeout * 800))}ms"}
        settings.update(options.pop("server_settings", None) or {})
        self._pool_options = {"min_size": 1, "max_size": 10, **options, "server_settings": settings}
        if isinstance(database, str):
            self._dsn: str | None = database
            self._pool: Any = None
        else:
            self._dsn = None
            self._pool = database
        self._migrated = False
        self._setup_lock: anyio.Lock | None = None

    def _table(self, name: str) -> str:
        return f'"{self.schema}".{name}'

    async def _setup(self) -> Any:
        if self._setup_lock is None:
            self._setup_lock = anyio.Lock()
        async with self._setup_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn, timeout=self._connect_timeout, **self._pool_options
                )
            if not self._migrated:
                async with self._pool.acquire() as conn:
                    await migrate(conn, self.schema, self._component, self._steps)
                self._migrated = True
        return self._pool

    async def _run(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        """Run `operation(connection)` within the time limit, as a store error if it fails."""
        try:
            with anyio.fail_after(self.timeout):
                pool = self._pool if self._migrated else await self._setup()
                async with pool.acquire() as conn:
                    return await operation(conn)
        except ValueError:
            # asyncpg's client-side DataError (an argument it cannot encode) is a ValueError:
            # the caller's input is the cause, not an outage, so it is not StoreUnavailable.
            raise
        except _BACKEND_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL ({type(exc).__name__}): {exc}") from exc

    async def close(self) -> None:
        """Close the pool this store created (a pool passed in is the caller's to close)."""
        pool, owned = self._pool, self._dsn is not None
        if pool is None or not owned:
            return
        self._pool = None
        self._migrated = False
        try:
            with anyio.fail_after(self.timeout):
                await pool.close()
        except _BACKEND_ERRORS:
            pool.terminate()


# ---- credentials ------------------------------------------------------------------------------

_CREDENTIAL_COLUMNS = "server, subject, kind, version, key_id, ciphertext, updated_at"

CREDENTIAL_STEPS: tuple[Migration, ...] = (
    (
        "CREATE TABLE {schema}.mcp_core_credentials ("
        'server TEXT COLLATE "C" NOT NULL, subject TEXT COLLATE "C" NOT NULL, '
        'kind TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, key_id TEXT NOT NULL, '
        "ciphertext BYTEA NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
        "PRIMARY KEY (server, subject, kind))",
    ),
)


def _credential(row: Any) -> CredentialRecord:
    return CredentialRecord(
        server=row[0],
        subject=row[1],
        kind=row[2],
        version=row[3],
        key_id=row[4],
        ciphertext=bytes(row[5]),
        updated_at=row[6],
    )


class PostgresCredentialStore(_PostgresStore):
    """`CredentialStore` in PostgreSQL (see the module docstring)."""

    _component = "credentials"
    _steps = CREDENTIAL_STEPS

    @property
    def _credentials(self) -> str:
        return self._table("mcp_core_credentials")

    async def _actual_version(self, conn: Any, server: str, subject: str, kind: str) -> int | None:
        found = await conn.fetchval(
            f"SELECT version FROM {self._credentials} "
            "WHERE server = $1 AND subject = $2 AND kind = $3",
            server,
            subject,
            kind,
        )
        return None if found is None else int(found)

    async def get(self, server: str, subject: str, kind: str) -> CredentialRecord | None:
        _check_text(server, subject, kind)

        async def get(conn: Any) -> CredentialRecord | None:
            row = await conn.fetchrow(
                f"SELECT {_CREDENTIAL_COLUMNS} FROM {self._credentials} "
                "WHERE server = $1 AND subject = $2 AND kind = $3",
                server,
                subject,
                kind,
            )
            return None if row is None else _credential(row)

        return await self._run(get)

    async def put(
        self, record: CredentialRecord, *, expected_version: int | None
    ) -> CredentialRecord:
        key = (record.server, record.subject, record.kind)
        _check_text(*key, record.key_id)
        ciphertext = bytes(record.ciphertext)
        updated_at = float(record.updated_at)

        async def put(conn: Any) -> int:
            if expected_version is None:
                written = await conn.fetchval(
                    f"INSERT INTO {self._credentials} ({_CREDENTIAL_COLUMNS}) "
                    "VALUES ($1, $2, $3, 1, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING version",
                    *key,
                    record.key_id,
                    ciphertext,
                    updated_at,
                )
            else:
                written = await conn.fetchval(
                    f"UPDATE {self._credentials} SET version = version + 1, key_id = $4, "
                    "ciphertext = $5, updated_at = $6 "
                    "WHERE server = $1 AND subject = $2 AND kind = $3 AND version = $7 "
                    "RETURNING version",
                    *key,
                    record.key_id,
                    ciphertext,
                    updated_at,
                    expected_version,
                )
            if written is None:
                raise VersionConflict(expected_version, await self._actual_version(conn, *key))
            return int(written)

        version = await self._run(put)
        return CredentialRecord(
            server=record.server,
            subject=record.subject,
            kind=record.kind,
            version=version,
            key_id=record.key_id,
            ciphertext=ciphertext,
            updated_at=updated_at,
        )

    async def delete(
        self, server: str, subject: str, kind: str, *, expected_version: int | None = None
    ) -> bool:
        _check_text(server, subject, kind)

        async def delete(conn: Any) -> bool:
            gone = await conn.fetchval(
                f"DELETE FROM {self._credentials} WHERE server = $1 AND subject = $2 "
                "AND kind = $3 AND ($4::bigint IS NULL OR version = $4) RETURNING version",
                server,
                subject,
                kind,
                expected_version,
            )
            if gone is not None:
                return True
            if expected_version is not None:
                actual = await self._actual_version(conn, server, subject, kind)
                raise VersionConflict(expected_version, actual)
            return False

        return await self._run(delete)

    async def list_subject(self, server: str, subject: str) -> list[CredentialRecord]:
        _check_text(server, subject)

        async def list_subject(conn: Any) -> list[CredentialRecord]:
            rows = await conn.fetch(
                f"SELECT {_CREDENTIAL_COLUMNS} FROM {self._credentials} "
                "WHERE server = $1 AND subject = $2 ORDER BY kind",
                server,
                subject,
            )
            return [_credential(row) for row in rows]

        return await self._run(list_subject)

    async def list_server(self, server: str) -> list[CredentialRecord]:
        _check_text(server)

        async def list_server(conn: Any) -> list[CredentialRecord]:
            rows = await conn.fetch(
                f"SELECT {_CREDENTIAL_COLUMNS} FROM {self._credentials} "
                "WHERE server = $1 ORDER BY subject, kind",
                server,
            )
            return [_credential(row) for row in rows]

        return await self._run(list_server)


# ---- sessions ---------------------------------------------------------------------------------

SESSION_STEPS: tuple[Migration, ...] = (
    (
        "CREATE TABLE {schema}.mcp_core_sessions ("
        'session_id TEXT COLLATE "C" PRIMARY KEY, protocol_version TEXT NOT NULL, '
        "state TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
        "last_active DOUBLE PRECISION NOT NULL, client_capabilities TEXT NOT NULL, "
        "client_info TEXT, subject TEXT, client_id TEXT, log_level TEXT, "
        "subscriptions TEXT NOT NULL)",
        "CREATE INDEX mcp_core_sessions_last_active ON {schema}.mcp_core_sessions (last_active)",
    ),
)

# Expiry is `now - last_active > idle_timeout` ($1 = now, $2 = idle), written exactly so: float
# rounding must not make the store and the port's rule disagree at the boundary. The range
# condition before it only lets the index narrow the rows (its slack dwarfs any rounding).
_EXPIRED = "last_active <= $1::float8 - $2::float8 + 1.0 AND $1::float8 - last_active > $2::float8"
_LIVE = (
    "last_active >= $1::float8 - $2::float8 - 1.0 AND NOT ($1::float8 - last_active > $2::float8)"
)


class PostgresSessionStore(_PostgresStore):
    """`SessionStore` in PostgreSQL: sessions any node can serve."""

    _component = "sessions"
    _steps = SESSION_STEPS

    def __init__(
        self,
        database: str | asyncpg.Pool,
        *,
        idle_timeout: float = 1800.0,
        max_sessions: int = 10_000,
        schema: str = DEFAULT_SCHEMA,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        pool_options: Mapping[str, Any] | None = None,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        super().__init__(
            database,
            schema=schema,
            timeout=timeout,
            connect_timeout=connect_timeout,
            pool_options=pool_options,
        )
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions

    @property
    def _sessions(self) -> str:
        return self._table("mcp_core_sessions")

    @staticmethod
    def _check(record: SessionRecord) -> None:
        _check_text(
            record.session_id,
            record.protocol_version,
            record.state,
            record.subject,
            record.client_id,
            record.log_level,
        )

    async def create(self, record: SessionRecord) -> None:
        self._check(record)
        row = encode_session(record)
        now, idle = float(record.created_at), self.idle_timeout
        placeholders = ", ".join(f"${i}" for i in range(1, len(SESSION_COLUMNS) + 1))

        async def create(conn: Any) -> None:
            async with conn.transaction():
                # One creator at a time per schema, so that the cap holds across nodes.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1)", advisory_key("sessions", self.schema)
                )
                await conn.execute(
                    f"DELETE FROM {self._sessions} WHERE session_id = $3 AND {_EXPIRED}",
                    now,
                    idle,
                    record.session_id,
                )
                taken = await conn.fetchval(
                    f"SELECT 1 FROM {self._sessions} WHERE session_id = $1", record.session_id
                )
                if taken is not None:
                    raise ValueError(f"session id {record.session_id!r} is taken")
                live = await conn.fetchval(
                    f"SELECT count(*) FROM {self._sessions} WHERE {_LIVE}", now, idle
                )
                if live >= self.max_sessions:
                    raise SessionLimitReached(f"{self.max_sessions} sessions are open")
                await conn.execute(
                    f"INSERT INTO {self._sessions} ({', '.join(SESSION_COLUMNS)}) "
                    f"VALUES ({placeholders})",
                    *row,
                )

        await self._run(create)

    async def get(self, session_id: str, now: float) -> SessionRecord | None:
        _check_text(session_id)

        async def get(conn: Any) -> SessionRecord | None:
            found = await conn.fetchrow(
                f"SELECT {', '.join(SESSION_COLUMNS)} FROM {self._sessions} WHERE session_id = $1",
                session_id,
            )
            if found is None:
                return None
            record = decode_session(found)
            if now - record.last_active > self.idle_timeout:
                await conn.execute(
                    f"DELETE FROM {self._sessions} WHERE session_id = $3 AND {_EXPIRED}",
                    float(now),
                    self.idle_timeout,
                    session_id,
                )
                return None
            return record

        return await self._run(get)

    async def touch(self, session_id: str, now: float) -> None:
        _check_text(session_id)

        async def touch(conn: Any) -> None:
            # An expired session stays expired: activity cannot revive it.
            await conn.execute(
                f"UPDATE {self._sessions} SET last_active = $1 WHERE session_id = $3 "
                "AND $1::float8 > last_active AND NOT ($1::float8 - last_active > $2::float8)",
                float(now),
                self.idle_timeout,
                session_id,
            )

        await self._run(touch)

    async def put(self, record: SessionRecord) -> None:
        self._check(record)
        row = encode_session(record)
        assignments = ", ".join(
            f"{column} = ${i}" for i, column in enumerate(SESSION_COLUMNS[1:], start=2)
        )

        async def put(conn: Any) -> bool:
            done = await conn.fetchval(
                f"UPDATE {self._sessions} SET {assignments} WHERE session_id = $1 RETURNING 1",
                *row,
            )
            return done is not None

        if not await self._run(put):
            raise KeyError(record.session_id)

    async def delete(self, session_id: str) -> bool:
        _check_text(session_id)

        async def delete(conn: Any) -> bool:
            gone = await conn.fetchval(
                f"DELETE FROM {self._sessions} WHERE session_id = $1 RETURNING 1", session_id
            )
            return gone is not None

        return await self._run(delete)

    async def sweep(self, now: float) -> list[str]:
        async def sweep(conn: Any) -> list[str]:
            rows = await conn.fetch(
                f"DELETE FROM {self._sessions} WHERE {_EXPIRED} RETURNING session_id",
                float(now),
                self.idle_timeout,
            )
            return [str(row[0]) for row in rows]

        return await self._run(sweep)


# ---- events -----------------------------------------------------------------------------------

EVENT_STEPS: tuple[Migration, ...] = (
    (
        # One row per session: its event counter, and when its log began (for eviction).
        "CREATE TABLE {schema}.mcp_core_event_logs ("
        'session_id TEXT COLLATE "C" PRIMARY KEY, last_n BIGINT NOT NULL, '
        "born BIGINT GENERATED ALWAYS AS IDENTITY)",
        "CREATE INDEX mcp_core_event_logs_born ON {schema}.mcp_core_event_logs (born)",
        "CREATE TABLE {schema}.mcp_core_events ("
        'session_id TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, '
        'stream_id TEXT COLLATE "C" NOT NULL, payload BYTEA NOT NULL, '
        "PRIMARY KEY (session_id, n))",
        "CREATE INDEX mcp_core_events_stream "
        "ON {schema}.mcp_core_events (session_id, stream_id, n)",
    ),
)


class PostgresEventStore(_PostgresStore):
    """`EventStore` in PostgreSQL, so a client can resume on any node. Event ids are
    `<stream_id>:<n>`, `n` counting the session's events; a session keeps its newest
    `max_events_per_session` events, and the logs of at most `max_sessions` sessions are kept
    (the oldest log goes first)."""

    _component = "events"
    _steps = EVENT_STEPS

    def __init__(
        self,
        database: str | asyncpg.Pool,
        *,
        max_events_per_session: int = 1_000,
        max_sessions: int = 10_000,
        schema: str = DEFAULT_SCHEMA,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        pool_options: Mapping[str, Any] | None = None,
    ) -> None:
        if max_events_per_session < 1 or max_sessions < 1:
            raise ValueError("bounds must be at least 1")
        super().__init__(
            database,
            schema=schema,
            timeout=timeout,
            connect_timeout=connect_timeout,
            pool_options=pool_options,
        )
        self.max_events_per_session = max_events_per_session
        self.max_sessions = max_sessions

    async def append(self, session_id: str, stream_id: str, payload: bytes) -> str:
        _check_text(session_id, stream_id)
        logs, events = self._table("mcp_core_event_logs"), self._table("mcp_core_events")

        async def append(conn: Any) -> int:
            async with conn.transaction():
                # The counter row is locked until commit: one session's appends serialise.
                n = int(
                    await conn.fetchval(
                        f"INSERT INTO {logs} AS log (session_id, last_n) VALUES ($1, 1) "
                        "ON CONFLICT (session_id) DO UPDATE SET last_n = log.last_n + 1 "
                        "RETURNING last_n",
                        session_id,
                    )
                )
                if n == 1:
                    await conn.execute(
                        f"WITH oldest AS (DELETE FROM {logs} WHERE session_id IN ("
                        f"SELECT session_id FROM {logs} WHERE session_id <> $1 ORDER BY born "
                        f"LIMIT greatest((SELECT count(*) FROM {logs}) - $2, 0)) "
                        "RETURNING session_id) "
                        f"DELETE FROM {events} WHERE session_id IN (SELECT session_id FROM oldest)",
                        session_id,
                        self.max_sessions,
                    )
                await conn.execute(
                    f"INSERT INTO {events} (session_id, n, stream_id, payload) "
                    "VALUES ($1, $2, $3, $4)",
                    session_id,
                    n,
                    stream_id,
                    bytes(payload),
                )
                if n > self.max_events_per_session:
                    await conn.execute(
                        f"DELETE FROM {events} WHERE session_id = $1 AND n <= $2",
                        session_id,
                        n - self.max_events_per_session,
                    )
            return n

        return event_id(stream_id, await self._run(append))

    async def replay_after(self, session_id: str, last_event_id: str) -> Replay | None:
        parsed = parse_event_id(last_event_id)
        if parsed is None or "\x00" in session_id or "\x00" in parsed[0]:
            return None
        stream_id, after = parsed
        events = self._table("mcp_core_events")

        async def replay(conn: Any) -> list[tuple[int, bytes]]:
            # One statement, one snapshot: the anchor event itself comes first when it exists.
            rows = await conn.fetch(
                f"SELECT n, payload FROM {events} WHERE session_id = $1 AND stream_id = $2 "
                "AND n >= $3 ORDER BY n",
                session_id,
                stream_id,
                after,
            )
            return [(int(row[0]), bytes(row[1])) for row in rows]

        rows = await self._run(replay)
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
        _check_text(session_id)
        logs, events = self._table("mcp_core_event_logs"), self._table("mcp_core_events")

        async def forget(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(f"DELETE FROM {logs} WHERE session_id = $1", session_id)
                await conn.execute(f"DELETE FROM {events} WHERE session_id = $1", session_id)

        await self._run(forget)


# ---- OAuth: clients and grants ----------------------------------------------------------------

OAUTH_CLIENT_STEPS: tuple[Migration, ...] = (
    (
        "CREATE TABLE {schema}.mcp_core_oauth_clients ("
        'client_id TEXT COLLATE "C" PRIMARY KEY, metadata TEXT NOT NULL, secret_hash BYTEA, '
        "registered_at DOUBLE PRECISION NOT NULL, source TEXT NOT NULL)",
    ),
)


def _bytes_of(text: str) -> bytes:
    # Surrogates too: a caller's string round-trips whatever it holds (a NUL included, which
    # a TEXT column refuses).
    return text.encode("utf-8", "surrogatepass")


def _text_of(raw: Any) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


class PostgresClientStore(_PostgresStore):
    """`ClientStore` in PostgreSQL. Metadata is kept as JSON text (exact round trip, nothing
    queries inside it); the secret hash as bytes, so any string the caller chose fits."""

    _component = "oauth_clients"
    _steps = OAUTH_CLIENT_STEPS

    @property
    def _clients(self) -> str:
        return self._table("mcp_core_oauth_clients")

    async def put(self, client: RegisteredClient) -> None:
        _check_text(client.client_id)
        row = (
            client.client_id,
            orjson.dumps(dict(client.metadata)).decode(),
            None if client.secret_hash is None else _bytes_of(client.secret_hash),
            float(client.registered_at),
            client.source,
        )

        async def put(conn: Any) -> None:
            await conn.execute(
                f"INSERT INTO {self._clients} "
                "(client_id, metadata, secret_hash, registered_at, source) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO UPDATE SET "
                "metadata = excluded.metadata, secret_hash = excluded.secret_hash, "
                "registered_at = excluded.registered_at, source = excluded.source",
                *row,
            )

        await self._run(put)

    async def get(self, client_id: str) -> RegisteredClient | None:
        if "\x00" in client_id:
            return None  # cannot have been stored

        async def get(conn: Any) -> RegisteredClient | None:
            row = await conn.fetchrow(
                f"SELECT client_id, metadata, secret_hash, registered_at, source "
                f"FROM {self._clients} WHERE client_id = $1",
                client_id,
            )
            if row is None:
                return None
            return RegisteredClient(
                client_id=row[0],
                metadata=orjson.loads(row[1]),
                secret_hash=None if row[2] is None else _text_of(row[2]),
                registered_at=row[3],
                source=row[4],
            )

        return await self._run(get)

    async def delete(self, client_id: str) -> bool:
        if "\x00" in client_id:
            return False

        async def delete(conn: Any) -> bool:
            gone = await conn.fetchval(
                f"DELETE FROM {self._clients} WHERE client_id = $1 RETURNING 1", client_id
            )
            return gone is not None

        return await self._run(delete)


OAUTH_GRANT_STEPS: tuple[Migration, ...] = (
    (
        "CREATE TABLE {schema}.mcp_core_oauth_codes ("
        'code_hash TEXT COLLATE "C" PRIMARY KEY, client_id TEXT NOT NULL, '
        "redirect_uri TEXT NOT NULL, resource TEXT NOT NULL, scope TEXT NOT NULL, "
        "subject TEXT NOT NULL, code_challenge TEXT NOT NULL, family_id TEXT NOT NULL, "
        "issued_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, "
        "used BOOLEAN NOT NULL DEFAULT false)",
        "CREATE INDEX mcp_core_oauth_codes_expires_at ON {schema}.mcp_core_oauth_codes "
        "(expires_at)",
        "CREATE TABLE {schema}.mcp_core_oauth_families ("
        'family_id TEXT COLLATE "C" PRIMARY KEY, subject TEXT NOT NULL, '
        "client_id TEXT NOT NULL, resource TEXT NOT NULL, scope TEXT NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, rotated_at DOUBLE PRECISION NOT NULL, "
        "current_token_hash TEXT NOT NULL, generation BIGINT NOT NULL)",
        "CREATE INDEX mcp_core_oauth_families_rotated_at ON {schema}.mcp_core_oauth_families "
        "(rotated_at)",
        # Every token a family ever had: an old one presented again is reuse.
        "CREATE TABLE {schema}.mcp_core_oauth_refresh_tokens ("
        'token_hash TEXT COLLATE "C" PRIMARY KEY, family_id TEXT COLLATE "C" NOT NULL)',
        "CREATE INDEX mcp_core_oauth_refresh_tokens_family_id "
        "ON {schema}.mcp_core_oauth_refresh_tokens (family_id)",
        # Apart from the families: a replayed code may revoke a family not yet created.
        "CREATE TABLE {schema}.mcp_core_oauth_family_revocations ("
        'family_id TEXT COLLATE "C" PRIMARY KEY, reason TEXT NOT NULL)',
        "CREATE TABLE {schema}.mcp_core_oauth_access_revocations ("
        'jti TEXT COLLATE "C" PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL)',
        "CREATE INDEX mcp_core_oauth_access_revocations_expires_at "
        "ON {schema}.mcp_core_oauth_access_revocations (expires_at)",
    ),
)


class PostgresGrantStore(_PostgresStore):
    """`GrantStore` in PostgreSQL, shared by every node of a deployment.

    Atomicity (READ COMMITTED, PostgreSQL's default): redeeming reads the code `FOR UPDATE` in
    a transaction, so concurrent redeems of one code queue on its row and each re-reads what
    the one before it wrote: the first marks it used, every later one sees it used (a replay)
    and revokes the family before its transaction ends. Rotating locks the family's row the
    same way before it reads the family's revocation and decides, so of several nodes
    presenting one token exactly one rotates, the next is reuse (and revokes), the rest find
    the family revoked. A revocation is an `INSERT ... ON CONFLICT DO NOTHING`: the first
    reason stays. `purge` locks the families it removes (in id order) before deleting their
    tokens, so a rotation in flight either finishes first (and moves `rotated_at`, which takes
    the family out of the purge when it no longer qualifies) or finds the family gone.
    """

    _component = "oauth_grants"
    _steps = OAUTH_GRANT_STEPS

    def _tables(self) -> tuple[str, str, str, str, str]:
        return (
            self._table("mcp_core_oauth_codes"),
            self._table("mcp_core_oauth_families"),
            self._table("mcp_core_oauth_refresh_tokens"),
            self._table("mcp_core_oauth_family_revocations"),
            self._table("mcp_core_oauth_access_revocations"),
        )

    async def _revoke(self, conn: Any, family_id: str, reason: str) -> bool:
        done = await conn.fetchval(
            f"INSERT INTO {self._tables()[3]} (family_id, reason) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            family_id,
            reason,
        )
        return done is not None

    async def _reason(self, conn: Any, family_id: str) -> str | None:
        found = await conn.fetchval(
            f"SELECT reason FROM {self._tables()[3]} WHERE family_id = $1", family_id
        )
        return None if found is None else str(found)

    async def save_code(self, record: CodeRecord) -> None:
        row = (
            record.code_hash,
            record.client_id,
            record.redirect_uri,
            record.resource,
            record.scope,
            record.subject,
            record.code_challenge,
            record.family_id,
        )
        check_code_record(record)
        codes = self._tables()[0]

        async def save(conn: Any) -> bool:
            done = await conn.fetchval(
                f"INSERT INTO {codes} ({CODE_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                *row,
                float(record.issued_at),
                float(record.expires_at),
            )
            return done is not None

        if not await self._run(save):
            raise GrantConflict(f"code hash {record.code_hash!r} is already stored")

    async def redeem_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)
        codes = self._tables()[0]

        async def redeem(conn: Any) -> CodeRecord | CodeOutcome:
            async with conn.transaction():
                row = await conn.fetchrow(
                    f"SELECT {CODE_COLUMNS}, used FROM {codes} WHERE code_hash = $1 FOR UPDATE",
                    code_hash,
                )
                outcome = code_outcome_of_row(row, now)
                if isinstance(outcome, CodeOutcome):
                    if outcome.status is CodeStatus.REPLAYED and outcome.family_id is not None:
                        await self._revoke(conn, outcome.family_id, CODE_REPLAYED)
                    return outcome
                await conn.execute(
                    f"UPDATE {codes} SET used = true WHERE code_hash = $1", code_hash
                )
                return outcome

        return await self._run(redeem)

    async def peek_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)
        codes = self._tables()[0]

        async def peek(conn: Any) -> CodeRecord | CodeOutcome:
            # A plain SELECT: no row lock, so a peek never queues behind (or delays) a redeem.
            row = await conn.fetchrow(
                f"SELECT {CODE_COLUMNS}, used FROM {codes} WHERE code_hash = $1", code_hash
            )
            return code_outcome_of_row(row, now)

        return await self._run(peek)

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
        _, families, tokens, _, _ = self._tables()
        family = RefreshFamily(
            family_id=family_id,
            subject=subject,
            client_id=client_id,
            resource=resource,
            scope=scope,
            created_at=float(now),
            rotated_at=float(now),
            current_token_hash=first_token_hash,
            generation=0,
            revoked_reason=None,
        )

        async def create(conn: Any) -> None:
            async with conn.transaction():
                if await self._reason(conn, family_id) is not None:
                    raise GrantConflict(f"family {family_id!r} was revoked")
                created = await conn.fetchval(
                    f"INSERT INTO {families} ({FAMILY_COLUMNS}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $6, $7, 0) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    family_id,
                    subject,
                    client_id,
                    resource,
                    scope,
                    float(now),
                    first_token_hash,
                )
                if created is None:
                    raise GrantConflict(f"family {family_id!r} already exists")
                stored = await conn.fetchval(
                    f"INSERT INTO {tokens} (token_hash, family_id) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    first_token_hash,
                    family_id,
                )
                if stored is None:  # raising rolls the family back with the transaction
                    raise GrantConflict("the refresh token hash is already stored")

        await self._run(create)
        return family

    async def rotate_refresh(
        self, token_hash: str, new_token_hash: str, now: float
    ) -> RefreshOutcome:
        check_storable(token_hash, new_token_hash)
        _, families, tokens, _, _ = self._tables()

        async def rotate(conn: Any) -> RefreshOutcome:
            async with conn.transaction():
                family_id = await conn.fetchval(
                    f"SELECT family_id FROM {tokens} WHERE token_hash = $1", token_hash
                )
                row = None
                if family_id is not None:
                    # The lock that serialises every rotation of this family; what follows
                    # reads after the previous holder committed (READ COMMITTED).
                    row = await conn.fetchrow(
                        f"SELECT {FAMILY_COLUMNS} FROM {families} WHERE family_id = $1 FOR UPDATE",
                        family_id,
                    )
                if row is None:  # unknown, or purged meanwhile
                    return RefreshOutcome(status=RefreshStatus.UNKNOWN)
                reason = await self._reason(conn, family_id)
                if reason is not None:
                    family = decode_family(row, reason)
                    return RefreshOutcome(status=RefreshStatus.REVOKED, family=family)
                if row[7] != token_hash:
                    if await self._revoke(conn, family_id, REFRESH_REUSED):
                        family = decode_family(row, REFRESH_REUSED)
                        return RefreshOutcome(status=RefreshStatus.REUSED, family=family)
                    # Revoked by someone else (a code replay, an operator) just now.
                    family = decode_family(row, await self._reason(conn, family_id))
                    return RefreshOutcome(status=RefreshStatus.REVOKED, family=family)
                stored = await conn.fetchval(
                    f"INSERT INTO {tokens} (token_hash, family_id) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    new_token_hash,
                    family_id,
                )
                if stored is None:
                    raise GrantConflict("the new refresh token hash is already stored")
                rotated = await conn.fetchrow(
                    f"UPDATE {families} SET current_token_hash = $2, "
                    "generation = generation + 1, rotated_at = $3 WHERE family_id = $1 "
                    f"RETURNING {FAMILY_COLUMNS}",
                    family_id,
                    new_token_hash,
                    float(now),
                )
                return RefreshOutcome(
                    status=RefreshStatus.ROTATED, family=decode_family(rotated, None)
                )

        return await self._run(rotate)

    async def revoke_family(self, family_id: str, reason: str) -> bool:
        check_storable(family_id, reason)
        return await self._run(lambda conn: self._revoke(conn, family_id, reason))

    async def family(self, family_id: str) -> RefreshFamily | None:
        if not storable(family_id):  # never written, so never found
            return None
        _, families, _, revocations, _ = self._tables()

        async def family(conn: Any) -> RefreshFamily | None:
            row = await conn.fetchrow(
                f"SELECT {FAMILY_COLUMNS}, r.reason FROM {families} "
                f"LEFT JOIN {revocations} AS r USING (family_id) WHERE family_id = $1",
                family_id,
            )
            return None if row is None else decode_family(row, row[9])

        return await self._run(family)

    async def is_revoked(self, family_id: str) -> bool:
        if not storable(family_id):
            return False
        return await self._run(lambda conn: self._reason(conn, family_id)) is not None

    async def revoke_access(self, jti: str, expires_at: float) -> None:
        check_storable(jti)
        access = self._tables()[4]

        async def revoke(conn: Any) -> None:
            await conn.execute(
                f"INSERT INTO {access} AS a (jti, expires_at) VALUES ($1, $2) "
                "ON CONFLICT (jti) DO UPDATE SET "
                "expires_at = greatest(a.expires_at, excluded.expires_at)",
                jti,
                float(expires_at),
            )

        await self._run(revoke)

    async def is_access_revoked(self, jti: str, now: float) -> bool:
        if not storable(jti):
            return False
        access = self._tables()[4]

        async def is_revoked(conn: Any) -> bool:
            found = await conn.fetchval(
                f"SELECT 1 FROM {access} WHERE jti = $1 AND $2::float8 <= expires_at",
                jti,
                float(now),
            )
            return found is not None

        return await self._run(is_revoked)

    async def purge(self, before: float) -> int:
        codes, families, tokens, revocations, access = self._tables()
        cutoff = float(before)

        async def purge(conn: Any) -> int:
            async with conn.transaction():
                gone_codes = await conn.fetch(
                    f"DELETE FROM {codes} WHERE expires_at < $1 RETURNING 1", cutoff
                )
                gone_access = await conn.fetch(
                    f"DELETE FROM {access} WHERE expires_at < $1 RETURNING 1", cutoff
                )
                locked = await conn.fetch(
                    f"SELECT family_id FROM {families} WHERE rotated_at < $1 "
                    "ORDER BY family_id FOR UPDATE",
                    cutoff,
                )
                ids = [row[0] for row in locked]
                if ids:
                    await conn.execute(
                        f"DELETE FROM {tokens} WHERE family_id = ANY($1::text[])", ids
                    )
                    await conn.execute(
                        f"DELETE FROM {revocations} WHERE family_id = ANY($1::text[])", ids
                    )
                    await conn.execute(
                        f"DELETE FROM {families} WHERE family_id = ANY($1::text[])", ids
                    )
                return len(gone_codes) + len(gone_access) + len(ids)

        return await self._run(purge)
