"""The OAuth code exchange machine (client side): its table, a misbehaving server, behaviours.

Issue 5 ("OAuth code exchange, client side"); MCP 2025-11-25 "Authorization". Three layers:

- The table (`OAuthExchangeMachine`, driven by judged events that carry the machine's data) gets
  the checks every machine gets: totality over every (state, event), Hypothesis over drawn
  pairs, random walks. A judged event's context is one the driver could have built in a state
  where its class has a row (a refresh answer comes with a context holding a refresh token),
  drawn from the contexts below; its fields (URLs, issuers, `state`, `iss`, token types) are
  drawn freely.
- The class services drive (`OAuthExchange`) runs against a fake MCP server and authorization
  server in a Hypothesis `RuleBasedStateMachine`. The fake is honest or misbehaves per episode
  (wrong issuer, no S256, a resource for another server, a tampered `state`, a wrong or missing
  `iss`, a denied authorization, a token that is not Bearer), refresh can fail, rotation can be
  off, the authorization server can move, and an attacker replays and forges redirects at any
  time. The machine must never reach `authorized` in a misbehaving episode, never reuse a
  rotated refresh token, never redeem a code twice, always prove PKCE, and never show one
  server's client to another.
- Named behaviours, one spec clause each.
"""

from __future__ import annotations

import itertools
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

from mcp_core.core.machines import oauth_exchange as ox
from mcp_core.core.machines.oauth_exchange import (
    EFFECTS,
    EVENTS,
    TABLE,
    AbandonRequest,
    AccessTokenExpired,
    AuthorizationAbandoned,
    AuthorizationPrepared,
    ClientFacts,
    DiscardTokens,
    ExchangeCode,
    ExchangeContext,
    Fail,
    FetchFailed,
    FetchResourceMetadata,
    FetchServerMetadata,
    InsufficientScope,
    Judged,
    LocalProtocolError,
    OAuthClientConfig,
    OAuthExchange,
    OAuthExchangeMachine,
    OAuthExchangeState,
    OAuthProgress,
    OpenAuthorization,
    PrepareAuthorization,
    PreRegisteredClient,
    RedirectReceived,
    Refresh,
    RefreshFailed,
    Register,
    Registered,
    RegistrationFailed,
    RequestToken,
    ResourceMetadataFetched,
    ServerFacts,
    ServerMetadataFetched,
    SignedOut,
    StoreFailed,
    StoreTokens,
    TokenRequestFailed,
    Tokens,
    TokensReceived,
    Unauthorized,
    pkce_s256,
    spec,
)

from .machine_testing import (
    HYPOTHESIS_SETTINGS,
    assert_samples_take_every_rule,
    assert_spec_matches_table,
    assert_table_well_formed,
    assert_total,
    assert_total_hypothesis,
    assert_walks_follow_table,
    samples_of,
)

S = OAuthExchangeState

# ---- the world the samples live in ------------------------------------------------------------

SERVER_URL = "https://mcp.example.com/mcp"
ORIGIN = "https://mcp.example.com"
PRM_HEADER = "https://mcp.example.com/custom/prm.json"
PRM_PATH = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
PRM_ROOT = "https://mcp.example.com/.well-known/oauth-protected-resource"
ISSUER = "https://auth.example.com"
AS_OAUTH = "https://auth.example.com/.well-known/oauth-authorization-server"
AS_OIDC = "https://auth.example.com/.well-known/openid-configuration"
TENANT = "https://auth.example.com/tenant1"
TENANT_URLS = (
    "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
    "https://auth.example.com/.well-known/openid-configuration/tenant1",
    "https://auth.example.com/tenant1/.well-known/openid-configuration",
)
ORIGIN_OAUTH = "https://mcp.example.com/.well-known/oauth-authorization-server"
ORIGIN_OIDC = "https://mcp.example.com/.well-known/openid-configuration"
EVIL = "https://evil.example.com"
REDIRECT = "http://127.0.0.1:33418/callback"
CIMD_URL = "https://client.example.com/oauth/metadata.json"

# RFC 7636 Appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
VERIFIER_2 = "B" * 43
STATE_A = "state-value-" + "a" * 20
STATE_B = "state-value-" + "b" * 20
WRONG_STATES = [None, "", STATE_A[:-1], STATE_A + "x", STATE_A.upper(), "é" * 32, "\ud800" * 20]

CODE = OAuthClientConfig(server_url=SERVER_URL, redirect_uri=REDIRECT)
CODE_NO_LEGACY = attrs.evolve(CODE, legacy_fallback=False)
CODE_PRE = attrs.evolve(
    CODE, preregistered=(PreRegisteredClient(client_id="pre-1", issuer=ISSUER),)
)
CODE_CIMD = attrs.evolve(CODE, client_metadata_url=CIMD_URL)
CC = OAuthClientConfig(
    server_url=SERVER_URL,
    grant="client_credentials",
    preregistered=(
        PreRegisteredClient(client_id="svc", token_endpoint_auth_method="private_key_jwt"),
    ),
)
CC_DYNAMIC = OAuthClientConfig(server_url=SERVER_URL, grant="client_credentials")

SERVER = ServerFacts(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/authorize",
    token_endpoint=f"{ISSUER}/token",
    registration_endpoint=f"{ISSUER}/register",
)
SERVER_ISS = attrs.evolve(SERVER, iss_parameter_supported=True)
LEGACY_SERVER = ServerFacts(
    issuer=ORIGIN,
    authorization_endpoint=f"{ORIGIN}/authorize",
    token_endpoint=f"{ORIGIN}/token",
    registration_endpoint=f"{ORIGIN}/register",
)
CLIENT = ClientFacts(client_id="client-1", auth_method="none", issuer=ISSUER, kind="dynamic")
CC_CLIENT = ClientFacts(
    client_id="svc", auth_method="private_key_jwt", issuer=ISSUER, kind="preregistered"
)
TOKENS = Tokens(issuer=ISSUER, access_token="access-1", refresh_token="refresh-1", expires_at=60.0)
NO_REFRESH = attrs.evolve(TOKENS, refresh_token=None)


def _context(config: OAuthClientConfig = CODE, **progress: Any) -> ExchangeContext:
    return ExchangeContext(progress=OAuthProgress(**progress), config=config)


def _with(context: ExchangeContext, **changes: Any) -> ExchangeContext:
    return attrs.evolve(context, progress=attrs.evolve(context.progress, **changes))


IDLE_C = _context()
FAILED_C = _context(state=S.FAILED, failure="earlier failure")
DR_FIRST = _context(state=S.DISCOVERING_RESOURCE, candidates=(PRM_PATH, PRM_ROOT))
DR_LAST = _with(DR_FIRST, position=1)
DR_LAST_NO_LEGACY = attrs.evolve(DR_LAST, config=CODE_NO_LEGACY)
DS_FIRST = _context(
    state=S.DISCOVERING_SERVER,
    candidates=(AS_OAUTH, AS_OIDC),
    resource=SERVER_URL,
    expected_issuer=ISSUER,
)
DS_LAST = _with(DS_FIRST, position=1)
DS_PRE = attrs.evolve(DS_FIRST, config=CODE_PRE)
DS_CC = attrs.evolve(DS_FIRST, config=CC)
DS_REDISCOVERED = _with(DS_FIRST, client=CLIENT, tokens=TOKENS)
DS_LEGACY_LAST = _context(
    state=S.DISCOVERING_SERVER,
    candidates=(ORIGIN_OAUTH, ORIGIN_OIDC),
    position=1,
    legacy=True,
    resource=SERVER_URL,
    expected_issuer=ORIGIN,
)
DS_LEGACY_REDISCOVERED = _with(
    DS_LEGACY_LAST,
    client=attrs.evolve(CLIENT, issuer=ORIGIN),
    tokens=attrs.evolve(TOKENS, issuer=ORIGIN),
)
DS_LEGACY_CC = attrs.evolve(DS_LEGACY_LAST, config=CC)
DS_LEGACY_PRE = attrs.evolve(
    DS_LEGACY_LAST,
    config=attrs.evolve(CODE, preregistered=(PreRegisteredClient(client_id="pre-1"),)),
)
REG = _context(state=S.REGISTERING, resource=SERVER_URL, server=SERVER)
REG_CC = attrs.evolve(REG, config=CC_DYNAMIC)
PREP = _context(state=S.PREPARING, resource=SERVER_URL, server=SERVER, client=CLIENT)
PREP_STEP = _with(PREP, tokens=TOKENS, step_ups=1)
AUTHING = _with(PREP, state=S.AUTHORIZING, code_verifier=VERIFIER, oauth_state=STATE_A)
AUTHING_STEP = _with(AUTHING, tokens=TOKENS, step_ups=1)
AUTHING_ISS = _with(AUTHING, server=SERVER_ISS)
EXCH = _with(PREP, state=S.EXCHANGING, code_verifier=VERIFIER)
EXCH_STEP = _with(EXCH, tokens=TOKENS, step_ups=1)
EXCH_CC = _context(CC, state=S.EXCHANGING, resource=SERVER_URL, server=SERVER, client=CC_CLIENT)
OK = _with(PREP, state=S.AUTHORIZED, tokens=TOKENS)
OK_NO_REFRESH = _with(OK, tokens=NO_REFRESH)
OK_SPENT = _with(OK, step_ups=2)
OK_CC = _context(
    CC, state=S.AUTHORIZED, resource=SERVER_URL, server=SERVER, client=CC_CLIENT, tokens=NO_REFRESH
)
REFR = _with(OK, state=S.REFRESHING)
REFR_AFTER_401 = _with(REFR, refresh_after_unauthorized=True)
REFR_CC = _with(OK_CC, state=S.REFRESHING, tokens=TOKENS)


def _metadata(url: str = AS_OAUTH, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "url": url,
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "registration_endpoint": f"{ISSUER}/register",
        "code_challenge_methods_supported": ("S256",),
    }
    values.update(fields)
    return values


def _judged_metadata(context: ExchangeContext, **fields: Any) -> Judged.ServerMetadataFetched:
    return Judged.ServerMetadataFetched(**_metadata(**fields), context=context)


def _prm(url: str = PRM_PATH, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "url": url,
        "resource": SERVER_URL,
        "authorization_servers": (ISSUER,),
    }
    values.update(fields)
    return values


# ---- the table: judged samples, one per guard -------------------------------------------------

