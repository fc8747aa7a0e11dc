"""Issue 4 end to end: a client registers, authorizes with PKCE, calls a tool, refreshes, and is
refused after revocation, against `create_secured_app` (the MCP endpoint, the resource-server
checks and the built-in authorization server on one origin), on every store backend.

Everything goes over HTTP through `httpx.ASGITransport`, in the order a real client follows
the MCP authorization spec: 401 -> protected resource metadata -> authorization server
metadata -> RFC 7591 registration -> /authorize -> /token -> the MCP call with the bearer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.system import SystemRandom
from mcp_core.core.services.authorization_server import AuthorizationServer
from mcp_core.core.services.server import McpServer
from mcp_core.ports.oauth_stores import ClientStore, CodeOutcome, CodeStatus, GrantStore

from .backends import BACKENDS, open_backend

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:9000"
RESOURCE = f"{ISSUER}/mcp"
REDIRECT = "http://127.0.0.1:43123/callback"
PROTOCOL = "2025-11-25"
MCP_HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": PROTOCOL,
}


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


def build_server() -> McpServer:
    server = McpServer("e2e", version="1.0")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool(scopes=["admin"])
    def reset() -> str:
        """Needs the admin scope."""
        return "reset"

    return server


class Client:
    """What an MCP client does, step by step, with the answers kept for the assertions."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.client_id = ""
        self.verifier = ""
        self.session: str | None = None
        self.next_id = 0

    async def discover(self) -> dict[str, Any]:
        first = await self.http.post("/mcp", headers=MCP_HEADERS, json=self._rpc("ping"))
        assert first.status_code == 401
        challenge = first.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        prm_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
        prm = (await self.http.get(prm_url)).json()
        assert prm["resource"] == RESOURCE
        (issuer,) = prm["authorization_servers"]
        meta = await self.http.get(f"{issuer}/.well-known/oauth-authorization-server")
        assert meta.status_code == 200
        document: dict[str, Any] = meta.json()
        assert document["issuer"] == ISSUER
        assert document["code_challenge_methods_supported"] == ["S256"]
        return document

    async def register(self, meta: dict[str, Any]) -> None:
        answer = await self.http.post(
            meta["registration_endpoint"],
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "e2e client",
                "application_type": "native",
            },
        )
        assert answer.status_code == 201, answer.text
        self.client_id = answer.json()["client_id"]
        assert "client_secret" not in answer.json()

    async def authorize(self, meta: dict[str, Any], scope: str | None = None) -> str:
        self.verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        state = secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
            "resource": RESOURCE,
        }
        if scope:
            params["scope"] = scope
        answer = await self.http.get(meta["authorization_endpoint"], params=params)
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert query["state"] == state
        assert query["iss"] == ISSUER  # RFC 9207
        return query["code"]

    async def token(self, meta: dict[str, Any], **form: str) -> httpx.Response:
        answer = await self.http.post(
            meta["token_endpoint"], data={"client_id": self.client_id, **form}
        )
        assert answer.headers["cache-control"] == "no-store"
        return answer

    async def exchange(self, meta: dict[str, Any], code: str, **extra: str) -> httpx.Response:
        """The code grant with this client's verifier and the registered redirect URI."""
        return await self.token(
            meta,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=self.verifier,
            **extra,
        )

    def _rpc(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        return message

    async def mcp(
        self, token: str, method: str, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
        if self.session is not None:
            headers["mcp-session-id"] = self.session
        return await self.http.post("/mcp", headers=headers, json=self._rpc(method, params))

    async def open_session(self, token: str) -> None:
        answer = await self.mcp(
            token,
            "initialize",
            {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "e2e", "version": "1"},
            },
        )
        assert answer.status_code == 200, answer.text
        self.session = answer.headers["mcp-session-id"]
        headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
        headers["mcp-session-id"] = self.session
        done = await self.http.post(
            "/mcp",
            headers=headers,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        assert done.status_code == 202

    async def add(self, token: str, a: int, b: int) -> httpx.Response:
        return await self.mcp(token, "tools/call", {"name": "add", "arguments": {"a": a, "b": b}})


def _sum_of(answer: httpx.Response) -> int:
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result.get("isError") is not True, result
    return int(result["content"][0]["text"])


@pytest.fixture(params=BACKENDS)
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ClientStore, GrantStore]]:
    async with AsyncExitStack() as stack:
        yield await open_backend(request.param, tmp_path, stack)


