"""The client the official MCP conformance suite plays a server against.

`@modelcontextprotocol/conformance` (client scenarios) starts a mock MCP server (and, for the
`auth/*` scenarios, a mock authorization server), runs this command with the server's URL as
its last argument, and judges what it saw. The scenario's name is in `MCP_CONFORMANCE_SCENARIO`;
`MCP_CONFORMANCE_CONTEXT` holds JSON with what a scenario hands the client (pre-registered
credentials, a private key, an identity provider's token). The process exits 0 when it did
what the scenario asks, 1 otherwise (a scenario that expects the client to refuse, such as a
resource mismatch, counts the refusal as the pass).

    MCP_CONFORMANCE_SCENARIO=initialize python examples/conformance_client.py http://127.0.0.1:3001/mcp
    scripts/conformance.sh client          # every client scenario, summed up

What each scenario gets, all through mcp-core's public client API:
- `initialize`, `tools_call`: initialize, list the tools, call the first with `{a: 2, b: 3}`.
- `elicitation-sep1034-client-defaults`: an elicitation handler that accepts with the
  requested schema's defaults filled in (SEP-1034).
- `sse-retry`: call `test_reconnection`; the transport resumes the closed stream with
  `Last-Event-ID` after the server's `retry`.
- `json-schema-2020-12-preservation`: echo the advertised 2020-12 schema back unchanged.
- `auth/*` (authorization code): `open_session` with a `HeadlessRedirectReceiver` (the mock
  authorization endpoint redirects at once) and the client ID metadata document URL
  `https://conformance-test.local/client-metadata.json`; list tools, call `test-tool`.
- `auth/pre-registration`: the same with the context's client id and secret.
- `auth/client-credentials-basic`, `auth/client-credentials-jwt`: the client_credentials grant
  with `client_secret_basic` or `private_key_jwt` (the context's PEM key).
- `auth/cross-app-access-complete-flow`, `auth/enterprise-managed-authorization` (SEP-990):
  an ID token exchanged at the identity provider for an ID-JAG (RFC 8693), then the JWT bearer
  grant (RFC 7523 §2.1) at the authorization server, then the MCP calls.
- `auth/wif-jwt-bearer` (SEP-1933): the context's workload JWT as a JWT bearer grant.
  These two extension grants are done by hand here (discovery, one token request, a bearer
  header): the OAuth client service implements the authorization_code and
  client_credentials grants only.
Scenarios this client does not implement are listed, with the reason, in docs/client.md.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import anyio

from mcp_core.adapters.client_http import HttpClientTransport
from mcp_core.adapters.http_client import HttpxClient
from mcp_core.adapters.oauth_client import PemAssertionSigner, default_policy, open_session
from mcp_core.adapters.oauth_client_receivers import HeadlessRedirectReceiver
from mcp_core.core.services.client import ClientSession

CIMD_URL = "https://conformance-test.local/client-metadata.json"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REDIRECT_URI = "http://localhost:3000/callback"
TIMEOUT = 25.0  # the suite gives a client 30 s

log = logging.getLogger("conformance_client")
Handler = Callable[[str], Coroutine[Any, Any, None]]
SCENARIOS: dict[str, Handler] = {}


def scenario(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            SCENARIOS[name] = handler
        return handler

    return register


def context() -> dict[str, Any]:
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    if not raw:
        raise SystemExit("MCP_CONFORMANCE_CONTEXT is not set")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise SystemExit("MCP_CONFORMANCE_CONTEXT is not a JSON object")
    return data


# ---- plain sessions -------------------------------------------------------------------------


@scenario("initialize", "tools_call", "tools-call")
async def basic(url: str) -> None:
    async with HttpClientTransport(url) as transport, ClientSession(transport) as session:
        await session.initialize()
        tools = await session.list_tools()
        if tools:
            await session.call_tool(tools[0]["name"], {"a": 2, "b": 3})


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, dict) and "default" in spec
    }


async def accept_with_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """Accept a form elicitation, every field at its schema default (SEP-1034)."""
    schema = params.get("requestedSchema")
    content = _defaults(schema) if isinstance(schema, dict) else {}
    return {"action": "accept", "content": content}


@scenario("elicitation-sep1034-client-defaults", "elicitation-defaults")
async def elicitation_defaults(url: str) -> None:
    async with (
        HttpClientTransport(url) as transport,
        ClientSession(transport, elicitation_handler=accept_with_defaults) as session,
    ):
        await session.initialize()
        names = [tool["name"] for tool in await session.list_tools()]
        if "test_client_elicitation_defaults" not in names:
            raise RuntimeError("the server does not offer test_client_elicitation_defaults")
        await session.call_tool("test_client_elicitation_defaults", {})


@scenario("sse-retry")
async def sse_retry(url: str) -> None:
    async with HttpClientTransport(url) as transport, ClientSession(transport) as session:
        await session.initialize()
        result = await session.call_tool("test_reconnection", {})
        log.info("test_reconnection: %s", result)


@scenario("json-schema-2020-12-preservation")
async def json_schema_preservation(url: str) -> None:
    async with HttpClientTransport(url) as transport, ClientSession(transport) as session:
        await session.initialize()
        tools = {tool["name"]: tool for tool in await session.list_tools()}
        focal = tools.get("json_schema_2020_12_tool")
        if focal is None:
            raise RuntimeError("json_schema_2020_12_tool is not advertised")
        await session.call_tool("json_schema_echo", {"schema": focal["inputSchema"]})


# ---- authorization --------------------------------------------------------------------------


async def _use(session: ClientSession) -> None:
    await session.list_tools()
    await session.call_tool("test-tool", {})


@scenario(
    "auth/basic-cimd",
    "auth/basic-dcr",
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
)
async def authorization_code(url: str) -> None:
    policy = default_policy(url)
    http = HttpxClient(policy)
    receiver = HeadlessRedirectReceiver(http, redirect_uri=REDIRECT_URI, policy=policy)
    async with open_session(
        url, receiver=receiver, http=http, client_metadata_url=CIMD_URL, client_name="mcp-core"
    ) as session:
        await _use(session)


@scenario("auth/pre-registration")
async def pre_registration(url: str) -> None:
    ctx = context()
    policy = default_policy(url)
    http = HttpxClient(policy)
    receiver = HeadlessRedirectReceiver(http, redirect_uri=REDIRECT_URI, policy=policy)
    async with open_session(
        url,
        receiver=receiver,
        http=http,
        client_id=ctx["client_id"],
        client_secret=ctx.get("client_secret"),
    ) as session:
        await session.list_tools()


@scenario("auth/client-credentials-basic")
async def client_credentials_basic(url: str) -> None:
    ctx = context()
    async with open_session(
        url,
        grant="client_credentials",
        client_id=ctx["client_id"],
        client_secret=ctx["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
    ) as session:
        await session.list_tools()


@scenario("auth/client-credentials-jwt")
async def client_credentials_jwt(url: str) -> None:
    ctx = context()
    signer = PemAssertionSigner(ctx["private_key_pem"], alg=ctx.get("signing_algorithm") or "ES256")
    async with open_session(
        url,
        grant="client_credentials",
        client_id=ctx["client_id"],
        signer=signer,
        token_endpoint_auth_method="private_key_jwt",
    ) as session:
        await session.list_tools()


async def _post_json(http: HttpxClient, url: str, form: dict[str, str], **headers: str) -> Any:
    result = await http.request(
        "POST",
        url,
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
        body=urlencode(form).encode(),
    )
    if result.status != 200:
        raise RuntimeError(f"POST {url}: HTTP {result.status}: {result.body[:200]!r}")
    return json.loads(result.body)


async def _get_json(http: HttpxClient, url: str) -> Any:
    result = await http.get(url)
    if result.status != 200:
        raise RuntimeError(f"GET {url}: HTTP {result.status}")
    return json.loads(result.body)


async def _discover(http: HttpxClient, url: str) -> tuple[str, dict[str, Any]]:
    """The MCP server's resource identifier and its authorization server's metadata (RFC 9728
    path-specific well-known URI, then RFC 8414), for the flows done by hand below."""
    prm = await _get_json(http, urljoin(url, "/.well-known/oauth-protected-resource/mcp"))
    resource, issuer = prm["resource"], prm["authorization_servers"][0]
    metadata = await _get_json(
        http, urljoin(issuer.rstrip("/") + "/", "/.well-known/oauth-authorization-server")
    )
    if metadata.get("issuer") != issuer:
        raise RuntimeError(f"metadata issuer {metadata.get('issuer')!r} is not {issuer!r}")
    if JWT_BEARER not in metadata.get("grant_types_supported", []):
        raise RuntimeError("the authorization server does not offer the jwt-bearer grant")
    return resource, metadata


async def _session_with_token(url: str, token: str, *, call: bool) -> None:
    headers = {"authorization": f"Bearer {token}"}
    async with (
        HttpClientTransport(url, headers=headers) as transport,
        ClientSession(transport) as session,
    ):
        await session.initialize()
        if call:
            await _use(session)
        else:
            await session.list_tools()


@scenario("auth/cross-app-access-complete-flow", "auth/enterprise-managed-authorization")
async def cross_app_access(url: str) -> None:
    """SEP-990: ID token -> ID-JAG at the identity provider (RFC 8693 token exchange) -> access
    token at the authorization server (RFC 7523 JWT bearer grant, client_secret_basic)."""
    ctx = context()
    http = HttpxClient(default_policy(url))
    resource, metadata = await _discover(http, url)
    exchanged = await _post_json(
        http,
        ctx["idp_token_endpoint"],
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
            "audience": metadata["issuer"],
            "resource": resource,
            "subject_token": ctx["idp_id_token"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "client_id": ctx["idp_client_id"],
        },
    )
    pair = f"{quote(ctx['client_id'], safe='')}:{quote(ctx['client_secret'], safe='')}"
    granted = await _post_json(
        http,
        metadata["token_endpoint"],
        {"grant_type": JWT_BEARER, "assertion": exchanged["access_token"]},
        authorization="Basic " + base64.b64encode(pair.encode()).decode(),
    )
    await _session_with_token(url, granted["access_token"], call=True)


@scenario("auth/wif-jwt-bearer")
async def workload_identity(url: str) -> None:
    """SEP-1933 workload identity federation: the workload's JWT is the assertion of an RFC
    7523 §2.1 JWT bearer grant by a public client; one attempt, no fallback to another grant."""
    ctx = context()
    http = HttpxClient(default_policy(url))
    resource, metadata = await _discover(http, url)
    granted = await _post_json(
        http,
        metadata["token_endpoint"],
        {
            "grant_type": JWT_BEARER,
            "assertion": ctx["valid_jwt"],
            "client_id": ctx["client_id"],
            "resource": resource,
        },
    )
    await _session_with_token(url, granted["access_token"], call=False)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    name = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    if len(sys.argv) < 2 or not name:
        print(
            "usage: MCP_CONFORMANCE_SCENARIO=NAME conformance_client.py URL\n"
            f"scenarios: {', '.join(sorted(SCENARIOS))}",
            file=sys.stderr,
        )
        return 2
    handler = SCENARIOS.get(name)
    if handler is None:
        print(f"unsupported scenario: {name} (see docs/client.md)", file=sys.stderr)
        return 1
    url = sys.argv[-1]

    async def run() -> None:
        with anyio.fail_after(TIMEOUT):
            await handler(url)

    try:
        anyio.run(run)
    except Exception as exc:
        print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
