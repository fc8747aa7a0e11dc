"""WWW-Authenticate: Bearer challenges (RFC 6750 3, RFC 9728 5.1) and the parser (RFC 9110)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.oauth.challenges import (
    MAX_HEADER_LENGTH,
    BearerChallenge,
    Challenge,
    ChallengeParseError,
    bearer_challenge,
    format_bearer_challenge,
    parse_www_authenticate,
)

PRM = "https://mcp.example/.well-known/oauth-protected-resource/mcp"


def test_401_without_token_carries_only_resource_metadata() -> None:
    header = format_bearer_challenge(BearerChallenge(resource_metadata=PRM))
    assert header == f'Bearer resource_metadata="{PRM}"'


def test_invalid_token_challenge() -> None:
    challenge = BearerChallenge(
        resource_metadata=PRM, error="invalid_token", error_description="The token expired"
    )
    assert format_bearer_challenge(challenge) == (
        f'Bearer resource_metadata="{PRM}", error="invalid_token", '
        'error_description="The token expired"'
    )


def test_insufficient_scope_names_the_scopes_needed() -> None:
    challenge = BearerChallenge(
        resource_metadata=PRM, error="insufficient_scope", scope=("files:read", "files:write")
    )
    assert format_bearer_challenge(challenge).endswith(
        'error="insufficient_scope", scope="files:read files:write"'
    )


def test_bare_bearer() -> None:
    assert format_bearer_challenge(BearerChallenge()) == "Bearer"


def test_realm_with_quotes_is_escaped() -> None:
    header = format_bearer_challenge(BearerChallenge(realm='say "hi" \\ bye'))
    assert header == 'Bearer realm="say \\"hi\\" \\\\ bye"'
    assert bearer_challenge(parse_www_authenticate(header)) == BearerChallenge(
        realm='say "hi" \\ bye'
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"error": 'bad"quote'},
        {"error": ""},
        {"error_description": "new\nline"},
        {"scope": ("two words",)},
        {"scope": ("",)},
        {"scope": ('q"',)},
        {"resource_metadata": "https://x/\r\nSet-Cookie: a=b"},
        {"realm": "caf\u00e9"},
    ],
)
def test_header_injection_and_bad_values_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        BearerChallenge(**fields)  # type: ignore[arg-type]


def test_parse_several_challenges() -> None:
    value = (
        'Basic realm="simple", Newauth realm="apps", type=1, title="Login to \\"apps\\"", '
        'Negotiate, Token abc123==, Bearer resource_metadata="https://a/b", error=invalid_token'
    )
    assert parse_www_authenticate(value) == (
        Challenge(scheme="Basic", params=(("realm", "simple"),)),
        Challenge(
            scheme="Newauth",
            params=(("realm", "apps"), ("type", "1"), ("title", 'Login to "apps"')),
        ),
        Challenge(scheme="Negotiate"),
        Challenge(scheme="Token", token68="abc123=="),
        Challenge(
            scheme="Bearer",
            params=(("resource_metadata", "https://a/b"), ("error", "invalid_token")),
        ),
    )


def test_parse_tolerates_empty_list_elements_and_optional_whitespace() -> None:
    value = ' ,  , Bearer  realm = "x" ,, scope="a b"  , '
    (challenge,) = parse_www_authenticate(value)
    assert challenge.params == (("realm", "x"), ("scope", "a b"))


def test_commas_inside_quoted_strings_do_not_split() -> None:
    (challenge,) = parse_www_authenticate('Bearer error_description="a, b=c, Basic d"')
    assert challenge.param("error_description") == "a, b=c, Basic d"


def test_params_are_looked_up_case_insensitively_and_scheme_too() -> None:
    parsed = parse_www_authenticate('BEARER Resource_Metadata="https://a/b", SCOPE="x"')
    assert bearer_challenge(parsed) == BearerChallenge(
        resource_metadata="https://a/b", scope=("x",)
    )


def test_bearer_challenge_is_none_without_bearer() -> None:
    assert bearer_challenge(parse_www_authenticate('Basic realm="x"')) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        ",",
        "  ",
    ],
)
def test_empty_values_have_no_challenges(value: str) -> None:
    assert parse_www_authenticate(value) == ()


@pytest.mark.parametrize(
    "value",
    [
        'Bearer realm="unterminated',
        'Bearer realm="a" error="b"',  # missing comma
        'Bearer realm="a", realm="b"',  # repeated parameter
        'Bearer realm="a", REALM="b"',  # repeated, case-insensitively
        'Bearer realm="a", =x',
        "Bearer =x",
        'Bearer realm="a\x00"',
        'Bearer realm="a\r\nX: y"',
        'Bearer realm="caf\u00e9"',
        'Bearer realm="a\\',
        '"Bearer"',
        "Bearer\trealm=x",  # the scheme must be followed by a space
        'Bearer realm="x"y',
        "Bearer a b",
        "Bearer abc==x",
        "Bearer, realm=x",
        "=",
        "Bearer realm=a b",
        'Bearer realm="x" ,, "oops"',
    ],
)
def test_malformed_headers_are_refused(value: str) -> None:
    with pytest.raises(ChallengeParseError):
        parse_www_authenticate(value)


def test_oversized_header_is_refused() -> None:
    with pytest.raises(ChallengeParseError):
        parse_www_authenticate('Bearer realm="' + "a" * MAX_HEADER_LENGTH + '"')


def test_non_string_header_is_refused() -> None:
    with pytest.raises(ChallengeParseError):
        parse_www_authenticate(b"Bearer")  # type: ignore[arg-type]


# ---- properties -------------------------------------------------------------------------------

_printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_error_text = _printable.filter(lambda s: '"' not in s and "\\" not in s)
_scope_token = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: c not in '"\\'),
    min_size=1,
    max_size=12,
)

_bearer = st.builds(
    BearerChallenge,
    realm=st.none() | _printable,
    resource_metadata=st.none() | _printable,
    error=st.none() | _error_text.filter(bool),
    error_description=st.none() | _error_text.filter(bool),
    error_uri=st.none() | _printable,
    scope=st.lists(_scope_token, max_size=4).map(tuple),
)


@given(_bearer)
def test_parse_of_format_round_trips(challenge: BearerChallenge) -> None:
    header = format_bearer_challenge(challenge)
    assert bearer_challenge(parse_www_authenticate(header)) == challenge


@given(st.lists(_bearer, min_size=1, max_size=3))
def test_several_formatted_challenges_parse_back_in_order(
    challenges: list[BearerChallenge],
) -> None:
    header = ", ".join(format_bearer_challenge(c) for c in challenges)
    parsed = parse_www_authenticate(header)
    assert len(parsed) == len(challenges)
    assert [bearer_challenge([p]) for p in parsed] == challenges


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_the_parse_error(value: str) -> None:
    with contextlib.suppress(ChallengeParseError):
        parse_www_authenticate(value)