SAMPLES: dict[type, Any] = {
    Judged.Unauthorized: lambda: [
        Judged.Unauthorized(context=IDLE_C),
        Judged.Unauthorized(resource_metadata=PRM_HEADER, scopes="files:read", context=OK),
    ],
    Judged.ResourceMetadataFetched: lambda: [
        Judged.ResourceMetadataFetched(**_prm(), context=DR_FIRST),
        Judged.ResourceMetadataFetched(**_prm(authorization_servers=()), context=DR_FIRST),
        Judged.ResourceMetadataFetched(**_prm(resource=f"{EVIL}/mcp"), context=DR_FIRST),
        Judged.ResourceMetadataFetched(**_prm(url=PRM_ROOT), context=DR_FIRST),  # stale
    ],
    Judged.FetchFailed: lambda: [
        Judged.FetchFailed(url=PRM_PATH, context=DR_FIRST),
        Judged.FetchFailed(url=PRM_ROOT, context=DR_LAST),
        Judged.FetchFailed(url=PRM_ROOT, context=DR_LAST_NO_LEGACY),
        Judged.FetchFailed(url=PRM_PATH, context=DR_LAST),  # stale
        Judged.FetchFailed(url=AS_OAUTH, context=DS_FIRST),
        Judged.FetchFailed(url=AS_OIDC, context=DS_LAST),
        Judged.FetchFailed(url=ORIGIN_OIDC, context=DS_LEGACY_REDISCOVERED),
        Judged.FetchFailed(url=ORIGIN_OIDC, context=DS_LEGACY_CC),
        Judged.FetchFailed(url=ORIGIN_OIDC, context=DS_LEGACY_PRE),
        Judged.FetchFailed(url=ORIGIN_OIDC, context=DS_LEGACY_LAST),
    ],
    Judged.ServerMetadataFetched: lambda: [
        _judged_metadata(DS_FIRST, issuer=EVIL),
        _judged_metadata(DS_FIRST, issuer=ISSUER + "/"),
        _judged_metadata(DS_FIRST, code_challenge_methods_supported=("plain",)),
        _judged_metadata(DS_FIRST, token_endpoint=None),
        _judged_metadata(DS_REDISCOVERED),
        _judged_metadata(DS_CC, code_challenge_methods_supported=None),
        _judged_metadata(DS_PRE),
        _judged_metadata(DS_FIRST),
        _judged_metadata(DS_FIRST, registration_endpoint=None),
        _judged_metadata(DS_FIRST, url=AS_OIDC),  # stale
    ],
    Judged.Registered: lambda: [
        Judged.Registered(client_id="client-1", context=REG),
        Judged.Registered(
            client_id="svc-2", token_endpoint_auth_method="client_secret_basic", context=REG_CC
        ),
    ],
    RegistrationFailed: lambda: RegistrationFailed(reason="invalid_client_metadata"),
    Judged.AuthorizationPrepared: lambda: Judged.AuthorizationPrepared(
        code_verifier=VERIFIER, state=STATE_A, context=PREP
    ),
    Judged.AuthorizationAbandoned: lambda: [
        Judged.AuthorizationAbandoned(reason="browser closed", context=PREP),
        Judged.AuthorizationAbandoned(reason="browser closed", context=PREP_STEP),
    ],
    Judged.RedirectReceived: lambda: [
        Judged.RedirectReceived(state=STATE_A, code="code-1", context=AUTHING),
        Judged.RedirectReceived(state=STATE_A, error="access_denied", context=AUTHING_STEP),
        Judged.RedirectReceived(state=STATE_A, error="access_denied", context=AUTHING),
        Judged.RedirectReceived(state=STATE_A, code="code-1", iss=EVIL, context=AUTHING),
        Judged.RedirectReceived(state=STATE_A, code="code-1", context=AUTHING_ISS),
        Judged.RedirectReceived(state=STATE_A, code="code-1", iss=ISSUER, context=AUTHING_ISS),
        Judged.RedirectReceived(state=STATE_B, code="code-1", context=AUTHING),  # forged
        Judged.RedirectReceived(state=None, code="code-1", context=AUTHING),
    ],
    Judged.TokensReceived: lambda: [
        Judged.TokensReceived(access_token="access-2", context=EXCH),
        Judged.TokensReceived(access_token="access-2", token_type="DPoP", context=EXCH),
        Judged.TokensReceived(access_token="access-2", token_type="bearer", context=REFR),
    ],
    Judged.TokenRequestFailed: lambda: [
        Judged.TokenRequestFailed(error="invalid_grant", context=EXCH),
        Judged.TokenRequestFailed(error="invalid_grant", context=EXCH_STEP),
    ],
    Judged.RefreshFailed: lambda: [
        Judged.RefreshFailed(error="invalid_grant", context=REFR),
        Judged.RefreshFailed(error="invalid_grant", context=REFR_CC),
    ],
    Judged.AccessTokenExpired: lambda: [
        Judged.AccessTokenExpired(context=OK),
        Judged.AccessTokenExpired(context=OK_CC),
        Judged.AccessTokenExpired(context=OK_NO_REFRESH),
    ],
    Judged.InsufficientScope: lambda: [
        Judged.InsufficientScope(scopes="files:write", context=OK_CC),
        Judged.InsufficientScope(scopes="files:write", context=OK),
        Judged.InsufficientScope(scopes="files:write", context=OK_SPENT),
    ],
    Judged.StoreFailed: lambda: Judged.StoreFailed(reason="disk full", context=OK),
    Judged.SignedOut: lambda: [Judged.SignedOut(context=OK), Judged.SignedOut(context=IDLE_C)],
    # The public classes of judged events: the table refuses them everywhere.
    Unauthorized: lambda: Unauthorized(),
    ResourceMetadataFetched: lambda: ResourceMetadataFetched(**_prm()),
    ServerMetadataFetched: lambda: ServerMetadataFetched(**_metadata()),
    FetchFailed: lambda: FetchFailed(url=PRM_PATH),
    Registered: lambda: Registered(client_id="client-1"),
    AuthorizationPrepared: lambda: AuthorizationPrepared(code_verifier=VERIFIER, state=STATE_A),
    AuthorizationAbandoned: lambda: AuthorizationAbandoned(reason="closed"),
    RedirectReceived: lambda: RedirectReceived(state=STATE_A, code="code-1"),
    TokensReceived: lambda: TokensReceived(access_token="access-2"),
    TokenRequestFailed: lambda: TokenRequestFailed(error="invalid_grant"),
    RefreshFailed: lambda: RefreshFailed(error="invalid_grant"),
    AccessTokenExpired: AccessTokenExpired,
    InsufficientScope: lambda: InsufficientScope(scopes="files:write"),
    StoreFailed: lambda: StoreFailed(reason="disk full"),
    SignedOut: SignedOut,
}

# ---- the table: Hypothesis strategies for judged events ---------------------------------------

# The contexts a driver could build for each class: those of the states where its class has a
# row (see the module docstring of this file).
DISCOVERY_CONTEXTS = [
    DR_FIRST,
    DR_LAST,
    DR_LAST_NO_LEGACY,
    DS_FIRST,
    DS_LAST,
    DS_PRE,
    DS_CC,
    DS_REDISCOVERED,
    DS_LEGACY_LAST,
    DS_LEGACY_REDISCOVERED,
    DS_LEGACY_CC,
    DS_LEGACY_PRE,
]
ALL_CONTEXTS = [
    IDLE_C,
    FAILED_C,
    *DISCOVERY_CONTEXTS,
    REG,
    REG_CC,
    PREP,
    PREP_STEP,
    AUTHING,
    AUTHING_STEP,
    AUTHING_ISS,
    EXCH,
    EXCH_STEP,
    EXCH_CC,
    OK,
    OK_NO_REFRESH,
    OK_SPENT,
    OK_CC,
    REFR,
    REFR_AFTER_401,
    REFR_CC,
]
urls = st.sampled_from(
    [PRM_HEADER, PRM_PATH, PRM_ROOT, AS_OAUTH, AS_OIDC, ORIGIN_OAUTH, ORIGIN_OIDC, *TENANT_URLS]
)
issuers = st.sampled_from(
    [ISSUER, ISSUER + "/", TENANT, ORIGIN, EVIL, "", "HTTPS://auth.example.com"]
)
resources = st.sampled_from([SERVER_URL, ORIGIN, ORIGIN + "/", f"{SERVER_URL}/sub", f"{EVIL}/mcp"])
scope_sets = st.none() | st.lists(st.sampled_from(["a", "b", "files:read", "x:y"]), max_size=3)
states_sent = st.sampled_from([STATE_A, STATE_B]) | st.sampled_from(WRONG_STATES) | st.text()
endpoints = st.none() | st.just(f"{ISSUER}/endpoint")


def _contexts(*choices: ExchangeContext) -> st.SearchStrategy[ExchangeContext]:
    return st.sampled_from(list(choices))


