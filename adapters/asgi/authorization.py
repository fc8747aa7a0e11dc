"""The built-in authorization server over HTTP: a pure ASGI app in front of
`AuthorizationServer`.

Issue 4; the guide is `docs/authorization-server.md`. Routes, relative to the issuer's path:

- `GET /.well-known/oauth-authorization-server` and its RFC 8414 3.1 path-insertion variant
  (`/.well-known/oauth-authorization-server/<issuer path>`): the metadata document;
- `GET /jwks`: the signing keys (RFC 7517);
- `POST /register`: RFC 7591 dynamic registration (JSON, at most `MAX_JSON_BYTES`);
- `GET /authorize`: the authorization request; the user is authenticated through the
  `UserAuthenticator` port first. When nobody is signed in and the authenticator is also a
  `LoginRedirector` (`FormLogin`, `mcp_core.adapters.asgi.login`), a valid request is answered
  303 to its `login_url(next)`, `next` being this request's path and query, instead of the 401
  page. `POST /authorize` is the consent page's answer (only when consent is not "auto");
- `POST /token`, `POST /revoke`: `application/x-www-form-urlencoded`, at most `MAX_FORM_BYTES`.

A store that is down is answered 503 with `Retry-After` (a `temporarily_unavailable` JSON body
at the token, revocation and registration endpoints), never a bare 500; nothing was issued.

Every request passes the Host/Origin policy first (DNS rebinding; `Origin: null`, which a
browser sends for the consent form under `no-referrer`, is not held against it: the one-time
consent ticket is the CSRF defence). Mount it alone, or next to an MCP endpoint with
`create_app(server, extra_routes={p: app for p in app.paths})`.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit

from mcp_core.core.http.messages import HttpResponse
from mcp_core.core.http.security import OriginPolicy
from mcp_core.core.oauth.errors import INVALID_REQUEST, NO_STORE_HEADERS, OAuthError, error_response
from mcp_core.core.oauth.metadata import AS_WELL_KNOWN
from mcp_core.core.services.authorization_server import (
    AuthorizationServer,
    LoginRedirector,
    RequestFacts,
    UserAuthenticator,
    parse_urlencoded,
)
from mcp_core.ports.credentials import StoreUnavailable

from ._plumbing import BodyTooLarge, Receive, Scope, Send, header_map, read_body

__all__ = ["MAX_FORM_BYTES", "MAX_JSON_BYTES", "MAX_QUERY_BYTES", "AuthorizationApp"]


log = logging.getLogger(__name__)
_RETRY: Final = ("retry-after", "5")

MAX_FORM_BYTES: Final = 16 * 1024
MAX_JSON_BYTES: Final = 16 * 1024
MAX_QUERY_BYTES: Final = 8 * 1024


def _plain(status: int, text: str, *extra: tuple[str, str]) -> HttpResponse:
    headers = (("content-type", "text/plain; charset=utf-8"), *NO_STORE_HEADERS, *extra)
    return HttpResponse(status=status, headers=headers, body=text.encode())


def _oauth(error: OAuthError) -> HttpResponse:
    status, headers, body = error_response(error)
    return HttpResponse(status=status, headers=headers, body=body)


class AuthorizationApp:
    """The authorization server's routes as one ASGI app (see the module docstring)."""

    def __init__(
        self,
        server: AuthorizationServer,
        *,
        authenticator: UserAuthenticator,
        origin_policy: OriginPolicy | None = None,
    ) -> None:
        self.server = server
        self.authenticator = authenticator
        self.origin_policy = origin_policy if origin_policy is not None else OriginPolicy()
        base = urlsplit(server.issuer).path.rstrip("/")
        self._base = base
        well_known = f"/.well-known/{AS_WELL_KNOWN}"
        self._metadata_paths = frozenset({well_known, f"{well_known}{base}"})
        self._routes = {f"{base}/{name}": name for name in server.endpoints}

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path this app answers, for mounting at exact paths."""
        return (*sorted(self._metadata_paths), *self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self._handle(scope, receive)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": raw,
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _handle(self, scope: Scope, receive: Receive) -> HttpResponse:
        headers = header_map(scope.get("headers", []))
        checked = {k: v for k, v in headers.items() if not (k == "origin" and v.strip() == "null")}
        refused = self.origin_policy.check(checked)
        if refused is not None:
            return refused
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        if path.endswith("/jwks"):
            await self.server.refresh_keys()  # publish what every node signs with
        if path in self._metadata_paths:
            return self.server.metadata() if method == "GET" else self._not_allowed("GET")
        route = self._routes.get(path)
        if route is None:
            return _plain(404, "Not Found")
        raw_query = scope.get("query_string", b"")
        try:
            if route == "jwks":
                return self.server.jwks() if method == "GET" else self._not_allowed("GET")
            if route == "register":
                if method != "POST":
                    return self._not_allowed("POST")
                return await self.server.register(await read_body(headers, receive, MAX_JSON_BYTES))
            if route == "authorize":
                return await self._authorize(method, path, raw_query, headers, receive)
            if method != "POST":
                return self._not_allowed("POST")
            if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                raise OAuthError(INVALID_REQUEST, "the body must be form-urlencoded")
            form = parse_urlencoded(await read_body(headers, receive, MAX_FORM_BYTES))
            if route == "token":
                return await self.server.token(form, headers)
            return await self.server.revoke(form, headers)
        except BodyTooLarge:
            return _plain(413, "Request body too large")
        except OAuthError as error:
            return _oauth(error)
        except StoreUnavailable:
            # The client and grant stores are down: say so, and when to try again, rather than
            # a bare 500. Nothing was issued (every write is atomic in the store).
            log.warning("authorization server %s: the store is unavailable", route, exc_info=True)
            if route == "authorize":
                return _plain(503, "The service is temporarily unavailable.", _RETRY)
            body = b'{"error":"temporarily_unavailable","error_description":"try again later"}'
            unavailable = (("content-type", "application/json"), *NO_STORE_HEADERS, _RETRY)
            return HttpResponse(status=503, headers=unavailable, body=body)

    async def _authorize(
        self, method: str, path: str, raw_query: bytes, headers: dict[str, str], receive: Receive
    ) -> HttpResponse:
        if len(raw_query) > MAX_QUERY_BYTES:
            return _plain(414, "URI Too Long")
        if method == "GET":
            query = parse_urlencoded(raw_query)
            facts = RequestFacts(method=method, path=path, query=query, headers=headers)
            subject = await self.authenticator.authenticate(facts)
            response = await self.server.authorize(query, subject)
            # With no subject, the server answers 401 only once the request itself is valid
            # (a bad client or redirect URI gets its error page first): then an authenticator
            # with a sign-in page gets the user, and sends them back to this same request.
            if (
                subject is None
                and response.status == 401
                and isinstance(self.authenticator, LoginRedirector)
            ):
                back = path + ("?" + raw_query.decode("latin-1") if raw_query else "")
                location = self.authenticator.login_url(back)
                return HttpResponse(
                    status=303, headers=(("location", location), *NO_STORE_HEADERS), body=b""
                )
            return response
        if method == "POST" and self.server.consent != "auto":
            form = parse_urlencoded(await read_body(headers, receive, MAX_FORM_BYTES))
            facts = RequestFacts(method=method, path=path, query={}, headers=headers)
            subject = await self.authenticator.authenticate(facts)
            return await self.server.decide(form, subject)
        return self._not_allowed("GET")

    @staticmethod
    def _not_allowed(allow: str) -> HttpResponse:
        return _plain(405, "Method Not Allowed", ("allow", allow))
