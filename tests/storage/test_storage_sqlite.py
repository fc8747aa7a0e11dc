"""The SQLite adapters beyond the port contracts: files, schema migrations, persistence, faults.

The contracts (tests/contracts/test_sqlite_adapters.py) check what every adapter must do; this
file checks what only a file database can get wrong: where the file lives and who may read it,
that the schema is created once and upgraded in order (also by processes starting together),
that a newer schema is refused, and that a busy, unusable or crashed database never loses or
fakes an acknowledged write.
"""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from mcp_core.adapters.storage._sql import SCHEMA_TABLE
from mcp_core.adapters.storage.sqlite import (
    CREDENTIAL_STEPS,
    SchemaTooNew,
    SqliteCredentialStore,
    SqliteEventStore,
    SqliteSessionStore,
    default_data_path,
    migrate,
)
from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable, VersionConflict
from mcp_core.ports.sessions import SessionRecord

pytestmark = pytest.mark.anyio

PROCESS_TIMEOUT_S = 30.0


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


def schema_rows(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT component, version FROM {SCHEMA_TABLE}").fetchall()


def table_sql(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


# ---- where the file lives ---------------------------------------------------------------------


def test_default_data_path_is_under_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_data_path() == tmp_path / "mcp-core" / "vault.sqlite3"
    assert default_data_path("sessions.sqlite3") == tmp_path / "mcp-core" / "sessions.sqlite3"


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])
def test_default_data_path_falls_back_to_local_share(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdg: str | None
) -> None:
    # The XDG spec: an unset, empty or relative XDG_DATA_HOME means ~/.local/share.
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    assert default_data_path() == tmp_path / ".local" / "share" / "mcp-core" / "vault.sqlite3"


async def test_first_use_creates_an_owner_only_folder_and_file_in_wal_mode(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "mcp-core" / "vault.sqlite3"
    store = SqliteCredentialStore(path)
    assert not path.parent.exists()  # nothing happens before the first call
    await store.put(sealed("alice"), expected_version=None)
    await store.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_acknowledged_writes_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite3"
    first = SqliteCredentialStore(path)
    stored = await first.put(sealed("alice", bytes(range(256))), expected_version=None)
    await first.close()
    second = SqliteCredentialStore(path)
    assert await second.get("srv", "alice", "api") == stored
    await second.close()


async def test_sessions_and_events_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    session = SessionRecord(
        session_id="s1",
        protocol_version="2025-11-25",
        state="ready",
        created_at=10.0,
        last_active=10.0,
        client_capabilities={"roots": {"listChanged": True}},
        client_info={"name": "c", "version": "1"},
        subscriptions=frozenset({"file:///a", "file:///b"}),
    )
    sessions, events = SqliteSessionStore(path), SqliteEventStore(path)
    await sessions.create(session)
    first = await events.append("s1", "get", b"")
    second = await events.append("s1", "get", b'{"jsonrpc":"2.0"}')
    await sessions.close()
    await events.close()

    sessions, events = SqliteSessionStore(path), SqliteEventStore(path)
    assert await sessions.get("s1", 11.0) == session
    replay = await events.replay_after("s1", first)
    assert replay is not None
    assert [(e.event_id, e.payload) for e in replay.events] == [(second, b'{"jsonrpc":"2.0"}')]
    # the counter survived too: a new event does not reuse an id
    assert await events.append("s1", "get", b"3") not in {first, second}
    await sessions.close()
    await events.close()


async def test_two_stores_on_one_file_never_both_win_a_write(tmp_path: Path) -> None:
    # Two connections stand for two processes sharing the file.
    path = tmp_path / "vault.sqlite3"
    a, b = SqliteCredentialStore(path), SqliteCredentialStore(path)
    await a.put(sealed("alice", b"v1"), expected_version=None)
    outcomes: list[object] = []

    async def write(store: SqliteCredentialStore, n: int) -> None:
        try:
            outcomes.append(await store.put(sealed("alice", b"w%d" % n), expected_version=1))
        except VersionConflict as conflict:
            outcomes.append(conflict)

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(write, a if n % 2 else b, n)
    winners = [o for o in outcomes if isinstance(o, CredentialRecord)]
    losers = [o for o in outcomes if isinstance(o, VersionConflict)]
    assert len(winners) == 1
    assert len(losers) == 7
    assert all(loser.actual == 2 for loser in losers)
    assert await b.get("srv", "alice", "api") == winners[0]
    await a.close()
    await b.close()


# ---- migrations -------------------------------------------------------------------------------

DEMO_V1 = (("CREATE TABLE demo (a TEXT NOT NULL)", "CREATE TABLE demo_log (step TEXT)"),)
DEMO_V2 = (
    *DEMO_V1,
    (
        "ALTER TABLE demo ADD COLUMN b INTEGER NOT NULL DEFAULT 7",
        "INSERT INTO demo_log VALUES ('2')",
    ),
)


def test_a_fresh_database_gets_every_table_and_its_version(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        assert migrate(conn, "credentials", CREDENTIAL_STEPS) == len(CREDENTIAL_STEPS)
    assert schema_rows(path) == [("credentials", len(CREDENTIAL_STEPS))]
    assert "mcp_core_credentials" in {name for name, _ in table_sql(path)}


def test_running_the_migrations_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, "demo", DEMO_V2)
        conn.execute("INSERT INTO demo (a) VALUES ('kept')")
        before = (schema_rows(path), table_sql(path))
        migrate(conn, "demo", DEMO_V2)
        migrate(conn, "demo", DEMO_V2)
        assert (schema_rows(path), table_sql(path)) == before
        assert conn.execute("SELECT a, b FROM demo").fetchall() == [("kept", 7)]
        assert conn.execute("SELECT step FROM demo_log").fetchall() == [("2",)]


def test_an_upgrade_applies_only_the_missing_steps_in_order(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        assert migrate(conn, "demo", DEMO_V1) == 1
        conn.execute("INSERT INTO demo (a) VALUES ('old row')")
        assert migrate(conn, "demo", DEMO_V2) == 2
        assert conn.execute("SELECT a, b FROM demo").fetchall() == [("old row", 7)]
    assert schema_rows(path) == [("demo", 2)]


def test_a_failing_step_rolls_back_the_whole_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    broken = (*DEMO_V1, ("INSERT INTO demo_log VALUES ('half')", "THIS IS NOT SQL"))
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, "demo", DEMO_V1)
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, "demo", broken)
        assert not conn.in_transaction
        assert conn.execute("SELECT count(*) FROM demo_log").fetchone() == (0,)
    assert schema_rows(path) == [("demo", 1)]


