"""The resource-server middleware through httpx, in process: RFC 9728 metadata, the Bearer
challenges, audience checks, no token passthrough, session binding and per-tool scopes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mcp_core.adapters.asgi import create_app
from mcp_core.adapters.asgi.resource_server import ProtectedResource
from mcp_core.adapters.storage.memory import InMemoryEventStore, InMemorySessionStore
from mcp_core.adapters.storage.sqlite import SqliteSessionStore
from mcp_core.core.oauth.challenges import bearer_challenge, parse_www_authenticate
from mcp_core.core.services.server import McpServer
from mcp_core.ports.sessions import SessionStore
from mcp_core.ports.tokens import (
    AccessTokenInfo,
    TokenInvalid,
    TokenVerifier,
    VerifierUnavailable,
)

pytestmark = pytest.mark.anyio

RESOURCE = "https://mcp.example/mcp"
ISSUER = "https://auth.example"
METADATA_URL = "https://mcp.example/.well-known/oauth-protected-resource/mcp"
JSON = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
}


class FakeTokenVerifier:
    """Tokens are names in a table; each has an audience, checked as a real verifier must."""

    def __init__(self, tokens: Mapping[str, AccessTokenInfo]) -> None:
        self.tokens = dict(tokens)
        self.down = False
        self.seen: list[tuple[str, str]] = []

    async def verify(self, token: str, *, resource: str) -> AccessTokenInfo:
        self.seen.append((token, resource))
        if self.down:
            raise VerifierUnavailable("jwks unreachable")
        info = self.tokens.get(token)
        if info is None:
            raise TokenInvalid("unknown")
        if resource not in info.audience:
            raise TokenInvalid("audience", "the token is for another resource")
        return info


class CarelessVerifier(FakeTokenVerifier):
    """Forgets the audience check: the middleware must still refuse."""

    async def verify(self, token: str, *, resource: str) -> AccessTokenInfo:
        info = self.tokens.get(token)
        if info is None:
            raise TokenInvalid("unknown")
        return info


def _info(
    subject: str,
    client_id: str = "client-a",
    scopes: tuple[str, ...] = (),
    audience: str = RESOURCE,
) -> AccessTokenInfo:
    return AccessTokenInfo(
        subject=subject,
        client_id=client_id,
        scopes=frozenset(scopes),
        audience=(audience,),
        issuer=ISSUER,
        expires_at=2_000_000_000.0,
    )


TOKENS = {
    "alice-token": _info("alice", scopes=("files:read",)),
    "alice-plain": _info("alice"),
    "alice-other-client": _info("alice", client_id="client-b", scopes=("files:read",)),
    "bob-token": _info("bob", scopes=("files:read",)),
    "elsewhere": _info("alice", audience="https://other.example/mcp"),
}


def _server() -> McpServer:
    server = McpServer("rs")

    @server.tool(name="echo")
    def echo(text: str) -> str:
        return text

    @server.tool(name="read_file", scopes=["files:read"])
    def read_file(path: str) -> str:
        return f"contents of {path}"

    @server.tool(name="write_file", scopes=["files:read", "files:write"])
    def write_file(path: str) -> str:
        return "written"

    return server


def _protected(verifier: TokenVerifier, downstream: list[dict[str, Any]]) -> ProtectedResource:
    server = _server()
    app = create_app(server, allowed_hosts=("mcp.example",), allowed_origins=())

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            downstream.append(dict(scope))
        await app(scope, receive, send)

    return ProtectedResource(
        spy,
        verifier,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        scopes_supported=["files:read", "files:write"],
        resource_name="Test files",
        server=server,
    )


@pytest.fixture
async def verifier() -> FakeTokenVerifier:
    return FakeTokenVerifier(TOKENS)


@pytest.fixture
def downstream() -> list[dict[str, Any]]:
    return []


@pytest.fixture
async def client(
    verifier: FakeTokenVerifier, downstream: list[dict[str, Any]]
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_protected(verifier, downstream))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example") as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {**JSON, "authorization": f"Bearer {token}"}


def _challenge(response: httpx.Response) -> Any:
    found = bearer_challenge(parse_www_authenticate(response.headers["www-authenticate"]))
    assert found is not None
    return found


async def _open_session(client: httpx.AsyncClient, token: str) -> str:
    answer = await client.post("/mcp", json=INITIALIZE, headers=_bearer(token))
    assert answer.status_code == 200, answer.text
    return answer.headers["mcp-session-id"]


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


# ---- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
)
async def test_metadata_is_served_without_a_token_at_both_well_known_paths(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert "max-age" in answer.headers["cache-control"]
    document = answer.json()
    assert document["resource"] == RESOURCE
    assert document["authorization_servers"] == [ISSUER]
    assert document["scopes_supported"] == ["files:read", "files:write"]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["resource_name"] == "Test files"


async def test_metadata_head_has_no_body(client: httpx.AsyncClient) -> None:
    answer = await client.head("/.well-known/oauth-protected-resource/mcp")
    assert answer.status_code == 200
    assert answer.content == b""


# ---- 401 and 503 -----------------------------------------------------------------------------


async def test_no_token_is_401_pointing_at_the_metadata(client: httpx.AsyncClient) -> None:
    answer = await client.post("/mcp", json=INITIALIZE, headers=JSON)
    assert answer.status_code == 401
    challenge = _challenge(answer)
    assert challenge.resource_metadata == METADATA_URL
    assert challenge.error is None


async def test_another_scheme_is_401_without_an_error_code(client: httpx.AsyncClient) -> None:
    headers = {**JSON, "authorization": "Basic YWxpY2U6c2VjcmV0"}
    answer = await client.post("/mcp", json=INITIALIZE, headers=headers)
    assert answer.status_code == 401
    assert _challenge(answer).error is None


async def test_a_refused_token_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    answer = await client.post("/mcp", json=INITIALIZE, headers=_bearer("forged"))
    assert answer.status_code == 401
    challenge = _challenge(answer)
    assert challenge.error == "invalid_token"
    assert challenge.resource_metadata == METADATA_URL


@pytest.mark.parametrize("token", ["a" * 9000, "bad token!", "semi;colon"])
async def test_oversized_or_malformed_tokens_never_reach_the_verifier(
    client: httpx.AsyncClient, verifier: FakeTokenVerifier, token: str
) -> None:
    answer = await client.post("/mcp", json=INITIALIZE, headers=_bearer(token))
    assert answer.status_code == 401
    assert _challenge(answer).error == "invalid_token"
    assert verifier.seen == []


async def test_two_authorization_headers_are_refused(client: httpx.AsyncClient) -> None:
    headers = httpx.Headers(JSON)
    headers.update({"authorization": "Bearer alice-token"})
    raw = [*headers.raw, (b"authorization", b"Bearer bob-token")]
    answer = await client.post("/mcp", content=orjson.dumps(INITIALIZE), headers=raw)
    assert answer.status_code == 400
    assert _challenge(answer).error == "invalid_request"


async def test_a_token_for_another_resource_is_refused(
    client: httpx.AsyncClient, verifier: FakeTokenVerifier
) -> None:
    answer = await client.post("/mcp", json=INITIALIZE, headers=_bearer("elsewhere"))
    assert answer.status_code == 401
    assert _challenge(answer).error == "invalid_token"
    assert verifier.seen == [("elsewhere", RESOURCE)]


async def test_the_audience_is_checked_even_if_the_verifier_forgets() -> None:
    app = _protected(CarelessVerifier(TOKENS), [])
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example") as c:
        answer = await c.post("/mcp", json=INITIALIZE, headers=_bearer("elsewhere"))
    assert answer.status_code == 401
    assert _challenge(answer).error == "invalid_token"


async def test_a_verifier_that_cannot_decide_gives_503(
    client: httpx.AsyncClient, verifier: FakeTokenVerifier, downstream: list[dict[str, Any]]
) -> None:
    verifier.down = True
    answer = await client.post("/mcp", json=INITIALIZE, headers=_bearer("alice-token"))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert downstream == []


async def test_the_audience_is_checked_on_every_request(
    client: httpx.AsyncClient, verifier: FakeTokenVerifier
) -> None:
    session_id = await _open_session(client, "alice-token")
    headers = {**_bearer("alice-token"), "mcp-session-id": session_id}
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert (await client.post("/mcp", json=ping, headers=headers)).status_code == 200
    assert [r for _, r in verifier.seen] == [RESOURCE, RESOURCE]


# ---- what the application sees ---------------------------------------------------------------


async def test_success_passes_the_subject_and_hides_the_raw_token(
    client: httpx.AsyncClient, downstream: list[dict[str, Any]]
) -> None:
    await _open_session(client, "alice-token")
    (scope,) = downstream
    assert scope["mcp_core.subject"] == "alice"
    assert scope["mcp_core.client_id"] == "client-a"
    assert scope["mcp_core.token"] == TOKENS["alice-token"]
    assert all(name.lower() != b"authorization" for name, _ in scope["headers"])
    assert b"alice-token" not in repr(scope).encode()


async def test_unprotected_paths_pass_through(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz")
    assert answer.status_code == 200


async def test_a_session_is_bound_to_the_subject(client: httpx.AsyncClient) -> None:
    session_id = await _open_session(client, "alice-token")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    for token, status in (("alice-token", 200), ("bob-token", 404)):
        headers = {**_bearer(token), "mcp-session-id": session_id}
        answer = await client.post("/mcp", json=ping, headers=headers)
        assert answer.status_code == status, token


async def test_a_session_is_bound_to_the_client(client: httpx.AsyncClient) -> None:
    session_id = await _open_session(client, "alice-token")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    headers = {**_bearer("alice-other-client"), "mcp-session-id": session_id}
    assert (await client.post("/mcp", json=ping, headers=headers)).status_code == 404


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_two_nodes_sharing_a_session_store_keep_the_client_binding(
    verifier: FakeTokenVerifier, backend: str, tmp_path: Path
) -> None:
    """Two nodes, each its own app behind its own middleware, one session store: a session
    client A opened on node 1 is refused to client B on node 2 (and on node 1), and still
    served to A on node 2, so the refusal is the binding and not a session node 2 lacks."""
    sessions: SessionStore
    if backend == "memory":
        sessions = InMemorySessionStore()
    else:
        sessions = SqliteSessionStore(tmp_path / "sessions.sqlite3")
    events = InMemoryEventStore()

    def node() -> ProtectedResource:
        server = _server()
        app = create_app(
            server,
            allowed_hosts=("mcp.example",),
            allowed_origins=(),
            session_store=sessions,
            event_store=events,
        )
        return ProtectedResource(
            app, verifier, resource=RESOURCE, authorization_servers=[ISSUER], server=server
        )

    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    async with (
        _closing(sessions),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=node()),  # type: ignore[arg-type]
            base_url="https://mcp.example",
        ) as node1,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=node()),  # type: ignore[arg-type]
            base_url="https://mcp.example",
        ) as node2,
    ):
        session_id = await _open_session(node1, "alice-token")
        as_b = {**_bearer("alice-other-client"), "mcp-session-id": session_id}
        as_a = {**_bearer("alice-token"), "mcp-session-id": session_id}
        refused = await node2.post("/mcp", json=ping, headers=as_b)
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == -32001
        assert (await node1.post("/mcp", json=ping, headers=as_b)).status_code == 404
        assert (await node2.delete("/mcp", headers=as_b)).status_code == 404
        assert (await node2.post("/mcp", json=ping, headers=as_a)).status_code == 200
        call = _call("read_file", {"path": "a.txt"})
        answer = await node2.post("/mcp", json=call, headers=as_a)
        assert answer.status_code == 200
        assert answer.json()["result"]["content"][0]["text"] == "contents of a.txt"


@contextlib.asynccontextmanager
async def _closing(store: SessionStore) -> AsyncIterator[None]:
    try:
        yield
    finally:
        if isinstance(store, SqliteSessionStore):
            await store.close()


# ---- per-tool scopes -------------------------------------------------------------------------


async def _tool_call(
    client: httpx.AsyncClient, token: str, name: str, arguments: dict[str, Any]
) -> httpx.Response:
    session_id = await _open_session(client, token)
    headers = {**_bearer(token), "mcp-session-id": session_id}
    return await client.post("/mcp", json=_call(name, arguments), headers=headers)


async def test_a_tool_without_scopes_works_with_any_valid_token(
    client: httpx.AsyncClient,
) -> None:
    answer = await _tool_call(client, "alice-plain", "echo", {"text": "hi"})
    assert answer.status_code == 200
    assert answer.json()["result"]["content"] == [{"type": "text", "text": "hi"}]


async def test_a_tool_runs_when_the_token_holds_its_scopes(client: httpx.AsyncClient) -> None:
    answer = await _tool_call(client, "alice-token", "read_file", {"path": "a.txt"})
    assert answer.status_code == 200
    assert answer.json()["result"]["content"][0]["text"] == "contents of a.txt"


async def test_missing_scopes_are_403_insufficient_scope_naming_them(
    client: httpx.AsyncClient,
) -> None:
    answer = await _tool_call(client, "alice-plain", "read_file", {"path": "a.txt"})
    assert answer.status_code == 403
    challenge = _challenge(answer)
    assert challenge.error == "insufficient_scope"
    assert challenge.scope == ("files:read",)
    assert challenge.resource_metadata == METADATA_URL


async def test_step_up_names_every_scope_the_tool_needs(client: httpx.AsyncClient) -> None:
    answer = await _tool_call(client, "alice-token", "write_file", {"path": "a.txt"})
    assert answer.status_code == 403
    assert _challenge(answer).scope == ("files:read", "files:write")


async def test_an_escaped_method_name_does_not_skip_the_scope_check(
    client: httpx.AsyncClient,
) -> None:
    session_id = await _open_session(client, "alice-plain")
    headers = {**_bearer("alice-plain"), "mcp-session-id": session_id}
    body = orjson.dumps(_call("read_file", {"path": "a.txt"})).replace(b"tools/", b"tools\\/")
    assert b"tools\\/call" in body
    answer = await client.post("/mcp", content=body, headers=headers)
    assert answer.status_code == 403


def test_tool_scopes_are_declared_with_the_tool() -> None:
    server = _server()
    read = server.tools.get("read_file")
    echo = server.tools.get("echo")
    assert read is not None
    assert read.scopes == frozenset({"files:read"})
    assert echo is not None
    assert echo.scopes == frozenset()
    with pytest.raises(ValueError, match="scopes"):
        server.tool(name="bad", scopes=["two words"])(lambda: None)
