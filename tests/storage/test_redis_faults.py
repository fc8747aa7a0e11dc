"""Faults of the Redis adapters: a backend that is down, hangs, or restarts during writes.

Whether a restart loses acknowledged writes is a property of the Redis configuration, not of the
adapter (Redis acknowledges a write once it is in memory), so the restart is shown twice:

1. The shared Redis on this machine runs with `--save "" --appendonly no`: nothing reaches the
   disk, and a restart loses every key, acknowledged or not, by configuration. Against it the
   test shows what does not depend on persistence:

   - during the outage every operation raises `StoreUnavailable` (chaining redis-py's error),
     never a silent success;
   - the same store object works again once Redis is back, with no reconnect call (the client
     replaces the connections the server closed);
   - compare-and-set still holds across the restart: a writer holding a version from before the
     outage is refused (`VersionConflict`, actual None) instead of recreating the record at its
     stale version + 1;
   - every write acknowledged after the restart is there, exactly, when a fresh client reads;
     the record acknowledged before it is gone (the configuration's loss, asserted as such).

2. A private redis-server started by the test on a free port of 127.0.0.1, with
   `--appendonly yes --appendfsync always --save ""` (the configuration to run for credentials;
   `everysec` may lose about a second, RDB snapshots what came after the last one). One task runs
   compare-and-set writes through a `RedisCredentialStore` (each record created, then updated
   twice) and some `RedisSessionStore` creates, retrying a failed write unchanged; another stops
   the server mid-run, by SIGTERM (Redis's own shutdown) and by SIGKILL (a crash), and starts it
   again on the same port and data folder. The test shows the issue's claim, nothing
   acknowledged is lost:

   - every failure is `StoreUnavailable` chaining redis-py's error; none is acknowledged while
     no server runs;
   - the same store objects reconnect by themselves and keep writing;
   - a fresh client reads every record exactly (bytes, version, key id, time) as its last
     acknowledged write left it, or as a failed write that is found applied on the retry (the
     port's "may or may not have been applied"), and every session created; a version going
     back is reported as a lost acknowledged write.

   It kills its server at the end whatever happened and never touches the shared Redis. It
   checks the death of the process, not of the machine: `appendfsync always` fsyncs the AOF
   before replying, which covers a power loss, but that is not simulated here.

The shared-Redis restart stops and starts the Redis on this machine (`redis-cli shutdown nosave`,
then `redis-server --daemonize yes ... --save "" --appendonly no`), bounded in time and always
restarting it at the end. Other tests that use Redis at that moment see a short outage, so it is
marked `fault` (tests/storage/conftest.py), as is the private-server test with it: deselect them
with `-m "not fault"`. Without Redis, or without `redis-cli`/`redis-server` for a local URL (or
`redis-server` for the private one), they skip (fail under `CI=true`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import attrs
import pytest
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from mcp_core.adapters.storage.redis import (
    RedisCredentialStore,
    RedisEventStore,
    RedisSessionStore,
)
from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable, VersionConflict
from mcp_core.ports.sessions import SessionRecord

REDIS_URL = os.environ.get("MCP_CORE_REDIS_URL", "redis://127.0.0.1:6379/0")
START_TIMEOUT_S = 5.0
KEYS = [("srv", f"user-{n}", "api") for n in range(4)]


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    print(f"skipping: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _sealed(key: tuple[str, str, str], blob: bytes) -> CredentialRecord:
    server, subject, kind = key
    return CredentialRecord(
        server=server,
        subject=subject,
        kind=kind,
        version=0,
        key_id="k1",
        ciphertext=blob,
        updated_at=time.time(),
    )


def _session() -> SessionRecord:
    return SessionRecord(
        session_id="s", protocol_version="2025-11-25", state="ready", created_at=0, last_active=0
    )


async def _every_operation_is_unavailable(url: str, *, socket_timeout: float) -> None:
    credentials = RedisCredentialStore(url, prefix="p", socket_timeout=socket_timeout)
    sessions = RedisSessionStore(url, prefix="p", socket_timeout=socket_timeout)
    events = RedisEventStore(url, prefix="p", socket_timeout=socket_timeout)
    calls = [
        lambda: credentials.get("srv", "alice", "api"),
        lambda: credentials.put(_sealed(KEYS[0], b"x"), expected_version=None),
        lambda: credentials.delete("srv", "alice", "api", expected_version=1),
        lambda: credentials.list_subject("srv", "alice"),
        lambda: credentials.list_server("srv"),
        lambda: sessions.create(_session()),
        lambda: sessions.get("s", 0.0),
        lambda: sessions.touch("s", 1.0),
        lambda: sessions.put(_session()),
        lambda: sessions.delete("s"),
        lambda: sessions.sweep(1.0),
        lambda: events.append("s", "a", b"x"),
        lambda: events.replay_after("s", "a:1"),
        lambda: events.forget_session("s"),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            # chained, so the driver's reason is in the traceback
            assert isinstance(
                caught.value.__cause__,
                redis.exceptions.ConnectionError | redis.exceptions.TimeoutError,
            )
    finally:
        for store in (credentials, sessions, events):
            await store.aclose()


@pytest.mark.anyio
async def test_unreachable_redis_raises_store_unavailable() -> None:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the port is closed again: connections are refused
    await _every_operation_is_unavailable(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)


@pytest.mark.anyio
async def test_redis_that_never_answers_times_out_as_store_unavailable() -> None:
    # A listener that never accepts: the kernel completes the handshake, nobody replies.
    with closing(socket.socket()) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        started = time.monotonic()
        await _every_operation_is_unavailable(f"redis://127.0.0.1:{port}/0", socket_timeout=0.1)
        assert time.monotonic() - started < 10


# ---- the restart -----------------------------------------------------------------------------


@attrs.frozen
class LocalRedis:
    """Stop and start the Redis on this machine, each step bounded in time."""

    host: str
    port: int
    data_dir: str

    def answers(self) -> bool:
        try:
            with redis.Redis(
                host=self.host, port=self.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
            ) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def _wait(self, *, up: bool) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.answers() is not up:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis still {'down' if up else 'up'} after {START_TIMEOUT_S}s")
            time.sleep(0.02)

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-h", self.host, "-p", str(self.port), "shutdown", "nosave"],
            capture_output=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        self._wait(up=False)

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.data_dir,
            capture_output=True,
            timeout=START_TIMEOUT_S,
            check=True,
        )
        self._wait(up=True)


@pytest.fixture
def local_redis() -> Iterator[LocalRedis]:
    """The Redis of REDIS_URL, when it is on this machine and may be restarted; restarted at the
    end whatever happened."""
    parts = urlsplit(REDIS_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in ("127.0.0.1", "localhost"):
        _missing(f"Redis at {REDIS_URL} is not on this machine: it cannot be restarted")
    if not (shutil.which("redis-cli") and shutil.which("redis-server")):
        _missing("redis-cli and redis-server are needed to restart Redis")
    try:
        with redis.Redis(host=host, port=port, socket_timeout=2, retry=Retry(NoBackoff(), 0)) as r:
            found = r.config_get("dir").get("dir")
    except redis.RedisError as exc:
        _missing(f"Redis at {REDIS_URL} is unreachable ({exc})")
    data_dir = found if isinstance(found, str) and os.path.isdir(found) else os.getcwd()
    server = LocalRedis(host=host, port=port, data_dir=data_dir)
    try:
        yield server
    finally:
        if not server.answers():
            server.start()


@attrs.define
class Writer:
    """Compare-and-set writes in a loop, as a careful client does them: on a conflict it re-reads
    the version; on `StoreUnavailable` it waits a little and tries again."""

    store: RedisCredentialStore
    known: dict[tuple[str, str, str], int | None]
    acked: dict[tuple[str, str, str], tuple[int, bytes, float]] = attrs.Factory(dict)
    # (started, finished) of every acknowledged write
    successes: list[tuple[float, float]] = attrs.Factory(list)
    failures: list[tuple[float, StoreUnavailable]] = attrs.Factory(list)
    # (key, the version the writer believed, the version found) of refused writes
    conflicts: list[tuple[tuple[str, str, str], int | None, int | None, float]] = attrs.Factory(
        list
    )
    count: int = 0
    # set (and replaced) after each acknowledged write
    wrote: anyio.Event = attrs.Factory(anyio.Event)

    async def run(self, stop: anyio.Event) -> None:
        while not stop.is_set():
            key = KEYS[self.count % len(KEYS)]
            self.count += 1
            blob = f"write-{self.count}".encode()
            started = time.monotonic()
            try:
                stored = await self.store.put(_sealed(key, blob), expected_version=self.known[key])
            except VersionConflict as conflict:
                self.conflicts.append((key, conflict.expected, conflict.actual, started))
                await self._reread(key)
            except StoreUnavailable as exc:
                self.failures.append((started, exc))
                await anyio.sleep(0.02)
            else:
                finished = time.monotonic()
                self.known[key] = stored.version
                self.acked[key] = (stored.version, blob, finished)
                self.successes.append((started, finished))
                self.wrote.set()
                self.wrote = anyio.Event()
            await anyio.sleep(0.002)

    async def _reread(self, key: tuple[str, str, str]) -> None:
        try:
            current = await self.store.get(*key)
        except StoreUnavailable as exc:
            self.failures.append((time.monotonic(), exc))
            return
        self.known[key] = current.version if current is not None else None


@pytest.mark.fault
@pytest.mark.anyio
async def test_redis_restart_during_writes_fails_loudly_and_recovers(
    local_redis: LocalRedis,
) -> None:
    prefix = f"mcp-core-test:{uuid.uuid4().hex}"
    store = RedisCredentialStore(REDIS_URL, prefix=prefix, socket_timeout=1.0)
    try:
        untouched = ("srv", "bystander", "api")
        await store.put(_sealed(untouched, b"before"), expected_version=None)
        for key in KEYS:
            await store.put(_sealed(key, b"seed"), expected_version=None)
        writer = Writer(store=store, known=dict.fromkeys(KEYS, 1))
        stop = anyio.Event()

        def rewritten(key: tuple[str, str, str]) -> bool:
            return key in writer.acked and writer.acked[key][2] > up

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run, stop)
            await anyio.sleep(0.3)
            before_outage = len(writer.successes)
            stopping = time.monotonic()
            await anyio.to_thread.run_sync(local_redis.stop)
            down = time.monotonic()
            await anyio.sleep(0.5)
            up_called = time.monotonic()
            await anyio.to_thread.run_sync(local_redis.start)
            up = time.monotonic()
            # let the writer run until it has written every key again, bounded
            with anyio.move_on_after(5.0):
                while not all(rewritten(key) for key in KEYS) or (
                    sum(1 for _, finished in writer.successes if finished > up) < 20
                ):
                    await writer.wrote.wait()
            stop.set()
        await store.aclose()

        assert before_outage > 0, "no write went through before the outage"
        # 1. the outage was reported: every failure is StoreUnavailable chaining redis-py's error
        assert [started for started, _ in writer.failures if stopping <= started <= up], (
            "no write failed while Redis was down"
        )
        assert all(
            isinstance(
                exc.__cause__, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
            )
            for _, exc in writer.failures
        )
        # 2. never a silent success: no write was acknowledged while nothing was listening
        assert not [s for s in writer.successes if s[0] > down and s[1] < up_called]
        # 3. the same store reconnected by itself and wrote every key again
        assert sum(1 for _, finished in writer.successes if finished > up) >= 20
        assert all(rewritten(key) for key in KEYS)
        # 4. compare-and-set held: each key's first write after the restart carried a version
        # from before it and was refused (the record was gone), not applied at that version + 1
        for key in KEYS:
            refused = [c for c in writer.conflicts if c[0] == key and c[3] > stopping]
            assert refused, f"{key}: a stale version was not refused after the restart"
            _, expected, actual, _ = refused[0]
            assert expected is not None
            assert actual is None
        async with RedisCredentialStore(REDIS_URL, prefix=prefix) as fresh:
            # the layout marker was put back by the store that saw the failure (read before
            # `fresh` is used: its first call would create the marker itself)
            assert await fresh.client.get(f"{prefix}:schema") == b"1"
            # 5. what was acknowledged after the restart is exactly what a fresh client reads
            for key in KEYS:
                version, blob, _ = writer.acked[key]
                got = await fresh.get(*key)
                assert got is not None
                assert (got.version, got.ciphertext) == (version, blob)
            # durability with --save "": the record acknowledged before the restart is gone
            assert await fresh.get(*untouched) is None
    finally:
        await store.aclose()
        if not local_redis.answers():
            local_redis.start()
        _delete_prefix(prefix)


def _delete_prefix(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL, socket_timeout=2) as r:
        keys = list(r.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            r.delete(*keys)


# ---- a durable private Redis restarted mid-run -------------------------------------------------

DURABLE_RUN_TIMEOUT_S = 10.0
DURABLE_READ_TIMEOUT_S = 3.0
DOWN_FOR_S = 0.3
CHAIN = 3  # compare-and-set writes per credential record: created at 1, updated to 2, then 3
SESSION_EVERY = 4  # a session is created after every 4th credential record
BEFORE, AFTER = 40, 40  # acknowledged credential writes before the restart, and after it
Key = tuple[str, str, str]


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class PrivateRedis:
    """A redis-server this test owns: 127.0.0.1, a port of its own, AOF fsynced before every
    reply (`--appendonly yes --appendfsync always`), no RDB snapshots (`--save ""`)."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        # PING during the AOF load answers LOADING (a RedisError): not up yet.
        try:
            with redis.Redis(
                host="127.0.0.1", port=self.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
            ) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        log_path = self.data_dir / f"redis-server-{self.starts}.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--daemonize",
                    "no",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.data_dir),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                ],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}: "
                    + log_path.read_text(errors="replace")[-2000:]
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"private Redis not up after {START_TIMEOUT_S}s")
            time.sleep(0.01)

    def stop(self, how: signal.Signals) -> None:
        """SIGTERM: Redis's own shutdown. SIGKILL: a crash, only what reached the AOF counts."""
        assert self.process is not None
        self.process.send_signal(how)
        self.process.wait(timeout=START_TIMEOUT_S)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_TIMEOUT_S)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A durable redis-server of this test's own, killed at the end whatever happened."""
    if shutil.which("redis-server") is None:
        _missing("redis-server is needed to run a private Redis")
    started: list[PrivateRedis] = []
    try:
        for attempt in range(3):  # another process may take the free port before Redis binds it
            server = PrivateRedis(data_dir=tmp_path, port=_free_port())
            started.append(server)
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        yield started[-1]
    finally:
        for server in started:
            server.kill()


