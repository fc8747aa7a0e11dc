"""PostgreSQL restarts in the middle of a run of writes: nothing acknowledged is lost.

A writer keeps creating credential records (and compare-and-setting a counter) through one
`PostgresCredentialStore` while the server on this machine is restarted with
`pg_ctlcluster --skip-systemctl-redirect <version> main restart`, once gracefully (`-m fast`) and
once as after a crash (`-m immediate`, recovery from the WAL). The test shows:

- every write that returned is there afterwards, byte for byte, read on a fresh connection;
- every failure during the outage was `StoreUnavailable` chaining the driver's error (any other
  exception fails the test);
- the same store object works again afterwards, with no reconnect call;
- the counter never went back: its final version is at least the last one acknowledged.

Other tests using this PostgreSQL at that moment see the outage, so these are marked `fault`
(and `slow`): deselect them with `-m "not fault"`. Everything is bounded in time, and the
server is started again at the end whatever happened. Without `pg_ctlcluster` or a local
server they skip (fail under `CI=true`).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest
from contracts.conftest import unavailable

from mcp_core.adapters.storage.postgres import PostgresCredentialStore
from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable, VersionConflict

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CLUSTER = "main"
RESTART_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 20.0
BEFORE, AFTER = 20, 30  # acknowledged creates before the restart, and after it
# What a backend going away looks like through asyncpg: server errors, client errors (among
# them InternalClientError, "another operation is in progress", on a connection the server
# closed under it), the network, and the store's time limit.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def _ready(dsn: str) -> bool:
    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=2)
        await conn.close(timeout=2)

    try:
        anyio.run(probe, backend="asyncio")
    except Exception:
        return False
    return True


@pytest.fixture
def restart_postgres(postgres_dsn: str) -> Iterator[Callable[[str], list[str]]]:
    """`command(mode)`: the pg_ctlcluster command that restarts the local server. Afterwards
    the server is started again if it is down, and waited for (bounded)."""
    host = urlsplit(postgres_dsn).hostname or ""
    if host not in {"127.0.0.1", "localhost", "::1"}:
        unavailable(f"PostgreSQL at {host} is not this machine's: it cannot be restarted")
    versions = sorted(
        p.parent.name for p in Path("/etc/postgresql").glob(f"*/{CLUSTER}") if p.is_dir()
    )
    if shutil.which("pg_ctlcluster") is None or not versions:
        unavailable("pg_ctlcluster or a PostgreSQL cluster under /etc/postgresql is missing")
    command = ["pg_ctlcluster", "--skip-systemctl-redirect"]
    cluster = [versions[-1], CLUSTER]

    yield lambda mode: [*command, f"--mode={mode}", *cluster, "restart"]

    deadline = time.monotonic() + READY_TIMEOUT_S
    if not _ready(postgres_dsn):
        subprocess.run([*command, *cluster, "start"], capture_output=True, timeout=READY_TIMEOUT_S)
    while not _ready(postgres_dsn):
        assert time.monotonic() < deadline, "PostgreSQL did not come back after the test"
        time.sleep(0.2)


def sealed(subject: str, blob: bytes) -> CredentialRecord:
    return CredentialRecord(
        server="srv",
        subject=subject,
        kind="api",
        version=0,
        key_id="k1",
        ciphertext=blob,
        updated_at=time.time(),
    )


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_acknowledged_writes_survive_a_postgres_restart(
    postgres_dsn: str,
    postgres_schemas: Callable[[], str],
    restart_postgres: Callable[[str], list[str]],
    mode: str,
) -> None:
    schema = postgres_schemas()
    store = PostgresCredentialStore(postgres_dsn, schema=schema, timeout=2.0, connect_timeout=1.0)
    acked: dict[str, bytes] = {}
    counter_acked: list[int] = []
    failures: list[StoreUnavailable] = []
    enough_before, restarted = anyio.Event(), anyio.Event()
    after = 0

    async def writer() -> None:
        nonlocal after
        counter: int | None = None
        n = 0
        while after < AFTER:
            n += 1
            subject, blob = f"user-{n}", b"blob-%d" % n
            try:
                await store.put(sealed(subject, blob), expected_version=None)
            except StoreUnavailable as failure:
                failures.append(failure)
                await anyio.sleep(0.02)
                continue
            acked[subject] = blob
            if restarted.is_set():
                after += 1
            elif len(acked) >= BEFORE:
                enough_before.set()
            try:
                next_version = (counter or 0) + 1
                stored = await store.put(
                    sealed("counter", b"%d" % next_version), expected_version=counter
                )
                counter = stored.version
                counter_acked.append(counter)
            except VersionConflict as conflict:
                # A write that failed in the outage had committed after all: catch up.
                counter = conflict.actual
            except StoreUnavailable as failure:
                failures.append(failure)

    async def restarter() -> None:
        await enough_before.wait()
        with anyio.fail_after(RESTART_TIMEOUT_S):
            done = await anyio.run_process(restart_postgres(mode), check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        restarted.set()

    try:
        with anyio.fail_after(RUN_TIMEOUT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                tg.start_soon(restarter)
    finally:
        await store.close()

    # The outage was hit, and every failure in it was a store error chaining the driver's.
    causes = sorted({type(failure.__cause__).__name__ for failure in failures})
    print(f"{mode}: {len(acked)} creates acknowledged, {len(failures)} failures: {causes}")
    assert failures, "no write failed: the restart was not observed"
    assert all(isinstance(failure.__cause__, DRIVER_ERRORS) for failure in failures), causes
    assert after == AFTER

    # Everything acknowledged is there, exactly, as a fresh connection reads it.
    conn = await asyncpg.connect(postgres_dsn, timeout=5)
    try:
        rows = await conn.fetch(
            f'SELECT subject, version, ciphertext FROM "{schema}".mcp_core_credentials'
        )
    finally:
        await conn.close(timeout=5)
    stored = {row["subject"]: (row["version"], bytes(row["ciphertext"])) for row in rows}
    for subject, blob in acked.items():
        assert stored.get(subject) == (1, blob), subject
    final, blob = stored["counter"]
    assert final >= counter_acked[-1]
    assert blob == b"%d" % final