JUDGED_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Judged.Unauthorized: st.builds(
        Judged.Unauthorized,
        resource_metadata=st.none() | urls,
        scopes=scope_sets,
        context=st.sampled_from(ALL_CONTEXTS),
    ),
    Judged.ResourceMetadataFetched: st.builds(
        Judged.ResourceMetadataFetched,
        url=urls,
        resource=resources,
        authorization_servers=st.lists(st.sampled_from([ISSUER, TENANT, EVIL]), max_size=2),
        scopes_supported=scope_sets,
        context=_contexts(*DISCOVERY_CONTEXTS),
    ),
    Judged.FetchFailed: st.builds(
        Judged.FetchFailed, url=urls, context=_contexts(*DISCOVERY_CONTEXTS)
    ),
    Judged.ServerMetadataFetched: st.builds(
        Judged.ServerMetadataFetched,
        url=urls,
        issuer=issuers,
        authorization_endpoint=endpoints,
        token_endpoint=endpoints,
        registration_endpoint=endpoints,
        code_challenge_methods_supported=st.none() | st.lists(st.sampled_from(["S256", "plain"])),
        client_id_metadata_document_supported=st.booleans(),
        authorization_response_iss_parameter_supported=st.booleans(),
        context=_contexts(*DISCOVERY_CONTEXTS),
    ),
    Judged.Registered: st.builds(
        Judged.Registered,
        client_id=st.sampled_from(["client-1", "client-2"]),
        token_endpoint_auth_method=st.sampled_from(sorted(ox.AUTH_METHODS)),
        context=_contexts(REG, REG_CC),
    ),
    Judged.AuthorizationPrepared: st.builds(
        Judged.AuthorizationPrepared,
        code_verifier=st.sampled_from([VERIFIER, VERIFIER_2]),
        state=st.sampled_from([STATE_A, STATE_B]),
        context=_contexts(PREP, PREP_STEP),
    ),
    Judged.AuthorizationAbandoned: st.builds(
        Judged.AuthorizationAbandoned,
        reason=st.text(max_size=5),
        context=_contexts(PREP, PREP_STEP, AUTHING, AUTHING_STEP, AUTHING_ISS),
    ),
    Judged.RedirectReceived: st.one_of(
        st.builds(
            Judged.RedirectReceived,
            state=states_sent,
            code=st.just("code-1"),
            iss=st.none() | issuers,
            context=_contexts(AUTHING, AUTHING_STEP, AUTHING_ISS),
        ),
        st.builds(
            Judged.RedirectReceived,
            state=states_sent,
            error=st.sampled_from(["access_denied", "server_error"]),
            error_description=st.none() | st.text(max_size=5),
            iss=st.none() | issuers,
            context=_contexts(AUTHING, AUTHING_STEP, AUTHING_ISS),
        ),
    ),
    Judged.TokensReceived: st.builds(
        Judged.TokensReceived,
        access_token=st.sampled_from(["access-2", "access-3"]),
        token_type=st.sampled_from(["Bearer", "bearer", "BEARER", "DPoP", "mac"]),
        expires_in=st.none() | st.integers(0, 7200),
        refresh_token=st.none() | st.sampled_from(["refresh-1", "refresh-2"]),
        scopes=scope_sets,
        at=st.integers(0, 10_000).map(float),
        context=_contexts(EXCH, EXCH_STEP, EXCH_CC, REFR, REFR_AFTER_401, REFR_CC),
    ),
    Judged.TokenRequestFailed: st.builds(
        Judged.TokenRequestFailed,
        error=st.sampled_from(["invalid_grant", "invalid_client"]),
        context=_contexts(EXCH, EXCH_STEP, EXCH_CC),
    ),
    Judged.RefreshFailed: st.builds(
        Judged.RefreshFailed,
        error=st.just("invalid_grant"),
        context=_contexts(REFR, REFR_AFTER_401, REFR_CC),
    ),
    Judged.AccessTokenExpired: st.builds(
        Judged.AccessTokenExpired, context=_contexts(OK, OK_NO_REFRESH, OK_SPENT, OK_CC)
    ),
    Judged.InsufficientScope: st.builds(
        Judged.InsufficientScope,
        scopes=scope_sets,
        context=_contexts(OK, OK_NO_REFRESH, OK_SPENT, OK_CC),
    ),
    Judged.StoreFailed: st.builds(
        Judged.StoreFailed, reason=st.text(max_size=5), context=_contexts(OK, OK_CC)
    ),
    Judged.SignedOut: st.builds(Judged.SignedOut, context=st.sampled_from(ALL_CONTEXTS)),
}


# ---- the table: totality --------------------------------------------------------------------


def test_oauth_exchange_table_is_well_formed() -> None:
    assert_table_well_formed(S, TABLE)


def test_table_speaks_of_every_event_and_judges_those_that_read_data() -> None:
    in_table = {event_type for _state, event_type in TABLE}
    judged = {t for t in in_table if t.__qualname__.startswith("Judged.")}
    plain = in_table - judged
    # Each public event reaches the table either as itself or judged, never both.
    assert {t.__mro__[1] for t in judged} | plain == set(EVENTS)
    assert not {t.__mro__[1] for t in judged} & plain
    assert plain == {RegistrationFailed}  # the one row that reads nothing the machine holds
    # The export reads in the service's words.
    assert {t.__name__ for t in in_table} == {t.__name__ for t in EVENTS}


def test_oauth_exchange_table_is_total() -> None:
    seen = assert_total(OAuthExchangeMachine, S, SAMPLES, TABLE)
    assert len(seen) == len(S) * len(SAMPLES)
    unjudged = {t for t in EVENTS if t not in {event_type for _state, event_type in TABLE}}
    assert len(unjudged) == len(EVENTS) - 1
    assert all(outcomes == {"refused"} for (_s, t), outcomes in seen.items() if t in unjudged)


def test_oauth_exchange_table_is_total_under_hypothesis() -> None:
    assert_total_hypothesis(OAuthExchangeMachine, S, SAMPLES, TABLE, JUDGED_STRATEGIES)


def test_oauth_exchange_table_walks_follow_table() -> None:
    assert_walks_follow_table(OAuthExchangeMachine, TABLE, SAMPLES, JUDGED_STRATEGIES)


def test_samples_take_every_rule_of_the_table() -> None:
    assert_samples_take_every_rule(TABLE, SAMPLES)


def test_spec_says_what_the_table_says() -> None:
    assert_spec_matches_table(spec(), "oauth_exchange", S, S.IDLE, TABLE)


def test_sign_out_is_legal_everywhere_but_idle() -> None:
    for state in S:
        assert ((state, Judged.SignedOut) in TABLE) == (state is not S.IDLE)


# ---- a fake MCP server and authorization servers that can misbehave --------------------------

# Episodes: how the servers behave from one 401 (out of `idle` or `failed`) to the next.
HONEST = ("honest", "honest_iss", "no_metadata")
# Misbehaviour any client must refuse.
BAD_FOR_ALL = ("wrong_issuer", "wrong_resource", "no_server", "not_bearer")
# Misbehaviour of the authorization code flow (metadata without S256, the redirect).
BAD_FOR_CODE = (
    "no_s256",
    "state_tampered",
    "wrong_iss",
    "missing_iss",
    "unadvertised_wrong_iss",
    "normalized_iss",
    "deny",
)
MODES = HONEST + BAD_FOR_ALL + BAD_FOR_CODE
SECOND_ISSUER = "https://login.example.org"


class TokenError(Exception):
    pass


@attrs.define
class FakeAuthorizationServer:
    """One authorization server: clients, single-use codes bound to a PKCE challenge, and
    refresh token families with rotation and reuse detection (OAuth 2.1 §4.3.1)."""

    issuer: str
    world: FakeWorld
    codes: dict[str, tuple[str, str, str, str]] = attrs.field(factory=dict)
    used_codes: set[str] = attrs.field(factory=set)
    live_refresh: set[str] = attrs.field(factory=set)
    rotated: set[str] = attrs.field(factory=set)

    def _check_client(self, client_id: str) -> None:
        home = self.world.client_home.get(client_id)
        if home is not None and home != self.issuer:
            self.world.foreign_clients += 1
            raise TokenError("invalid_client")

    def register(self, effect: Register) -> dict[str, Any]:
        client_id = self.world.draw("client")
        self.world.client_home[client_id] = self.issuer
        return {"client_id": client_id, "token_endpoint_auth_method": "none"}

    def authorize(self, effect: OpenAuthorization) -> dict[str, str]:
        params = effect.params()
        assert params["code_challenge_method"] == "S256"
        assert params["resource"] == self.world.expected_resource
        self._check_client(effect.client_id)
        mode = self.world.mode
        if mode == "state_tampered":
            # A CSRF / code injection: the attacker's own code, under another state.
            return {"code": "attacker-code", "state": effect.state[::-1] + "!"}
        if mode == "deny":
            return {"error": "access_denied", "state": effect.state}
        code = self.world.draw("code")
        self.codes[code] = (
            effect.client_id,
            effect.code_challenge,
            effect.redirect_uri,
            effect.resource,
        )
        answer = {"code": code, "state": effect.state}
        iss = {
            "honest_iss": self.issuer,
            "wrong_iss": EVIL,
            "unadvertised_wrong_iss": EVIL,
            "normalized_iss": self.issuer + "/",
        }.get(mode)
        if iss is not None:
            answer["iss"] = iss
        return answer

    def _grant(self, scopes: tuple[str, ...] | None) -> dict[str, Any]:
        access = self.world.draw("access")
        self.world.issued_access.add(access)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "DPoP" if self.world.mode == "not_bearer" else "Bearer",
            "expires_in": 3600,
        }
        if scopes:
            answer["scope"] = " ".join(scopes)
        return answer

    def token(self, effect: ExchangeCode | RequestToken | Refresh) -> dict[str, Any]:
        self._check_client(effect.client_id)
        form = effect.form()
        assert form["resource"] == self.world.expected_resource
        if isinstance(effect, RequestToken):
            return self._grant(effect.scopes)
        if isinstance(effect, ExchangeCode):
            if effect.code in self.used_codes:
                self.world.code_replays += 1
                raise TokenError("invalid_grant")
            bound = self.codes.pop(effect.code, None)
            if bound is None:
                raise TokenError("invalid_grant")
            self.used_codes.add(effect.code)
            if pkce_s256(effect.code_verifier) != bound[1]:
                self.world.pkce_failures += 1
                raise TokenError("invalid_grant")
            assert (effect.client_id, effect.redirect_uri, effect.resource) == (
                bound[0],
                bound[2],
                bound[3],
            )
            answer = self._grant(None)
            answer["refresh_token"] = self._new_refresh()
            return answer
        token = effect.refresh_token
        if token in self.rotated:
            self.world.reuse_detected += 1
            raise TokenError("invalid_grant")
        if token not in self.live_refresh or self.world.refresh_fails:
            self.live_refresh.discard(token)
            raise TokenError("invalid_grant")
        answer = self._grant(None)
        if self.world.rotate:
            self.live_refresh.discard(token)
            self.rotated.add(token)
            answer["refresh_token"] = self._new_refresh()
        return answer

    def _new_refresh(self) -> str:
        token = self.world.draw("refresh")
        self.live_refresh.add(token)
        return token


