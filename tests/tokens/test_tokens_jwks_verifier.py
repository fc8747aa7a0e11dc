"""`JwksVerifier`: an external identity provider's JWTs, with keys from its JWKS (issue 4,
"Resource server"; RFC 7517, RFC 8725 3.1, RFC 9068 4). The JWKS comes from a fake `HttpClient`
that records every fetch, and time from a fake clock, so the cache rules are counted exactly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import anyio
import attrs
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from mcp_core.adapters.token_verifiers import JwksVerifier, parse_jwks
from mcp_core.ports.http_client import HttpResult, OutboundFailed, OutboundPolicy
from mcp_core.ports.tokens import TokenInvalid, TokenVerifier, VerifierUnavailable

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
JWKS_URL = "https://idp.example/.well-known/jwks.json"
RESOURCE = "https://mcp.example/mcp"
T0 = 1_800_000_000.0


@attrs.define
class FakeClock:
    wall_time: float = T0

    def now(self) -> float:
        return self.wall_time

    def wall(self) -> float:
        return self.wall_time

    def advance(self, seconds: float) -> None:
        self.wall_time += seconds


@attrs.define
class FakeHttpClient:
    """Answers GETs with `document` (or raises `failure`); records every call. When `gate` is
    set, each fetch waits for it, so tests can hold a fetch in flight."""

    document: dict[str, Any] | None = None
    status: int = 200
    failure: Exception | None = None
    gate: anyio.Event | None = None
    calls: list[str] = attrs.field(factory=list)

    async def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        policy: OutboundPolicy | None = None,
    ) -> HttpResult:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        body = json.dumps(self.document).encode()
        return HttpResult(status=self.status, headers=(), body=body, final_url=url)


@attrs.frozen
class IdpKey:
    alg: str
    kid: str
    private_key: Any = attrs.field(repr=False)

    def jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        public = self.private_key.public_key()
        algorithm: Any = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
        jwk = dict(algorithm[self.alg].to_jwk(public, as_dict=True))
        jwk.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private_key, algorithm=self.alg, headers={"kid": self.kid, **header}
        )


@pytest.fixture(scope="module")
def rsa_key() -> IdpKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return IdpKey("RS256", "rsa-1", key)


@pytest.fixture(scope="module")
def ec_key() -> IdpKey:
    return IdpKey("ES256", "ec-1", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def ed_key() -> IdpKey:
    return IdpKey("EdDSA", "ed-1", ed25519.Ed25519PrivateKey.generate())


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "user-1",
        "azp": "client-1",
        "iat": int(T0),
        "exp": int(T0) + 300,
        "scope": "tools:read",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http(rsa_key: IdpKey, ec_key: IdpKey, ed_key: IdpKey) -> FakeHttpClient:
    return FakeHttpClient(document={"keys": [rsa_key.jwk(), ec_key.jwk(), ed_key.jwk()]})


def make(http: FakeHttpClient, clock: FakeClock, **options: Any) -> JwksVerifier:
    options.setdefault("refresh_interval", 600)
    options.setdefault("unknown_kid_min_interval", 30)
    return JwksVerifier(ISSUER, JWKS_URL, http, clock, **options)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"x") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(body).encode()), b64(signature)]
    )


# ---- valid tokens ----------------------------------------------------------------------------


async def test_jwks_verifier_is_a_token_verifier(http: FakeHttpClient, clock: FakeClock) -> None:
    assert isinstance(make(http, clock), TokenVerifier)
    assert http.calls == []  # fetched lazily


@pytest.mark.parametrize("which", ["rsa_key", "ec_key", "ed_key"])
async def test_valid_token_of_each_algorithm(
    which: str, request: pytest.FixtureRequest, http: FakeHttpClient, clock: FakeClock
) -> None:
    key: IdpKey = request.getfixturevalue(which)
    info = await make(http, clock).verify(key.sign(claims()), resource=RESOURCE)
    assert info.subject == "user-1"
    assert info.client_id == "client-1"
    assert info.scopes == frozenset({"tools:read"})
    assert info.audience == (RESOURCE,)
    assert info.issuer == ISSUER
    assert info.expires_at == T0 + 300
    assert http.calls == [JWKS_URL]


async def test_scp_list_gives_scopes(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    token = ec_key.sign(claims(scope=None, scp=["a", "b"]))
    info = await make(http, clock).verify(token, resource=RESOURCE)
    assert info.scopes == frozenset({"a", "b"})


async def test_key_without_alg_gets_it_from_its_type(
    ec_key: IdpKey, ed_key: IdpKey, rsa_key: IdpKey, clock: FakeClock
) -> None:
    keys = [k.jwk(with_alg=False) for k in (ec_key, ed_key, rsa_key)]
    parsed = parse_jwks({"keys": keys}, ("RS256", "ES256", "EdDSA"))
    assert {kid: key.alg for kid, key in parsed.items()} == {
        "ec-1": "ES256",
        "ed-1": "EdDSA",
        "rsa-1": "RS256",
    }
    verifier = make(FakeHttpClient(document={"keys": keys}), clock)
    assert (await verifier.verify(ed_key.sign(claims()), resource=RESOURCE)).subject == "user-1"


def test_unusable_keys_are_left_out(ec_key: IdpKey) -> None:
    secret = {"kty": "oct", "k": b64(b"s" * 32), "kid": "hmac", "alg": "HS256"}
    enc = {**ec_key.jwk(), "kid": "enc", "use": "enc"}
    lying = {**ec_key.jwk(), "kid": "lying", "alg": "RS256"}
    no_kid = {k: v for k, v in ec_key.jwk().items() if k != "kid"}
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = {**RSAAlgorithm.to_jwk(small.public_key(), as_dict=True), "kid": "weak"}
    private = {**ECAlgorithm.to_jwk(ec_key.private_key, as_dict=True), "kid": "private"}
    document = {"keys": [secret, enc, lying, no_kid, weak, private, "junk", ec_key.jwk()]}
    assert set(parse_jwks(document, ("RS256", "ES256", "EdDSA"))) == {"ec-1"}
    # An operator's list narrows what is accepted.
    assert parse_jwks(document, ("RS256",)) == {}


# ---- refusals --------------------------------------------------------------------------------


async def test_token_for_another_resource_is_refused(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    token = ec_key.sign(claims(aud="https://other.example/mcp"))
    with pytest.raises(TokenInvalid) as caught:
        await make(http, clock).verify(token, resource=RESOURCE)
    assert caught.value.reason == "wrong_audience"


async def test_expired_beyond_leeway_is_refused(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    verifier = make(http, clock, leeway=30)
    token = ec_key.sign(claims())
    clock.advance(300 + 29)
    assert (await verifier.verify(token, resource=RESOURCE)).subject == "user-1"
    clock.advance(2)
    with pytest.raises(TokenInvalid) as caught:
        await verifier.verify(token, resource=RESOURCE)
    assert caught.value.reason == "expired"


@pytest.mark.parametrize("name", ["iss", "aud", "exp", "sub"])
async def test_missing_required_claim_is_refused(
    name: str, ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    token = ec_key.sign(claims(**{name: None}))
    with pytest.raises(TokenInvalid) as caught:
        await make(http, clock).verify(token, resource=RESOURCE)
    assert caught.value.reason == "missing_claim"


async def test_wrong_issuer_is_refused(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    with pytest.raises(TokenInvalid, match="wrong_issuer"):
        await make(http, clock).verify(ec_key.sign(claims(iss="https://evil")), resource=RESOURCE)


async def test_alg_none_is_refused(ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock) -> None:
    token = forged({"alg": "none", "kid": ec_key.kid}, claims(), b"")
    with pytest.raises(TokenInvalid) as caught:
        await make(http, clock).verify(token, resource=RESOURCE)
    assert caught.value.reason == "alg_none"


async def test_hs256_signed_with_the_public_key_is_refused(
    rsa_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    # The classic confusion: HMAC keyed with the RSA public key a verifier would load.
    pem = rsa_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(TokenInvalid) as caught:
        await make(http, clock).verify(f"{signing_input}.{b64(signature)}", resource=RESOURCE)
    assert caught.value.reason == "alg_not_allowed"


async def test_header_alg_other_than_the_keys_is_refused(
    rsa_key: IdpKey, ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    # Signed by the RSA key but naming the EC key's kid: the EC key's algorithm decides.
    token = jwt.encode(
        claims(), rsa_key.private_key, algorithm="RS256", headers={"kid": ec_key.kid}
    )
    with pytest.raises(TokenInvalid) as caught:
        await make(http, clock).verify(token, resource=RESOURCE)
    assert caught.value.reason == "alg_mismatch"


async def test_bad_signature_and_garbage_are_refused(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    verifier = make(http, clock)
    other = IdpKey("ES256", ec_key.kid, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(TokenInvalid, match="bad_signature"):
        await verifier.verify(other.sign(claims()), resource=RESOURCE)
    for garbage in ["", "abc", "a.b", "!!.!!.!!", forged({"alg": "ES256"}, claims())]:
        with pytest.raises(TokenInvalid):
            await verifier.verify(garbage, resource=RESOURCE)


async def test_oversized_token_is_refused_without_a_fetch(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    token = ec_key.sign(claims(padding="x" * 9000))
    with pytest.raises(TokenInvalid) as caught:
        await make(http, clock).verify(token, resource=RESOURCE)
    assert caught.value.reason == "too_large"
    assert http.calls == []


def test_configuration_is_bounded(http: FakeHttpClient, clock: FakeClock) -> None:
    bad_options: list[dict[str, Any]] = [
        {"algorithms": ("HS256",)},
        {"algorithms": ("RS256", "none")},
        {"algorithms": ()},
        {"leeway": 61},
        {"max_token_bytes": 8193},
        {"required_claims": ("iss", "aud", "exp")},
        {"unknown_kid_min_interval": 700},
    ]
    for bad in bad_options:
        with pytest.raises((ValueError, TypeError)):
            make(http, clock, **bad)


# ---- the cache -------------------------------------------------------------------------------


async def test_last_good_key_set_is_served_during_an_outage(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    verifier = make(http, clock)
    token = ec_key.sign(claims(exp=int(T0) + 10_000))
    await verifier.verify(token, resource=RESOURCE)
    http.failure = OutboundFailed("connection refused")
    clock.advance(601)  # the set is due for a refresh, which fails
    assert (await verifier.verify(token, resource=RESOURCE)).subject == "user-1"
    assert len(http.calls) == 2
    http.failure, http.status = None, 500  # an error page is no better
    clock.advance(31)
    assert (await verifier.verify(token, resource=RESOURCE)).subject == "user-1"
    assert len(http.calls) == 3
    http.status, http.document = 200, {"keys": []}  # nor is an empty set
    clock.advance(31)
    assert (await verifier.verify(token, resource=RESOURCE)).subject == "user-1"
    assert len(http.calls) == 4
    # Retries during the outage are paced by the minimum interval.
    for _ in range(20):
        await verifier.verify(token, resource=RESOURCE)
    assert len(http.calls) == 4


async def test_unavailable_only_when_there_never_was_a_key_set(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    good = http.document
    http.failure = OutboundFailed("timeout")
    verifier = make(http, clock)
    for _ in range(5):
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(ec_key.sign(claims()), resource=RESOURCE)
    assert len(http.calls) == 1  # retried no faster than the minimum interval
    http.failure, http.document = None, good
    clock.advance(30)
    assert (await verifier.verify(ec_key.sign(claims()), resource=RESOURCE)).subject == "user-1"
    assert len(http.calls) == 2


async def test_unknown_kid_refetch_is_rate_limited(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    verifier = make(http, clock)
    for index in range(50):
        garbage = IdpKey("ES256", f"garbage-{index}", ec_key.private_key)
        with pytest.raises(TokenInvalid) as caught:
            await verifier.verify(garbage.sign(claims()), resource=RESOURCE)
        assert caught.value.reason == "unknown_kid"
    assert len(http.calls) == 1  # the first fetch; the refetch right after it is too soon
    clock.advance(30)
    for index in range(50):
        garbage = IdpKey("ES256", f"garbage-{index}", ec_key.private_key)
        with pytest.raises(TokenInvalid):
            await verifier.verify(garbage.sign(claims()), resource=RESOURCE)
    assert len(http.calls) == 2


async def test_unknown_kid_picks_up_a_rotated_key(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    verifier = make(http, clock)
    await verifier.verify(ec_key.sign(claims()), resource=RESOURCE)
    rotated = IdpKey("ES256", "ec-2", ec.generate_private_key(ec.SECP256R1()))
    assert http.document is not None
    http.document = {"keys": [*http.document["keys"], rotated.jwk()]}
    clock.advance(31)
    assert (await verifier.verify(rotated.sign(claims()), resource=RESOURCE)).subject == "user-1"
    assert len(http.calls) == 2


async def test_concurrent_verifies_share_one_fetch(
    ec_key: IdpKey, ed_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    verifier = make(http, clock)
    http.gate = anyio.Event()
    subjects: list[str] = []

    async def one(key: IdpKey, index: int) -> None:
        info = await verifier.verify(key.sign(claims(sub=f"user-{index}")), resource=RESOURCE)
        subjects.append(info.subject)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(one, ec_key if index % 2 else ed_key, index)
            await anyio.wait_all_tasks_blocked()
            http.gate.set()
    assert len(subjects) == 20
    assert http.calls == [JWKS_URL]


async def test_concurrent_callers_share_a_failed_fetch_too(
    ec_key: IdpKey, http: FakeHttpClient, clock: FakeClock
) -> None:
    verifier = make(http, clock)
    http.gate = anyio.Event()
    http.failure = OutboundFailed("down")
    outcomes: list[type[Exception]] = []

    async def one() -> None:
        try:
            await verifier.verify(ec_key.sign(claims()), resource=RESOURCE)
        except VerifierUnavailable as error:
            outcomes.append(type(error))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(one)
            await anyio.wait_all_tasks_blocked()
            http.gate.set()
    assert outcomes == [VerifierUnavailable] * 10
    assert len(http.calls) == 1
