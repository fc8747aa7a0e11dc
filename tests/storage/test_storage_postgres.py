"""The PostgreSQL adapters beyond the port contracts: the pool, schema migrations, failures.

Runs against the server on this machine, each test in schemas of its own (dropped afterwards).
The restart test is in test_storage_postgres_restart.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest

from mcp_core.adapters.storage._sql import SCHEMA_TABLE
from mcp_core.adapters.storage.postgres import (
    CREDENTIAL_STEPS,
    EVENT_STEPS,
    SESSION_STEPS,
    PostgresCredentialStore,
    PostgresEventStore,
    PostgresSessionStore,
    SchemaTooNew,
    migrate,
)
from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable, VersionConflict

pytestmark = pytest.mark.anyio

Schemas = Callable[[], str]


def sealed(subject: str, blob: bytes = b"sealed", kind: str = "api") -> CredentialRecord:
    return CredentialRecord(
        server="srv",
        subject=subject,
        kind=kind,
        version=0,
        key_id="k1",
        ciphertext=blob,
        updated_at=1.5,
    )


@pytest.fixture
async def conn(postgres_dsn: str) -> AsyncIterator[Any]:
    """A plain connection of the test's own, to look at (and interfere with) the database."""
    connection = await asyncpg.connect(postgres_dsn, timeout=5)
    try:
        yield connection
    finally:
        await connection.close(timeout=5)


async def schema_rows(conn: Any, schema: str) -> list[tuple[str, int]]:
    rows = await conn.fetch(f'SELECT component, version FROM "{schema}".{SCHEMA_TABLE} ORDER BY 1')
    return [(row[0], row[1]) for row in rows]


async def tables(conn: Any, schema: str) -> list[tuple[str, str, str]]:
    """(table, column, type) of every column in the schema: a fingerprint of its layout."""
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = $1 ORDER BY 1, 2",
        schema,
    )
    return [(row[0], row[1], row[2]) for row in rows]


# ---- the pool ---------------------------------------------------------------------------------


async def _connections_named(conn: Any, name: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
    )
    return count


async def test_a_store_given_a_dsn_opens_its_pool_on_first_use_and_closes_it(
    postgres_dsn: str, postgres_schemas: Schemas, conn: Any
) -> None:
    name = f"mcp-test-{secrets.token_hex(4)}"
    store = PostgresCredentialStore(
        postgres_dsn,
        schema=postgres_schemas(),
        pool_options={"server_settings": {"application_name": name}},
    )
    assert await _connections_named(conn, name) == 0
    await store.put(sealed("alice"), expected_version=None)
    assert await _connections_named(conn, name) >= 1
    await store.close()
    for _ in range(250):  # the server notices closed connections within moments
        if not await _connections_named(conn, name):
            break
        await anyio.sleep(0.02)
    assert await _connections_named(conn, name) == 0
    # closed is not broken: the next call opens a new pool
    got = await store.get("srv", "alice", "api")
    assert got is not None
    await store.close()


async def test_a_pool_passed_in_is_shared_and_left_open(
    postgres_dsn: str, postgres_schemas: Schemas
) -> None:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2, timeout=5)
    try:
        schema = postgres_schemas()
        credentials = PostgresCredentialStore(pool, schema=schema)
        sessions = PostgresSessionStore(pool, schema=schema)
        events = PostgresEventStore(pool, schema=schema)
        await credentials.put(sealed("alice"), expected_version=None)
        assert await sessions.get("nope", 0.0) is None
        await events.append("s", "a", b"x")
        for store in (credentials, sessions, events):
            await store.close()
        assert await pool.fetchval("SELECT 1") == 1  # still the caller's, still open
        assert await schema_rows(pool, schema) == [
            ("credentials", len(CREDENTIAL_STEPS)),
            ("events", len(EVENT_STEPS)),
            ("sessions", len(SESSION_STEPS)),
        ]
    finally:
        await pool.close()


async def test_two_nodes_racing_on_one_record_never_both_win(
    postgres_dsn: str, postgres_schemas: Schemas
) -> None:
    schema = postgres_schemas()
    nodes = [PostgresCredentialStore(postgres_dsn, schema=schema) for _ in range(2)]
    await nodes[0].put(sealed("alice", b"v1"), expected_version=None)
    outcomes: list[object] = []

    async def write(store: PostgresCredentialStore, n: int) -> None:
        try:
            outcomes.append(await store.put(sealed("alice", b"w%d" % n), expected_version=1))
        except VersionConflict as conflict:
            outcomes.append(conflict)

    try:
        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(write, nodes[n % 2], n)
        winners = [o for o in outcomes if isinstance(o, CredentialRecord)]
        losers = [o for o in outcomes if isinstance(o, VersionConflict)]
        assert len(winners) == 1
        assert len(losers) == 9
        assert all(loser.actual == 2 for loser in losers)
        assert await nodes[1].get("srv", "alice", "api") == winners[0]
    finally:
        for node in nodes:
            await node.close()


