"""`KeySetVerifier`: our own at+jwt access tokens, through the `TokenVerifier` port (issue 4,
"Resource server"; RFC 9068 section 4)."""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import pytest

from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryGrantStore
from mcp_core.adapters.token_verifiers import KeySetVerifier
from mcp_core.ports.oauth_stores import StoreUnavailable
from mcp_core.ports.tokens import TokenInvalid, TokenVerifier, VerifierUnavailable

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


# ---- the deny-list: tokens revoked before they expire ---------------------------------------


class DownGrants(InMemoryGrantStore):
    """A grant store whose backend is down."""

    async def is_access_revoked(self, jti: str, now: float) -> bool:
        raise StoreUnavailable("the grant store is down")


async def test_a_token_revoked_by_jti_is_refused_until_it_would_expire(
    keyset: InMemoryKeySet, clock: FakeClock
) -> None:
    grants = InMemoryGrantStore()
    verifier = KeySetVerifier(keyset, ISSUER, clock, grants=grants)
    token = keyset.sign(claims(jti="fam-1.abc"), headers={"typ": "at+jwt"})
    other = keyset.sign(claims(jti="fam-1.def"), headers={"typ": "at+jwt"})
    assert (await verifier.verify(token, resource=RESOURCE)).token_id == "fam-1.abc"
    await grants.revoke_access("fam-1.abc", T0 + 300)
    with pytest.raises(TokenInvalid) as refused:
        await verifier.verify(token, resource=RESOURCE)
    assert refused.value.reason == "revoked"
    # Only that token: its sibling of the same family stays valid.
    assert (await verifier.verify(other, resource=RESOURCE)).token_id == "fam-1.def"


async def test_every_token_of_a_revoked_family_is_refused(
    keyset: InMemoryKeySet, clock: FakeClock
) -> None:
    grants = InMemoryGrantStore()
    verifier = KeySetVerifier(keyset, ISSUER, clock, grants=grants)
    tokens = [keyset.sign(claims(jti=f"fam-2.{n}"), headers={"typ": "at+jwt"}) for n in range(3)]
    unrelated = keyset.sign(claims(jti="fam-3.x"), headers={"typ": "at+jwt"})
    solo = keyset.sign(claims(jti="no-family"), headers={"typ": "at+jwt"})
    for token in tokens:
        await verifier.verify(token, resource=RESOURCE)
    assert await grants.revoke_family("fam-2", "code_replayed")
    for token in tokens:
        with pytest.raises(TokenInvalid) as refused:
            await verifier.verify(token, resource=RESOURCE)
        assert refused.value.reason == "revoked"
    await verifier.verify(unrelated, resource=RESOURCE)
    await verifier.verify(solo, resource=RESOURCE)  # client_credentials: no family to check


async def test_the_deny_list_fails_closed_when_the_store_is_down(
    keyset: InMemoryKeySet, clock: FakeClock
) -> None:
    verifier = KeySetVerifier(keyset, ISSUER, clock, grants=DownGrants())
    token = keyset.sign(claims(jti="fam-4.a"), headers={"typ": "at+jwt"})
    with pytest.raises(VerifierUnavailable):
        await verifier.verify(token, resource=RESOURCE)
    # Without a grant store there is no deny-list to consult: signature and claims only.
    assert await KeySetVerifier(keyset, ISSUER, clock).verify(token, resource=RESOURCE)
