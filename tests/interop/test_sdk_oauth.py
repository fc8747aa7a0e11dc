"""The official SDK clients through the whole MCP authorization flow against `create_secured_app`.

Issue 4. The server is the one a deployment of a single-user local server runs: the MCP
endpoint behind `ProtectedResource`, with the built-in `AuthorizationServer` on the same origin
(consent automatic, `LocalUserAuthenticator`), served by uvicorn on 127.0.0.1. Each official
client starts with no credentials and must find everything itself, in the order MCP 2025-11-25
"Authorization" lays down:

1. its first MCP POST is answered 401 with `WWW-Authenticate: Bearer resource_metadata="..."`
   (RFC 9728 5.1, RFC 6750 3);
2. it reads the protected resource metadata there (RFC 9728 3), then the authorization server
   metadata of the issuer it names (RFC 8414 3);
3. it registers dynamically (RFC 7591 3: POST /register answered 201);
4. it sends the user to /authorize with PKCE S256 (RFC 7636 4.2) and `resource` (RFC 8707 2);
   consent is automatic, so the answer is a 302 straight to the redirect URI with `code`,
   `state` and `iss` (RFC 9207). The "user agent" here is the client's redirect callback: it
   GETs the URL without following the redirect and hands the Location's parameters back;
5. it exchanges the code with its verifier (RFC 6749 4.1.3, RFC 7636 4.5) for a JWT access
   token whose audience is the resource, and calls tools with `Authorization: Bearer`;
6. once the access token has expired it uses the refresh token (RFC 6749 6, rotated by the
   server) and the next call succeeds with the new access token.

Every HTTP exchange is recorded on the server's side (`RecordingApp`), so the assertions are on
the wire: what was sent, to which path, and what was answered, not only what the client
library reported.

Time. The authorization server, the token verifier and the MCP app share one fake `Clock`, so
"the access token expired" is a step of the test, not a wait. The two clients learn expiry
differently:

- the Python SDK (`mcp.client.auth.OAuthClientProvider`) computes an expiry time from
  `expires_in` with `time.time()` and refreshes *before* a request once that time has passed;
  on a 401 it runs the whole authorization again rather than refreshing. So its view of time
  is pointed at the same fake clock (its two `time` references, in `mcp.client.auth.oauth2`
  and `mcp.shared.auth_utils`), and the test checks it refreshes without any 401;
- the TypeScript SDK (1.32.2) keeps no expiry time: it refreshes when the resource server
  answers 401, then resends. Moving the server's clock is enough; the script
  (`ts_oauth_client.mjs`) waits on stdin for the test to do it.

A second Python test moves only the server's clock (the SDK still believes its token valid,
as after a revocation): the SDK then answers the 401 with a whole new authorization, not a
refresh, which RFC 6750 3.1 allows; the test pins that down so a change in the SDK shows.

RFC 9207 `iss`: the server sends it and the Python SDK checks it. The TypeScript SDK 1.32.2
does not (`finishAuth` takes the code alone), so the script checks `state` and `iss` itself.

Issuer and port: the issuer is the server's own origin, `http://127.0.0.1:<port>`, and the
port is only known once uvicorn listens, so the served app (`LateApp`) is filled in right after
`run_uvicorn` yields the address, before any client is started.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import types
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from mcp_core.adapters.asgi.secured import create_secured_app
from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.adapters.storage.memory import InMemoryClientStore, InMemoryGrantStore
from mcp_core.adapters.system import SystemRandom
from mcp_core.core import McpServer
from mcp_core.core.services.authorization_server import AuthorizationServer

from .conftest import Exchange, RecordingApp, Sum, run_uvicorn
from .test_typescript_sdk_client import SDK_VERSION, find_node, npm_cache, unavailable

pytestmark = [pytest.mark.interop]

ACCESS_TTL = 600.0  # seconds of fake time an access token lives
CALLBACK = "http://127.0.0.1:43123/callback"  # the clients' redirect URI; never contacted
CONNECTION_TIMEOUT = 15.0  # seconds one Python client run may last, connect to close
NODE_TIMEOUT = 20.0  # seconds the TypeScript client run may last
TS_SCRIPT = Path(__file__).with_name("ts_oauth_client.mjs")
PRM_PATH = "/.well-known/oauth-protected-resource/mcp"
ASM_PATH = "/.well-known/oauth-authorization-server"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


# ---- the secured server -------------------------------------------------------------------


class FakeClock:
    """The `Clock` port, moved by the test. Read from the server's thread, moved from the test's;
    a float attribute store is atomic, and nothing reads it while the test moves it."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t