@attrs.define
class FakeWorld:
    """The MCP server (its protected resource metadata) and the authorization servers."""

    mode: str = "honest"
    prm_at: str = "path"
    metadata_at: str = "oauth"
    issuer: str = ISSUER
    refresh_fails: bool = False
    rotate: bool = True
    servers: dict[str, FakeAuthorizationServer] = attrs.field(factory=dict)
    # Which server a client belongs to; absent: any (pre-provisioned, or a metadata document).
    client_home: dict[str, str] = attrs.field(factory=lambda: {"pre-1": ISSUER})
    issued_access: set[str] = attrs.field(factory=set)
    foreign_clients: int = 0
    code_replays: int = 0
    pkce_failures: int = 0
    reuse_detected: int = 0
    counter: itertools.count[int] = attrs.field(factory=itertools.count)

    def draw(self, kind: str) -> str:
        return f"{kind}-{next(self.counter):05d}"

    def server(self, issuer: str) -> FakeAuthorizationServer:
        if issuer not in self.servers:
            self.servers[issuer] = FakeAuthorizationServer(issuer=issuer, world=self)
        return self.servers[issuer]

    @property
    def prm_url(self) -> str:
        return {"header": PRM_HEADER, "path": PRM_PATH, "root": PRM_ROOT}[self.prm_at]

    @property
    def expected_resource(self) -> str:
        if self.mode == "no_metadata" or self.prm_at != "root":
            return SERVER_URL
        return ORIGIN

    @property
    def metadata_url(self) -> str:
        # Written out rather than derived with the module's helpers.
        base, _, path = self.issuer.partition("://")[2].partition("/")
        origin = f"https://{base}"
        tail = f"/{path}" if path else ""
        if self.metadata_at == "oauth":
            return f"{origin}/.well-known/oauth-authorization-server{tail}"
        if self.metadata_at == "openid" or not tail:
            return f"{origin}/.well-known/openid-configuration{tail}"
        return f"{origin}{tail}/.well-known/openid-configuration"

    def resource_metadata(self, url: str) -> dict[str, Any] | None:
        if self.mode == "no_metadata" or url != self.prm_url:
            return None
        return {
            "resource": f"{EVIL}/mcp" if self.mode == "wrong_resource" else self.expected_resource,
            "authorization_servers": [] if self.mode == "no_server" else [self.issuer],
            "scopes_supported": ["files:read"],
        }

    def server_metadata(self, url: str) -> dict[str, Any] | None:
        if self.mode == "no_metadata" or url != self.metadata_url:
            return None
        issuer = self.issuer
        return {
            "issuer": EVIL if self.mode == "wrong_issuer" else issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "registration_endpoint": f"{issuer}/register",
            "code_challenge_methods_supported": ["plain"] if self.mode == "no_s256" else ["S256"],
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": self.mode
            in ("honest_iss", "wrong_iss", "missing_iss", "normalized_iss"),
        }

    def server_at(self, endpoint: str) -> FakeAuthorizationServer:
        return self.server(endpoint.rsplit("/", 1)[0])


REFUSED = "refused"
CONFIGS = {
    "dynamic": CODE,
    "preregistered": CODE_PRE,
    "metadata_document": CODE_CIMD,
    "client_credentials": CC,
    "client_credentials_dynamic": CC_DYNAMIC,
}


def _fire(machine: OAuthExchange, event: object) -> list[Any] | str:
    before = machine.progress
    try:
        return list(machine.handle(event))
    except LocalProtocolError as exc:
        refusal = exc
    assert refusal.event is event
    assert machine.progress == before, "a refused event changed the machine"
    return REFUSED


class ExchangeAgainstMisbehavingServers(RuleBasedStateMachine):
    """A service loop around `OAuthExchange`: effects are performed against the fake world one
    at a time, and other rules fire between them (the user, the clock, an attacker)."""

    def __init__(self) -> None:
        super().__init__()
        self.world = FakeWorld()
        self.machine = OAuthExchange(CODE)
        self.pending: list[Any] = []
        self.store: dict[str, Tokens] = {}
        self.bad_episode = False
        self.episode_effects: list[Any] = []
        self.redirects: list[dict[str, str]] = []
        self.drawn = itertools.count()
        self.now = 0.0

    @initialize(
        config=st.sampled_from(sorted(CONFIGS)),
        tenant=st.booleans(),
        metadata_at=st.sampled_from(["oauth", "openid", "openid_appended"]),
    )
    def configure(self, config: str, tenant: bool, metadata_at: str) -> None:
        self.machine = OAuthExchange(CONFIGS[config])
        self.world.issuer = TENANT if tenant else ISSUER
        self.world.metadata_at = metadata_at

    @property
    def code_flow(self) -> bool:
        return self.machine.config.grant == "authorization_code"

    def _feed(self, event: object) -> list[Any] | str:
        out = _fire(self.machine, event)
        if out != REFUSED:
            assert isinstance(out, list)
            self.pending.extend(out)
            self.episode_effects.extend(out)
        return out

    # ---- the user and the MCP server ----

    @precondition(lambda self: self.machine.state in (S.IDLE, S.FAILED) and not self.pending)
    @rule(
        mode=st.sampled_from(MODES),
        prm_at=st.sampled_from(["header", "path", "root"]),
        scopes=st.none() | st.just("files:read"),
    )
    def first_request_gets_401(self, mode: str, prm_at: str, scopes: str | None) -> None:
        self.world.mode, self.world.prm_at = mode, prm_at
        self.bad_episode = mode in BAD_FOR_ALL or (self.code_flow and mode in BAD_FOR_CODE)
        self.episode_effects = []
        header = PRM_HEADER if prm_at == "header" else None
        assert self._feed(Unauthorized(resource_metadata=header, scopes=scopes)) != REFUSED

    @precondition(lambda self: self.machine.state is S.AUTHORIZED and not self.pending)
    @rule()
    def token_expires(self) -> None:
        assert self._feed(AccessTokenExpired()) != REFUSED

    @precondition(lambda self: self.machine.state is S.AUTHORIZED and not self.pending)
    @rule(move=st.booleans())
    def server_rejects_token(self, move: bool) -> None:
        if move:  # SEP-2352: the resource now names another authorization server
            self.world.issuer = SECOND_ISSUER if self.world.issuer != SECOND_ISSUER else ISSUER
        header = PRM_HEADER if self.world.prm_at == "header" else None
        assert self._feed(Unauthorized(resource_metadata=header)) != REFUSED

    @precondition(lambda self: self.machine.state is S.AUTHORIZED and not self.pending)
    @rule(scopes=st.sampled_from(["files:write", "files:read files:write", "admin"]))
    def server_wants_more_scope(self, scopes: str) -> None:
        assert self._feed(InsufficientScope(scopes=scopes)) != REFUSED

    @precondition(
        lambda self: self.machine.state in (S.PREPARING, S.AUTHORIZING) and not self.pending
    )
    @rule()
    def user_gives_up(self) -> None:
        assert self._feed(AuthorizationAbandoned(reason="timed out")) != REFUSED

    @precondition(lambda self: self.machine.state is not S.IDLE)
    @rule()
    def user_signs_out(self) -> None:
        assert self._feed(SignedOut()) != REFUSED
        assert self.machine.state is S.IDLE
        # The service cancels what it was doing and deletes what it stored.
        self.pending.clear()
        self.store.clear()
        self.episode_effects = []
        self.bad_episode = False

    @rule(fails=st.booleans(), rotate=st.booleans())
    def time_passes_and_refresh_behaviour_changes(self, fails: bool, rotate: bool) -> None:
        self.now += 600.0
        self.world.refresh_fails, self.world.rotate = fails, rotate

    @rule()
    def persist_and_restore(self) -> None:
        self.machine = OAuthExchange(self.machine.config, progress=self.machine.progress)

    # ---- an attacker ----

    @precondition(lambda self: self.machine.state is not S.IDLE)
    @rule(kind=st.sampled_from(["replay", "forged", "injected_code", "no_state"]))
    def attacker_delivers_a_redirect(self, kind: str) -> None:
        if kind == "replay" and self.redirects:
            params = self.redirects[-1]
        elif kind == "no_state":
            params = {"code": "attacker-code"}
        else:
            params = {"code": "attacker-code", "state": f"forged-state-{next(self.drawn):020d}"}
        assert self._feed(RedirectReceived.from_query(params)) == REFUSED

    @precondition(lambda self: self.machine.state is not S.IDLE)
    @rule(url=st.sampled_from([PRM_HEADER, PRM_PATH, PRM_ROOT, AS_OAUTH, ORIGIN_OAUTH]))
    def late_answer_for_another_url(self, url: str) -> None:
        progress = self.machine.progress
        current = progress.candidates[progress.position] if progress.candidates else None
        if url != current:
            assert self._feed(FetchFailed(url=url, reason="late")) == REFUSED

    # ---- the service performs one effect ----

    @precondition(lambda self: bool(self.pending))
    @rule()
    def serve_until_quiet(self) -> None:
        while self.pending:
            self.perform_next_effect()

    @precondition(lambda self: bool(self.pending))
    @rule()
    def perform_next_effect(self) -> None:
        effect = self.pending.pop(0)
        event = self._perform(effect)
        if event is None:
            return
        out = self._feed(event)
        tampered = isinstance(event, RedirectReceived) and self.world.mode == "state_tampered"
        assert (out == REFUSED) == tampered, f"the service's answer {event!r} was refused"

    def _perform(self, effect: Any) -> object | None:
        world = self.world
        if isinstance(effect, FetchResourceMetadata):
            document = world.resource_metadata(effect.url)
            if document is None:
                return FetchFailed(url=effect.url)
            return ResourceMetadataFetched.from_document(url=effect.url, document=document)
        if isinstance(effect, FetchServerMetadata):
            document = world.server_metadata(effect.url)
            if document is None:
                return FetchFailed(url=effect.url)
            return ServerMetadataFetched.from_document(url=effect.url, document=document)
        if isinstance(effect, Register):
            return Registered.from_document(world.server(effect.issuer).register(effect))
        if isinstance(effect, PrepareAuthorization):
            n = next(self.drawn)
            return AuthorizationPrepared(
                code_verifier=f"verifier-{n:040d}", state=f"state-{n:020d}"
            )
        if isinstance(effect, OpenAuthorization):
            assert pkce_s256(self.machine.progress.code_verifier or "") == effect.code_challenge
            params = world.server_at(effect.authorization_endpoint).authorize(effect)
            self.redirects.append(params)
            return RedirectReceived.from_query(params)
        if isinstance(effect, ExchangeCode | RequestToken | Refresh):
            try:
                answer = world.server(effect.issuer).token(effect)
            except TokenError as exc:
                if isinstance(effect, Refresh):
                    return RefreshFailed(error=str(exc))
                return TokenRequestFailed(error=str(exc))
            return TokensReceived.from_document(answer, at=self.now)
        if isinstance(effect, StoreTokens):
            self.store[effect.tokens.issuer] = effect.tokens
        elif isinstance(effect, DiscardTokens):
            self.store.pop(effect.issuer, None)
        return None

    # ---- what must always hold ----

    @invariant()
    def never_authorized_by_a_misbehaving_server(self) -> None:
        if self.bad_episode:
            assert self.machine.state is not S.AUTHORIZED
            assert not any(isinstance(e, StoreTokens) for e in self.episode_effects)

    @invariant()
    def bad_metadata_is_never_used(self) -> None:
        if self.world.mode in ("wrong_issuer", "wrong_resource", "no_server") or (
            self.code_flow and self.world.mode == "no_s256"
        ):
            used = (Register, OpenAuthorization, ExchangeCode, RequestToken)
            assert not any(isinstance(e, used) for e in self.episode_effects)

    @invariant()
    def tokens_are_used_the_way_the_server_expects(self) -> None:
        world = self.world
        assert world.reuse_detected == 0, "a rotated refresh token was sent again"
        assert world.code_replays == 0, "a code was redeemed twice"
        assert world.pkce_failures == 0, "a code verifier did not match its challenge"
        assert world.foreign_clients == 0, "a client was shown to another authorization server"

    @invariant()
    def stored_refresh_tokens_are_live(self) -> None:
        if self.pending:
            return
        for issuer, tokens in self.store.items():
            if tokens.refresh_token is not None:
                assert tokens.refresh_token in self.world.server(issuer).live_refresh

    @invariant()
    def access_token_came_from_the_server(self) -> None:
        token = self.machine.access_token
        assert (token is not None) == (
            self.machine.state is S.AUTHORIZED or self.machine.stepping_up
        )
        assert token is None or token in self.world.issued_access

    @invariant()
    def step_ups_stay_in_budget(self) -> None:
        assert 0 <= self.machine.step_ups_left <= self.machine.config.max_step_ups


