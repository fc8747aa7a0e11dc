"""OAuth 2.1 policies and formats for the authorization server and the resource server (issue 4).

Pure: no I/O, no clock, no randomness, no JWT or crypto library; times and random values
arrive as arguments. Modules and the RFC sections they implement:

- `redirects`: redirect URI registration and matching (RFC 6749 3.1.2, RFC 8252 7.1, 7.3).
- `pkce`: PKCE S256 only (RFC 7636 4).
- `metadata`: RFC 8414 and RFC 9728 metadata documents and their well-known URLs.
- `challenges`: `WWW-Authenticate` Bearer challenges (RFC 6750 3, RFC 9728 5.1, RFC 9110 11.6.1).
- `errors`: OAuth error codes and bodies (RFC 6749 5.2).
- `registration`: dynamic client registration requests (RFC 7591).
- `claims`: JWT access token claim rules (RFC 9068).
- `client_assertion`: private_key_jwt client authentication checks (RFC 7523 2.2, 3).
- `client_id_metadata`: client ID metadata documents (draft-ietf-oauth-client-id-metadata-document).
"""

from .challenges import (
    BearerChallenge,
    Challenge,
    ChallengeParseError,
    bearer_challenge,
    format_bearer_challenge,
    parse_www_authenticate,
)
from .claims import ClaimRule, Verdict, check_access_token, missing_scopes, token_scopes
from .client_assertion import (
    JWT_BEARER_ASSERTION_TYPE,
    AssertionReplayCache,
    check_assertion_claims,
    check_assertion_header,
    parse_assertion_request,
    usable_jwks,
)
from .client_id_metadata import (
    check_client_id_url,
    document_lifetime,
    is_client_id_url,
    parse_client_id_document,
)
from .errors import NO_STORE_HEADERS, OAuthError, error_body, error_json, error_response
from .metadata import (
    MetadataError,
    authorization_server_discovery_urls,
    authorization_server_metadata,
    authorization_server_metadata_url,
    check_metadata_issuer,
    protected_resource_metadata,
    protected_resource_metadata_url,
)
from .pkce import S256, check_code_challenge, s256_challenge, verify_code_verifier
from .redirects import (
    RedirectKind,
    RedirectUriError,
    check_redirect_uri,
    redirect_uri_matches,
    select_redirect_uri,
)
from .registration import (
    ClientMetadata,
    check_client_metadata,
    parse_registration_request,
    registration_response,
)

__all__ = [
    "JWT_BEARER_ASSERTION_TYPE",
    "NO_STORE_HEADERS",
    "S256",
    "AssertionReplayCache",
    "BearerChallenge",
    "Challenge",
    "ChallengeParseError",
    "ClaimRule",
    "ClientMetadata",
    "MetadataError",
    "OAuthError",
    "RedirectKind",
    "RedirectUriError",
    "Verdict",
    "authorization_server_discovery_urls",
    "authorization_server_metadata",
    "authorization_server_metadata_url",
    "bearer_challenge",
    "check_access_token",
    "check_assertion_claims",
    "check_assertion_header",
    "check_client_id_url",
    "check_client_metadata",
    "check_code_challenge",
    "check_metadata_issuer",
    "check_redirect_uri",
    "document_lifetime",
    "error_body",
    "error_json",
    "error_response",
    "format_bearer_challenge",
    "is_client_id_url",
    "missing_scopes",
    "parse_assertion_request",
    "parse_client_id_document",
    "parse_registration_request",
    "parse_www_authenticate",
    "protected_resource_metadata",
    "protected_resource_metadata_url",
    "redirect_uri_matches",
    "registration_response",
    "s256_challenge",
    "select_redirect_uri",
    "token_scopes",
    "usable_jwks",
    "verify_code_verifier",
]