@pytest.fixture
async def harness(
    stores: tuple[ClientStore, GrantStore],
) -> AsyncIterator[tuple[Client, Clock, Callable[[], AuthorizationServer]]]:
    clients, grants = stores
    clock = Clock()
    authorization = AuthorizationServer(
        ISSUER,
        clients=clients,
        grants=grants,
        keys=InMemoryKeySet(clock=clock),
        clock=clock,
        random=SystemRandom(),
        resources={RESOURCE},
        scopes_supported=("tools", "admin"),
        access_ttl=600.0,
    )
    app = create_secured_app(
        build_server(),
        resource=RESOURCE,
        authorization=authorization,
        scopes_supported=("tools", "admin"),
        clock=clock,
        response_mode="json",
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield Client(http), clock, lambda: authorization


async def test_register_authorize_call_refresh_and_revoke(
    harness: tuple[Client, Clock, Callable[[], AuthorizationServer]],
) -> None:
    client, clock, _ = harness
    meta = await client.discover()
    await client.register(meta)
    code = await client.authorize(meta, scope="tools")
    exchanged = await client.exchange(meta, code, resource=RESOURCE)
    assert exchanged.status_code == 200, exchanged.text
    tokens = exchanged.json()
    assert tokens["token_type"] == "Bearer"
    access, refresh = tokens["access_token"], tokens["refresh_token"]

    await client.open_session(access)
    assert _sum_of(await client.add(access, 2, 3)) == 5

    # The code is single use: a replay is refused and revokes everything issued from it.
    replay = await client.exchange(meta, code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    refused = await client.add(access, 1, 1)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]

    # A fresh authorization, then refresh with rotation.
    client.session = None
    code = await client.authorize(meta, scope="tools")
    tokens = (await client.exchange(meta, code)).json()
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    await client.open_session(access)
    clock.t += 30
    rotated = await client.token(meta, grant_type="refresh_token", refresh_token=refresh)
    assert rotated.status_code == 200, rotated.text
    new_access, new_refresh = rotated.json()["access_token"], rotated.json()["refresh_token"]
    assert new_refresh != refresh
    assert _sum_of(await client.add(new_access, 20, 22)) == 42

    # RFC 7009: revoking the live refresh token ends the family, and the deny-list refuses
    # its access tokens at once, long before they expire.
    revoked = await client.http.post(
        meta["revocation_endpoint"],
        data={"client_id": client.client_id, "token": new_refresh},
    )
    assert revoked.status_code == 200
    for token in (access, new_access):
        answer = await client.add(token, 1, 2)
        assert answer.status_code == 401
    again = await client.token(meta, grant_type="refresh_token", refresh_token=new_refresh)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_reused_refresh_token_revokes_the_family(
    harness: tuple[Client, Clock, Callable[[], AuthorizationServer]],
) -> None:
    client, _, _ = harness
    meta = await client.discover()
    await client.register(meta)
    code = await client.authorize(meta)
    first = (await client.exchange(meta, code)).json()
    second = (
        await client.token(meta, grant_type="refresh_token", refresh_token=first["refresh_token"])
    ).json()
    await client.open_session(second["access_token"])
    assert _sum_of(await client.add(second["access_token"], 1, 2)) == 3
    # The old refresh token again: reuse, so the family (and its live access token) dies.
    reuse = await client.token(
        meta, grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert reuse.status_code == 400
    assert (await client.add(second["access_token"], 1, 2)).status_code == 401
    stale = await client.token(
        meta, grant_type="refresh_token", refresh_token=second["refresh_token"]
    )
    assert stale.status_code == 400


async def test_access_token_revoked_alone_and_scope_step_up(
    harness: tuple[Client, Clock, Callable[[], AuthorizationServer]],
) -> None:
    client, clock, _ = harness
    meta = await client.discover()
    await client.register(meta)
    code = await client.authorize(meta, scope="tools")
    tokens = (await client.exchange(meta, code)).json()
    access = tokens["access_token"]
    await client.open_session(access)
    # A tool that needs a scope the token lacks: 403 with the scope to step up to.
    denied = await client.mcp(access, "tools/call", {"name": "reset", "arguments": {}})
    assert denied.status_code == 403
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert 'scope="admin"' in denied.headers["www-authenticate"]
    # Revoking just the access token (RFC 7009) leaves the refresh token usable.
    revoked = await client.http.post(
        meta["revocation_endpoint"],
        data={
            "client_id": client.client_id,
            "token": access,
            "token_type_hint": "access_token",
        },
    )
    assert revoked.status_code == 200
    assert (await client.add(access, 1, 1)).status_code == 401
    fresh = await client.token(
        meta, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert fresh.status_code == 200
    client.session = None
    await client.open_session(fresh.json()["access_token"])
    assert _sum_of(await client.add(fresh.json()["access_token"], 4, 4)) == 8
    # An expired access token is refused.
    clock.t += 601
    assert (await client.add(fresh.json()["access_token"], 1, 1)).status_code == 401


async def test_token_for_another_resource_is_refused(
    harness: tuple[Client, Clock, Callable[[], AuthorizationServer]],
) -> None:
    client, _, get_as = harness
    authorization = get_as()
    other = authorization.keys.sign(
        {
            "iss": ISSUER,
            "sub": "local",
            "aud": "http://127.0.0.1:9000/other",
            "client_id": "x",
            "iat": 1_800_000_000,
            "exp": 1_800_000_600,
            "jti": "solo",
        },
        headers={"typ": "at+jwt"},
    )
    answer = await client.add(other, 1, 1)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_the_token_endpoint_purges_what_can_no_longer_matter(
    harness: tuple[Client, Clock, Callable[[], AuthorizationServer]],
) -> None:
    client, clock, get_as = harness
    authorization = get_as()
    meta = await client.discover()
    await client.register(meta)
    code = await client.authorize(meta)
    tokens = (await client.exchange(meta, code)).json()
    family_id = tokens["refresh_token"].split(".", 1)[0]
    assert await authorization.grants.family(family_id) is not None
    # Past the refresh lifetime and the purge interval, any token request sweeps the family.
    clock.t += authorization.refresh_ttl + authorization.purge_interval + 1
    stale = await client.token(
        meta, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert stale.status_code == 400
    assert await authorization.grants.family(family_id) is None
    swept = await authorization.grants.peek_code(hashlib.sha256(code.encode()).hexdigest(), clock.t)
    assert isinstance(swept, CodeOutcome)
    assert swept.status is CodeStatus.UNKNOWN  # the spent, long-expired code went too
