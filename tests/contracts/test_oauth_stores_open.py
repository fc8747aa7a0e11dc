"""`open_oauth_stores(spec)`: the authorization server's stores from a store spec string, in the
forms the vault's `open_credential_store` reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_core.adapters.cli._target import CliError
from mcp_core.adapters.cli.vault_cmds import open_credential_store, open_oauth_stores
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.adapters.storage.postgres import PostgresClientStore, PostgresGrantStore
from mcp_core.adapters.storage.redis import RedisClientStore, RedisGrantStore
from mcp_core.adapters.storage.sqlite import (
    SqliteClientStore,
    SqliteCredentialStore,
    SqliteGrantStore,
)
from mcp_core.ports.contracts._portal import driver
from mcp_core.ports.contracts.oauth_stores import client, code


def test_memory_pairs_are_shared_by_name_within_a_process() -> None:
    clients, grants = open_oauth_stores("memory:oauth-shared-test")
    assert isinstance(clients, InMemoryClientStore)
    assert isinstance(grants, InMemoryGrantStore)
    assert open_oauth_stores("memory:oauth-shared-test") == (clients, grants)
    other = open_oauth_stores("memory:")
    assert other[0] is not clients
    assert other[1] is not grants


def test_sqlite_stores_can_share_the_vault_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite3"
    for spec in (f"sqlite://{path}", str(path)):
        clients, grants = open_oauth_stores(spec)
        assert isinstance(clients, SqliteClientStore)
        assert isinstance(grants, SqliteGrantStore)
        assert clients.path == grants.path == path
    vault = open_credential_store(str(path))
    assert isinstance(vault, SqliteCredentialStore)
    with driver() as run:
        try:
            run(clients.put, client("c1"))
            run(grants.save_code, code("h1"))
            assert run(vault.list_server, "srv") == []
            again_clients, again_grants = open_oauth_stores(f"sqlite:{path}")
            try:
                assert run(again_clients.get, "c1") == client("c1")
                assert run(again_grants.redeem_code, "h1", 1001.0) == code("h1")
            finally:
                run(again_clients.close)  # type: ignore[attr-defined]
                run(again_grants.close)  # type: ignore[attr-defined]
        finally:
            run(clients.close)
            run(grants.close)
            run(vault.close)


def test_server_urls_open_the_postgres_and_redis_stores_without_connecting() -> None:
    clients, grants = open_oauth_stores("postgres://mcp@127.0.0.1:1/x")
    assert isinstance(clients, PostgresClientStore)
    assert isinstance(grants, PostgresGrantStore)
    with driver() as run:
        redis_clients, redis_grants = run.build(lambda: open_oauth_stores("redis://127.0.0.1:1/0"))
        assert isinstance(redis_clients, RedisClientStore)
        assert isinstance(redis_grants, RedisGrantStore)
        run(redis_clients.aclose)
        run(redis_grants.aclose)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("  ", "no OAuth store given"),
        ("ftp://host/x", "unknown OAuth store scheme 'ftp'"),
        ("sqlite://", "names no file"),
        ("redis://u:secret@127.0.0.1:port/0", "cannot open the OAuth store redis://..."),
    ],
)
def test_bad_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(CliError, match=message) as caught:
        open_oauth_stores(spec)
    assert "secret" not in str(caught.value)
