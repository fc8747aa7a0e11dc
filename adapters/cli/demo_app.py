"""The demo served over HTTP with the vault on: what `mcp-core serve` runs with no target.

The demo server of `demo.py`, plus one tool that needs a per-user credential: `fortune` asks
for a (pretend) API key of a fortune service through the relay form at `/relay`, keeps it
encrypted in the vault, and works once it is there. The vault lives in the embedded SQLite
store (`$XDG_DATA_HOME/mcp-core/vault.sqlite3`, or `MCP_CORE_VAULT_STORE`), sealed with the
keys in `KEYRING_SECRET` (`mcp-core keys generate` makes one; `scripts/serve.sh` keeps one for
the demo). Without a valid `KEYRING_SECRET` the demo refuses to start: credentials are never
kept in the clear.

The authorization server is on (issue 4): the MCP endpoint at `/mcp` needs an OAuth access
token, which a client gets from the built-in authorization server on the same origin (RFC 8414
metadata at `/.well-known/oauth-authorization-server`, dynamic registration, `/authorize` with
PKCE S256, `/token`, `/revoke`, `/jwks`), discovered through the RFC 9728 metadata the 401
points to. The demo is a single-user local server: the user is "local" and consent is
automatic (`LocalUserAuthenticator`, `consent="auto"`). Registered clients and grants live in
the same store as the vault (SQLite by default), the signing keys in the vault itself
(`mcp_core.adapters.vault_keyset`), so tokens survive a restart. `auth=False`
(`mcp-core serve --no-auth`) serves the endpoint without the authorization server, every
session then being the local user. The relay form at `/relay` is for the local user either way.
"""

from __future__ import annotations

import os
import random as _random
from collections.abc import Mapping
from typing import Any

import anyio

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.asgi.relay import RelayApp
from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.http_client import HttpxClient
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.adapters.vault_keyset import VaultKeySet, load_keyset
from mcp_core.core.services.authorization_server import AuthorizationServer
from mcp_core.core.services.bootstrap import (
    Accepted,
    CredentialBootstrapService,
    CredentialField,
    Outcome,
    Rejected,
    RemoteRelay,
)
from mcp_core.core.services.streamable_http import ResponseMode
from mcp_core.core.vault.keys import Keyring, KeyringError, keyring_from_environ

from ._target import CliError
from .demo import build_demo_server
from .vault_cmds import (
    _close,
    _vault,
    default_store_path,
    open_credential_store,
    open_oauth_stores,
)

__all__ = ["FORTUNE_FIELDS", "build_demo_app"]

FORTUNE_FIELDS = (
    CredentialField(
        name="api_key",
        label="Fortune service API key",
        pattern="demo-[A-Za-z0-9]{4,}",
        help="Any key of the form demo-XXXX works: this is a demonstration.",
    ),
)
_FORTUNES = (
    "A well-typed program cannot go wrong.",
    "The table is the spec.",
    "Today you will resume a stream you thought was lost.",
    "Secrets kept sealed are secrets kept.",
)


async def _validate(values: dict[str, str], step: str | None) -> Outcome:
    key = values.get("api_key", "")
    if key == "demo-revoked":
        return Rejected(reason="the fortune service revoked this key", retryable=True)
    return Accepted(data={"api_key": key})


def build_demo_app(
    *,
    host: str,
    port: int,
    response_mode: ResponseMode = "auto",
    environ: Mapping[str, str] = os.environ,
    store: str | None = None,
    auth: bool = True,
) -> Any:
    """The demo's ASGI app for a server listening on `host:port` (the relay form's URL and the
    issuer); `store` names its store (else `MCP_CORE_VAULT_STORE`, else the SQLite file)."""
    try:
        keyring = keyring_from_environ(environ)
    except KeyringError as exc:
        raise CliError(
            f"the demo keeps credentials encrypted: {exc} (scripts/serve.sh keeps a demo key)"
        ) from None
    store_spec = store or environ.get("MCP_CORE_VAULT_STORE") or default_store_path()
    credential_store = open_credential_store(store_spec)
    server = build_demo_server()

    vault = _vault(credential_store, keyring)
    bootstrap = CredentialBootstrapService(
        server,
        vault=vault,
        fields=FORTUNE_FIELDS,
        validate=_validate,
        relay=RemoteRelay(f"http://{host}:{port}/relay"),
        clock=SystemClock(),
        random=SystemRandom(),
        anonymous_subject="local",
    )

    @server.tool()
    @bootstrap.requires_credentials
    async def fortune(credentials: dict[str, str]) -> str:
        """A fortune from the (pretend) fortune service; needs your API key, asked once."""
        key = credentials["api_key"]
        pick = _random.Random(key).choice(_FORTUNES)
        return f"{pick} (fortune service, key ending {key[-4:]})"

    relay = {"/relay": RelayApp(bootstrap)}
    if not auth:
        return create_app(server, response_mode=response_mode, extra_routes=relay)
    issuer = f"http://{host}:{port}"
    clients, grants = open_oauth_stores(store_spec)
    authorization = AuthorizationServer(
        issuer,
        clients=clients,
        grants=grants,
        # The keys live in the vault and are re-read there every minute (a rotation by another
        # process sharing the store reaches this one); the first read happens here, before the
        # server's event loop exists.
        keys=VaultKeySet(
            vault,
            issuer=issuer,
            clock=SystemClock(),
            initial=_load_keys(keyring, store_spec, issuer),
        ),
        clock=SystemClock(),
        random=SystemRandom(),
        consent="auto",
        resources={f"{issuer}/mcp"},
        # Client ID metadata documents and `jwks_uri`s, fetched under the default SSRF policy
        # (public https targets only).
        http=HttpxClient(),
    )
    return create_secured_app(
        server,
        resource=f"{issuer}/mcp",
        authorization=authorization,
        resource_name="mcp-core demo",
        response_mode=response_mode,
        extra_routes=relay,
    )


def _load_keys(keyring: Keyring, store_spec: str, issuer: str) -> InMemoryKeySet:
    """The signing keys from the vault, read before the server's event loop exists: through a
    store of their own, closed afterwards (connections belong to the loop that opened them)."""

    async def load() -> InMemoryKeySet:
        store = open_credential_store(store_spec)
        try:
            return await load_keyset(_vault(store, keyring), issuer=issuer, clock=SystemClock())
        finally:
            await _close(store)

    return anyio.run(load)
