"""`IntrospectionVerifier`: opaque tokens through RFC 7662 introspection (issue 4, "Resource
server"). The endpoint is a fake `FormPoster` that records every POST."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from mcp_core.core.services.token_verifiers import FormPoster, IntrospectionVerifier
from mcp_core.ports.http_client import HttpResult, OutboundRefused
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

    async def post_form(
        self, url: str, *, form: Mapping[str, str], headers: dict[str, str] | None = None
    ) -> HttpResult:
        self.calls.append(Call(url, dict(form), dict(headers or {})))
        if self.failure is not None:
            raise self.failure
        body = json.dumps(self.answer).encode()
        return HttpResult(status=self.status, headers=(), body=body, final_url=url)


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
    assert isinstance(poster, FormPoster)
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
