"""Issue 4: signing users in with `FormLogin` in front of the built-in authorization server.

The whole flow goes over HTTP through `create_secured_app` (`httpx.ASGITransport`): a client's
/authorize is sent to /login, a wrong password is refused, the right one sets the session
cookie and returns to /authorize, which issues a code; the code buys a token that calls a
tool. Around it: the CSRF nonce (missing, forged, expired, not bound to the browser), `next`
(no open redirect), the cookie (tampering, expiry, attributes), the failure limits, and consent
asked on a page that posts back with the cookie. Cookies are sent by hand (the client's jar is
cleared on every request) so that each test says exactly what the browser holds.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

import attrs
import httpx
import pytest

from mcp_core.adapters.asgi.login import FormLogin
from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.adapters.system import SystemRandom
from mcp_core.core.http.login import (
    FailureLimiter,
    check_form_nonce,
    cookie_secure,
    read_session,
    safe_next,
    sign_form_nonce,
    sign_session,
)
from mcp_core.core.http.relay_form import NONCE_FIELD, CredentialField
from mcp_core.core.services.authorization_server import (
    AuthorizationServer,
    ConsentCallback,
    ConsentRequest,
    LoginRedirector,
    RequestFacts,
    UserAuthenticator,
)
from mcp_core.core.services.server import McpServer

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:9000"
RESOURCE = f"{ISSUER}/mcp"
REDIRECT = "http://127.0.0.1:43123/callback"
PROTOCOL = "2025-11-25"
USERS = {"alice": "correct horse"}
COOKIE = "mcp_core_session"
FORM_COOKIE = "mcp_core_session_form"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


async def verify(values: Mapping[str, str]) -> str | None:
    expected = USERS.get(values["username"])
    if expected is not None and secrets.compare_digest(expected, values["password"]):
        return values["username"]
    return None


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie line, for every cookie the response sets."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def cookie_value(line: str) -> str:
    return line.split(";", 1)[0].split("=", 1)[1]


def form_nonce(page: str) -> str:
    found = re.search(rf'name="{NONCE_FIELD}" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def form_action(page: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+)"', page)
    assert found is not None, page
    return found.group(1).replace("&amp;", "&")


@attrs.define
class Browser:
    """The user agent: holds its cookies explicitly and follows nothing by itself."""

    http: httpx.AsyncClient
    cookies: dict[str, str] = attrs.field(factory=dict)

    def header(self) -> dict[str, str]:
        jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {"cookie": jar} if jar else {}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self.http.cookies.clear()
        headers = {**self.header(), **kwargs.pop("headers", {})}
        response = await self.http.request(method, url, headers=headers, **kwargs)
        self.http.cookies.clear()
        for name, line in set_cookies(response).items():
            if "Max-Age=0" in line:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie_value(line)
        return response

    async def sign_in(self, login_url: str, password: str, **extra: str) -> httpx.Response:
        page = await self.request("GET", login_url)
        assert page.status_code == 200, page.text
        data = {NONCE_FIELD: form_nonce(page.text), "username": "alice", "password": password}
        return await self.request("POST", form_action(page.text), data={**data, **extra})


@attrs.define
class Client:
    """The OAuth client: registration, PKCE, the exchange, the MCP call."""

    http: httpx.AsyncClient
    client_id: str = ""
    verifier: str = ""
    state: str = ""

    async def register(self) -> None:
        answer = await self.http.post(
            "/register",
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "client_name": "login test",
            },
        )
        assert answer.status_code == 201, answer.text
        self.client_id = answer.json()["client_id"]

    def authorize_url(self) -> str:
        self.verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(self.verifier.encode()).digest()
        self.state = secrets.token_urlsafe(8)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            "state": self.state,
            "resource": RESOURCE,
        }
        return str(httpx.URL("/authorize", params=params))

    def code_from(self, answer: httpx.Response) -> str:
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert query["state"] == self.state
        assert query["iss"] == ISSUER
        return query["code"]

    async def token(self, code: str) -> str:
        answer = await self.http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "client_id": self.client_id,
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": self.verifier,
            },
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    async def add(self, token: str, a: int, b: int) -> int:
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            "mcp-protocol-version": PROTOCOL,
            "authorization": f"Bearer {token}",
        }
        init = await self.http.post(
            "/mcp",
            headers=headers,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
        )
        assert init.status_code == 200, init.text
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
        done = await self.http.post(
            "/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
        )
        assert done.status_code == 202
        call = await self.http.post(
            "/mcp",
            headers=headers,
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "add", "arguments": {"a": a, "b": b}},
            },
        )
        assert call.status_code == 200, call.text
        return int(call.json()["result"]["content"][0]["text"])


@attrs.define
class Setup:
    browser: Browser
    client: Client
    login: FormLogin
    clock: Clock
    asked: list[ConsentRequest]


def build_mcp() -> McpServer:
    server = McpServer("login", version="1.0")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return server


async def _setup(consent: Literal["auto", "ask"], **login_options: Any) -> AsyncIterator[Setup]:
    clock = Clock()
    asked: list[ConsentRequest] = []

    async def ask(request: ConsentRequest) -> Literal["approve", "deny", "ask"]:
        asked.append(request)
        return "ask"

    policy: Literal["auto"] | ConsentCallback = "auto" if consent == "auto" else ask
    authorization = AuthorizationServer(
        ISSUER,
        clients=InMemoryClientStore(),
        grants=InMemoryGrantStore(),
        keys=InMemoryKeySet(clock=clock),
        clock=clock,
        random=SystemRandom(),
        resources={RESOURCE},
        consent=policy,
    )
    login = FormLogin(
        ISSUER, verify, clock=clock, random=SystemRandom(), display_name="Demo", **login_options
    )
    app = create_secured_app(
        build_mcp(),
        resource=RESOURCE,
        authorization=authorization,
        authenticator=login,
        clock=clock,
        response_mode="json",
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.5", 5000)), base_url=ISSUER
    ) as http:
        client = Client(http)
        await client.register()
        yield Setup(Browser(http), client, login, clock, asked)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    async for value in _setup("auto"):
        yield value


async def start(setup: Setup) -> tuple[str, str]:
    """The client's /authorize (no session yet): 303 to /login; (authorize URL, login URL)."""
    authorize = setup.client.authorize_url()
    answer = await setup.browser.request("GET", authorize)
    assert answer.status_code == 303, answer.text
    assert answer.headers["cache-control"] == "no-store"
    login_url = answer.headers["location"]
    assert login_url == f"/login?next={quote(authorize, safe='')}"
    return authorize, login_url


