"""Edges of the authorization server that a review turned up, each pinned by a test:
RFC 7009's hint only orders the search; a purge never brings a revoked family's access tokens
back; a store outage is a 503 that says to retry, never a bare 500; `redirect_uri` may be left
out of both requests by a client with one registered redirect URI (RFC 6749 4.1.3)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.adapters.system import SystemRandom
from mcp_core.core.services.authorization_server import AuthorizationServer
from mcp_core.core.services.server import McpServer
from mcp_core.ports.oauth_stores import CodeOutcome, CodeRecord, StoreUnavailable

from .test_oauth_end_to_end import Clock
from .test_oauth_hostile_cases import ISSUER, REDIRECT, RESOURCE, World

pytestmark = pytest.mark.anyio


class FlakyGrants(InMemoryGrantStore):
    down = False

    async def peek_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        if self.down:
            raise StoreUnavailable("the grant store is down")
        return await super().peek_code(code_hash, now)


def _world(**options: Any) -> tuple[World, Clock, FlakyGrants, httpx.AsyncClient]:
    server = McpServer("edges")

    @server.tool()
    def echo(text: str) -> str:
        return text

    clock = Clock()
    keys = InMemoryKeySet(clock=clock)
    clients, grants = InMemoryClientStore(), FlakyGrants()
    authorization = AuthorizationServer(
        ISSUER,
        clients=clients,
        grants=grants,
        keys=keys,
        clock=clock,
        random=SystemRandom(),
        resources={RESOURCE},
        **options,
    )
    app = create_secured_app(
        server, resource=RESOURCE, authorization=authorization, clock=clock, response_mode="json"
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    return World(http=http, keys=keys, clients=clients), clock, grants, http


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", None])
async def test_revocation_finds_the_token_whatever_the_hint(hint: str | None) -> None:
    world, _, _, http = _world()
    async with http:
        client_id = await world.register()
        tokens = await world.tokens(client_id)
        form = {"client_id": client_id, "token": tokens["refresh_token"]}
        if hint is not None:
            form["token_type_hint"] = hint
        assert (await http.post("/revoke", data=form)).status_code == 200
        assert (await world.refresh(client_id, tokens["refresh_token"])).status_code == 400
        # And an access token revoked under the other hint.
        second = await world.tokens(client_id)
        form = {"client_id": client_id, "token": second["access_token"]}
        form["token_type_hint"] = "refresh_token"
        assert (await http.post("/revoke", data=form)).status_code == 200
        assert (await world.mcp(second["access_token"])).status_code == 401


async def test_a_purge_never_revives_a_revoked_familys_access_tokens() -> None:
    # Refresh tokens idle out before access tokens expire: the purge must wait for the later.
    world, clock, _, http = _world(refresh_ttl=600.0, access_ttl=3600.0, purge_interval=60.0)
    async with http:
        client_id = await world.register()
        tokens = await world.tokens(client_id)
        revoke = {"client_id": client_id, "token": tokens["refresh_token"]}
        assert (await http.post("/revoke", data=revoke)).status_code == 200
        assert (await world.mcp(tokens["access_token"])).status_code == 401
        clock.t += 1800  # past refresh_ttl and the purge interval, before the token's exp
        await world.tokens(client_id)  # any token request runs the purge
        assert (await world.mcp(tokens["access_token"])).status_code == 401


async def test_a_store_outage_is_a_503_with_retry_after_never_a_500() -> None:
    world, _, grants, http = _world()
    async with http:
        client_id = await world.register()
        code, _ = await world.code(client_id)
        grants.down = True
        answer = await world.exchange(client_id, code)
        assert answer.status_code == 503
        assert answer.json()["error"] == "temporarily_unavailable"
        assert answer.headers["retry-after"] == "5"
        assert answer.headers["cache-control"] == "no-store"
        grants.down = False
        # Nothing was spent: the code still redeems once the store is back.
        assert (await world.exchange(client_id, code)).status_code == 200


async def test_redirect_uri_may_be_left_out_by_a_client_with_one_registered() -> None:
    world, _, _, http = _world()
    async with http:
        client_id = await world.register()  # one redirect URI registered
        answer = await world.authorize(client_id, redirect_uri=None)
        assert answer.status_code == 302
        assert answer.headers["location"].startswith(REDIRECT + "?code=")
        code = answer.headers["location"].split("code=", 1)[1].split("&", 1)[0]
        assert (await world.exchange(client_id, code, redirect_uri=None)).status_code == 200
        # A different one at /token is still refused.
        code, _ = await world.code(client_id)
        wrong = await world.exchange(client_id, code, redirect_uri="http://127.0.0.1:1/other")
        assert wrong.status_code == 400
