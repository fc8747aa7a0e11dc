"""Authorization grant, server side: one authorization code grant from request to revocation.

Issue 4 ("OAuth 2.1: the built-in authorization server"), the grant lifecycle bullets;
DESIGN.md "State machines: the table is the spec" and "Security defaults". Specs: RFC 6749
section 4.1 (authorization code grant; 4.1.2: codes are short-lived, "a maximum authorization
code lifetime of 10 minutes is RECOMMENDED", single-use, and a code used twice SHOULD revoke
every token issued from it; 5.2: error codes), RFC 7636 (PKCE: 4.2 the S256 transform, 4.4.1
`invalid_request` for a missing challenge, 4.6 `invalid_grant` for a verifier that does not
match), RFC 9700 (OAuth 2.0 Security BCP: 2.1.1 PKCE, 4.14 refresh token protection by
rotation with reuse detection), RFC 8707 (resource indicators: the audience of the tokens,
`invalid_target`) and the OAuth 2.1 draft (draft-ietf-oauth-v2-1: PKCE for every client, no
`plain` where S256 is possible, refresh rotation for public clients).

Theory of operation. One machine runs per authorization grant and starts `new`. The service
checks the client and its redirect URI against the registration first (an exact match; an
unknown client or URI is answered on the server's own page and never reaches this machine,
so the machine never redirects to an unvalidated URI), then reports `AuthorizationRequested`.
The machine accepts only a PKCE S256 challenge (43 base64url characters) and an RFC 8707
`resource` (an absolute URI without a fragment): a missing challenge, `plain` (also what a
missing method means, RFC 7636 4.3) or a missing resource ends the grant in `denied` with an
error redirect (`RedirectWithError`: `invalid_request` or `invalid_target`). A valid request
moves to `request_validated` and asks for consent (`ShowConsent`), which is due within
`consent_lifetime`. `ConsentGiven` moves to `consented` and has a code minted
(`IssueCode`); `ConsentDenied` ends in `denied` with `access_denied`.

The service mints the code (from its `Random` port), keeps only its hash and reports
`CodeIssued(code_id, family_id, at)`: `code_id` is how the code is known (its hash, compared
in constant time), `family_id` names every token that will ever be issued from this code. The
machine moves to `code_issued`, gives the code `code_lifetime` (at most 600 s, the default;
`GrantLimits` refuses more) and has the user agent sent back with it (`RedirectWithCode`). A
failed mint (`CodeIssueFailed`) ends in `denied` with `server_error`.

`CodeRedeemed` is the token request (grant_type=authorization_code). It redeems the code only
when every binding holds: the same code, the client it was issued to, the same `redirect_uri`
and `resource` as the authorization request, a `code_verifier` whose S256 transform equals the
challenge (`hmac.compare_digest`), before the code's deadline. Then the grant is `redeemed` and
the first generation of tokens is issued (`IssueTokens(generation=0)`): no token is ever issued
without a verified PKCE. A redemption that fails a binding is answered with its RFC 6749 error
(`RejectRequest`) and changes nothing, so a stolen code presented by another client or without
the verifier cannot spend it; a code presented after its deadline ends in `expired`. Once
redeemed, the same code presented again is a replay (RFC 6749 4.1.2): the grant is `revoked`,
the whole family with it (`RevokeFamily`), and the request refused.

Refresh rotation (RFC 9700 4.14.2, OAuth 2.1). Tokens come in generations; each refresh token
belongs to one. In `tokens_active` the current generation's refresh token, presented by the
same client before the refresh deadline, is accepted once: the grant moves to `rotated` and
generation n + 1 is issued. From that moment generation n is old: presenting an old generation's
refresh token, in `tokens_active` or while the next one is being issued, is reuse, the sign
that a refresh token leaked. The server cannot tell the thief from the client, so it revokes the
whole family (`revoked`). A refresh token of the current generation from another client, or of
a generation not yet issued, is refused and changes nothing. Each accepted code or refresh token
sets the family's idle deadline to `refresh_lifetime` from then; after it, `Expired` (or a
refresh presented late) ends the grant in `expired` and the family is revoked.

Issuing and its failures. `redeemed` and `rotated` mean "accepted, tokens being issued": the
state never claims tokens the service did not issue. The service signs and stores the tokens
and reports `TokensIssued(generation)` (back to `tokens_active`) or `TokenIssueFailed`, which
revokes the family: the code is spent (or the presented refresh token is old), nothing of the new
generation may stay usable, and a service that crashed mid-issue leaves the grant in `redeemed`
or `rotated`, where the client's retry is a replay or a reuse and revokes it too. Failure and
crash end the same way. `RevokeFamily` is not reported back: the family is dead as soon as the
grant is `revoked` (every presentation is refused from then on); the service retries the
effect, which is idempotent, until the tokens' records and deny-list say so too.

Answers. Events a client causes (`CodeRedeemed`, `RefreshPresented`) are answered in every state
from `code_issued` on, the final ones included: with tokens, or with `RejectRequest` carrying an
RFC 6749 / RFC 8707 error code and a description in the characters RFC 6749 allows. The service
never invents an answer. Facts the service reports out of turn (a second `CodeIssued`, a
`TokensIssued` for another generation, a consent after the consent deadline) raise
`LocalProtocolError` and change nothing. `Revoked` (RFC 7009 revocation, the operator) ends any
grant holding a code or tokens, and is a no-op once revoked. `Expired(at)` counts only once the
current deadline passed (the consent's, the code's or the family's), so timers and sweeps may fire
it freely. Deadlines are half-open: a code at `at < code_expires_at` counts.

Driving it. The service keeps one `AuthorizationGrant` per grant, persists its `progress` after
every accepted event with compare-and-set (that is what makes redemption and rotation atomic
across nodes: of two concurrent requests only one write wins; the loser re-reads the grant and
replays its event, where it is a second redemption or a reuse), performs the returned effects in
order and reports outcomes as the next event. This module reads no clock and draws no random
numbers: times, code hashes, family ids and generations arrive in events.

How the table sees the machine's data. As in `credential_bootstrap`: the guards need what the
machine holds (the code's hash and deadline, the PKCE challenge, the client bindings, the
current generation, the server's lifetimes), so `AuthorizationGrant` keeps it as a
`GrantProgress` and hands the table a *judged* event: the same class re-made in `Judged`,
carrying a `GrantContext`. Every event of this machine reads some of that data (even the request
needs the consent lifetime), so every one is judged. The PKCE check itself (`pkce_verified`) is a
pure function of the judged event: the verifier it carries against the challenge its context
holds. Callers never build judged events, and the table refuses unjudged ones.

The table below is the specification; `specs/machines/authorization_grant.json` and
`docs/machines/authorization_grant.md` are generated from it, and tests fail when they drift.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

import attrs

from ._fsm import (
    JudgedMachine,
    LocalProtocolError,
    Rule,
    StateMachine,
    effects,
    export_table,
)

__all__ = [
    "DEFAULT_LIMITS",
    "EFFECTS",
    "EVENTS",
    "MAX_CODE_LIFETIME",
    "TABLE",
    "AuthorizationGrant",
    "AuthorizationGrantMachine",
    "AuthorizationGrantState",
    "AuthorizationRequested",
    "CodeIssueFailed",
    "CodeIssued",
    "CodeRedeemed",
    "ConsentDenied",
    "ConsentGiven",
    "Effect",
    "Event",
    "Expired",
    "GrantContext",
    "GrantLimits",
    "GrantProgress",
    "IssueCode",
    "IssueTokens",
    "Judged",
    "LocalProtocolError",
    "RedirectWithCode",
    "RedirectWithError",
    "RefreshPresented",
    "RejectRequest",
    "RevokeFamily",
    "Revoked",
    "ShowConsent",
    "TokenIssueFailed",
    "TokensIssued",
    "pkce_verified",
    "s256_challenge",
    "spec",
]

# RFC 6749 4.1.2 recommends at most ten minutes; issue 4 makes it a hard limit.
MAX_CODE_LIFETIME: Final = 600.0

# RFC 7636 4.1: 43 to 128 unreserved characters. 4.2: S256 yields 32 bytes, 43 base64url
# characters without padding. Written as ASCII ranges: `\w` or `\d` would admit other digits.
_VERIFIER: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
S256: Final = "S256"


class AuthorizationGrantState(enum.Enum):
    NEW = "new"
    REQUEST_VALIDATED = "request_validated"
    CONSENTED = "consented"
    CODE_ISSUED = "code_issued"
    REDEEMED = "redeemed"
    TOKENS_ACTIVE = "tokens_active"
    ROTATED = "rotated"
    DENIED = "denied"
    EXPIRED = "expired"
    REVOKED = "revoked"


# ---- PKCE (RFC 7636 4.2, 4.6) ------------------------------------------------------------------


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding: the S256 code challenge."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_verified(verifier: str | None, challenge: str | None) -> bool:
    """Whether `verifier` is a well-formed code verifier whose S256 challenge is `challenge`,
    compared in constant time. A missing value never verifies."""
    if verifier is None or challenge is None or not _VERIFIER.fullmatch(verifier):
        return False
    if not _S256_CHALLENGE.fullmatch(challenge):
        return False
    return hmac.compare_digest(s256_challenge(verifier).encode(), challenge.encode())


def _same_secret(held: str | None, given: str) -> bool:
    """Constant-time comparison of a code hash. Encoded first: `compare_digest` refuses
    non-ASCII text, and a request may carry anything."""
    if held is None:
        return False
    return hmac.compare_digest(
        held.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def _resource_ok(resource: str | None) -> bool:
    """RFC 8707 2: an absolute URI without a fragment."""
    if not resource or "#" in resource:
        return False
    try:
        parts = urlsplit(resource)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


# ---- validators -------------------------------------------------------------------------------


def _time(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds, got {value!r}")


def _optional_time(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _time(instance, attribute, value)


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _code_lifetime(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _positive(instance, attribute, value)
    if value > MAX_CODE_LIFETIME:  # type: ignore[operator]
        raise ValueError(
            f"{attribute.name} must be at most {MAX_CODE_LIFETIME:g} s (RFC 6749 4.1.2), "
            f"got {value!r}"
        )


def _name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _optional_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _name(instance, attribute, value)


def _text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{attribute.name} must be a string, got {type(value).__name__}")


def _optional_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _text(instance, attribute, value)


def _generation(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def _optional_generation(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _generation(instance, attribute, value)


def _optional_challenge(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (isinstance(value, str) and _S256_CHALLENGE.fullmatch(value)):
        raise ValueError(f"{attribute.name} must be an S256 code challenge (43 base64url chars)")


# ---- the machine's data -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GrantLimits:
    """How long each step of a grant may take, in seconds. One value per authorization
    server, shared by its grants."""

    # From `CodeIssued` to the last moment the code may be redeemed; at most ten minutes.
    code_lifetime: float = attrs.field(default=MAX_CODE_LIFETIME, validator=_code_lifetime)
    # From the authorization request to the last moment the user may consent.
    consent_lifetime: float = attrs.field(default=600.0, validator=_positive)
    # Idle lifetime of a family: from each accepted code or refresh token.
    refresh_lifetime: float = attrs.field(default=30 * 86400.0, validator=_positive)


DEFAULT_LIMITS: Final = GrantLimits()

_S = AuthorizationGrantState

# The data comes in layers, each added by one step and kept to the end: the request, the
# consent, the code, the tokens. Each state holds an exact number of layers; the final states
# hold what the grant had when it ended.
_LAYERS_BY_STATE: Final[dict[AuthorizationGrantState, frozenset[int]]] = {
    _S.NEW: frozenset({0}),
    _S.REQUEST_VALIDATED: frozenset({1}),
    _S.CONSENTED: frozenset({2}),
    _S.CODE_ISSUED: frozenset({3}),
    _S.REDEEMED: frozenset({4}),
    _S.TOKENS_ACTIVE: frozenset({4}),
    _S.ROTATED: frozenset({4}),
    _S.DENIED: frozenset({0, 1, 2}),
    _S.EXPIRED: frozenset({1, 2, 3, 4}),
    _S.REVOKED: frozenset({3, 4}),
}


@attrs.frozen(kw_only=True)
class GrantProgress:
    """Everything one grant holds: its state and the data its guards read. This is what a
    service persists (with compare-and-set) and passes back to `AuthorizationGrant(progress=...)`.

    - the request: `client_id`, `redirect_uri`, `code_challenge` (S256), `resource`, `scope`
      (optional) and `request_expires_at` (the consent deadline);
    - the consent: `subject`, the resource owner;
    - the code: `code_id` (its hash), `family_id`, `code_expires_at`;
    - the tokens: `generation` (the current one, or the one being issued in `redeemed` and
      `rotated`) and `refresh_expires_at` (the family's idle deadline).
    Values that do not fit the state are refused with `ValueError`.
    """

    state: AuthorizationGrantState = AuthorizationGrantState.NEW
    client_id: str | None = attrs.field(default=None, validator=_optional_name)
    redirect_uri: str | None = attrs.field(default=None, validator=_optional_name)
    code_challenge: str | None = attrs.field(default=None, validator=_optional_challenge)
    resource: str | None = attrs.field(default=None, validator=_optional_name)
    scope: str | None = attrs.field(default=None, validator=_optional_text)
    request_expires_at: float | None = attrs.field(default=None, validator=_optional_time)
    subject: str | None = attrs.field(default=None, validator=_optional_name)
    code_id: str | None = attrs.field(default=None, repr=False, validator=_optional_name)
    family_id: str | None = attrs.field(default=None, validator=_optional_name)
    code_expires_at: float | None = attrs.field(default=None, validator=_optional_time)
    generation: int | None = attrs.field(default=None, validator=_optional_generation)
    refresh_expires_at: float | None = attrs.field(default=None, validator=_optional_time)

    def _layers(self) -> list[tuple[str, tuple[object, ...]]]:
        return [
            (
                "the request",
                (
                    self.client_id,
                    self.redirect_uri,
                    self.code_challenge,
                    self.resource,
                    self.request_expires_at,
                ),
            ),
            ("the consent", (self.subject,)),
            ("the code", (self.code_id, self.family_id, self.code_expires_at)),
            ("the tokens", (self.generation, self.refresh_expires_at)),
        ]

    def __attrs_post_init__(self) -> None:
        problems = []
        present = []
        for name, values in self._layers():
            held = [value is not None for value in values]
            if any(held) and not all(held):
                problems.append(f"all of {name} or none of it")
            present.append(all(held))
        count = present.index(False) if False in present else len(present)
        if any(present[count:]):
            problems.append("each layer only after the ones before it")
        allowed = _LAYERS_BY_STATE[self.state]
        if count not in allowed:
            names = [name for name, _values in self._layers()]
            want = " or ".join(", ".join(names[:n]) if n else "nothing" for n in sorted(allowed))
            problems.append(f"exactly {want}")
        if self.scope is not None and not present[0]:
            problems.append("a scope only with the request")
        if self.state is _S.ROTATED and (self.generation or 0) < 1:
            problems.append("a generation of 1 or more in rotated")
        if problems:
            needs = "; ".join(problems)
            raise ValueError(f"inconsistent progress in state {self.state.value!r}: needs {needs}")


@attrs.frozen(kw_only=True)
class GrantContext:
    """What the grant held when an event arrived: the data its guards and effects read."""

    progress: GrantProgress
    limits: GrantLimits


# ---- events: facts the service reports --------------------------------------------------------


@attrs.frozen(kw_only=True)
class AuthorizationRequested:
    """An authorization request (RFC 6749 4.1.1) arrived at `at`, from a registered `client_id`
    whose `redirect_uri` the service already matched exactly against its registration. The
    PKCE parameters (RFC 7636 4.3) and `resource` (RFC 8707) are as the client sent them (None
    when absent): this machine judges them."""

    client_id: str = attrs.field(validator=_name)
    redirect_uri: str = attrs.field(validator=_name)
    code_challenge: str | None = attrs.field(validator=_optional_text)
    method: str | None = attrs.field(validator=_optional_text)
    resource: str | None = attrs.field(validator=_optional_text)
    scope: str | None = attrs.field(default=None, validator=_optional_text)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class ConsentGiven:
    """The resource owner `subject` (authenticated through the operator's login port)
    approved the request at `at`, or the server auto-approved it for its single local user."""

    subject: str = attrs.field(validator=_name)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class ConsentDenied:
    """The resource owner refused the request."""


@attrs.frozen(kw_only=True)
class CodeIssued:
    """The service minted the code (`IssueCode` succeeded) at `at` and stored it under
    `code_id` (its hash); `family_id`, drawn with it, will name every token issued from it."""

    code_id: str = attrs.field(repr=False, validator=_name)
    family_id: str = attrs.field(validator=_name)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class CodeIssueFailed:
    """`IssueCode` failed (the store is down); `reason` is for the log, never for the client."""

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class CodeRedeemed:
    """A token request with grant_type=authorization_code (RFC 6749 4.1.3) arrived at `at`:
    the code it carried (as `code_id`, its hash), the client it came from (authenticated when
    the client is confidential), and its `redirect_uri`, `resource` and `code_verifier` as sent
    (None when absent)."""

    code_id: str = attrs.field(repr=False, validator=_text)
    client_id: str = attrs.field(validator=_text)
    redirect_uri: str | None = attrs.field(validator=_optional_text)
    resource: str | None = attrs.field(validator=_optional_text)
    verifier: str | None = attrs.field(repr=False, validator=_optional_text)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class TokensIssued:
    """`IssueTokens` succeeded: the tokens of `generation` are signed, stored and sent."""

    generation: int = attrs.field(validator=_generation)


@attrs.frozen(kw_only=True)
class TokenIssueFailed:
    """`IssueTokens` failed and nothing of that generation was handed out; `reason` is for the
    log."""

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class RefreshPresented:
    """A token request with grant_type=refresh_token (RFC 6749 6) arrived at `at` from
    `client_id`, carrying a refresh token the store knows as one of this family's, of
    `token_generation`."""

    token_generation: int = attrs.field(validator=_generation)
    client_id: str = attrs.field(validator=_text)
    at: float = attrs.field(validator=_time)


@attrs.frozen(kw_only=True)
class Revoked:
    """The grant was revoked: RFC 7009 revocation of one of its tokens, the user, or the
    operator. `reason` is for the log."""

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class Expired:
    """A timer or a sweep noticed the time `at`; it counts only once the current deadline has
    passed."""

    at: float = attrs.field(validator=_time)


Event: TypeAlias = (
    AuthorizationRequested
    | ConsentGiven
    | ConsentDenied
    | CodeIssued
    | CodeIssueFailed
    | CodeRedeemed
    | TokensIssued
    | TokenIssueFailed
    | RefreshPresented
    | Revoked
    | Expired
)

EVENTS: Final[tuple[type, ...]] = (
    AuthorizationRequested,
    ConsentGiven,
    ConsentDenied,
    CodeIssued,
    CodeIssueFailed,
    CodeRedeemed,
    TokensIssued,
    TokenIssueFailed,
    RefreshPresented,
    Revoked,
    Expired,
)

# Aliases so that `Judged` can re-make each class under its own name.
_AuthorizationRequested = AuthorizationRequested
_ConsentGiven = ConsentGiven
_ConsentDenied = ConsentDenied
_CodeIssued = CodeIssued
_CodeIssueFailed = CodeIssueFailed
_CodeRedeemed = CodeRedeemed
_TokensIssued = TokensIssued
_TokenIssueFailed = TokenIssueFailed
_RefreshPresented = RefreshPresented
_Revoked = Revoked
_Expired = Expired


class Judged:
    """The events whose rules read the grant's data, as the table receives them: each with the
    `GrantContext` of its arrival. Built by `AuthorizationGrant.handle` (and by tests of the
    table); a service never builds one. Same names as the events they judge, so the exported
    spec reads in the service's words."""

    @attrs.frozen(kw_only=True)
    class AuthorizationRequested(_AuthorizationRequested):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class ConsentGiven(_ConsentGiven):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class ConsentDenied(_ConsentDenied):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class CodeIssued(_CodeIssued):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class CodeIssueFailed(_CodeIssueFailed):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class CodeRedeemed(_CodeRedeemed):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class TokensIssued(_TokensIssued):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class TokenIssueFailed(_TokenIssueFailed):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class RefreshPresented(_RefreshPresented):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class Revoked(_Revoked):
        context: GrantContext

    @attrs.frozen(kw_only=True)
    class Expired(_Expired):
        context: GrantContext


_JUDGED: Final[dict[type, type]] = {
    AuthorizationRequested: Judged.AuthorizationRequested,
    ConsentGiven: Judged.ConsentGiven,
    ConsentDenied: Judged.ConsentDenied,
    CodeIssued: Judged.CodeIssued,
    CodeIssueFailed: Judged.CodeIssueFailed,
    CodeRedeemed: Judged.CodeRedeemed,
    TokensIssued: Judged.TokensIssued,
    TokenIssueFailed: Judged.TokenIssueFailed,
    RefreshPresented: Judged.RefreshPresented,
    Revoked: Judged.Revoked,
    Expired: Judged.Expired,
}


# ---- effects: what the service must do --------------------------------------------------------


@attrs.frozen(kw_only=True)
class ShowConsent:
    """Ask the resource owner (after the operator's login) whether `client_id` may act for
    them on `resource` with `scope`, or auto-approve when so configured; report `ConsentGiven`
    or `ConsentDenied` before `expires_at`."""

    client_id: str
    scope: str | None
    resource: str
    expires_at: float


@attrs.frozen(kw_only=True)
class RedirectWithError:
    """Send the user agent back to `redirect_uri` (already validated) with `error` and
    `error_description` (RFC 6749 4.1.2.1), plus the request's `state` and `iss` (RFC 9207)."""

    redirect_uri: str
    error: str
    description: str


@attrs.frozen(kw_only=True)
class IssueCode:
    """Mint a code from the `Random` port, store its hash for this grant with `lifetime`, and
    report `CodeIssued` (or `CodeIssueFailed`)."""

    lifetime: float


@attrs.frozen(kw_only=True)
class RedirectWithCode:
    """Send the user agent back to `redirect_uri` with the code just minted, the request's
    `state` and `iss` (RFC 9207). The code is good until `expires_at`."""

    redirect_uri: str
    expires_at: float


@attrs.frozen(kw_only=True)
class IssueTokens:
    """Sign an access token for `subject` and `client_id` (audience `resource`, RFC 8707;
    `scope`) and a refresh token of `generation` in `family_id`, good until
    `refresh_expires_at`; store the refresh token's hash, answer the token request, and report
    `TokensIssued` (or `TokenIssueFailed`)."""

    family_id: str
    generation: int
    subject: str
    client_id: str
    scope: str | None
    resource: str
    refresh_expires_at: float


@attrs.frozen(kw_only=True)
class RejectRequest:
    """Answer the token request with HTTP 400 and this RFC 6749 5.2 (or RFC 8707) error body,
    with `Cache-Control: no-store`."""

    error: str
    description: str


@attrs.frozen(kw_only=True)
class RevokeFamily:
    """Revoke every token of `family_id`: its refresh tokens and code in the grant store, its
    access tokens on the deny-list until they expire. Idempotent; retried until done."""

    family_id: str
    reason: str


Effect: TypeAlias = (
    ShowConsent
    | RedirectWithError
    | IssueCode
    | RedirectWithCode
    | IssueTokens
    | RejectRequest
    | RevokeFamily
)

EFFECTS: Final[tuple[type, ...]] = (
    ShowConsent,
    RedirectWithError,
    IssueCode,
    RedirectWithCode,
    IssueTokens,
    RejectRequest,
    RevokeFamily,
)


# ---- guards: pure functions of an event ---------------------------------------------------------

_Problem: TypeAlias = tuple[str, str]


def _request_problem(event: AuthorizationRequested) -> _Problem | None:
    """What is wrong with an authorization request, as (error, description); None if nothing."""
    if event.code_challenge is None:
        return ("invalid_request", "code_challenge is required (PKCE with S256)")
    # RFC 7636 4.3: a missing method means plain, which is refused like plain itself.
    if event.method != S256:
        return ("invalid_request", "code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(event.code_challenge):
        return ("invalid_request", "code_challenge is not an S256 challenge")
    if not _resource_ok(event.resource):
        return ("invalid_target", "resource is required: an absolute URI without a fragment")
    return None


def _request_acceptable(event: AuthorizationRequested) -> bool:
    return _request_problem(event) is None


def _request_open(event: Judged.ConsentGiven) -> bool:
    expires_at = event.context.progress.request_expires_at
    return expires_at is not None and event.at < expires_at


def _request_deadline_passed(event: Judged.Expired) -> bool:
    expires_at = event.context.progress.request_expires_at
    return expires_at is not None and event.at >= expires_at


def _code_deadline_passed(event: Judged.Expired) -> bool:
    expires_at = event.context.progress.code_expires_at
    return expires_at is not None and event.at >= expires_at


def _refresh_deadline_passed(event: Judged.Expired | Judged.RefreshPresented) -> bool:
    expires_at = event.context.progress.refresh_expires_at
    return expires_at is not None and event.at >= expires_at


def _same_code(event: Judged.CodeRedeemed) -> bool:
    return _same_secret(event.context.progress.code_id, event.code_id)


def _code_expired(event: Judged.CodeRedeemed) -> bool:
    expires_at = event.context.progress.code_expires_at
    return _same_code(event) and expires_at is not None and event.at >= expires_at


def _redemption_problem(event: Judged.CodeRedeemed) -> _Problem | None:
    """What stops this code from being redeemed, as (error, description); None if nothing.
    In the order a client should learn it: the code, then the bindings, then PKCE."""
    progress = event.context.progress
    if not _same_code(event):
        return ("invalid_grant", "unknown authorization code")
    if _code_expired(event):
        return ("invalid_grant", "the authorization code expired")
    if event.client_id != progress.client_id:
        return ("invalid_grant", "the authorization code was issued to another client")
    if event.redirect_uri != progress.redirect_uri:
        return ("invalid_grant", "redirect_uri does not match the authorization request")
    if event.resource != progress.resource:
        return ("invalid_target", "resource does not match the authorization request")
    if event.verifier is None:
        return ("invalid_request", "code_verifier is required")
    if not pkce_verified(event.verifier, progress.code_challenge):
        return ("invalid_grant", "code_verifier does not match the code_challenge")
    return None


def _redeemable(event: Judged.CodeRedeemed) -> bool:
    return _redemption_problem(event) is None


def _pending_generation(event: Judged.TokensIssued) -> bool:
    return event.generation == event.context.progress.generation


def _old_generation(event: Judged.RefreshPresented) -> bool:
    current = event.context.progress.generation
    return current is not None and event.token_generation < current


def _rotatable(event: Judged.RefreshPresented) -> bool:
    progress = event.context.progress
    return (
        event.token_generation == progress.generation
        and event.client_id == progress.client_id
        and not _refresh_deadline_passed(event)
    )


# ---- effect builders: pure functions of an event ----------------------------------------------


def _request(progress: GrantProgress) -> tuple[str, str, str]:
    """client_id, redirect_uri and resource, which every state after `new` holds."""
    assert progress.client_id is not None
    assert progress.redirect_uri is not None
    assert progress.resource is not None
    return progress.client_id, progress.redirect_uri, progress.resource


def _family(progress: GrantProgress) -> str:
    assert progress.family_id is not None
    return progress.family_id


@effects("ShowConsent")
def _show_consent(event: Judged.AuthorizationRequested) -> list[Any]:
    # The guard admitted the resource, so it is a string here.
    assert event.resource is not None
    return [
        ShowConsent(
            client_id=event.client_id,
            scope=event.scope,
            resource=event.resource,
            expires_at=event.at + event.context.limits.consent_lifetime,
        )
    ]


@effects("RedirectWithError")
def _refuse_request(event: Judged.AuthorizationRequested) -> list[Any]:
    problem = _request_problem(event)
    assert problem is not None
    error, description = problem
    return [
        RedirectWithError(redirect_uri=event.redirect_uri, error=error, description=description)
    ]


@effects("IssueCode")
def _issue_code(event: Judged.ConsentGiven) -> list[Any]:
    return [IssueCode(lifetime=event.context.limits.code_lifetime)]


@effects("RedirectWithError")
def _consent_denied(event: Judged.ConsentDenied) -> list[Any]:
    _client, redirect_uri, _resource = _request(event.context.progress)
    return [
        RedirectWithError(
            redirect_uri=redirect_uri,
            error="access_denied",
            description="the resource owner denied the request",
        )
    ]


@effects("RedirectWithCode")
def _redirect_with_code(event: Judged.CodeIssued) -> list[Any]:
    _client, redirect_uri, _resource = _request(event.context.progress)
    lifetime = event.context.limits.code_lifetime
    return [RedirectWithCode(redirect_uri=redirect_uri, expires_at=event.at + lifetime)]


@effects("RedirectWithError")
def _code_issue_failed(event: Judged.CodeIssueFailed) -> list[Any]:
    _client, redirect_uri, _resource = _request(event.context.progress)
    return [
        RedirectWithError(
            redirect_uri=redirect_uri,
            error="server_error",
            description="the authorization code could not be issued",
        )
    ]


def _issue(context: GrantContext, generation: int, at: float) -> IssueTokens:
    progress = context.progress
    client_id, _redirect_uri, resource = _request(progress)
    assert progress.subject is not None
    return IssueTokens(
        family_id=_family(progress),
        generation=generation,
        subject=progress.subject,
        client_id=client_id,
        scope=progress.scope,
        resource=resource,
        refresh_expires_at=at + context.limits.refresh_lifetime,
    )


@effects("IssueTokens")
def _issue_first_tokens(event: Judged.CodeRedeemed) -> list[Any]:
    return [_issue(event.context, 0, event.at)]


@effects("RejectRequest")
def _reject_code_expired(_event: Judged.CodeRedeemed) -> list[Any]:
    return [RejectRequest(error="invalid_grant", description="the authorization code expired")]


@effects("RejectRequest")
def _reject_redemption(event: Judged.CodeRedeemed) -> list[Any]:
    problem = _redemption_problem(event)
    assert problem is not None
    error, description = problem
    return [RejectRequest(error=error, description=description)]


@effects("RevokeFamily", "RejectRequest")
def _code_replayed(event: Judged.CodeRedeemed) -> list[Any]:
    return [
        RevokeFamily(
            family_id=_family(event.context.progress), reason="authorization code replayed"
        ),
        RejectRequest(error="invalid_grant", description="the authorization code was already used"),
    ]


@effects("RejectRequest")
def _reject_unknown_code(_event: Judged.CodeRedeemed) -> list[Any]:
    return [RejectRequest(error="invalid_grant", description="unknown authorization code")]


@effects("IssueTokens")
def _rotate(event: Judged.RefreshPresented) -> list[Any]:
    return [_issue(event.context, event.token_generation + 1, event.at)]


@effects("RevokeFamily", "RejectRequest")
def _refresh_reused(event: Judged.RefreshPresented) -> list[Any]:
    return [
        RevokeFamily(family_id=_family(event.context.progress), reason="refresh token reused"),
        RejectRequest(error="invalid_grant", description="the refresh token was already used"),
    ]


@effects("RevokeFamily", "RejectRequest")
def _refresh_expired(event: Judged.RefreshPresented) -> list[Any]:
    return [
        RevokeFamily(family_id=_family(event.context.progress), reason="expired"),
        RejectRequest(error="invalid_grant", description="the refresh token expired"),
    ]


@effects("RejectRequest")
def _reject_refresh(event: Judged.RefreshPresented) -> list[Any]:
    progress = event.context.progress
    if event.token_generation == progress.generation and event.client_id != progress.client_id:
        description = "the refresh token was issued to another client"
    else:
        description = "unknown refresh token"
    return [RejectRequest(error="invalid_grant", description=description)]


@effects("RevokeFamily")
def _issue_failed(event: Judged.TokenIssueFailed) -> list[Any]:
    return [RevokeFamily(family_id=_family(event.context.progress), reason="token issue failed")]


@effects("RevokeFamily")
def _revoke(event: Judged.Revoked) -> list[Any]:
    return [RevokeFamily(family_id=_family(event.context.progress), reason=event.reason)]


@effects("RevokeFamily")
def _family_expired(event: Judged.Expired) -> list[Any]:
    return [RevokeFamily(family_id=_family(event.context.progress), reason="expired")]


def _final_answer(description: str) -> Any:
    @effects("RejectRequest")
    def answer(_event: object) -> list[Any]:
        return [RejectRequest(error="invalid_grant", description=description)]

    return answer


_reject_expired_grant = _final_answer("the authorization grant expired")
_reject_revoked_grant = _final_answer("the authorization grant was revoked")
_reject_not_issued = _final_answer("unknown refresh token")


# ---- the table --------------------------------------------------------------------------------

N, RV, CS, CI, RD, TA, RT, DN, EX, RK = (
    AuthorizationGrantState.NEW,
    AuthorizationGrantState.REQUEST_VALIDATED,
    AuthorizationGrantState.CONSENTED,
    AuthorizationGrantState.CODE_ISSUED,
    AuthorizationGrantState.REDEEMED,
    AuthorizationGrantState.TOKENS_ACTIVE,
    AuthorizationGrantState.ROTATED,
    AuthorizationGrantState.DENIED,
    AuthorizationGrantState.EXPIRED,
    AuthorizationGrantState.REVOKED,
)

_Rules = Rule[AuthorizationGrantState] | list[Rule[AuthorizationGrantState]]


def _replay_rules(state: AuthorizationGrantState) -> list[Rule[AuthorizationGrantState]]:
    """Once the code was redeemed: the same code again revokes the family."""
    return [
        Rule(to=RK, effects=_code_replayed, when=_same_code, guard_name="the same code (a replay)"),
        Rule(to=state, effects=_reject_unknown_code, guard_name="otherwise"),
    ]


def _family_expiry() -> Rule[AuthorizationGrantState]:
    return Rule(
        to=EX,
        effects=_family_expired,
        when=_refresh_deadline_passed,
        guard_name="refresh deadline passed",
    )


TABLE: dict[tuple[AuthorizationGrantState, type], _Rules] = {
    (N, Judged.AuthorizationRequested): [
        Rule(
            to=RV,
            effects=_show_consent,
            when=_request_acceptable,
            guard_name="S256 challenge and resource given",
        ),
        Rule(to=DN, effects=_refuse_request, guard_name="otherwise"),
    ],
    (RV, Judged.ConsentGiven): Rule(
        to=CS, effects=_issue_code, when=_request_open, guard_name="before the consent deadline"
    ),
    (RV, Judged.ConsentDenied): Rule(to=DN, effects=_consent_denied),
    (RV, Judged.Expired): Rule(
        to=EX, when=_request_deadline_passed, guard_name="consent deadline passed"
    ),
    (CS, Judged.CodeIssued): Rule(to=CI, effects=_redirect_with_code),
    (CS, Judged.CodeIssueFailed): Rule(to=DN, effects=_code_issue_failed),
    (CS, Judged.Expired): Rule(
        to=EX, when=_request_deadline_passed, guard_name="consent deadline passed"
    ),
    (CI, Judged.CodeRedeemed): [
        Rule(
            to=RD,
            effects=_issue_first_tokens,
            when=_redeemable,
            guard_name="same code, client, redirect_uri, resource; PKCE verified; code fresh",
        ),
        Rule(
            to=EX,
            effects=_reject_code_expired,
            when=_code_expired,
            guard_name="same code, code deadline passed",
        ),
        Rule(to=CI, effects=_reject_redemption, guard_name="otherwise"),
    ],
    (CI, Judged.Revoked): Rule(to=RK, effects=_revoke),
    (CI, Judged.Expired): Rule(
        to=EX, when=_code_deadline_passed, guard_name="code deadline passed"
    ),
    (RD, Judged.CodeRedeemed): _replay_rules(RD),
    (RD, Judged.RefreshPresented): Rule(to=RD, effects=_reject_not_issued),
    (RD, Judged.TokensIssued): Rule(
        to=TA, when=_pending_generation, guard_name="the generation being issued"
    ),
    (RD, Judged.TokenIssueFailed): Rule(to=RK, effects=_issue_failed),
    (RD, Judged.Revoked): Rule(to=RK, effects=_revoke),
    (RD, Judged.Expired): _family_expiry(),
    (TA, Judged.CodeRedeemed): _replay_rules(TA),
    (TA, Judged.RefreshPresented): [
        Rule(
            to=RT,
            effects=_rotate,
            when=_rotatable,
            guard_name="current generation, same client, before the refresh deadline",
        ),
        Rule(
            to=RK,
            effects=_refresh_reused,
            when=_old_generation,
            guard_name="an older generation (reuse)",
        ),
        Rule(
            to=EX,
            effects=_refresh_expired,
            when=_refresh_deadline_passed,
            guard_name="refresh deadline passed",
        ),
        Rule(to=TA, effects=_reject_refresh, guard_name="otherwise"),
    ],
    (TA, Judged.Revoked): Rule(to=RK, effects=_revoke),
    (TA, Judged.Expired): _family_expiry(),
    (RT, Judged.CodeRedeemed): _replay_rules(RT),
    (RT, Judged.RefreshPresented): [
        Rule(
            to=RK,
            effects=_refresh_reused,
            when=_old_generation,
            guard_name="an older generation (reuse)",
        ),
        Rule(to=RT, effects=_reject_not_issued, guard_name="otherwise"),
    ],
    (RT, Judged.TokensIssued): Rule(
        to=TA, when=_pending_generation, guard_name="the generation being issued"
    ),
    (RT, Judged.TokenIssueFailed): Rule(to=RK, effects=_issue_failed),
    (RT, Judged.Revoked): Rule(to=RK, effects=_revoke),
    (RT, Judged.Expired): _family_expiry(),
    (EX, Judged.CodeRedeemed): Rule(to=EX, effects=_reject_expired_grant),
    (EX, Judged.RefreshPresented): Rule(to=EX, effects=_reject_expired_grant),
    (RK, Judged.CodeRedeemed): Rule(to=RK, effects=_reject_revoked_grant),
    (RK, Judged.RefreshPresented): Rule(to=RK, effects=_reject_revoked_grant),
    # Revoking twice is harmless (RFC 7009 2.2: an invalid token is not an error).
    (RK, Judged.Revoked): Rule(to=RK),
}


class AuthorizationGrantMachine(StateMachine[AuthorizationGrantState]):
    """The table alone, driven by judged events. Services drive `AuthorizationGrant`, which
    keeps the data and judges each event; this class is what the table's tests exercise."""

    name = "authorization_grant"

    def __init__(self, state: AuthorizationGrantState = AuthorizationGrantState.NEW):
        super().__init__(AuthorizationGrantState, TABLE, state)


# ---- the data after a move ----------------------------------------------------------------------


def _next_progress(
    progress: GrantProgress, limits: GrantLimits, event: object, to: AuthorizationGrantState
) -> GrantProgress:
    """The progress after the table moved to `to` on `event` (as judged, and accepted)."""
    if isinstance(event, AuthorizationRequested):
        if to is not RV:
            return GrantProgress(state=to)  # a refused request leaves nothing to keep
        return GrantProgress(
            state=RV,
            client_id=event.client_id,
            redirect_uri=event.redirect_uri,
            code_challenge=event.code_challenge,
            resource=event.resource,
            scope=event.scope,
            request_expires_at=event.at + limits.consent_lifetime,
        )
    if isinstance(event, ConsentGiven):
        return attrs.evolve(progress, state=to, subject=event.subject)
    if isinstance(event, CodeIssued):
        return attrs.evolve(
            progress,
            state=to,
            code_id=event.code_id,
            family_id=event.family_id,
            code_expires_at=event.at + limits.code_lifetime,
        )
    # A self-loop (a refused redemption or refresh, answered) keeps the data as it is.
    moved = to is not progress.state
    if isinstance(event, CodeRedeemed) and moved and to is RD:
        return attrs.evolve(
            progress, state=RD, generation=0, refresh_expires_at=event.at + limits.refresh_lifetime
        )
    if isinstance(event, RefreshPresented) and moved and to is RT:
        return attrs.evolve(
            progress,
            state=RT,
            generation=event.token_generation + 1,
            refresh_expires_at=event.at + limits.refresh_lifetime,
        )
    # Every other move keeps the data: the final states hold what the grant had at its end.
    return attrs.evolve(progress, state=to)


# ---- the class services drive -----------------------------------------------------------------


class AuthorizationGrant(JudgedMachine[AuthorizationGrantState, GrantProgress]):
    """One authorization grant: `handle(event) -> effects`, plus its data read-only.

    `limits` are the authorization server's; `progress` restores a grant persisted elsewhere
    (by default a new one starts `new`). A refused event raises `LocalProtocolError` naming
    that event, and changes nothing. Not thread-safe: drive one grant from one task at a time,
    and persist with compare-and-set so that nodes take turns.
    """

    name = AuthorizationGrantMachine.name
    __slots__ = ("_limits",)
    judged = _JUDGED

    def __init__(
        self, limits: GrantLimits = DEFAULT_LIMITS, *, progress: GrantProgress | None = None
    ) -> None:
        if not isinstance(limits, GrantLimits):
            raise TypeError("limits must be GrantLimits")
        # `GrantLimits` refuses more already; this also catches a value built around it.
        if limits.code_lifetime > MAX_CODE_LIFETIME:
            raise ValueError(f"code_lifetime must be at most {MAX_CODE_LIFETIME:g} s")
        self._limits = limits
        self._progress = progress if progress is not None else GrantProgress()
        self._machine = AuthorizationGrantMachine(self._progress.state)

    def __repr__(self) -> str:
        return f"<AuthorizationGrant {self._progress!r}>"

    # ---- driving ----

    def _context(self) -> object:
        return GrantContext(progress=self._progress, limits=self._limits)

    def _refusal(self, state: AuthorizationGrantState, fed: object) -> str:
        return _refusal(state, fed)

    def _advance(self, fed: object, effects: list[Any]) -> GrantProgress:
        return _next_progress(self._progress, self._limits, fed, self._machine.state)

    # ---- reading ----

    @property
    def limits(self) -> GrantLimits:
        return self._limits

    @property
    def family_id(self) -> str | None:
        return self._progress.family_id

    @property
    def generation(self) -> int | None:
        """The current generation in `tokens_active`; the one being issued in `redeemed` and
        `rotated`; the last one in the final states; None before redemption."""
        return self._progress.generation

    @property
    def deadline(self) -> float | None:
        """When `Expired` will count in the current state: the consent's deadline before the
        code, the code's in `code_issued`, the family's once redeemed; None in final states."""
        state = self.state
        if state in (RV, CS):
            return self._progress.request_expires_at
        if state is CI:
            return self._progress.code_expires_at
        if state in (RD, TA, RT):
            return self._progress.refresh_expires_at
        return None


def _refusal(state: AuthorizationGrantState, fed: object) -> str:
    value = TABLE.get((state, type(fed)))
    if value is None:
        return ""
    rules = [value] if isinstance(value, Rule) else value
    return "needs " + " or ".join(repr(rule.guard_name) for rule in rules)


def spec() -> dict[str, Any]:
    """The exported table (`specs/machines/authorization_grant.json`)."""
    return export_table(
        AuthorizationGrantMachine.name, AuthorizationGrantState, AuthorizationGrantState.NEW, TABLE
    )
