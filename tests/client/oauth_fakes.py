"""A fake authorization server and MCP resource metadata, as an `HttpRequester`, for the OAuth
client's tests. It checks what a real one checks (PKCE S256, the code's redirect URI and
client, client authentication, refresh token rotation) and can misbehave on request."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import jwt

from mcp_core.core.http.ssrf import OutboundPolicy
from mcp_core.ports.http_client import HttpResult

MCP_URL = "https://mcp.example/mcp"
ISSUER = "https://as.example"
REDIRECT_URI = "http://127.0.0.1:8765/callback"


class FakeClock:
    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.t = wall

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


class CountingRandom:
    """Distinct, predictable bytes (tests only)."""

    def __init__(self) -> None:
        self.calls = 0

    def token(self, nbytes: int) -> bytes:
        self.calls += 1
        return hashlib.sha256(f"random-{self.calls}".encode()).digest()[:nbytes].ljust(nbytes, b"x")


def _json(status: int, document: Any, url: str) -> HttpResult:
    return HttpResult(
        status=status,
        headers=(("content-type", "application/json"),),
        body=json.dumps(document).encode(),
        final_url=url,
    )


class FakeAuthorizationServer:
    """Serves `MCP_URL`'s resource metadata and an authorization server at `ISSUER`.

    Knobs: `registration` (an RFC 7591 endpoint), `s256` (advertised), `metadata_issuer` (the
    issuer its metadata claims), `auth_methods` (token endpoint methods supported),
    `issue_secret` (registration returns a client secret), `expires_in`, `tamper_state` (the
    redirect carries another state), `scopes_supported` (in the resource metadata),
    `preregistered` (client id -> secret or public key PEM), `redirect_posts` (path -> a 3xx
    status that POSTs to that path answer, pointing at another origin). `post_follows` records
    the `follow_redirects` of every POST.
    """

    def __init__(self) -> None:
        self.registration = True
        self.s256 = True
        self.metadata_issuer = ISSUER
        self.auth_methods: list[str] = ["none"]
        self.issue_secret = False
        self.expires_in: int | None = 3600
        self.tamper_state = False
        self.scopes_supported: list[str] | None = ["read"]
        self.preregistered: dict[str, str] = {}
        self.public_keys: dict[str, Any] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[dict[str, str]] = []
        self.token_requests: list[tuple[dict[str, str], dict[str, str]]] = []
        self.registrations: list[dict[str, Any]] = []
        self.clients: dict[str, str | None] = {}  # client id -> secret
        self._codes: dict[str, dict[str, str]] = {}
        self._live_refresh: set[str] = set()
        self._counter = itertools.count(1)
        self.access_tokens: list[str] = []
        self.redirect_posts: dict[str, int] = {}
        self.post_follows: list[bool] = []

    # ---- the HttpRequester port ----

    async def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        policy: OutboundPolicy | None = None,
    ) -> HttpResult:
        return await self.request("GET", url, headers=headers, policy=policy)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        policy: OutboundPolicy | None = None,
        follow_redirects: bool = True,
    ) -> HttpResult:
        self.requests.append((method, url))
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        if (
            method == "GET"
            and url == "https://mcp.example/.well-known/oauth-protected-resource/mcp"
        ):
            document: dict[str, Any] = {"resource": MCP_URL, "authorization_servers": [ISSUER]}
            if self.scopes_supported is not None:
                document["scopes_supported"] = self.scopes_supported
            return _json(200, document, url)
        if origin != ISSUER:
            return _json(404, {"error": "not_found"}, url)
        if method == "POST":
            self.post_follows.append(follow_redirects)
            if parts.path in self.redirect_posts:
                location = "https://attacker.example/collect"
                status = self.redirect_posts[parts.path]
                return HttpResult(
                    status=status, headers=(("location", location),), body=b"", final_url=url
                )
        if method == "GET" and parts.path == "/.well-known/oauth-authorization-server":
            return _json(200, self.metadata(), url)
        if method == "POST" and parts.path == "/register" and self.registration:
            return self._register(json.loads(body), url)
        if method == "GET" and parts.path == "/authorize":
            assert not follow_redirects, "the receiver must read the redirect, not follow it"
            return self._authorize(dict(parse_qsl(parts.query)), url)
        if method == "POST" and parts.path == "/token":
            return self._token(dict(parse_qsl(body.decode())), sent, url)
        return _json(404, {"error": "not_found"}, url)

    # ---- the endpoints ----

    def metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "issuer": self.metadata_issuer,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "token_endpoint_auth_methods_supported": self.auth_methods,
            "response_types_supported": ["code"],
        }
        if self.registration:
            document["registration_endpoint"] = f"{ISSUER}/register"
        if self.s256:
            document["code_challenge_methods_supported"] = ["S256"]
        return document

    def _register(self, document: dict[str, Any], url: str) -> HttpResult:
        self.registrations.append(document)
        client_id = f"dyn-{next(self._counter)}"
        answer = dict(document, client_id=client_id)
        secret = None
        if self.issue_secret:
            secret = f"s3cret/{client_id}+&="
            answer["client_secret"] = secret
        self.clients[client_id] = secret
        return _json(201, answer, url)

    def _authorize(self, params: dict[str, str], url: str) -> HttpResult:
        self.authorizations.append(params)
        code = f"code-{next(self._counter)}"
        self._codes[code] = params
        state = "forged-state-value-xyz" if self.tamper_state else params["state"]
        location = f"{params['redirect_uri']}?{urlencode({'code': code, 'state': state})}"
        return HttpResult(status=302, headers=(("location", location),), body=b"", final_url=url)

    def _client_of(self, form: dict[str, str], headers: dict[str, str]) -> str | None:
        """The authenticated client id, or None when authentication fails."""
        basic = headers.get("authorization", "")
        if basic.startswith("Basic "):
            decoded = base64.b64decode(basic[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
            expected = self.clients.get(client_id) or self.preregistered.get(client_id)
            return client_id if expected is not None and secret == expected else None
        if form.get("client_assertion_type"):
            claims = jwt.decode(
                form["client_assertion"],
                self.public_keys[form["client_id"]],
                algorithms=["ES256"],
                audience=ISSUER,
            )
            return str(claims["sub"]) if claims["iss"] == claims["sub"] else None
        client_id = form.get("client_id", "")
        expected = self.clients.get(client_id, self.preregistered.get(client_id))
        if "client_secret" in form:
            return client_id if form["client_secret"] == expected else None
        return client_id if expected is None and client_id else None

    def _tokens(self, url: str, scope: str | None) -> HttpResult:
        access = f"access-{next(self._counter)}"
        refresh = f"refresh-{next(self._counter)}"
        self._live_refresh.add(refresh)
        self.access_tokens.append(access)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "refresh_token": refresh,
        }
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        if scope:
            answer["scope"] = scope
        return _json(200, answer, url)

    def _token(self, form: dict[str, str], headers: dict[str, str], url: str) -> HttpResult:
        self.token_requests.append((form, headers))
        client_id = self._client_of(form, headers)
        if client_id is None:
            return _json(401, {"error": "invalid_client"}, url)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            asked = self._codes.pop(form.get("code", ""), None)
            if asked is None or asked["client_id"] != client_id:
                return _json(400, {"error": "invalid_grant"}, url)
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"].encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if (
                challenge != asked["code_challenge"]
                or form["redirect_uri"] != asked["redirect_uri"]
            ):
                return _json(400, {"error": "invalid_grant"}, url)
            return self._tokens(url, asked.get("scope"))
        if grant == "refresh_token":
            if form.get("refresh_token") not in self._live_refresh:
                return _json(400, {"error": "invalid_grant"}, url)
            self._live_refresh.discard(form["refresh_token"])  # rotation: used once
            return self._tokens(url, None)
        if grant == "client_credentials":
            return self._tokens(url, form.get("scope"))
        return _json(400, {"error": "unsupported_grant_type"}, url)
