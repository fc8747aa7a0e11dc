"""Hostile input end to end: Hypothesis sends arbitrary and adversarial requests to every
endpoint of a secured MCP app (the built-in authorization server and the protected MCP
endpoint), through HTTP, and checks what must hold whatever arrives:

- `/authorize` never redirects anywhere but a registered redirect URI (a loopback one may
  differ only in its port), and a redirect carrying a code only for a request with a valid
  S256 challenge and `resource`; it never answers 500;
- `/token` and `/revoke` answer `Cache-Control: no-store`, RFC 6749 5.2 error bodies with a
  registered error code, and never issue a token for made-up input;
- `/register` accepts only metadata it can stand behind (no `javascript:`/`data:` redirect, no
  fragment, no plain http off loopback) and refuses the rest with RFC 7591 errors;
- the MCP endpoint lets nothing through without a valid token: 401 for any made-up or mangled
  Authorization header, never 200 or 500.

Examples are derandomized: the same ones on every run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.adapters.system import SystemClock, SystemRandom
from mcp_core.core.services.authorization_server import AuthorizationServer, StaticClient
from mcp_core.core.services.server import McpServer

ISSUER = "http://127.0.0.1:9000"
RESOURCE = f"{ISSUER}/mcp"
REDIRECT = "http://127.0.0.1:43123/callback"
WEB_REDIRECT = "https://client.example/cb"
CLIENTS = ("native", "web")
RFC6749_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "server_error",
}
REGISTRATION_ERRORS = {"invalid_client_metadata", "invalid_redirect_uri", "invalid_request"}

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _app() -> Any:
    server = McpServer("hostile")

    @server.tool()
    def echo(text: str) -> str:
        return text

    clock = SystemClock()
    authorization = AuthorizationServer(
        ISSUER,
        clients=InMemoryClientStore(),
        grants=InMemoryGrantStore(),
        keys=InMemoryKeySet(clock=clock),
        clock=clock,
        random=SystemRandom(),
        resources={RESOURCE},
        static_clients=[
            StaticClient(
                client_id="native",
                metadata={
                    "redirect_uris": [REDIRECT],
                    "token_endpoint_auth_method": "none",
                    "application_type": "native",
                },
            ),
            StaticClient(
                client_id="web",
                metadata={
                    "redirect_uris": [WEB_REDIRECT],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                },
                secret="s3cret-s3cret-s3cret",
            ),
        ],
    )
    return create_secured_app(
        server,
        resource=RESOURCE,
        authorization=authorization,
        response_mode="json",
        allowed_hosts=("127.0.0.1:9000",),
    )


APP = _app()


def _request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            return await http.request(method, url, **kwargs)

    return anyio.run(go)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
redirects = (
    st.sampled_from(
        [
            REDIRECT,
            "http://127.0.0.1:1/callback",  # loopback, another port: allowed
            "http://127.0.0.1:43123/callback/../evil",
            "http://localhost:43123/callback",
            "http://127.0.0.1:43123/callback?x=1",
            "http://127.0.0.1:43123/callback#frag",
            WEB_REDIRECT,
            "https://client.example/cb/extra",
            "https://evil.example/cb",
            "javascript:alert(1)",
            "//evil.example/cb",
        ]
    )
    | text
)
challenges = st.sampled_from([_s256("v" * 43), "short", "", "a" * 43 + "!", "A" * 128]) | text
authorize_params = st.fixed_dictionaries(
    {},
    optional={
        "response_type": st.sampled_from(["code", "token", "id_token", ""]) | text,
        "client_id": st.sampled_from([*CLIENTS, "unknown", ""]) | text,
        "redirect_uri": redirects,
        "code_challenge": challenges,
        "code_challenge_method": st.sampled_from(["S256", "plain", "s256", ""]) | text,
        "state": text,
        "resource": st.sampled_from([RESOURCE, "http://127.0.0.1:9000/other", "urn:x", ""]) | text,
        "scope": st.sampled_from(["", "a b", "a\u0000b", "x" * 2000]) | text,
    },
)


def _registered(location: str) -> bool:
    parts = urlsplit(location)
    target = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if target == WEB_REDIRECT:
        return True
    return (
        parts.scheme == "http"
        and parts.hostname == "127.0.0.1"
        and parts.path == urlsplit(REDIRECT).path
    )


@SETTINGS
@given(params=authorize_params)
def test_authorize_never_redirects_to_an_unregistered_uri(params: dict[str, str]) -> None:
    answer = _request("GET", "/authorize", params=params)
    assert answer.status_code in {200, 302, 400, 401, 414}, answer.text
    if answer.status_code != 302:
        assert "location" not in answer.headers
        return
    location = answer.headers["location"]
    assert _registered(location), location
    query = parse_qs(urlsplit(location).query)
    assert query.get("iss") == [ISSUER]
    if "code" in query:
        assert params.get("response_type") == "code"
        assert params.get("code_challenge_method") == "S256"
        assert params.get("resource") == RESOURCE
        assert len(params.get("code_challenge", "")) == 43
    else:
        assert "error" in query


token_forms = st.fixed_dictionaries(
    {},
    optional={
        "grant_type": st.sampled_from(
            ["authorization_code", "refresh_token", "client_credentials", "password", ""]
        )
        | text,
        "client_id": st.sampled_from([*CLIENTS, "unknown"]) | text,
        "client_secret": st.sampled_from(["s3cret-s3cret-s3cret", "wrong"]) | text,
        "code": text,
        "code_verifier": text,
        "redirect_uri": redirects,
        "refresh_token": st.sampled_from(["abc.def", ".", "x" * 600]) | text,
        "resource": st.sampled_from([RESOURCE, "urn:other"]) | text,
        "scope": text,
        "client_assertion_type": text,
        "client_assertion": text,
    },
)
authorizations = st.none() | st.sampled_from(
    [
        "Basic " + base64.b64encode(b"web:wrong").decode(),
        "Basic " + base64.b64encode(b"native:").decode(),
        "Basic !!!",
        "Bearer x",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ]
)


@SETTINGS
@given(form=token_forms, authorization=authorizations, route=st.sampled_from(["token", "revoke"]))
def test_token_and_revoke_answer_rfc6749_errors_never_a_token(
    form: dict[str, str], authorization: str | None, route: str
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    answer = _request("POST", f"/{route}", data=form, headers=headers)
    assert answer.headers.get("cache-control") == "no-store", answer.headers
    if route == "revoke" and answer.status_code == 200:
        return  # RFC 7009 2.2: 200 for a token that is unknown or invalid
    # Made-up input never earns a token: client_credentials needs the right secret.
    if answer.status_code == 200:
        assert form.get("grant_type") == "client_credentials"
        assert form.get("client_secret") == "s3cret-s3cret-s3cret"
        assert form.get("resource") == RESOURCE
        return
    assert answer.status_code in {400, 401}, answer.text
    body = answer.json()
    assert body["error"] in RFC6749_ERRORS, body
    if answer.status_code == 401:
        assert body["error"] == "invalid_client"
        assert "www-authenticate" in answer.headers


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
registrations = st.fixed_dictionaries(
    {},
    optional={
        "redirect_uris": st.lists(redirects, max_size=3) | json_values,
        "token_endpoint_auth_method": st.sampled_from(
            ["none", "client_secret_basic", "client_secret_post", "private_key_jwt", "tls"]
        )
        | json_values,
        "grant_types": st.lists(
            st.sampled_from(["authorization_code", "refresh_token", "implicit", "password"]),
            max_size=3,
        )
        | json_values,
        "application_type": st.sampled_from(["web", "native", "desktop"]) | json_values,
        "client_name": json_values,
        "jwks_uri": st.sampled_from(["https://client.example/jwks", "http://10.0.0.1/jwks"])
        | json_values,
    },
)


@SETTINGS
@given(metadata=registrations)
def test_registration_keeps_only_metadata_it_can_stand_behind(metadata: dict[str, Any]) -> None:
    answer = _request(
        "POST", "/register", content=json.dumps(metadata), headers={"content-type": "x/json"}
    )
    answer_json = _request("POST", "/register", json=metadata)
    for response in (answer, answer_json):
        assert response.status_code in {201, 400, 415}, response.text
        if response.status_code == 400:
            assert response.json()["error"] in REGISTRATION_ERRORS
    if answer_json.status_code != 201:
        return
    registered = answer_json.json()
    for uri in registered["redirect_uris"]:
        parts = urlsplit(uri)
        assert parts.scheme not in {"javascript", "data", "file", ""}
        assert not parts.fragment
        assert "#" not in uri
        if parts.scheme == "http":
            assert parts.hostname in {"127.0.0.1", "::1", "localhost"}, uri


bearers = st.sampled_from(
    [
        "Bearer ",
        "Bearer abc",
        "Bearer " + "a" * 9000,
        "bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        "Basic dXNlcjpwYXNz",
        "Bearer a b",
    ]
) | text.map(lambda t: f"Bearer {t}")


@SETTINGS
@given(authorization=st.none() | bearers)
def test_mcp_endpoint_lets_nothing_through_without_a_valid_token(
    authorization: str | None,
) -> None:
    headers: dict[str, str | bytes] = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
    }
    if authorization is not None:
        try:
            headers["authorization"] = authorization.encode("latin-1")  # raw header bytes
        except UnicodeEncodeError:
            return  # not sendable as an HTTP header at all
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    answer = _request("POST", "/mcp", json=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer ")
    assert "resource_metadata=" in answer.headers["www-authenticate"]
