"""The authorization grant machine: its table, a reference model, and named behaviours.

Issue 4 (the grant lifecycle of the built-in authorization server). Two layers are tested, as
for the credential bootstrap. The table (`AuthorizationGrantMachine`, driven by judged events
that carry the grant's data) gets the checks every machine gets: totality, Hypothesis over
every (state, event), random walks. The class services drive (`AuthorizationGrant`) runs
against a reference model below that restates the grant in plain Python, independently of
`TABLE` and of the module's PKCE code (it knows which verifier answers which challenge from RFC
7636's own example, not by hashing): state, effects and data must agree after every step.
Beside the comparison, a ledger of what the service would have done checks the issue's three
invariants on every run: no token without a verified PKCE, no second redemption (a replay
revokes the family), no live token in a revoked family.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mcp_core.core.machines import authorization_grant as ag
from mcp_core.core.machines.authorization_grant import (
    EFFECTS,
    EVENTS,
    MAX_CODE_LIFETIME,
    TABLE,
    AuthorizationGrant,
    AuthorizationGrantMachine,
    AuthorizationGrantState,
    AuthorizationRequested,
    CodeIssued,
    CodeIssueFailed,
    CodeRedeemed,
    ConsentDenied,
    ConsentGiven,
    Expired,
    GrantContext,
    GrantLimits,
    GrantProgress,
    IssueCode,
    IssueTokens,
    Judged,
    LocalProtocolError,
    RedirectWithCode,
    RedirectWithError,
    RefreshPresented,
    RejectRequest,
    Revoked,
    RevokeFamily,
    ShowConsent,
    TokenIssueFailed,
    TokensIssued,
    pkce_verified,
    s256_challenge,
)

from .machine_testing import (
    HYPOTHESIS_SETTINGS,
    assert_samples_take_every_rule,
    assert_spec_file_matches_table,
    assert_table_well_formed,
    assert_total,
    assert_total_hypothesis,
    assert_walks_follow_table,
    expected_rule,
    samples_of,
)

ROOT = Path(__file__).resolve().parents[2]
S = AuthorizationGrantState

# RFC 7636 Appendix B: the example verifier and its S256 challenge.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
# Another well-formed pair (64 x "O"), so that a right verifier for the wrong grant exists.
OTHER_VERIFIER = "O" * 64
OTHER_CHALLENGE = "UkX5hWoLhj_cdahUVyuznoScvV_tfpDyiVyJ6qjAJJ0"
# Which verifier answers which challenge, as the reference model knows it: no hashing.
PAIRS = {CHALLENGE: VERIFIER, OTHER_CHALLENGE: OTHER_VERIFIER}
# Verifiers that must never verify CHALLENGE: another's, the challenge itself (a plain
# downgrade), too short, too long, outside the alphabet, padded, empty, not ASCII.
BAD_VERIFIERS = [
    OTHER_VERIFIER,
    CHALLENGE,
    VERIFIER[:42],
    VERIFIER + "A" * 86,
    VERIFIER[:-1] + "+",
    VERIFIER + "=",
    "",
    "é" * 50,
    "\ud800" * 43,
]

CLIENT = "client-a"
OTHER_CLIENT = "client-b"
REDIRECT = "http://127.0.0.1:33418/callback"
OTHER_REDIRECT = "http://127.0.0.1:33418/callback/"
RESOURCE = "https://mcp.example.com/mcp"
OTHER_RESOURCE = "https://other.example.com/mcp"
BAD_RESOURCES = [None, "", "mcp.example.com", "https://mcp.example.com/mcp#frag", "/mcp"]
SCOPE = "tools:read tools:call"
CODE_ID = "c0de" * 11  # the hash the service keeps of a code
OTHER_CODE_ID = "beef" * 11
FAMILY = "family-1"
SUBJECT = "alice"

# Small limits so that every deadline is reached in a few steps.
LIMITS = GrantLimits(code_lifetime=10.0, consent_lifetime=20.0, refresh_lifetime=50.0)

# RFC 6749 4.1.2.1 (authorization endpoint), 5.2 (token endpoint), RFC 8707 2 (invalid_target).
AUTHORIZATION_ERRORS = {"invalid_request", "access_denied", "server_error", "invalid_target"}
TOKEN_ERRORS = {"invalid_request", "invalid_grant", "invalid_target"}


def _description_ok(text: str) -> bool:
    """RFC 6749 5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )."""
    return bool(text) and all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in text)


# ---- the table: judged samples ----------------------------------------------------------------


def _context(limits: GrantLimits = LIMITS, **progress: Any) -> GrantContext:
    return GrantContext(progress=GrantProgress(**progress), limits=limits)


REQUEST_FIELDS: dict[str, Any] = {
    "client_id": CLIENT,
    "redirect_uri": REDIRECT,
    "code_challenge": CHALLENGE,
    "resource": RESOURCE,
    "scope": SCOPE,
    "request_expires_at": 20.0,
}
CODE_FIELDS: dict[str, Any] = {
    **REQUEST_FIELDS,
    "subject": SUBJECT,
    "code_id": CODE_ID,
    "family_id": FAMILY,
    "code_expires_at": 12.0,
}
FRESH = _context()
REQUESTED = _context(state=S.REQUEST_VALIDATED, **REQUEST_FIELDS)
CONSENTED = _context(state=S.CONSENTED, **REQUEST_FIELDS, subject=SUBJECT)
ISSUED = _context(state=S.CODE_ISSUED, **CODE_FIELDS)
REDEEMING = _context(state=S.REDEEMED, **CODE_FIELDS, generation=0, refresh_expires_at=53.0)
ACTIVE = _context(state=S.TOKENS_ACTIVE, **CODE_FIELDS, generation=2, refresh_expires_at=150.0)
ROTATING = _context(state=S.ROTATED, **CODE_FIELDS, generation=3, refresh_expires_at=160.0)


def _request(**fields: Any) -> dict[str, Any]:
    base = {
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "code_challenge": CHALLENGE,
        "method": "S256",
        "resource": RESOURCE,
        "scope": SCOPE,
        "at": 0.0,
    }
    return {**base, **fields}


def _redemption(**fields: Any) -> dict[str, Any]:
    base = {
        "code_id": CODE_ID,
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "resource": RESOURCE,
        "verifier": VERIFIER,
        "at": 5.0,
    }
    return {**base, **fields}


SAMPLES: dict[type, Any] = {
    Judged.AuthorizationRequested: lambda: [
        Judged.AuthorizationRequested(**_request(), context=FRESH),
        Judged.AuthorizationRequested(**_request(method="plain"), context=FRESH),
        Judged.AuthorizationRequested(**_request(code_challenge=None, method=None), context=FRESH),
        Judged.AuthorizationRequested(**_request(resource=None), context=FRESH),
    ],
    Judged.ConsentGiven: lambda: [
        Judged.ConsentGiven(subject=SUBJECT, at=5.0, context=REQUESTED),
        Judged.ConsentGiven(subject=SUBJECT, at=20.0, context=REQUESTED),  # at the deadline
    ],
    Judged.ConsentDenied: lambda: Judged.ConsentDenied(context=REQUESTED),
    Judged.CodeIssued: lambda: Judged.CodeIssued(
        code_id=CODE_ID, family_id=FAMILY, at=2.0, context=CONSENTED
    ),
    Judged.CodeIssueFailed: lambda: Judged.CodeIssueFailed(reason="store down", context=CONSENTED),
    Judged.CodeRedeemed: lambda: [
        Judged.CodeRedeemed(**_redemption(), context=ISSUED),
        Judged.CodeRedeemed(**_redemption(at=12.0), context=ISSUED),  # at the code's deadline
        Judged.CodeRedeemed(**_redemption(client_id=OTHER_CLIENT), context=ISSUED),
        Judged.CodeRedeemed(**_redemption(verifier=None), context=ISSUED),
        Judged.CodeRedeemed(**_redemption(code_id=OTHER_CODE_ID), context=ISSUED),
    ],
    Judged.TokensIssued: lambda: [
        Judged.TokensIssued(generation=0, context=REDEEMING),
        Judged.TokensIssued(generation=3, context=ROTATING),
        Judged.TokensIssued(generation=5, context=ROTATING),  # not the one being issued
    ],
    Judged.TokenIssueFailed: lambda: Judged.TokenIssueFailed(reason="keys down", context=ROTATING),
    Judged.RefreshPresented: lambda: [
        Judged.RefreshPresented(token_generation=2, client_id=CLIENT, at=60.0, context=ACTIVE),
        Judged.RefreshPresented(token_generation=1, client_id=CLIENT, at=60.0, context=ACTIVE),
        Judged.RefreshPresented(token_generation=2, client_id=CLIENT, at=150.0, context=ACTIVE),
        Judged.RefreshPresented(
            token_generation=2, client_id=OTHER_CLIENT, at=60.0, context=ACTIVE
        ),
        Judged.RefreshPresented(token_generation=3, client_id=CLIENT, at=60.0, context=ACTIVE),
    ],
    Judged.Revoked: lambda: Judged.Revoked(reason="rfc7009", context=ACTIVE),
    Judged.Expired: lambda: [
        Judged.Expired(at=20.0, context=REQUESTED),  # the consent's deadline
        Judged.Expired(at=19.0, context=REQUESTED),
        Judged.Expired(at=12.0, context=ISSUED),  # the code's
        Judged.Expired(at=11.5, context=ISSUED),
        Judged.Expired(at=150.0, context=ACTIVE),  # the family's
        Judged.Expired(at=149.0, context=ACTIVE),
    ],
    # The public classes: every one is judged, so the table refuses them everywhere.
    AuthorizationRequested: lambda: AuthorizationRequested(**_request()),
    ConsentGiven: lambda: ConsentGiven(subject=SUBJECT, at=5.0),
    ConsentDenied: ConsentDenied,
    CodeIssued: lambda: CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=2.0),
    CodeIssueFailed: lambda: CodeIssueFailed(reason="store down"),
    CodeRedeemed: lambda: CodeRedeemed(**_redemption()),
    TokensIssued: lambda: TokensIssued(generation=0),
    TokenIssueFailed: lambda: TokenIssueFailed(reason="keys down"),
    RefreshPresented: lambda: RefreshPresented(token_generation=0, client_id=CLIENT, at=6.0),
    Revoked: lambda: Revoked(reason="rfc7009"),
    Expired: lambda: Expired(at=1e9),
}


# ---- the table: Hypothesis strategies for judged events -------------------------------------

times = st.integers(-2, 200).map(float) | st.floats(-1e6, 1e6, allow_nan=False)
generations = st.integers(0, 6)
limits_strategy = st.builds(
    GrantLimits,
    code_lifetime=st.sampled_from([1.0, 10.0, MAX_CODE_LIFETIME]),
    consent_lifetime=st.sampled_from([1.0, 20.0, 600.0]),
    refresh_lifetime=st.sampled_from([1.0, 50.0, 86400.0]),
)
texts = st.text(max_size=12)
clients = st.sampled_from([CLIENT, OTHER_CLIENT, ""]) | texts
redirects = st.sampled_from([REDIRECT, OTHER_REDIRECT, None]) | texts
resources = st.sampled_from([RESOURCE, OTHER_RESOURCE, *BAD_RESOURCES]) | texts
verifiers = st.sampled_from([VERIFIER, None, *BAD_VERIFIERS]) | st.text(max_size=130)
code_ids = st.sampled_from([CODE_ID, OTHER_CODE_ID, "", CODE_ID[:-1]]) | texts

# How many layers of data each state holds (request, consent, code, tokens).
STATE_LAYERS = {
    S.NEW: [0],
    S.REQUEST_VALIDATED: [1],
    S.CONSENTED: [2],
    S.CODE_ISSUED: [3],
    S.REDEEMED: [4],
    S.TOKENS_ACTIVE: [4],
    S.ROTATED: [4],
    S.DENIED: [0, 1, 2],
    S.EXPIRED: [1, 2, 3, 4],
    S.REVOKED: [3, 4],
}


@st.composite
def progress_strategy(draw: st.DrawFn) -> GrantProgress:
    """A grant's data as some state holds it, with a code at least. The table's domain is a
    judged event whose context is the data of the machine's own state (`AuthorizationGrant`
    builds no other); its effect builders read at most the request, consent and code layers,
    which every context drawn here holds, while guards see random deadlines, codes,
    challenges, clients and generations."""
    state = draw(st.sampled_from([s for s, layers in STATE_LAYERS.items() if max(layers) >= 3]))
    layers = draw(st.sampled_from([n for n in STATE_LAYERS[state] if n >= 3]))
    fields: dict[str, Any] = {
        "state": state,
        "client_id": draw(st.sampled_from([CLIENT, OTHER_CLIENT])),
        "redirect_uri": draw(st.sampled_from([REDIRECT, OTHER_REDIRECT])),
        "code_challenge": draw(st.sampled_from([CHALLENGE, OTHER_CHALLENGE])),
        "resource": draw(st.sampled_from([RESOURCE, OTHER_RESOURCE])),
        "scope": draw(st.none() | st.just(SCOPE)),
        "request_expires_at": draw(times),
        "subject": SUBJECT,
        "code_id": draw(st.sampled_from([CODE_ID, OTHER_CODE_ID])),
        "family_id": FAMILY,
        "code_expires_at": draw(times),
    }
    if layers >= 4:
        least = 1 if state is S.ROTATED else 0
        fields.update(generation=draw(st.integers(least, 6)), refresh_expires_at=draw(times))
    return GrantProgress(**fields)


contexts = st.builds(GrantContext, progress=progress_strategy(), limits=limits_strategy)

JUDGED_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Judged.AuthorizationRequested: st.builds(
        Judged.AuthorizationRequested,
        client_id=st.sampled_from([CLIENT, OTHER_CLIENT]),
        redirect_uri=st.sampled_from([REDIRECT, OTHER_REDIRECT]),
        code_challenge=st.sampled_from([CHALLENGE, VERIFIER, None, "", CHALLENGE + "="]) | texts,
        method=st.sampled_from(["S256", "plain", "s256", None, ""]),
        resource=resources,
        scope=st.none() | texts,
        at=times,
        context=contexts,
    ),
    Judged.ConsentGiven: st.builds(
        Judged.ConsentGiven, subject=st.just(SUBJECT), at=times, context=contexts
    ),
    Judged.CodeIssued: st.builds(
        Judged.CodeIssued,
        code_id=st.just(CODE_ID),
        family_id=st.just(FAMILY),
        at=times,
        context=contexts,
    ),
    Judged.CodeRedeemed: st.builds(
        Judged.CodeRedeemed,
        code_id=code_ids,
        client_id=clients,
        redirect_uri=redirects,
        resource=resources,
        verifier=verifiers,
        at=times,
        context=contexts,
    ),
    Judged.TokensIssued: st.builds(Judged.TokensIssued, generation=generations, context=contexts),
    Judged.RefreshPresented: st.builds(
        Judged.RefreshPresented,
        token_generation=generations,
        client_id=clients,
        at=times,
        context=contexts,
    ),
    Judged.Revoked: st.builds(Judged.Revoked, reason=texts, context=contexts),
    Judged.Expired: st.builds(Judged.Expired, at=times, context=contexts),
}


# ---- the table: totality --------------------------------------------------------------------


def test_authorization_grant_table_is_well_formed() -> None:
    assert_table_well_formed(S, TABLE)


def test_table_speaks_of_every_event_and_judges_them_all() -> None:
    in_table = {event_type for _state, event_type in TABLE}
    assert all(t.__qualname__.startswith("Judged.") for t in in_table)
    assert {t.__mro__[1] for t in in_table} == set(EVENTS)
    # The export reads in the service's words.
    assert {t.__name__ for t in in_table} == {t.__name__ for t in EVENTS}


def test_authorization_grant_table_is_total() -> None:
    seen = assert_total(AuthorizationGrantMachine, S, SAMPLES, TABLE)
    assert len(seen) == len(S) * len(SAMPLES)
    # Unjudged events are refused in every state.
    assert all(outcomes == {"refused"} for (_s, t), outcomes in seen.items() if t in EVENTS)
    # Client requests are answered (never refused) from the moment a code exists.
    for state in (S.CODE_ISSUED, S.REDEEMED, S.TOKENS_ACTIVE, S.ROTATED, S.EXPIRED, S.REVOKED):
        assert seen[(state, Judged.CodeRedeemed)] == {"moved"}
    for state in (S.REDEEMED, S.TOKENS_ACTIVE, S.ROTATED, S.EXPIRED, S.REVOKED):
        assert seen[(state, Judged.RefreshPresented)] == {"moved"}


def test_authorization_grant_table_is_total_under_hypothesis() -> None:
    assert_total_hypothesis(AuthorizationGrantMachine, S, SAMPLES, TABLE, JUDGED_STRATEGIES)


def test_authorization_grant_table_walks_follow_table() -> None:
    assert_walks_follow_table(AuthorizationGrantMachine, TABLE, SAMPLES, JUDGED_STRATEGIES)


def test_samples_take_every_rule_of_the_table() -> None:
    assert_samples_take_every_rule(TABLE, SAMPLES)


def test_every_error_is_an_rfc_code_with_a_safe_description() -> None:
    seen = set()
    for (state, _event_type), _value in TABLE.items():
        for event_type in SAMPLES:
            for event in samples_of(SAMPLES, event_type):
                found = expected_rule(TABLE, state, event)
                for effect in found.effects(event) if found else []:
                    if isinstance(effect, RedirectWithError):
                        assert effect.error in AUTHORIZATION_ERRORS
                    elif isinstance(effect, RejectRequest):
                        assert effect.error in TOKEN_ERRORS
                    else:
                        continue
                    assert _description_ok(effect.description), effect
                    seen.add(effect.error)
    assert seen == AUTHORIZATION_ERRORS | TOKEN_ERRORS


def test_spec_file_matches_the_table() -> None:
    path = ROOT / "specs" / "machines" / "authorization_grant.json"
    if not path.exists():
        # Written by scripts/export_machines.py once the machine is in the registry; from then
        # on tests/machines/test_machine_exports.py fails when it is missing.
        pytest.skip("not exported yet")
    assert_spec_file_matches_table(path, "authorization_grant", S, S.NEW, TABLE)


# ---- the reference model ----------------------------------------------------------------------

REFUSED = "refused"
# Resources the tests use that RFC 8707 accepts (absolute, no fragment).
VALID_RESOURCES = {RESOURCE, OTHER_RESOURCE}
S256_CHALLENGES = {CHALLENGE, OTHER_CHALLENGE}


class ReferenceGrant:
    """The grant in plain words and ifs. `step` returns the effects, or REFUSED."""

    def __init__(self, limits: GrantLimits) -> None:
        self.limits = limits
        self.state = "new"
        self.client: str | None = None
        self.redirect: str | None = None
        self.challenge: str | None = None
        self.resource: str | None = None
        self.scope: str | None = None
        self.request_deadline: float | None = None
        self.subject: str | None = None
        self.code: str | None = None
        self.family: str | None = None
        self.code_deadline: float | None = None
        self.generation: int | None = None
        self.refresh_deadline: float | None = None

    def _tokens(self, generation: int, at: float) -> IssueTokens:
        assert self.family
        assert self.subject
        assert self.client
        assert self.resource
        return IssueTokens(
            family_id=self.family,
            generation=generation,
            subject=self.subject,
            client_id=self.client,
            scope=self.scope,
            resource=self.resource,
            refresh_expires_at=at + self.limits.refresh_lifetime,
        )

    def _revoke(self, reason: str, *answer: Any) -> list[Any]:
        self.state = "revoked"
        assert self.family is not None
        return [RevokeFamily(family_id=self.family, reason=reason), *answer]

    def step(self, event: object) -> list[Any] | str:
        state = self.state
        limits = self.limits
        if isinstance(event, AuthorizationRequested):
            if state != "new":
                return REFUSED
            problem = None
            if event.code_challenge is None:
                problem = ("invalid_request", "code_challenge is required (PKCE with S256)")
            elif event.method != "S256":
                problem = ("invalid_request", "code_challenge_method must be S256")
            elif event.code_challenge not in S256_CHALLENGES:
                problem = ("invalid_request", "code_challenge is not an S256 challenge")
            elif event.resource not in VALID_RESOURCES:
                problem = (
                    "invalid_target",
                    "resource is required: an absolute URI without a fragment",
                )
            if problem is not None:
                self.state = "denied"
                error, description = problem
                return [
                    RedirectWithError(
                        redirect_uri=event.redirect_uri, error=error, description=description
                    )
                ]
            self.state = "request_validated"
            self.client, self.redirect = event.client_id, event.redirect_uri
            self.challenge, self.resource, self.scope = (
                event.code_challenge,
                event.resource,
                event.scope,
            )
            self.request_deadline = event.at + limits.consent_lifetime
            assert event.resource is not None
            return [
                ShowConsent(
                    client_id=event.client_id,
                    scope=event.scope,
                    resource=event.resource,
                    expires_at=self.request_deadline,
                )
            ]
        if isinstance(event, ConsentGiven):
            if state != "request_validated":
                return REFUSED
            assert self.request_deadline is not None
            if event.at >= self.request_deadline:
                return REFUSED
            self.state = "consented"
            self.subject = event.subject
            return [IssueCode(lifetime=limits.code_lifetime)]
        if isinstance(event, ConsentDenied):
            if state != "request_validated":
                return REFUSED
            self.state = "denied"
            assert self.redirect is not None
            return [
                RedirectWithError(
                    redirect_uri=self.redirect,
                    error="access_denied",
                    description="the resource owner denied the request",
                )
            ]
        if isinstance(event, CodeIssued):
            if state != "consented":
                return REFUSED
            self.state = "code_issued"
            self.code, self.family = event.code_id, event.family_id
            self.code_deadline = event.at + limits.code_lifetime
            assert self.redirect is not None
            return [RedirectWithCode(redirect_uri=self.redirect, expires_at=self.code_deadline)]
        if isinstance(event, CodeIssueFailed):
            if state != "consented":
                return REFUSED
            self.state = "denied"
            assert self.redirect is not None
            return [
                RedirectWithError(
                    redirect_uri=self.redirect,
                    error="server_error",
                    description="the authorization code could not be issued",
                )
            ]
        if isinstance(event, CodeRedeemed):
            return self._redeem(event)
        if isinstance(event, TokensIssued):
            if state not in ("redeemed", "rotated") or event.generation != self.generation:
                return REFUSED
            self.state = "tokens_active"
            return []
        if isinstance(event, TokenIssueFailed):
            if state not in ("redeemed", "rotated"):
                return REFUSED
            return self._revoke("token issue failed")
        if isinstance(event, RefreshPresented):
            return self._refresh(event)
        if isinstance(event, Revoked):
            if state == "revoked":
                return []
            if state not in ("code_issued", "redeemed", "tokens_active", "rotated"):
                return REFUSED
            return self._revoke(event.reason)
        if isinstance(event, Expired):
            deadline = self.deadline
            if deadline is None or event.at < deadline:
                return REFUSED
            had_tokens = state in ("redeemed", "tokens_active", "rotated")
            self.state = "expired"
            if had_tokens:
                assert self.family is not None
                return [RevokeFamily(family_id=self.family, reason="expired")]
            return []
        return REFUSED

    def _final(self) -> list[Any] | None:
        if self.state == "expired":
            return [
                RejectRequest(error="invalid_grant", description="the authorization grant expired")
            ]
        if self.state == "revoked":
            return [
                RejectRequest(
                    error="invalid_grant", description="the authorization grant was revoked"
                )
            ]
        return None

    def _redeem(self, event: CodeRedeemed) -> list[Any] | str:
        state = self.state
        final = self._final()
        if final is not None:
            return final
        if state in ("redeemed", "tokens_active", "rotated"):
            if event.code_id == self.code:
                return self._revoke(
                    "authorization code replayed",
                    RejectRequest(
                        error="invalid_grant", description="the authorization code was already used"
                    ),
                )
            return [RejectRequest(error="invalid_grant", description="unknown authorization code")]
        if state != "code_issued":
            return REFUSED

        def reject(error: str, description: str) -> list[Any]:
            return [RejectRequest(error=error, description=description)]

        assert self.code_deadline is not None
        if event.code_id != self.code:
            return reject("invalid_grant", "unknown authorization code")
        if event.at >= self.code_deadline:
            self.state = "expired"
            return reject("invalid_grant", "the authorization code expired")
        if event.client_id != self.client:
            return reject("invalid_grant", "the authorization code was issued to another client")
        if event.redirect_uri != self.redirect:
            return reject("invalid_grant", "redirect_uri does not match the authorization request")
        if event.resource != self.resource:
            return reject("invalid_target", "resource does not match the authorization request")
        if event.verifier is None:
            return reject("invalid_request", "code_verifier is required")
        if PAIRS.get(self.challenge or "") != event.verifier:
            return reject("invalid_grant", "code_verifier does not match the code_challenge")
        self.state = "redeemed"
        self.generation = 0
        self.refresh_deadline = event.at + self.limits.refresh_lifetime
        return [self._tokens(0, event.at)]

    def _refresh(self, event: RefreshPresented) -> list[Any] | str:
        state = self.state
        final = self._final()
        if final is not None:
            return final
        if state not in ("redeemed", "tokens_active", "rotated"):
            return REFUSED
        assert self.generation is not None
        assert self.refresh_deadline is not None
        reused = RejectRequest(
            error="invalid_grant", description="the refresh token was already used"
        )
        unknown = [RejectRequest(error="invalid_grant", description="unknown refresh token")]
        if state == "redeemed":
            return unknown
        if state == "rotated":
            if event.token_generation < self.generation:
                return self._revoke("refresh token reused", reused)
            return unknown
        current = event.token_generation == self.generation
        if current and event.client_id == self.client and event.at < self.refresh_deadline:
            self.state = "rotated"
            self.generation += 1
            self.refresh_deadline = event.at + self.limits.refresh_lifetime
            return [self._tokens(self.generation, event.at)]
        if event.token_generation < self.generation:
            return self._revoke("refresh token reused", reused)
        if event.at >= self.refresh_deadline:
            self.state = "expired"
            assert self.family is not None
            return [
                RevokeFamily(family_id=self.family, reason="expired"),
                RejectRequest(error="invalid_grant", description="the refresh token expired"),
            ]
        if current:
            return [
                RejectRequest(
                    error="invalid_grant",
                    description="the refresh token was issued to another client",
                )
            ]
        return unknown

    @property
    def deadline(self) -> float | None:
        if self.state in ("request_validated", "consented"):
            return self.request_deadline
        if self.state == "code_issued":
            return self.code_deadline
        if self.state in ("redeemed", "tokens_active", "rotated"):
            return self.refresh_deadline
        return None


def _fire(machine: AuthorizationGrant, event: object) -> list[Any] | str:
    before = machine.progress
    try:
        return machine.handle(event)
    except LocalProtocolError as exc:
        refusal = exc
    assert refusal.event is event
    assert machine.progress == before, "a refused event changed the machine"
    return REFUSED


def _s256(verifier: str) -> str:
    """The RFC 7636 4.2 transform, written here rather than taken from the module."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@attrs.define