# ---- the whole flow ---------------------------------------------------------------------------


async def test_sign_in_then_authorize_then_token_then_tool_call(setup: Setup) -> None:
    browser = setup.browser
    authorize, login_url = await start(setup)

    page = await browser.request("GET", login_url)
    assert page.status_code == 200
    assert "<h1>Sign in to Demo</h1>" in page.text
    assert 'type="password"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    bound = set_cookies(page)[FORM_COOKIE]
    assert "SameSite=Strict" in bound
    assert "HttpOnly" in bound
    assert "Path=/login" in bound

    data = {NONCE_FIELD: form_nonce(page.text), "username": "alice", "password": "wrong"}
    refused = await browser.request("POST", form_action(page.text), data=data)
    assert refused.status_code == 200
    assert "not right" in refused.text
    assert COOKIE not in set_cookies(refused)
    assert 'value="alice"' in refused.text  # the user name is shown again
    assert "wrong" not in refused.text  # the password never is

    data = {NONCE_FIELD: form_nonce(refused.text), "username": "alice", "password": USERS["alice"]}
    accepted = await browser.request("POST", form_action(refused.text), data=data)
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"] == authorize
    session = set_cookies(accepted)[COOKIE]
    attributes = {part.strip() for part in session.split(";")[1:]}
    assert attributes == {"Path=/", "Max-Age=28800", "HttpOnly", "SameSite=Lax"}  # loopback http
    assert COOKIE in browser.cookies

    code = setup.client.code_from(await browser.request("GET", authorize))
    assert await setup.client.add(await setup.client.token(code), 2, 3) == 5

    # Signing out clears the cookie: the next authorization goes to /login again.
    out = await browser.request("POST", "/logout")
    assert out.status_code == 200
    assert "Max-Age=0" in set_cookies(out)[COOKIE]
    assert COOKIE not in browser.cookies
    again = await browser.request("GET", setup.client.authorize_url())
    assert again.status_code == 303
    assert again.headers["location"].startswith("/login?next=")


