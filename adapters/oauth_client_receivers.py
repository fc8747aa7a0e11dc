"""`RedirectReceiver` adapters: how the authorization request reaches the user and comes back.

Port: `mcp_core.ports.oauth_client.RedirectReceiver` (issue 5: "the browser or redirect receiver
(a loopback callback server for desktop use, or a callback the application completes)").

- `LoopbackRedirectReceiver` (desktop, RFC 8252 §7.3 and §8.3): listens on 127.0.0.1 (a port
  of its own choosing unless one is given; the redirect URI is
  `http://127.0.0.1:PORT/callback`), opens the user's browser on the authorization URL through
  the `BrowserOpener` port, and answers the request to the callback path that carries this
  authorization request's `state` with a short page, handing its query back. Requests to other
  paths get 404 and change nothing. It waits at most `timeout` seconds. It binds only
  loopback, so nothing off the machine can reach it; but any local process, and any web page
  the user visits (a cross-site GET to 127.0.0.1), can reach it.
- `CallbackRedirectReceiver` (an application with its own web server or UI): `authorize` hands
  the URL to the application's `show` callback and waits until the application calls
  `complete(url_or_query)` with what arrived at its redirect URI.

The expected `state` (RFC 6749 §10.12, RFC 9700 §4.7) is the `state` parameter of the
authorization URL the receiver is asked to open (or the `state=` given to `authorize`). A
callback whose `state` differs, or that has none, is not the redirect of this request: the
loopback receiver answers it 400 and `complete` raises ValueError, and both keep waiting for
the genuine one within the timeout. Otherwise any local process or web page could end the flow
first with a forged redirect, and the genuine one would find nobody listening. The comparison
is constant-time (`hmac.compare_digest`). The OAuth client's machine checks `state` again (the
second line of defence, and the only one with a receiver that does not filter). An
authorization URL without `state` gives nothing to compare: the first callback is taken.
- `HeadlessRedirectReceiver` (automation and test harnesses whose authorization endpoint
  redirects at once, like the conformance suite's mock): GETs the authorization URL through
  the `HttpRequester` port without following redirects, follows the ones that do not lead to
  the redirect URI (bounded), and reads the query of the `Location` that does. No user is
  involved: use it only with an authorization server that authenticates no one.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Final
from urllib.parse import parse_qsl, urljoin, urlsplit

import anyio
import anyio.abc

from mcp_core.ports.browser import BrowserOpener
from mcp_core.ports.http_client import (
    HttpRequester,
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
)
from mcp_core.ports.oauth_client import AuthorizationAbandonedError

__all__ = ["CallbackRedirectReceiver", "HeadlessRedirectReceiver", "LoopbackRedirectReceiver"]

log = logging.getLogger("mcp_core.client.oauth")

DEFAULT_TIMEOUT: Final = 300.0  # seconds a user gets to finish in the browser
_MAX_REQUEST: Final = 16 * 1024
_PAGE: Final = (
    b"<!doctype html><meta charset=utf-8><title>mcp-core</title>"
    b"<p>Authorization received. You can close this window.</p>"
)


def _query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _expected_state(url: str, state: str | None) -> str | None:
    """The `state` a genuine redirect carries: the one given, else the authorization URL's."""
    return state if state is not None else _query_of(url).get("state")


def _state_matches(params: Mapping[str, str], expected: str | None) -> bool:
    """The redirect belongs to the request (constant time; no expectation: any redirect)."""
    if expected is None:
        return True
    received = params.get("state")
    return received is not None and hmac.compare_digest(received.encode(), expected.encode())


def _same_endpoint(url: str, redirect_uri: str) -> bool:
    """`url` is the redirect URI with a query added (scheme, authority and path equal)."""
    a, b = urlsplit(url), urlsplit(redirect_uri)
    return (a.scheme.lower(), a.netloc.lower(), a.path or "/") == (
        b.scheme.lower(),
        b.netloc.lower(),
        b.path or "/",
    )


class HeadlessRedirectReceiver:
    """Follows the authorization endpoint's redirects with an HTTP client; see the module
    docstring. `redirect_uri` is never contacted: it only has to be registered."""

    def __init__(
        self,
        http: HttpRequester,
        *,
        redirect_uri: str = "http://localhost:3000/callback",
        policy: OutboundPolicy | None = None,
        max_hops: int = 5,
    ) -> None:
        self._http = http
        self._redirect_uri = redirect_uri
        self._policy = policy
        self._max_hops = max_hops

    def __repr__(self) -> str:
        return f"HeadlessRedirectReceiver(redirect_uri={self._redirect_uri!r})"

    @property
    def redirect_uri(self) -> str:
        return self._redirect_uri

    async def authorize(self, url: str) -> Mapping[str, str]:
        current = url
        for _ in range(self._max_hops):
            try:
                result = await self._http.request(
                    "GET", current, policy=self._policy, follow_redirects=False
                )
            except (OutboundRefused, OutboundFailed) as exc:
                raise AuthorizationAbandonedError(
                    f"the authorization request failed: {exc}"
                ) from exc
            location = result.header("location")
            if not 300 <= result.status < 400 or location is None:
                raise AuthorizationAbandonedError(
                    f"the authorization endpoint answered HTTP {result.status} without "
                    "redirecting (a person must sign in: use a browser-based receiver)"
                )
            target = urljoin(current, location)
            if _same_endpoint(target, self._redirect_uri):
                return _query_of(target)
            current = target
        raise AuthorizationAbandonedError(f"no redirect to the redirect URI in {self._max_hops}")