@attrs.frozen
class Ack:
    record: CredentialRecord  # as acknowledged, with its version
    started: float
    finished: float


@attrs.define
class ChainWriter:
    """One task's run of writes: each credential record goes through CHAIN compare-and-set
    writes, then the next record; a session is created now and then. A write that raised
    `StoreUnavailable` is retried as it was (same bytes, same expected version) until it is
    acknowledged, or until a conflict shows that a failed attempt had been applied after all
    (then the record must hold exactly those bytes). Any other outcome fails the run."""

    credentials: RedisCredentialStore
    sessions: RedisSessionStore
    acks: list[Ack] = attrs.Factory(list)
    # what each record must hold at the end: its last write known to be applied
    final: dict[Key, CredentialRecord] = attrs.Factory(dict)
    sessions_created: dict[str, SessionRecord] = attrs.Factory(dict)
    failures: list[tuple[float, StoreUnavailable]] = attrs.Factory(list)
    in_doubt_applied: int = 0  # failed writes found applied on the retry
    up: float | None = None  # set by the restarter once the server answers again
    after: int = 0  # credential writes acknowledged after `up`
    enough_before: anyio.Event = attrs.Factory(anyio.Event)

    async def run(self) -> None:
        n = 0
        while self.after < AFTER:
            n += 1
            key: Key = ("srv", f"user-{n}", "api")
            expected: int | None = None
            for step in range(1, CHAIN + 1):
                # arbitrary bytes, unique to this write
                blob = os.urandom(16) + f"|record {n} write {step}".encode()
                expected = await self._put(_sealed(key, blob), expected)
            if n % SESSION_EVERY == 0:
                await self._create_session(n)
            if len(self.acks) >= BEFORE:
                self.enough_before.set()

    async def _retry_pause(self, started: float, exc: StoreUnavailable) -> None:
        self.failures.append((started, exc))
        await anyio.sleep(0.01)

    async def _put(self, record: CredentialRecord, expected: int | None) -> int:
        key: Key = (record.server, record.subject, record.kind)
        failed = False
        while True:
            started = time.monotonic()
            try:
                stored = await self.credentials.put(record, expected_version=expected)
            except StoreUnavailable as exc:
                failed = True
                await self._retry_pause(started, exc)
                continue
            except VersionConflict as conflict:
                # One writer only: a conflict can only come from a failed attempt of this very
                # write that was applied. Anything else is a lost acknowledged write.
                applied = (expected or 0) + 1
                if not (failed and conflict.actual == applied):
                    raise AssertionError(
                        f"{key}: expected version {expected}, found {conflict.actual}"
                        f" ({'after' if failed else 'with no'} failed attempt):"
                        " an acknowledged write was lost"
                    ) from conflict
                current = await self._get(key)
                assert current == attrs.evolve(record, version=applied), key
                self.in_doubt_applied += 1
                self.final[key] = current
                return applied
            finished = time.monotonic()
            assert stored == attrs.evolve(record, version=(expected or 0) + 1)
            self.acks.append(Ack(record=stored, started=started, finished=finished))
            self.final[key] = stored
            if self.up is not None and started > self.up:
                self.after += 1
            return stored.version

    async def _get(self, key: Key) -> CredentialRecord | None:
        while True:
            started = time.monotonic()
            try:
                return await self.credentials.get(*key)
            except StoreUnavailable as exc:
                await self._retry_pause(started, exc)

    async def _create_session(self, n: int) -> None:
        now = time.time()
        record = SessionRecord(
            session_id=f"session-{n}",
            protocol_version="2025-11-25",
            state="ready",
            created_at=now,
            last_active=now,
            client_capabilities={"roots": {"listChanged": True}},
            client_info={"name": "fault-test", "version": "1"},
            subject=f"user-{n}",
            subscriptions=frozenset({f"file:///{n}"}),
        )
        failed = False
        while True:
            started = time.monotonic()
            try:
                await self.sessions.create(record)
            except StoreUnavailable as exc:
                failed = True
                await self._retry_pause(started, exc)
                continue
            except ValueError as taken:
                # as for credentials: only a failed attempt of this create can have taken the id
                if not failed:
                    raise AssertionError(f"{record.session_id}: {taken}") from taken
                while True:
                    try:
                        found = await self.sessions.get(record.session_id, time.time())
                        break
                    except StoreUnavailable as exc:
                        await self._retry_pause(time.monotonic(), exc)
                assert found == record, record.session_id
                self.in_doubt_applied += 1
            self.sessions_created[record.session_id] = record
            return


