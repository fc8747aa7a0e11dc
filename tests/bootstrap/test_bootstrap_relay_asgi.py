"""Remote-relay mode over HTTP: `RelayApp` mounted next to the MCP endpoint (`create_app`'s
`extra_routes`), driven through httpx (issue 3, "the relay form").

The subject comes from the scope, as an authentication middleware would put it there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import pytest

from mcp_core.adapters.asgi.app import create_app
from mcp_core.adapters.asgi.relay import RelayApp
from mcp_core.core.http.relay_form import NONCE_FIELD
from mcp_core.core.http.security import OriginPolicy

from .bootstrap_testing import SECRET, SERVER, Rig, nonce_of

pytestmark = pytest.mark.anyio

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]
HOST = "mcp.example"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def authenticated(app: App) -> App:
    """A stand-in for an auth middleware: the `x-test-user` header is the subject."""

    async def middleware(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"x-test-user":
                    scope["mcp_core.subject"] = value.decode()
        await app(scope, receive, send)

    return middleware


@pytest.fixture
def deployed(rig: Rig) -> App:
    relay = RelayApp(
        rig.bootstrap,
        origin_policy=OriginPolicy(allowed_hosts=(HOST,), allowed_origins=(f"https://{HOST}",)),
    )
    rig.server.add_tool(lambda: "ok", name="noop")
    app = create_app(
        rig.server,
        allowed_hosts=(HOST,),
        allowed_origins=(f"https://{HOST}",),
        extra_routes={"/relay": relay},
    )
    return authenticated(app)


@pytest.fixture
async def client(deployed: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=deployed)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url=f"https://{HOST}", headers={"x-test-user": "alice"}
    ) as client:
        yield client


async def _submit(client: httpx.AsyncClient, nonce: str, **extra: str) -> httpx.Response:
    form = {NONCE_FIELD: nonce, "account": "acme", "api_key": SECRET, **extra}
    return await client.post("/relay", data=form, headers={"origin": "null"})


async def test_get_renders_the_form_with_its_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/relay")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "form-action 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert 'action="/relay"' in response.text


async def test_the_form_is_posted_once_and_the_nonce_cannot_be_reused(
    client: httpx.AsyncClient, rig: Rig
) -> None:
    nonce = nonce_of((await client.get("/relay")).text)
    done = await _submit(client, nonce)
    assert done.status_code == 200
    assert done.headers["cache-control"] == "no-store"
    assert SECRET not in done.text
    assert await rig.bootstrap.credentials("alice") == {"account": "acme", "api_key": SECRET}

    replay = await _submit(client, nonce, account="mallory")
    assert replay.status_code == 403
    assert replay.headers["cache-control"] == "no-store"
    assert (await rig.bootstrap.credentials("alice") or {})["account"] == "acme"


async def test_another_subjects_nonce_is_refused(client: httpx.AsyncClient, rig: Rig) -> None:
    nonce = nonce_of((await client.get("/relay")).text)
    await client.get("/relay", headers={"x-test-user": "bob"})
    stolen = await client.post(
        "/relay",
        data={NONCE_FIELD: nonce, "account": "a", "api_key": SECRET},
        headers={"x-test-user": "bob"},
    )
    assert stolen.status_code == 403
    assert await rig.vault.list_subject(SERVER, "bob") == []


async def test_a_request_without_a_subject_is_unauthorized(deployed: App) -> None:
    transport = httpx.ASGITransport(app=deployed)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=f"https://{HOST}") as anonymous:
        response = await anonymous.get("/relay")
        assert response.status_code == 401
        assert "Sign in" in response.text
        posted = await anonymous.post("/relay", data={"a": "b"})
        assert posted.status_code == 401


async def test_host_and_origin_are_checked(client: httpx.AsyncClient) -> None:
    assert (await client.get("/relay", headers={"host": "evil.example"})).status_code == 421
    nonce = nonce_of((await client.get("/relay")).text)
    cross = await client.post(
        "/relay",
        data={NONCE_FIELD: nonce, "account": "a", "api_key": SECRET},
        headers={"origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    same = await client.post(
        "/relay",
        data={NONCE_FIELD: nonce, "account": "a", "api_key": SECRET},
        headers={"origin": f"https://{HOST}"},
    )
    assert same.status_code == 200


async def test_bad_requests_get_clear_answers(client: httpx.AsyncClient) -> None:
    await client.get("/relay")
    wrong_type = await client.post("/relay", content=b"{}", headers={"content-type": "text/json"})
    assert wrong_type.status_code == 415
    too_big = await client.post("/relay", content=b"a=" + b"x" * 20_000, headers=FORM)
    assert too_big.status_code == 413
    put = await client.put("/relay", content=b"")
    assert put.status_code == 405
    assert put.headers["allow"] == "GET, POST"
    head = await client.head("/relay")
    assert head.status_code == 200
    assert head.content == b""


async def test_the_mcp_endpoint_and_health_still_answer(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert (await client.get("/nowhere")).status_code == 404
    initialize = await client.post(
        "/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        headers={"accept": "application/json, text/event-stream"},
    )
    assert initialize.status_code == 200


async def test_a_relay_mounted_under_a_prefix_posts_to_its_full_path(rig: Rig) -> None:
    relay = RelayApp(rig.bootstrap, origin_policy=OriginPolicy(enabled=False))

    async def mounted(scope: Scope, receive: Any, send: Any) -> None:
        scope = dict(scope, root_path="/tenant", path="/tenant" + scope["path"])
        scope["mcp_core.subject"] = "alice"
        await relay(scope, receive, send)

    transport = httpx.ASGITransport(app=mounted)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        page = await client.get("/relay")
        assert 'action="/tenant/relay"' in page.text
        assert (await client.get("/other")).status_code == 404


async def test_a_local_server_without_auth_uses_the_anonymous_subject() -> None:
    rig = Rig(anonymous_subject="local")
    app = create_app(rig.server, extra_routes={"/relay": RelayApp(rig.bootstrap)})
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        nonce = nonce_of((await client.get("/relay")).text)
        done = await client.post(
            "/relay",
            data={NONCE_FIELD: nonce, "account": "me", "api_key": SECRET},
            headers={"origin": "null"},
        )
        assert done.status_code == 200
    assert await rig.bootstrap.credentials("local") == {"account": "me", "api_key": SECRET}