def test_components_migrate_independently_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, "demo", DEMO_V1)
        migrate(conn, "credentials", CREDENTIAL_STEPS)
        migrate(conn, "demo", DEMO_V2)
    assert sorted(schema_rows(path)) == [("credentials", len(CREDENTIAL_STEPS)), ("demo", 2)]


async def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite3"
    store = SqliteCredentialStore(path)
    await store.put(sealed("alice"), expected_version=None)
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE {SCHEMA_TABLE} SET version = 99 WHERE component = 'credentials'")
    newer = SqliteCredentialStore(path)
    with pytest.raises(SchemaTooNew, match=r"version 99.*only up to version 1") as caught:
        await newer.get("srv", "alice", "api")
    assert isinstance(caught.value, StoreUnavailable)
    assert (caught.value.found, caught.value.known) == (99, len(CREDENTIAL_STEPS))
    # refused, not "repaired": the data and the version are as they were
    assert schema_rows(path) == [("credentials", 99)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT subject FROM mcp_core_credentials").fetchall() == [("alice",)]
    await newer.close()


_MIGRATOR = textwrap.dedent(
    """
    import os, sys, time
    import anyio
    from mcp_core.adapters.storage.sqlite import SqliteCredentialStore
    from mcp_core.ports.credentials import CredentialRecord

    path, go, name = sys.argv[1:4]
    print("ready", flush=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.001)

    async def main():
        store = SqliteCredentialStore(path, busy_timeout=15)
        record = CredentialRecord(server="srv", subject=name, kind="api", version=0,
                                  key_id="k1", ciphertext=name.encode(), updated_at=0.0)
        await store.put(record, expected_version=None)
        await store.close()

    anyio.run(main)
    print("done", flush=True)
    """
)


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    path, go = tmp_path / "shared" / "vault.sqlite3", tmp_path / "go"
    names = [f"proc-{n}" for n in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATOR, str(path), str(go), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        for proc in procs:  # all imported and waiting, then released at once
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        results = [proc.communicate(timeout=PROCESS_TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    # Step 1 is a plain CREATE TABLE: had two processes applied it, one would have failed.
    assert schema_rows(path) == [("credentials", len(CREDENTIAL_STEPS))]
    with sqlite3.connect(path) as conn:
        subjects = conn.execute("SELECT subject FROM mcp_core_credentials ORDER BY 1").fetchall()
    assert subjects == [(name,) for name in names]


# ---- faults -----------------------------------------------------------------------------------


async def test_a_locked_database_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite3"
    store = SqliteCredentialStore(path, busy_timeout=0.2)
    await store.put(sealed("alice", b"v1"), expected_version=None)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await store.put(sealed("alice", b"v2"), expected_version=1)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert time.monotonic() - started < 5
        # readers are not blocked by a writer in WAL mode
        got = await store.get("srv", "alice", "api")
        assert got is not None
        assert got.ciphertext == b"v1"
    finally:
        other.execute("ROLLBACK")
        other.close()
    # the failed write changed nothing, and the same store works again
    stored = await store.put(sealed("alice", b"v2"), expected_version=1)
    assert stored.version == 2
    assert await store.get("srv", "alice", "api") == stored
    await store.close()


async def test_an_unusable_path_is_unavailable_not_an_os_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = SqliteCredentialStore(blocker / "vault.sqlite3")
    with pytest.raises(StoreUnavailable) as caught:
        await store.get("srv", "alice", "api")
    assert isinstance(caught.value.__cause__, OSError)


async def test_a_corrupt_file_is_unavailable_not_a_driver_error(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = SqliteCredentialStore(path)
    with pytest.raises(StoreUnavailable) as caught:
        await store.put(sealed("alice"), expected_version=None)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


_WRITER = textwrap.dedent(
    """
    import itertools, sys
    import anyio
    from mcp_core.adapters.storage.sqlite import SqliteCredentialStore
    from mcp_core.ports.credentials import CredentialRecord

    async def main():
        store = SqliteCredentialStore(sys.argv[1])
        for n in itertools.count():
            record = CredentialRecord(server="srv", subject=f"user-{n}", kind="api", version=0,
                                      key_id="k1", ciphertext=b"blob-%d" % n, updated_at=0.0)
            await store.put(record, expected_version=None)
            print(n, flush=True)  # acknowledged

    anyio.run(main)
    """
)


async def _stored_blobs(path: Path) -> dict[str, bytes]:
    store = SqliteCredentialStore(path)
    try:
        return {r.subject: r.ciphertext for r in await store.list_server("srv")}
    finally:
        await store.close()


def test_a_killed_writer_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while len(acked) < 100 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        assert len(acked) >= 100, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)  # mid-write, no chance to close anything
        out, _ = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        acked.extend(int(line) for line in out.split())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stored = anyio.run(_stored_blobs, path)
    for n in acked:
        assert stored.get(f"user-{n}") == b"blob-%d" % n