ExchangeAgainstMisbehavingServers.TestCase.settings = settings(
    HYPOTHESIS_SETTINGS, stateful_step_count=60
)
TestExchangeAgainstMisbehavingServers = ExchangeAgainstMisbehavingServers.TestCase


# ---- named behaviours: helpers ----------------------------------------------------------------


def _refused(machine: OAuthExchange, event: object) -> LocalProtocolError:
    before = machine.progress
    with pytest.raises(LocalProtocolError) as caught:
        machine.handle(event)
    assert machine.progress == before
    assert caught.value.event is event
    return caught.value


def _discovering(config: OAuthClientConfig = CODE, **challenge: Any) -> OAuthExchange:
    machine = OAuthExchange(config)
    machine.handle(Unauthorized(**challenge))
    return machine


def _at_server(config: OAuthClientConfig = CODE, **challenge: Any) -> OAuthExchange:
    machine = _discovering(config, **challenge)
    machine.handle(ResourceMetadataFetched(**_prm()))
    return machine


def _metadata_event(**fields: Any) -> ServerMetadataFetched:
    return ServerMetadataFetched(**_metadata(**fields))


def _registering(config: OAuthClientConfig = CODE, **metadata: Any) -> OAuthExchange:
    machine = _at_server(config, scopes="files:read")
    machine.handle(_metadata_event(**metadata))
    assert machine.state is S.REGISTERING
    return machine


def _preparing(**metadata: Any) -> OAuthExchange:
    machine = _registering(**metadata)
    machine.handle(Registered(client_id="client-1"))
    return machine


def _authorizing(**metadata: Any) -> OAuthExchange:
    machine = _preparing(**metadata)
    machine.handle(AuthorizationPrepared(code_verifier=VERIFIER, state=STATE_A))
    return machine


def _exchanging(**metadata: Any) -> OAuthExchange:
    machine = _authorizing(**metadata)
    machine.handle(RedirectReceived(state=STATE_A, code="code-1"))
    return machine


def _authorized(refresh_token: str | None = "refresh-1") -> OAuthExchange:
    machine = _exchanging()
    machine.handle(
        TokensReceived(access_token="access-1", refresh_token=refresh_token, expires_in=60, at=0)
    )
    assert machine.state is S.AUTHORIZED
    return machine


def _authorized_cc(config: OAuthClientConfig = CC) -> OAuthExchange:
    machine = _at_server(config)
    out = machine.handle(_metadata_event())
    assert machine.state is S.EXCHANGING
    assert isinstance(out[0], RequestToken)
    machine.handle(TokensReceived(access_token="cc-1", expires_in=60))
    return machine


# ---- discovery --------------------------------------------------------------------------------


def test_resource_metadata_candidates_header_then_path_then_root() -> None:
    machine = _discovering(resource_metadata=PRM_HEADER)
    assert machine.progress.candidates == (PRM_HEADER, PRM_PATH, PRM_ROOT)
    assert machine.handle(FetchFailed(url=PRM_HEADER)) == [FetchResourceMetadata(url=PRM_PATH)]
    assert machine.handle(FetchFailed(url=PRM_PATH)) == [FetchResourceMetadata(url=PRM_ROOT)]
    assert machine.state is S.DISCOVERING_RESOURCE


def test_first_fetch_without_a_header_is_the_path_specific_well_known_uri() -> None:
    assert OAuthExchange(CODE).handle(Unauthorized()) == [FetchResourceMetadata(url=PRM_PATH)]


def test_candidates_do_not_repeat_and_a_root_server_has_no_path_candidate() -> None:
    at_root = attrs.evolve(CODE, server_url="https://mcp.example.com/")
    assert _discovering(at_root).progress.candidates == (PRM_ROOT,)
    assert _discovering(resource_metadata=PRM_ROOT).progress.candidates == (PRM_ROOT, PRM_PATH)
    trailing = attrs.evolve(CODE, server_url="https://mcp.example.com/public/mcp/")
    assert _discovering(trailing).progress.candidates[0] == (
        "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp"
    )


def test_server_metadata_candidates_follow_the_spec_order() -> None:
    machine = _discovering()
    out = machine.handle(ResourceMetadataFetched(**_prm(authorization_servers=(TENANT,))))
    assert out == [FetchServerMetadata(url=TENANT_URLS[0])]
    assert machine.progress.candidates == TENANT_URLS
    assert _at_server().progress.candidates == (AS_OAUTH, AS_OIDC)
    machine = _at_server()
    assert machine.handle(FetchFailed(url=AS_OAUTH)) == [FetchServerMetadata(url=AS_OIDC)]
    assert machine.handle(FetchFailed(url=AS_OIDC, reason="404")) == [
        Fail(reason=f"no authorization server metadata for {ISSUER} (404)")
    ]
    assert machine.state is S.FAILED


def test_an_answer_for_another_url_is_refused() -> None:
    machine = _discovering()
    _refused(machine, ResourceMetadataFetched(**_prm(url=PRM_ROOT)))
    _refused(machine, FetchFailed(url=PRM_ROOT))
    machine = _at_server()
    _refused(machine, _metadata_event(url=AS_OIDC))
    _refused(machine, FetchFailed(url=PRM_PATH))


def test_resource_metadata_for_another_server_fails() -> None:
    for resource in (f"{EVIL}/mcp", "https://mcp.example.com:8443/mcp", f"{SERVER_URL}/deeper"):
        machine = _discovering()
        out = machine.handle(ResourceMetadataFetched(**_prm(resource=resource)))
        assert machine.state is S.FAILED
        assert isinstance(out[-1], Fail)
        assert "RFC 9728" in out[-1].reason


def test_resource_metadata_may_name_a_parent_of_the_server() -> None:
    for resource in (ORIGIN, ORIGIN + "/", SERVER_URL, "HTTPS://MCP.example.com:443/mcp"):
        machine = _discovering()
        machine.handle(ResourceMetadataFetched(**_prm(resource=resource)))
        assert machine.state is S.DISCOVERING_SERVER
        assert machine.resource == resource  # the indicator is the resource's own identifier


def test_resource_metadata_without_a_server_fails() -> None:
    machine = _discovering()
    machine.handle(ResourceMetadataFetched(**_prm(authorization_servers=())))
    assert machine.state is S.FAILED
    assert machine.failure is not None
    assert "names no authorization server" in machine.failure


@pytest.mark.parametrize("issuer", [EVIL, ISSUER + "/", "HTTPS://auth.example.com", ""])
def test_metadata_with_another_issuer_is_not_used(issuer: str) -> None:
    machine = _at_server()
    out = machine.handle(_metadata_event(issuer=issuer))
    assert machine.state is S.FAILED
    assert out == [Fail(reason=machine.failure or "")]
    assert "RFC 8414" in out[0].reason
    assert machine.issuer is None


@pytest.mark.parametrize("methods", [None, (), ("plain",), ("s256",)])
def test_authorization_code_refuses_a_server_without_s256(methods: Any) -> None:
    machine = _at_server()
    machine.handle(_metadata_event(code_challenge_methods_supported=methods))
    assert machine.state is S.FAILED
    assert "S256" in (machine.failure or "")


def test_client_credentials_does_not_need_pkce() -> None:
    machine = _at_server(CC)
    machine.handle(_metadata_event(code_challenge_methods_supported=None))
    assert machine.state is S.EXCHANGING


def test_metadata_without_the_endpoints_the_flow_needs_fails() -> None:
    for fields in ({"token_endpoint": None}, {"authorization_endpoint": None}):
        machine = _at_server()
        machine.handle(_metadata_event(**fields))
        assert machine.state is S.FAILED
    machine = _at_server(CC)
    machine.handle(_metadata_event(authorization_endpoint=None))
    assert machine.state is S.EXCHANGING


def test_2025_03_26_fallback_uses_the_origin_then_default_endpoints() -> None:
    machine = _discovering()
    machine.handle(FetchFailed(url=PRM_PATH))
    assert machine.handle(FetchFailed(url=PRM_ROOT)) == [FetchServerMetadata(url=ORIGIN_OAUTH)]
    assert machine.progress.legacy
    assert machine.resource == SERVER_URL
    machine.handle(FetchFailed(url=ORIGIN_OAUTH))
    out = machine.handle(FetchFailed(url=ORIGIN_OIDC))
    assert machine.state is S.REGISTERING
    assert machine.issuer == ORIGIN
    assert out[0] == Register(
        registration_endpoint=f"{ORIGIN}/register",
        issuer=ORIGIN,
        client_name="mcp-core",
        redirect_uris=(REDIRECT,),
        grant_types=("authorization_code", "refresh_token"),
        token_endpoint_auth_method="none",
        scopes=None,
    )
    machine.handle(Registered(client_id="c"))
    (opened,) = machine.handle(AuthorizationPrepared(code_verifier=VERIFIER, state=STATE_A))
    assert isinstance(opened, OpenAuthorization)
    assert opened.url.startswith(f"{ORIGIN}/authorize?")
    (exchange,) = machine.handle(RedirectReceived(state=STATE_A, code="c1"))
    assert isinstance(exchange, ExchangeCode)
    assert exchange.token_endpoint == f"{ORIGIN}/token"


def test_2025_03_26_origin_metadata_must_name_the_origin() -> None:
    machine = _discovering()
    machine.handle(FetchFailed(url=PRM_PATH))
    machine.handle(FetchFailed(url=PRM_ROOT))
    machine.handle(_metadata_event(url=ORIGIN_OAUTH, issuer=ORIGIN))
    assert machine.state is S.REGISTERING
    machine = _discovering()
    machine.handle(FetchFailed(url=PRM_PATH))
    machine.handle(FetchFailed(url=PRM_ROOT))
    machine.handle(_metadata_event(url=ORIGIN_OAUTH, issuer=ISSUER))
    assert machine.state is S.FAILED


