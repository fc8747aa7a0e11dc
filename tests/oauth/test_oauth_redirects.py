"""Redirect URI registration and matching (RFC 6749 3.1.2, RFC 8252 7.1/7.3, RFC 9700 4.1)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.oauth.errors import INVALID_REQUEST, OAuthError
from mcp_core.core.oauth.redirects import (
    MAX_REDIRECT_URI_LENGTH,
    RedirectKind,
    RedirectUriError,
    check_redirect_uri,
    redirect_uri_matches,
    select_redirect_uri,
)


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("https://app.example/callback", RedirectKind.HTTPS),
        ("https://app.example:8443/cb?x=1&y=2", RedirectKind.HTTPS),
        ("https://app.example", RedirectKind.HTTPS),
        ("https://192.0.2.1/cb", RedirectKind.HTTPS),
        ("https://[2001:db8::1]/cb", RedirectKind.HTTPS),
        ("https://app.example/a%20b", RedirectKind.HTTPS),
        ("http://127.0.0.1/callback", RedirectKind.LOOPBACK),
        ("http://127.0.0.1:53682/callback", RedirectKind.LOOPBACK),
        ("http://[::1]:8080/cb", RedirectKind.LOOPBACK),
        ("http://localhost:3000/oauth/callback", RedirectKind.LOOPBACK),
        ("https://localhost/cb", RedirectKind.HTTPS),
        ("com.example.app:/oauth2redirect/provider", RedirectKind.PRIVATE_USE),
        ("com.example.app://callback", RedirectKind.PRIVATE_USE),
    ],
)
def test_valid_redirect_uris_are_accepted_with_their_kind(uri: str, kind: RedirectKind) -> None:
    assert check_redirect_uri(uri) is kind


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "/callback",  # relative
        "app.example/callback",  # relative
        "//app.example/callback",  # scheme-relative
        "https://app.example/cb#frag",
        "https://app.example/cb#",
        "https://user@app.example/cb",
        "https://user:pass@app.example/cb",
        "https://app.example@evil.example/cb",
        "http://127.0.0.1@evil.example/cb",
        "http://127.0.0.1:80@evil.example/cb",
        "https://*.example/cb",
        "https://app.example/*",
        "https://app.example/cb?x=*",
        "http://app.example/cb",  # http to a non-loopback host
        "http://127.0.0.2/cb",  # only the three named loopback hosts
        "http://0.0.0.0/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://localhost.evil.example/cb",
        "http://127.0.0.1.nip.io/cb",
        "https://app.example/../admin",
        "https://app.example/cb/./x",
        "https://app.example/cb/..",
        "https://app.example/%2e%2e/admin",
        "https://app.example/%2E%2E/admin",
        "https://app.example/cb%2fx",
        "https://app.example/cb%5cx",
        "https://app.example/cb%00",
        "https://app.example/cb%0d%0a",
        "https://app.example/cb%23frag",
        "https://app.example/cb%40evil",
        "https://app.example/cb%",
        "https://app.example/cb%zz",
        "https://app.example/cb%2",
        "https://app.example\\@evil.example/",
        "https://app.example/c b",
        "https://app.example/cb\n",
        "https://app.example/cb\t",
        "https://app.example/c\x00b",
        "https://\u0430pp.example/cb",  # Cyrillic a
        "https://app.example/caf\u00e9",
        "HTTPS://app.example/cb",
        "Https://app.example/cb",
        "https://APP.example/cb",
        "https://app.example:0/cb",
        "https://app.example:65536/cb",
        "https://app.example:/cb",
        "https://app.example:08080/cb",
        "https://app.example:http/cb",
        "https://app.example:+80/cb",
        "https:///cb",
        "https:app.example/cb",
        "https://[::1/cb",
        "https://[0:0:0:0:0:0:0:1]/cb",  # not canonical
        "https://[zzz]/cb",
        "https://256.1.1.1/cb",
        "https://0x7f.0.0.1/cb",  # hexadecimal IPv4, 127.0.0.1 to a browser
        "https://0x7f000001/cb",
        "https://2130706433/cb",  # 127.0.0.1 as one number
        "https://0177.0.0.1/cb",  # octal
        "https://127.1/cb",
        "https://evil.example.1/cb",
        "http://127.1/cb",
        "https://-bad.example/cb",
        "https://bad_host.example/cb",
        "javascript:alert(1)",
        "javascript://app.example/%0aalert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "vbscript:x",
        "myapp:/callback",  # private-use without a dot
        "com.example.app:",
        "com.example.app://user@host/cb",
        "com.example.app:/../x",
        "https://app.example/" + "a" * MAX_REDIRECT_URI_LENGTH,
    ],
)
def test_hostile_or_malformed_redirect_uris_are_refused(uri: str) -> None:
    with pytest.raises(RedirectUriError):
        check_redirect_uri(uri)


def test_non_string_redirect_uri_is_refused() -> None:
    with pytest.raises(RedirectUriError):
        check_redirect_uri(b"https://app.example/cb")  # type: ignore[arg-type]


REGISTERED = "https://app.example/callback"


@pytest.mark.parametrize(
    "requested",
    [
        "https://app.example/callback/",  # trailing slash
        "https://app.example/Callback",  # case of the path
        "https://APP.example/callback",  # case of the host
        "HTTPS://app.example/callback",  # case of the scheme
        "https://app.example:443/callback",  # explicit default port
        "https://app.example:8443/callback",  # other port on a non-loopback host
        "https://app.example/callback?x=1",  # added query
        "https://app.example/callback#x",  # fragment
        "https://app.example/callback/../callback",  # traversal back to the same path
        "https://app.example/%63allback",  # encoded character
        "https://app.example/callbackx",
        "https://app.example/callbac",
        "https://app.example.evil.example/callback",
        "https://evil.example/callback",
        "https://user@app.example/callback",
        "https://app.example@evil.example/callback",
        "http://app.example/callback",
        "https://app.example//callback",
        "https://app.example/callback ",
        " https://app.example/callback",
    ],
)
def test_requested_uri_must_match_registration_exactly(requested: str) -> None:
    assert not redirect_uri_matches(REGISTERED, requested)


def test_identical_uri_matches() -> None:
    assert redirect_uri_matches(REGISTERED, REGISTERED)
    assert redirect_uri_matches("com.example.app:/cb", "com.example.app:/cb")


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:53682/callback"),
        ("http://127.0.0.1:1234/callback", "http://127.0.0.1:5678/callback"),
        ("http://127.0.0.1:1234/callback", "http://127.0.0.1/callback"),
        ("http://[::1]/cb?x=1", "http://[::1]:9000/cb?x=1"),
        ("http://localhost:3000/cb", "http://localhost:41000/cb"),
    ],
)
def test_loopback_redirect_may_vary_only_in_port(registered: str, requested: str) -> None:
    assert redirect_uri_matches(registered, requested)


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:5000/other"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:5000/callback/"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:5000/callback?x=1"),
        ("http://127.0.0.1/callback", "http://[::1]:5000/callback"),
        ("http://127.0.0.1/callback", "http://localhost:5000/callback"),
        ("http://localhost/callback", "http://127.0.0.1:5000/callback"),
        ("http://127.0.0.1/callback", "https://127.0.0.1:5000/callback"),
        ("https://127.0.0.1/callback", "https://127.0.0.1:5000/callback"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:0/callback"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:99999/callback"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:5000@evil.example/callback"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:5000/callback#f"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:5000/../callback"),
        ("http://127.0.0.1/Callback", "http://127.0.0.1:5000/callback"),
    ],
)
def test_loopback_redirect_never_varies_in_anything_else(registered: str, requested: str) -> None:
    assert not redirect_uri_matches(registered, requested)


def test_invalid_registration_matches_nothing_even_itself() -> None:
    bad = "https://app.example/cb#frag"
    assert not redirect_uri_matches(bad, bad)


def test_select_redirect_uri_uses_the_only_registration_when_omitted() -> None:
    assert select_redirect_uri([REGISTERED], None) == REGISTERED


def test_select_redirect_uri_requires_one_when_several_are_registered() -> None:
    with pytest.raises(OAuthError) as info:
        select_redirect_uri([REGISTERED, "https://app.example/other"], None)
    assert info.value.error == INVALID_REQUEST


def test_select_redirect_uri_refuses_a_non_matching_request() -> None:
    with pytest.raises(OAuthError) as info:
        select_redirect_uri([REGISTERED], "https://evil.example/callback")
    assert info.value.error == INVALID_REQUEST


def test_select_redirect_uri_returns_the_requested_loopback_port() -> None:
    got = select_redirect_uri(["http://127.0.0.1/cb"], "http://127.0.0.1:4242/cb")
    assert got == "http://127.0.0.1:4242/cb"


# ---- properties -------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
_segment = st.from_regex(r"[A-Za-z0-9_~-]{1,8}", fullmatch=True)
_host = st.lists(_label, min_size=2, max_size=3).map(".".join)
_path = st.lists(_segment, max_size=3).map(lambda parts: "/" + "/".join(parts))
_port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
_query = st.one_of(st.just(""), st.from_regex(r"\?[a-z]{1,5}=[a-z0-9]{0,5}", fullmatch=True))
_https_uri = st.builds(lambda h, p, pa, q: f"https://{h}{p}{pa}{q}", _host, _port, _path, _query)


@given(_https_uri)
def test_generated_https_uris_are_valid(uri: str) -> None:
    assert check_redirect_uri(uri) is RedirectKind.HTTPS


@given(_https_uri, _https_uri)
def test_matching_is_exact_for_non_loopback_uris(registered: str, requested: str) -> None:
    assert redirect_uri_matches(registered, requested) == (registered == requested)


@given(_https_uri, st.sampled_from(["/", "#", "?z=1", "X", "%41", ":1"]))
def test_any_change_to_a_non_loopback_uri_breaks_the_match(registered: str, suffix: str) -> None:
    assert not redirect_uri_matches(registered, registered + suffix)


_loopback_host = st.sampled_from(["127.0.0.1", "[::1]", "localhost"])


@given(_loopback_host, _port, _port, _path, _path)
def test_loopback_matches_iff_only_the_port_differs(
    host: str, port_a: str, port_b: str, path_a: str, path_b: str
) -> None:
    registered = f"http://{host}{port_a}{path_a}"
    requested = f"http://{host}{port_b}{path_b}"
    assert redirect_uri_matches(registered, requested) == (path_a == path_b)


@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes_the_validator(text: str) -> None:
    with contextlib.suppress(RedirectUriError):
        check_redirect_uri(text)