# ---- migrations -------------------------------------------------------------------------------

DEMO_V1 = (
    ("CREATE TABLE {schema}.demo (a TEXT NOT NULL)", "CREATE TABLE {schema}.demo_log (step TEXT)"),
)
DEMO_V2 = (
    *DEMO_V1,
    (
        "ALTER TABLE {schema}.demo ADD COLUMN b INTEGER NOT NULL DEFAULT 7",
        "INSERT INTO {schema}.demo_log VALUES ('2')",
    ),
)


async def test_a_fresh_schema_gets_created_with_every_table_and_its_version(
    postgres_dsn: str, postgres_schemas: Schemas, conn: Any
) -> None:
    schema = postgres_schemas()
    assert await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema) is None
    store = PostgresCredentialStore(postgres_dsn, schema=schema)
    assert await store.list_server("srv") == []
    await store.close()
    assert await schema_rows(conn, schema) == [("credentials", len(CREDENTIAL_STEPS))]
    assert {table for table, _, _ in await tables(conn, schema)} == {
        SCHEMA_TABLE,
        "mcp_core_credentials",
    }


async def test_running_the_migrations_again_changes_nothing(
    postgres_schemas: Schemas, conn: Any
) -> None:
    schema = postgres_schemas()
    assert await migrate(conn, schema, "demo", DEMO_V2) == 2
    await conn.execute(f"INSERT INTO \"{schema}\".demo (a) VALUES ('kept')")
    before = (await schema_rows(conn, schema), await tables(conn, schema))
    for _ in range(2):
        assert await migrate(conn, schema, "demo", DEMO_V2) == 2
    assert (await schema_rows(conn, schema), await tables(conn, schema)) == before
    assert [tuple(r) for r in await conn.fetch(f'SELECT a, b FROM "{schema}".demo')] == [
        ("kept", 7)
    ]
    assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".demo_log') == 1


async def test_an_upgrade_applies_only_the_missing_steps_in_order(
    postgres_schemas: Schemas, conn: Any
) -> None:
    schema = postgres_schemas()
    assert await migrate(conn, schema, "demo", DEMO_V1) == 1
    await conn.execute(f"INSERT INTO \"{schema}\".demo (a) VALUES ('old row')")
    assert await migrate(conn, schema, "demo", DEMO_V2) == 2
    assert [tuple(r) for r in await conn.fetch(f'SELECT a, b FROM "{schema}".demo')] == [
        ("old row", 7)
    ]
    assert await schema_rows(conn, schema) == [("demo", 2)]


async def test_a_failing_step_rolls_back_the_whole_upgrade(
    postgres_schemas: Schemas, conn: Any
) -> None:
    schema = postgres_schemas()
    broken = (*DEMO_V1, ("INSERT INTO {schema}.demo_log VALUES ('half')", "THIS IS NOT SQL"))
    await migrate(conn, schema, "demo", DEMO_V1)
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await migrate(conn, schema, "demo", broken)
    assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".demo_log') == 0
    assert await schema_rows(conn, schema) == [("demo", 1)]


async def test_concurrent_migrators_migrate_once(
    postgres_dsn: str, postgres_schemas: Schemas
) -> None:
    # Six connections (six server processes) race to create the same, not yet existing schema.
    # Step 1 is a plain CREATE TABLE: a second run of it would fail, and demo_log would have
    # two rows.
    schema = postgres_schemas()
    connections = [await asyncpg.connect(postgres_dsn, timeout=5) for _ in range(6)]
    results: list[int] = []
    try:
        ready = anyio.Event()

        async def migrator(connection: Any) -> None:
            await ready.wait()
            results.append(await migrate(connection, schema, "demo", DEMO_V2))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for connection in connections:
                    tg.start_soon(migrator, connection)
                await anyio.sleep(0.05)
                ready.set()
        assert results == [2] * 6
        inspect = connections[0]
        assert await schema_rows(inspect, schema) == [("demo", 2)]
        assert await inspect.fetchval(f'SELECT count(*) FROM "{schema}".demo_log') == 1
    finally:
        for connection in connections:
            await connection.close(timeout=5)


