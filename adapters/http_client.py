"""The `HttpClient` port on httpx, with the SSRF policy enforced at every hop.

Spec context: issue 4 (client ID metadata documents "fetched through the `HttpClient` port with
an SSRF policy: no private, link-local or loopback targets unless configured for development,
redirects re-checked, size and time caps, cached"); the port is `mcp_core.ports.http_client`,
the policy `mcp_core.core.http.ssrf`.

One fetch, step by step:
1. `policy.check_url` vets the URL (scheme, userinfo, port, host syntax, IP literals).
2. The host is resolved here (`anyio.getaddrinfo`, or an injected resolver) and EVERY address is
   vetted; one refused address refuses the fetch (a name that also points inside is hostile).
3. The request goes to a vetted address itself: the URL handed to httpx names the IP, the `Host`
   header and the TLS SNI/certificate check keep the name. httpx never resolves the name, so a
   DNS answer that changes between the check and the connection (rebinding) changes nothing.
   Each hop gets a fresh connection: a pooled connection authenticated for one name must not
   carry a request for another name at the same address. Proxies from the environment are
   ignored (a proxy would resolve the name itself).
4. Redirects are not followed by httpx: each `Location` is re-vetted (`check_redirect`), resolved
   and vetted again, up to `max_redirects`. Credentials the caller set (`Authorization`,
   `Cookie`) are dropped when a redirect leaves the origin (scheme, host, port).
5. The body is streamed and abandoned past `max_bytes` (after content decoding, so a compressed
   bomb is capped too); the whole fetch, DNS and redirects included, is bounded by `timeout`.
6. A 200 whose `Cache-Control` has `max-age` (and neither `no-store` nor `no-cache`) is kept in a
   bounded in-memory LRU cache, keyed by URL, request headers and policy.

`request` (the `HttpRequester` port) runs the same steps for any method with a body: a 303, and
a 301 or 302 answering a POST, turns into a GET without the body (RFC 9110 §15.4); a 307 or 308
repeats the method and body, but only within the origin: a 307 or 308 that would carry a body
to another origin is refused (`OutboundRefused`, nothing sent there). A body is the caller's
secret as much as a header is (a token request holds the code, the PKCE verifier, the refresh
token, the client secret), and a server must not be able to forward it elsewhere by answering
307 (issue 5 review). With `follow_redirects=False` the redirect itself is the answer (an OAuth
client reads the authorization code from its `Location`, and sends its token requests that way).
Only GETs are cached.

httpx and socket errors never cross the port: they become `OutboundFailed`.
"""

from __future__ import annotations

import socket
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import anyio
import attrs
import httpx

from mcp_core.adapters.system import SystemClock
from mcp_core.core.http.ssrf import IPAddress, OutboundPolicy, OutboundTarget
from mcp_core.ports.http_client import HttpResult, OutboundFailed, OutboundRefused
from mcp_core.ports.system import Clock