class LateApp:
    """An ASGI app whose inner app is set after the server listens (the issuer names the port).

    Lifespan startup is answered here (the inner app does not exist yet); at shutdown the inner
    app is shut down through its own lifespan, so its sessions and streams close promptly.
    """

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(
        self, scope: Scope, receive: Callable[[], Any], send: Callable[[Message], Any]
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self.app is None:
            raise RuntimeError("a request arrived before the app was built")
        await self.app(scope, receive, send)

    async def _lifespan(
        self, scope: Scope, receive: Callable[[], Any], send: Callable[[Message], Any]
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                done: Message = {"type": "lifespan.shutdown.complete"}
                if self.app is not None:
                    done = await self._shut_down_inner(scope)
                await send(done)
                return

    async def _shut_down_inner(self, scope: Scope) -> Message:
        """Run the inner app's lifespan from startup to shutdown (it closes its sessions);
        returns its last answer (shutdown complete, or failed), for uvicorn."""
        script = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        answers: list[Message] = []

        async def scripted() -> Message:
            return next(script)

        async def collect(answer: Message) -> None:
            answers.append(answer)

        await self.app(scope, scripted, collect)
        return answers[-1]


def build_server() -> McpServer:
    server = McpServer("mcp-core-oauth-interop", "1.0.0")

    @server.tool(description="Add two integers; the result is structured.")
    def add(a: int, b: int) -> Sum:
        return Sum(total=a + b, operands=[a, b])

    return server


@dataclasses.dataclass
class SecuredServer:
    """A running secured server: its addresses, its clock and what it has seen."""

    base: str
    clock: FakeClock
    recorder: RecordingApp

    @property
    def url(self) -> str:
        """The MCP endpoint, which is also the resource (RFC 8707) tokens are issued for."""
        return f"{self.base}/mcp"

    @property
    def exchanges(self) -> list[Exchange]:
        return list(self.recorder.exchanges)

    def at(self, method: str, path: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and e.path == path]

    def expire_access_tokens(self) -> None:
        self.clock.t += ACCESS_TTL + 1


@pytest.fixture
def secured() -> Iterator[SecuredServer]:
    clock = FakeClock()
    late = LateApp()
    recorder = RecordingApp(cast(Any, late))
    with run_uvicorn(recorder) as base:
        authorization = AuthorizationServer(
            base,
            clients=InMemoryClientStore(),
            grants=InMemoryGrantStore(),
            keys=InMemoryKeySet(clock=clock),
            clock=clock,
            random=SystemRandom(),
            consent="auto",
            resources={f"{base}/mcp"},
            access_ttl=ACCESS_TTL,
        )
        late.app = create_secured_app(
            build_server(), resource=f"{base}/mcp", authorization=authorization, clock=clock
        )
        yield SecuredServer(base=base, clock=clock, recorder=recorder)


# ---- reading the recorded exchanges -------------------------------------------------------


def form_of(exchange: Exchange) -> dict[str, str]:
    """The urlencoded form of a POST (the token and revocation endpoints)."""
    return {k: v[0] for k, v in parse_qs(exchange.body.decode("ascii")).items()}


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def bearer_of(exchange: Exchange) -> str | None:
    value = exchange.headers.get("authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


@dataclasses.dataclass
class Redirect:
    """One trip through /authorize made by a client's "user agent"."""

    url: str
    status: int
    location: str

    @property
    def params(self) -> dict[str, str]:
        return query_of(self.url)

    @property
    def answer(self) -> dict[str, str]:
        return query_of(self.location)


def check_authorization_flow(
    live: SecuredServer, redirects: list[Redirect], client_name: str, until: int | None = None
) -> dict[str, Any]:
    """Assert the discovery, registration, authorization and code exchange seen by the server,
    in the exchanges before number `until` (all by default).

    Returns the token response of the code exchange.
    """
    base = live.base
    exchanges = live.exchanges[:until]

    # 1. The first MCP request carried no token and got the RFC 9728 challenge.
    first = next(e for e in exchanges if e.path == "/mcp")
    assert (first.method, first.status) == ("POST", 401)
    assert "authorization" not in first.headers
    challenge = first.response_headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{base}{PRM_PATH}"' in challenge

    # 2. Discovery: the protected resource metadata, then the issuer's RFC 8414 document.
    prm = next(e for e in live.at("GET", PRM_PATH) if e.status == 200)
    prm_document = json.loads(prm.response_body)
    assert prm_document["resource"] == live.url
    assert prm_document["authorization_servers"] == [base]
    asm = next(e for e in live.at("GET", ASM_PATH) if e.status == 200)
    metadata = json.loads(asm.response_body)
    assert metadata["issuer"] == base
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert exchanges.index(first) < exchanges.index(prm) < exchanges.index(asm)

    # 3. Dynamic registration, once: a public client with our redirect URI.
    (register,) = live.at("POST", "/register")
    assert register.status == 201, register.response_body
    registered = json.loads(register.response_body)
    assert registered["redirect_uris"] == [CALLBACK]
    assert registered["client_name"] == client_name
    assert registered["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in registered
    client_id = registered["client_id"]
    assert exchanges.index(asm) < exchanges.index(register)

    # 4. /authorize with PKCE S256 and the resource; a 302 to the callback with code, state, iss.
    (redirect,) = redirects
    asked = redirect.params
    assert urlsplit(redirect.url).path == "/authorize"
    assert asked["response_type"] == "code"
    assert asked["client_id"] == client_id
    assert asked["redirect_uri"] == CALLBACK
    assert asked["code_challenge_method"] == "S256"
    assert asked["resource"] == live.url
    assert asked["state"]
    assert redirect.status == 302
    assert redirect.location.split("?", 1)[0] == CALLBACK
    answered = redirect.answer
    assert answered["state"] == asked["state"]
    assert answered["iss"] == base  # RFC 9207
    (authorize,) = live.at("GET", "/authorize")
    assert authorize.status == 302

    # 5. The code exchange: the verifier matches the challenge, the resource is named again.
    exchange = next(e for e in exchanges if (e.method, e.path) == ("POST", "/token"))
    form = form_of(exchange)
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == answered["code"]
    assert form["client_id"] == client_id
    assert form["redirect_uri"] == CALLBACK
    assert s256(form["code_verifier"]) == asked["code_challenge"]
    assert form["resource"] == live.url
    assert exchange.status == 200, exchange.response_body
    assert exchange.response_headers["cache-control"] == "no-store"
    tokens: dict[str, Any] = json.loads(exchange.response_body)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == int(ACCESS_TTL)
    assert tokens["refresh_token"]
    assert exchanges.index(register) < exchanges.index(authorize) < exchanges.index(exchange)

    # Every MCP request after the exchange carried the access token, and none was refused.
    after = exchanges[exchanges.index(exchange) + 1 :]
    mcp_after = [e for e in after if e.path == "/mcp"]
    assert mcp_after
    assert all(bearer_of(e) == tokens["access_token"] for e in mcp_after)
    assert all(e.status is not None and e.status < 401 for e in mcp_after)
    return tokens


def check_refresh(
    live: SecuredServer, mark: int, old: dict[str, Any], client_id: str
) -> dict[str, Any]:
    """Assert one rotating refresh happened after exchange number `mark`; return its tokens."""
    later = live.exchanges[mark:]
    (refresh,) = [e for e in later if e.method == "POST" and e.path == "/token"]
    form = form_of(refresh)
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == old["refresh_token"]
    assert form["client_id"] == client_id
    assert form["resource"] == live.url
    assert refresh.status == 200, refresh.response_body
    new: dict[str, Any] = json.loads(refresh.response_body)
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]  # rotated (OAuth 2.1 4.3.1)
    # No second registration or authorization: the refresh token was enough.
    assert not [e for e in later if e.path in ("/register", "/authorize")]
    return new


# ---- the official Python SDK --------------------------------------------------------------


class MemoryTokenStorage:
    """The SDK's `TokenStorage`, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class UserAgent:
    """The user's browser, for consent that needs no user: GET the authorization URL, do not
    follow the redirect, and hand the callback's parameters to the client."""

    def __init__(self) -> None:
        self.redirects: list[Redirect] = []

    async def open(self, url: str) -> None:
        async with httpx.AsyncClient(follow_redirects=False, timeout=5.0) as http:
            answer = await http.get(url)
        self.redirects.append(
            Redirect(url=url, status=answer.status_code, location=answer.headers["location"])
        )

    async def callback(self) -> AuthorizationCodeResult:
        answer = self.redirects[-1].answer
        return AuthorizationCodeResult(
            code=answer["code"], state=answer.get("state"), iss=answer.get("iss")
        )


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sdk_sees_fake_time(secured: SecuredServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the SDK's token-expiry arithmetic (`time.time()`) at the server's fake clock."""
    fake_time = types.SimpleNamespace(time=secured.clock.wall)
    monkeypatch.setattr("mcp.client.auth.oauth2.time", fake_time)
    monkeypatch.setattr("mcp.shared.auth_utils.time", fake_time)


@contextlib.asynccontextmanager
async def python_client(
    live: SecuredServer, mode: str, agent: UserAgent, storage: MemoryTokenStorage
) -> AsyncIterator[Client]:
    provider = OAuthClientProvider(
        server_url=live.url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[CALLBACK],  # type: ignore[list-item]  # pydantic parses the str
            client_name="mcp-core interop (python sdk)",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=agent.open,
        callback_handler=agent.callback,
    )
    with anyio.fail_after(CONNECTION_TIMEOUT):
        async with (
            httpx2.AsyncClient(auth=provider, timeout=10.0) as http,
            Client(streamable_http_client(live.url, http_client=http), mode=mode) as client,
        ):
            yield client


@pytest.mark.anyio
@pytest.mark.usefixtures("sdk_sees_fake_time")
async def test_python_sdk_authorizes_calls_and_refreshes(secured: SecuredServer, mode: str) -> None:
    agent = UserAgent()
    storage = MemoryTokenStorage()
    async with python_client(secured, mode, agent, storage) as client:
        first = await client.call_tool("add", {"a": 20, "b": 22})
        assert first.is_error is False
        assert first.structured_content == {"total": 42, "operands": [20, 22]}
        assert client.protocol_version == "2025-11-25"

        tokens = check_authorization_flow(secured, agent.redirects, "mcp-core interop (python sdk)")
        posts = [(e.rpc_method, e.status) for e in secured.at("POST", "/mcp")]
        if mode == "legacy":
            # initialize met the 401 (answered before its body was read, so the recording has
            # no method for it), and was resent with the token.
            assert posts[:2] == [(None, 401), ("initialize", 200)]
        else:
            # The discover probe met the 401; resent with the token, it got the legacy-server
            # answer and the client fell back to initialize.
            assert posts[:3] == [(None, 401), ("server/discover", 400), ("initialize", 200)]

        # The access token expires (on both sides of the wire: one clock).
        mark = len(secured.exchanges)
        secured.expire_access_tokens()
        second = await client.call_tool("add", {"a": 1, "b": 2})
        assert second.is_error is False
        assert second.structured_content == {"total": 3, "operands": [1, 2]}

        client_id = json.loads(secured.at("POST", "/register")[0].response_body)["client_id"]
        new = check_refresh(secured, mark, tokens, client_id)
        # The SDK refreshed before sending (it knew the expiry), so nothing was refused, and
        # every later MCP request carried the new token.
        later_mcp = [e for e in secured.exchanges[mark:] if e.path == "/mcp"]
        assert later_mcp
        assert all(e.status == 200 or e.status == 202 for e in later_mcp if e.method == "POST")
        assert all(bearer_of(e) == new["access_token"] for e in later_mcp)
        assert storage.tokens is not None
        assert storage.tokens.access_token == new["access_token"]
        assert len(agent.redirects) == 1  # no second trip through the user agent

    # Closing ended the session with DELETE, authorized with the current token.
    (delete,) = secured.at("DELETE", "/mcp")
    assert delete.status == 200
    assert bearer_of(delete) == new["access_token"]


@pytest.mark.anyio
async def test_python_sdk_reauthorizes_when_only_the_server_sees_expiry(
    secured: SecuredServer, mode: str
) -> None:
    """A token the server refuses while the SDK still believes it valid (here the server's clock
    alone moves; a revocation looks the same): the SDK runs the authorization again on the 401
    (RFC 6750 3.1 lets it get a new token any way it likes) instead of using its refresh token.
    Without a user that is still silent here, because consent is automatic."""
    agent = UserAgent()
    storage = MemoryTokenStorage()
    async with python_client(secured, mode, agent, storage) as client:
        assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {
            "total": 5,
            "operands": [2, 3],
        }
        tokens = check_authorization_flow(secured, agent.redirects, "mcp-core interop (python sdk)")
        mark = len(secured.exchanges)
        secured.expire_access_tokens()
        again = await client.call_tool("add", {"a": 4, "b": 5})
        assert again.structured_content == {"total": 9, "operands": [4, 5]}

    later = secured.exchanges[mark:]
    refused = later[0]
    assert (refused.method, refused.path, refused.status) == ("POST", "/mcp", 401)
    assert bearer_of(refused) == tokens["access_token"]
    assert 'error="invalid_token"' in refused.response_headers["www-authenticate"]
    steps = [(e.method, e.path, e.status) for e in later[1:5]]
    assert steps == [
        ("GET", PRM_PATH, 200),
        ("GET", ASM_PATH, 200),
        ("GET", "/authorize", 302),  # no second registration
        ("POST", "/token", 200),
    ]
    grant = form_of(later[4])
    assert grant["grant_type"] == "authorization_code"
    assert grant["resource"] == secured.url
    assert len(agent.redirects) == 2
    fresh = json.loads(later[4].response_body)
    resent = later[5]
    assert (resent.method, resent.path, resent.status) == ("POST", "/mcp", 200)
    assert resent.message["params"] == {"name": "add", "arguments": {"a": 4, "b": 5}}
    assert bearer_of(resent) == fresh["access_token"]


# ---- the official TypeScript SDK ----------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> str:
    found = find_node()
    if found is None:
        unavailable(f"no node on PATH nor in {npm_cache() / 'node22'}")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def ts_sdk() -> Path:
    folder = npm_cache() / "ts-sdk"
    package = folder / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
    if not package.is_file():
        unavailable(f"@modelcontextprotocol/sdk is not installed in {folder}")
    version = json.loads(package.read_text())["version"]
    if version != SDK_VERSION:
        unavailable(f"{folder} has @modelcontextprotocol/sdk {version}, not {SDK_VERSION}")
    return folder


async def run_ts_client(
    node: str, sdk: Path, live: SecuredServer, stderr_path: Path
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Run ts_oauth_client.mjs; expire the tokens when it says it is authorized.

    Returns the two JSON lines it prints (after authorizing, at the end), and the number of
    exchanges the server had seen when the tokens were expired.
    """

    def failure(what: str) -> str:
        return f"ts_oauth_client.mjs {what}; stderr:\n{stderr_path.read_text()}"

    with stderr_path.open("wb") as stderr, anyio.fail_after(NODE_TIMEOUT):
        process = await anyio.open_process(
            [node, str(TS_SCRIPT), live.url, str(sdk), CALLBACK],
            stderr=stderr,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        async with process:
            assert process.stdout is not None
            assert process.stdin is not None
            lines = BufferedByteReceiveStream(process.stdout)
            try:
                authorized = json.loads(await lines.receive_until(b"\n", 1 << 20))
            except (anyio.EndOfStream, anyio.IncompleteRead):
                await process.wait()
                pytest.fail(failure(f"exited {process.returncode} before authorizing"))
            mark = len(live.exchanges)
            live.expire_access_tokens()
            await process.stdin.send(b"expired\n")
            try:
                final = json.loads(await lines.receive_until(b"\n", 1 << 20))
            except (anyio.EndOfStream, anyio.IncompleteRead):
                await process.wait()
                pytest.fail(failure(f"exited {process.returncode} after authorizing"))
            code = await process.wait()
    assert code == 0, failure(f"exited {code}; failed checks: {final.get('failed_checks')}")
    return authorized, final, mark


@pytest.mark.anyio
async def test_typescript_sdk_authorizes_calls_and_refreshes(
    secured: SecuredServer, node: str, ts_sdk: Path, tmp_path: Path
) -> None:
    authorized, final, mark = await run_ts_client(node, ts_sdk, secured, tmp_path / "stderr")

    # ---- what the client reports
    assert authorized["sdk_version"] == SDK_VERSION
    # The first connect stops at the redirect (the v1 pattern): UnauthorizedError, then
    # finishAuth(code) exchanges the code and a second connect succeeds.
    assert authorized["first_connect"] == "UnauthorizedError"
    assert authorized["protocol_version"] == "2025-11-25"
    assert authorized["add"] == {
        "isError": False,
        "structuredContent": {"total": 42, "operands": [20, 22]},
    }
    assert final["add_after_expiry"] == {
        "isError": False,
        "structuredContent": {"total": 3, "operands": [1, 2]},
    }
    assert final["failed_checks"] == []
    redirects = [Redirect(**r) for r in authorized["redirects"]]

    # ---- what the server saw
    tokens = check_authorization_flow(
        secured, redirects, "mcp-core interop (typescript sdk)", until=mark
    )
    assert authorized["tokens"]["access_token"] == tokens["access_token"]
    client_id = json.loads(secured.at("POST", "/register")[0].response_body)["client_id"]
    new = check_refresh(secured, mark, tokens, client_id)
    assert final["tokens"]["access_token"] == new["access_token"]
    assert final["tokens"]["refresh_token"] == new["refresh_token"]

    # The TS client refreshes on the 401: the expired token was refused with invalid_token,
    # the refresh followed, and the same request was resent with the new token.
    later = secured.exchanges[mark:]
    refused, refresh, resent = (
        later[0],
        next(e for e in later if e.path == "/token"),
        later[later.index(next(e for e in later if e.path == "/token")) + 1],
    )
    assert (refused.method, refused.path, refused.status) == ("POST", "/mcp", 401)
    assert bearer_of(refused) == tokens["access_token"]
    assert 'error="invalid_token"' in refused.response_headers["www-authenticate"]
    assert later.index(refused) < later.index(refresh) < later.index(resent)
    assert (resent.method, resent.path, resent.status) == ("POST", "/mcp", 200)
    # (The 401 was answered before the body was read, so only the resent body is on record.)
    assert resent.message["params"] == {"name": "add", "arguments": {"a": 1, "b": 2}}
    assert bearer_of(resent) == new["access_token"]
    (delete,) = secured.at("DELETE", "/mcp")
    assert (delete.status, bearer_of(delete)) == (200, new["access_token"])