async def test_consent_asked_on_a_page_that_posts_back_with_the_cookie() -> None:
    async for setup in _setup("ask"):
        browser = setup.browser
        authorize, login_url = await start(setup)
        assert (await browser.sign_in(login_url, USERS["alice"])).status_code == 303
        page = await browser.request("GET", authorize)
        assert page.status_code == 200, page.text
        assert [r.subject for r in setup.asked] == ["alice"]
        ticket = re.search(r'name=consent_ticket value="([^"]+)"', page.text)
        assert ticket is not None
        form = {"consent_ticket": ticket.group(1), "decision": "approve"}

        # Without the session cookie the answer is not the user's: refused (the ticket is
        # bound to the subject who was shown the page).
        stranger = Browser(browser.http)
        assert (await stranger.request("POST", "/authorize", data=form)).status_code == 400

        page = await browser.request("GET", authorize)
        ticket = re.search(r'name=consent_ticket value="([^"]+)"', page.text)
        assert ticket is not None
        form = {"consent_ticket": ticket.group(1), "decision": "approve"}
        code = setup.client.code_from(await browser.request("POST", "/authorize", data=form))
        assert await setup.client.add(await setup.client.token(code), 20, 22) == 42


async def test_an_invalid_request_is_not_sent_to_sign_in(setup: Setup) -> None:
    answer = await setup.browser.request("GET", "/authorize?client_id=nobody&response_type=code")
    assert answer.status_code == 400
    assert "location" not in answer.headers


# ---- CSRF ---------------------------------------------------------------------------------------


async def test_a_post_without_a_nonce_is_refused(setup: Setup) -> None:
    _, login_url = await start(setup)
    await setup.browser.request("GET", login_url)
    data = {"username": "alice", "password": USERS["alice"]}
    answer = await setup.browser.request("POST", login_url, data=data)
    assert answer.status_code == 400
    assert "expired" in answer.text
    assert COOKIE not in set_cookies(answer)


async def test_a_refused_post_renews_the_nonce_and_the_old_one_needs_its_cookie(
    setup: Setup,
) -> None:
    _, login_url = await start(setup)
    page = await setup.browser.request("GET", login_url)
    nonce = form_nonce(page.text)
    data = {NONCE_FIELD: nonce, "username": "alice", "password": "wrong"}
    refused = await setup.browser.request("POST", login_url, data=data)
    assert refused.status_code == 200
    fresh = form_nonce(refused.text)
    assert fresh != nonce
    assert setup.browser.cookies[FORM_COOKIE] == fresh
    # The old nonce with the cookie the browser now holds: not the same value, refused.
    data = {NONCE_FIELD: nonce, "username": "alice", "password": USERS["alice"]}
    answer = await setup.browser.request("POST", login_url, data=data)
    assert answer.status_code == 400
    assert COOKIE not in set_cookies(answer)


async def test_a_nonce_is_not_single_use_but_stays_bound_to_the_browser(setup: Setup) -> None:
    """Stateless nonces (any node accepts them): the browser holding the form and its cookie
    may post it again within `form_ttl` (documented: harmless, the credentials are checked
    again); nobody else can, and the post still goes through the failure limits."""
    _, login_url = await start(setup)
    page = await setup.browser.request("GET", login_url)
    nonce = form_nonce(page.text)
    data = {NONCE_FIELD: nonce, "username": "alice", "password": "wrong"}
    assert (await setup.browser.request("POST", login_url, data=data)).status_code == 200
    setup.browser.cookies[FORM_COOKIE] = nonce
    data = {NONCE_FIELD: nonce, "username": "alice", "password": USERS["alice"]}
    answer = await setup.browser.request("POST", login_url, data=data)
    assert answer.status_code == 303
    assert COOKIE in set_cookies(answer)
    stranger = Browser(setup.browser.http)
    assert (await stranger.request("POST", login_url, data=data)).status_code == 400


async def test_a_nonce_from_another_browser_is_refused(setup: Setup) -> None:
    """Login CSRF: an attacker's nonce posted from the victim's browser (no form cookie)."""
    _, login_url = await start(setup)
    attacker = await setup.browser.request("GET", login_url)
    victim = Browser(setup.browser.http)
    data = {NONCE_FIELD: form_nonce(attacker.text), "username": "alice", "password": "x"}
    data["password"] = USERS["alice"]
    answer = await victim.request("POST", login_url, data=data)
    assert answer.status_code == 400
    assert COOKIE not in victim.cookies


