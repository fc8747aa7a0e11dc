"""`OAuthClient`: the code-exchange machine driven against a fake authorization server.

Each test runs the service over `FakeAuthorizationServer` (an `HttpRequester`) with the
`HeadlessRedirectReceiver`, so every byte the flow sends is what a real server would get:
PKCE is verified, codes are single-use, refresh tokens rotate, clients authenticate.
"""

from __future__ import annotations

import base64
import time
from urllib.parse import unquote

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcp_core.adapters.oauth_client import PemAssertionSigner
from mcp_core.adapters.oauth_client_receivers import HeadlessRedirectReceiver
from mcp_core.adapters.oauth_client_storage import InMemoryTokenStorage
from mcp_core.core.machines.oauth_exchange import (
    OAuthClientConfig,
    OAuthExchangeState,
    PreRegisteredClient,
)
from mcp_core.core.services.oauth_client import (
    EXPIRY_SKEW,
    OAuthClient,
    OAuthFlowError,
    progress_from_json,
    progress_to_json,
)

from .oauth_fakes import (
    ISSUER,
    MCP_URL,
    REDIRECT_URI,
    CountingRandom,
    FakeAuthorizationServer,
    FakeClock,
)

pytestmark = pytest.mark.anyio

CHALLENGE = (
    'Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp"'
)


def make_client(
    server: FakeAuthorizationServer,
    *,
    storage: InMemoryTokenStorage | None = None,
    clock: FakeClock | None = None,
    **config: object,
) -> OAuthClient:
    receiver = HeadlessRedirectReceiver(server, redirect_uri=REDIRECT_URI)
    return OAuthClient(
        OAuthClientConfig(server_url=MCP_URL, redirect_uri=REDIRECT_URI, **config),  # type: ignore[arg-type]
        http=server,
        clock=clock or FakeClock(),
        random=CountingRandom(),
        receiver=receiver,
        storage=storage,
    )


async def test_a_401_runs_discovery_registration_pkce_and_the_exchange() -> None:
    server = FakeAuthorizationServer()
    storage = InMemoryTokenStorage()
    oauth = make_client(server, storage=storage)
    assert await oauth.authorization() is None  # nothing before the first 401

    assert await oauth.unauthorized(CHALLENGE + ', scope="read write"', None)

    assert oauth.state is OAuthExchangeState.AUTHORIZED
    assert await oauth.authorization() == f"Bearer {server.access_tokens[-1]}"
    [registration] = server.registrations
    assert registration["redirect_uris"] == [REDIRECT_URI]
    assert registration["token_endpoint_auth_method"] == "none"
    [asked] = server.authorizations
    assert asked["code_challenge_method"] == "S256"
    assert asked["resource"] == MCP_URL
    assert asked["scope"] == "read write"  # the challenge's scope wins (MCP scope selection)
    assert asked["client_id"] == "dyn-1"
    form, _ = server.token_requests[-1]
    assert form["grant_type"] == "authorization_code"
    assert form["resource"] == MCP_URL
    # Stored by issuer, the machine's data with it.
    grant = await storage.load(ISSUER, MCP_URL)
    assert grant is not None
    assert grant.progress["tokens"]["access_token"] == server.access_tokens[-1]


async def test_a_stored_grant_is_used_after_a_restart_without_any_request() -> None:
    server = FakeAuthorizationServer()
    storage = InMemoryTokenStorage()
    first = make_client(server, storage=storage)
    await first.authorize(CHALLENGE)
    seen = len(server.requests)

    second = make_client(server, storage=storage)
    assert await second.authorization() == f"Bearer {server.access_tokens[-1]}"
    assert len(server.requests) == seen
    assert second.exchange.issuer == ISSUER


