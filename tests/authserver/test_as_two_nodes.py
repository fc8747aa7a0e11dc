"""Two nodes behind a load balancer, no sticky sessions: the consent ticket and the sign-in
form's nonce are sealed values, so any node holding the same key answers them.

Two `AuthorizationServer`s share the client and grant stores, the signing keys and the
`ticket_key`, each behind its own `AuthorizationApp`: a consent page shown by node A is
answered on node B; a tampered, forged, expired or other subject's ticket is refused, and a
replayed one mints no second code whichever node it reaches (its single-use marker lives in the
shared `GrantStore`; on every backend, including a race of two posts). Two `FormLogin`s sharing
a key accept each other's forms; one with another key does not.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import anyio
import attrs
import httpx
import pytest
from as_support import ISSUER, REDIRECT, RESOURCE, FakeClock, OsRandom, pkce
from oauth_e2e.backends import BACKENDS, open_backend

from mcp_core.adapters.asgi.authorization import AuthorizationApp
from mcp_core.adapters.asgi.login import FormLogin
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.core.http.relay_form import NONCE_FIELD
from mcp_core.core.services.authorization_server import (
    AuthorizationServer,
    ConsentRequest,
    RequestFacts,
)
from mcp_core.ports.oauth_stores import ClientStore, GrantStore

pytestmark = pytest.mark.anyio


@attrs.define
class Signed:
    """A `UserAuthenticator` whose signed-in subject the test sets (None: nobody)."""

    subject: str | None = "alice"

    async def authenticate(self, request: RequestFacts) -> str | None:
        return self.subject


async def ask(request: ConsentRequest) -> Literal["approve", "deny", "ask"]:
    return "ask"


@attrs.define
class Node:
    server: AuthorizationServer
    user: Signed
    http: httpx.AsyncClient

    async def consent_page(self, client_id: str, challenge: str) -> str:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-2",
            "resource": RESOURCE,
        }
        page = await self.http.get("/authorize", params=params)
        assert page.status_code == 200, page.text
        return page.text.split('name=consent_ticket value="')[1].split('"')[0]

    async def answer(self, ticket: str, decision: str = "approve") -> httpx.Response:
        form = {"consent_ticket": ticket, "decision": decision}
        return await self.http.post("/authorize", data=form, headers={"origin": "null"})


@attrs.define
class Cluster:
    a: Node
    b: Node
    clock: FakeClock
    grants: GrantStore
    client_id: str = ""

    async def exchange(self, node: Node, code: str, verifier: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "resource": RESOURCE,
        }
        return await node.http.post("/token", data=form)


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params["state"] == "st-2"
    assert params["iss"] == ISSUER
    return params["code"]


def refused(response: httpx.Response, why: str) -> None:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert why in response.text


@asynccontextmanager
async def cluster(
    clients: ClientStore | None = None,
    grants: GrantStore | None = None,
    *,
    key_b: bytes | None = None,
    shared: bool = True,
) -> AsyncIterator[Cluster]:
    """Nodes A and B on the same stores and signing keys; B's `ticket_key` is A's unless
    `key_b` is given, and neither has one (each draws its own) when not `shared`."""
    clock = FakeClock()
    keys = InMemoryKeySet(clock=clock)
    clients = clients if clients is not None else InMemoryClientStore()
    grants = grants if grants is not None else InMemoryGrantStore()
    key_a = secrets.token_bytes(32) if shared else None
    ticket_keys = (key_a, key_b if key_b is not None else key_a)
    async with AsyncExitStack() as stack:
        nodes = []
        for ticket_key in ticket_keys:
            server = AuthorizationServer(
                ISSUER,
                clients=clients,
                grants=grants,
                keys=keys,
                clock=clock,
                random=OsRandom(),
                resources={RESOURCE},
                consent=ask,
                ticket_key=ticket_key,
            )
            user = Signed()
            app = AuthorizationApp(server, authenticator=user)
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
            )
            nodes.append(Node(server, user, http))
        two = Cluster(nodes[0], nodes[1], clock, grants)
        registered = await two.a.http.post(
            "/register",
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "client_name": "Two nodes",
            },
        )
        assert registered.status_code == 201, registered.text
        two.client_id = registered.json()["client_id"]
        yield two


# ---- consent ---------------------------------------------------------------------------------


async def test_a_consent_page_from_node_a_is_approved_on_node_b() -> None:
    async with cluster() as two:
        verifier, challenge = pkce()
        ticket = await two.a.consent_page(two.client_id, challenge)
        code = code_of(await two.b.answer(ticket))
        tokens = await two.exchange(two.a, code, verifier)
        assert tokens.status_code == 200, tokens.text
        claims = two.a.server.keys.verify(
            tokens.json()["access_token"], audience=RESOURCE, issuer=ISSUER
        )
        assert claims["sub"] == "alice"
        assert claims["client_id"] == two.client_id


async def test_a_denial_on_node_b_goes_back_to_the_client() -> None:
    async with cluster() as two:
        _, challenge = pkce()
        ticket = await two.a.consent_page(two.client_id, challenge)
        denied = await two.b.answer(ticket, "deny")
        assert denied.status_code == 302
        params = parse_qs(urlsplit(denied.headers["location"]).query)
        assert params["error"] == ["access_denied"]
        assert params["state"] == ["st-2"]
        # Answered once: approving the same ticket afterwards, anywhere, is refused.
        refused(await two.a.answer(ticket), "already answered")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_replayed_ticket_mints_no_second_code_on_any_node(
    backend: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        clients, grants = await open_backend(backend, tmp_path, stack)
        async with cluster(clients, grants) as two:
            verifier, challenge = pkce()
            ticket = await two.a.consent_page(two.client_id, challenge)
            code = code_of(await two.b.answer(ticket))
            for node in (two.a, two.b):
                refused(await node.answer(ticket), "already answered")
            assert (await two.exchange(two.b, code, verifier)).status_code == 200

            # Two posts of one fresh ticket at once, one to each node: exactly one code.
            ticket = await two.b.consent_page(two.client_id, challenge)
            answers: list[httpx.Response] = []

            async def post(node: Node) -> None:
                answers.append(await node.answer(ticket))

            async with anyio.create_task_group() as group:
                group.start_soon(post, two.a)
                group.start_soon(post, two.b)
            assert sorted(r.status_code for r in answers) == [302, 400]


async def test_a_ticket_of_another_subject_is_refused_and_stays_the_users() -> None:
    async with cluster() as two:
        _, challenge = pkce()
        ticket = await two.a.consent_page(two.client_id, challenge)
        two.b.user.subject = "mallory"
        refused(await two.b.answer(ticket), "not valid")
        two.b.user.subject = None
        refused(await two.b.answer(ticket), "not valid")
        # Refusing another subject's post did not spend the user's ticket.
        two.b.user.subject = "alice"
        code_of(await two.b.answer(ticket))


async def test_an_expired_ticket_is_refused_on_either_node() -> None:
    async with cluster() as two:
        _, challenge = pkce()
        ticket = await two.a.consent_page(two.client_id, challenge)
        two.clock.t += two.a.server.consent_ttl + 1
        for node in (two.a, two.b):
            refused(await node.answer(ticket), "expired")


def _reseal(ticket: str, change: Any) -> str:
    """The ticket with its payload changed and its MAC kept (what an attacker can do)."""
    version, payload, mac = ticket.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(fields)
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return f"{version}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{mac}"


async def test_a_tampered_or_forged_ticket_is_refused() -> None:
    async with cluster() as two:
        _, challenge = pkce()
        ticket = await two.a.consent_page(two.client_id, challenge)
        version, payload, mac = ticket.split(".")
        flipped = "A" if mac[5] != "A" else "B"

        def redirect_elsewhere(fields: list[Any]) -> None:
            fields[3] = "https://evil.example/callback"

        def live_longer(fields: list[Any]) -> None:
            fields[8] += 86_400

        def other_subject(fields: list[Any]) -> None:
            fields[1] = "mallory"

        forged = [
            _reseal(ticket, redirect_elsewhere),
            _reseal(ticket, live_longer),
            _reseal(ticket, other_subject),
            f"{version}.{payload}.{mac[:5]}{flipped}{mac[6:]}",
            f"{version}.{payload}",
            f"c0.{payload}.{mac}",
            f"{ticket}.x",
            "",
            "c1." + "A" * 12_300 + ".AAAA",  # over MAX_TICKET_LENGTH, under the body cap
        ]
        two.b.user.subject = "mallory"
        assert (await two.b.answer(forged[2])).status_code == 400
        two.b.user.subject = "alice"
        for value in forged:
            refused(await two.b.answer(value), "not valid")
        # None of that spent the genuine ticket.
        code_of(await two.b.answer(ticket))


async def test_a_node_with_another_ticket_key_refuses_the_ticket() -> None:
    async with cluster(key_b=secrets.token_bytes(32)) as two:
        _, challenge = pkce()
        ticket = await two.a.consent_page(two.client_id, challenge)
        refused(await two.b.answer(ticket), "not valid")
        code_of(await two.a.answer(ticket))
    # Without a shared key each node draws its own: a single node still works, alone.
    async with cluster(shared=False) as two:
        _, challenge = pkce()
        ticket = await two.a.consent_page(two.client_id, challenge)
        refused(await two.b.answer(ticket), "not valid")
        code_of(await two.a.answer(ticket))


async def test_a_short_ticket_key_is_refused() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="32 bytes"):
        AuthorizationServer(
            ISSUER,
            clients=InMemoryClientStore(),
            grants=InMemoryGrantStore(),
            keys=InMemoryKeySet(clock=clock),
            clock=clock,
            random=OsRandom(),
            ticket_key=b"k" * 31,
        )


async def test_a_request_too_large_for_a_ticket_is_refused_with_a_redirect() -> None:
    async with cluster() as two:
        _, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": two.client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            # Control characters take six bytes each in the sealed JSON.
            "state": "\x01" * 2_600,
            "resource": RESOURCE,
        }
        answer = await two.a.http.get("/authorize", params=params)
        assert answer.status_code == 302
        assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_request"]


# ---- sign-in forms -----------------------------------------------------------------------------


async def _verify(values: Any) -> str | None:
    return "alice" if values["password"] == "correct horse" else None


def _form_nonce(page: str) -> str:
    return page.split(f'name="{NONCE_FIELD}" value="')[1].split('"')[0]


async def test_a_sign_in_form_from_node_a_is_posted_to_node_b() -> None:
    clock, key = FakeClock(), secrets.token_bytes(32)
    a, b, c = (
        FormLogin(ISSUER, _verify, clock=clock, random=OsRandom(), key=k)
        for k in (key, key, secrets.token_bytes(32))
    )
    async with AsyncExitStack() as stack:
        http = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
            )
            for name, app in (("a", a), ("b", b), ("c", c))
        }
        page = await http["a"].get("/login")
        nonce = _form_nonce(page.text)
        cookie = {"cookie": f"{a.cookie_name}_form={nonce}"}
        data = {NONCE_FIELD: nonce, "username": "alice", "password": "correct horse"}
        # Node C holds another key: the form is not its own.
        other = await http["c"].post("/login", data=data, headers=cookie)
        assert other.status_code == 400
        lines = other.headers.get_list("set-cookie")
        assert not any(line.startswith(f"{a.cookie_name}=") for line in lines)
        signed_in = await http["b"].post("/login", data=data, headers=cookie)
        assert signed_in.status_code == 200, signed_in.text
        session = next(
            line.split(";")[0]
            for line in signed_in.headers.get_list("set-cookie")
            if line.startswith(f"{a.cookie_name}=")
        )
        facts = RequestFacts(method="GET", path="/", query={}, headers={"cookie": session})
        assert await a.authenticate(facts) == await b.authenticate(facts) == "alice"
        assert await c.authenticate(facts) is None
        # Expired on every node once its lifetime is over.
        page = await http["a"].get("/login")
        nonce = _form_nonce(page.text)
        clock.t += a.form_ttl
        cookie = {"cookie": f"{a.cookie_name}_form={nonce}"}
        data[NONCE_FIELD] = nonce
        assert (await http["b"].post("/login", data=data, headers=cookie)).status_code == 400
