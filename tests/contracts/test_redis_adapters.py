"""The Redis adapters pass the port contracts against the real Redis on this machine.

`MCP_CORE_REDIS_URL` names the server (default `redis://127.0.0.1:6379/0`). Other tests share
it, so every test writes under its own key prefix (`mcp-core-test:<random>:<n>`, a fresh `<n>`
per store the contract asks for) and deletes exactly those keys afterwards with SCAN + DEL;
nothing here flushes a database. When Redis is unreachable the tests are skipped with the
reason, except under `CI=true`, where that is a failure.

Besides the contracts: what is specific to Redis (the layout version marker, TTLs, the event
bound, compare-and-set under real concurrency).
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Iterator
from typing import TypeVar

import anyio
import pytest
import redis
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from mcp_core.adapters.storage.redis import (
    SCHEMA_VERSION,
    RedisCredentialStore,
    RedisEventStore,
    RedisSchemaError,
    RedisSessionStore,
)
from mcp_core.ports.contracts import (
    CredentialStoreContract,
    EventStoreContract,
    SessionStoreContract,
)
from mcp_core.ports.contracts._portal import Driver, driver
from mcp_core.ports.credentials import CredentialRecord, CredentialStore, VersionConflict
from mcp_core.ports.events import EventStore
from mcp_core.ports.sessions import SessionRecord, SessionStore

REDIS_URL = os.environ.get("MCP_CORE_REDIS_URL", "redis://127.0.0.1:6379/0")

Store = RedisCredentialStore | RedisSessionStore | RedisEventStore
S = TypeVar("S", RedisCredentialStore, RedisSessionStore, RedisEventStore)


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The server's URL once it answers PING; skip (fail under CI=true) when it does not."""
    try:
        no_retry = Retry(NoBackoff(), 0)
        with redis.Redis.from_url(REDIS_URL, socket_timeout=2, retry=no_retry) as r:
            r.ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS_URL} is unreachable ({exc})"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        print(f"skipping: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return REDIS_URL


