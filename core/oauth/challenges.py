"""`WWW-Authenticate` challenges: the resource server's Bearer challenge and a strict parser
for the client side.

Formatting (RFC 6750 3, RFC 9728 5.1): `format_bearer_challenge` writes
`Bearer realm="...", resource_metadata="...", error="...", error_description="...",
scope="..."`, every value as a quoted-string. A 401 without a token carries no `error`
(RFC 6750 3.1); `insufficient_scope` (403) names the `scope` needed, for step-up.

Parsing (RFC 9110 11.6.1, 11.2, 5.6.1, 5.6.4; RFC 7235 4.1): `parse_www_authenticate` reads a
header field value holding one or more challenges:

```
challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
auth-param  = token BWS "=" BWS ( token / quoted-string )
quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
```

Comma-separated list elements may be empty. After a comma, `name=` starts another parameter
of the same challenge and a bare token starts a new challenge. It is strict where leniency
would be a risk: parameter names may appear only once per challenge (RFC 9110 11.2), only
ASCII is accepted (no obs-text), control characters and unterminated quoted strings are
errors, and a header longer than `MAX_HEADER_LENGTH` is refused before it is read. Errors
raise `ChallengeParseError`; the caller treats the response as carrying no usable challenge.
`bearer_challenge` picks the Bearer challenge out of the parsed list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from .errors import is_error_text

__all__ = [
    "MAX_HEADER_LENGTH",
    "BearerChallenge",
    "Challenge",
    "ChallengeParseError",
    "bearer_challenge",
    "format_bearer_challenge",
    "parse_www_authenticate",
]

MAX_HEADER_LENGTH = 8192

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"'
_OWS = re.compile(r"[ \t]*")
_SCHEME = re.compile(_TOKEN)
_PARAM = re.compile(rf"({_TOKEN})[ \t]*=[ \t]*({_TOKEN}|{_QUOTED})(?=[ \t]*(?:,|$))")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))")
_QUOTED_PAIR = re.compile(r"\\(.)")
# Values written into a quoted-string: printable ASCII (and space); `"` and `\` get escaped.
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class ChallengeParseError(ValueError):
    """A `WWW-Authenticate` value that does not follow RFC 9110 11.6.1."""


@attrs.frozen(kw_only=True)
class Challenge:
    """One parsed challenge: the scheme as sent, and its parameters or token68."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str | None = None

    def param(self, name: str) -> str | None:
        """The value of parameter `name` (case-insensitive, RFC 9110 11.2), if present."""
        lowered = name.lower()
        return next((v for k, v in self.params if k.lower() == lowered), None)


@attrs.frozen(kw_only=True)
class BearerChallenge:
    """The parameters of a Bearer challenge (RFC 6750 3, RFC 9728 5.1)."""

    realm: str | None = None
    resource_metadata: str | None = None
    error: str | None = None
    error_description: str | None = None
    error_uri: str | None = None
    scope: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        for name in ("realm", "resource_metadata", "error_uri"):
            value = getattr(self, name)
            if value is not None and _PRINTABLE.fullmatch(value) is None:
                raise ValueError(f"{name} must be printable ASCII")
        for name in ("error", "error_description"):
            value = getattr(self, name)
            if value is not None and not (value and is_error_text(value)):
                raise ValueError(f'{name} must be printable ASCII without " or \\ (RFC 6750 3)')
        if not all(_SCOPE_TOKEN.fullmatch(s) for s in self.scope):
            raise ValueError("each scope must be a scope-token (RFC 6749 3.3)")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_bearer_challenge(challenge: BearerChallenge) -> str:
    """The `WWW-Authenticate` value for `challenge` (RFC 6750 3, RFC 9728 5.1)."""
    params = [
        ("realm", challenge.realm),
        ("resource_metadata", challenge.resource_metadata),
        ("error", challenge.error),
        ("error_description", challenge.error_description),
        ("error_uri", challenge.error_uri),
        ("scope", " ".join(challenge.scope) if challenge.scope else None),
    ]
    written = [f"{name}={_quote(value)}" for name, value in params if value is not None]
    return "Bearer " + ", ".join(written) if written else "Bearer"


def _unquote(raw: str) -> str:
    if raw.startswith('"'):
        return _QUOTED_PAIR.sub(lambda m: m.group(1), raw[1:-1])
    return raw


def _skip_list_separators(value: str, pos: int) -> int:
    """Skip OWS and empty list elements (RFC 9110 5.6.1)."""
    while True:
        pos = _OWS.match(value, pos).end()  # type: ignore[union-attr]
        if pos < len(value) and value[pos] == ",":
            pos += 1
            continue
        return pos


def parse_www_authenticate(value: str) -> tuple[Challenge, ...]:
    """Every challenge in a `WWW-Authenticate` field value; raises `ChallengeParseError`."""
    if not isinstance(value, str):
        raise ChallengeParseError("the header value must be a string")
    if len(value) > MAX_HEADER_LENGTH:
        raise ChallengeParseError("WWW-Authenticate value too long")
    if not value.isascii() or re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
        raise ChallengeParseError("control or non-ASCII characters in WWW-Authenticate")
    challenges: list[Challenge] = []
    pos = _skip_list_separators(value, 0)
    while pos < len(value):
        scheme_match = _SCHEME.match(value, pos)
        if scheme_match is None:
            raise ChallengeParseError(f"expected an auth-scheme at offset {pos}")
        scheme = scheme_match.group()
        pos = scheme_match.end()
        after_space = _OWS.match(value, pos).end()  # type: ignore[union-attr]
        if after_space == len(value) or value[after_space] == ",":
            challenges.append(Challenge(scheme=scheme))
            pos = _skip_list_separators(value, after_space)
            continue
        if after_space == pos or value[pos] != " ":
            raise ChallengeParseError(f"expected a space after the scheme at offset {pos}")
        pos = after_space
        params: list[tuple[str, str]] = []
        seen: set[str] = set()
        param = _PARAM.match(value, pos)
        if param is None:
            token68 = _TOKEN68.match(value, pos)
            if token68 is None:
                raise ChallengeParseError(f"expected auth-params or token68 at offset {pos}")
            challenges.append(Challenge(scheme=scheme, token68=token68.group()))
            pos = _skip_list_separators(value, token68.end())
            continue
        while param is not None:
            name = param.group(1)
            if name.lower() in seen:
                raise ChallengeParseError(f"parameter {name!r} repeated in one challenge")
            seen.add(name.lower())
            params.append((name, _unquote(param.group(2))))
            pos = _skip_list_separators(value, param.end())
            param = _PARAM.match(value, pos)
        challenges.append(Challenge(scheme=scheme, params=tuple(params)))
    return tuple(challenges)


def bearer_challenge(challenges: Iterable[Challenge]) -> BearerChallenge | None:
    """The first Bearer challenge (scheme compared case-insensitively) as a `BearerChallenge`.

    Returns None when there is none. Raises `ValueError` if its parameters break RFC 6750 3.
    """
    for challenge in challenges:
        if challenge.scheme.lower() != "bearer" or challenge.token68 is not None:
            continue
        scope = challenge.param("scope")
        return BearerChallenge(
            realm=challenge.param("realm"),
            resource_metadata=challenge.param("resource_metadata"),
            error=challenge.param("error"),
            error_description=challenge.param("error_description"),
            error_uri=challenge.param("error_uri"),
            scope=tuple(scope.split(" ")) if scope else (),
        )
    return None