async def test_an_expired_form_is_refused(setup: Setup) -> None:
    _, login_url = await start(setup)
    page = await setup.browser.request("GET", login_url)
    setup.clock.t += setup.login.form_ttl + 1
    data = {NONCE_FIELD: form_nonce(page.text), "username": "alice", "password": USERS["alice"]}
    answer = await setup.browser.request("POST", login_url, data=data)
    assert answer.status_code == 400
    assert COOKIE not in set_cookies(answer)


# ---- next ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/authorize",
        "//evil.example/authorize",
        "/\\evil.example/authorize",
        "/other",
        "/authorize/../other",
        "/authorizex",
        "/authorize#frag",
        "/authorize?x=1\r\nset-cookie: a=b",
        "http:/authorize",
        "",
    ],
)
async def test_next_must_lead_to_this_authorize(setup: Setup, target: str) -> None:
    url = f"/login?next={quote(target, safe='')}"
    page = await setup.browser.request("GET", url)
    assert page.status_code == 400
    # Even with a valid form from elsewhere, the post goes nowhere.
    good = await setup.browser.request("GET", "/login?next=%2Fauthorize")
    data = {NONCE_FIELD: form_nonce(good.text), "username": "alice", "password": USERS["alice"]}
    answer = await setup.browser.request("POST", url, data=data)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert COOKIE not in set_cookies(answer)


def test_safe_next_accepts_only_the_authorize_path() -> None:
    assert safe_next("/as/authorize?client_id=a&x=%2F%2F", "/as/authorize") is not None
    assert safe_next("/as/authorize", "/as/authorize") == "/as/authorize"
    assert safe_next("/authorize", "/as/authorize") is None
    assert safe_next("/as/authorize?" + "a" * 10_000, "/as/authorize") is None
    assert safe_next("/as/authorize?é", "/as/authorize") is None


async def test_without_next_signing_in_says_so(setup: Setup) -> None:
    answer = await setup.browser.sign_in("/login", USERS["alice"])
    assert answer.status_code == 200
    assert "signed in" in answer.text
    assert COOKIE in setup.browser.cookies


# ---- the cookie ---------------------------------------------------------------------------------


async def test_a_tampered_or_foreign_cookie_is_nobody(setup: Setup) -> None:
    authorize, login_url = await start(setup)
    await setup.browser.sign_in(login_url, USERS["alice"])
    value = setup.browser.cookies[COOKIE]
    facts = RequestFacts(method="GET", path="/authorize", query={}, headers={})

    def with_cookie(v: str) -> RequestFacts:
        return attrs.evolve(facts, headers={"cookie": f"other=1; {COOKIE}={v}"})

    assert await setup.login.authenticate(with_cookie(value)) == "alice"
    version, subject, expires, mac = value.split(".")
    bob = base64.urlsafe_b64encode(b"bob").rstrip(b"=").decode()
    for forged in (
        f"{version}.{bob}.{expires}.{mac}",  # another subject
        f"{version}.{subject}.{int(expires) + 3600}.{mac}",  # a longer life
        f"{version}.{subject}.{expires}.{mac[:-2]}AA",  # another MAC
        f"{version}.{subject}.{expires}",
        "",
        f"{version}.\u00e9.{expires}.{mac}",  # not ASCII (a cookie may carry latin-1)
        f"{version}.{subject}.\u00b2.{mac}",  # a digit, but not an ASCII one
    ):
        assert await setup.login.authenticate(with_cookie(forged)) is None
    # Signed with another key (another deployment), or for another issuer: nobody.
    other_key = sign_session(b"k" * 32, ISSUER, "alice", setup.clock.t + 60)
    assert await setup.login.authenticate(with_cookie(other_key)) is None
    assert read_session(b"k" * 32, "https://other.example", other_key, setup.clock.t) is None
    # Through HTTP, a forged cookie goes to /login again.
    setup.browser.cookies[COOKIE] = f"{version}.{bob}.{expires}.{mac}"
    assert (await setup.browser.request("GET", authorize)).status_code == 303


async def test_a_session_expires_after_its_lifetime() -> None:
    async for setup in _setup("auto", session_ttl=120.0):
        authorize, login_url = await start(setup)
        accepted = await setup.browser.sign_in(login_url, USERS["alice"])
        assert "Max-Age=120" in set_cookies(accepted)[COOKIE]
        setup.clock.t += 119
        assert (await setup.browser.request("GET", authorize)).status_code == 302
        setup.clock.t += 1
        assert (await setup.browser.request("GET", setup.client.authorize_url())).status_code == 303


