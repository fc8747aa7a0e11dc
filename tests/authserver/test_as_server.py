"""The built-in authorization server end to end over ASGI (issue 4): the happy path and the
hostile cases, in process through `httpx.ASGITransport`."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest

from mcp_core.adapters.asgi.authorization import AuthorizationApp
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.core.services.authorization_server import (
    AuthorizationServer,
    ConsentRequest,
    LocalUserAuthenticator,
    StaticClient,
)
from mcp_core.ports.keys import TokenRejected

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:9000"
RESOURCE = "http://127.0.0.1:9000/mcp"
REDIRECT = "http://127.0.0.1:7777/callback"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


class OsRandom:
    def token(self, nbytes: int) -> bytes:
        return os.urandom(nbytes)


@attrs.define
class Harness:
    http: httpx.AsyncClient
    server: AuthorizationServer
    keys: InMemoryKeySet
    grants: InMemoryGrantStore
    clock: FakeClock


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock = FakeClock()
    keys = InMemoryKeySet(clock=clock)
    grants = InMemoryGrantStore()
    server = AuthorizationServer(
        ISSUER,
        clients=InMemoryClientStore(),
        grants=grants,
        keys=keys,
        clock=clock,
        random=OsRandom(),
        static_clients=[
            StaticClient(
                client_id="svc",
                metadata={"grant_types": ["client_credentials"], "scope": "read write"},
                secret="svc-secret",
            )
        ],
    )
    app = AuthorizationApp(server, authenticator=LocalUserAuthenticator(subject="alice"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield Harness(http=http, server=server, keys=keys, grants=grants, clock=clock)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def register(h: Harness, **extra: Any) -> dict[str, Any]:
    body = {
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Test client",
        **extra,
    }
    response = await h.http.post("/register", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


async def authorize(
    h: Harness, client_id: str, challenge: str, **overrides: str | None
) -> httpx.Response:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-123",
        "resource": RESOURCE,
        "scope": "",
    }
    params.update(overrides)
    sent = {k: v for k, v in params.items() if v is not None}
    return await h.http.get("/authorize", params=sent)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def get_code(h: Harness, client_id: str) -> tuple[str, str]:
    verifier, challenge = pkce()
    params = redirect_params(await authorize(h, client_id, challenge))
    assert params["state"] == "st-123"
    assert params["iss"] == ISSUER
    return params["code"], verifier


async def exchange(
    h: Harness, client_id: str, code: str, verifier: str, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": client_id,
        "resource": RESOURCE,
        **extra,
    }
    return await h.http.post("/token", data=form)


async def refresh(h: Harness, client_id: str, token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    return await h.http.post("/token", data=form)


def assert_no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


# ---- happy path ---------------------------------------------------------------------------


async def test_metadata_and_jwks_are_published(harness: Harness) -> None:
    for path in ("/.well-known/oauth-authorization-server",):
        document = (await harness.http.get(path)).json()
        assert document["issuer"] == ISSUER
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert document["authorization_response_iss_parameter_supported"] is True
        assert document["token_endpoint"] == f"{ISSUER}/token"
    jwks = (await harness.http.get("/jwks")).json()
    assert jwks["keys"][0]["kid"] == harness.keys.current().kid


async def test_full_flow_register_authorize_exchange_refresh_revoke(harness: Harness) -> None:
    h = harness
    client_id = (await register(h))["client_id"]
    code, verifier = await get_code(h, client_id)

    response = await exchange(h, client_id, code, verifier)
    assert response.status_code == 200, response.text
    assert_no_store(response)
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    claims = h.keys.verify(tokens["access_token"], audience=RESOURCE, issuer=ISSUER)
    assert claims["sub"] == "alice"
    assert claims["client_id"] == client_id
    assert claims["aud"] == RESOURCE
    with pytest.raises(TokenRejected):
        h.keys.verify(tokens["access_token"], audience="https://other.example", issuer=ISSUER)

    rotated = await refresh(h, client_id, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert_no_store(rotated)
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    h.keys.verify(new["access_token"], audience=RESOURCE, issuer=ISSUER)

    revoked = await h.http.post(
        "/revoke", data={"token": new["refresh_token"], "client_id": client_id}
    )
    assert revoked.status_code == 200
    after = await refresh(h, client_id, new["refresh_token"])
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"


async def test_access_token_revocation_records_the_jti(harness: Harness) -> None:
    h = harness
    client_id = (await register(h))["client_id"]
    code, verifier = await get_code(h, client_id)
    access = (await exchange(h, client_id, code, verifier)).json()["access_token"]
    jti = h.keys.verify(access, audience=RESOURCE, issuer=ISSUER)["jti"]
    response = await h.http.post("/revoke", data={"token": access, "client_id": client_id})
    assert response.status_code == 200
    assert await h.grants.is_access_revoked(jti, h.clock.wall())


async def test_revoking_an_unknown_token_answers_200(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    response = await harness.http.post(
        "/revoke", data={"token": "nonsense.token", "client_id": client_id}
    )
    assert response.status_code == 200


async def test_confidential_client_basic_and_post_authentication(harness: Harness) -> None:
    h = harness
    reg = await register(h, token_endpoint_auth_method="client_secret_basic")
    code, verifier = await get_code(h, reg["client_id"])
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    wrong = await h.http.post("/token", data=form, auth=(reg["client_id"], "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert_no_store(wrong)
    # The failed authentication did not touch the code.
    right = await h.http.post("/token", data=form, auth=(reg["client_id"], reg["client_secret"]))
    assert right.status_code == 200, right.text

    post = await register(h, token_endpoint_auth_method="client_secret_post")
    code, verifier = await get_code(h, post["client_id"])
    response = await exchange(
        h, post["client_id"], code, verifier, client_secret=post["client_secret"]
    )
    assert response.status_code == 200, response.text


async def test_client_credentials_for_a_confidential_client(harness: Harness) -> None:
    form = {"grant_type": "client_credentials", "resource": RESOURCE, "scope": "read"}
    response = await harness.http.post("/token", data=form, auth=("svc", "svc-secret"))
    assert response.status_code == 200, response.text
    assert_no_store(response)
    body = response.json()
    assert "refresh_token" not in body
    claims = harness.keys.verify(body["access_token"], audience=RESOURCE, issuer=ISSUER)
    assert claims["sub"] == "svc"
    assert claims["scope"] == "read"


async def test_consent_page_then_approval(harness: Harness) -> None:
    h = harness
    asked: list[ConsentRequest] = []

    async def ask(request: ConsentRequest) -> str:
        asked.append(request)
        return "ask"

    h.server.consent = ask  # type: ignore[assignment]
    client_id = (await register(h))["client_id"]
    verifier, challenge = pkce()
    page = await authorize(h, client_id, challenge)
    assert page.status_code == 200
    assert "Test client" in page.text
    assert_no_store(page)
    ticket = page.text.split('name=consent_ticket value="')[1].split('"')[0]
    decided = await h.http.post(
        "/authorize",
        data={"consent_ticket": ticket, "decision": "approve"},
        headers={"origin": "null"},
    )
    params = redirect_params(decided)
    assert params["iss"] == ISSUER
    assert asked[0].resource == RESOURCE
    assert (await exchange(h, client_id, params["code"], verifier)).status_code == 200
    # The ticket is single use.
    again = await h.http.post("/authorize", data={"consent_ticket": ticket, "decision": "approve"})
    assert again.status_code == 400


# ---- hostile cases ------------------------------------------------------------------------


async def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    harness: Harness,
) -> None:
    client_id = (await register(harness))["client_id"]
    _, challenge = pkce()
    for uri in (
        "https://evil.example/callback",
        REDIRECT + "/extra",
        REDIRECT + "?x=1",
        "http://127.0.0.1:7777/Callback",
    ):
        response = await authorize(harness, client_id, challenge, redirect_uri=uri)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")


async def test_unknown_client_gets_an_error_page(harness: Harness) -> None:
    _, challenge = pkce()
    response = await authorize(harness, "nobody", challenge)
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_loopback_redirect_may_vary_in_port_only(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    _, challenge = pkce()
    response = await authorize(
        harness, client_id, challenge, redirect_uri="http://127.0.0.1:5555/callback"
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith("http://127.0.0.1:5555/callback?code=")


async def test_plain_pkce_is_refused(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    verifier, _ = pkce()
    response = await authorize(harness, client_id, verifier[:43], code_challenge_method="plain")
    params = redirect_params(response)
    assert params["error"] == "invalid_request"
    assert params["state"] == "st-123"
    assert params["iss"] == ISSUER
    assert "code" not in params


async def test_missing_code_challenge_is_refused(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    response = await authorize(harness, client_id, "x", code_challenge=None)
    params = redirect_params(response)
    assert params["error"] == "invalid_request"
    assert "code" not in params


async def test_missing_resource_is_refused(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    _, challenge = pkce()
    params = redirect_params(await authorize(harness, client_id, challenge, resource=None))
    assert params["error"] == "invalid_request"
    assert "code" not in params


async def test_wrong_verifier_is_refused(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    code, _ = await get_code(harness, client_id)
    other, _ = pkce()
    response = await exchange(harness, client_id, code, other)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert_no_store(response)


async def test_code_replay_fails_and_revokes_the_first_tokens(harness: Harness) -> None:
    h = harness
    client_id = (await register(h))["client_id"]
    code, verifier = await get_code(h, client_id)
    first = await exchange(h, client_id, code, verifier)
    assert first.status_code == 200
    second = await exchange(h, client_id, code, verifier)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert_no_store(second)
    after = await refresh(h, client_id, first.json()["refresh_token"])
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"


async def test_old_refresh_token_reuse_revokes_the_family(harness: Harness) -> None:
    h = harness
    client_id = (await register(h))["client_id"]
    code, verifier = await get_code(h, client_id)
    old = (await exchange(h, client_id, code, verifier)).json()["refresh_token"]
    new = (await refresh(h, client_id, old)).json()["refresh_token"]
    reuse = await refresh(h, client_id, old)
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # The current token died with the family.
    assert (await refresh(h, client_id, new)).status_code == 400


async def test_another_client_cannot_redeem_a_code(harness: Harness) -> None:
    h = harness
    victim = (await register(h))["client_id"]
    thief = (await register(h))["client_id"]
    code, verifier = await get_code(h, victim)
    stolen = await exchange(h, thief, code, verifier)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert "access_token" not in stolen.json()


async def test_another_client_cannot_use_a_refresh_token(harness: Harness) -> None:
    h = harness
    victim = (await register(h))["client_id"]
    thief = (await register(h))["client_id"]
    code, verifier = await get_code(h, victim)
    token = (await exchange(h, victim, code, verifier)).json()["refresh_token"]
    assert (await refresh(h, thief, token)).status_code == 400
    # Refused without advancing the family: the victim's token still rotates.
    assert (await refresh(h, victim, token)).status_code == 200


async def test_redirect_uri_must_match_at_the_token_endpoint(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    code, verifier = await get_code(harness, client_id)
    response = await exchange(
        harness, client_id, code, verifier, redirect_uri="http://127.0.0.1:7777/other"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_resource_must_match_at_the_token_endpoint(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    code, verifier = await get_code(harness, client_id)
    response = await exchange(
        harness, client_id, code, verifier, resource="https://other.example/mcp"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def test_expired_code_is_refused(harness: Harness) -> None:
    client_id = (await register(harness))["client_id"]
    code, verifier = await get_code(harness, client_id)
    harness.clock.t += 601
    response = await exchange(harness, client_id, code, verifier)
    assert response.json()["error"] == "invalid_grant"


async def test_hostile_registration_is_refused(harness: Harness) -> None:
    for body in (
        {"redirect_uris": ["https://evil.example/cb#frag"]},
        {"redirect_uris": ["javascript:alert(1)"]},
        {"redirect_uris": ["http://evil.example/cb"]},
        {"redirect_uris": ["https://*.example/cb"]},
        {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "magic"},
    ):
        response = await harness.http.post("/register", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] in {"invalid_redirect_uri", "invalid_client_metadata"}
    too_big = await harness.http.post("/register", content=b"{" + b" " * 20_000 + b"}")
    assert too_big.status_code == 413


async def test_every_token_response_is_no_store(harness: Harness) -> None:
    h = harness
    client_id = (await register(h))["client_id"]
    responses = [
        await h.http.post("/token", data={"grant_type": "password", "client_id": client_id}),
        await h.http.post("/token", data={"client_id": client_id}),
        await h.http.post("/token", data={"grant_type": "authorization_code"}),
        await h.http.post("/token", data={"grant_type": "refresh_token", "client_id": client_id}),
        await h.http.post(
            "/token",
            content=b"grant_type=a&grant_type=b",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
    ]
    for response in responses:
        assert response.status_code in {400, 401}, response.text
        assert_no_store(response)
        assert "error" in response.json()


async def test_foreign_host_and_origin_are_refused(harness: Harness) -> None:
    bad_host = await harness.http.get("/jwks", headers={"host": "evil.example"})
    assert bad_host.status_code == 421
    bad_origin = await harness.http.post(
        "/token", data={"grant_type": "x"}, headers={"origin": "https://evil.example"}
    )
    assert bad_origin.status_code == 403


def test_code_ttl_is_capped_at_ten_minutes() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="code_ttl"):
        AuthorizationServer(
            ISSUER,
            clients=InMemoryClientStore(),
            grants=InMemoryGrantStore(),
            keys=InMemoryKeySet(clock=clock),
            clock=clock,
            random=OsRandom(),
            code_ttl=601,
        )


async def test_issuer_with_a_path_serves_the_path_insertion_variant() -> None:
    clock = FakeClock()
    issuer = "http://127.0.0.1:9000/as"
    server = AuthorizationServer(
        issuer,
        clients=InMemoryClientStore(),
        grants=InMemoryGrantStore(),
        keys=InMemoryKeySet(clock=clock),
        clock=clock,
        random=OsRandom(),
    )
    app = AuthorizationApp(server, authenticator=LocalUserAuthenticator())
    assert "/.well-known/oauth-authorization-server/as" in app.paths
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        document = (await http.get("/.well-known/oauth-authorization-server/as")).json()
        assert document["issuer"] == issuer
        assert document["token_endpoint"] == f"{issuer}/token"
        assert (await http.get("/as/jwks")).status_code == 200
        assert (await http.get("/jwks")).status_code == 404


async def test_revoking_needs_the_live_refresh_token_of_ones_own_family(harness: Harness) -> None:
    h = harness
    owner = (await register(h))["client_id"]
    other = (await register(h))["client_id"]
    code, verifier = await get_code(h, owner)
    token = (await exchange(h, owner, code, verifier)).json()["refresh_token"]
    family_id = token.partition(".")[0]
    for client_id, presented in ((other, token), (owner, f"{family_id}.guessed")):
        response = await h.http.post("/revoke", data={"token": presented, "client_id": client_id})
        assert response.status_code == 200
    assert not await h.grants.is_revoked(family_id)
    assert (await refresh(h, owner, token)).status_code == 200
