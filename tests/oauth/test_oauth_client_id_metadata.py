"""The pure client ID metadata document rules (`core.oauth.client_id_metadata`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_core.core.oauth.client_id_metadata import (
    MAX_DOCUMENT_BYTES,
    check_client_id_url,
    document_lifetime,
    is_client_id_url,
    parse_client_id_document,
)
from mcp_core.core.oauth.errors import OAuthError

URL = "https://app.example/oauth/client.json"


def doc(**fields: Any) -> bytes:
    out: dict[str, Any] = {
        "client_id": URL,
        "client_name": "App",
        "redirect_uris": ["http://127.0.0.1:3000/callback"],
    }
    out.update(fields)
    return json.dumps({k: v for k, v in out.items() if v is not None}).encode()


def test_a_minimal_document_is_a_public_native_client() -> None:
    metadata = parse_client_id_document(doc(), URL)
    assert metadata.token_endpoint_auth_method == "none"
    assert metadata.application_type == "native"
    assert metadata.client_name == "App"


@pytest.mark.parametrize(
    "body",
    [
        doc(client_id="https://app.example/oauth/client.json/"),
        doc(client_id="HTTPS://app.example/oauth/client.json"),
        doc(client_secret="x"),
        doc(client_secret_expires_at=0),
        doc(token_endpoint_auth_method="client_secret_post"),
        doc(token_endpoint_auth_method="client_secret_jwt"),
        doc(client_name=None),
        doc(redirect_uris=None),
        doc(redirect_uris=["https://app.example/cb#frag"]),
        b"null",
        b"{",
        b" " * (MAX_DOCUMENT_BYTES + 1),
    ],
)
def test_bad_documents_are_invalid_client(body: bytes) -> None:
    with pytest.raises(OAuthError) as raised:
        parse_client_id_document(body, URL)
    assert raised.value.error == "invalid_client"


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example/c.json",
        "https://app.example",
        "https://app.example/",
        "https://app.example/./c.json",
        "https://app.example/%2E%2E/c.json",
        "https://app.example/c.json?v=1",
        "https://app.example/c.json#x",
        "https://u:p@app.example/c.json",
        "https://app.example/c json",
        "https://app.example:99999/c.json",
        "https://app.example/" + "a" * 2048,
        "https://ex\u00e4mple.com/c.json",
    ],
)
def test_client_id_url_rules(url: str) -> None:
    with pytest.raises(OAuthError):
        check_client_id_url(url)


def test_acceptable_client_id_urls() -> None:
    for url in (URL, "https://app.example:8443/c", "https://app.example/.well-known/c"):
        assert check_client_id_url(url) == url
        assert is_client_id_url(url)
    assert not is_client_id_url("a1b2c3")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 3600.0),
        ("max-age=600", 600.0),
        ("public, max-age=5", 60.0),
        ('max-age="7200"', 7200.0),
        ("max-age=10000000", 86_400.0),
        ("no-store", 60.0),
        ("max-age=600, no-cache", 60.0),
        ("max-age=-1", 3600.0),
    ],
)
def test_document_lifetime(header: str | None, seconds: float) -> None:
    assert document_lifetime(header) == seconds


def test_document_lifetime_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="minimum"):
        document_lifetime(None, minimum=10, default=5, maximum=20)
