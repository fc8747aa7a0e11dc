"""Redirect URIs: what a client may register, and which request matches a registration.

Spec: RFC 6749 3.1.2 (absolute URI, no fragment), OAuth 2.1 draft 2.3.1 and 4.1.3 / RFC 9700
4.1.3 (exact string matching), RFC 8252 7.1 (private-use URI schemes, reverse domain names),
7.3 (loopback redirection: `http` on 127.0.0.1 or [::1], any port at request time) and 8.3
(`localhost` is tolerated here because real MCP clients register it, but only over `http`).

Registration (`check_redirect_uri`) accepts exactly three kinds:

- `https://host[:port]/path[?query]`, a DNS name or IP literal, no userinfo;
- `http://127.0.0.1[:port]/...`, `http://[::1][:port]/...` or `http://localhost[:port]/...`
  (loopback, for native apps);
- a private-use scheme with a dot in it, `com.example.app:/callback` (native apps).

It refuses, with the reason: fragments, userinfo (`user@host`), wildcards (`*`), whitespace,
control and non-ASCII characters, backslashes, dot segments (`/./`, `/../`), percent-encoded
dots, slashes, backslashes or control characters, malformed percent-escapes, upper-case schemes
or hosts (matching is by string, so a registration is canonical from the start), `http` to
anything that is not loopback, well-known dangerous schemes, and anything longer than
`MAX_REDIRECT_URI_LENGTH`.

Matching (`redirect_uri_matches`) is exact string comparison. The one exception (RFC 8252 7.3):
a registered loopback `http` URI matches a requested one that differs only in its port (the
port the native app could bind at run time). Host, scheme, path and query never vary, and the
requested URI must itself pass `check_redirect_uri`.

The standard library's `urllib.parse` is lenient by design (it accepts backslashes, spaces,
`@` in odd places), so this module checks the characters itself first and only then splits.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

from .errors import INVALID_REQUEST, OAuthError

__all__ = [
    "LOOPBACK_HOSTS",
    "MAX_REDIRECT_URI_LENGTH",
    "RedirectKind",
    "RedirectUriError",
    "check_redirect_uri",
    "redirect_uri_matches",
    "select_redirect_uri",
]

MAX_REDIRECT_URI_LENGTH = 2048
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]", "localhost"})

# Schemes that must never be a redirect target even if written with a dot by some trick.
_DANGEROUS_SCHEMES = frozenset(
    {"javascript", "data", "vbscript", "file", "about", "blob", "filesystem", "ftp", "ws", "wss"}
)
# RFC 3986 characters that may appear literally, minus "\\" and "#" (refused) and "*".
_ALLOWED = re.compile(r"[A-Za-z0-9\-._~:/?\[\]@!$&'()+,;=%]+")
_SCHEME = re.compile(r"[a-z][a-z0-9+\-.]*")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PERCENT = re.compile(r"%(?P<hex>.{0,2})")
# Encoded bytes that would change the meaning of a path after decoding.
_FORBIDDEN_ENCODED = frozenset(
    {0x2E, 0x2F, 0x5C, 0x25, 0x23, 0x3F, 0x40} | set(range(0x20)) | {0x7F}
)


class RedirectKind(enum.Enum):
    """The three kinds of redirect URI a client may register."""

    HTTPS = "https"
    LOOPBACK = "loopback"
    PRIVATE_USE = "private_use"


class RedirectUriError(ValueError):
    """A redirect URI that may not be registered or used; the message says why."""


def _refuse(reason: str) -> RedirectUriError:
    return RedirectUriError(reason)


def _check_percent_escapes(uri: str) -> None:
    for match in _PERCENT.finditer(uri):
        digits = match.group("hex")
        if len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise _refuse("malformed percent-escape")
        if int(digits, 16) in _FORBIDDEN_ENCODED:
            raise _refuse(f"percent-encoded %{digits.upper()} is not allowed")


def _check_path(path: str) -> None:
    if any(segment in {".", ".."} for segment in path.split("/")):
        raise _refuse("dot segments are not allowed in the path")


def _check_host(host: str) -> None:
    """A lower-case DNS name or an IP literal (IPv6 in brackets)."""
    if host.startswith("["):
        if not host.endswith("]"):
            raise _refuse("unterminated IPv6 literal")
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _refuse("invalid IPv6 literal") from None
        if f"[{address.compressed}]" != host:
            raise _refuse("IPv6 literal must be in its canonical compressed form")
        return
    if not host:
        raise _refuse("missing host")
    if host != host.lower():
        raise _refuse("host must be lower case")
    if len(host) > 253:
        raise _refuse("host name too long")
    labels = host.split(".")
    # WHATWG URL parsers read a host whose last label is numeric (or 0x...) as an IPv4 address
    # ("0x7f.1" is 127.0.0.1), so such a host must be a plain dotted quad or nothing.
    if _NUMERIC_LABEL.fullmatch(labels[-1]) or all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _refuse("invalid IPv4 address") from None
        return
    if not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise _refuse("invalid host name")


def _split_authority(netloc: str) -> tuple[str, str | None]:
    """(host, port or None) from an authority without userinfo; refuses a bad port."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _refuse("unterminated IPv6 literal")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
    else:
        host, colon, port_part = netloc.partition(":")
        rest = colon + port_part
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].isdigit() or not rest[1:].isascii():
        raise _refuse("invalid port")
    port = rest[1:]
    if len(port) > 5 or not 0 < int(port) < 65536 or port.startswith("0"):
        raise _refuse("port out of range")
    return host, port