@pytest.mark.fault
@pytest.mark.anyio
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_durable_redis_restart_loses_nothing_acknowledged(
    private_redis: PrivateRedis, how: signal.Signals
) -> None:
    url, prefix = private_redis.url, "mcp-core-test"
    credentials = RedisCredentialStore(url, prefix=prefix, socket_timeout=1.0)
    sessions = RedisSessionStore(url, prefix=prefix, idle_timeout=3600.0, socket_timeout=1.0)
    writer = ChainWriter(credentials=credentials, sessions=sessions)
    stopping = down = starting = 0.0
    began = time.monotonic()

    async def restarter() -> None:
        nonlocal stopping, down, starting
        await writer.enough_before.wait()
        stopping = time.monotonic()
        await anyio.to_thread.run_sync(private_redis.stop, how)
        down = time.monotonic()
        await anyio.sleep(DOWN_FOR_S)
        starting = time.monotonic()
        await anyio.to_thread.run_sync(private_redis.start)
        writer.up = time.monotonic()

    try:
        with anyio.fail_after(DURABLE_RUN_TIMEOUT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.run)
                tg.start_soon(restarter)
    finally:
        await credentials.aclose()
        await sessions.aclose()
    run_s = time.monotonic() - began

    causes = sorted({type(exc.__cause__).__name__ for _, exc in writer.failures})
    acked_before = sum(1 for ack in writer.acks if ack.finished < stopping)
    records_done_before = sum(
        1
        for record in writer.final.values()
        if any(a.record == record and a.finished < stopping for a in writer.acks)
    )
    print(
        f"{how.name}: {len(writer.acks)} credential writes acknowledged ({acked_before} before"
        f" the restart, {writer.after} after it), {len(writer.final)} records"
        f" ({records_done_before} finished before the restart),"
        f" {len(writer.sessions_created)} sessions, {len(writer.failures)} failures {causes},"
        f" {writer.in_doubt_applied} failed writes found applied, down"
        f" {writer.up - stopping if writer.up else 0:.2f}s, run {run_s:.2f}s"
    )

    # 1. the outage was seen, and only as StoreUnavailable chaining redis-py's error
    assert acked_before >= BEFORE
    assert [started for started, _ in writer.failures if stopping <= started], (
        "no write failed: the restart was not observed"
    )
    assert all(
        isinstance(
            exc.__cause__,
            redis.exceptions.ConnectionError
            | redis.exceptions.TimeoutError
            | redis.exceptions.BusyLoadingError,
        )
        for _, exc in writer.failures
    ), causes
    # 2. never a silent success: nothing acknowledged while no server was running
    assert not [a for a in writer.acks if a.started > down and a.finished < starting]
    # 3. the same store objects reconnected by themselves and went on writing
    assert writer.up is not None
    assert writer.after >= AFTER

    # 4. nothing acknowledged was lost: a fresh client reads every record exactly as its last
    # acknowledged (or failed-but-applied) write left it, and every acknowledged write is
    # there at its version unless this run overwrote it later by compare-and-set
    with anyio.fail_after(DURABLE_READ_TIMEOUT_S):
        async with (
            RedisCredentialStore(url, prefix=prefix) as fresh,
            RedisSessionStore(url, prefix=prefix, idle_timeout=3600.0) as fresh_sessions,
        ):
            config = await fresh.client.config_get("append*")
            assert config["appendonly"] == "yes"
            assert config["appendfsync"] == "always"
            stored = {(r.server, r.subject, r.kind): r for r in await fresh.list_server("srv")}
            assert stored == writer.final
            for ack in writer.acks:
                key = (ack.record.server, ack.record.subject, ack.record.kind)
                now = stored[key]
                assert now == ack.record or now.version > ack.record.version, key
            for session_id, record in writer.sessions_created.items():
                assert await fresh_sessions.get(session_id, time.time()) == record, session_id
    assert any((private_redis.data_dir / "appendonlydir").iterdir())
