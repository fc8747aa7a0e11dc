"""Dynamic client registration requests (RFC 7591 2, 3.1, 3.2) checked into `ClientMetadata`.

`parse_registration_request(body)` takes the raw request body (size-capped, JSON object) and
`check_client_metadata(fields)` the decoded object; both return a frozen `ClientMetadata` or
raise `OAuthError` with `invalid_redirect_uri` or `invalid_client_metadata` (RFC 7591 3.2.2).

Rules, and why:
- `redirect_uris` is required for the `authorization_code` grant and each URI must pass
  `redirects.check_redirect_uri` (RFC 7591 2, RFC 8252). At most `MAX_REDIRECT_URIS`.
- `token_endpoint_auth_method` is one of none, client_secret_basic, client_secret_post,
  private_key_jwt; the RFC 7591 2 default is client_secret_basic. private_key_jwt needs
  `jwks_uri` or `jwks`, never both (RFC 7591 2); a `jwks` holding private key members is refused.
- `grant_types` from authorization_code, refresh_token, client_credentials; `response_types`
  only `code` (OAuth 2.1 has no implicit grant). They must agree (RFC 7591 2.1):
  authorization_code <-> code. refresh_token needs authorization_code, and client_credentials
  needs a confidential client (not `none`).
- `application_type` (OpenID Connect Registration 2, RFC 8252 8.4): `web` needs every redirect
  URI to be https; `native` needs loopback or private-use ones. When it is absent it is inferred
  from the redirect URIs (MCP clients rarely send it), and a mix of the two is refused.
- Text fields are length-capped and printable; URL fields (`client_uri`, `logo_uri`, `tos_uri`,
  `policy_uri`, `jwks_uri`) must be https. `scope` is a list of RFC 6749 3.3 scope-tokens.
- Anything else is ignored, as RFC 7591 2 requires of fields the server does not understand,
  and is never stored: in particular `client_id`, `client_secret`, `registration_access_token`
  and the other fields the server assigns cannot be chosen by the client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import INVALID_CLIENT_METADATA, INVALID_REDIRECT_URI, OAuthError
from .metadata import TOKEN_ENDPOINT_AUTH_METHODS
from .redirects import RedirectKind, RedirectUriError, check_redirect_uri

__all__ = [
    "MAX_CLIENT_NAME_LENGTH",
    "MAX_REDIRECT_URIS",
    "MAX_REQUEST_BYTES",
    "ClientMetadata",
    "check_client_metadata",
    "parse_registration_request",
    "registration_response",
]

MAX_REQUEST_BYTES = 16 * 1024
MAX_REDIRECT_URIS = 10
MAX_CLIENT_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 255
MAX_URL_LENGTH = 2048
MAX_SCOPE_LENGTH = 1024
MAX_CONTACTS = 10
MAX_JWKS_BYTES = 8 * 1024

_GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
_RESPONSE_TYPES = frozenset({"code"})
_APPLICATION_TYPES = frozenset({"web", "native"})
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# JWK members that only a private key has (RFC 7518 6.2.2, 6.3.2, 6.4; RFC 8037 2).
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@attrs.frozen(kw_only=True)
class ClientMetadata:
    """The registered metadata of a client, after validation (RFC 7591 2)."""

    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    application_type: str
    client_name: str | None = None
    client_uri: str | None = None
    logo_uri: str | None = None
    tos_uri: str | None = None
    policy_uri: str | None = None
    scope: str | None = None
    contacts: tuple[str, ...] = ()
    jwks_uri: str | None = None
    jwks: Mapping[str, Any] | None = attrs.field(default=None, eq=False, hash=False)
    software_id: str | None = None
    software_version: str | None = None

    @property
    def is_public(self) -> bool:
        """A public client: it cannot authenticate at the token endpoint (RFC 6749 2.1)."""
        return self.token_endpoint_auth_method == "none"

    def to_json(self) -> dict[str, Any]:
        """The metadata fields as they appear in the registration response (RFC 7591 3.2.1)."""
        out: dict[str, Any] = {}
        for field in attrs.fields(ClientMetadata):
            value = getattr(self, field.name)
            if value is None or value == ():
                continue
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out


def _invalid(description: str) -> OAuthError:
    return OAuthError(INVALID_CLIENT_METADATA, description)


def _text(fields: Mapping[str, Any], name: str, limit: int = MAX_TEXT_LENGTH) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _invalid(f"{name} must be a non-empty string of at most {limit} characters")
    if not value.isprintable():
        raise _invalid(f"{name} must not contain control characters")
    return value


def _https_url(fields: Mapping[str, Any], name: str) -> str | None:
    value = _text(fields, name, MAX_URL_LENGTH)
    if value is None:
        return None
    if not value.startswith("https://") or not value.isascii() or " " in value or "#" in value:
        raise _invalid(f"{name} must be an https URL without fragment")
    authority = value[len("https://") :].split("/", 1)[0]
    if not authority or "@" in authority or "\\" in value:
        raise _invalid(f"{name} must be an https URL with a host and no userinfo")
    return value


def _string_list(fields: Mapping[str, Any], name: str, limit: int) -> tuple[str, ...] | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > limit:
        raise _invalid(f"{name} must be an array of at most {limit} strings")
    if not all(isinstance(item, str) and item for item in value):
        raise _invalid(f"{name} must hold non-empty strings")
    if len(set(value)) != len(value):
        raise _invalid(f"{name} must not repeat values")
    return tuple(value)


def _redirect_uris(fields: Mapping[str, Any]) -> tuple[tuple[str, ...], set[RedirectKind]]:
    value = fields.get("redirect_uris")
    if value is None:
        return (), set()
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise OAuthError(INVALID_REDIRECT_URI, "redirect_uris must be an array of strings")
    if len(value) > MAX_REDIRECT_URIS:
        raise OAuthError(INVALID_REDIRECT_URI, f"at most {MAX_REDIRECT_URIS} redirect_uris")
    kinds = set()
    for uri in value:
        try:
            kinds.add(check_redirect_uri(uri))
        except RedirectUriError as exc:
            # The reason is ours and printable; the URI itself is never echoed back.
            raise OAuthError(INVALID_REDIRECT_URI, _safe(str(exc))) from None
    if len(set(value)) != len(value):
        raise OAuthError(INVALID_REDIRECT_URI, "redirect_uris must not repeat values")
    return tuple(value), kinds


def _safe(text: str) -> str:
    return "".join(c for c in text if c not in '"\\' and " " <= c <= "~")


def _jwks(fields: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = fields.get("jwks")
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise _invalid("jwks must be a JWK Set: an object with a non-empty 'keys' array")
    if len(json.dumps(value)) > MAX_JWKS_BYTES:
        raise _invalid("jwks too large")
    for key in value["keys"]:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            raise _invalid("each JWK needs a 'kty'")
        if _PRIVATE_JWK_MEMBERS & key.keys():
            raise _invalid("jwks must hold public keys only")
    return value


def check_client_metadata(fields: Mapping[str, Any]) -> ClientMetadata:
    """Validate a decoded registration request; raises `OAuthError` (RFC 7591 3.2.2)."""
    if not isinstance(fields, Mapping):
        raise _invalid("the registration request must be a JSON object")
    redirect_uris, kinds = _redirect_uris(fields)

    method = fields.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in TOKEN_ENDPOINT_AUTH_METHODS:
        raise _invalid(
            f"token_endpoint_auth_method must be one of {list(TOKEN_ENDPOINT_AUTH_METHODS)}"
        )

    grant_types = _string_list(fields, "grant_types", len(_GRANT_TYPES)) or ("authorization_code",)
    if not set(grant_types) <= _GRANT_TYPES:
        raise _invalid(f"grant_types must be drawn from {sorted(_GRANT_TYPES)}")
    has_code_grant = "authorization_code" in grant_types
    default_responses = ("code",) if has_code_grant else ()
    response_types = _string_list(fields, "response_types", 1)
    if response_types is None:
        response_types = default_responses
    if not set(response_types) <= _RESPONSE_TYPES:
        raise _invalid("response_types must be ['code']")
    if has_code_grant != ("code" in response_types):
        raise _invalid("grant_types authorization_code and response_types code go together")
    if "refresh_token" in grant_types and not has_code_grant:
        raise _invalid("the refresh_token grant needs the authorization_code grant")
    if "client_credentials" in grant_types and method == "none":
        raise _invalid("client_credentials needs a client that authenticates")
    if has_code_grant and not redirect_uris:
        raise OAuthError(INVALID_REDIRECT_URI, "redirect_uris is required")

    application_type = fields.get("application_type")
    if application_type is None:
        if kinds == {RedirectKind.HTTPS}:
            application_type = "web"
        elif kinds and RedirectKind.HTTPS not in kinds:
            application_type = "native"
        elif not kinds:
            application_type = "web"
        else:
            raise OAuthError(
                INVALID_REDIRECT_URI, "https and native redirect URIs cannot be mixed in one client"
            )
    if application_type not in _APPLICATION_TYPES:
        raise _invalid("application_type must be 'web' or 'native'")
    if application_type == "web" and kinds - {RedirectKind.HTTPS}:
        raise OAuthError(INVALID_REDIRECT_URI, "a web client's redirect URIs must be https")
    if application_type == "native" and RedirectKind.HTTPS in kinds:
        raise OAuthError(
            INVALID_REDIRECT_URI, "a native client's redirect URIs must be loopback or private-use"
        )

    jwks_uri = _https_url(fields, "jwks_uri")
    jwks = _jwks(fields)
    if jwks_uri is not None and jwks is not None:
        raise _invalid("jwks_uri and jwks must not both be present")
    if method == "private_key_jwt" and jwks_uri is None and jwks is None:
        raise _invalid("private_key_jwt needs jwks_uri or jwks")

    scope = _text(fields, "scope", MAX_SCOPE_LENGTH)
    if scope is not None and not all(_SCOPE_TOKEN.fullmatch(s) for s in scope.split(" ")):
        raise _invalid("scope must be space-separated scope-tokens")
    contacts = _string_list(fields, "contacts", MAX_CONTACTS) or ()
    if any(len(c) > MAX_TEXT_LENGTH or not c.isprintable() for c in contacts):
        raise _invalid("contacts must be short printable strings")

    return ClientMetadata(
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=response_types,
        application_type=application_type,
        client_name=_text(fields, "client_name", MAX_CLIENT_NAME_LENGTH),
        client_uri=_https_url(fields, "client_uri"),
        logo_uri=_https_url(fields, "logo_uri"),
        tos_uri=_https_url(fields, "tos_uri"),
        policy_uri=_https_url(fields, "policy_uri"),
        scope=scope,
        contacts=contacts,
        jwks_uri=jwks_uri,
        jwks=jwks,
        software_id=_text(fields, "software_id"),
        software_version=_text(fields, "software_version"),
    )


def parse_registration_request(body: bytes) -> ClientMetadata:
    """Decode and validate a registration request body (`application/json`, RFC 7591 3.1)."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _invalid(f"registration request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):
        raise _invalid("the registration request is not valid JSON") from None
    if not isinstance(fields, dict):
        raise _invalid("the registration request must be a JSON object")
    return check_client_metadata(fields)


def registration_response(
    metadata: ClientMetadata,
    *,
    client_id: str,
    client_id_issued_at: int,
    client_secret: str | None = None,
    client_secret_expires_at: int = 0,
) -> dict[str, Any]:
    """The RFC 7591 3.2.1 response body; the values the server assigns arrive as arguments."""
    body: dict[str, Any] = {"client_id": client_id, "client_id_issued_at": client_id_issued_at}
    if client_secret is not None:
        body["client_secret"] = client_secret
        body["client_secret_expires_at"] = client_secret_expires_at
    body.update(metadata.to_json())
    return body
