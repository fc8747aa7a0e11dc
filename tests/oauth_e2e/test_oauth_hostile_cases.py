"""The hostile-input cases of issue 4, one by one, against a secured app over HTTP: each is
refused, and each leaves the state as it was, shown by the legitimate request that follows it
and succeeds. The two cases whose answer is meant to change state (a replayed code, a reused
refresh token) show that change instead: the whole family is revoked.

Cases: redirect URI tricks, PKCE downgrade, bindings of a code (verifier, client, redirect URI,
resource), code replay, refresh reuse, a refresh token from another client, `alg: none`, HS/RS
(HS/EdDSA) confusion, a wrong `aud`, oversized tokens, and client ID metadata documents
pointing at loopback or private addresses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest

from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.http_client import HttpxClient
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core.services.authorization_server import AuthorizationServer
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:9000"
RESOURCE = f"{ISSUER}/mcp"
REDIRECT = "http://127.0.0.1:43123/callback"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@attrs.define
class World:
    http: httpx.AsyncClient
    keys: InMemoryKeySet
    clients: InMemoryClientStore

    async def register(self) -> str:
        answer = await self.http.post(
            "/register",
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            },
        )
        assert answer.status_code == 201, answer.text
        client_id: str = answer.json()["client_id"]
        return client_id

    async def authorize(self, client_id: str, **overrides: str | None) -> httpx.Response:
        verifier = "v" * 43
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "state": "st",
            "resource": RESOURCE,
        }
        params.update(overrides)
        sent = {k: v for k, v in params.items() if v is not None}
        return await self.http.get("/authorize", params=sent)

    async def code(self, client_id: str) -> tuple[str, str]:
        answer = await self.authorize(client_id)
        assert answer.status_code == 302, answer.text
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        return query["code"][0], "v" * 43

    async def exchange(
        self, client_id: str, code: str, /, **overrides: str | None
    ) -> httpx.Response:
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": "v" * 43,
            "resource": RESOURCE,
        }
        form.update(overrides)
        return await self.http.post("/token", data={k: v for k, v in form.items() if v})

    async def refresh(self, client_id: str, token: str) -> httpx.Response:
        return await self.http.post(
            "/token",
            data={"grant_type": "refresh_token", "client_id": client_id, "refresh_token": token},
        )

    async def tokens(self, client_id: str) -> dict[str, Any]:
        code, _ = await self.code(client_id)
        answer = await self.exchange(client_id, code)
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens

    async def mcp(self, token: str | bytes) -> httpx.Response:
        headers: dict[str, str | bytes] = {**HEADERS}
        headers["authorization"] = (
            b"Bearer " + token if isinstance(token, bytes) else f"Bearer {token}"
        )
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        return await self.http.post("/mcp", json=body, headers=headers)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    server = McpServer("hostile-cases")

    @server.tool()
    def echo(text: str) -> str:
        return text

    clock = SystemClock()
    keys = InMemoryKeySet(clock=clock)
    clients = InMemoryClientStore()
    authorization = AuthorizationServer(
        ISSUER,
        clients=clients,
        grants=InMemoryGrantStore(),
        keys=keys,
        clock=clock,
        random=SystemRandom(),
        resources={RESOURCE},
        http=HttpxClient(),  # the default SSRF policy: public https targets only
    )
    app = create_secured_app(
        server, resource=RESOURCE, authorization=authorization, response_mode="json"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        yield World(http=http, keys=keys, clients=clients)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "http://127.0.0.1:43123/callback/extra",
        "http://127.0.0.1:43123/callback?next=https://evil.example",
        "http://127.0.0.1:43123/callback#x",
        "http://localhost:43123/callback",
        "https://127.0.0.1:43123/callback",
        "http://127.0.0.1:43123/CALLBACK",
        "javascript:alert(1)",
        "//evil.example/callback",
    ],
)
async def test_redirect_uri_tricks_are_never_followed(world: World, redirect_uri: str) -> None:
    client_id = await world.register()
    answer = await world.authorize(client_id, redirect_uri=redirect_uri)
    assert answer.status_code == 400
    assert "location" not in answer.headers  # the server's own error page, no redirect
    # Nothing changed: the registered redirect still works (a loopback port may vary).
    ok = await world.authorize(client_id, redirect_uri="http://127.0.0.1:5555/callback")
    assert ok.status_code == 302
    assert ok.headers["location"].startswith("http://127.0.0.1:5555/callback?code=")


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge_method": "plain", "code_challenge": "v" * 43},
        {"code_challenge_method": None},
        {"code_challenge": None},
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge": "short"},
        {"resource": None},
        {"resource": "https://other.example/mcp"},
    ],
)
async def test_pkce_downgrade_and_missing_resource_get_no_code(
    world: World, overrides: dict[str, str | None]
) -> None:
    client_id = await world.register()
    answer = await world.authorize(client_id, **overrides)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert "code" not in query
    assert query["error"][0] in {"invalid_request", "invalid_target"}
    assert query["state"] == ["st"]
    assert query["iss"] == [ISSUER]


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_verifier": "w" * 43},
        {"code_verifier": None},
        {"code_verifier": "v" * 42},
        {"redirect_uri": "http://127.0.0.1:43123/other"},
        {"resource": "http://127.0.0.1:9000/other"},
        {"code": "not-the-code"},
    ],
)
async def test_a_code_with_a_broken_binding_is_refused_and_stays_redeemable(
    world: World, overrides: dict[str, str | None]
) -> None:
    client_id = await world.register()
    code, _ = await world.code(client_id)
    refused = await world.exchange(client_id, code, **overrides)
    assert refused.status_code == 400
    assert refused.json()["error"] in {"invalid_grant", "invalid_request", "invalid_target"}
    assert "access_token" not in refused.json()
    # State unchanged: the rightful request still redeems the code.
    ok = await world.exchange(client_id, code)
    assert ok.status_code == 200, ok.text


async def test_a_code_presented_by_another_client_is_refused_and_stays_redeemable(
    world: World,
) -> None:
    owner, thief = await world.register(), await world.register()
    code, _ = await world.code(owner)
    refused = await world.exchange(thief, code)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert (await world.exchange(owner, code)).status_code == 200


async def test_code_replay_is_refused_and_revokes_what_the_code_gave(world: World) -> None:
    client_id = await world.register()
    code, _ = await world.code(client_id)
    first = await world.exchange(client_id, code)
    assert first.status_code == 200
    assert (await world.mcp(first.json()["access_token"])).status_code == 200
    replay = await world.exchange(client_id, code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert (await world.mcp(first.json()["access_token"])).status_code == 401
    assert (await world.refresh(client_id, first.json()["refresh_token"])).status_code == 400


async def test_refresh_reuse_revokes_the_family(world: World) -> None:
    client_id = await world.register()
    tokens = await world.tokens(client_id)
    rotated = await world.refresh(client_id, tokens["refresh_token"])
    assert rotated.status_code == 200
    reuse = await world.refresh(client_id, tokens["refresh_token"])
    assert reuse.status_code == 400
    assert (await world.refresh(client_id, rotated.json()["refresh_token"])).status_code == 400
    assert (await world.mcp(rotated.json()["access_token"])).status_code == 401


async def test_refresh_by_another_client_or_a_forged_token_changes_nothing(world: World) -> None:
    owner, thief = await world.register(), await world.register()
    tokens = await world.tokens(owner)
    family = tokens["refresh_token"].split(".", 1)[0]
    for client_id, token in (
        (thief, tokens["refresh_token"]),  # stolen, presented by another client
        (owner, f"{family}.{secrets.token_urlsafe(32)}"),  # forged from a known family id
        (owner, "x" * 600),
    ):
        refused = await world.refresh(client_id, token)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
    # The family is intact: its live refresh token rotates, its access token works.
    assert (await world.mcp(tokens["access_token"])).status_code == 200
    assert (await world.refresh(owner, tokens["refresh_token"])).status_code == 200


def _forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


async def test_forged_and_misdirected_tokens_are_refused(world: World) -> None:
    client_id = await world.register()
    good = await world.tokens(client_id)
    claims = json.loads(base64.urlsafe_b64decode(good["access_token"].split(".")[1] + "=="))
    kid = world.keys.current().kid
    public_jwk = world.keys.jwks()["keys"][0]
    hs_secret = json.dumps(public_jwk).encode()
    hs_head = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
    unsigned = _forged(hs_head, claims)
    signing_input = unsigned.rsplit(".", 1)[0].encode()
    confused = _forged(hs_head, claims, hmac.new(hs_secret, signing_input, "sha256").digest())
    other_audience = world.keys.sign(
        {**claims, "aud": "http://127.0.0.1:9000/other"}, headers={"typ": "at+jwt"}
    )
    for token in (
        _forged({"alg": "none", "typ": "at+jwt"}, claims),  # alg: none
        _forged({"alg": "none", "typ": "at+jwt", "kid": kid}, claims),
        confused,  # HS256 keyed with the public key (algorithm confusion)
        other_audience,  # a token for another resource
        good["access_token"][:-4] + "AAAA",  # a broken signature
    ):
        answer = await world.mcp(token)
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    oversized = await world.mcp(b"a" * 9000)
    assert oversized.status_code == 401
    # Nothing changed: the real token still works.
    assert (await world.mcp(good["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "client_id",
    [
        "https://127.0.0.1/client.json",
        "https://10.0.0.5/client.json",
        "https://192.168.1.2/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/client.json",
        "https://localhost/client.json",
    ],
)
async def test_client_metadata_documents_at_private_addresses_are_refused(
    world: World, client_id: str
) -> None:
    answer = await world.authorize(client_id)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert await world.clients.get(client_id) is None  # nothing cached or registered
