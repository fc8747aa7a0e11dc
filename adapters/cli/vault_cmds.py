"""`mcp-core keys ...` and `mcp-core vault ...`: the vault's keys and the credentials it stores.

```
mcp-core keys generate [--id ID]
mcp-core keys rotate   [--id ID] [--store --server S [--server S ...]] [--store-url URL]
mcp-core vault list    --server S [--subject U] [--json] [--store-url URL]
mcp-core vault delete  --server S --subject U [--kind K] [--store-url URL]
mcp-core vault rotate  --server S [--server S ...] [--store-url URL]
```

Spec context: issue 3 "The vault" (`mcp-core keys generate|rotate` and `mcp-core vault
list|delete`); the design, the `KEYRING_SECRET` format and the rotation procedure are in
`docs/vault.md`.

- `keys generate` prints a fresh `KEYRING_SECRET` value (`k1:<32 random bytes, base64>`).
- `keys rotate` reads `KEYRING_SECRET`, adds a new random key in front (id `k<N+1>` unless
  `--id`), and prints the new value: the new key first, the old ones kept so existing records
  stay readable. With `--store` it also re-encrypts the stored records of each `--server`
  under the new key at once; the value is printed before that starts, so it is never lost.
- `vault rotate` re-encrypts the stored records of each `--server` under the newest key of the
  current `KEYRING_SECRET` (the second half of the zero-downtime procedure in the docs).
- `vault list` and `vault delete` work on metadata only and need no key.

Output contract, for scripts: `keys generate` and `keys rotate` print exactly one line on
stdout, the secret value (so `KEYRING_SECRET=$(mcp-core keys generate)` works); everything else
goes to stderr. `vault list` prints tab-separated rows with a header (`--json`: one JSON array).
Errors are one line on stderr and exit status 1; a rotation that left records behind exits 1.

The store: `--store-url`, else `MCP_CORE_VAULT_STORE`, else the SQLite file under the user's
data folder (`$XDG_DATA_HOME/mcp-core/vault.sqlite3`). `open_credential_store` reads:
`memory:` / `memory:NAME` (this process only), `sqlite:///abs/path`, `sqlite:rel/path` or a
plain path, `postgresql://...` and `redis://...` (adapters imported on demand).
`open_oauth_stores` reads the same forms and opens the authorization server's client and grant
stores.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._target import CliError

if TYPE_CHECKING:
    from mcp_core.core.services.vault import RotationReport, Vault
    from mcp_core.core.vault.keys import Keyring, MasterKey
    from mcp_core.ports.credentials import CredentialRecord, CredentialStore
    from mcp_core.ports.oauth_stores import ClientStore, GrantStore

__all__ = ["STORE_VARIABLE", "add_vault_commands", "open_credential_store", "open_oauth_stores"]

STORE_VARIABLE = "MCP_CORE_VAULT_STORE"

T = TypeVar("T")

# `memory:NAME` stores live as long as the process, so that several commands run in one
# process (tests, a REPL) see the same data.
_MEMORY_STORES: dict[str, CredentialStore] = {}

_ADAPTERS = {
    "sqlite": ("mcp_core.adapters.storage.sqlite", "SqliteCredentialStore", None),
    "postgresql": ("mcp_core.adapters.storage.postgres", "PostgresCredentialStore", "postgres"),
    "redis": ("mcp_core.adapters.storage.redis", "RedisCredentialStore", "redis"),
}
_SCHEMES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
}


# ---- the store ----------------------------------------------------------------------------------


def _adapter_module(name: str, what: str) -> Any:
    """The storage module of backend `name`, or a `CliError` saying what to install."""
    module_name, _, extra = _ADAPTERS[name]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise CliError(f"this mcp-core has no {name} {what} store") from None
        hint = f": pip install 'mcp-core[{extra}]'" if extra else ""
        raise CliError(f"the {name} {what} store needs {exc.name}{hint}") from None


def _adapter(name: str) -> Any:
    class_name = _ADAPTERS[name][1]
    cls = getattr(_adapter_module(name, "credential"), class_name, None)
    if cls is None:
        raise CliError(f"this mcp-core has no {name} credential store ({class_name})")
    return cls


def default_store_path() -> str:
    """The SQLite file the vault uses unless configured (see `SqliteCredentialStore`)."""
    try:
        from mcp_core.adapters.storage.sqlite import default_data_path
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME", "")
        root = base if os.path.isabs(base) else os.path.join("~", ".local", "share")
        return os.path.expanduser(os.path.join(root, "mcp-core", "vault.sqlite3"))
    return str(default_data_path())


def open_credential_store(url_or_path: str) -> CredentialStore:
    """A `CredentialStore` for a URL or a path (forms in the module docstring)."""
    spec = url_or_path.strip()
    if not spec:
        raise CliError(f"no credential store given (set {STORE_VARIABLE} or --store-url)")
    if spec == "memory:" or spec.startswith("memory:"):
        from mcp_core.adapters.storage.memory import InMemoryCredentialStore

        name = spec.removeprefix("memory:")
        store = _MEMORY_STORES.get(name)
        if store is None:
            store = _MEMORY_STORES[name] = InMemoryCredentialStore()
        return store
    kind, argument, label = _store_target(spec, "credential")
    return _build(_adapter(kind), argument, label)


def _store_target(spec: str, what: str) -> tuple[str, str, str]:
    """A spec other than `memory:` as (backend, constructor argument, label for messages)."""
    scheme, sep, _ = spec.partition("://")
    if spec.startswith("sqlite:"):
        path = spec.removeprefix("sqlite://") if sep else spec.removeprefix("sqlite:")
        if not path:
            raise CliError(f"{spec!r} names no file: use sqlite:///absolute/path.sqlite3")
        return "sqlite", os.path.expanduser(path), spec
    if sep:
        kind = _SCHEMES.get(scheme.lower())
        if kind is None:
            raise CliError(
                f"unknown {what} store scheme {scheme!r}: use memory:, sqlite:///path, "
                "postgresql://... or redis://..."
            )
        # The label, not the URL: a database URL may carry a password.
        return kind, spec, f"{scheme}://..."
    return "sqlite", os.path.expanduser(spec), spec


def _build(cls: Any, argument: str, label: str) -> CredentialStore:
    try:
        store: CredentialStore = cls(argument)
    except (ValueError, OSError) as exc:
        # The label, not the URL: a database URL may carry a password.
        raise CliError(f"cannot open the credential store {label}: {exc}") from None
    return store


# ---- the authorization server's stores ---------------------------------------------------------

_MEMORY_OAUTH_STORES: dict[str, tuple[ClientStore, GrantStore]] = {}

_OAUTH_CLASSES = {
    "sqlite": ("SqliteClientStore", "SqliteGrantStore"),
    "postgresql": ("PostgresClientStore", "PostgresGrantStore"),
    "redis": ("RedisClientStore", "RedisGrantStore"),
}


def open_oauth_stores(url_or_path: str) -> tuple[ClientStore, GrantStore]:
    """The authorization server's `ClientStore` and `GrantStore` for a store spec, in the forms
    `open_credential_store` reads (the module docstring). `memory:NAME` pairs are shared by name
    within the process; a SQLite spec may name the vault's own file (the OAuth tables are
    distinct); PostgreSQL and Redis stores each open their own pool or client from the URL.
    The caller closes both (`close()`, or `aclose()` for Redis) when done.
    """
    spec = url_or_path.strip()
    if not spec:
        raise CliError("no OAuth store given")
    if spec.startswith("memory:"):
        from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore

        name = spec.removeprefix("memory:")
        pair = _MEMORY_OAUTH_STORES.get(name)
        if pair is None:
            pair = _MEMORY_OAUTH_STORES[name] = (InMemoryClientStore(), InMemoryGrantStore())
        return pair
    kind, argument, label = _store_target(spec, "OAuth")
    module = _adapter_module(kind, "OAuth")
    client_class, grant_class = (getattr(module, name, None) for name in _OAUTH_CLASSES[kind])
    if client_class is None or grant_class is None:
        raise CliError(f"this mcp-core has no {kind} OAuth store")
    try:
        clients: ClientStore = client_class(argument)
        grants: GrantStore = grant_class(argument)
    except (ValueError, OSError) as exc:
        # The label, not the URL: a database URL may carry a password.
        raise CliError(f"cannot open the OAuth store {label}: {exc}") from None
    return clients, grants


async def _close(store: object) -> None:
    for name in ("aclose", "close"):
        close = getattr(store, name, None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result
            return


def _run_with_store(args: argparse.Namespace, work: Callable[[CredentialStore], Awaitable[T]]) -> T:
    import anyio

    from mcp_core.ports.credentials import StoreUnavailable

    spec = args.store_url or os.environ.get(STORE_VARIABLE) or default_store_path()
    store = open_credential_store(spec)

    async def go() -> T:
        try:
            return await work(store)
        finally:
            await _close(store)

    try:
        return anyio.run(go)
    except StoreUnavailable as exc:
        raise CliError(f"the credential store is unavailable: {exc}") from None


# ---- keys -------------------------------------------------------------------------------------


def _keyring_from_env() -> Keyring:
    from mcp_core.core.vault.keys import KeyringError, keyring_from_environ

    try:
        return keyring_from_environ(os.environ)
    except KeyringError as exc:
        raise CliError(str(exc)) from None


def _random_key(key_id: str) -> MasterKey:
    from mcp_core.adapters.system import SystemRandom
    from mcp_core.core.vault.keys import KEY_SIZE, KeyringError, MasterKey

    try:
        return MasterKey.random(key_id, SystemRandom().token(KEY_SIZE))
    except KeyringError as exc:
        raise CliError(f"--id {key_id!r}: {exc}") from None


def _print_secret(value: str) -> None:
    print(value, flush=True)


def _keys_generate(args: argparse.Namespace) -> int:
    from mcp_core.core.vault.keys import DEFAULT_KEY_ID

    _print_secret(_random_key(args.id or DEFAULT_KEY_ID).entry())
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    from mcp_core.core.vault.keys import KEYRING_VARIABLE, KeyringError, next_key_id

    if args.store and not args.server:
        raise CliError("--store needs the servers whose records to re-encrypt: --server NAME")
    if args.server and not args.store:
        raise CliError("--server is used with --store")
    keyring = _keyring_from_env()
    key = _random_key(args.id or next_key_id(keyring.ids))
    try:
        rotated = keyring.with_newest(key)
    except KeyringError as exc:
        raise CliError(f"--id {key.key_id!r}: {exc}") from None
    _print_secret(rotated.secret_value())
    _note(
        f"new key {key.key_id} added in front of {', '.join(keyring.ids)}; set "
        f"{KEYRING_VARIABLE} to the printed value on every node (the old keys stay for reading)"
    )
    if not args.store:
        return 0
    _note(
        f"re-encrypting under {key.key_id} now: until {KEYRING_VARIABLE} is updated, nodes "
        "still on the old value cannot read the records moved"
    )
    return _rotate_servers(args, rotated)


def _rotate_servers(args: argparse.Namespace, keyring: Keyring) -> int:
    servers: list[str] = args.server

    async def work(store: CredentialStore) -> list[RotationReport]:
        vault = _vault(store, keyring)
        return [await vault.rotate(server) for server in servers]

    reports = _run_with_store(args, work)
    complete = True
    for report in reports:
        _note(
            f"server {report.server!r}: {report.reencrypted} re-encrypted under "
            f"{report.key_id}, {report.already_current} already current, "
            f"{len(report.contended)} changing (run again), {len(report.unreadable)} unreadable"
        )
        for bad in report.unreadable:
            _note(f"  subject {bad.info.subject!r} kind {bad.info.kind!r}: {bad.reason}")
        complete = complete and report.complete
    return 0 if complete else 1


def _vault(store: CredentialStore, keyring: Keyring) -> Vault:
    from mcp_core.adapters.crypto import CryptographyAead, CryptographyKdf
    from mcp_core.adapters.system import SystemClock, SystemRandom
    from mcp_core.core.services.vault import Vault

    return Vault(
        store=store,
        keyring=keyring,
        aead=CryptographyAead(),
        kdf=CryptographyKdf(),
        random=SystemRandom(),
        clock=SystemClock(),
    )


# ---- vault --------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    # Names are arbitrary strings: keep one record on one line and its columns apart.
    return text if text.isprintable() and text.strip() == text else json.dumps(text)


def _when(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return repr(timestamp)


def _vault_list(args: argparse.Namespace) -> int:
    async def work(store: CredentialStore) -> list[CredentialRecord]:
        if args.subject is not None:
            return await store.list_subject(args.server, args.subject)
        return await store.list_server(args.server)

    records = _run_with_store(args, work)
    rows = [
        {
            "server": r.server,
            "subject": r.subject,
            "kind": r.kind,
            "version": r.version,
            "key_id": r.key_id,
            "updated_at": _when(r.updated_at),
        }
        for r in records
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    print("\t".join(("SERVER", "SUBJECT", "KIND", "VERSION", "KEY", "UPDATED")))
    for row in rows:
        print("\t".join(_cell(v) if isinstance(v, str) else str(v) for v in row.values()))
    return 0


def _vault_delete(args: argparse.Namespace) -> int:
    async def work(store: CredentialStore) -> list[str]:
        kinds = (
            [args.kind]
            if args.kind is not None
            else [r.kind for r in await store.list_subject(args.server, args.subject)]
        )
        return [kind for kind in kinds if await store.delete(args.server, args.subject, kind)]

    deleted = _run_with_store(args, work)
    what = f"subject {args.subject!r} on server {args.server!r}"
    if args.kind is not None:
        what = f"kind {args.kind!r} of {what}"
    if not deleted:
        raise CliError(f"no credentials stored for {what}")
    print(f"deleted {len(deleted)} credential record(s) of {what}: {', '.join(deleted)}")
    return 0


def _vault_rotate(args: argparse.Namespace) -> int:
    return _rotate_servers(args, _keyring_from_env())


# ---- the parsers --------------------------------------------------------------------------------


def _note(message: str) -> None:
    print(f"mcp-core: {message}", file=sys.stderr, flush=True)


def _logging_to_stderr() -> None:
    # The vault warns through logging (a passphrase key); make sure the user sees it.
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mcp-core: %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


def _with_logging(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        _logging_to_stderr()
        return run(args)

    return wrapped


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store-url",
        metavar="URL",
        default=None,
        help=(
            f"the credential store (default: ${STORE_VARIABLE}, else the SQLite file under "
            "your data folder): memory:, sqlite:///path, postgresql://..., redis://..."
        ),
    )


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def add_vault_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys` and `vault` on the CLI's subparsers; each sets `run(args) -> int`."""
    keys = commands.add_parser(
        "keys",
        help="generate and rotate the vault's keys (KEYRING_SECRET)",
        description="Generate and rotate the keys that encrypt stored credentials.",
    )
    keys.set_defaults(run=_usage(keys))
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND")
    generate = key_commands.add_parser(
        "generate",
        help="print a fresh KEYRING_SECRET value",
        description="Print a fresh KEYRING_SECRET value: a key id and 32 random bytes, base64.",
    )
    generate.add_argument("--id", default=None, help="the key's id (default: k1)")
    generate.set_defaults(run=_keys_generate)
    rotate = key_commands.add_parser(
        "rotate",
        help="add a new key in front of KEYRING_SECRET and print the new value",
        description=(
            "Read KEYRING_SECRET, add a new random key in front (newest first, old keys kept "
            "for reading) and print the new value. With --store, also re-encrypt the records "
            "of each --server under the new key."
        ),
    )
    rotate.add_argument("--id", default=None, help="the new key's id (default: k<N+1>)")
    rotate.add_argument(
        "--store", action="store_true", help="re-encrypt stored records under the new key now"
    )
    rotate.add_argument(
        "--server", action="append", default=[], help="a server whose records to re-encrypt"
    )
    _add_store_option(rotate)
    rotate.set_defaults(run=_with_logging(_keys_rotate))

    vault = commands.add_parser(
        "vault",
        help="list, delete and re-encrypt stored credentials",
        description="Inspect and manage the credentials the vault stores (metadata only).",
    )
    vault.set_defaults(run=_usage(vault))
    vault_commands = vault.add_subparsers(dest="vault_command", metavar="COMMAND")
    listing = vault_commands.add_parser(
        "list",
        help="list stored credentials (never their contents)",
        description="List the credential records of a server (or of one subject): metadata only.",
    )
    listing.add_argument("--server", required=True, help="the MCP server's name")
    listing.add_argument("--subject", default=None, help="only this subject's records")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    _add_store_option(listing)
    listing.set_defaults(run=_vault_list)
    delete = vault_commands.add_parser(
        "delete",
        help="delete a subject's stored credentials",
        description="Delete a subject's credential records on a server (one --kind, or all).",
    )
    delete.add_argument("--server", required=True, help="the MCP server's name")
    delete.add_argument("--subject", required=True, help="the subject (user) whose records")
    delete.add_argument("--kind", default=None, help="only this kind of record")
    _add_store_option(delete)
    delete.set_defaults(run=_vault_delete)
    reencrypt = vault_commands.add_parser(
        "rotate",
        help="re-encrypt stored credentials under the newest key of KEYRING_SECRET",
        description=(
            "Re-encrypt the records of each --server that are not under the newest key of "
            "KEYRING_SECRET. Safe to interrupt and run again, and while servers are running."
        ),
    )
    reencrypt.add_argument(
        "--server", action="append", required=True, help="a server whose records to re-encrypt"
    )
    _add_store_option(reencrypt)
    reencrypt.set_defaults(run=_with_logging(_vault_rotate))
