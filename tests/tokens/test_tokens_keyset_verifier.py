"""`KeySetVerifier`: our own at+jwt access tokens, through the `TokenVerifier` port (issue 4,
"Resource server"; RFC 9068 section 4)."""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import pytest

from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.token_verifiers import KeySetVerifier
from mcp_core.ports.tokens import TokenInvalid, TokenVerifier

pytestmark = pytest.mark.anyio

ISSUER = "https://as.example"
RESOURCE = "https://mcp.example/mcp"
T0 = 1_800_000_000.0


@attrs.define
class FakeClock:
    wall_time: float = T0

    def now(self) -> float:
        return self.wall_time

    def wall(self) -> float:
        return self.wall_time


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "user-1",
        "client_id": "client-1",
        "jti": "token-1",
        "iat": int(T0),
        "exp": int(T0) + 300,
        "scope": "tools:read tools:call",
    }
    base.update(changes)
    return base


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keyset(clock: FakeClock) -> InMemoryKeySet:
    return InMemoryKeySet("EdDSA", clock=clock)


@pytest.fixture
def verifier(keyset: InMemoryKeySet, clock: FakeClock) -> KeySetVerifier:
    return KeySetVerifier(keyset, ISSUER, clock)


def test_keyset_verifier_is_a_token_verifier(verifier: KeySetVerifier) -> None:
    assert isinstance(verifier, TokenVerifier)


async def test_valid_token_gives_its_facts(
    keyset: InMemoryKeySet, verifier: KeySetVerifier
) -> None:
    token = keyset.sign(claims(), headers={"typ": "at+jwt"})
    info = await verifier.verify(token, resource=RESOURCE)
    assert info.subject == "user-1"
    assert info.client_id == "client-1"
    assert info.scopes == frozenset({"tools:read", "tools:call"})
    assert info.audience == (RESOURCE,)
    assert info.issuer == ISSUER
    assert info.expires_at == T0 + 300
    assert info.token_id == "token-1"


async def test_token_for_another_resource_is_refused(
    keyset: InMemoryKeySet, verifier: KeySetVerifier
) -> None:
    token = keyset.sign(claims(aud="https://other.example/mcp"), headers={"typ": "at+jwt"})
    with pytest.raises(TokenInvalid) as caught:
        await verifier.verify(token, resource=RESOURCE)
    assert caught.value.reason == "wrong_audience"


async def test_audience_list_containing_the_resource_is_accepted(
    keyset: InMemoryKeySet, verifier: KeySetVerifier
) -> None:
    token = keyset.sign(claims(aud=["https://other.example", RESOURCE]), headers={"typ": "at+jwt"})
    info = await verifier.verify(token, resource=RESOURCE)
    assert RESOURCE in info.audience


async def test_expired_token_is_refused(
    keyset: InMemoryKeySet, verifier: KeySetVerifier, clock: FakeClock
) -> None:
    token = keyset.sign(claims(), headers={"typ": "at+jwt"})
    clock.wall_time = T0 + 300
    with pytest.raises(TokenInvalid) as caught:
        await verifier.verify(token, resource=RESOURCE)
    assert caught.value.reason == "expired"


async def test_leeway_accepts_a_just_expired_token_and_is_capped(
    keyset: InMemoryKeySet, clock: FakeClock
) -> None:
    token = keyset.sign(claims(), headers={"typ": "at+jwt"})
    clock.wall_time = T0 + 330
    info = await KeySetVerifier(keyset, ISSUER, clock, leeway=60).verify(token, resource=RESOURCE)
    assert info.subject == "user-1"
    clock.wall_time = T0 + 361
    with pytest.raises(TokenInvalid, match="expired"):
        await KeySetVerifier(keyset, ISSUER, clock, leeway=60).verify(token, resource=RESOURCE)
    with pytest.raises(ValueError, match="leeway"):
        KeySetVerifier(keyset, ISSUER, clock, leeway=61)


@pytest.mark.parametrize(
    ("header_alg", "reason"), [("none", "alg_none"), ("HS256", "alg_mismatch")]
)
async def test_alg_confusion_is_refused(
    keyset: InMemoryKeySet, verifier: KeySetVerifier, header_alg: str, reason: str
) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": header_alg, "typ": "at+jwt", "kid": keyset.current().kid}
    token = ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims()).encode()), b64(b"sig")]
    )
    with pytest.raises(TokenInvalid) as caught:
        await verifier.verify(token, resource=RESOURCE)
    assert caught.value.reason == reason


async def test_wrong_issuer_and_oversized_tokens_are_refused(
    keyset: InMemoryKeySet, verifier: KeySetVerifier
) -> None:
    token = keyset.sign(claims(iss="https://evil.example"), headers={"typ": "at+jwt"})
    with pytest.raises(TokenInvalid, match="wrong_issuer"):
        await verifier.verify(token, resource=RESOURCE)
    with pytest.raises(TokenInvalid, match="too_large"):
        await verifier.verify("a" * 9000, resource=RESOURCE)