async def test_an_expired_token_is_refreshed_and_the_rotated_token_replaces_the_old() -> None:
    server = FakeAuthorizationServer()
    clock = FakeClock()
    storage = InMemoryTokenStorage()
    oauth = make_client(server, storage=storage, clock=clock)
    await oauth.authorize(CHALLENGE)
    first_refresh = oauth.exchange.tokens.refresh_token  # type: ignore[union-attr]

    clock.t += 3600 - EXPIRY_SKEW + 1
    header = await oauth.authorization()

    form, _ = server.token_requests[-1]
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == first_refresh
    assert header == f"Bearer {server.access_tokens[-1]}"
    second_refresh = oauth.exchange.tokens.refresh_token  # type: ignore[union-attr]
    assert second_refresh not in (None, first_refresh)
    stored = await storage.load(ISSUER, MCP_URL)
    assert stored is not None
    assert stored.progress["tokens"]["refresh_token"] == second_refresh

    clock.t += 3600
    await oauth.authorization()
    refreshes = [f["refresh_token"] for f, _ in server.token_requests if "refresh_token" in f]
    assert refreshes == [first_refresh, second_refresh]  # the old one is never sent again


async def test_step_up_asks_for_the_union_of_scopes_and_stops_at_the_limit() -> None:
    server = FakeAuthorizationServer()
    oauth = make_client(server)
    await oauth.authorize(CHALLENGE + ', scope="read"')
    sent = await oauth.authorization()

    forbidden = 'Bearer error="insufficient_scope", scope="write"'
    assert await oauth.forbidden(forbidden, sent)
    assert server.authorizations[-1]["scope"] == "read write"
    assert await oauth.forbidden(forbidden, await oauth.authorization())
    assert not await oauth.forbidden(forbidden, await oauth.authorization())  # 2 step-ups max
    assert oauth.failure is not None
    assert len(server.authorizations) == 3
    assert oauth.state is OAuthExchangeState.AUTHORIZED  # the tokens stay usable


async def test_a_403_that_is_not_insufficient_scope_is_not_retried() -> None:
    server = FakeAuthorizationServer()
    oauth = make_client(server)
    await oauth.authorize(CHALLENGE)
    assert not await oauth.forbidden('Bearer error="invalid_token"', None)
    assert len(server.authorizations) == 1


async def test_a_401_for_a_stale_token_only_retries() -> None:
    server = FakeAuthorizationServer()
    oauth = make_client(server)
    await oauth.authorize(CHALLENGE)
    assert await oauth.unauthorized(CHALLENGE, "Bearer an-older-token")
    assert len(server.authorizations) == 1


async def test_concurrent_401s_run_one_flow() -> None:
    server = FakeAuthorizationServer()
    oauth = make_client(server)
    results: list[bool] = []

    async def hit() -> None:
        results.append(await oauth.unauthorized(CHALLENGE, None))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(hit)
    assert results == [True, True, True]
    # The first ran the flow; the others' requests carried no token, and one is held now.
    assert len(server.authorizations) == 1


@pytest.mark.parametrize(
    ("misbehave", "reason"),
    [
        ("metadata_issuer", "issuer"),
        ("s256", "S256"),
        ("tamper_state", "state did not match"),
        ("registration", "no client identity"),
    ],
)
async def test_a_misbehaving_server_fails_the_flow_with_the_reason(
    misbehave: str, reason: str
) -> None:
    server = FakeAuthorizationServer()
    if misbehave == "metadata_issuer":
        server.metadata_issuer = "https://evil.example"
    elif misbehave == "s256":
        server.s256 = False
    elif misbehave == "tamper_state":
        server.tamper_state = True
    else:
        server.registration = False
    oauth = make_client(server)
    with pytest.raises(OAuthFlowError, match=reason):
        await oauth.authorize(CHALLENGE)
    assert oauth.state is OAuthExchangeState.FAILED
    assert await oauth.authorization() is None
    assert all(form.get("grant_type") != "authorization_code" for form, _ in server.token_requests)


@pytest.mark.parametrize(
    ("path", "status", "when"),
    [
        ("/register", 307, "flow"),
        ("/token", 307, "flow"),
        ("/token", 308, "refresh"),
        ("/token", 302, "flow"),
    ],
)
async def test_a_redirected_credential_post_fails_and_is_never_followed(
    path: str, status: int, when: str
) -> None:
    server = FakeAuthorizationServer()
    server.auth_methods = ["client_secret_post"]
    server.issue_secret = True
    clock = FakeClock()
    oauth = make_client(server, clock=clock)
    if when == "refresh":
        await oauth.authorize(CHALLENGE)
        clock.t += 3600
    server.redirect_posts[path] = status
    if when == "refresh":
        assert await oauth.authorization() is None  # the refresh, then the new flow, fail
    else:
        with pytest.raises(OAuthFlowError):
            await oauth.authorize(CHALLENGE)
    assert oauth.failure is not None
    assert f"answered with a redirect (HTTP {status})" in oauth.failure
    assert "attacker" not in oauth.failure
    assert server.post_follows
    assert not any(server.post_follows)  # every POST was sent without following
    assert all(not url.startswith("https://attacker.example") for _, url in server.requests)


