"""`HttpxClient.request` (the `HttpRequester` port): POST bodies, redirects by status, no
following on demand, the SSRF policy at every hop, and no cache for anything but GET."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import httpx
import pytest

from mcp_core.adapters.http_client import HttpxClient
from mcp_core.core.http.ssrf import OutboundPolicy
from mcp_core.ports.http_client import HttpRequester, OutboundRefused

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.216.34"


async def resolve(host: str, port: int) -> Sequence[str]:
    table = {"as.example": [PUBLIC], "other.example": [PUBLIC], "inside.example": ["10.0.0.1"]}
    if host not in table:
        raise OSError(host)
    return table[host]


class Server:
    """A MockTransport handler answering by path, recording what it was sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes, dict[str, str]]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append((request.method, request.url.path, body, headers))
        path = request.url.path
        if path.startswith("/redirect/"):
            status = int(path.rsplit("/", 1)[1])
            return httpx.Response(status, headers={"location": "https://as.example/landing"})
        if path == "/away":
            return httpx.Response(307, headers={"location": "https://other.example/landing"})
        if path == "/to":  # /to?status=307&location=...
            status = int(request.url.params["status"])
            return httpx.Response(status, headers={"location": request.url.params["location"]})
        if path == "/inside":
            return httpx.Response(302, headers={"location": "https://inside.example/x"})
        if path == "/authorize":
            return httpx.Response(
                302, headers={"location": "http://localhost:3000/callback?code=c&state=s"}
            )
        return httpx.Response(
            200,
            json={"method": request.method, "body": body.decode()},
            headers={"cache-control": "max-age=600"},
        )


def client(server: Server) -> HttpxClient:
    return HttpxClient(OutboundPolicy(), resolver=resolve, transport=httpx.MockTransport(server))


async def test_httpx_client_is_an_http_requester() -> None:
    assert isinstance(client(Server()), HttpRequester)


async def test_post_sends_its_body_and_headers() -> None:
    server = Server()
    result = await client(server).request(
        "POST",
        "https://as.example/token",
        headers={"content-type": "application/x-www-form-urlencoded", "Authorization": "Basic x"},
        body=b"grant_type=client_credentials",
    )
    assert result.status == 200
    assert server.seen == [
        (
            "POST",
            "/token",
            b"grant_type=client_credentials",
            server.seen[0][3],
        )
    ]
    assert server.seen[0][3]["authorization"] == "Basic x"
    assert server.seen[0][3]["host"] == "as.example"


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        (303, "GET", b""),
        (302, "GET", b""),
        (301, "GET", b""),
        (307, "POST", b"x=1"),
        (308, "POST", b"x=1"),
    ],
)
async def test_a_post_redirect_repeats_or_turns_into_get_by_status(
    status: int, method: str, body: bytes
) -> None:
    server = Server()
    result = await client(server).request(
        "POST",
        f"https://as.example/redirect/{status}",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=b"x=1",
    )
    assert result.status == 200
    assert result.final_url == "https://as.example/landing"
    sent_method, path, sent_body, headers = server.seen[1]
    assert (sent_method, path, sent_body) == (method, "/landing", body)
    assert ("content-type" in headers) == bool(body)


async def test_without_following_the_redirect_itself_is_the_answer() -> None:
    server = Server()
    result = await client(server).request(
        "GET", "https://as.example/authorize?x=1", follow_redirects=False
    )
    assert result.status == 302
    assert result.header("location") == "http://localhost:3000/callback?code=c&state=s"
    assert len(server.seen) == 1  # the redirect URI was never contacted


async def test_credentials_are_dropped_when_a_redirect_leaves_the_origin() -> None:
    server = Server()
    await client(server).request(
        "POST", "https://as.example/away", headers={"authorization": "Bearer t", "cookie": "c=1"}
    )
    assert server.seen[0][3]["authorization"] == "Bearer t"
    assert "authorization" not in server.seen[1][3]
    assert "cookie" not in server.seen[1][3]
    assert server.seen[1][0:3] == ("POST", "/landing", b"")
    assert server.seen[1][3]["host"] == "other.example"


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize(
    "location",
    [
        "https://other.example/landing",  # another host
        "https://as.example:8443/landing",  # another port
        "http://as.example/landing",  # another scheme
    ],
)
async def test_a_307_or_308_never_replays_a_body_to_another_origin(
    status: int, location: str
) -> None:
    # A token request answered 307 must not hand the code, verifier, refresh token and client
    # secret to whatever the Location names (issue 5 review).
    server = Server()
    http = HttpxClient(
        OutboundPolicy(allowed_schemes=("https", "http")),
        resolver=resolve,
        transport=httpx.MockTransport(server),
    )
    secret = b"grant_type=refresh_token&refresh_token=r-1&client_secret=s-1"
    with pytest.raises(OutboundRefused, match="another origin"):
        await http.request(
            "POST",
            f"https://as.example/to?{urlencode({'status': status, 'location': location})}",
            headers={"content-type": "application/x-www-form-urlencoded", "authorization": "B x"},
            body=secret,
        )
    assert [(seen[0], seen[1], seen[2]) for seen in server.seen] == [("POST", "/to", secret)]


async def test_a_307_within_the_origin_still_repeats_the_body_and_credentials() -> None:
    server = Server()
    location = "https://as.example:443/landing"  # the default port: the same origin
    result = await client(server).request(
        "POST",
        f"https://as.example/to?{urlencode({'status': 307, 'location': location})}",
        headers={"authorization": "Bearer t"},
        body=b"a",
    )
    assert result.status == 200
    assert server.seen[1][0:3] == ("POST", "/landing", b"a")
    assert server.seen[1][3]["authorization"] == "Bearer t"


async def test_every_hop_is_vetted_by_the_policy() -> None:
    server = Server()
    with pytest.raises(OutboundRefused):
        await client(server).request("POST", "https://as.example/inside", body=b"a")
    assert [seen[1] for seen in server.seen] == ["/inside"]


async def test_only_gets_are_cached() -> None:
    server = Server()
    http = client(server)
    for _ in range(2):
        await http.request("POST", "https://as.example/doc", body=b"a")
    assert len(server.seen) == 2
    for _ in range(2):
        await http.request("GET", "https://as.example/doc")
    assert len(server.seen) == 3
    assert http.cached_entries == 1
