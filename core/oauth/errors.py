"""OAuth error codes and error responses (RFC 6749 4.1.2.1, 5.2; RFC 6750 3.1; RFC 7591 3.2.2).

Pure: values in, a status, headers and a JSON body out. Every token-endpoint response, error or
not, carries `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 5.1, 5.2).

`error` and `error_description` are restricted by RFC 6749 5.2 to the printable ASCII characters
`%x20-21 / %x23-5B / %x5D-7E` (no `"` and no `\\`), so they can also be placed unescaped in a
`WWW-Authenticate` challenge (RFC 6750 3). `OAuthError` checks that when it is built, so a
message that would break either format is caught where it is written, not where it is sent.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "ACCESS_DENIED",
    "INSUFFICIENT_SCOPE",
    "INVALID_CLIENT",
    "INVALID_CLIENT_METADATA",
    "INVALID_GRANT",
    "INVALID_REDIRECT_URI",
    "INVALID_REQUEST",
    "INVALID_SCOPE",
    "INVALID_TARGET",
    "INVALID_TOKEN",
    "NO_STORE_HEADERS",
    "SERVER_ERROR",
    "TEMPORARILY_UNAVAILABLE",
    "UNAUTHORIZED_CLIENT",
    "UNSUPPORTED_GRANT_TYPE",
    "UNSUPPORTED_RESPONSE_TYPE",
    "UNSUPPORTED_TOKEN_TYPE",
    "OAuthError",
    "error_body",
    "error_json",
    "error_response",
    "is_error_text",
]

# RFC 6749 5.2 (token endpoint) and 4.1.2.1 (authorization endpoint).
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNAUTHORIZED_CLIENT = "unauthorized_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
INVALID_SCOPE = "invalid_scope"
ACCESS_DENIED = "access_denied"
UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
SERVER_ERROR = "server_error"
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
# RFC 8707 2: a `resource` the server will not issue tokens for.
INVALID_TARGET = "invalid_target"
# RFC 7009 2.2.1: revocation of a token type the server does not support.
UNSUPPORTED_TOKEN_TYPE = "unsupported_token_type"
# RFC 7591 3.2.2: dynamic client registration.
INVALID_REDIRECT_URI = "invalid_redirect_uri"
INVALID_CLIENT_METADATA = "invalid_client_metadata"
# RFC 6750 3.1: the resource server's errors, sent in WWW-Authenticate.
INVALID_TOKEN = "invalid_token"
INSUFFICIENT_SCOPE = "insufficient_scope"

# RFC 6749 5.1/5.2: token responses are never cached.
NO_STORE_HEADERS: tuple[tuple[str, str], ...] = (
    ("cache-control", "no-store"),
    ("pragma", "no-cache"),
)

_ERROR_TEXT = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")
_ERROR_CODE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]+")
_MAX_DESCRIPTION = 1024

# RFC 6749 5.2: 400 unless the client failed to authenticate (401). RFC 6750 3.1 for the
# resource server's codes.
_STATUS = {INVALID_CLIENT: 401, INVALID_TOKEN: 401, INSUFFICIENT_SCOPE: 403, SERVER_ERROR: 500}
_STATUS[TEMPORARILY_UNAVAILABLE] = 503


def is_error_text(value: str) -> bool:
    """Whether `value` only holds the characters RFC 6749 5.2 allows in error fields."""
    return _ERROR_TEXT.fullmatch(value) is not None


class OAuthError(Exception):
    """An OAuth error: `error` code, optional `description` and `uri` (RFC 6749 5.2).

    Raised by the policies of this package; the route that catches it renders it with
    `error_response` (token endpoint), as redirect query parameters (authorization endpoint,
    only after the redirect URI was validated), or as a `WWW-Authenticate` challenge.
    """

    def __init__(self, error: str, description: str | None = None, *, uri: str | None = None):
        if _ERROR_CODE.fullmatch(error) is None:
            raise ValueError(
                'an OAuth error code must be non-empty printable ASCII without " or \\'
            )
        if description is not None and (
            not is_error_text(description) or len(description) > _MAX_DESCRIPTION
        ):
            raise ValueError('error_description must be short printable ASCII without " or \\')
        if uri is not None and (not is_error_text(uri) or " " in uri):
            raise ValueError('error_uri must be a URI of printable ASCII without " or \\')
        super().__init__(error if description is None else f"{error}: {description}")
        self.error = error
        self.description = description
        self.uri = uri

    @property
    def status(self) -> int:
        """The HTTP status this error is sent with."""
        return _STATUS.get(self.error, 400)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OAuthError):
            return NotImplemented
        return (self.error, self.description, self.uri) == (
            other.error,
            other.description,
            other.uri,
        )

    def __hash__(self) -> int:
        return hash((self.error, self.description, self.uri))

    def __repr__(self) -> str:
        return f"OAuthError({self.error!r}, {self.description!r}, uri={self.uri!r})"


def error_body(error: OAuthError) -> dict[str, str]:
    """The JSON object of RFC 6749 5.2: `error`, then `error_description`/`error_uri` if set."""
    body = {"error": error.error}
    if error.description is not None:
        body["error_description"] = error.description
    if error.uri is not None:
        body["error_uri"] = error.uri
    return body


def error_json(error: OAuthError) -> bytes:
    """`error_body` serialised as compact UTF-8 JSON."""
    return json.dumps(error_body(error), separators=(",", ":")).encode()


def error_response(error: OAuthError) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
    """Status, headers and body of an error from the token, registration or revocation endpoint.

    RFC 6749 5.2: `application/json` with `Cache-Control: no-store`. A 401 for `invalid_client`
    also needs a `WWW-Authenticate` challenge naming the scheme the client tried; the route
    adds it, since only the route knows that scheme.
    """
    headers = (("content-type", "application/json"), *NO_STORE_HEADERS)
    return error.status, headers, error_json(error)
