"""The PostgreSQL OAuth stores pass the `ClientStore` and `GrantStore` contracts on the server of
this machine.

Every store gets a schema of its own (a fresh one per `make_store`, dropped after the test); the
stores of one test share one pool, created on the contract's event loop. `open_again` gives the
grant races a second store with a pool of its own on the same schema, so racing redeems and
rotations run on different connections and meet only in the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest

from mcp_core.adapters.storage.postgres import (
    OAUTH_GRANT_STEPS,
    PostgresClientStore,
    PostgresGrantStore,
    SchemaTooNew,
)
from mcp_core.ports.contracts._portal import Driver, driver
from mcp_core.ports.contracts.oauth_stores import (
    UNSTORABLE_TEXT,
    ClientStoreContract,
    GrantStoreContract,
    code,
)
from mcp_core.ports.credentials import StoreUnavailable
from mcp_core.ports.oauth_stores import ClientStore, GrantStore, RegisteredClient

from .conftest import postgres_execute
from .test_postgres_adapters import _close_pool, _FreshSchemas, _open_pool


class TestPostgresClientStore(_FreshSchemas, ClientStoreContract):
    max_examples = 20

    def make_store(self) -> ClientStore:
        return PostgresClientStore(self.pool, schema=self.fresh_schema())

    def test_any_string_round_trips_as_a_secret_hash(self, run: Driver) -> None:
        store = run.build(self.make_store)
        registered = RegisteredClient(
            client_id="c1",
            metadata={"client_name": "a\x00b"},
            secret_hash="x\x00y\udcff",
            registered_at=1.5,
            source="static",
        )
        run(store.put, registered)
        assert run(store.get, "c1") == registered
        assert run(store.get, "c\x00") is None
        assert run(store.delete, "c\x00") is False


class TestPostgresGrantStore(_FreshSchemas, GrantStoreContract):
    max_examples = 25

    @pytest.fixture
    def run(self, postgres_dsn: str, postgres_schemas: Callable[[], str]) -> Iterator[Driver]:
        self.dsn = postgres_dsn
        self.fresh_schema = postgres_schemas
        self.others: list[PostgresGrantStore] = []
        with driver() as d:
            self.pool = d(_open_pool, postgres_dsn)
            try:
                yield d
            finally:
                for store in self.others:
                    d(store.close)
                d(_close_pool, self.pool)

    def make_store(self) -> GrantStore:
        return PostgresGrantStore(self.pool, schema=self.fresh_schema())

    def open_again(self, store: GrantStore) -> GrantStore:
        assert isinstance(store, PostgresGrantStore)
        # From the DSN: a pool of its own, so the racers hold different connections.
        again = PostgresGrantStore(self.dsn, schema=store.schema)
        self.others.append(again)
        return again

    def test_schema_is_versioned_and_migrated_once(self, run: Driver, postgres_dsn: str) -> None:
        schema = self.fresh_schema()
        first = PostgresGrantStore(self.pool, schema=schema)
        second = PostgresGrantStore(self.pool, schema=schema)
        assert run(first.is_revoked, "fam") is False
        assert run(second.revoke_family, "fam", "admin") is True
        assert run(first.is_revoked, "fam") is True

        async def versions() -> list[tuple[str, int]]:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    f'SELECT component, version FROM "{schema}".mcp_core_schema'
                )
            return [(row[0], row[1]) for row in rows]

        assert run(versions) == [("oauth_grants", len(OAUTH_GRANT_STEPS))]
        postgres_execute(postgres_dsn, f'UPDATE "{schema}".mcp_core_schema SET version = 99')
        newer = PostgresGrantStore(self.pool, schema=schema)
        with pytest.raises(SchemaTooNew, match="schema version 99"):
            run(newer.is_revoked, "fam")


def test_unstorable_text_is_refused_before_any_io() -> None:
    """With no server to reach, a `ValueError` (not `StoreUnavailable`) proves nothing was sent:
    a NUL (PostgreSQL text refuses it) and a lone surrogate (asyncpg cannot encode it)."""
    dsn = "postgresql://postgres@127.0.0.1:1/test"
    with driver() as run:
        grants = run.build(lambda: PostgresGrantStore(dsn, connect_timeout=1.0))
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


def test_an_unreachable_server_is_store_unavailable() -> None:
    dsn = "postgresql://postgres@127.0.0.1:1/test"
    with driver() as run:
        grants = run.build(lambda: PostgresGrantStore(dsn, connect_timeout=1.0))
        clients = run.build(lambda: PostgresClientStore(dsn, connect_timeout=1.0))
        with pytest.raises(StoreUnavailable):
            run(grants.redeem_code, "h1", 1000.0)
        with pytest.raises(StoreUnavailable):
            run(grants.purge, 1000.0)
        with pytest.raises(StoreUnavailable):
            run(clients.get, "c1")
