"""Shared doubles for the authorization server tests on private_key_jwt and client ID metadata
documents: a clock, a `FakeHttp` (the `HttpClient` port as a route table that records every
fetch), client signing keys, and a harness that runs the server behind its ASGI app."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mcp_core.adapters.asgi.authorization import AuthorizationApp
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.core.http.ssrf import OutboundPolicy
from mcp_core.core.oauth.client_assertion import JWT_BEARER_ASSERTION_TYPE
from mcp_core.core.services.authorization_server import (
    AuthorizationServer,
    LocalUserAuthenticator,
    StaticClient,
)
from mcp_core.ports.http_client import HttpClient, HttpResult, OutboundFailed

ISSUER = "http://127.0.0.1:9000"
TOKEN_URL = f"{ISSUER}/token"
REVOKE_URL = f"{ISSUER}/revoke"
RESOURCE = "http://127.0.0.1:9000/mcp"
REDIRECT = "http://127.0.0.1:7777/callback"
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


class OsRandom:
    def token(self, nbytes: int) -> bytes:
        return os.urandom(nbytes)


class FakeHttp:
    """The `HttpClient` port as a table of URL -> answer (an `HttpResult` or an exception to
    raise). Unknown URLs fail like an unreachable host. Every call is recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, HttpResult | Exception] = {}
        self.calls: list[str] = []

    def serve(
        self,
        url: str,
        document: Mapping[str, Any] | bytes,
        *,
        status: int = 200,
        cache_control: str | None = None,
        final_url: str | None = None,
    ) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers: list[tuple[str, str]] = [("content-type", "application/json")]
        if cache_control is not None:
            headers.append(("cache-control", cache_control))
        self.routes[url] = HttpResult(
            status=status, headers=tuple(headers), body=body, final_url=final_url or url
        )

    async def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        policy: OutboundPolicy | None = None,
    ) -> HttpResult:
        self.calls.append(url)
        answer = self.routes.get(url)
        if answer is None:
            raise OutboundFailed("no such host")
        if isinstance(answer, Exception):
            raise answer
        return answer


@attrs.frozen
class ClientKey:
    """A client's key pair: signs assertions; `jwk` is the public half as registered."""

    alg: str
    kid: str
    private: Any = attrs.field(repr=False)

    @classmethod
    def make(cls, alg: str = "EdDSA", kid: str = "k1") -> ClientKey:
        private: Any
        if alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = _rsa_key()
        return cls(alg=alg, kid=kid, private=private)

    @property
    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig"}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    def sign(self, claims: Mapping[str, Any], **header: Any) -> str:
        headers = {"kid": self.kid, **header}
        return jwt.encode(dict(claims), self.private, algorithm=self.alg, headers=headers)


_RSA: list[rsa.RSAPrivateKey] = []


def _rsa_key() -> rsa.RSAPrivateKey:
    # RSA generation is the slow part of these tests: one key per process is enough.
    if not _RSA:
        _RSA.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _RSA[0]


def assertion_claims(client_id: str, now: float, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": int(now),
        "exp": int(now) + 120,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


@attrs.define
class Harness:
    http: httpx.AsyncClient
    server: AuthorizationServer
    keys: InMemoryKeySet
    clients: InMemoryClientStore
    grants: InMemoryGrantStore
    clock: FakeClock

    async def authorize(
        self, client_id: str, challenge: str, redirect_uri: str = REDIRECT, **extra: str
    ) -> httpx.Response:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-1",
            "resource": RESOURCE,
            **extra,
        }
        return await self.http.get("/authorize", params=params)

    async def code(self, client_id: str, redirect_uri: str = REDIRECT) -> tuple[str, str]:
        verifier, challenge = pkce()
        response = await self.authorize(client_id, challenge, redirect_uri)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(redirect_uri + "?")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["state"] == "st-1"
        assert params["iss"] == ISSUER
        return params["code"], verifier

    async def token(self, form: Mapping[str, str], **kwargs: Any) -> httpx.Response:
        return await self.http.post("/token", data=dict(form), **kwargs)

    def code_form(self, code: str, verifier: str, redirect_uri: str = REDIRECT) -> dict[str, str]:
        return {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "resource": RESOURCE,
        }


@asynccontextmanager
async def running(
    *,
    http: HttpClient | None = None,
    static_clients: Sequence[StaticClient] = (),
    **options: Any,
) -> AsyncIterator[Harness]:
    clock = FakeClock()
    keys = InMemoryKeySet(clock=clock)
    clients = InMemoryClientStore()
    grants = InMemoryGrantStore()
    server = AuthorizationServer(
        ISSUER,
        clients=clients,
        grants=grants,
        keys=keys,
        clock=clock,
        random=OsRandom(),
        static_clients=static_clients,
        http=http,
        **options,
    )
    app = AuthorizationApp(server, authenticator=LocalUserAuthenticator(subject="alice"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as c:
        yield Harness(http=c, server=server, keys=keys, clients=clients, grants=grants, clock=clock)
