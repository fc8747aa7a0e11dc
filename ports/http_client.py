"""The `HttpClient` port: outbound GETs under an SSRF policy; `HttpRequester` adds any method.

The authorization server fetches client ID metadata documents, JWKS and introspection answers
from URLs that strangers choose, so every fetch goes through an `OutboundPolicy`
(`mcp_core.core.http.ssrf`): the URL, every address its host resolves to, and every redirect are
vetted before a connection is made, and the body and the time are capped. The port speaks only
the project's values: no response object of any HTTP library crosses it.

The OAuth client (issue 5) also POSTs: token requests (RFC 6749 §3.2), dynamic registration
(RFC 7591 §3.1), and reads an authorization endpoint's redirect without following it (a headless
redirect receiver). `HttpRequester` is `HttpClient` plus `request`, for any method, a body and a
choice of following redirects; the same policy vets every target.

Spec context: DESIGN.md "Ports" (`HttpClient`, outbound, with an SSRF policy); issue 4 (client
ID metadata documents); issue 5 (the OAuth client). The reference adapter for both is
`mcp_core.adapters.http_client.HttpxClient`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from mcp_core.core.http.ssrf import OutboundPolicy, OutboundRefused

__all__ = [
    "HttpClient",
    "HttpRequester",
    "HttpResult",
    "OutboundFailed",
    "OutboundPolicy",
    "OutboundRefused",
]


class OutboundFailed(Exception):
    """The request was allowed but did not produce a usable answer: DNS or connection failure,
    timeout, a body larger than the policy's cap, a malformed response.

    Adapters raise it (chaining the library's error) instead of leaking library exceptions.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen(kw_only=True)
class HttpResult:
    """A complete response: `headers` are (lower-case name, value) pairs in arrival order;
    `final_url` is the URL that answered, after redirects."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    final_url: str

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


@runtime_checkable
class HttpClient(Protocol):
    """Outbound HTTP GET under an SSRF policy.

    - `get(url, headers=..., policy=...)` fetches `url` under `policy` (the client's own policy
      when None) and returns the final response, any status included: redirects are followed
      (each one re-vetted) up to `policy.max_redirects`, other statuses are the caller's to judge.
    - A URL, address or redirect the policy forbids raises `OutboundRefused` before any byte is
      sent to that target; too many redirects are refused too.
    - Network errors, timeouts (`policy.timeout`, for the whole fetch) and bodies larger than
      `policy.max_bytes` raise `OutboundFailed`.
    - An adapter may answer from a cache when the response allowed it (`Cache-Control: max-age`,
      never `no-store`).
    """

    async def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        policy: OutboundPolicy | None = None,
    ) -> HttpResult: ...


@runtime_checkable
class HttpRequester(HttpClient, Protocol):
    """`HttpClient` plus requests of any method, under the same SSRF policy.

    - `request(method, url, headers=..., body=..., policy=..., follow_redirects=...)` sends
      `body` (bytes; set `content-type` in `headers`) and returns the response, any status
      included. Redirects are followed as `get` does when `follow_redirects` is true: a 303
      (and a 301 or 302 to a POST) turns into a GET without a body, a 307 or 308 repeats the
      method and body within the origin, and is refused (`OutboundRefused`) when it would carry
      a body to another origin; with `follow_redirects` false a redirect is returned as it
      came, its `Location` header unvetted and unfetched.
    - Refusals and failures are `OutboundRefused` and `OutboundFailed`, as for `get`. Nothing
      but a GET is ever answered from a cache.
    """

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        policy: OutboundPolicy | None = None,
        follow_redirects: bool = True,
    ) -> HttpResult: ...