def delete_prefix(url: str, prefix: str) -> int:
    """SCAN + DEL of every key under `prefix:` (the prefix is ours: no glob characters)."""
    deleted = 0
    with redis.Redis.from_url(url) as r:
        batch: list[bytes] = []
        for key in r.scan_iter(match=f"{prefix}:*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(r.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(r.delete(*batch))
    return deleted


class RedisFixtures:
    """A fresh prefix per store, every store closed and every key deleted after the test."""

    @pytest.fixture
    def run(self, redis_url: str) -> Iterator[Driver]:
        self.url = redis_url
        self.base = f"mcp-core-test:{uuid.uuid4().hex}"
        self.numbers = itertools.count()
        self.stores: list[Store] = []
        try:
            with driver() as d:
                try:
                    yield d
                finally:
                    for store in self.stores:
                        d(store.aclose)
        finally:
            delete_prefix(redis_url, self.base)

    def prefix(self) -> str:
        return f"{self.base}:{next(self.numbers)}"

    def keep(self, store: S) -> S:
        self.stores.append(store)
        return store


class TestRedisCredentialStore(RedisFixtures, CredentialStoreContract):
    def make_store(self) -> CredentialStore:
        return self.keep(RedisCredentialStore(self.url, prefix=self.prefix()))

    def test_schema_marker_is_created_once_and_kept(self, run: Driver) -> None:
        prefix = self.prefix()
        first = self.keep(RedisCredentialStore(self.url, prefix=prefix))
        run(first.get, "srv", "alice", "api")
        assert run(first.client.get, f"{prefix}:schema") == str(SCHEMA_VERSION).encode()
        # a second node on the same prefix reads it and changes nothing
        second = self.keep(RedisCredentialStore(self.url, prefix=prefix))
        run(second.put, _sealed("srv", "alice", "api"), expected_version=None)
        assert run(second.client.get, f"{prefix}:schema") == str(SCHEMA_VERSION).encode()
        assert run(first.get, "srv", "alice", "api") is not None

    def test_newer_layout_is_refused_with_a_clear_error(self, run: Driver) -> None:
        prefix = self.prefix()
        store = self.keep(RedisCredentialStore(self.url, prefix=prefix))
        run(store.client.set, f"{prefix}:schema", SCHEMA_VERSION + 1)
        with pytest.raises(RedisSchemaError, match="newer"):
            run(store.get, "srv", "alice", "api")
        with pytest.raises(RedisSchemaError):
            run(store.put, _sealed("srv", "alice", "api"), expected_version=None)
        # refused before writing anything
        assert run(store.client.exists, _record_key(prefix, "srv", "alice", "api")) == 0

    def test_garbage_layout_marker_is_refused(self, run: Driver) -> None:
        prefix = self.prefix()
        store = self.keep(RedisCredentialStore(self.url, prefix=prefix))
        run(store.client.set, f"{prefix}:schema", "banana")
        with pytest.raises(RedisSchemaError, match="not a layout version"):
            run(store.list_server, "srv")

    def test_record_is_a_hash_of_the_sealed_fields(self, run: Driver) -> None:
        prefix = self.prefix()
        store = self.keep(RedisCredentialStore(self.url, prefix=prefix))
        run(store.put, _sealed("srv", "alice", "api", b"\x00\xffsealed"), expected_version=None)
        fields = run(store.client.hgetall, _record_key(prefix, "srv", "alice", "api"))
        assert fields == {
            b"version": b"1",
            b"key_id": b"k1",
            b"ciphertext": b"\x00\xffsealed",
            b"updated_at": b"1.5",
        }

    def test_list_subject_does_not_match_a_longer_subject(self, run: Driver) -> None:
        store = self.keep(RedisCredentialStore(self.url, prefix=self.prefix()))
        for subject in ("al", "alice", "al:ice", "a"):
            run(store.put, _sealed("srv", subject, "api"), expected_version=None)
        assert [r.subject for r in run(store.list_subject, "srv", "al")] == ["al"]
        assert [r.subject for r in run(store.list_subject, "srv", "al:ice")] == ["al:ice"]
        assert run(store.list_subject, "srv", "nobody") == []
        assert run(store.list_server, "other") == []

    def test_concurrent_writers_on_one_version_exactly_one_wins(self, run: Driver) -> None:
        url, prefix = self.url, self.prefix()
        nodes = [self.keep(RedisCredentialStore(url, prefix=prefix)) for _ in range(8)]
        run(nodes[0].put, _sealed("srv", "alice", "api", b"v1"), expected_version=None)

        async def race() -> list[CredentialRecord | VersionConflict]:
            outcomes: list[CredentialRecord | VersionConflict] = []

            async def write(node: RedisCredentialStore, n: int) -> None:
                try:
                    record = _sealed("srv", "alice", "api", f"node{n}".encode())
                    outcomes.append(await node.put(record, expected_version=1))
                except VersionConflict as conflict:
                    outcomes.append(conflict)

            async with anyio.create_task_group() as tg:
                for n, node in enumerate(nodes):
                    tg.start_soon(write, node, n)
            return outcomes

        outcomes = run(race)
        won = [o for o in outcomes if isinstance(o, CredentialRecord)]
        assert len(won) == 1
        assert all(o.actual == 2 for o in outcomes if isinstance(o, VersionConflict))
        got = run(nodes[0].get, "srv", "alice", "api")
        assert got == won[0]

    def test_client_returning_text_is_refused(self, run: Driver) -> None:
        client = run.build(lambda: Redis.from_url(self.url, decode_responses=True))
        try:
            with pytest.raises(ValueError, match="bytes"):
                RedisCredentialStore(client, prefix=self.prefix())
        finally:
            run(client.aclose)

    def test_a_passed_client_is_left_open(self, run: Driver) -> None:
        client = run.build(lambda: Redis.from_url(self.url))
        try:
            store = RedisCredentialStore(client, prefix=self.prefix())
            run(store.put, _sealed("srv", "alice", "api"), expected_version=None)
            run(store.aclose)
            assert run(client.ping) is True
        finally:
            run(client.aclose)


class TestRedisSessionStore(RedisFixtures, SessionStoreContract):
    def make_store(self, *, idle_timeout: float, max_sessions: int) -> SessionStore:
        return self.keep(
            RedisSessionStore(
                self.url, prefix=self.prefix(), idle_timeout=idle_timeout, max_sessions=max_sessions
            )
        )

    def test_records_carry_a_ttl_that_touch_renews(self, run: Driver) -> None:
        prefix = self.prefix()
        store = self.keep(
            RedisSessionStore(self.url, prefix=prefix, idle_timeout=30.0, expiry_grace=5.0)
        )
        run(store.create, _session("a", 0.0))
        key = f"{prefix}:sess:rec:a"
        run(store.client.pexpire, key, 1_000)
        run(store.touch, "a", 1.0)
        assert 30_000 < run(store.client.pttl, key) <= 35_000
        assert 30_000 < run(store.client.pttl, f"{prefix}:sess:live") <= 35_000

    def test_sweep_clears_the_live_index(self, run: Driver) -> None:
        prefix = self.prefix()
        store = self.keep(RedisSessionStore(self.url, prefix=prefix, idle_timeout=10.0))
        for n in range(5):
            run(store.create, _session(f"s{n}", float(n)))
        # s3 is idle for exactly idle_timeout at 13.0: not yet expired
        assert sorted(run(store.sweep, 13.0)) == ["s0", "s1", "s2"]
        assert run(store.client.zrange, f"{prefix}:sess:live", 0, -1) == [b"s3", b"s4"]
        assert run(store.client.exists, f"{prefix}:sess:rec:s0") == 0
        assert run(store.get, "s3", 13.0) is not None

    def test_ids_with_separators_are_separate_sessions(self, run: Driver) -> None:
        store = self.keep(RedisSessionStore(self.url, prefix=self.prefix(), idle_timeout=10.0))
        run(store.create, _session("a:b", 0.0))
        run(store.create, _session("a", 0.0, subject="other"))
        got = run(store.get, "a:b", 0.0)
        assert got is not None
        assert got.subject == "user-1"


class TestRedisEventStore(RedisFixtures, EventStoreContract):
    def make_store(self) -> EventStore:
        return self.keep(
            RedisEventStore(self.url, prefix=self.prefix(), max_events_per_session=self.bound)
        )

    def test_the_bound_evicts_the_oldest_events(self, run: Driver) -> None:
        store = self.keep(RedisEventStore(self.url, prefix=self.prefix(), max_events_per_session=3))
        ids = [run(store.append, "s", "a", str(n).encode()) for n in range(5)]
        assert run(store.replay_after, "s", ids[1]) is None
        replay = run(store.replay_after, "s", ids[2])
        assert replay is not None
        assert [e.payload for e in replay.events] == [b"3", b"4"]

    def test_ids_are_stream_and_number_and_survive_odd_stream_names(self, run: Driver) -> None:
        store = self.keep(RedisEventStore(self.url, prefix=self.prefix()))
        first = run(store.append, "s", "x:1", b"p")
        second = run(store.append, "s", "x:1", b"q")
        assert (first, second) == ("x:1:1", "x:1:2")
        replay = run(store.replay_after, "s", first)
        assert replay is not None
        assert replay.stream_id == "x:1"
        assert [e.event_id for e in replay.events] == [second]
        # a forged id naming another stream for an existing number is unknown
        assert run(store.replay_after, "s", "x:2") is None
        assert run(store.replay_after, "s", "x:1:-1") is None

    def test_logs_expire_after_the_retention(self, run: Driver) -> None:
        prefix = self.prefix()
        store = self.keep(RedisEventStore(self.url, prefix=prefix, retention=60.0))
        run(store.append, "s", "a", b"x")
        assert 0 < run(store.client.pttl, f"{prefix}:ev:log:s") <= 60_000
        assert 0 < run(store.client.pttl, f"{prefix}:ev:seq:s") <= 60_000


def _sealed(server: str, subject: str, kind: str, blob: bytes = b"sealed") -> CredentialRecord:
    return CredentialRecord(
        server=server,
        subject=subject,
        kind=kind,
        version=0,
        key_id="k1",
        ciphertext=blob,
        updated_at=1.5,
    )


def _record_key(prefix: str, server: str, subject: str, kind: str) -> str:
    parts = "".join(f"{len(p)}:{p}" for p in (server, subject, kind))
    return f"{prefix}:cred:rec:{parts}"


def _session(session_id: str, now: float, **changes: str) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        protocol_version="2025-11-25",
        state="ready",
        created_at=now,
        last_active=now,
        subject=changes.get("subject", "user-1"),
    )
