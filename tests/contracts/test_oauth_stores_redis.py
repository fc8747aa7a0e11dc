"""The Redis OAuth stores pass the `ClientStore` and `GrantStore` contracts against the real
Redis on this machine.

The server, the skip-or-fail rule and the clean-up are those of `test_redis_adapters`: every
test writes under a key prefix of its own (a fresh one per store the contract asks for) and
deletes exactly those keys afterwards. `open_again` gives the grant races a second store with
a client (and connection pool) of its own on the same prefix, so racing redeems and rotations
meet only in Redis.

Besides the contracts: the documented key layout, the TTLs of codes and access revocations, a
TTL that fires before `purge` runs, and an unreachable server.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from functools import partial

import pytest

from mcp_core.adapters.storage.redis import RedisClientStore, RedisGrantStore
from mcp_core.ports.contracts._portal import Driver, driver
from mcp_core.ports.contracts.oauth_stores import (
    UNSTORABLE_TEXT,
    ClientStoreContract,
    GrantStoreContract,
    code,
)
from mcp_core.ports.credentials import StoreUnavailable
from mcp_core.ports.oauth_stores import (
    ClientStore,
    CodeOutcome,
    CodeStatus,
    GrantStore,
    RefreshStatus,
)

from .test_redis_adapters import delete_prefix, redis_url

__all__ = ["redis_url"]  # the module-scoped fixture, shared with test_redis_adapters

Store = RedisClientStore | RedisGrantStore


class _FreshPrefixes:
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

    def grants(self, prefix: str, retention: float = 86_400.0) -> RedisGrantStore:
        store = RedisGrantStore(self.url, prefix=prefix, retention=retention)
        self.stores.append(store)
        return store


class TestRedisClientStore(_FreshPrefixes, ClientStoreContract):
    def make_store(self) -> ClientStore:
        store = RedisClientStore(self.url, prefix=self.prefix())
        self.stores.append(store)
        return store


class TestRedisGrantStore(_FreshPrefixes, GrantStoreContract):
    def make_store(self) -> GrantStore:
        return self.grants(self.prefix())

    def open_again(self, store: GrantStore) -> GrantStore:
        assert isinstance(store, RedisGrantStore)
        return self.grants(store.prefix)  # a client of its own on the same keys

    def test_keys_follow_the_documented_layout(self, run: Driver) -> None:
        prefix = self.prefix()
        store = run.build(lambda: self.grants(prefix))
        run(store.save_code, code("h1", family_id="fam-1"))
        run(store.redeem_code, "h1", 1001.0)
        self._family(run, store, "fam-1", "t1")
        run(store.rotate_refresh, "t1", "t2", 1010.0)
        run(store.revoke_family, "fam-1", "admin")
        run(store.revoke_access, "jti-1", 2000.0)
        keys = run(store.client.keys, f"{prefix}:*")
        base = f"{prefix}:oauth"
        assert sorted(key.decode() for key in keys) == sorted(
            [
                f"{prefix}:schema",
                f"{base}:code:h1",
                f"{base}:codes",
                f"{base}:fam:fam-1",
                f"{base}:fam-tokens:fam-1",
                f"{base}:families",
                f"{base}:token:t1",
                f"{base}:token:t2",
                f"{base}:revoked",
                f"{base}:access:jti-1",
                f"{base}:access-index",
            ]
        )
        assert run(store.client.hget, f"{base}:code:h1", "used") == b"1"
        assert run(store.client.hgetall, f"{base}:revoked") == {b"fam-1": b"admin"}
        assert run(store.client.zscore, f"{base}:families", "fam-1") == 1010.0
        # Families and their tokens have no TTL: a revocation stays until `purge`.
        for key in ("fam:fam-1", "token:t1", "revoked", "families"):
            assert run(store.client.pttl, f"{base}:{key}") == -1

    def test_codes_and_access_revocations_carry_a_ttl_past_their_expiry(self, run: Driver) -> None:
        prefix = self.prefix()
        store = run.build(lambda: self.grants(prefix, retention=60.0))
        base = f"{prefix}:oauth"
        # An expiry long past (as in the contract): kept `retention` from now.
        run(store.revoke_access, "old", 2000.0)
        assert 55_000 < run(store.client.pttl, f"{base}:access:old") <= 60_000
        # A real expiry: kept until `retention` after it; a later revocation only extends it.
        soon = time.time() + 600.0
        run(store.revoke_access, "jti", soon)
        assert 655_000 < run(store.client.pttl, f"{base}:access:jti") <= 660_000
        run(store.revoke_access, "jti", soon - 300.0)
        assert 655_000 < run(store.client.pttl, f"{base}:access:jti") <= 660_000
        assert run(store.is_access_revoked, "jti", soon) is True
        run(store.save_code, code("h1", issued_at=time.time()))  # expires in 600 s
        assert 655_000 < run(store.client.pttl, f"{base}:code:h1") <= 660_000

    def test_entries_whose_ttl_fired_are_gone_and_not_counted_by_purge(self, run: Driver) -> None:
        prefix = self.prefix()
        store = run.build(lambda: self.grants(prefix, retention=0.05))
        run(store.save_code, code("h1", issued_at=1000.0))
        run(store.revoke_access, "jti-1", 1500.0)
        run(store.revoke_access, "jti-2", 1500.0)
        time.sleep(0.3)
        assert run(store.redeem_code, "h1", 1001.0) == CodeOutcome(status=CodeStatus.UNKNOWN)
        assert run(store.is_access_revoked, "jti-1", 1000.0) is False
        self._family(run, store, "fam-1", "t1")
        assert run(store.purge, 9999.0) == 1  # only the family: Redis removed the rest
        base = f"{prefix}:oauth"
        for index in ("codes", "access-index", "families"):
            assert run(store.client.zcard, f"{base}:{index}") == 0

    def test_purge_works_in_batches(self, run: Driver) -> None:
        store = run.build(self.make_store)
        for i in range(1_100):
            run(store.revoke_access, f"jti-{i}", 1500.0)
        assert run(store.purge, 1500.5) == 1_100
        assert run(store.is_access_revoked, "jti-7", 1000.0) is False

    def test_purge_bounds_its_work_by_token_keys_too(self, run: Driver) -> None:
        """A family with many old refresh tokens is purged over several scripts (Redis runs a
        script alone: one must not block it for long), and nothing is left behind."""
        prefix = self.prefix()
        store = run.build(lambda: self.grants(prefix))
        store._purge_token_budget = 7
        self._family(run, store, "fam-1", "t0")
        for n in range(1, 30):  # 30 tokens in the family's set
            outcome = run(store.rotate_refresh, f"t{n - 1}", f"t{n}", 1000.0 + n)
            assert outcome.status is RefreshStatus.ROTATED
        self._family(run, store, "fam-2", "u0")
        scripts = []
        purge_script = store._purge

        async def counted(*args: object, **kwargs: object) -> object:
            scripts.append(1)
            return await purge_script(*args, **kwargs)

        store._purge = counted  # type: ignore[method-assign]
        assert run(store.purge, 99_999.0) == 2
        assert len(scripts) >= 30 // 7  # several bounded calls, not one unbounded
        base = f"{prefix}:oauth"
        left = run(lambda: _keys(store, f"{base}:*"))
        assert not [k for k in left if b":token:" in k or b":fam" in k], left
        assert run(store.family, "fam-1") is None
        assert run(store.rotate_refresh, "t29", "t30", 99_999.0).status is RefreshStatus.UNKNOWN


async def _keys(store: RedisGrantStore, pattern: str) -> list[bytes]:
    return [key async for key in store.client.scan_iter(match=pattern, count=500)]


def test_unstorable_text_is_refused_before_any_io() -> None:
    """With no server to reach, a `ValueError` (not `StoreUnavailable`) proves nothing was sent."""
    with driver() as run:
        grants = run.build(lambda: RedisGrantStore("redis://127.0.0.1:1/0", socket_timeout=1.0))
        try:
            for bad in UNSTORABLE_TEXT:
                for call in (
                    partial(grants.save_code, code(bad)),
                    partial(grants.redeem_code, bad, 1000.0),
                    partial(grants.revoke_family, "fam-1", bad),
                ):
                    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the type is the rule
                        run(call)
                    assert not isinstance(caught.value, StoreUnavailable)
                assert run(grants.family, bad) is None
            with pytest.raises(StoreUnavailable):  # the same store, given good text, does try
                run(grants.family, "fam-1")
        finally:
            run(grants.aclose)


def test_an_unreachable_server_is_store_unavailable() -> None:
    with driver() as run:
        grants = run.build(lambda: RedisGrantStore("redis://127.0.0.1:1/0", socket_timeout=1.0))
        clients = run.build(lambda: RedisClientStore("redis://127.0.0.1:1/0"))
        try:
            with pytest.raises(StoreUnavailable):
                run(grants.redeem_code, "h1", 1000.0)
            with pytest.raises(StoreUnavailable):
                run(grants.purge, 1000.0)
            with pytest.raises(StoreUnavailable):
                run(clients.get, "c1")
        finally:
            run(grants.aclose)
            run(clients.aclose)