class Ledger:
    """What the service would have done, from the effects alone: the issue's invariants are
    checked against this, independently of both the machine and the reference."""

    challenge: str | None = None  # of the request the machine accepted
    method: str | None = None
    redemptions: int = 0  # codes exchanged for tokens
    live: set[int] = attrs.field(factory=set)  # generations whose tokens are out
    dead: bool = False  # RevokeFamily was performed

    def record(self, event: object, effects: list[Any] | str) -> None:
        if effects == REFUSED:
            return
        assert isinstance(effects, list)
        if any(isinstance(e, ShowConsent) for e in effects):
            assert isinstance(event, AuthorizationRequested)
            self.challenge, self.method = event.code_challenge, event.method
        # No second redemption: once a code was exchanged, the same code again revokes (unless
        # the family is dead already) and never yields tokens.
        if isinstance(event, CodeRedeemed) and self.redemptions and event.code_id == CODE_ID:
            assert not any(isinstance(e, IssueTokens) for e in effects)
            if not self.dead:
                assert any(isinstance(e, RevokeFamily) for e in effects), effects
        for effect in effects:
            if isinstance(effect, IssueTokens):
                # No live token in a revoked family: nothing is issued once it is dead.
                assert not self.dead, "tokens issued in a revoked family"
                if effect.generation == 0:
                    # No token without verified PKCE: the redemption carried the verifier of
                    # the S256 challenge the accepted request sent.
                    assert isinstance(event, CodeRedeemed)
                    assert self.method == "S256"
                    assert event.verifier is not None
                    assert self.challenge == _s256(event.verifier)
                    self.redemptions += 1
                    assert self.redemptions == 1, "a code was redeemed twice"
                else:
                    assert isinstance(event, RefreshPresented)
                    assert effect.generation == event.token_generation + 1
                self.live.add(effect.generation)
            elif isinstance(effect, RevokeFamily):
                self.dead = True
                self.live.clear()