def _split(uri: str) -> SplitResult:
    if not isinstance(uri, str):
        raise _refuse("a redirect URI must be a string")
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise _refuse("redirect URI too long")
    if "#" in uri:
        raise _refuse("a redirect URI must not contain a fragment")
    if "*" in uri:
        raise _refuse("wildcards are not allowed")
    if _ALLOWED.fullmatch(uri) is None:
        raise _refuse("redirect URI holds characters outside RFC 3986 (spaces, \\, non-ASCII, ...)")
    _check_percent_escapes(uri)
    colon = uri.find(":")
    if colon <= 0 or _SCHEME.fullmatch(uri[:colon]) is None:
        if colon > 0 and _SCHEME.fullmatch(uri[:colon].lower()):
            raise _refuse("scheme must be lower case")
        raise _refuse("a redirect URI must be absolute (scheme:...)")
    try:
        return urlsplit(uri)
    except ValueError:  # e.g. an unbalanced or invalid "[...]" host
        raise _refuse("malformed authority") from None


def check_redirect_uri(uri: str) -> RedirectKind:
    """The kind of `uri` if a client may register it; raises `RedirectUriError` otherwise."""
    parts = _split(uri)
    scheme = parts.scheme
    if "@" in parts.netloc:
        raise _refuse("userinfo (user@host) is not allowed")
    if scheme in {"https", "http"}:
        if not uri.startswith(f"{scheme}://"):
            raise _refuse("an http(s) redirect URI needs an authority (scheme://host)")
        host, _port = _split_authority(parts.netloc)
        _check_host(host)
        _check_path(parts.path)
        if "@" in parts.path or "@" in parts.query:
            # Parsers disagree about where an authority ends; '@' anywhere invites that.
            raise _refuse("'@' is not allowed in a redirect URI")
        if scheme == "https":
            return RedirectKind.HTTPS
        if host not in LOOPBACK_HOSTS:
            raise _refuse("http is only allowed to a loopback host (127.0.0.1, [::1], localhost)")
        return RedirectKind.LOOPBACK
    if scheme in _DANGEROUS_SCHEMES or "." not in scheme:
        raise _refuse(
            "a private-use scheme must be a reverse domain name with a dot (com.example.app)"
        )
    if parts.netloc:
        host, _port = _split_authority(parts.netloc)
        _check_host(host)
    if not parts.path and not parts.netloc:
        raise _refuse("a private-use redirect URI needs a path (com.example.app:/callback)")
    _check_path(parts.path)
    return RedirectKind.PRIVATE_USE


def _without_port(uri: str) -> str | None:
    """`uri` with the port removed, if it is a loopback http URI; else None."""
    try:
        if check_redirect_uri(uri) is not RedirectKind.LOOPBACK:
            return None
    except RedirectUriError:
        return None
    parts = urlsplit(uri)
    host, _port = _split_authority(parts.netloc)
    rest = uri[len("http://") + len(parts.netloc) :]
    return f"http://{host}{rest}"


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Whether `requested` (from /authorize or /token) matches the `registered` URI.

    Exact string equality, except that a loopback `http` registration matches a loopback
    request that differs only in port (RFC 8252 7.3). The requested URI must be valid itself.
    """
    try:
        check_redirect_uri(requested)
    except RedirectUriError:
        return False
    if registered == requested:
        return True
    registered_loopback = _without_port(registered)
    return registered_loopback is not None and registered_loopback == _without_port(requested)


def select_redirect_uri(registered: Sequence[str], requested: str | None) -> str:
    """The redirect URI to use for an authorization request (RFC 6749 3.1.2.3, 4.1.1).

    With `requested`, it must match one registration. Without one, the client must have exactly
    one registered URI. Raises `OAuthError(invalid_request)`: the caller must then show the error
    to the user and never redirect (RFC 6749 4.1.2.1).
    """
    if requested is None:
        if len(registered) == 1:
            return registered[0]
        raise OAuthError(INVALID_REQUEST, "redirect_uri is required")
    if any(redirect_uri_matches(candidate, requested) for candidate in registered):
        return requested
    raise OAuthError(INVALID_REQUEST, "redirect_uri does not match a registered redirect URI")
