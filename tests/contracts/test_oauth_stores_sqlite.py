"""The SQLite OAuth stores pass the `ClientStore` and `GrantStore` contracts, each on a fresh
file; the grant races run over two connections to that file."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from mcp_core.adapters.storage.sqlite import (
    OAUTH_GRANT_STEPS,
    SqliteClientStore,
    SqliteGrantStore,
)
from mcp_core.ports.contracts._portal import Driver, driver
from mcp_core.ports.contracts.oauth_stores import (
    UNSTORABLE_TEXT,
    ClientStoreContract,
    GrantStoreContract,
    code,
)
from mcp_core.ports.credentials import StoreUnavailable
from mcp_core.ports.oauth_stores import ClientStore, GrantStore


class _FreshFiles:
    """Stores on new files in the test's temporary folder, closed when the test ends."""

    @pytest.fixture
    def run(self, tmp_path: Path) -> Iterator[Driver]:
        self._folder = tmp_path
        self._counter = itertools.count()
        self._stores: list[SqliteClientStore | SqliteGrantStore] = []
        with driver() as d:
            try:
                yield d
            finally:
                for store in self._stores:
                    d(store.close)

    def fresh_path(self) -> Path:
        return self._folder / "data" / f"store-{next(self._counter)}.sqlite3"


class TestSqliteClientStore(_FreshFiles, ClientStoreContract):
    max_examples = 20  # every example is a new file, every write an fsync

    def make_store(self) -> ClientStore:
        store = SqliteClientStore(self.fresh_path())
        self._stores.append(store)
        return store


class TestSqliteGrantStore(_FreshFiles, GrantStoreContract):
    max_examples = 25

    def make_store(self) -> GrantStore:
        store = SqliteGrantStore(self.fresh_path())
        self._stores.append(store)
        return store

    def open_again(self, store: GrantStore) -> GrantStore:
        assert isinstance(store, SqliteGrantStore)
        again = SqliteGrantStore(store.path)
        self._stores.append(again)
        return again


def test_client_and_grant_stores_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite3"
    with driver() as run:
        clients = run.build(lambda: SqliteClientStore(path))
        grants = run.build(lambda: SqliteGrantStore(path))
        try:
            assert run(clients.get, "nobody") is None
            assert run(grants.is_revoked, "fam") is False
        finally:
            run(clients.close)
            run(grants.close)


def test_a_file_at_the_first_grant_schema_gains_the_purge_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with driver() as run:
        grants = run.build(lambda: SqliteGrantStore(path))
        run(grants.revoke_access, "jti-1", 1000.0)
        run(grants.close)
    indexes = (
        "mcp_core_oauth_codes_expires_at",
        "mcp_core_oauth_access_revocations_expires_at",
        "mcp_core_oauth_families_rotated_at",
        "mcp_core_oauth_refresh_tokens_family_id",
    )
    with sqlite3.connect(path) as conn:  # back to what the first release wrote
        for index in indexes:
            conn.execute(f"DROP INDEX {index}")
        conn.execute("UPDATE mcp_core_schema SET version = 1 WHERE component = 'oauth_grants'")
    conn.close()
    with driver() as run:
        grants = run.build(lambda: SqliteGrantStore(path))
        try:
            assert run(grants.purge, 1000.5) == 1
        finally:
            run(grants.close)
    with sqlite3.connect(path) as conn:
        found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        version = conn.execute(
            "SELECT version FROM mcp_core_schema WHERE component = 'oauth_grants'"
        ).fetchone()
    conn.close()
    assert set(indexes) <= found
    assert version == (len(OAUTH_GRANT_STEPS),)


def test_unstorable_text_is_refused_before_any_io(tmp_path: Path) -> None:
    """On a path that cannot be opened (its folder is a file), a `ValueError` (not
    `StoreUnavailable`) proves the store never touched the file."""
    (tmp_path / "not-a-folder").write_text("")
    path = tmp_path / "not-a-folder" / "grants.sqlite3"
    with driver() as run:
        grants = run.build(lambda: SqliteGrantStore(path))
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
            run(grants.close)