async def test_stores_of_several_nodes_starting_at_once_share_one_schema(
    postgres_dsn: str, postgres_schemas: Schemas, conn: Any
) -> None:
    schema = postgres_schemas()
    stores: list[Any] = []
    for _ in range(3):
        stores += [
            PostgresCredentialStore(postgres_dsn, schema=schema),
            PostgresSessionStore(postgres_dsn, schema=schema),
            PostgresEventStore(postgres_dsn, schema=schema),
        ]

    async def first_use(store: Any) -> None:
        if isinstance(store, PostgresCredentialStore):
            await store.list_server("srv")
        elif isinstance(store, PostgresSessionStore):
            await store.sweep(0.0)
        else:
            await store.forget_session("s")

    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for store in stores:
                    tg.start_soon(first_use, store)
    finally:
        for store in stores:
            await store.close()
    assert await schema_rows(conn, schema) == [
        ("credentials", len(CREDENTIAL_STEPS)),
        ("events", len(EVENT_STEPS)),
        ("sessions", len(SESSION_STEPS)),
    ]


async def test_a_newer_schema_is_refused_and_left_alone(
    postgres_dsn: str, postgres_schemas: Schemas, conn: Any
) -> None:
    schema = postgres_schemas()
    store = PostgresCredentialStore(postgres_dsn, schema=schema)
    await store.put(sealed("alice"), expected_version=None)
    await store.close()
    await conn.execute(
        f"UPDATE \"{schema}\".{SCHEMA_TABLE} SET version = 99 WHERE component = 'credentials'"
    )
    newer = PostgresCredentialStore(postgres_dsn, schema=schema)
    try:
        with pytest.raises(SchemaTooNew, match=r"version 99.*only up to version 1") as caught:
            await newer.get("srv", "alice", "api")
        assert isinstance(caught.value, StoreUnavailable)
        # refused every time, not only on the first call
        with pytest.raises(SchemaTooNew):
            await newer.list_server("srv")
    finally:
        await newer.close()
    assert await schema_rows(conn, schema) == [("credentials", 99)]
    assert await conn.fetchval(f'SELECT subject FROM "{schema}".mcp_core_credentials') == "alice"


# ---- failures and bad input -------------------------------------------------------------------


async def test_an_unreachable_server_is_unavailable_quickly() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    store = PostgresCredentialStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await store.get("srv", "alice", "api")
    assert isinstance(caught.value.__cause__, OSError)
    assert time.monotonic() - started < 5
    await store.close()


async def test_an_operation_past_its_time_limit_is_unavailable_and_changes_nothing(
    postgres_dsn: str, postgres_schemas: Schemas, conn: Any
) -> None:
    schema = postgres_schemas()
    store = PostgresCredentialStore(postgres_dsn, schema=schema, timeout=0.5)
    try:
        await store.put(sealed("alice", b"v1"), expected_version=None)
        async with conn.transaction():  # another node holds the row
            await conn.execute(
                f'SELECT 1 FROM "{schema}".mcp_core_credentials WHERE subject = $1 FOR UPDATE',
                "alice",
            )
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await store.put(sealed("alice", b"late"), expected_version=1)
            # the server aborted the statement (its statement_timeout is below the store's)
            assert isinstance(caught.value.__cause__, asyncpg.QueryCanceledError)
            assert time.monotonic() - started < 3
        # the abandoned statement was cancelled, not left to land later
        await anyio.sleep(0.2)
        got = await store.get("srv", "alice", "api")
        assert got is not None
        assert (got.version, got.ciphertext) == (1, b"v1")
        assert (await store.put(sealed("alice", b"v2"), expected_version=1)).version == 2
    finally:
        await store.close()


async def test_names_postgres_cannot_store_are_refused_before_sending(
    postgres_dsn: str, postgres_schemas: Schemas
) -> None:
    store = PostgresCredentialStore(postgres_dsn, schema=postgres_schemas())
    try:
        with pytest.raises(ValueError, match="NUL"):
            await store.put(sealed("ali\x00ce"), expected_version=None)
        with pytest.raises(ValueError, match="NUL"):
            await store.get("srv", "ali\x00ce", "api")
        assert await store.list_server("srv") == []
    finally:
        await store.close()


@pytest.mark.parametrize("schema", ["", "1abc", 'x"; DROP TABLE y; --', "a" * 64, "dash-ed"])
def test_a_schema_name_must_be_a_plain_identifier(schema: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        PostgresCredentialStore("postgresql://127.0.0.1/test", schema=schema)
