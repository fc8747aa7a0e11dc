"""The resource-server side of MCP authorization, as ASGI middleware around the MCP app.

Spec: MCP 2025-11-25 "Authorization" (Protected Resource Metadata Discovery, Token Handling,
Scope Challenge Handling, Access Token Privilege Restriction); RFC 9728 (protected resource
metadata, 3.1 well-known URL, 5.1 `resource_metadata` in `WWW-Authenticate`); RFC 6750
(2.1 the Authorization header, 3 and 3.1 the Bearer challenge and its error codes); RFC 8707
(the resource indicator the token's audience must name).

`ProtectedResource(app, verifier, resource=..., authorization_servers=[...])`:

- serves the RFC 9728 document, without authentication, at the path-specific well-known URL
  derived from `resource` (`/.well-known/oauth-protected-resource/mcp`) and at the root one
  (`/.well-known/oauth-protected-resource`), GET and HEAD, cacheable;
- on the protected paths requires exactly one `Authorization: Bearer <token>` header. Missing,
  or another scheme: 401 with `WWW-Authenticate: Bearer resource_metadata="..."` and no error
  code (RFC 6750 3.1). Malformed (several headers, not a b64token, longer than
  `max_token_bytes`) or refused by the verifier: 401 `invalid_token`. Verifier down: 503;
  never a silent acceptance;
- verifies the token for `resource` on every request, and checks again that the verified
  audience names `resource` (a verifier that forgot the check cannot let a token for another
  resource through);
- passes downstream `scope["mcp_core.subject"]`, `["mcp_core.client_id"]` and
  `["mcp_core.token"]` (the `AccessTokenInfo`), and removes the Authorization header: the
  application never sees the raw token, so it cannot forward it upstream (no passthrough);
- enforces per-tool scopes (`McpServer.tool(..., scopes=[...])`) when given the `server`: the
  body of a POST is read once (capped at `max_body_bytes`), and a `tools/call` whose tool
  needs scopes the token lacks is answered 403 with `WWW-Authenticate: Bearer
  error="insufficient_scope", scope="<needed>", resource_metadata="..."`, so the client can
  step up. The check lives here rather than in the dispatcher because the answer must be an
  HTTP 403 with a challenge, which only the HTTP layer can write; the body is then replayed
  to the app unchanged;
- lets the app bind sessions to the token's client as well as its subject: the app
  (`McpAsgiApp`, reading `mcp_core.subject` and `mcp_core.client_id` from the scope) stores
  both in the session record when the session is created and answers 404 to a session id
  presented by another subject or another client. The binding lives in the session store, so
  every node sharing that store enforces it (MCP 2025-11-25 "Security Best Practices" >
  "Session Hijacking": bind session ids to user-specific information); this middleware keeps
  no per-session state of its own.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from mcp_core.core.oauth.challenges import BearerChallenge, format_bearer_challenge
from mcp_core.core.oauth.errors import INSUFFICIENT_SCOPE, INVALID_REQUEST, INVALID_TOKEN
from mcp_core.core.oauth.metadata import (
    PRM_WELL_KNOWN,
    protected_resource_metadata,
    protected_resource_metadata_url,
)
from mcp_core.core.services.server import McpServer
from mcp_core.ports.tokens import (
    AccessTokenInfo,
    TokenInvalid,
    TokenVerifier,
    VerifierUnavailable,
)

__all__ = ["ProtectedResource"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")


class _BodyTooLarge(Exception):
    pass


class ProtectedResource:
    """ASGI middleware: RFC 9728 metadata plus bearer-token checks in front of `app`."""

    def __init__(
        self,
        app: AsgiApp,
        verifier: TokenVerifier,
        *,
        resource: str,
        authorization_servers: Iterable[str],
        scopes_supported: Iterable[str] = (),
        resource_name: str | None = None,
        resource_documentation: str | None = None,
        protected_paths: Iterable[str] = ("/mcp",),
        server: McpServer | None = None,
        max_token_bytes: int = 8192,
        max_body_bytes: int = 4 * 1024 * 1024,
        metadata_max_age: int = 3600,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.resource = resource
        self.server = server
        self.max_token_bytes = max_token_bytes
        self.max_body_bytes = max_body_bytes
        self.protected_paths = frozenset(p.rstrip("/") or "/" for p in protected_paths)
        # Built once: a bad resource or issuer fails at startup, not on the first request.
        self._metadata = orjson.dumps(
            protected_resource_metadata(
                resource=resource,
                authorization_servers=authorization_servers,
                scopes_supported=scopes_supported,
                resource_name=resource_name,
                resource_documentation=resource_documentation,
            )
        )
        self.metadata_url = protected_resource_metadata_url(resource)
        path_specific = "/" + self.metadata_url.split("/", 3)[3].split("?", 1)[0]
        self.metadata_paths = frozenset({path_specific, f"/.well-known/{PRM_WELL_KNOWN}"})
        self._metadata_headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", f"public, max-age={metadata_max_age}".encode()),
            # A public document: browser-based clients must be able to read it.
            (b"access-control-allow-origin", b"*"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = path.rstrip("/") or "/"
        if path in self.metadata_paths and scope["method"] in ("GET", "HEAD"):
            await self._send_metadata(scope["method"], send)
            return
        if path not in self.protected_paths:
            await self.app(scope, receive, send)
            return
        await self._protected(scope, receive, send)

    # ---- the protected endpoint ------------------------------------------------------------

    async def _protected(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        credentials = [v for k, v in raw_headers if k.lower() == b"authorization"]
        if not credentials:
            await self._challenge(send, 401)
            return
        if len(credentials) > 1:
            await self._challenge(send, 400, INVALID_REQUEST, "one Authorization header only")
            return
        scheme, _, token = credentials[0].strip().partition(b" ")
        if scheme.lower() != b"bearer":
            await self._challenge(send, 401)
            return
        token = token.strip(b" ")
        if len(token) > self.max_token_bytes:
            await self._challenge(send, 401, INVALID_TOKEN, "the token is too long")
            return
        if _B64TOKEN.fullmatch(token) is None:
            await self._challenge(send, 401, INVALID_TOKEN, "malformed bearer token")
            return
        try:
            info = await self.verifier.verify(token.decode("ascii"), resource=self.resource)
        except TokenInvalid:
            # The reason stays in the server's logs and metrics; the client learns only this.
            await self._challenge(send, 401, INVALID_TOKEN, "the access token is not valid")
            return
        except VerifierUnavailable:
            await _send_json(
                send,
                503,
                {"error": "temporarily_unavailable", "error_description": "try again later"},
                [(b"retry-after", b"5"), (b"cache-control", b"no-store")],
            )
            return
        if self.resource not in info.audience:
            await self._challenge(send, 401, INVALID_TOKEN, "the token is for another resource")
            return

        if self.server is not None and scope["method"] == "POST":
            try:
                body = await _read_body(receive, self.max_body_bytes)
            except _BodyTooLarge:
                await _send_json(send, 413, {"error": "payload too large"})
                return
            needed = self._missing_scopes(body, info)
            if needed:
                await self._challenge(
                    send,
                    403,
                    INSUFFICIENT_SCOPE,
                    "the tool needs more scopes",
                    scopes=needed,
                )
                return
            receive = _replay(body, receive)

        inner = dict(scope)
        inner["headers"] = [(k, v) for k, v in raw_headers if k.lower() != b"authorization"]
        inner["mcp_core.subject"] = info.subject
        inner["mcp_core.client_id"] = info.client_id
        inner["mcp_core.token"] = info
        await self.app(inner, receive, send)

    def _missing_scopes(self, body: bytes, info: AccessTokenInfo) -> tuple[str, ...]:
        """The scopes every `tools/call` in `body` needs and the token lacks, sorted."""
        assert self.server is not None
        # Parsed in full, with the parser the app uses (orjson): a byte search for "tools/call"
        # would miss the same method written with JSON escapes ("tools\/call").
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ()  # the app answers the parse error
        messages = parsed if isinstance(parsed, list) else [parsed]
        needed: set[str] = set()
        for message in messages:
            if not isinstance(message, dict) or message.get("method") != "tools/call":
                continue
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            tool = self.server.tools.get(name) if isinstance(name, str) else None
            if tool is not None:
                needed |= tool.scopes
        # RFC 6750 3.1 and MCP "Scope Challenge Handling": name what the operation needs.
        return tuple(sorted(needed)) if not needed <= info.scopes else ()

    # ---- responses -------------------------------------------------------------------------

    async def _send_metadata(self, method: str, send: Send) -> None:
        headers = [*self._metadata_headers, (b"content-length", str(len(self._metadata)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if method == "HEAD" else self._metadata
        await send({"type": "http.response.body", "body": body})

    async def _challenge(
        self,
        send: Send,
        status: int,
        error: str | None = None,
        description: str | None = None,
        *,
        scopes: tuple[str, ...] = (),
    ) -> None:
        challenge = BearerChallenge(
            resource_metadata=self.metadata_url,
            error=error,
            error_description=description,
            scope=scopes,
        )
        header = format_bearer_challenge(challenge).encode("latin-1")
        payload: dict[str, Any] = {"error": error or "unauthorized"}
        if description:
            payload["error_description"] = description
        if scopes:
            payload["scope"] = " ".join(scopes)
        await _send_json(
            send,
            status,
            payload,
            [(b"www-authenticate", header), (b"cache-control", b"no-store")],
        )


async def _send_json(
    send: Send,
    status: int,
    payload: Any,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the body already read, then defers to the real one
    (so the app still hears `http.disconnect`)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
