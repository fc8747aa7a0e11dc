"""Client ID metadata documents at the built-in authorization server (draft-ietf-oauth-client-
id-metadata-document-00; MCP 2025-11-25 "Authorization" > "Client ID Metadata Documents"), end
to end through the ASGI app: documents served by a fake `HttpClient`, and, for the SSRF cases,
the real `HttpxClient` adapter over an `httpx.MockTransport` with a fixed name table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from as_support import (
    ISSUER,
    REDIRECT,
    RESOURCE,
    ClientKey,
    FakeHttp,
    Harness,
    assertion_claims,
    assertion_form,
    pkce,
    running,
)

from mcp_core.adapters.http_client import HttpxClient
from mcp_core.core.oauth.client_id_metadata import MAX_DOCUMENT_BYTES
from mcp_core.core.oauth.registration import check_client_metadata
from mcp_core.core.services.authorization_server import ConsentRequest
from mcp_core.ports.http_client import OutboundFailed

pytestmark = pytest.mark.anyio

CLIENT = "https://app.example/oauth/client.json"
PUBLIC_IP = "93.184.216.34"


def document(client_id: str = CLIENT, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "client_id": client_id,
        "client_name": "Example MCP Client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def fake_http() -> FakeHttp:
    http = FakeHttp()
    http.serve(CLIENT, document())
    return http


@pytest.fixture
async def h(fake_http: FakeHttp) -> AsyncIterator[Harness]:
    async with running(http=fake_http) as harness:
        yield harness


def assert_error_page(response: httpx.Response) -> None:
    """The server's own page: never a redirect to a URI the client chose."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


# ---- discovery and the happy path --------------------------------------------------------------


async def test_metadata_says_documents_are_supported(h: Harness) -> None:
    document_ = (await h.http.get("/.well-known/oauth-authorization-server")).json()
    assert document_["client_id_metadata_document_supported"] is True
    async with running() as without_http:
        plain = (await without_http.http.get("/.well-known/oauth-authorization-server")).json()
        assert plain["client_id_metadata_document_supported"] is False
    async with running(http=FakeHttp(), client_id_metadata_documents=False) as disabled:
        off = (await disabled.http.get("/.well-known/oauth-authorization-server")).json()
        assert off["client_id_metadata_document_supported"] is False
        _, challenge = pkce()
        assert_error_page(await disabled.authorize(CLIENT, challenge))


async def test_public_document_client_authorizes_and_exchanges(
    h: Harness, fake_http: FakeHttp
) -> None:
    code, verifier = await h.code(CLIENT)
    response = await h.token({**h.code_form(code, verifier), "client_id": CLIENT})
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = h.keys.verify(tokens["access_token"], audience=RESOURCE, issuer=ISSUER)
    assert claims["client_id"] == CLIENT
    refreshed = await h.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT,
        }
    )
    assert refreshed.status_code == 200, refreshed.text
    # One fetch served the authorization, the exchange and the refresh.
    assert fake_http.calls == [CLIENT]
    stored = await h.clients.get(CLIENT)
    assert stored is not None
    assert stored.source == "cimd"
    assert stored.secret_hash is None


async def test_private_key_jwt_document_client(fake_http: FakeHttp) -> None:
    key = ClientKey.make("ES256", "doc-key")
    fake_http.serve(CLIENT, document(token_endpoint_auth_method="private_key_jwt", jwks=key.jwks))
    async with running(http=fake_http) as h:
        code, verifier = await h.code(CLIENT)
        public = await h.token({**h.code_form(code, verifier), "client_id": CLIENT})
        assert public.status_code == 401  # an assertion is required of this client
        code, verifier = await h.code(CLIENT)
        signed = assertion_form(key.sign(assertion_claims(CLIENT, h.clock.t)))
        response = await h.token({**h.code_form(code, verifier), **signed})
        assert response.status_code == 200, response.text


async def test_cache_control_max_age_is_honoured_within_bounds(
    h: Harness, fake_http: FakeHttp
) -> None:
    fake_http.serve(CLIENT, document(), cache_control="max-age=10")  # below the 60 s floor
    await h.code(CLIENT)
    h.clock.t += 59
    await h.code(CLIENT)
    assert fake_http.calls == [CLIENT]
    h.clock.t += 2
    fake_http.serve(CLIENT, document(), cache_control="public, max-age=999999")  # above 1 day
    await h.code(CLIENT)
    assert len(fake_http.calls) == 2
    h.clock.t += 86_399
    await h.code(CLIENT)
    assert len(fake_http.calls) == 2
    h.clock.t += 2
    await h.code(CLIENT)
    assert len(fake_http.calls) == 3


