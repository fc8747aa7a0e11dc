"""private_key_jwt client authentication at /token and /revoke (RFC 7523 2.2 and 3, RFC 7521
4.2), end to end through the ASGI app: registration with inline keys, static clients with a
`jwks_uri` fetched through a fake `HttpClient`, and the hostile assertions, each refused with
`invalid_client` and no token issued."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from as_support import (
    ISSUER,
    RESOURCE,
    REVOKE_URL,
    ClientKey,
    FakeHttp,
    Harness,
    assertion_claims,
    assertion_form,
    b64url,
    running,
)

from mcp_core.core.oauth.client_assertion import JWT_BEARER_ASSERTION_TYPE
from mcp_core.core.services.authorization_server import StaticClient

pytestmark = pytest.mark.anyio

JWKS_URL = "https://keys.example/jwks.json"
ED = ClientKey.make("EdDSA", "ed-1")
ES = ClientKey.make("ES256", "es-1")
OTHER_ED = ClientKey.make("EdDSA", "ed-1")  # same kid, another key pair


def _static_clients() -> list[StaticClient]:
    return [
        StaticClient(
            client_id="svc-inline",
            metadata={
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": ED.jwks,
            },
        ),
        StaticClient(
            client_id="svc-uri",
            metadata={
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": JWKS_URL,
            },
        ),
    ]


@pytest.fixture
async def fake_http() -> FakeHttp:
    http = FakeHttp()
    http.serve(JWKS_URL, ES.jwks, cache_control="max-age=600")
    return http


@pytest.fixture
async def h(fake_http: FakeHttp) -> AsyncIterator[Harness]:
    async with running(http=fake_http, static_clients=_static_clients()) as harness:
        yield harness


def _cc(assertion: str, **extra: str) -> dict[str, str]:
    return assertion_form(assertion, grant_type="client_credentials", resource=RESOURCE, **extra)


async def _register(h: Harness, key: ClientKey, **extra: Any) -> str:
    body = {
        "redirect_uris": ["http://127.0.0.1:7777/callback"],
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Signed client",
        "jwks": key.jwks,
        **extra,
    }
    response = await h.http.post("/register", json=body)
    assert response.status_code == 201, response.text
    registered = response.json()
    assert "client_secret" not in registered
    return str(registered["client_id"])


# ---- metadata and registration ----------------------------------------------------------------


async def test_metadata_advertises_private_key_jwt_and_its_algorithms(h: Harness) -> None:
    document = (await h.http.get("/.well-known/oauth-authorization-server")).json()
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]
    algorithms = document["token_endpoint_auth_signing_alg_values_supported"]
    assert set(algorithms) == {"EdDSA", "ES256", "RS256"}


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"jwks": None, "jwks_uri": None}, id="no-keys"),
        pytest.param({"jwks_uri": JWKS_URL}, id="both-jwks-and-jwks_uri"),
        pytest.param({"jwks": None, "jwks_uri": "http://keys.example/j"}, id="http-jwks_uri"),
        pytest.param(
            {
                "jwks": {
                    "keys": [
                        {"kty": "RSA", "kid": "small", "n": b64url(b"\xff" * 128), "e": "AQAB"}
                    ]
                }
            },
            id="rsa-1024-only",
        ),
        pytest.param(
            {"jwks": {"keys": [{"kty": "oct", "kid": "hmac", "k": b64url(b"s" * 32)}]}},
            id="symmetric-key",
        ),
    ],
)
async def test_registration_refuses_unusable_keys(h: Harness, extra: dict[str, Any]) -> None:
    body = {
        "redirect_uris": ["http://127.0.0.1:7777/callback"],
        "token_endpoint_auth_method": "private_key_jwt",
        "client_name": "Signed client",
        "jwks": ED.jwks,
        **extra,
    }
    body = {k: v for k, v in body.items() if v is not None}
    response = await h.http.post("/register", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


async def test_jwks_uri_needs_an_http_client() -> None:
    with pytest.raises(ValueError, match="jwks_uri needs an HttpClient"):
        async with running(static_clients=_static_clients()):
            pass
    async with running() as h:
        body = {
            "redirect_uris": ["http://127.0.0.1:7777/callback"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": JWKS_URL,
        }
        response = await h.http.post("/register", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client_metadata"


async def test_static_private_key_jwt_client_takes_no_secret() -> None:
    client = StaticClient(
        client_id="svc",
        metadata={
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": ED.jwks,
            "grant_types": ["client_credentials"],
        },
        secret="not-wanted",
    )
    with pytest.raises(ValueError, match="secret and auth method"):
        async with running(static_clients=[client]):
            pass


# ---- happy paths ------------------------------------------------------------------------------


async def test_registered_client_authorizes_exchanges_refreshes_and_revokes(h: Harness) -> None:
    client_id = await _register(h, ED)
    code, verifier = await h.code(client_id)
    form = {
        **h.code_form(code, verifier),
        **assertion_form(ED.sign(assertion_claims(client_id, h.clock.t))),
    }
    response = await h.token(form)
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = h.keys.verify(tokens["access_token"], audience=RESOURCE, issuer=ISSUER)
    assert claims["client_id"] == client_id
    assert claims["sub"] == "alice"

    refreshed = await h.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            **assertion_form(ED.sign(assertion_claims(client_id, h.clock.t, aud=[ISSUER]))),
        }
    )
    assert refreshed.status_code == 200, refreshed.text
    live = refreshed.json()["refresh_token"]

    revoked = await h.http.post(
        "/revoke",
        data={
            "token": live,
            **assertion_form(ED.sign(assertion_claims(client_id, h.clock.t, aud=REVOKE_URL))),
        },
    )
    assert revoked.status_code == 200, revoked.text
    family_id = live.partition(".")[0]
    assert await h.grants.is_revoked(family_id)


async def test_a_private_key_jwt_client_without_an_assertion_is_refused(h: Harness) -> None:
    client_id = await _register(h, ED)
    code, verifier = await h.code(client_id)
    response = await h.token({**h.code_form(code, verifier), "client_id": client_id})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    posted = await h.token(
        {**h.code_form(code, verifier), "client_id": client_id, "client_secret": "guess"}
    )
    assert posted.status_code == 401


async def test_inline_static_client_uses_client_credentials(h: Harness) -> None:
    response = await h.token(_cc(ED.sign(assertion_claims("svc-inline", h.clock.t))))
    assert response.status_code == 200, response.text
    claims = h.keys.verify(response.json()["access_token"], audience=RESOURCE, issuer=ISSUER)
    assert claims["sub"] == "svc-inline"


async def test_jwks_uri_is_fetched_once_and_cached(h: Harness, fake_http: FakeHttp) -> None:
    for _ in range(3):
        response = await h.token(_cc(ES.sign(assertion_claims("svc-uri", h.clock.t))))
        assert response.status_code == 200, response.text
    assert fake_http.calls == [JWKS_URL]


async def test_rs256_assertion_with_the_issuer_as_audience() -> None:
    rs = ClientKey.make("RS256", "rs-1")
    client = StaticClient(
        client_id="svc-rsa",
        metadata={
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": rs.jwks,
        },
    )
    async with running(static_clients=[client]) as h:
        claims = assertion_claims("svc-rsa", h.clock.t, aud=ISSUER)
        response = await h.token(_cc(rs.sign(claims), client_id="svc-rsa"))
        assert response.status_code == 200, response.text


# ---- hostile assertions -----------------------------------------------------------------------


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def _hs256_with_public_key(claims: dict[str, Any]) -> str:
    # The classic confusion: the public key (as the JWK JSON, and as the raw x) used as an
    # HMAC secret. Both variants must be refused before any MAC is computed.
    head = b64url(json.dumps({"alg": "HS256", "kid": ED.kid}).encode())
    body = b64url(json.dumps(claims).encode())
    secret = json.dumps(ED.jwk).encode()
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


Forge = Callable[[float], str]

HOSTILE: dict[str, Forge] = {
    "wrong-aud": lambda t: ED.sign(assertion_claims("svc-inline", t, aud="https://evil.example")),
    "aud-of-the-resource": lambda t: ED.sign(assertion_claims("svc-inline", t, aud=RESOURCE)),
    "expired": lambda t: ED.sign(
        assertion_claims("svc-inline", t, iat=int(t) - 200, exp=int(t) - 61)
    ),
    "no-exp": lambda t: ED.sign(assertion_claims("svc-inline", t, exp=None)),
    "lifetime-over-5-minutes": lambda t: ED.sign(
        assertion_claims("svc-inline", t, exp=int(t) + 3600)
    ),
    "long-lived-without-iat": lambda t: ED.sign(
        assertion_claims("svc-inline", t, iat=None, exp=int(t) + 1000)
    ),
    "iat-in-the-future": lambda t: ED.sign(
        assertion_claims("svc-inline", t, iat=int(t) + 120, exp=int(t) + 200)
    ),
    "nbf-in-the-future": lambda t: ED.sign(assertion_claims("svc-inline", t, nbf=int(t) + 90)),
    "sub-is-another-client": lambda t: ED.sign(assertion_claims("svc-inline", t, sub="svc-uri")),
    "no-jti": lambda t: ED.sign(assertion_claims("svc-inline", t, jti=None)),
    "alg-none": lambda t: _unsigned(
        {"alg": "none", "kid": ED.kid}, assertion_claims("svc-inline", t), b"x"
    ),
    "alg-none-empty-signature": lambda t: _unsigned(
        {"alg": "none"}, assertion_claims("svc-inline", t)
    ),
    "hs256-with-the-public-key": lambda t: _hs256_with_public_key(
        assertion_claims("svc-inline", t)
    ),
    "wrong-kid": lambda t: ED.sign(assertion_claims("svc-inline", t), kid="nope"),
    "no-kid-with-named-keys": lambda t: jwtless(t),
    "another-key-same-kid": lambda t: OTHER_ED.sign(assertion_claims("svc-inline", t)),
    "header-alg-not-the-keys": lambda t: _unsigned(
        {"alg": "ES256", "kid": ED.kid}, assertion_claims("svc-inline", t), b"\x00" * 64
    ),
    "crit-header": lambda t: ED.sign(assertion_claims("svc-inline", t), crit=["exp"]),
    "tampered-claims": lambda t: _tampered(t),
}


def jwtless(t: float) -> str:
    token = ED.sign(assertion_claims("svc-inline", t))
    _head, body, sig = token.split(".")
    return f"{b64url(json.dumps({'alg': 'EdDSA'}).encode())}.{body}.{sig}"


def _tampered(t: float) -> str:
    token = ED.sign(assertion_claims("svc-inline", t))
    head, _, sig = token.split(".")
    claims = assertion_claims("svc-inline", t, exp=int(t) + 200)
    return f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_assertions_are_refused_and_issue_nothing(h: Harness, name: str) -> None:
    assertion = HOSTILE[name](h.clock.t)
    response = await h.token(_cc(assertion))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.text
    # The jti of a refused assertion is not burnt: a good assertion still goes through.
    good = await h.token(_cc(ED.sign(assertion_claims("svc-inline", h.clock.t))))
    assert good.status_code == 200, good.text


async def test_a_replayed_jti_is_refused(h: Harness) -> None:
    assertion = ED.sign(assertion_claims("svc-inline", h.clock.t))
    first = await h.token(_cc(assertion))
    assert first.status_code == 200, first.text
    second = await h.token(_cc(assertion))
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_client"
    # Same jti in a new assertion (new signature) is a replay too.
    jti = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))["jti"]
    again = ED.sign(assertion_claims("svc-inline", h.clock.t, jti=jti))
    assert (await h.token(_cc(again))).status_code == 401


async def test_expiry_honours_the_leeway_but_no_more(h: Harness) -> None:
    t = h.clock.t
    within = ED.sign(assertion_claims("svc-inline", t, iat=int(t) - 100, exp=int(t) - 20))
    assert (await h.token(_cc(within))).status_code == 200
    beyond = ED.sign(assertion_claims("svc-inline", t, iat=int(t) - 100, exp=int(t) - 30))
    assert (await h.token(_cc(beyond))).status_code == 401


async def test_assertion_for_another_client_id_is_refused(h: Harness) -> None:
    # iss/sub name svc-inline but the form claims svc-uri: refused before any key is looked up.
    assertion = ED.sign(assertion_claims("svc-inline", h.clock.t))
    response = await h.token(_cc(assertion, client_id="svc-uri"))
    assert response.status_code == 401
    # svc-uri's keys cannot sign for svc-inline, nor svc-inline's for svc-uri.
    forged = ES.sign(assertion_claims("svc-inline", h.clock.t))
    assert (await h.token(_cc(forged))).status_code == 401
    borrowed = ED.sign(assertion_claims("svc-uri", h.clock.t), kid=ES.kid)
    assert (await h.token(_cc(borrowed))).status_code == 401


async def test_one_authentication_method_per_request(h: Harness) -> None:
    assertion = ED.sign(assertion_claims("svc-inline", h.clock.t))
    response = await h.token(_cc(assertion), headers={"authorization": "Basic c3ZjLWlubGluZTp4"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    lone = {"grant_type": "client_credentials", "client_assertion": assertion, "resource": RESOURCE}
    assert (await h.token(lone)).json()["error"] == "invalid_request"
    wrong_type = _cc(assertion) | {"client_assertion_type": "urn:example:saml"}
    assert wrong_type["client_assertion_type"] != JWT_BEARER_ASSERTION_TYPE
    assert (await h.token(wrong_type)).json()["error"] == "invalid_client"


async def test_unreachable_jwks_uri_is_invalid_client(fake_http: FakeHttp) -> None:
    fake_http.routes.clear()
    async with running(http=fake_http, static_clients=_static_clients()) as h:
        response = await h.token(_cc(ES.sign(assertion_claims("svc-uri", h.clock.t))))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