class CallbackRedirectReceiver:
    """The application shows the URL and completes the redirect itself; see the module
    docstring. `show(url)` may be sync or async; `complete` accepts the full redirect URL or
    its query string, and refuses (ValueError) one whose `state` is not the request's."""

    def __init__(
        self,
        redirect_uri: str,
        show: Callable[[str], Awaitable[None] | None],
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._redirect_uri = redirect_uri
        self._show = show
        self._timeout = timeout
        self._arrived: anyio.Event | None = None
        self._params: dict[str, str] | None = None
        self._state: str | None = None

    def __repr__(self) -> str:
        return f"CallbackRedirectReceiver(redirect_uri={self._redirect_uri!r})"

    @property
    def redirect_uri(self) -> str:
        return self._redirect_uri

    @property
    def waiting(self) -> bool:
        return self._arrived is not None and not self._arrived.is_set()

    def complete(self, url_or_query: str) -> None:
        """Hand over what arrived at the redirect URI. ValueError when nothing waits, or when
        its `state` is not the waiting request's (the request keeps waiting)."""
        if self._arrived is None or self._arrived.is_set():
            raise ValueError("no authorization is waiting for its redirect")
        query = url_or_query if "?" not in url_or_query else urlsplit(url_or_query).query
        params = dict(parse_qsl(query.lstrip("?"), keep_blank_values=True))
        if not _state_matches(params, self._state):
            raise ValueError("the redirect's state does not match the authorization request")
        self._params = params
        self._arrived.set()

    async def authorize(self, url: str, *, state: str | None = None) -> Mapping[str, str]:
        self._arrived, self._params = anyio.Event(), None
        self._state = _expected_state(url, state)
        try:
            shown = self._show(url)
            if shown is not None:
                await shown
            with anyio.move_on_after(self._timeout):
                await self._arrived.wait()
            if self._params is None:
                raise AuthorizationAbandonedError(
                    f"no redirect arrived within {self._timeout:.0f} s"
                )
            return self._params
        finally:
            self._arrived, self._state = None, None


class LoopbackRedirectReceiver:
    """A one-shot loopback HTTP listener plus the user's browser; see the module docstring.

    ```python
    async with LoopbackRedirectReceiver(WebBrowserOpener()) as receiver:
        ...  # receiver.redirect_uri is known from here on
    ```
    """

    def __init__(
        self,
        browser: BrowserOpener,
        *,
        port: int = 0,
        path: str = "/callback",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._browser = browser
        self._port = port
        self._path = path
        self._timeout = timeout
        self._listener: anyio.abc.SocketListener | None = None

    def __repr__(self) -> str:
        return f"LoopbackRedirectReceiver(port={self._port}, path={self._path!r})"

    async def start(self) -> None:
        if self._listener is None:
            multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self._port)
            [listener] = multi.listeners  # one address: 127.0.0.1
            assert isinstance(listener, anyio.abc.SocketListener)
            self._listener = listener
            self._port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def aclose(self) -> None:
        if self._listener is not None:
            await self._listener.aclose()
            self._listener = None

    async def __aenter__(self) -> LoopbackRedirectReceiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def redirect_uri(self) -> str:
        if self._listener is None:
            raise RuntimeError("start the receiver first: its port is chosen when it listens")
        return f"http://127.0.0.1:{self._port}{self._path}"

    async def authorize(self, url: str, *, state: str | None = None) -> Mapping[str, str]:
        """Open `url` and wait for its redirect: the callback carrying `state` (else the
        `state` of `url`); see the module docstring."""
        await self.start()
        assert self._listener is not None
        listener = self._listener
        expected = _expected_state(url, state)
        result: dict[str, str] | None = None
        done = anyio.Event()

        async def handle(stream: anyio.abc.SocketStream) -> None:
            nonlocal result
            async with stream:
                target = await _read_request_target(stream)
                if target is None or done.is_set():
                    await _respond(stream, 400, b"bad request")
                    return
                if urlsplit(target).path != self._path:
                    await _respond(stream, 404, b"not found")
                    return
                params = _query_of(target)
                if not _state_matches(params, expected):
                    # Not this request's redirect (forged, stale, another flow's): refuse it
                    # and keep waiting for the genuine one.
                    log.warning("refused a redirect whose state does not match the request")
                    await _respond(stream, 400, b"state does not match the authorization request")
                    return
                if result is not None:  # a second genuine one, while the first is answered
                    await _respond(stream, 400, b"bad request")
                    return
                result = params
                await _respond(stream, 200, _PAGE, content_type="text/html; charset=utf-8")
                done.set()

        async with anyio.create_task_group() as group:

            async def serve() -> None:
                with contextlib.suppress(anyio.ClosedResourceError):
                    while not done.is_set():
                        stream = await listener.accept()
                        group.start_soon(handle, stream)

            group.start_soon(serve)
            opened = await anyio.to_thread.run_sync(self._browser.open, url)
            if not opened:
                log.info("the browser could not be opened; the URL was shown instead")
            with anyio.move_on_after(self._timeout):
                await done.wait()
            group.cancel_scope.cancel()
        if result is None:
            raise AuthorizationAbandonedError(
                f"no redirect reached {self.redirect_uri} within {self._timeout:.0f} s"
            )
        return result


async def _read_request_target(stream: anyio.abc.SocketStream) -> str | None:
    data = b""
    with anyio.move_on_after(10):
        while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[1].startswith("/"):
        return None
    return parts[1]


async def _respond(
    stream: anyio.abc.SocketStream,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
) -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n"
    )
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await stream.send(head.encode("latin-1") + body)