async def test_a_given_key_is_shared_by_nodes() -> None:
    clock = Clock()
    key = secrets.token_bytes(32)
    one = FormLogin(ISSUER, verify, clock=clock, random=SystemRandom(), key=key)
    two = FormLogin(ISSUER, verify, clock=clock, random=SystemRandom(), key=key)
    three = FormLogin(ISSUER, verify, clock=clock, random=SystemRandom())
    value = sign_session(key, ISSUER, "alice", clock.t + 60)
    facts = RequestFacts(method="GET", path="/", query={}, headers={"cookie": f"{COOKIE}={value}"})
    assert await one.authenticate(facts) == await two.authenticate(facts) == "alice"
    assert await three.authenticate(facts) is None
    with pytest.raises(ValueError, match="32 bytes"):
        FormLogin(ISSUER, verify, clock=clock, random=SystemRandom(), key=b"short")


def test_secure_unless_the_issuer_is_loopback_http() -> None:
    assert cookie_secure("https://as.example.com") is True
    assert cookie_secure("https://127.0.0.1:8443") is True
    assert cookie_secure("http://127.0.0.1:8000") is False
    assert cookie_secure("http://localhost:8000/as") is False
    assert cookie_secure("http://[::1]:8000") is False
    for plain in ("http://as.example.com", "http://10.0.0.1", "ftp://127.0.0.1"):
        with pytest.raises(ValueError, match="loopback"):
            cookie_secure(plain)
        with pytest.raises(ValueError, match="loopback"):
            FormLogin(plain, verify, clock=Clock(), random=SystemRandom())


async def test_an_https_issuer_sets_a_secure_cookie_under_its_path() -> None:
    issuer = "https://127.0.0.1:9443/as"
    login = FormLogin(issuer, verify, clock=Clock(), random=SystemRandom())
    assert login.paths == ("/as/login", "/as/logout")
    assert login.login_url("/as/authorize?a=1") == "/as/login?next=%2Fas%2Fauthorize%3Fa%3D1"
    transport = httpx.ASGITransport(app=login)
    async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:9443") as http:
        browser = Browser(http)
        assert (await browser.request("GET", "/login")).status_code == 404
        url = login.login_url("/as/authorize?a=1")
        answer = await browser.sign_in(url, USERS["alice"])
        assert answer.status_code == 303
        assert answer.headers["location"] == "/as/authorize?a=1"
        session = set_cookies(answer)[COOKIE]
        assert "; Secure" in session
        assert "Path=/as;" in session
        out = await browser.request("GET", "/as/logout")
        assert "Secure" in set_cookies(out)[COOKIE]


# ---- failure limits -----------------------------------------------------------------------------


async def test_failures_per_user_name_pause_signing_in() -> None:
    async for setup in _setup("auto", username_failures=(3, 600.0)):
        _, login_url = await start(setup)
        for _ in range(3):
            assert (await setup.browser.sign_in(login_url, "wrong")).status_code == 200
        # Blocked: even the right password is not tried, and the pause is said.
        blocked = await setup.browser.sign_in(login_url, USERS["alice"])
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["retry-after"]) <= 600
        assert COOKIE not in setup.browser.cookies
        # Another user name from the same address is not paused by alice's failures.
        other = await setup.browser.request("GET", login_url)
        data = {NONCE_FIELD: form_nonce(other.text), "username": "ALICE2", "password": "x"}
        assert (await setup.browser.request("POST", login_url, data=data)).status_code == 200
        # The case-folded name shares alice's count.
        page = await setup.browser.request("GET", login_url)
        data = {NONCE_FIELD: form_nonce(page.text), "username": "ALICE", "password": "x"}
        assert (await setup.browser.request("POST", login_url, data=data)).status_code == 429
        setup.clock.t += 601
        assert (await setup.browser.sign_in(login_url, USERS["alice"])).status_code == 303


async def test_failures_per_address_pause_every_user_name() -> None:
    async for setup in _setup("auto", address_failures=(4, 300.0)):
        _, login_url = await start(setup)
        for n in range(4):
            page = await setup.browser.request("GET", login_url)
            data = {NONCE_FIELD: form_nonce(page.text), "username": f"u{n}", "password": "x"}
            assert (await setup.browser.request("POST", login_url, data=data)).status_code == 200
        assert (await setup.browser.sign_in(login_url, USERS["alice"])).status_code == 429