async def test_a_changed_document_applies_after_refetch(h: Harness, fake_http: FakeHttp) -> None:
    await h.code(CLIENT)
    other = "http://127.0.0.1:8888/cb"
    fake_http.serve(CLIENT, document(redirect_uris=[other]))
    h.clock.t += 3601  # the default lifetime without Cache-Control is an hour
    _, challenge = pkce()
    assert_error_page(await h.authorize(CLIENT, challenge))  # the old redirect URI is gone
    await h.code(CLIENT, redirect_uri=other)


async def test_consent_page_shows_the_name_and_the_document_host(fake_http: FakeHttp) -> None:
    seen: list[ConsentRequest] = []

    async def ask(request: ConsentRequest) -> Any:
        seen.append(request)
        return "ask"

    async with running(http=fake_http, consent=ask) as h:
        _, challenge = pkce()
        page = await h.authorize(CLIENT, challenge)
        assert page.status_code == 200, page.text
        assert "Example MCP Client" in page.text
        assert "app.example" in page.text
        assert "127.0.0.1" in page.text  # the redirect URI's host (MCP: MUST be displayed)
        assert "any local program" in page.text  # loopback redirect warning
        assert seen[0].client_host == "app.example"
        assert seen[0].redirect_uri == REDIRECT


async def test_document_name_is_escaped_on_the_consent_page(fake_http: FakeHttp) -> None:
    fake_http.serve(CLIENT, document(client_name="<script>alert(1)</script>"))

    async def ask(request: ConsentRequest) -> Any:
        return "ask"

    async with running(http=fake_http, consent=ask) as h:
        _, challenge = pkce()
        page = await h.authorize(CLIENT, challenge)
        assert "<script>" not in page.text
        assert "&lt;script&gt;" in page.text


# ---- hostile documents and URLs ----------------------------------------------------------------


HOSTILE_DOCUMENTS: dict[str, Mapping[str, Any] | bytes] = {
    "client-id-mismatch": document(client_id="https://app.example/oauth/other.json"),
    "client-id-missing": document(client_id=None),
    "client-id-differs-by-a-slash": document(client_id=CLIENT + "/"),
    "oversized": document(
        client_uri="https://app.example/" + "a" * 1800,
        contacts=[f"{i}" * 200 for i in range(10)],
        policy_uri="https://app.example/" + "p" * 1800,
    ),
    "not-json": b"<html>hello</html>",
    "json-array": b"[]",
    "client-secret": document(client_secret="s3cret"),
    "secret-auth-method": document(token_endpoint_auth_method="client_secret_basic"),
    "no-redirect-uris": document(redirect_uris=None),
    "no-client-name": document(client_name=None),
    "bad-redirect-uri": document(redirect_uris=["http://evil.example/cb"]),
    "private-key-jwt-without-keys": document(token_endpoint_auth_method="private_key_jwt"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_DOCUMENTS))
async def test_hostile_documents_get_the_error_page(
    h: Harness, fake_http: FakeHttp, name: str
) -> None:
    body = HOSTILE_DOCUMENTS[name]
    if name == "oversized":
        # Valid in every other respect: only the size cap refuses it.
        assert len(json.dumps(body).encode()) > MAX_DOCUMENT_BYTES
        assert isinstance(body, dict)
        assert check_client_metadata(body).client_name == "Example MCP Client"
    fake_http.serve(CLIENT, body)
    _, challenge = pkce()
    assert_error_page(await h.authorize(CLIENT, challenge))
    assert await h.clients.get(CLIENT) is None  # nothing stored
    token = await h.token(
        {
            "grant_type": "authorization_code",
            "code": "x",
            "client_id": CLIENT,
            "redirect_uri": REDIRECT,
            "code_verifier": "v" * 43,
        }
    )
    assert token.status_code == 401
    assert token.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(OutboundFailed("timeout"), id="fetch-fails"),
        pytest.param(404, id="not-found"),
        pytest.param(500, id="server-error"),
        pytest.param("https://elsewhere.example/oauth/client.json", id="redirected-elsewhere"),
    ],
)
async def test_fetch_failures_get_the_error_page(
    h: Harness, fake_http: FakeHttp, answer: object
) -> None:
    if isinstance(answer, Exception):
        fake_http.routes[CLIENT] = answer
    elif isinstance(answer, int):
        fake_http.serve(CLIENT, document(), status=answer)
    else:
        fake_http.serve(CLIENT, document(), final_url=str(answer))
    _, challenge = pkce()
    assert_error_page(await h.authorize(CLIENT, challenge))