deltas = st.sampled_from([0.0, 0.5, 1.0, 5.0, 12.0, 30.0])
FINAL = ("denied", "expired", "revoked")
# How far along the honest path a grant starts: anywhere, but the short-lived early states
# (a request waiting for consent, a code waiting for redemption) as often as the rest.
depths = st.integers(0, 9) | st.integers(0, 2)
timings = st.sampled_from(["now", "now", "at the deadline", "just before the deadline"])
REQUEST_VARIANTS: dict[str, dict[str, Any]] = {
    "valid": {},
    "valid, no scope": {"scope": None},
    "other challenge": {"code_challenge": OTHER_CHALLENGE},
    "plain": {"method": "plain"},
    "plain challenge": {"method": "plain", "code_challenge": VERIFIER},
    "no method": {"method": None},
    "no challenge": {"code_challenge": None, "method": None},
    "lowercase method": {"method": "s256"},
    "malformed challenge": {"code_challenge": CHALLENGE[:-1]},
    "no resource": {"resource": None},
    "fragment": {"resource": RESOURCE + "#x"},
    "relative resource": {"resource": "/mcp"},
}


# What may be wrong with a token request for the code: one binding at a time, or two.
REDEMPTION_FLAWS: dict[str, dict[str, Any]] = {
    "another code": {"code_id": OTHER_CODE_ID},
    "another client": {"client_id": OTHER_CLIENT},
    "another redirect_uri": {"redirect_uri": OTHER_REDIRECT},
    "no redirect_uri": {"redirect_uri": None},
    "another resource": {"resource": OTHER_RESOURCE},
    "no resource": {"resource": None},
    "no verifier": {"verifier": None},
    **{f"bad verifier {v!r}": {"verifier": v} for v in BAD_VERIFIERS},
}