__all__ = ["HttpxClient", "Resolver", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""(host, port) -> the addresses the name resolves to, as text. Raises OSError on failure."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_KEEP_METHOD = frozenset({307, 308})
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_MAX_CACHE_SECONDS = 24 * 3600.0


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _ConnectFailed(Exception):
    """This address did not accept the connection; another vetted address may."""


class _Borrowed(httpx.AsyncBaseTransport):
    """An injected transport, shared by every request: closing a request's client leaves it open."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def _cache_lifetime(headers: httpx.Headers) -> float | None:
    """Seconds a response may be reused, from `Cache-Control: max-age` minus `Age`; None: never."""
    directives: dict[str, str] = {}
    for value in headers.get_list("cache-control"):
        for item in value.split(","):
            name, _, arg = item.strip().partition("=")
            directives[name.strip().lower()] = arg.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return None
    raw = directives.get("max-age")
    if raw is None or not raw.isdigit():
        return None
    age_text = headers.get("age", "0")
    age = int(age_text) if age_text.isdigit() else 0
    lifetime = min(float(raw), _MAX_CACHE_SECONDS) - age
    return lifetime if lifetime > 0 else None


_CacheKey = tuple[str, tuple[tuple[str, str], ...], OutboundPolicy]


@attrs.frozen
class _Send:
    """What one hop sends: the method, the body, and whether redirects are followed."""

    method: str = "GET"
    body: bytes = b""
    follow: bool = True

    def after_redirect(self, status: int) -> _Send:
        if status in _KEEP_METHOD or self.method in ("GET", "HEAD"):
            return self
        if status == 303 or self.method == "POST":
            return _Send("GET", b"", self.follow)
        return self


class _Cache:
    """A bounded LRU of fresh responses: expired entries are dropped when met."""

    def __init__(self, entries: int, clock: Clock) -> None:
        self._entries = entries
        self._clock = clock
        self._items: OrderedDict[_CacheKey, tuple[float, HttpResult]] = OrderedDict()

    def get(self, key: _CacheKey) -> HttpResult | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, result = item
        if self._clock.now() >= expires:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return result

    def put(self, key: _CacheKey, result: HttpResult, lifetime: float) -> None:
        if self._entries <= 0:
            return
        self._items[key] = (self._clock.now() + lifetime, result)
        self._items.move_to_end(key)
        while len(self._items) > self._entries:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class HttpxClient:
    """`HttpClient` on httpx. `policy` is the default for `get`; a call may pass its own.

    `resolver` and `transport` are seams for tests (a fixed name table, an `httpx.MockTransport`);
    production uses the system resolver and a fresh `httpx.AsyncHTTPTransport` per hop.
    `verify` is the TLS trust (True: the system's default context).
    """

    def __init__(
        self,
        policy: OutboundPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        cache_entries: int = 128,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._policy = policy if policy is not None else OutboundPolicy()
        self._resolver: Resolver = resolver if resolver is not None else system_resolver
        self._transport = transport
        self._cache = _Cache(cache_entries, clock if clock is not None else SystemClock())
        self._verify = verify
        self._ssl: ssl.SSLContext | bool | None = None

    def __repr__(self) -> str:
        return f"HttpxClient(policy={self._policy!r})"

    @property
    def policy(self) -> OutboundPolicy:
        return self._policy

    @property
    def cached_entries(self) -> int:
        return len(self._cache)

    async def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        policy: OutboundPolicy | None = None,
    ) -> HttpResult:
        policy = policy if policy is not None else self._policy
        target = policy.check_url(url)
        sent = {k.lower(): v for k, v in (headers or {}).items() if k.lower() != "host"}
        key: _CacheKey = (target.url, tuple(sorted(sent.items())), policy)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result, lifetime = await self._bounded(target, sent, policy, _Send())
        if lifetime is not None and result.status == 200:
            self._cache.put(key, result, lifetime)
        return result

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        policy: OutboundPolicy | None = None,
        follow_redirects: bool = True,
    ) -> HttpResult:
        method = method.upper()
        if method == "GET" and not body and follow_redirects:
            return await self.get(url, headers=headers, policy=policy)
        policy = policy if policy is not None else self._policy
        target = policy.check_url(url)
        sent = {k.lower(): v for k, v in (headers or {}).items() if k.lower() != "host"}
        result, _ = await self._bounded(target, sent, policy, _Send(method, body, follow_redirects))
        return result

    async def _bounded(
        self, target: OutboundTarget, headers: dict[str, str], policy: OutboundPolicy, send: _Send
    ) -> tuple[HttpResult, float | None]:
        try:
            with anyio.fail_after(policy.timeout):
                return await self._follow(target, headers, policy, send)
        except TimeoutError:
            raise OutboundFailed(f"no complete answer within {policy.timeout} s") from None

    async def _follow(
        self,
        target: OutboundTarget,
        headers: dict[str, str],
        policy: OutboundPolicy,
        send: _Send,
    ) -> tuple[HttpResult, float | None]:
        redirects = 0
        while True:
            result, location, lifetime = await self._hop(target, headers, policy, send)
            if location is None or not send.follow:
                return result, lifetime
            if redirects >= policy.max_redirects:
                raise OutboundRefused(f"more than {policy.max_redirects} redirects")
            redirects += 1
            following = policy.check_redirect(target.url, location)
            send = send.after_redirect(result.status)
            if following.origin != target.origin:
                if send.body:  # a 307/308 would replay it: never to another origin
                    raise OutboundRefused(
                        f"HTTP {result.status} would resend the request body to another origin "
                        f"({following.scheme}://{following.authority})"
                    )
                headers = {k: v for k, v in headers.items() if k not in _ORIGIN_BOUND_HEADERS}
            if not send.body:
                headers = {k: v for k, v in headers.items() if k != "content-type"}
            target = following

    async def _vetted_addresses(
        self, target: OutboundTarget, policy: OutboundPolicy
    ) -> list[IPAddress]:
        if target.ip is not None:
            return [policy.check_address(target.ip)]
        try:
            answers = await self._resolver(target.host, target.port)
        except OSError as exc:
            raise OutboundFailed(f"cannot resolve {target.host}: {exc}") from exc
        if not answers:
            raise OutboundFailed(f"{target.host} resolves to no address")
        vetted: list[IPAddress] = []
        for answer in answers:
            ip = policy.check_address(answer)  # one bad answer refuses the whole name
            if ip not in vetted:
                vetted.append(ip)
        return vetted

    async def _hop(
        self,
        target: OutboundTarget,
        headers: dict[str, str],
        policy: OutboundPolicy,
        send: _Send,
    ) -> tuple[HttpResult, str | None, float | None]:
        addresses = await self._vetted_addresses(target, policy)
        failures: list[str] = []
        for ip in addresses:
            try:
                return await self._exchange(target, ip, headers, policy, send)
            except _ConnectFailed as exc:
                failures.append(f"{ip}: {exc}")
        raise OutboundFailed(f"cannot connect to {target.host}: {'; '.join(failures)}")

    def _make_transport(self) -> httpx.AsyncBaseTransport:
        if self._transport is not None:
            return _Borrowed(self._transport)
        if self._ssl is None:
            self._ssl = ssl.create_default_context() if self._verify is True else self._verify
        return httpx.AsyncHTTPTransport(verify=self._ssl, retries=0, trust_env=False)

    async def _exchange(
        self,
        target: OutboundTarget,
        ip: IPAddress,
        headers: dict[str, str],
        policy: OutboundPolicy,
        send: _Send,
    ) -> tuple[HttpResult, str | None, float | None]:
        parts = urlsplit(target.url)
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        query = f"?{parts.query}" if parts.query else ""
        pinned = f"{target.scheme}://{literal}:{target.port}{parts.path}{query}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request_headers = {**headers, "host": target.authority}
        client = httpx.AsyncClient(
            transport=self._make_transport(),
            trust_env=False,
            follow_redirects=False,
            timeout=policy.timeout,
        )
        async with client:
            try:
                async with client.stream(
                    send.method,
                    pinned,
                    headers=request_headers,
                    content=send.body or None,
                    extensions=extensions,
                ) as response:
                    return await self._read(target, response, policy, send.method)
            except httpx.ConnectError as exc:
                raise _ConnectFailed(str(exc) or type(exc).__name__) from exc
            except httpx.TimeoutException as exc:
                raise OutboundFailed(f"{target.host} timed out") from exc
            except httpx.HTTPError as exc:
                raise OutboundFailed(f"{target.host}: {type(exc).__name__}: {exc}") from exc

    async def _read(
        self,
        target: OutboundTarget,
        response: httpx.Response,
        policy: OutboundPolicy,
        method: str = "GET",
    ) -> tuple[HttpResult, str | None, float | None]:
        pairs = tuple(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers.raw
        )
        location = response.headers.get("location")
        if response.status_code in _REDIRECTS and location is not None:
            result = HttpResult(
                status=response.status_code, headers=pairs, body=b"", final_url=target.url
            )
            return result, location, None
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > policy.max_bytes:
            raise OutboundFailed(
                f"{target.host} announced {declared} bytes, over the {policy.max_bytes} cap"
            )
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > policy.max_bytes:
                raise OutboundFailed(f"{target.host} sent more than {policy.max_bytes} bytes")
        result = HttpResult(
            status=response.status_code, headers=pairs, body=bytes(body), final_url=target.url
        )
        lifetime = _cache_lifetime(response.headers) if method == "GET" else None
        return result, None, lifetime
