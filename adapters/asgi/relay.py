"""The relay form over HTTP: an ASGI app for remote-relay mode, a loopback page for local-relay.

Issue 3 ("Credential bootstrap", the relay form); the guide is `docs/credentials.md`. The form's
logic is `CredentialBootstrapService` (`page` for GET, `submit` for POST) and its markup is
`mcp_core.core.http.relay_form`; this module only carries requests to them.

Remote-relay mode. `RelayApp(bootstrap)` serves the form at `/relay` for the subject an outer
authentication middleware put in the scope (`scope["mcp_core.subject"]`, or Starlette's
`scope["user"]`), exactly as the MCP endpoint binds sessions. Mount it next to the MCP app:
`create_app(server, extra_routes={"/relay": RelayApp(bootstrap, ...)})`, or in any framework.
A request without a subject gets 401 (unless the service has an `anonymous_subject`: a local
server without authorization). Host and Origin are checked as on the MCP endpoint, except that
`Origin: null` passes (the form is posted under `Referrer-Policy: no-referrer`; the one-time
nonce is the CSRF defence). Bodies are read up to `MAX_FORM_BYTES`.

Local-relay mode. `LocalRelay` is the service's `FormRelay` for stdio servers and local servers:
the first time a subject needs the form it starts a `LoopbackHttpServer` on 127.0.0.1 and an
ephemeral port, serving `RelayApp` at `/relay/<random token>` (the URL is the capability: any
other path is 404, and Host must be exactly `127.0.0.1:<port>`), and opens that URL in the
user's browser through the `BrowserOpener` port. The page shuts down once the subject is
configured, or after `idle_timeout` seconds without a request; the next `present` starts a new
one, on a new port with a new token. Use it as an async context manager around the server's run:

```python
async with LocalRelay(opener=WebBrowserOpener()) as relay:
    bootstrap = CredentialBootstrapService(server, ..., relay=relay, anonymous_subject="local")
    await run_stdio_async(server)
```
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import TracebackType

import anyio
import anyio.abc
import attrs

from mcp_core.core.http.messages import HttpResponse
from mcp_core.core.http.relay_form import MAX_FORM_BYTES, Notice, origin_headers, render_notice
from mcp_core.core.http.security import OriginPolicy
from mcp_core.core.services.bootstrap import CredentialBootstrapService
from mcp_core.ports.browser import BrowserOpener

from ..browser import WebBrowserOpener
from ._plumbing import (
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    header_map,
    read_body,
    respond,
    serve_lifespan,
)
from .app import _default_subject
from .loopback import LOOPBACK_HOST, LoopbackHttpServer, listen_loopback

__all__ = ["LocalRelay", "RelayApp"]

SubjectOf = Callable[[Scope], str | None]


class RelayApp:
    """The relay form as a pure ASGI app: GET renders, POST submits (see the module docstring)."""

    def __init__(
        self,
        bootstrap: CredentialBootstrapService,
        *,
        path: str = "/relay",
        subject_of: SubjectOf = _default_subject,
        origin_policy: OriginPolicy | None = None,
        max_body_bytes: int = MAX_FORM_BYTES,
    ) -> None:
        self.bootstrap = bootstrap
        self.path = path.rstrip("/") or "/"
        self.subject_of = subject_of
        self.origin_policy = origin_policy if origin_policy is not None else OriginPolicy()
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await serve_lifespan(receive, send)
            return
        if kind != "http":
            return
        root = scope.get("root_path", "")
        path: str = scope["path"]
        if root and path.startswith(root):
            path = path[len(root) :]
        if (path.rstrip("/") or "/") != self.path:
            await respond(send, self._notice(404, "Not found", "There is no page here."))
            return
        headers = header_map(scope["headers"])
        refusal = self.origin_policy.check(origin_headers(headers))
        if refusal is not None:
            message = "This page refuses requests from that host or origin."
            await respond(send, self._notice(refusal.status, "Refused", message))
            return
        subject = self.bootstrap.subject_for(self.subject_of(scope))
        if subject is None:
            message = "Sign in to this server first, then open this page again."
            await respond(send, self._notice(401, "Not signed in", message))
            return
        action = root + self.path
        method = scope["method"]
        if method in ("GET", "HEAD"):
            response = await self.bootstrap.page(subject, action)
            if method == "HEAD":
                response = attrs.evolve(response, body=b"")
        elif method == "POST":
            try:
                body = await read_body(headers, receive, self.max_body_bytes)
            except BodyTooLarge:
                message = f"The form data is larger than {self.max_body_bytes} bytes."
                await respond(send, self._notice(413, "Too large", message))
                return
            response = await self.bootstrap.submit(
                subject, action, body, headers.get("content-type")
            )
        else:
            response = self._notice(405, "Not allowed", "This page takes GET and POST only.")
            response = attrs.evolve(response, headers=(*response.headers, ("allow", "GET, POST")))
        await respond(send, response)

    def _notice(self, status: int, heading: str, message: str) -> HttpResponse:
        notice = Notice(
            server=self.bootstrap.display_name, kind="error", heading=heading, message=message
        )
        return render_notice(notice, status=status)


# ---- local-relay mode -------------------------------------------------------------------------


@attrs.define(eq=False)
class _Page:
    subject: str
    url: str
    scope: anyio.CancelScope
    done: anyio.Event = attrs.field(factory=anyio.Event)


class LocalRelay:
    """One-time loopback pages, opened in the user's browser (see the module docstring)."""

    def __init__(
        self,
        *,
        opener: BrowserOpener | None = None,
        idle_timeout: float = 900.0,
        token_bytes: int = 32,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self.opener: BrowserOpener = opener if opener is not None else WebBrowserOpener()
        self.idle_timeout = idle_timeout
        self.token_bytes = token_bytes
        self._pages: dict[str, _Page] = {}
        self._task_group: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        return f"LocalRelay(open_pages={len(self._pages)})"

    async def __aenter__(self) -> LocalRelay:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            self._task_group = None

    def url_of(self, subject: str) -> str | None:
        """The URL of the page open for `subject`, if one is."""
        page = self._pages.get(subject)
        return page.url if page is not None else None

    async def wait_closed(self, subject: str) -> None:
        """Wait until the page of `subject` (if any) has shut down."""
        page = self._pages.get(subject)
        if page is not None:
            await page.done.wait()

    async def present(self, bootstrap: CredentialBootstrapService, subject: str) -> str:
        """The URL of the subject's page; the first call starts it and opens the browser."""
        page = self._pages.get(subject)
        if page is not None:
            return page.url
        if self._task_group is None:
            raise RuntimeError("LocalRelay serves pages only inside `async with LocalRelay(...)`")
        token = secrets.token_urlsafe(self.token_bytes)
        path = f"/relay/{token}"
        listener, port = await listen_loopback()
        app = RelayApp(
            bootstrap,
            path=path,
            subject_of=lambda _scope: subject,
            # Only this page's own address: no other name may reach it (DNS rebinding).
            origin_policy=OriginPolicy(
                allowed_hosts=(f"{LOOPBACK_HOST}:{port}",),
                allowed_origins=(f"http://{LOOPBACK_HOST}:{port}",),
            ),
        )
        url = f"http://{LOOPBACK_HOST}:{port}{path}"
        page = _Page(subject=subject, url=url, scope=anyio.CancelScope())
        self._pages[subject] = page

        async def after_response() -> None:
            page.scope.deadline = anyio.current_time() + self.idle_timeout
            if (await bootstrap.status(subject)).configured:
                page.scope.cancel()

        server = LoopbackHttpServer(app, port=port, on_response=after_response)
        self._task_group.start_soon(self._run, bootstrap, page, server, listener)
        # False: the opener printed the URL to stderr; it is also in the tool's answer.
        await anyio.to_thread.run_sync(self.opener.open, url)
        return url

    async def _run(
        self,
        bootstrap: CredentialBootstrapService,
        page: _Page,
        server: LoopbackHttpServer,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
    ) -> None:
        page.scope.deadline = anyio.current_time() + self.idle_timeout
        try:
            with page.scope:
                await server.serve(listener)
        finally:
            if self._pages.get(page.subject) is page:
                del self._pages[page.subject]
            page.done.set()
            with anyio.CancelScope(shield=True):
                await bootstrap.sweep()


# ---- plumbing ---------------------------------------------------------------------------------
