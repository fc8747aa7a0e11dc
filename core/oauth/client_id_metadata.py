"""Client ID metadata documents: an https URL as the client_id, the client's metadata behind it.

Specs: draft-ietf-oauth-client-id-metadata-document-00 (sections 3, 4 and 6), MCP 2025-11-25
"Authorization" > "Client ID Metadata Documents" (the AS MUST check that the document's
`client_id` matches the URL exactly, MUST validate redirect URIs against it, SHOULD cache it
respecting HTTP cache headers, SHOULD mind SSRF), RFC 7591 2 (the metadata fields).

Pure: the authorization server fetches (through the `HttpClient` port and its SSRF policy) and
stores; this module decides.

- `is_client_id_url(client_id)`: does this client_id name a document (it starts with
  `https://`)? Such ids are never assigned by dynamic registration (those are random base64url).
- `check_client_id_url(client_id)`: the draft's rules for the URL: `https`, a host, no userinfo,
  a path other than "/", no "." or ".." path segments (raw or percent-encoded), no fragment, and
  (the draft says SHOULD NOT; refused here) no query. At most `MAX_CLIENT_ID_URL_LENGTH`.
- `parse_client_id_document(body, client_id)`: at most `MAX_DOCUMENT_BYTES` (the draft suggests
  5 KB), a JSON object whose `client_id` is the URL by simple string comparison (RFC 3986
  6.2.1), with `client_name` and `redirect_uris` (the MCP minimum). No shared secret can exist
  for a document, so `client_secret` and `client_secret_expires_at` are refused, and
  `token_endpoint_auth_method` is `none` (the default here, not RFC 7591's
  client_secret_basic) or `private_key_jwt` with its `jwks` or `jwks_uri`. The rest is
  `registration.check_client_metadata`, the same rules as a dynamic registration.
- `document_lifetime(cache_control, ...)`: how long a fetched document is used before it is
  fetched again: `max-age` clamped to [`minimum`, `maximum`]; `no-store`/`no-cache`, or no
  usable `max-age`, give `minimum` and `default` respectively. The floor exists because the
  server must hold the document across one authorization (authorize, then token) and must not
  let a document owner turn every request into a fetch; the ceiling bounds how long a revoked
  redirect URI stays usable.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from .errors import INVALID_CLIENT, OAuthError
from .registration import ClientMetadata, check_client_metadata

__all__ = [
    "CIMD_AUTH_METHODS",
    "DEFAULT_DOCUMENT_TTL",
    "MAX_CLIENT_ID_URL_LENGTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_TTL",
    "MIN_DOCUMENT_TTL",
    "check_client_id_url",
    "document_lifetime",
    "is_client_id_url",
    "parse_client_id_document",
]

MAX_CLIENT_ID_URL_LENGTH: Final = 2048
# draft-ietf-oauth-client-id-metadata-document-00 6.5: a limit such as 5 kilobytes.
MAX_DOCUMENT_BYTES: Final = 5 * 1024
MIN_DOCUMENT_TTL: Final = 60.0
DEFAULT_DOCUMENT_TTL: Final = 3600.0
MAX_DOCUMENT_TTL: Final = 86_400.0
CIMD_AUTH_METHODS: Final = ("none", "private_key_jwt")
_SECRET_FIELDS: Final = ("client_secret", "client_secret_expires_at")
_DOT_SEGMENT: Final = re.compile(r"^(\.|\.\.)$")


def _invalid(description: str) -> OAuthError:
    return OAuthError(INVALID_CLIENT, description)


def is_client_id_url(client_id: str) -> bool:
    """True when `client_id` claims to be a metadata document URL (an https URL)."""
    return client_id.startswith("https://")


def check_client_id_url(client_id: str) -> str:
    """Refuse a client_id URL the draft forbids (section 3); returns it unchanged."""
    if len(client_id) > MAX_CLIENT_ID_URL_LENGTH or not client_id.isascii():
        raise _invalid("the client_id URL is too long or not ASCII")
    if any(c <= " " or c in "\\\x7f" for c in client_id):
        raise _invalid("the client_id URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(client_id)
        _ = parts.port
    except ValueError:
        raise _invalid("the client_id URL does not parse") from None
    if parts.scheme != "https" or not parts.hostname:
        raise _invalid("the client_id URL must be https with a host")
    if "@" in parts.netloc:
        raise _invalid("the client_id URL must not carry userinfo")
    if "#" in client_id or "?" in client_id:
        raise _invalid("the client_id URL must have neither fragment nor query")
    if parts.path in ("", "/"):
        raise _invalid("the client_id URL must have a path")
    if any(_DOT_SEGMENT.match(unquote(s)) for s in parts.path.split("/")):
        raise _invalid("the client_id URL must not have '.' or '..' path segments")
    return client_id


def parse_client_id_document(body: bytes, client_id: str) -> ClientMetadata:
    """Validate a fetched document for `client_id` (already checked by `check_client_id_url`).

    Raises `OAuthError(invalid_client)`; descriptions are ours, nothing from the document."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _invalid(f"the client metadata document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        fields: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise _invalid("the client metadata document is not JSON") from None
    if not isinstance(fields, dict):
        raise _invalid("the client metadata document is not a JSON object")
    if fields.get("client_id") != client_id:
        raise _invalid("the document's client_id is not the URL it was fetched from")
    if any(name in fields for name in _SECRET_FIELDS):
        raise _invalid("a client metadata document must not hold a client secret")
    method = fields.setdefault("token_endpoint_auth_method", "none")
    if method not in CIMD_AUTH_METHODS:
        raise _invalid(f"token_endpoint_auth_method must be one of {list(CIMD_AUTH_METHODS)}")
    if "client_name" not in fields or "redirect_uris" not in fields:
        raise _invalid("the client metadata document needs client_name and redirect_uris")
    try:
        return check_client_metadata(fields)
    except OAuthError as error:
        reason = (error.description or error.error)[:200]
        raise _invalid(f"the client metadata document is invalid: {reason}") from None


def document_lifetime(
    cache_control: str | None,
    *,
    minimum: float = MIN_DOCUMENT_TTL,
    default: float = DEFAULT_DOCUMENT_TTL,
    maximum: float = MAX_DOCUMENT_TTL,
) -> float:
    """Seconds to keep a fetched document, from its `Cache-Control` (see the module docstring)."""
    if not 0 < minimum <= default <= maximum:
        raise ValueError("document lifetimes: 0 < minimum <= default <= maximum")
    directives: dict[str, str] = {}
    for item in (cache_control or "").split(","):
        name, _, arg = item.strip().partition("=")
        directives[name.strip().lower()] = arg.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return minimum
    raw = directives.get("max-age")
    if raw is None or not raw.isdigit():
        return default
    return min(max(float(raw), minimum), maximum)
