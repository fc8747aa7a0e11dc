"""A token from a server's built-in authorization server the way an MCP client gets one, for
tests that talk to a secured server over real sockets (the demo, `mcp-core serve`): discovery
from the 401, RFC 7591 registration, /authorize with PKCE S256 and `resource` (consent is
automatic), the code exchange."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

REDIRECT = "http://127.0.0.1:43123/callback"


def obtain_tokens(
    mcp_url: str, *, scope: str | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """The token response (access and refresh token) for the MCP endpoint at `mcp_url`."""
    with httpx.Client(timeout=timeout) as http:
        first = http.post(
            mcp_url,
            json={"jsonrpc": "2.0", "id": 0, "method": "ping"},
            headers={"accept": "application/json, text/event-stream"},
        )
        assert first.status_code == 401, first.text
        challenge = first.headers["www-authenticate"]
        prm_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
        prm = http.get(prm_url).json()
        issuer = prm["authorization_servers"][0]
        meta = http.get(f"{issuer}/.well-known/oauth-authorization-server").json()
        registered = http.post(
            meta["registration_endpoint"],
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "test client",
            },
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
            "resource": prm["resource"],
        }
        if scope:
            params["scope"] = scope
        authorized = http.get(meta["authorization_endpoint"], params=params)
        assert authorized.status_code == 302, authorized.text
        query = parse_qs(urlsplit(authorized.headers["location"]).query)
        assert query["iss"] == [issuer]
        tokens = http.post(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "client_id": client_id,
                "code": query["code"][0],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
        )
        assert tokens.status_code == 200, tokens.text
        result: dict[str, Any] = tokens.json()
        result["client_id"] = client_id
        result["token_endpoint"] = meta["token_endpoint"]
        return result