def test_without_the_fallback_missing_resource_metadata_fails() -> None:
    machine = _discovering(CODE_NO_LEGACY)
    machine.handle(FetchFailed(url=PRM_PATH))
    out = machine.handle(FetchFailed(url=PRM_ROOT, reason="404"))
    assert out == [Fail(reason="no protected resource metadata found (404)")]


# ---- client identity --------------------------------------------------------------------------


def test_preregistered_client_comes_first() -> None:
    both = attrs.evolve(CODE_PRE, client_metadata_url=CIMD_URL)
    machine = _at_server(both)
    assert machine.handle(_metadata_event(client_id_metadata_document_supported=True)) == [
        PrepareAuthorization()
    ]
    assert machine.progress.client == ClientFacts(
        client_id="pre-1", auth_method="none", issuer=ISSUER, kind="preregistered"
    )


def test_preregistered_client_of_another_issuer_is_not_used() -> None:
    other = attrs.evolve(
        CODE, preregistered=(PreRegisteredClient(client_id="pre-9", issuer=SECOND_ISSUER),)
    )
    machine = _at_server(other)
    machine.handle(_metadata_event())
    assert machine.state is S.REGISTERING


def test_client_id_metadata_document_when_the_server_supports_it() -> None:
    machine = _at_server(CODE_CIMD)
    machine.handle(_metadata_event(client_id_metadata_document_supported=True))
    assert machine.state is S.PREPARING
    assert machine.progress.client is not None
    assert machine.progress.client.client_id == CIMD_URL
    machine = _at_server(CODE_CIMD)
    machine.handle(_metadata_event())
    assert machine.state is S.REGISTERING


def test_no_way_to_identify_the_client_fails() -> None:
    machine = _at_server()
    machine.handle(_metadata_event(registration_endpoint=None))
    assert machine.state is S.FAILED
    assert "no client identity" in (machine.failure or "")


@pytest.mark.parametrize(
    ("grant", "supported", "method"),
    [
        ("authorization_code", None, "none"),
        ("authorization_code", ("client_secret_basic",), "client_secret_basic"),
        ("authorization_code", ("client_secret_post", "none"), "none"),
        ("client_credentials", None, "client_secret_basic"),
        ("client_credentials", ("client_secret_post",), "client_secret_post"),
    ],
)
def test_registration_asks_for_an_auth_method_the_server_supports(
    grant: str, supported: Any, method: str
) -> None:
    config = CODE if grant == "authorization_code" else CC_DYNAMIC
    machine = _at_server(config)
    out = machine.handle(_metadata_event(token_endpoint_auth_methods_supported=supported))
    register = out[0]
    assert isinstance(register, Register)
    assert register.token_endpoint_auth_method == method
    assert register.document()["token_endpoint_auth_method"] == method


def test_registration_document_follows_rfc_7591() -> None:
    register = _at_server(CODE, scopes="files:read").handle(_metadata_event())[0]
    assert isinstance(register, Register)
    assert register.document() == {
        "client_name": "mcp-core",
        "redirect_uris": [REDIRECT],
        "response_types": ["code"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",  # a loopback redirect (RFC 8252 7.3)
        "scope": "files:read",
    }
    register = _at_server(CC_DYNAMIC).handle(_metadata_event())[0]
    assert isinstance(register, Register)
    assert register.document() == {
        "client_name": "mcp-core",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "application_type": "web",
    }
    web = attrs.evolve(register, redirect_uris=("https://app.example/cb",))
    assert web.document()["application_type"] == "web"
    app = attrs.evolve(register, redirect_uris=("com.example.app:/cb", "http://[::1]:5/cb"))
    assert app.document()["application_type"] == "native"


def test_registration_failure_fails() -> None:
    machine = _registering()
    assert machine.handle(RegistrationFailed(reason="invalid_redirect_uri")) == [
        Fail(reason="client registration failed: invalid_redirect_uri")
    ]


# ---- the authorization request and its response -----------------------------------------------


def test_authorization_request_carries_pkce_state_resource_and_scope() -> None:
    machine = _preparing()
    (opened,) = machine.handle(AuthorizationPrepared(code_verifier=VERIFIER, state=STATE_A))
    assert isinstance(opened, OpenAuthorization)
    assert opened.code_challenge == CHALLENGE == pkce_s256(VERIFIER)
    assert opened.params() == {
        "response_type": "code",
        "client_id": "client-1",
        "redirect_uri": REDIRECT,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": STATE_A,
        "scope": "files:read",
        "resource": SERVER_URL,
    }
    assert opened.url.startswith(f"{ISSUER}/authorize?response_type=code&client_id=client-1&")
    with_query = attrs.evolve(opened, authorization_endpoint=f"{ISSUER}/authorize?tenant=1")
    assert with_query.url.startswith(f"{ISSUER}/authorize?tenant=1&response_type=code")


def test_scope_comes_from_the_challenge_then_scopes_supported_else_is_omitted() -> None:
    machine = _discovering(scopes="a b")
    machine.handle(ResourceMetadataFetched(**_prm(scopes_supported=("x",))))
    assert machine.scopes == ("a", "b")
    machine = _discovering()
    machine.handle(ResourceMetadataFetched(**_prm(scopes_supported=("x", "y"))))
    assert machine.scopes == ("x", "y")
    machine = _discovering()
    machine.handle(ResourceMetadataFetched(**_prm()))
    assert machine.scopes is None
    machine.handle(_metadata_event())
    machine.handle(Registered(client_id="c"))
    (opened,) = machine.handle(AuthorizationPrepared(code_verifier=VERIFIER, state=STATE_A))
    assert isinstance(opened, OpenAuthorization)
    assert "scope" not in opened.params()


@pytest.mark.parametrize("state", WRONG_STATES)
def test_redirect_with_another_state_is_refused_and_changes_nothing(state: str | None) -> None:
    machine = _authorizing()
    error = _refused(machine, RedirectReceived(state=state, code="attacker-code"))
    assert "state matches" in str(error)
    _refused(machine, RedirectReceived(state=state, error="access_denied"))
    assert machine.handle(RedirectReceived(state=STATE_A, code="code-1"))[0] == ExchangeCode(
        token_endpoint=f"{ISSUER}/token",
        issuer=ISSUER,
        client_id="client-1",
        auth_method="none",
        code="code-1",
        code_verifier=VERIFIER,
        redirect_uri=REDIRECT,
        resource=SERVER_URL,
    )


def test_state_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = ox.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ox.hmac, "compare_digest", spy)
    machine = _authorizing()
    _refused(machine, RedirectReceived(state=STATE_B, code="c"))
    assert (STATE_A.encode(), STATE_B.encode()) in calls


def test_a_redirect_delivered_twice_is_refused_the_second_time() -> None:
    machine = _authorizing()
    redirect = RedirectReceived(state=STATE_A, code="code-1")
    machine.handle(redirect)
    assert machine.progress.oauth_state is None
    _refused(machine, redirect)
    machine.handle(TokensReceived(access_token="a"))
    _refused(machine, redirect)


def test_an_old_redirect_is_refused_by_a_later_authorization() -> None:
    machine = _authorized()
    machine.handle(InsufficientScope(scopes="files:write"))
    machine.handle(AuthorizationPrepared(code_verifier=VERIFIER_2, state=STATE_B))
    _refused(machine, RedirectReceived(state=STATE_A, code="code-1"))


@pytest.mark.parametrize(
    ("advertised", "iss", "accepted"),
    [
        (True, ISSUER, True),
        (False, None, True),
        (False, ISSUER, True),
        (True, None, False),  # advertised but missing
        (True, EVIL, False),
        (False, EVIL, False),  # not advertised, present and wrong
        (True, ISSUER + "/", False),  # simple string comparison: no normalization
        (True, "HTTPS://auth.example.com", False),
    ],
)
def test_iss_is_checked_per_rfc_9207(advertised: bool, iss: str | None, accepted: bool) -> None:
    machine = _authorizing(authorization_response_iss_parameter_supported=advertised)
    out = machine.handle(RedirectReceived(state=STATE_A, code="code-1", iss=iss))
    if accepted:
        assert machine.state is S.EXCHANGING
        assert isinstance(out[0], ExchangeCode)
    else:
        assert machine.state is S.FAILED
        assert out == [Fail(reason=machine.failure or "")]
        assert "RFC 9207" in out[0].reason


def test_an_error_response_with_the_right_state_fails() -> None:
    machine = _authorizing()
    out = machine.handle(
        RedirectReceived(state=STATE_A, error="access_denied", error_description="no")
    )
    assert out == [Fail(reason="authorization denied: access_denied (no)")]


def test_abandoned_authorization_fails() -> None:
    for machine in (_preparing(), _authorizing()):
        assert machine.handle(AuthorizationAbandoned(reason="timed out")) == [
            Fail(reason="authorization abandoned: timed out")
        ]
        assert machine.progress == OAuthProgress(
            state=S.FAILED, failure="authorization abandoned: timed out"
        )


# ---- the token request --------------------------------------------------------------------------


def test_code_exchange_form_and_client_authentication() -> None:
    effect = ExchangeCode(
        token_endpoint=f"{ISSUER}/token",
        issuer=ISSUER,
        client_id="client-1",
        auth_method="none",
        code="code-1",
        code_verifier=VERIFIER,
        redirect_uri=REDIRECT,
        resource=SERVER_URL,
    )
    assert effect.form() == {
        "grant_type": "authorization_code",
        "code": "code-1",
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        "resource": SERVER_URL,
        "client_id": "client-1",
    }
    assert "client_id" in attrs.evolve(effect, auth_method="client_secret_post").form()
    assert "client_id" not in attrs.evolve(effect, auth_method="client_secret_basic").form()
    assert "client_id" not in attrs.evolve(effect, auth_method="private_key_jwt").form()


def test_tokens_received_are_stored_and_the_verifier_forgotten() -> None:
    machine = _exchanging()
    out = machine.handle(
        TokensReceived(access_token="access-1", refresh_token="refresh-1", expires_in=60, at=100)
    )
    tokens = Tokens(
        issuer=ISSUER,
        access_token="access-1",
        refresh_token="refresh-1",
        expires_at=160.0,
        scopes=("files:read",),
    )
    assert out == [StoreTokens(resource=SERVER_URL, tokens=tokens)]
    assert machine.state is S.AUTHORIZED
    assert machine.access_token == "access-1"
    assert machine.expires_at == 160.0
    assert machine.progress.code_verifier is None
    assert machine.tokens == tokens