def test_the_limiter_is_bounded_and_forgets_old_windows() -> None:
    limiter = FailureLimiter(limit=2, window=10.0, max_keys=3)
    for key in ("a", "b", "c", "d"):
        limiter.failed(key, 0.0)
    assert len(limiter) == 3  # "a" was the least recently failed
    limiter.failed("b", 1.0)
    assert limiter.retry_after("b", 2.0) == pytest.approx(8.0)
    assert limiter.retry_after("c", 2.0) is None  # one failure: under the limit
    assert limiter.retry_after("b", 10.0) is None  # the window ended
    limiter.failed("c", 3.0)
    limiter.succeeded("c")
    assert limiter.retry_after("c", 3.0) is None


# ---- the form and the ports ---------------------------------------------------------------------


async def test_operator_fields_and_the_ports() -> None:
    fields = (
        CredentialField(name="email", label="Email", secret=False, pattern=r"[^@\s]+@[^@\s]+"),
        CredentialField(name="pin", label="PIN", pattern=r"[0-9]{6}"),
    )
    seen: list[Mapping[str, str]] = []

    async def check(values: Mapping[str, str]) -> str | None:
        seen.append(dict(values))
        return "user-1" if values["pin"] == "123456" else None

    login = FormLogin(ISSUER, check, clock=Clock(), random=SystemRandom(), fields=fields)
    assert isinstance(login, UserAuthenticator)
    assert isinstance(login, LoginRedirector)
    assert login.username_field == "email"
    transport = httpx.ASGITransport(app=login)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        browser = Browser(http)
        page = await browser.request("GET", "/login")
        assert 'name="email"' in page.text
        assert 'name="pin"' in page.text
        data = {NONCE_FIELD: form_nonce(page.text), "email": "not an email", "pin": "12"}
        bad = await browser.request("POST", "/login", data=data)
        assert bad.status_code == 400
        assert "Email does not have the expected format" in bad.text
        assert seen == []  # the operator's check is not asked about malformed values
        data = {NONCE_FIELD: form_nonce(bad.text), "email": "a@b.example", "pin": "123456"}
        data["extra"] = "1"
        assert (await browser.request("POST", "/login", data=data)).status_code == 400
        page = await browser.request("GET", "/login")
        data = {NONCE_FIELD: form_nonce(page.text), "email": "a@b.example", "pin": "123456"}
        assert (await browser.request("POST", "/login", data=data)).status_code == 200
        assert seen == [{"email": "a@b.example", "pin": "123456"}]
        facts = RequestFacts(method="GET", path="/authorize", query={}, headers=browser.header())
        assert await login.authenticate(facts) == "user-1"
        assert (await browser.request("PUT", "/login")).status_code == 405
        evil = await browser.request("GET", "/login", headers={"origin": "https://evil.example"})
        assert evil.status_code == 403
    with pytest.raises(ValueError, match="username_field"):
        FormLogin(ISSUER, check, clock=Clock(), random=SystemRandom(), username_field="nope")


def test_a_form_nonce_verifies_only_unchanged_for_its_key_issuer_and_lifetime() -> None:
    key, now = secrets.token_bytes(32), 1_800_000_000.0
    nonce = sign_form_nonce(key, ISSUER, secrets.token_bytes(32), now + 60)
    assert check_form_nonce(key, ISSUER, nonce, now)
    assert check_form_nonce(key, ISSUER, nonce, now + 59.5)
    assert not check_form_nonce(key, ISSUER, nonce, now + 60)  # expired
    assert not check_form_nonce(secrets.token_bytes(32), ISSUER, nonce, now)
    assert not check_form_nonce(key, "https://other.example", nonce, now)
    version, random_part, expiry, mac = nonce.split(".")
    forged = [
        f"{version}.{random_part}.{int(expiry) + 3600}.{mac}",  # a longer life
        f"{version}.{random_part[:-2]}AA.{expiry}.{mac}",
        f"{version}.{random_part}.{expiry}.{mac[:-2]}AA",
        f"v1.{random_part}.{expiry}.{mac}",
        f"{nonce}.x",
        "",
        "f1.." + "9" * 300,
    ]
    for value in forged:
        assert not check_form_nonce(key, ISSUER, value, now), value
    # A session cookie signed with the same key is not a nonce, nor the other way round.
    session = sign_session(key, ISSUER, "alice", now + 60)
    assert not check_form_nonce(key, ISSUER, session, now)
    assert read_session(key, ISSUER, nonce, now) is None
    with pytest.raises(ValueError, match="16 random bytes"):
        sign_form_nonce(key, ISSUER, b"short", now + 60)