# What a service may report at any moment.
SERVICE_FACTS: dict[str, object] = {
    "consent denied": ConsentDenied(),
    "code issue failed": CodeIssueFailed(reason="store down"),
    "token issue failed": TokenIssueFailed(reason="keys down"),
    "revoked (RFC 7009)": Revoked(reason="rfc7009"),
    "revoked (operator)": Revoked(reason="operator"),
}

# What may arrive at an ended grant: (a generation, the time) -> an event.
POKES: dict[str, Any] = {
    "the code": lambda _g, at: CodeRedeemed(**_redemption(at=at)),
    "a refresh token": lambda g, at: RefreshPresented(token_generation=g, client_id=CLIENT, at=at),
    "tokens issued": lambda g, _at: TokensIssued(generation=g),
    "consent": lambda _g, at: ConsentGiven(subject=SUBJECT, at=at),
    "revocation": lambda _g, _at: Revoked(reason="rfc7009"),
    "expiry": lambda _g, at: Expired(at=at),
}

live = precondition(lambda self: self.reference.state not in FINAL)

# A valid request half the time: most other variants end the grant at once.
variants = st.sampled_from(["valid", "valid, no scope"]) | st.sampled_from(sorted(REQUEST_VARIANTS))


class GrantAgreesWithReference(RuleBasedStateMachine):
    """Any sequence of events: the machine and the reference agree at every step, and the
    ledger of effects never breaks the issue's invariants.

    A grant that ended stays ended, so a run drives one grant after another: each starts with
    a request of some variant and jumps ahead on the honest path by a few steps, rules fire
    every kind of event (the attacks of issue 4 with rules of their own) while the grant lives,
    and an ended grant is poked a little before the next one starts."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = AuthorizationGrant(LIMITS)
        self.reference = ReferenceGrant(LIMITS)
        self.ledger = Ledger()
        self.now = 0.0
        self.steps = 0

    def _both(self, event: object) -> None:
        self.steps += 1
        if self.steps % 2:
            # What a service does between requests, on every other step: the progress alone
            # is enough to continue.
            self.machine = AuthorizationGrant(LIMITS, progress=self.machine.progress)
        before = self.machine.state
        want = self.reference.step(event)
        got = _fire(self.machine, event)
        assert got == want, f"{event!r} in {before.value}: machine {got!r}, reference {want!r}"
        self.ledger.record(event, got)

    def _honest_step(self) -> object:
        """The next event of an honest flow from where the reference stands."""
        reference = self.reference
        state = reference.state
        if state == "new":
            return AuthorizationRequested(**_request(at=self.now))
        if state == "request_validated":
            return ConsentGiven(subject=SUBJECT, at=self.now)
        if state == "consented":
            return CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=self.now)
        if state == "code_issued":
            return CodeRedeemed(**_redemption(at=self.now))
        if state in ("redeemed", "rotated"):
            return TokensIssued(generation=reference.generation or 0)
        generation = reference.generation or 0
        return RefreshPresented(token_generation=generation, client_id=CLIENT, at=self.now)

    def _at(self, timing: str) -> float:
        """The time of the next event: now, or moved up to the current deadline or just
        before it (deadlines are half-open, so the edge deserves as many runs as the rest)."""
        deadline = self.reference.deadline
        if deadline is not None and timing == "at the deadline":
            self.now = max(self.now, deadline)
        elif deadline is not None and timing == "just before the deadline":
            self.now = max(self.now, deadline - 0.5)
        return self.now

    def _start(self, variant: str, depth: int) -> None:
        """A new grant: a request of the given variant, then up to `depth` honest steps."""
        self.machine = AuthorizationGrant(LIMITS)
        self.reference = ReferenceGrant(LIMITS)
        self.ledger = Ledger()
        self._both(AuthorizationRequested(**_request(at=self.now, **REQUEST_VARIANTS[variant])))
        for _ in range(depth):
            if self.reference.state in FINAL:
                break
            self._both(self._honest_step())

    # ---- a grant starts, ends, and the next one starts -------------------------------------

    @initialize(variant=variants, depth=depths)
    def first_grant(self, variant: str, depth: int) -> None:
        self._start(variant, depth)

    @precondition(lambda self: self.reference.state in FINAL)
    @rule(variant=variants, depth=depths)
    def next_grant(self, variant: str, depth: int) -> None:
        self._start(variant, depth)

    @precondition(lambda self: self.reference.state in FINAL)
    @rule(kind=st.sampled_from(sorted(POKES)), back=st.integers(0, 2))
    def poke_the_ended_grant(self, kind: str, back: int) -> None:
        """An ended grant answers client requests with errors and refuses the rest."""
        self._both(POKES[kind](max(0, (self.reference.generation or 0) - back), self.now))

    @rule(delta=deltas)
    def time_passes(self, delta: float) -> None:
        self.now += delta

    # ---- while the grant lives ------------------------------------------------------------

    @live
    @rule(steps=st.integers(1, 8))
    def advance(self, steps: int) -> None:
        """Several steps of the honest flow at once, so that runs reach rotation often."""
        for _ in range(steps):
            if self.reference.state in FINAL:
                break
            self._both(self._honest_step())

    @live
    @rule(variant=variants)
    def request(self, variant: str) -> None:
        self._both(AuthorizationRequested(**_request(at=self.now, **REQUEST_VARIANTS[variant])))

    @live
    @rule(timing=timings)
    def consent(self, timing: str) -> None:
        self._both(ConsentGiven(subject=SUBJECT, at=self._at(timing)))

    @live
    @rule(timing=timings)
    def code_issued(self, timing: str) -> None:
        self._both(CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=self._at(timing)))

    @live
    @rule(flaws=st.lists(st.sampled_from(sorted(REDEMPTION_FLAWS)), max_size=2), timing=timings)
    def redeem(self, flaws: list[str], timing: str) -> None:
        """A token request for the code, honest or with one or two things wrong with it."""
        fields: dict[str, Any] = {}
        for flaw in flaws:
            fields.update(REDEMPTION_FLAWS[flaw])
        self._both(CodeRedeemed(**_redemption(**fields, at=self._at(timing))))

    @live
    @rule(offset=st.sampled_from([0, 0, -1, 1]))
    def tokens_issued(self, offset: int) -> None:
        self._both(TokensIssued(generation=max(0, (self.reference.generation or 0) + offset)))

    @live
    @rule(
        offset=st.sampled_from([0, 0, -1, 1]),
        client=st.sampled_from([CLIENT, CLIENT, OTHER_CLIENT]),
        timing=timings,
    )
    def refresh(self, offset: int, client: str, timing: str) -> None:
        generation = max(0, (self.reference.generation or 0) + offset)
        at = self._at(timing)
        self._both(RefreshPresented(token_generation=generation, client_id=client, at=at))

    @live
    @rule(fact=st.sampled_from(sorted(SERVICE_FACTS)))
    def service_reports(self, fact: str) -> None:
        self._both(SERVICE_FACTS[fact])

    @live
    @rule(timing=timings)
    def expire(self, timing: str) -> None:
        self._both(Expired(at=self._at(timing)))

    @precondition(lambda self: self.reference.deadline is not None)
    @rule(
        timing=st.sampled_from(["at the deadline", "just before the deadline"]),
        expire=st.booleans(),
    )
    def at_the_edge(self, timing: str, expire: bool) -> None:
        """The honest next step, or `Expired`, at the current deadline or just before it:
        every deadline is half-open, and its edge is where an off-by-one hides."""
        at = self._at(timing)
        self._both(Expired(at=at) if expire else self._honest_step())

    # ---- the attacks of issue 4 -------------------------------------------------------------

    @precondition(
        lambda self: self.reference.state not in FINAL and (self.reference.generation or 0) >= 1
    )
    @rule(back=st.integers(0, 3), client=st.sampled_from([CLIENT, OTHER_CLIENT]))
    def present_an_old_refresh_token(self, back: int, client: str) -> None:
        """RFC 9700 4.14.2: a refresh token that was already rotated (or, with `back` 0, the
        newest one: while `rotated`, the one still being issued)."""
        generation = max(0, (self.reference.generation or 0) - back)
        self._both(RefreshPresented(token_generation=generation, client_id=client, at=self.now))

    @precondition(lambda self: self.reference.state not in FINAL and self.reference.code)
    @rule(
        code=st.sampled_from([CODE_ID, OTHER_CODE_ID]),
        client=st.sampled_from([CLIENT, OTHER_CLIENT]),
        verifier=st.sampled_from([VERIFIER, None, CHALLENGE]),
    )
    def replay_the_code(self, code: str, client: str, verifier: str | None) -> None:
        """RFC 6749 4.1.2: the code presented again, or by another client, or without its
        verifier (or with the challenge as the verifier: a plain downgrade)."""
        fields = _redemption(code_id=code, client_id=client, verifier=verifier, at=self.now)
        self._both(CodeRedeemed(**fields))

    @invariant()
    def same_state(self) -> None:
        assert self.machine.state.value == self.reference.state

    @invariant()
    def same_data(self) -> None:
        progress, reference = self.machine.progress, self.reference
        assert progress.client_id == reference.client
        assert progress.redirect_uri == reference.redirect
        assert progress.code_challenge == reference.challenge
        assert progress.resource == reference.resource
        assert progress.subject == reference.subject
        assert progress.code_id == reference.code
        assert self.machine.family_id == reference.family
        assert self.machine.generation == reference.generation
        assert self.machine.deadline == reference.deadline

    @invariant()
    def no_live_token_in_a_revoked_family(self) -> None:
        # Every way into `revoked` revokes the family; an expired family was revoked too.
        if self.machine.state is S.REVOKED:
            assert self.ledger.dead
        if self.machine.state in (S.REVOKED, S.EXPIRED):
            assert not self.ledger.live
        if self.ledger.dead:
            assert self.machine.state in (S.REVOKED, S.EXPIRED)

    @invariant()
    def at_most_one_redemption(self) -> None:
        assert self.ledger.redemptions <= 1


GrantAgreesWithReference.TestCase.settings = settings(HYPOTHESIS_SETTINGS, max_examples=500)
TestGrantAgreesWithReference = GrantAgreesWithReference.TestCase


# ---- named behaviours -------------------------------------------------------------------------


def _requested(limits: GrantLimits = LIMITS, **fields: Any) -> AuthorizationGrant:
    grant = AuthorizationGrant(limits)
    grant.handle(AuthorizationRequested(**_request(**fields)))
    return grant


def _consented(limits: GrantLimits = LIMITS) -> AuthorizationGrant:
    grant = _requested(limits)
    grant.handle(ConsentGiven(subject=SUBJECT, at=1.0))
    return grant


def _issued(limits: GrantLimits = LIMITS, at: float = 2.0) -> AuthorizationGrant:
    grant = _consented(limits)
    grant.handle(CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=at))
    return grant


def _redeemed(limits: GrantLimits = LIMITS) -> AuthorizationGrant:
    grant = _issued(limits)
    grant.handle(CodeRedeemed(**_redemption(at=3.0)))
    return grant


def _active(limits: GrantLimits = LIMITS) -> AuthorizationGrant:
    grant = _redeemed(limits)
    grant.handle(TokensIssued(generation=0))
    return grant


def _rotated(limits: GrantLimits = LIMITS) -> AuthorizationGrant:
    grant = _active(limits)
    grant.handle(RefreshPresented(token_generation=0, client_id=CLIENT, at=4.0))
    return grant


def _refused(grant: AuthorizationGrant, event: object) -> LocalProtocolError:
    before = grant.progress
    with pytest.raises(LocalProtocolError) as caught:
        grant.handle(event)
    assert grant.progress == before
    return caught.value


def _answered(grant: AuthorizationGrant, event: object, error: str) -> RejectRequest:
    """The grant answers a client request with `error` and changes nothing."""
    before = grant.progress
    effects = grant.handle(event)
    assert grant.progress == before
    assert len(effects) == 1
    assert isinstance(effects[0], RejectRequest)
    assert effects[0].error == error
    return effects[0]


def _tokens(generation: int, at: float, limits: GrantLimits = LIMITS) -> IssueTokens:
    return IssueTokens(
        family_id=FAMILY,
        generation=generation,
        subject=SUBJECT,
        client_id=CLIENT,
        scope=SCOPE,
        resource=RESOURCE,
        refresh_expires_at=at + limits.refresh_lifetime,
    )


def test_new_grant_holds_nothing() -> None:
    grant = AuthorizationGrant()
    assert grant.state is S.NEW
    assert grant.progress == GrantProgress()
    assert grant.deadline is None
    assert grant.limits == ag.DEFAULT_LIMITS


def test_default_limits_follow_the_rfcs() -> None:
    limits = GrantLimits()
    assert limits.code_lifetime == 600.0  # RFC 6749 4.1.2: at most ten minutes
    assert 60 <= limits.consent_lifetime <= 3600
    assert limits.refresh_lifetime >= 86400


def test_honest_flow_from_request_to_rotation() -> None:
    grant = AuthorizationGrant(LIMITS)
    assert grant.handle(AuthorizationRequested(**_request(at=100.0))) == [
        ShowConsent(client_id=CLIENT, scope=SCOPE, resource=RESOURCE, expires_at=120.0)
    ]
    assert grant.state is S.REQUEST_VALIDATED
    assert grant.handle(ConsentGiven(subject=SUBJECT, at=101.0)) == [IssueCode(lifetime=10.0)]
    assert grant.state is S.CONSENTED
    assert grant.handle(CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=102.0)) == [
        RedirectWithCode(redirect_uri=REDIRECT, expires_at=112.0)
    ]
    assert grant.state is S.CODE_ISSUED
    assert grant.deadline == 112.0
    assert grant.handle(CodeRedeemed(**_redemption(at=103.0))) == [_tokens(0, 103.0)]
    assert grant.state is S.REDEEMED
    assert grant.handle(TokensIssued(generation=0)) == []
    assert grant.state is S.TOKENS_ACTIVE
    assert grant.generation == 0
    assert grant.family_id == FAMILY
    assert grant.handle(RefreshPresented(token_generation=0, client_id=CLIENT, at=104.0)) == [
        _tokens(1, 104.0)
    ]
    assert grant.state is S.ROTATED
    assert grant.handle(TokensIssued(generation=1)) == []
    assert grant.state is S.TOKENS_ACTIVE


# -- request validation: PKCE S256 and the resource ----------------------------------------------


def test_plain_pkce_is_refused() -> None:
    grant = AuthorizationGrant(LIMITS)
    effects = grant.handle(
        AuthorizationRequested(**_request(method="plain", code_challenge=VERIFIER))
    )
    assert effects == [
        RedirectWithError(
            redirect_uri=REDIRECT,
            error="invalid_request",
            description="code_challenge_method must be S256",
        )
    ]
    assert grant.state is S.DENIED
    assert grant.progress == GrantProgress(state=S.DENIED)  # nothing of it is kept
    _refused(grant, ConsentGiven(subject=SUBJECT, at=1.0))


@pytest.mark.parametrize(
    "fields",
    [
        {"code_challenge": None, "method": None},
        {"code_challenge": None, "method": "S256"},
        {"method": None},  # RFC 7636 4.3: no method means plain
        {"method": "s256"},
        {"method": ""},
        {"code_challenge": CHALLENGE[:-1]},
        {"code_challenge": CHALLENGE + "="},
        {"code_challenge": CHALLENGE[:-1] + "+"},
        {"code_challenge": VERIFIER + "A"},
    ],
    ids=repr,
)
def test_missing_or_malformed_pkce_is_refused(fields: dict[str, Any]) -> None:
    grant = AuthorizationGrant(LIMITS)
    (effect,) = grant.handle(AuthorizationRequested(**_request(**fields)))
    assert isinstance(effect, RedirectWithError)
    assert effect.error == "invalid_request"
    assert effect.redirect_uri == REDIRECT
    assert grant.state is S.DENIED


@pytest.mark.parametrize("resource", BAD_RESOURCES, ids=repr)
def test_missing_or_malformed_resource_is_refused(resource: str | None) -> None:
    grant = AuthorizationGrant(LIMITS)
    (effect,) = grant.handle(AuthorizationRequested(**_request(resource=resource)))
    assert isinstance(effect, RedirectWithError)
    assert effect.error == "invalid_target"
    assert grant.state is S.DENIED


def test_consent_denied_redirects_with_access_denied() -> None:
    grant = _requested()
    assert grant.handle(ConsentDenied()) == [
        RedirectWithError(
            redirect_uri=REDIRECT,
            error="access_denied",
            description="the resource owner denied the request",
        )
    ]
    assert grant.state is S.DENIED
    _refused(grant, CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=2.0))


def test_consent_after_its_deadline_is_refused() -> None:
    grant = _requested()  # at 0, consent lifetime 20
    error = _refused(grant, ConsentGiven(subject=SUBJECT, at=20.0))
    assert "consent deadline" in str(error)
    assert grant.handle(Expired(at=20.0)) == []
    assert grant.state is S.EXPIRED


def test_code_issue_failure_redirects_with_server_error() -> None:
    grant = _consented()
    assert grant.handle(CodeIssueFailed(reason="connection refused to 10.0.0.5")) == [
        RedirectWithError(
            redirect_uri=REDIRECT,
            error="server_error",
            description="the authorization code could not be issued",
        )
    ]
    assert grant.state is S.DENIED


# -- redemption: age, client binding, PKCE ----------------------------------------------------


def test_code_older_than_ten_minutes_is_refused() -> None:
    grant = AuthorizationGrant()  # the default limits: a code lives 600 s
    grant.handle(AuthorizationRequested(**_request(at=1000.0)))
    grant.handle(ConsentGiven(subject=SUBJECT, at=1001.0))
    grant.handle(CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=1002.0))
    assert grant.deadline == 1602.0
    late = grant.handle(CodeRedeemed(**_redemption(at=1602.0)))
    assert late == [
        RejectRequest(error="invalid_grant", description="the authorization code expired")
    ]
    assert grant.state is S.EXPIRED
    # The code is dead for good, even for its own client in time order.
    assert grant.handle(CodeRedeemed(**_redemption(at=1601.0)))[0].error == "invalid_grant"
    assert grant.state is S.EXPIRED


def test_code_just_under_ten_minutes_is_redeemed() -> None:
    grant = AuthorizationGrant()
    grant.handle(AuthorizationRequested(**_request(at=0.0)))
    grant.handle(ConsentGiven(subject=SUBJECT, at=0.0))
    grant.handle(CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=0.0))
    (effect,) = grant.handle(CodeRedeemed(**_redemption(at=599.999)))
    assert isinstance(effect, IssueTokens)


@pytest.mark.parametrize("lifetime", [600.001, 601.0, 3600.0, math.inf, math.nan, 0.0, -1.0])
def test_code_lifetime_above_ten_minutes_is_refused(lifetime: float) -> None:
    with pytest.raises(ValueError, match="code_lifetime"):
        GrantLimits(code_lifetime=lifetime)
    assert GrantLimits(code_lifetime=600).code_lifetime == 600


def test_machine_refuses_limits_built_around_the_check() -> None:
    limits = GrantLimits()
    object.__setattr__(limits, "code_lifetime", 900.0)
    with pytest.raises(ValueError, match="at most 600"):
        AuthorizationGrant(limits)


def test_unused_code_expires() -> None:
    grant = _issued()  # at 2, lifetime 10
    _refused(grant, Expired(at=11.999))
    assert grant.handle(Expired(at=12.0)) == []
    assert grant.state is S.EXPIRED
    assert grant.handle(CodeRedeemed(**_redemption(at=5.0))) == [
        RejectRequest(error="invalid_grant", description="the authorization grant expired")
    ]


def test_code_redeemed_by_another_client_is_refused() -> None:
    grant = _issued()
    rejection = _answered(
        grant, CodeRedeemed(**_redemption(client_id=OTHER_CLIENT)), "invalid_grant"
    )
    assert rejection.description == "the authorization code was issued to another client"
    # The attempt spent nothing: the client the code was issued to still redeems it.
    (effect,) = grant.handle(CodeRedeemed(**_redemption()))
    assert isinstance(effect, IssueTokens)
    assert grant.state is S.REDEEMED


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"redirect_uri": OTHER_REDIRECT}, "invalid_grant"),
        ({"redirect_uri": REDIRECT.upper()}, "invalid_grant"),
        ({"redirect_uri": None}, "invalid_grant"),
        ({"resource": OTHER_RESOURCE}, "invalid_target"),
        ({"resource": RESOURCE + "/"}, "invalid_target"),
        ({"resource": None}, "invalid_target"),
    ],
    ids=repr,
)
def test_mismatched_redirect_uri_or_resource_is_refused(fields: dict[str, Any], error: str) -> None:
    grant = _issued()
    rejection = _answered(grant, CodeRedeemed(**_redemption(**fields)), error)
    assert "does not match the authorization request" in rejection.description
    assert isinstance(grant.handle(CodeRedeemed(**_redemption()))[0], IssueTokens)


@pytest.mark.parametrize("verifier", BAD_VERIFIERS, ids=repr)
def test_wrong_verifier_is_refused(verifier: str) -> None:
    grant = _issued()
    rejection = _answered(grant, CodeRedeemed(**_redemption(verifier=verifier)), "invalid_grant")
    assert rejection.description == "code_verifier does not match the code_challenge"


def test_missing_verifier_is_refused_and_no_token_is_issued() -> None:
    grant = _issued()
    rejection = _answered(grant, CodeRedeemed(**_redemption(verifier=None)), "invalid_request")
    assert rejection.description == "code_verifier is required"
    assert grant.generation is None


def test_unknown_code_is_refused() -> None:
    grant = _issued()
    _answered(grant, CodeRedeemed(**_redemption(code_id=OTHER_CODE_ID)), "invalid_grant")
    _answered(grant, CodeRedeemed(**_redemption(code_id="é\ud800")), "invalid_grant")


# -- single use: a replayed code revokes the family --------------------------------------------


@pytest.mark.parametrize(
    "make", [_redeemed, _active, _rotated], ids=["redeemed", "active", "rotated"]
)
def test_second_redemption_revokes_tokens(make: Any) -> None:
    grant = make()
    assert grant.handle(CodeRedeemed(**_redemption(at=5.0))) == [
        RevokeFamily(family_id=FAMILY, reason="authorization code replayed"),
        RejectRequest(error="invalid_grant", description="the authorization code was already used"),
    ]
    assert grant.state is S.REVOKED
    # Nothing of the family works any more.
    for generation in range(3):
        event = RefreshPresented(token_generation=generation, client_id=CLIENT, at=6.0)
        assert grant.handle(event) == [
            RejectRequest(error="invalid_grant", description="the authorization grant was revoked")
        ]
    _refused(grant, TokensIssued(generation=grant.generation))


@pytest.mark.parametrize(
    "fields",
    [{"client_id": OTHER_CLIENT}, {"verifier": None}, {"redirect_uri": OTHER_REDIRECT}],
    ids=repr,
)
def test_replay_counts_whoever_presents_the_code(fields: dict[str, Any]) -> None:
    # RFC 6749 4.1.2: a code used twice is evidence it leaked, whatever else the request says.
    grant = _active()
    effects = grant.handle(CodeRedeemed(**_redemption(**fields)))
    assert effects[0] == RevokeFamily(family_id=FAMILY, reason="authorization code replayed")
    assert grant.state is S.REVOKED


def test_another_code_after_redemption_is_not_a_replay() -> None:
    grant = _active()
    _answered(grant, CodeRedeemed(**_redemption(code_id=OTHER_CODE_ID)), "invalid_grant")
    assert grant.state is S.TOKENS_ACTIVE


# -- refresh rotation and reuse detection ------------------------------------------------------


def test_rotation_issues_a_new_generation() -> None:
    grant = _active()
    for generation in range(1, 5):
        at = 4.0 + generation
        effects = grant.handle(
            RefreshPresented(token_generation=generation - 1, client_id=CLIENT, at=at)
        )
        assert effects == [_tokens(generation, at)]
        assert grant.state is S.ROTATED
        assert grant.generation == generation
        grant.handle(TokensIssued(generation=generation))
        assert grant.state is S.TOKENS_ACTIVE
        assert grant.deadline == at + LIMITS.refresh_lifetime  # rotation renews the idle deadline


def test_old_refresh_token_reuse_revokes_family() -> None:
    grant = _rotated()
    grant.handle(TokensIssued(generation=1))
    grant.handle(RefreshPresented(token_generation=1, client_id=CLIENT, at=5.0))
    grant.handle(TokensIssued(generation=2))
    assert grant.handle(RefreshPresented(token_generation=0, client_id=CLIENT, at=6.0)) == [
        RevokeFamily(family_id=FAMILY, reason="refresh token reused"),
        RejectRequest(error="invalid_grant", description="the refresh token was already used"),
    ]
    assert grant.state is S.REVOKED
    # The current generation dies with the family.
    _answered(
        grant, RefreshPresented(token_generation=2, client_id=CLIENT, at=6.0), "invalid_grant"
    )


def test_reuse_while_the_next_generation_is_issued_revokes_family() -> None:
    # Two requests with the same refresh token: the first rotates, the second is reuse (RFC 9700
    # 4.14.2 strict rotation; there is no grace period).
    grant = _rotated()
    effects = grant.handle(RefreshPresented(token_generation=0, client_id=CLIENT, at=4.0))
    assert effects[0] == RevokeFamily(family_id=FAMILY, reason="refresh token reused")
    assert grant.state is S.REVOKED
    _refused(grant, TokensIssued(generation=1))


def test_reuse_by_another_client_also_revokes_family() -> None:
    grant = _rotated()
    grant.handle(TokensIssued(generation=1))
    grant.handle(RefreshPresented(token_generation=0, client_id=OTHER_CLIENT, at=5.0))
    assert grant.state is S.REVOKED


def test_refresh_token_presented_by_another_client_is_refused() -> None:
    grant = _active()
    rejection = _answered(
        grant,
        RefreshPresented(token_generation=0, client_id=OTHER_CLIENT, at=5.0),
        "invalid_grant",
    )
    assert rejection.description == "the refresh token was issued to another client"
    assert isinstance(
        grant.handle(RefreshPresented(token_generation=0, client_id=CLIENT, at=5.0))[0],
        IssueTokens,
    )


def test_refresh_token_not_yet_issued_is_refused() -> None:
    _answered(
        _redeemed(), RefreshPresented(token_generation=0, client_id=CLIENT, at=4.0), "invalid_grant"
    )
    _answered(
        _rotated(), RefreshPresented(token_generation=1, client_id=CLIENT, at=5.0), "invalid_grant"
    )
    _answered(
        _active(), RefreshPresented(token_generation=1, client_id=CLIENT, at=5.0), "invalid_grant"
    )


def test_refresh_after_the_idle_deadline_expires_the_family() -> None:
    grant = _active()  # redeemed at 3, refresh lifetime 50
    assert grant.deadline == 53.0
    assert grant.handle(RefreshPresented(token_generation=0, client_id=CLIENT, at=53.0)) == [
        RevokeFamily(family_id=FAMILY, reason="expired"),
        RejectRequest(error="invalid_grant", description="the refresh token expired"),
    ]
    assert grant.state is S.EXPIRED


@pytest.mark.parametrize(
    "make", [_redeemed, _active, _rotated], ids=["redeemed", "active", "rotated"]
)
def test_idle_family_expires_and_is_revoked(make: Any) -> None:
    grant = make()
    deadline = grant.deadline
    _refused(grant, Expired(at=deadline - 0.001))
    assert grant.handle(Expired(at=deadline)) == [RevokeFamily(family_id=FAMILY, reason="expired")]
    assert grant.state is S.EXPIRED
    assert grant.deadline is None


# -- issuing: the state never claims tokens that were not issued -------------------------------


@pytest.mark.parametrize("make", [_redeemed, _rotated], ids=["redeemed", "rotated"])
def test_token_issue_failure_revokes_family(make: Any) -> None:
    grant = make()
    assert grant.handle(TokenIssueFailed(reason="signing key unavailable")) == [
        RevokeFamily(family_id=FAMILY, reason="token issue failed")
    ]
    assert grant.state is S.REVOKED


def test_tokens_issued_for_another_generation_is_refused() -> None:
    grant = _rotated()
    error = _refused(grant, TokensIssued(generation=0))
    assert "the generation being issued" in str(error)
    _refused(grant, TokensIssued(generation=2))
    _refused(_active(), TokensIssued(generation=0))  # nothing is being issued


# -- revocation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [_issued, _redeemed, _active, _rotated], ids=["issued", "redeemed", "active", "rotated"]
)
def test_revocation_revokes_the_family_once(make: Any) -> None:
    grant = make()
    assert grant.handle(Revoked(reason="rfc7009")) == [
        RevokeFamily(family_id=FAMILY, reason="rfc7009")
    ]
    assert grant.state is S.REVOKED
    assert grant.handle(Revoked(reason="rfc7009")) == []  # revoking again is harmless
    assert grant.handle(CodeRedeemed(**_redemption(at=3.0))) == [
        RejectRequest(error="invalid_grant", description="the authorization grant was revoked")
    ]


@pytest.mark.parametrize("make", [AuthorizationGrant, _requested, _consented], ids=str)
def test_nothing_to_revoke_before_a_code(make: Any) -> None:
    _refused(make(), Revoked(reason="operator"))


# -- service facts out of turn -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "event"),
    [
        (_requested, AuthorizationRequested(**_request())),
        (_issued, CodeIssued(code_id=OTHER_CODE_ID, family_id="family-2", at=3.0)),
        (_active, ConsentGiven(subject="mallory", at=3.0)),
        (_consented, CodeRedeemed(**_redemption())),
        (_issued, RefreshPresented(token_generation=0, client_id=CLIENT, at=3.0)),
        (_issued, TokensIssued(generation=0)),
        (_active, TokenIssueFailed(reason="late")),
        (AuthorizationGrant, Expired(at=1e9)),
    ],
    ids=lambda v: type(v).__name__ if not callable(v) else getattr(v, "__name__", "?"),
)
def test_facts_out_of_turn_are_refused_and_change_nothing(make: Any, event: object) -> None:
    error = _refused(make(), event)
    assert error.event is event
    assert error.machine == "authorization_grant"


def test_refusal_names_the_callers_event_and_state() -> None:
    grant = _active()
    event = ConsentDenied()
    error = _refused(grant, event)
    assert error.event is event
    assert error.state is S.TOKENS_ACTIVE


def test_allows_answers_for_public_event_classes() -> None:
    grant = _issued()
    assert grant.allows(CodeRedeemed)
    assert grant.allows(Expired)
    assert not grant.allows(RefreshPresented)
    assert _active().allows(RefreshPresented)
    assert not AuthorizationGrant().allows(ConsentGiven)


def test_deadline_follows_the_state() -> None:
    assert AuthorizationGrant().deadline is None
    assert _requested().deadline == 20.0
    assert _consented().deadline == 20.0
    assert _issued().deadline == 12.0
    assert _redeemed().deadline == 53.0
    assert _rotated().deadline == 54.0


# ---- PKCE, and secrets compared in constant time ------------------------------------------------


def test_s256_matches_rfc7636_appendix_b() -> None:
    assert s256_challenge(VERIFIER) == CHALLENGE
    assert s256_challenge(OTHER_VERIFIER) == OTHER_CHALLENGE
    assert pkce_verified(VERIFIER, CHALLENGE)
    assert not pkce_verified(None, CHALLENGE)
    assert not pkce_verified(VERIFIER, None)
    assert not pkce_verified(VERIFIER, OTHER_CHALLENGE)
    for verifier in BAD_VERIFIERS:
        assert not pkce_verified(verifier, CHALLENGE)


def test_verifier_length_bounds_are_rfc7636s() -> None:
    for length, ok in [(42, False), (43, True), (128, True), (129, False)]:
        verifier = "a" * length
        assert pkce_verified(verifier, s256_challenge(verifier)) is ok


def test_code_and_verifier_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    grant = _issued()
    monkeypatch.setattr(ag.hmac, "compare_digest", spy)
    grant.handle(CodeRedeemed(**_redemption()))
    assert (CODE_ID.encode(), CODE_ID.encode()) in calls
    assert (CHALLENGE.encode(), CHALLENGE.encode()) in calls


# ---- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [AuthorizationGrant, _requested, _consented, _issued, _redeemed, _active, _rotated],
    ids=str,
)
def test_restored_grant_continues_where_it_stood(make: Any) -> None:
    original = make()
    restored = AuthorizationGrant(LIMITS, progress=original.progress)
    assert restored.state is original.state
    assert restored.progress == original.progress
    for event_type in EVENTS:
        for event in samples_of(SAMPLES, event_type):
            assert _fire(AuthorizationGrant(LIMITS, progress=original.progress), event) == _fire(
                AuthorizationGrant(LIMITS, progress=restored.progress), event
            )


TOKEN_FIELDS = {**CODE_FIELDS, "generation": 0, "refresh_expires_at": 53.0}


@pytest.mark.parametrize(
    "fields",
    [
        {"state": S.REQUEST_VALIDATED},  # no request
        {"state": S.NEW, "client_id": CLIENT},  # part of a request
        {**REQUEST_FIELDS, "state": S.REQUEST_VALIDATED, "resource": None},  # half a request
        {**REQUEST_FIELDS, "state": S.CONSENTED},  # no subject
        {**CODE_FIELDS, "state": S.REQUEST_VALIDATED},  # too much
        {**CODE_FIELDS, "state": S.CODE_ISSUED, "subject": None},  # a gap
        {**TOKEN_FIELDS, "state": S.ROTATED},  # generation 0 is never a rotation
        {**TOKEN_FIELDS, "state": S.TOKENS_ACTIVE, "refresh_expires_at": None},
        {**REQUEST_FIELDS, "state": S.REVOKED},  # revoked before a code
        {**TOKEN_FIELDS, "state": S.DENIED},
        {"state": S.NEW, "scope": SCOPE},
        {**REQUEST_FIELDS, "state": S.REQUEST_VALIDATED, "code_challenge": CHALLENGE + "="},
        {**TOKEN_FIELDS, "state": S.TOKENS_ACTIVE, "generation": -1},
        {**TOKEN_FIELDS, "state": S.TOKENS_ACTIVE, "refresh_expires_at": math.nan},
    ],
)
def test_inconsistent_progress_is_refused(fields: dict[str, Any]) -> None:
    assert GrantProgress(**{**TOKEN_FIELDS, "state": S.TOKENS_ACTIVE}).generation == 0
    with pytest.raises(ValueError, match=r"must|needs"):
        GrantProgress(**fields)


# ---- values validate themselves and keep secrets out ------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: AuthorizationRequested(**_request(client_id="")),
        lambda: AuthorizationRequested(**_request(redirect_uri=None)),
        lambda: AuthorizationRequested(**_request(code_challenge=43)),
        lambda: AuthorizationRequested(**_request(at=math.nan)),
        lambda: ConsentGiven(subject="", at=0.0),
        lambda: CodeIssued(code_id="", family_id=FAMILY, at=0.0),
        lambda: CodeIssued(code_id=CODE_ID, family_id="", at=0.0),
        lambda: CodeRedeemed(**_redemption(verifier=b"bytes")),
        lambda: CodeRedeemed(**_redemption(at=math.inf)),
        lambda: TokensIssued(generation=-1),
        lambda: TokensIssued(generation=True),
        lambda: RefreshPresented(token_generation=1.0, client_id=CLIENT, at=0.0),
        lambda: Expired(at="now"),
        lambda: GrantLimits(consent_lifetime=0.0),
        lambda: GrantLimits(refresh_lifetime=-1.0),
    ],
)
def test_bad_values_are_refused_at_construction(make: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        make()


def test_verifier_and_code_stay_out_of_reprs() -> None:
    grant = _active()
    for value in (
        CodeRedeemed(**_redemption()),
        CodeIssued(code_id=CODE_ID, family_id=FAMILY, at=0.0),
        grant.progress,
        grant,
    ):
        assert VERIFIER not in repr(value)
        assert CODE_ID not in repr(value)


@pytest.mark.parametrize("value_type", EFFECTS, ids=lambda t: t.__name__)
def test_no_effect_carries_a_verifier_or_code(value_type: type) -> None:
    # Effects end up in logs and traces; the code's hash and the verifier stay in the machine.
    names = {field.name for field in attrs.fields(value_type)}
    assert not names & {"verifier", "code_id", "code", "code_challenge"}