@pytest.mark.parametrize(
    "client_id",
    [
        pytest.param("http://app.example/oauth/client.json", id="http-scheme"),
        pytest.param("https://app.example", id="no-path"),
        pytest.param("https://app.example/", id="root-path"),
        pytest.param("https://app.example/a/../client.json", id="dot-dot-segment"),
        pytest.param("https://app.example/a/%2e%2e/client.json", id="encoded-dot-dot"),
        pytest.param("https://app.example/client.json?x=1", id="query"),
        pytest.param("https://user@app.example/client.json", id="userinfo"),
    ],
)
async def test_unacceptable_client_id_urls_are_never_fetched(
    h: Harness, fake_http: FakeHttp, client_id: str
) -> None:
    fake_http.serve(client_id, document(client_id=client_id))
    _, challenge = pkce()
    assert_error_page(await h.authorize(client_id, challenge))
    assert fake_http.calls == []


async def test_redirect_uri_must_be_one_of_the_documents(h: Harness) -> None:
    _, challenge = pkce()
    assert_error_page(await h.authorize(CLIENT, challenge, "http://127.0.0.1:7777/other"))


async def test_a_failed_document_is_not_refetched_for_30_seconds(
    h: Harness, fake_http: FakeHttp
) -> None:
    fake_http.routes[CLIENT] = OutboundFailed("down")
    _, challenge = pkce()
    assert_error_page(await h.authorize(CLIENT, challenge))
    assert_error_page(await h.authorize(CLIENT, challenge))
    assert fake_http.calls == [CLIENT]
    fake_http.serve(CLIENT, document())
    h.clock.t += 31
    await h.code(CLIENT)
    assert fake_http.calls == [CLIENT, CLIENT]


async def test_a_document_that_turns_bad_fails_at_the_token_endpoint(
    h: Harness, fake_http: FakeHttp
) -> None:
    code, verifier = await h.code(CLIENT)
    fake_http.serve(CLIENT, document(client_id="https://app.example/other.json"))
    h.clock.t += 3601
    response = await h.token({**h.code_form(code, verifier), "client_id": CLIENT})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


# ---- the real adapter's SSRF policy ------------------------------------------------------------


class NameTable:
    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return self.table[host]


async def test_real_adapter_refuses_a_redirect_to_a_private_address() -> None:
    requests: list[httpx.Request] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(302, headers={"location": "https://intranet.example/client.json"})

    adapter = HttpxClient(
        resolver=NameTable({"app.example": [PUBLIC_IP], "intranet.example": ["10.0.0.7"]}),
        transport=httpx.MockTransport(handle),
    )
    async with running(http=adapter) as h:
        _, challenge = pkce()
        assert_error_page(await h.authorize(CLIENT, challenge))
    assert len(requests) == 1  # the private target was never contacted
    assert requests[0].headers["host"] == "app.example"


@pytest.mark.parametrize(
    ("client_id", "table"),
    [
        pytest.param("https://127.0.0.1/client.json", {}, id="loopback-literal"),
        pytest.param("https://localhost/client.json", {"localhost": ["127.0.0.1"]}, id="localhost"),
        pytest.param(
            "https://meta.example/client.json",
            {"meta.example": ["169.254.169.254"]},
            id="link-local-metadata",
        ),
        pytest.param(
            "https://lan.example/client.json",
            {"lan.example": ["192.168.1.10"]},
            id="private-network",
        ),
    ],
)
async def test_real_adapter_refuses_internal_targets(
    client_id: str, table: Mapping[str, Sequence[str]]
) -> None:
    requests: list[httpx.Request] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=document(client_id=client_id))

    adapter = HttpxClient(resolver=NameTable(table), transport=httpx.MockTransport(handle))
    async with running(http=adapter) as h:
        _, challenge = pkce()
        assert_error_page(await h.authorize(client_id, challenge))
    assert requests == []


async def test_real_adapter_serves_a_public_document() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=document(), headers={"cache-control": "max-age=300"})

    adapter = HttpxClient(
        resolver=NameTable({"app.example": [PUBLIC_IP]}), transport=httpx.MockTransport(handle)
    )
    async with running(http=adapter) as h:
        code, verifier = await h.code(CLIENT)
        response = await h.token({**h.code_form(code, verifier), "client_id": CLIENT})
        assert response.status_code == 200, response.text