def test_a_token_that_is_not_bearer_is_not_used() -> None:
    machine = _exchanging()
    machine.handle(TokensReceived(access_token="a", token_type="DPoP"))
    assert machine.state is S.FAILED
    assert machine.access_token is None


def test_token_request_failure_fails() -> None:
    machine = _exchanging()
    assert machine.handle(TokenRequestFailed(error="invalid_grant")) == [
        Fail(reason="token request failed: invalid_grant")
    ]


# ---- refresh ---------------------------------------------------------------------------------


def test_refresh_uses_the_rotated_token_and_never_the_old_one() -> None:
    machine = _authorized()
    out = machine.handle(AccessTokenExpired())
    assert machine.state is S.REFRESHING
    (refresh,) = out
    assert isinstance(refresh, Refresh)
    assert refresh.form() == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
        "resource": SERVER_URL,
        "client_id": "client-1",
    }
    out = machine.handle(TokensReceived(access_token="access-2", refresh_token="refresh-2", at=9))
    assert isinstance(out[0], StoreTokens)
    assert out[0].tokens.refresh_token == "refresh-2"
    (refresh,) = machine.handle(AccessTokenExpired())
    assert isinstance(refresh, Refresh)
    assert refresh.refresh_token == "refresh-2"
    assert "refresh-1" not in repr(machine.progress.tokens)
    assert machine.progress.tokens is not None
    assert machine.progress.tokens.refresh_token == "refresh-2"


def test_refresh_answer_without_a_refresh_token_keeps_the_old_one() -> None:
    machine = _authorized()
    machine.handle(AccessTokenExpired())
    out = machine.handle(TokensReceived(access_token="access-2"))
    assert isinstance(out[0], StoreTokens)
    assert out[0].tokens.refresh_token == "refresh-1"
    assert out[0].tokens.scopes == ("files:read",)


def test_failed_refresh_discards_the_tokens_and_reauthorizes() -> None:
    machine = _authorized()
    machine.handle(AccessTokenExpired())
    assert machine.handle(RefreshFailed(error="invalid_grant")) == [
        DiscardTokens(issuer=ISSUER),
        PrepareAuthorization(),
    ]
    assert machine.state is S.PREPARING
    assert machine.tokens is None
    assert machine.access_token is None
    assert machine.progress.client == ClientFacts(
        client_id="client-1", auth_method="none", issuer=ISSUER, kind="dynamic"
    )


def test_expiry_without_a_refresh_token_reauthorizes() -> None:
    machine = _authorized(refresh_token=None)
    assert machine.handle(AccessTokenExpired()) == [
        DiscardTokens(issuer=ISSUER),
        PrepareAuthorization(),
    ]


def test_401_with_tokens_rediscovers_then_refreshes_once_then_reauthorizes() -> None:
    machine = _authorized()
    machine.handle(Unauthorized())
    assert machine.state is S.DISCOVERING_RESOURCE
    assert machine.access_token is None  # the server just refused it
    machine.handle(ResourceMetadataFetched(**_prm()))
    (refresh,) = machine.handle(_metadata_event())
    assert isinstance(refresh, Refresh)
    machine.handle(TokensReceived(access_token="access-2", refresh_token="refresh-2"))
    assert machine.tokens is not None
    assert machine.tokens.refreshed_on_unauthorized
    # The refreshed token is refused too: the next 401 authorizes again.
    machine.handle(Unauthorized())
    machine.handle(ResourceMetadataFetched(**_prm()))
    assert machine.handle(_metadata_event()) == [
        DiscardTokens(issuer=ISSUER),
        PrepareAuthorization(),
    ]
    assert machine.progress.client is not None
    assert machine.progress.client.client_id == "client-1"  # same issuer: same client


def test_authorization_server_migration_registers_anew() -> None:
    # SEP-2352: the resource now names another server; the old client and tokens stay away.
    machine = _authorized()
    machine.handle(Unauthorized())
    machine.handle(ResourceMetadataFetched(**_prm(authorization_servers=(SECOND_ISSUER,))))
    url = f"{SECOND_ISSUER}/.well-known/oauth-authorization-server"
    out = machine.handle(
        _metadata_event(
            url=url,
            issuer=SECOND_ISSUER,
            registration_endpoint=f"{SECOND_ISSUER}/register",
        )
    )
    assert out[0] == DiscardTokens(issuer=ISSUER)
    assert isinstance(out[1], Register)
    assert out[1].issuer == SECOND_ISSUER
    assert machine.progress.client is None
    assert machine.tokens is None


# ---- step-up ----------------------------------------------------------------------------------


def _step_up(machine: OAuthExchange, scopes: str, n: int) -> list[Any]:
    out = machine.handle(InsufficientScope(scopes=scopes))
    if machine.state is S.AUTHORIZED:
        return list(out)
    machine.handle(AuthorizationPrepared(code_verifier=VERIFIER_2, state=f"{STATE_B}{n}"))
    machine.handle(RedirectReceived(state=f"{STATE_B}{n}", code=f"code-{n}"))
    machine.handle(TokensReceived(access_token=f"access-step-{n}", refresh_token="refresh-x"))
    return list(out)


def test_step_up_asks_for_the_union_and_keeps_the_tokens_in_use() -> None:
    machine = _authorized()
    assert machine.handle(InsufficientScope(scopes="files:write files:read")) == [
        PrepareAuthorization()
    ]
    assert machine.stepping_up
    assert machine.access_token == "access-1"
    (opened,) = machine.handle(AuthorizationPrepared(code_verifier=VERIFIER_2, state=STATE_B))
    assert isinstance(opened, OpenAuthorization)
    assert opened.scopes == ("files:read", "files:write")
    assert machine.access_token == "access-1"
    machine.handle(RedirectReceived(state=STATE_B, code="code-2"))
    machine.handle(TokensReceived(access_token="access-2"))
    assert machine.access_token == "access-2"
    assert machine.tokens is not None
    assert machine.tokens.refresh_token is None  # a new grant: the old refresh token is gone
    assert machine.step_ups_left == 1


def test_step_up_has_a_retry_limit() -> None:
    # The conformance suite's limit: at most three authorization requests in all.
    machine = _authorized()
    _step_up(machine, "admin", 1)
    _step_up(machine, "admin", 2)
    assert machine.step_ups_left == 0
    out = machine.handle(InsufficientScope(scopes="admin"))
    assert out == [AbandonRequest(reason="insufficient scope after 2 step-up authorizations")]
    assert machine.state is S.AUTHORIZED
    assert machine.access_token == "access-step-2"


def test_a_declined_step_up_returns_to_the_tokens_in_use() -> None:
    for finish in (
        lambda m: m.handle(AuthorizationAbandoned(reason="closed")),
        lambda m: (
            m.handle(AuthorizationPrepared(code_verifier=VERIFIER_2, state=STATE_B)),
            m.handle(RedirectReceived(state=STATE_B, error="access_denied")),
        ),
        lambda m: (
            m.handle(AuthorizationPrepared(code_verifier=VERIFIER_2, state=STATE_B)),
            m.handle(RedirectReceived(state=STATE_B, code="c")),
            m.handle(TokenRequestFailed(error="invalid_grant")),
        ),
    ):
        machine = _authorized()
        machine.handle(InsufficientScope(scopes="files:write"))
        finish(machine)
        assert machine.state is S.AUTHORIZED
        assert machine.access_token == "access-1"
        assert machine.step_ups_left == 1
        assert machine.progress.code_verifier is None


def test_a_mixed_up_step_up_response_fails_and_discards_the_tokens() -> None:
    machine = _authorized()
    machine.handle(InsufficientScope(scopes="files:write"))
    machine.handle(AuthorizationPrepared(code_verifier=VERIFIER_2, state=STATE_B))
    out = machine.handle(RedirectReceived(state=STATE_B, code="c", iss=EVIL))
    assert out[0] == DiscardTokens(issuer=ISSUER)
    assert machine.state is S.FAILED
    assert machine.access_token is None


def test_a_full_authorization_renews_the_step_up_budget() -> None:
    machine = _authorized()
    _step_up(machine, "admin", 1)
    assert machine.step_ups_left == 1
    machine.handle(AccessTokenExpired())
    machine.handle(RefreshFailed(error="invalid_grant"))
    assert machine.step_ups_left == 2


# ---- client_credentials ---------------------------------------------------------------------


def test_client_credentials_with_private_key_jwt() -> None:
    machine = _at_server(CC, scopes="jobs:run")
    (request,) = machine.handle(_metadata_event())
    assert request == RequestToken(
        token_endpoint=f"{ISSUER}/token",
        issuer=ISSUER,
        client_id="svc",
        auth_method="private_key_jwt",
        scopes=("jobs:run",),
        resource=SERVER_URL,
    )
    assert request.form() == {
        "grant_type": "client_credentials",
        "scope": "jobs:run",
        "resource": SERVER_URL,
    }
    machine.handle(TokensReceived(access_token="cc-1"))
    assert machine.access_token == "cc-1"


def test_client_credentials_registered_dynamically_with_a_secret() -> None:
    machine = _registering(CC_DYNAMIC)
    (request,) = machine.handle(
        Registered.from_document({"client_id": "svc-2", "client_secret": "s3cret"})
    )
    assert isinstance(request, RequestToken)
    assert (request.client_id, request.auth_method) == ("svc-2", "client_secret_basic")


def test_client_credentials_asks_again_on_expiry_refresh_failure_and_step_up() -> None:
    machine = _authorized_cc()
    out = machine.handle(AccessTokenExpired())
    assert out[0] == DiscardTokens(issuer=ISSUER)
    assert isinstance(out[1], RequestToken)
    machine.handle(TokensReceived(access_token="cc-2", refresh_token="r"))
    machine.handle(AccessTokenExpired())
    assert machine.state is S.REFRESHING
    out = machine.handle(RefreshFailed(error="invalid_grant"))
    assert isinstance(out[1], RequestToken)
    machine.handle(TokensReceived(access_token="cc-3"))
    (request,) = machine.handle(InsufficientScope(scopes="admin"))
    assert isinstance(request, RequestToken)
    assert request.scopes == ("admin",)
    assert machine.access_token == "cc-3"  # still usable while stepping up
    machine.handle(TokenRequestFailed(error="invalid_scope"))
    assert machine.state is S.AUTHORIZED


