"""`IntrospectionVerifier`: opaque tokens through RFC 7662 introspection (issue 4, "Resource
server"). The endpoint is a fake `HttpRequester` that records every POST; one test runs the
real httpx adapter against a local ASGI endpoint."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

import attrs
import pytest

from mcp_core.core.services.token_verifiers import IntrospectionVerifier
from mcp_core.ports.http_client import HttpRequester, HttpResult, OutboundPolicy, OutboundRefused
from mcp_core.ports.tokens import TokenInvalid, TokenVerifier, VerifierUnavailable

pytestmark = pytest.mark.anyio

ENDPOINT = "https://as.example/introspect"
RESOURCE = "https://mcp.example/mcp"
T0 = 1_800_000_000.0


@attrs.define
class FakeClock:
    wall_time: float = T0

    def now(self) -> float:
        return self.wall_time

    def wall(self) -> float:
        return self.wall_time


@attrs.define
class Call:
    url: str
    form: dict[str, str]
    headers: dict[str, str]


@attrs.define
class FakeFormPoster:
    answer: dict[str, Any] = attrs.field(factory=dict)
    status: int = 200
    failure: Exception | None = None
    calls: list[Call] = attrs.field(factory=list)

    async def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        policy: OutboundPolicy | None = None,
    ) -> HttpResult:
        raise AssertionError("introspection never GETs")

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
        assert method == "POST"
        assert follow_redirects is False  # never send the credentials where a redirect says
        sent = dict(headers or {})
        assert sent["content-type"] == "application/x-www-form-urlencoded"
        self.calls.append(Call(url, dict(parse_qsl(body.decode())), sent))
        if self.failure is not None:
            raise self.failure
        answer = json.dumps(self.answer).encode()
        return HttpResult(status=self.status, headers=(), body=answer, final_url=url)


def active(**changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "active": True,
        "sub": "user-1",
        "client_id": "client-1",
        "aud": [RESOURCE],
        "iss": "https://as.example",
        "exp": int(T0) + 600,
        "scope": "tools:read tools:call",
    }
    answer.update(changes)
    return {name: value for name, value in answer.items() if value is not None}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def poster() -> FakeFormPoster:
    return FakeFormPoster(answer=active())


def make(poster: FakeFormPoster, clock: FakeClock, cache_ttl: float = 60) -> IntrospectionVerifier:
    return IntrospectionVerifier(
        ENDPOINT, poster, "rs client", "s3cr:t", RESOURCE, clock, cache_ttl=cache_ttl
    )


async def test_active_token_gives_its_facts(poster: FakeFormPoster, clock: FakeClock) -> None:
    verifier = make(poster, clock)
    assert isinstance(verifier, TokenVerifier)
    assert isinstance(poster, HttpRequester)
    info = await verifier.verify("opaque-token", resource=RESOURCE)
    assert info.subject == "user-1"
    assert info.client_id == "client-1"
    assert info.scopes == frozenset({"tools:read", "tools:call"})
    assert info.audience == (RESOURCE,)
    assert info.expires_at == T0 + 600
    (call,) = poster.calls
    assert call.url == ENDPOINT
    assert call.form == {"token": "opaque-token", "token_type_hint": "access_token"}
    # client_secret_basic, with both parts form-encoded first (RFC 6749 2.3.1).
    expected = base64.b64encode(b"rs%20client:s3cr%3At").decode()
    assert call.headers["authorization"] == f"Basic {expected}"


async def test_inactive_token_is_refused(poster: FakeFormPoster, clock: FakeClock) -> None:
    poster.answer = {"active": False}
    with pytest.raises(TokenInvalid) as caught:
        await make(poster, clock).verify("opaque-token", resource=RESOURCE)
    assert caught.value.reason == "inactive"


@pytest.mark.parametrize("aud", ["https://other.example/mcp", ["https://other.example"], None, 7])
async def test_token_for_another_audience_is_refused(
    aud: Any, poster: FakeFormPoster, clock: FakeClock
) -> None:
    poster.answer = active(aud=aud)
    with pytest.raises(TokenInvalid) as caught:
        await make(poster, clock).verify("opaque-token", resource=RESOURCE)
    assert caught.value.reason == "wrong_audience"


async def test_verifier_refuses_a_resource_it_does_not_serve(
    poster: FakeFormPoster, clock: FakeClock
) -> None:
    with pytest.raises(TokenInvalid, match="wrong_audience"):
        await make(poster, clock).verify("opaque-token", resource="https://other.example/mcp")
    assert poster.calls == []


async def test_expired_token_is_refused(poster: FakeFormPoster, clock: FakeClock) -> None:
    poster.answer = active(exp=int(T0) - 1)
    with pytest.raises(TokenInvalid, match="expired"):
        await make(poster, clock).verify("opaque-token", resource=RESOURCE)
    poster.answer = active(exp=None)
    with pytest.raises(TokenInvalid, match="missing_claim"):
        await make(poster, clock).verify("opaque-token", resource=RESOURCE)


async def test_positive_answer_is_cached_for_the_ttl(
    poster: FakeFormPoster, clock: FakeClock
) -> None:
    verifier = make(poster, clock, cache_ttl=60)
    for _ in range(5):
        await verifier.verify("opaque-token", resource=RESOURCE)
    assert len(poster.calls) == 1
    clock.wall_time += 60
    await verifier.verify("opaque-token", resource=RESOURCE)
    assert len(poster.calls) == 2


async def test_cache_never_outlives_the_token(poster: FakeFormPoster, clock: FakeClock) -> None:
    poster.answer = active(exp=int(T0) + 10)
    verifier = make(poster, clock, cache_ttl=60)
    await verifier.verify("opaque-token", resource=RESOURCE)
    clock.wall_time += 10
    poster.answer = {"active": False}
    with pytest.raises(TokenInvalid, match="inactive"):
        await verifier.verify("opaque-token", resource=RESOURCE)
    assert len(poster.calls) == 2


async def test_negative_answers_are_not_cached(poster: FakeFormPoster, clock: FakeClock) -> None:
    poster.answer = {"active": False}
    verifier = make(poster, clock)
    with pytest.raises(TokenInvalid):
        await verifier.verify("opaque-token", resource=RESOURCE)
    poster.answer = active()
    assert (await verifier.verify("opaque-token", resource=RESOURCE)).subject == "user-1"


async def test_unreachable_endpoint_is_unavailable_not_accepted(
    poster: FakeFormPoster, clock: FakeClock
) -> None:
    poster.failure = OutboundRefused("private address")
    with pytest.raises(VerifierUnavailable):
        await make(poster, clock).verify("opaque-token", resource=RESOURCE)
    poster.failure, poster.status = None, 503
    with pytest.raises(VerifierUnavailable):
        await make(poster, clock).verify("opaque-token", resource=RESOURCE)


async def test_oversized_or_malformed_tokens_are_refused_without_a_request(
    poster: FakeFormPoster, clock: FakeClock
) -> None:
    verifier = make(poster, clock)
    with pytest.raises(TokenInvalid, match="too_large"):
        await verifier.verify("a" * 8193, resource=RESOURCE)
    for bad in ["", "two words", "tab\there", "caf\u00e9"]:
        with pytest.raises(TokenInvalid, match="malformed"):
            await verifier.verify(bad, resource=RESOURCE)
    assert poster.calls == []


async def test_through_the_httpx_adapter_with_its_ssrf_policy(clock: FakeClock) -> None:
    """The real adapter: a form POST with Basic credentials, never a redirect followed, and an
    endpoint on a private address refused before any connection."""
    import httpx

    from mcp_core.adapters.http_client import HttpxClient

    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        # The adapter pins the vetted address: the URL holds the IP, the Host header the name.
        if request.headers["host"] == "moved.example":
            return httpx.Response(307, headers={"location": "https://elsewhere.example/x"})
        return httpx.Response(200, json=active())

    async def resolve(host: str, port: int) -> list[str]:
        return {"as.example": ["93.184.216.34"], "moved.example": ["93.184.216.35"]}.get(
            host, ["10.0.0.9"]
        )

    adapter = HttpxClient(resolver=resolve, transport=httpx.MockTransport(handle))
    verifier = IntrospectionVerifier(ENDPOINT, adapter, "rs", "pw", RESOURCE, clock)
    info = await verifier.verify("opaque-token", resource=RESOURCE)
    assert info.subject == "user-1"
    (request,) = seen
    assert request.method == "POST"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"rs:pw").decode()
    assert dict(parse_qsl(request.content.decode())) == {
        "token": "opaque-token",
        "token_type_hint": "access_token",
    }
    # A redirecting endpoint is not followed: the answer is not JSON, so unavailable.
    moved = IntrospectionVerifier("https://moved.example/i", adapter, "rs", "pw", RESOURCE, clock)
    with pytest.raises(VerifierUnavailable):
        await moved.verify("other-token", resource=RESOURCE)
    assert [r.headers["host"] for r in seen] == ["as.example", "moved.example"]
    # An endpoint on a private address is refused before anything is sent.
    private = IntrospectionVerifier(
        "https://intranet.example/i", adapter, "rs", "pw", RESOURCE, clock
    )
    with pytest.raises(VerifierUnavailable):
        await private.verify("third-token", resource=RESOURCE)
    assert len(seen) == 2
