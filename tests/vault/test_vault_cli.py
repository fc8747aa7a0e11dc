"""`mcp-core keys generate|rotate` and `mcp-core vault list|delete|rotate` (vault_cmds.py), end
to end through `main(argv)` on a named in-memory store, and in a real subprocess on SQLite.

Spec: issue 3 "The vault" (`mcp-core keys generate|rotate` and `mcp-core vault list|delete`; a
missing or malformed secret is a clear error). The output contract: `keys` commands print one
line on stdout, the secret value; errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp_core.adapters.cli import main, vault_cmds
from mcp_core.adapters.cli._target import CliError
from mcp_core.adapters.cli.vault_cmds import open_credential_store
from mcp_core.adapters.storage.memory import InMemoryCredentialStore
from mcp_core.core.vault.keys import Keyring, parse_keyring
from mcp_core.ports.credentials import CredentialStore

from .vault_testing import K1, b64, keyring, make_vault

RING1 = keyring(("k1", K1))


@pytest.fixture
def store_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"memory:{request.node.nodeid}"
    monkeypatch.setenv("MCP_CORE_VAULT_STORE", url)
    monkeypatch.delenv("KEYRING_SECRET", raising=False)
    return url


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def seed(store: CredentialStore, ring: Keyring, rows: list[tuple[str, str, str]]) -> None:
    async def go() -> None:
        vault = make_vault(store, ring)
        for server, subject, kind in rows:
            await vault.put(server, subject, kind, {"who": subject}, expected_version=None)

    anyio.run(go)


def read(store: CredentialStore, ring: Keyring, server: str, subject: str, kind: str) -> object:
    async def go() -> object:
        got = await make_vault(store, ring).get(server, subject, kind)
        return None if got is None else got.data

    return anyio.run(go)


# ---- keys -------------------------------------------------------------------------------------


def test_keys_generate_prints_one_fresh_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "keys", "generate")
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    ring = parse_keyring(out)
    assert ring.ids == ("k1",)
    assert len(ring.newest.secret) == 32
    _, again, _ = cli(capsys, "keys", "generate")
    assert again != out
    code, out, _ = cli(capsys, "keys", "generate", "--id", "2026-01")
    assert parse_keyring(out).ids == ("2026-01",)


def test_keys_generate_refuses_a_bad_id(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "keys", "generate", "--id", "no:colons")
    assert (code, out) == (1, "")
    assert err.startswith("mcp-core: error: --id 'no:colons': a key id is")


def test_keys_rotate_puts_a_new_key_first_and_keeps_the_old(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    monkeypatch.setenv("KEYRING_SECRET", b64(K1))
    code, out, err = cli(capsys, "keys", "rotate")
    assert code == 0
    ring = parse_keyring(out)
    assert ring.ids == ("k2", "k1")
    assert ring.get("k1") == RING1.newest
    assert "new key k2 added in front of k1" in err
    assert b64(K1) not in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "mcp-core: error: KEYRING_SECRET is not set"),
        ("hunter2hunter2", "mcp-core: error: KEYRING_SECRET decodes to 10 bytes, not 32"),
        ("passphrase:short", "at least 12 characters"),
    ],
)
def test_keys_rotate_without_a_good_secret_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store_url: str,
    value: str | None,
    message: str,
) -> None:
    if value is not None:
        monkeypatch.setenv("KEYRING_SECRET", value)
    code, out, err = cli(capsys, "keys", "rotate")
    assert (code, out) == (1, "")
    assert message in err
    assert err.count("\n") == 1
    if value is not None:
        assert value.removeprefix("passphrase:") not in err


def test_keys_rotate_store_re_encrypts_the_named_servers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    store = open_credential_store(store_url)
    seed(store, RING1, [("a", "alice", "form"), ("a", "bob", "form"), ("b", "carol", "form")])
    monkeypatch.setenv("KEYRING_SECRET", f"k1:{b64(K1)}")
    code, out, err = cli(capsys, "keys", "rotate", "--store", "--server", "a")
    assert code == 0, err
    ring = parse_keyring(out)
    assert "server 'a': 2 re-encrypted under k2, 0 already current" in err

    async def key_ids(server: str) -> list[str]:
        return [r.key_id for r in await store.list_server(server)]

    assert anyio.run(key_ids, "a") == ["k2", "k2"]
    assert anyio.run(key_ids, "b") == ["k1"]
    assert read(store, ring, "a", "alice", "form") == {"who": "alice"}


def test_keys_rotate_store_needs_servers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    monkeypatch.setenv("KEYRING_SECRET", b64(K1))
    code, out, err = cli(capsys, "keys", "rotate", "--store")
    assert (code, out) == (1, "")
    assert "--store needs the servers" in err


# ---- vault ------------------------------------------------------------------------------------


def test_vault_list_shows_metadata_without_a_key(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    store = open_credential_store(store_url)
    seed(store, RING1, [("a", "alice", "form"), ("a", "alice", "oauth"), ("a", "tab\tby", "x")])
    code, out, err = cli(capsys, "vault", "list", "--server", "a")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "SERVER\tSUBJECT\tKIND\tVERSION\tKEY\tUPDATED"
    assert [line.split("\t")[:5] for line in lines[1:]] == [
        ["a", "alice", "form", "1", "k1"],
        ["a", "alice", "oauth", "1", "k1"],
        ["a", '"tab\\tby"', "x", "1", "k1"],
    ]
    assert lines[1].endswith("2023-11-14T22:13:20+00:00")
    assert "who" not in out
    code, out, _ = cli(capsys, "vault", "list", "--server", "a", "--subject", "alice", "--json")
    assert code == 0
    assert [(r["subject"], r["kind"], r["key_id"]) for r in json.loads(out)] == [
        ("alice", "form", "k1"),
        ("alice", "oauth", "k1"),
    ]


def test_vault_list_needs_a_server(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    code, _, err = cli(capsys, "vault", "list")
    assert code == 2
    assert "--server" in err


def test_vault_delete_one_kind_or_all(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    store = open_credential_store(store_url)
    seed(store, RING1, [("a", "alice", "form"), ("a", "alice", "oauth"), ("a", "bob", "form")])
    code, out, _ = cli(
        capsys, "vault", "delete", "--server", "a", "--subject", "alice", "--kind", "oauth"
    )
    assert code == 0
    assert out.startswith("deleted 1 credential record(s) of kind 'oauth' of subject 'alice'")
    assert out.endswith(" on server 'a': oauth\n")
    code, out, _ = cli(capsys, "vault", "delete", "--server", "a", "--subject", "alice")
    assert (code, out.split(": ")[-1]) == (0, "form\n")
    code, out, err = cli(capsys, "vault", "delete", "--server", "a", "--subject", "alice")
    assert (code, out) == (1, "")
    assert err == "mcp-core: error: no credentials stored for subject 'alice' on server 'a'\n"
    assert read(store, RING1, "a", "bob", "form") == {"who": "bob"}


def test_vault_rotate_uses_the_current_keyring(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    store = open_credential_store(store_url)
    seed(store, RING1, [("a", "alice", "form")])
    _, new_value, _ = cli(capsys, "keys", "generate", "--id", "k2")
    monkeypatch.setenv("KEYRING_SECRET", f"{new_value.strip()},k1:{b64(K1)}")
    code, out, err = cli(capsys, "vault", "rotate", "--server", "a")
    assert (code, out) == (0, "")
    assert "server 'a': 1 re-encrypted under k2" in err
    assert read(store, parse_keyring(os.environ["KEYRING_SECRET"]), "a", "alice", "form") == {
        "who": "alice"
    }


def test_vault_rotate_exits_1_when_records_are_left_behind(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    store = open_credential_store(store_url)
    seed(store, keyring(("k0", bytes(32))), [("a", "alice", "form")])
    monkeypatch.setenv("KEYRING_SECRET", f"k1:{b64(K1)}")
    code, _, err = cli(capsys, "vault", "rotate", "--server", "a")
    assert code == 1
    assert "1 unreadable" in err
    assert "subject 'alice' kind 'form': KEYRING_SECRET holds no key 'k0'" in err


def test_bare_groups_print_their_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for group in ("keys", "vault"):
        code, out, err = cli(capsys, group)
        assert (code, out) == (2, "")
        assert f"usage: mcp-core {group}" in err


# ---- the store factory ------------------------------------------------------------------------


def test_memory_stores_are_shared_by_name_within_a_process() -> None:
    one = open_credential_store("memory:shared-test")
    assert isinstance(one, InMemoryCredentialStore)
    assert open_credential_store("memory:shared-test") is one
    assert open_credential_store("memory:other-test") is not one


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no credential store given"),
        ("ftp://host/x", "unknown credential store scheme 'ftp'"),
        ("sqlite://", "names no file"),
    ],
)
def test_bad_store_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        open_credential_store(spec)


def test_a_missing_adapter_or_driver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        vault_cmds._ADAPTERS, "postgresql", ("mcp_core.adapters.storage.nope", "X", "postgres")
    )
    with pytest.raises(CliError, match="this mcp-core has no postgresql credential store"):
        open_credential_store("postgresql://user:pw@db/x")
    monkeypatch.setitem(vault_cmds._ADAPTERS, "redis", ("no_such_driver_pkg.sub", "X", "redis"))
    with pytest.raises(
        CliError, match=r"needs no_such_driver_pkg: pip install 'mcp-core\[redis\]'"
    ):
        open_credential_store("redis://127.0.0.1:1/0")


def test_sqlite_urls_and_plain_paths_open_a_file(tmp_path: Path) -> None:
    sqlite = pytest.importorskip("mcp_core.adapters.storage.sqlite")
    for spec, expected in [
        (f"sqlite://{tmp_path}/a.sqlite3", tmp_path / "a.sqlite3"),
        (str(tmp_path / "b.sqlite3"), tmp_path / "b.sqlite3"),
    ]:
        store = open_credential_store(spec)
        assert isinstance(store, sqlite.SqliteCredentialStore)
        assert store.path == expected


# ---- a real process on a real file -----------------------------------------------------------


def test_end_to_end_in_a_subprocess_on_sqlite(tmp_path: Path) -> None:
    pytest.importorskip("mcp_core.adapters.storage.sqlite")
    url = f"sqlite://{tmp_path}/vault.sqlite3"
    env = {k: v for k, v in os.environ.items() if k != "KEYRING_SECRET"}
    env["MCP_CORE_VAULT_STORE"] = url

    def run(*argv: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {} if secret is None else {"KEYRING_SECRET": secret}
        return subprocess.run(
            [sys.executable, "-m", "mcp_core.adapters.cli", *argv],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    generated = run("keys", "generate")
    assert generated.returncode == 0, generated.stderr
    first = generated.stdout.strip()
    store = open_credential_store(url)
    seed(store, parse_keyring(first), [("srv", "alice", "form"), ("srv", "bob", "form")])

    missing = run("keys", "rotate", "--store", "--server", "srv")
    assert missing.returncode == 1
    assert missing.stderr.startswith("mcp-core: error: KEYRING_SECRET is not set")
    assert "Traceback" not in missing.stderr

    rotated = run("keys", "rotate", "--store", "--server", "srv", secret=first)
    assert rotated.returncode == 0, rotated.stderr
    ring = parse_keyring(rotated.stdout)
    assert ring.ids == ("k2", "k1")
    listed = run("vault", "list", "--server", "srv", "--json")
    assert [(r["subject"], r["key_id"], r["version"]) for r in json.loads(listed.stdout)] == [
        ("alice", "k2", 2),
        ("bob", "k2", 2),
    ]
    assert read(store, ring, "srv", "bob", "form") == {"who": "bob"}
    deleted = run("vault", "delete", "--server", "srv", "--subject", "bob")
    assert deleted.returncode == 0, deleted.stderr
    assert read(store, ring, "srv", "bob", "form") is None
    assert first.split(":", 1)[1] not in rotated.stderr + listed.stdout + deleted.stdout
