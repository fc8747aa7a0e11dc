"""An MCP endpoint behind OAuth 2.1 in one call: the MCP app, the resource-server checks and,
optionally, the built-in authorization server on the same origin.

Issue 4. The pieces exist on their own (`create_app`, `ProtectedResource`,
`AuthorizationApp`); `create_secured_app` puts them together the way the MCP authorization spec
expects them to meet:

```
ProtectedResource                 RFC 9728 metadata; Bearer checks on `path` only
 └─ McpAsgiApp (create_app)       the MCP endpoint, health route, extra routes
     └─ extra routes              AuthorizationApp's paths (metadata, /authorize, /token, ...)
```

- With `authorization=` (an `AuthorizationServer` whose issuer is this origin) its routes are
  mounted beside the endpoint, the protected resource metadata names it, and, unless a
  `verifier` is given, tokens are checked by a `KeySetVerifier` over its key set and its
  `GrantStore`: signature, `typ` `at+jwt`, `iss`, `aud` (the resource), `exp`, and the
  deny-list (a token revoked by `jti` or belonging to a revoked refresh family is refused).
- `authenticator` is the built-in server's user login (`UserAuthenticator`). One that is also
  an ASGI app with `paths`, like `FormLogin` (`mcp_core.adapters.asgi.login`), is mounted at
  those paths too, so `/authorize` can send a user to `/login` on the same origin.
- Without it, pass `verifier` (a `JwksVerifier` or `IntrospectionVerifier` for an external
  identity provider) and `authorization_servers` (the issuers the metadata names).

`resource` is the canonical URL of the MCP endpoint (RFC 8707, MCP "Canonical Server URI");
tokens must carry it as their audience. Per-tool scopes declared with
`McpServer.tool(..., scopes=[...])` are enforced with 403 `insufficient_scope`.
Everything else `create_app` takes passes through `app_options`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from mcp_core.adapters.system import SystemClock
from mcp_core.adapters.token_verifiers import KeySetVerifier
from mcp_core.core.services.authorization_server import (
    AuthorizationServer,
    LocalUserAuthenticator,
    UserAuthenticator,
)
from mcp_core.core.services.server import McpServer
from mcp_core.ports.system import Clock
from mcp_core.ports.tokens import TokenVerifier

from .app import AsgiApp, create_app
from .authorization import AuthorizationApp
from .resource_server import ProtectedResource

__all__ = ["create_secured_app"]


def create_secured_app(
    server: McpServer,
    *,
    resource: str,
    authorization: AuthorizationServer | None = None,
    authenticator: UserAuthenticator | None = None,
    verifier: TokenVerifier | None = None,
    authorization_servers: Sequence[str] = (),
    scopes_supported: Sequence[str] = (),
    resource_name: str | None = None,
    path: str | None = None,
    clock: Clock | None = None,
    leeway: float = 0.0,
    extra_routes: Mapping[str, AsgiApp] | None = None,
    **app_options: Any,
) -> ProtectedResource:
    """The MCP endpoint of `server` at `path` (default: the path of `resource`), protected.

    `authenticator` is the user-login port of the built-in server (default: every request is
    the one local user, `LocalUserAuthenticator`: for a single-user local server only).
    """
    endpoint = path if path is not None else (urlsplit(resource).path or "/mcp")
    routes: dict[str, AsgiApp] = dict(extra_routes or {})
    issuers = list(authorization_servers)
    if authorization is not None:
        as_app = AuthorizationApp(
            authorization,
            authenticator=authenticator if authenticator is not None else LocalUserAuthenticator(),
        )
        _mount(routes, endpoint, as_app.paths, as_app, "an authorization server route")
        # An authenticator that is also an ASGI app with `paths` (`FormLogin`: /login,
        # /logout) serves its pages on the same origin, beside the authorization server.
        login_paths = getattr(authenticator, "paths", None)
        if login_paths is not None and callable(authenticator):
            _mount(routes, endpoint, login_paths, cast(AsgiApp, authenticator), "a sign-in route")
        if authorization.issuer not in issuers:
            issuers.insert(0, authorization.issuer)
        if verifier is None:
            verifier = KeySetVerifier(
                authorization.keys,
                authorization.issuer,
                clock if clock is not None else SystemClock(),
                leeway=leeway,
                grants=authorization.grants,
            )
    elif authenticator is not None:
        raise ValueError("authenticator is for the built-in authorization server")
    if verifier is None:
        raise ValueError("give an authorization server, or a verifier for an external one")
    if not issuers:
        raise ValueError("name the authorization servers that issue tokens for this resource")
    inner = create_app(server, path=endpoint, clock=clock, extra_routes=routes, **app_options)
    return ProtectedResource(
        inner,
        verifier,
        resource=resource,
        authorization_servers=issuers,
        scopes_supported=scopes_supported,
        resource_name=resource_name,
        protected_paths=(endpoint,),
        server=server,
    )


def _mount(
    routes: dict[str, AsgiApp], endpoint: str, paths: Iterable[str], app: AsgiApp, what: str
) -> None:
    """Serve `app` at each of `paths`, refusing a path already taken (or the MCP endpoint)."""
    for route in paths:
        if route in routes or route == endpoint:
            raise ValueError(f"{route} is both {what} and another")
        routes[route] = app