async def test_a_registered_secret_authenticates_with_client_secret_basic_form_encoded() -> None:
    server = FakeAuthorizationServer()
    server.auth_methods = ["client_secret_basic"]
    server.issue_secret = True
    oauth = make_client(server)
    await oauth.authorize(CHALLENGE)
    form, headers = server.token_requests[-1]
    assert "client_secret" not in form
    user, _, password = base64.b64decode(headers["authorization"][6:]).decode().partition(":")
    assert (user, unquote(password)) == ("dyn-1", "s3cret/dyn-1+&=")
    assert password != "s3cret/dyn-1+&="  # RFC 6749 §2.3.1: form-encoded first


async def test_client_secret_post_puts_the_secret_in_the_body() -> None:
    server = FakeAuthorizationServer()
    server.auth_methods = ["client_secret_post"]
    server.issue_secret = True
    oauth = make_client(server)
    await oauth.authorize(CHALLENGE)
    form, headers = server.token_requests[-1]
    assert form["client_secret"] == "s3cret/dyn-1+&="
    assert "authorization" not in headers


def _client_credentials(
    server: FakeAuthorizationServer, method: str, **extra: object
) -> OAuthClient:
    return OAuthClient(
        OAuthClientConfig(
            server_url=MCP_URL,
            grant="client_credentials",
            preregistered=(
                PreRegisteredClient(client_id="machine", token_endpoint_auth_method=method),
            ),
        ),
        http=server,
        clock=FakeClock(time.time()),  # the fake server checks assertions against real time
        random=CountingRandom(),
        **extra,  # type: ignore[arg-type]
    )


async def test_client_credentials_with_a_secret() -> None:
    server = FakeAuthorizationServer()
    server.preregistered["machine"] = "machine-secret"
    oauth = _client_credentials(server, "client_secret_basic", client_secret="machine-secret")
    await oauth.authorize(CHALLENGE)
    form, headers = server.token_requests[-1]
    assert form["grant_type"] == "client_credentials"
    assert headers["authorization"].startswith("Basic ")
    assert not server.authorizations  # no browser


async def test_client_credentials_with_private_key_jwt() -> None:
    server = FakeAuthorizationServer()
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    server.public_keys["machine"] = key.public_key()
    server.preregistered["machine"] = ""
    oauth = _client_credentials(server, "private_key_jwt", signer=PemAssertionSigner(pem))
    await oauth.authorize(CHALLENGE)
    form, _ = server.token_requests[-1]
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    claims = jwt.decode(
        form["client_assertion"], key.public_key(), algorithms=["ES256"], audience=ISSUER
    )
    assert claims["iss"] == claims["sub"] == "machine"
    assert claims["exp"] > claims["iat"]


async def test_the_client_id_metadata_document_is_used_when_supported() -> None:
    server = FakeAuthorizationServer()
    document = server.metadata()
    server.metadata = lambda: {**document, "client_id_metadata_document_supported": True}  # type: ignore[method-assign]
    oauth = make_client(server, client_metadata_url="https://client.example/meta.json")
    await oauth.authorize(CHALLENGE)
    assert not server.registrations
    assert server.authorizations[0]["client_id"] == "https://client.example/meta.json"


async def test_sign_out_forgets_the_grant_everywhere() -> None:
    server = FakeAuthorizationServer()
    storage = InMemoryTokenStorage()
    oauth = make_client(server, storage=storage)
    await oauth.authorize(CHALLENGE)
    await oauth.sign_out()
    assert await oauth.authorization() is None
    assert await storage.find(MCP_URL) is None


async def test_progress_survives_json() -> None:
    server = FakeAuthorizationServer()
    oauth = make_client(server)
    await oauth.authorize(CHALLENGE + ', scope="read write"')
    progress = oauth.exchange.progress
    assert progress_from_json(progress_to_json(progress)) == progress