def test_client_credentials_never_opens_a_browser() -> None:
    machine = _authorized_cc()
    effects: list[Any] = []
    effects += machine.handle(InsufficientScope(scopes="admin"))
    effects += machine.handle(TokensReceived(access_token="cc-2"))
    effects += machine.handle(AccessTokenExpired())
    assert not any(isinstance(e, PrepareAuthorization | OpenAuthorization) for e in effects)


# ---- storing, signing out, failures --------------------------------------------------------------


def test_store_failure_fails_and_discards() -> None:
    machine = _authorized()
    assert machine.handle(StoreFailed(reason="disk full")) == [
        DiscardTokens(issuer=ISSUER),
        Fail(reason="could not store the tokens: disk full"),
    ]
    assert machine.access_token is None


@pytest.mark.parametrize(
    "make",
    [_discovering, _at_server, _registering, _preparing, _authorizing, _exchanging, _authorized],
)
def test_sign_out_forgets_everything(make: Any) -> None:
    machine = make()
    held = machine.tokens
    out = machine.handle(SignedOut())
    assert out == ([DiscardTokens(issuer=ISSUER)] if held else [])
    assert machine.state is S.IDLE
    assert machine.progress == OAuthProgress()
    _refused(machine, SignedOut())


def test_a_new_401_after_a_failure_starts_from_scratch() -> None:
    machine = _at_server()
    machine.handle(_metadata_event(issuer=EVIL))
    assert machine.state is S.FAILED
    machine.handle(Unauthorized())
    assert machine.progress == OAuthProgress(
        state=S.DISCOVERING_RESOURCE, candidates=(PRM_PATH, PRM_ROOT)
    )


def test_failed_maps_each_effect_to_its_failure_event() -> None:
    machine = _discovering()
    assert machine.failed(FetchResourceMetadata(url=PRM_PATH), "timeout") == [
        FetchResourceMetadata(url=PRM_ROOT)
    ]
    machine = _authorizing()
    opened = OpenAuthorization(
        authorization_endpoint=f"{ISSUER}/authorize",
        client_id="c",
        redirect_uri=REDIRECT,
        code_challenge=CHALLENGE,
        state=STATE_A,
        scopes=None,
        resource=SERVER_URL,
    )
    assert machine.failed(opened, "no browser") == [
        Fail(reason="authorization abandoned: no browser")
    ]
    machine = _authorized()
    (refresh,) = machine.handle(AccessTokenExpired())
    assert machine.failed(refresh, "invalid_grant")[-1] == PrepareAuthorization()
    with pytest.raises(ValueError, match="no failure"):
        machine.failed(Fail(reason="x"), "y")


def test_refusal_names_the_callers_event_and_state() -> None:
    machine = _authorized()
    event = RedirectReceived(state=STATE_A, code="c")
    error = _refused(machine, event)
    assert error.state is S.AUTHORIZED
    assert error.machine == "oauth_exchange"


def test_allows_answers_for_public_event_classes() -> None:
    machine = _authorizing()
    assert machine.allows(RedirectReceived)
    assert machine.allows(AuthorizationAbandoned)
    assert not machine.allows(TokensReceived)
    assert _authorized().allows(InsufficientScope)


# ---- persistence ------------------------------------------------------------------------------

RESTORABLE = [_discovering, _at_server, _registering, _preparing, _authorizing, _exchanging]


@pytest.mark.parametrize("make", [*RESTORABLE, _authorized])
def test_restored_machine_continues_where_it_stood(make: Any) -> None:
    original = make()
    for event_type in EVENTS:
        judged = ox._JUDGED.get(event_type, event_type)
        for sample in samples_of(SAMPLES, judged):
            fields = {f.name: getattr(sample, f.name) for f in attrs.fields(event_type)}
            event = event_type(**fields)
            first = OAuthExchange(CODE, progress=original.progress)
            second = OAuthExchange(CODE, progress=original.progress)
            assert _fire(first, event) == _fire(second, event)
            assert first.progress == second.progress


@pytest.mark.parametrize(
    "fields",
    [
        {"state": S.DISCOVERING_RESOURCE},  # no candidates
        {"state": S.DISCOVERING_RESOURCE, "candidates": (PRM_PATH,), "position": 1},
        {"state": S.IDLE, "candidates": (PRM_PATH,)},
        {"state": S.DISCOVERING_SERVER, "candidates": (AS_OAUTH,), "resource": SERVER_URL},
        {"state": S.REGISTERING, "resource": SERVER_URL},  # no server
        {"state": S.PREPARING, "resource": SERVER_URL, "server": SERVER},  # no client
        {"state": S.AUTHORIZING, "resource": SERVER_URL, "server": SERVER, "client": CLIENT},
        {"state": S.AUTHORIZED, "resource": SERVER_URL, "server": SERVER, "client": CLIENT},
        {
            "state": S.REFRESHING,
            "resource": SERVER_URL,
            "server": SERVER,
            "client": CLIENT,
            "tokens": NO_REFRESH,
        },
        {"state": S.IDLE, "tokens": TOKENS},
        {"state": S.FAILED, "step_ups": 1},
        {"state": S.AUTHORIZED, "failure": "x"},
        {"position": -1},
    ],
)
def test_inconsistent_progress_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|needs"):
        OAuthProgress(**fields)


def test_restore_refuses_progress_beyond_the_config() -> None:
    with pytest.raises(ValueError, match="max_step_ups"):
        OAuthExchange(attrs.evolve(CODE, max_step_ups=0), progress=OK_SPENT.progress)
    with pytest.raises(ValueError, match="grant"):
        OAuthExchange(CC, progress=AUTHING.progress)


# ---- values validate themselves, keep secrets out of reprs, parse documents -------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: AuthorizationPrepared(code_verifier="short", state=STATE_A),
        lambda: AuthorizationPrepared(code_verifier="x" * 129, state=STATE_A),
        lambda: AuthorizationPrepared(code_verifier=" " * 43, state=STATE_A),
        lambda: AuthorizationPrepared(code_verifier=VERIFIER, state="short"),
        lambda: RedirectReceived(state=STATE_A),
        lambda: RedirectReceived(state=STATE_A, code="c", error="e"),
        lambda: RedirectReceived(state=STATE_A, code=""),
        lambda: Unauthorized(resource_metadata="ftp://x/y"),
        lambda: Unauthorized(resource_metadata="https://x/y#frag"),
        lambda: Unauthorized(scopes=['a"b']),
        lambda: ResourceMetadataFetched(**_prm(authorization_servers=("https://a/?q=1",))),
        lambda: ResourceMetadataFetched(**_prm(authorization_servers="https://a")),
        lambda: TokensReceived(access_token=""),
        lambda: TokensReceived(access_token="a", expires_in=-1),
        lambda: TokensReceived(access_token="a", at=float("nan")),
        lambda: Registered(client_id="c", token_endpoint_auth_method="tls_client_auth"),
        lambda: OAuthClientConfig(server_url=SERVER_URL),  # no redirect_uri
        lambda: OAuthClientConfig(server_url="mcp.example.com", redirect_uri=REDIRECT),
        lambda: attrs.evolve(CODE, client_metadata_url="http://client.example.com/m.json"),
        lambda: attrs.evolve(CODE, client_metadata_url="https://client.example.com/"),
        lambda: attrs.evolve(CODE, max_step_ups=-1),
        lambda: attrs.evolve(CODE, grant="implicit"),
        lambda: PreRegisteredClient(client_id=""),
    ],
)
def test_bad_values_are_refused_at_construction(make: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        make()


def test_secrets_stay_out_of_reprs() -> None:
    machine = _exchanging()
    secrets = [VERIFIER, STATE_A, "code-1", "access-1", "refresh-1"]
    values: list[object] = [
        AuthorizationPrepared(code_verifier=VERIFIER, state=STATE_A),
        RedirectReceived(state=STATE_A, code="code-1"),
        TokensReceived(access_token="access-1", refresh_token="refresh-1"),
        machine.handle(TokensReceived(access_token="access-1", refresh_token="refresh-1"))[0],
        machine.progress,
        machine,
        TOKENS,
        Refresh(
            token_endpoint="https://a/t",
            issuer=ISSUER,
            client_id="c",
            auth_method="none",
            refresh_token="refresh-1",
            resource=SERVER_URL,
        ),
        _authorizing().progress,
    ]
    for value in values:
        for secret in secrets:
            assert secret not in repr(value)


def test_documents_become_events() -> None:
    prm = ResourceMetadataFetched.from_document(
        url=PRM_PATH,
        document={"resource": SERVER_URL, "authorization_servers": [ISSUER], "x": 1},
    )
    assert prm == ResourceMetadataFetched(**_prm())
    with pytest.raises(ValueError, match="resource"):
        ResourceMetadataFetched.from_document(url=PRM_PATH, document={})
    metadata = ServerMetadataFetched.from_document(
        url=AS_OAUTH,
        document={
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{ISSUER}/token",
            "code_challenge_methods_supported": ["S256"],
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": True,
        },
    )
    assert metadata.supports_s256
    assert metadata.client_id_metadata_document_supported
    assert metadata.authorization_response_iss_parameter_supported
    for bad in ({}, {"issuer": 3}, {"issuer": ISSUER, "code_challenge_methods_supported": "S256"}):
        with pytest.raises(ValueError):  # noqa: PT011 - any of several messages
            ServerMetadataFetched.from_document(url=AS_OAUTH, document=bad)
    assert Registered.from_document({"client_id": "c"}).token_endpoint_auth_method == "none"
    assert TokensReceived.from_document(
        {"access_token": "a", "token_type": "Bearer", "expires_in": 5, "scope": "x y"}, at=1.0
    ) == TokensReceived(access_token="a", expires_in=5, scopes=("x", "y"), at=1.0)
    with pytest.raises(ValueError, match="access_token"):
        TokensReceived.from_document({"token_type": "Bearer"}, at=0.0)


def test_challenges_and_redirects_parse_leniently() -> None:
    assert Unauthorized.from_challenge(
        {"resource_metadata": PRM_HEADER, "scope": "files:read files:read x"}
    ) == Unauthorized(resource_metadata=PRM_HEADER, scopes=("files:read", "x"))
    assert Unauthorized.from_challenge({"resource_metadata": "not a url", "scope": 'a"b'}) == (
        Unauthorized()
    )
    assert RedirectReceived.from_query({"code": "c", "state": STATE_A}).code == "c"
    assert RedirectReceived.from_query({"code": "c", "error": "e"}).code is None
    assert RedirectReceived.from_query({}).error == "invalid_response"


def test_no_effect_carries_a_client_secret() -> None:
    for effect_type in EFFECTS:
        names = {field.name for field in attrs.fields(effect_type)}
        assert not names & {"client_secret", "private_key", "password", "assertion"}
