"""Signing users in with a form: the sign-in page, the session cookie, the `next` rule and the
failure limits, as pure values and functions.

Issue 4 ("the user authentication step is a port so the operator plugs in their login"); the
guide is `docs/authorization-server.md` ("Signing users in"), the ASGI app that uses this is
`mcp_core.adapters.asgi.login.FormLogin`. Pure: no I/O, no clock, no randomness (times and
random values arrive as arguments).

The page is the relay form's (`core.http.relay_form`): the same markup for the operator's
declared `CredentialField`s, the same hidden one-time nonce (`NONCE_FIELD`), the same parsing
rules and the same strict headers (`PAGE_HEADERS`: no-store, a CSP that allows only the page's
own stylesheet and posting to itself, no framing, no referrer); only the heading and the
button say "Sign in".

The session cookie (RFC 6265 4.1) is an HMAC-SHA256-signed value,
`v1.<base64url(subject)>.<expiry, Unix seconds>.<base64url(mac)>`, the MAC taken over the
issuer and the rest of the value, so a value is valid only for the issuer that signed it and
until its expiry. It is checked with `hmac.compare_digest`. A signed value needs no server-side
state (any node holding the key accepts it); the price is that signing out clears the cookie in
the browser but cannot recall a copy (the lifetime bounds it). The cookie is `HttpOnly`,
`SameSite=Lax` (sent on the top-level navigation from a client to `/authorize`, not on
cross-site posts), `Path=<issuer path>` and `Secure` unless the issuer is plain http on a
loopback host (`cookie_secure`).

The form's CSRF nonce is stateless too: `f1.<base64url(random)>.<expiry>.<base64url(mac)>`,
the HMAC-SHA256 taken with the same key over a label of its own, the issuer and the rest of the
value (`sign_form_nonce`, `check_form_nonce`), so it cannot pass for a session cookie nor a
cookie for it. The form carries it and a `SameSite=Strict` cookie holds the same value (a double
submit): any node holding the key accepts a post of a form another node rendered. Nothing
remembers it, so it is not single use: within its lifetime the browser that holds both copies
may post it again. That is enough for what it defends against (login CSRF): a cross-site page
can neither read the form nor make the browser send the Strict cookie, and a replay by the
browser itself proves nothing more than the first post did (the credentials are checked each
time, under the failure limits).

`next` (where to go after signing in) is an open-redirect hazard (RFC 9700 4.11): only a
relative reference whose path is exactly the authorization endpoint's, with an optional query,
is accepted (`safe_next`); an absolute URL, a scheme-relative `//host`, a backslash, a control
character, a fragment or any other path is refused.

`FailureLimiter` counts refused sign-ins per key (a client address, a user name) in a fixed
window and blocks a key that reached its limit until the window ends; it holds at most
`max_keys` keys, evicting the least recently failed.
"""

from __future__ import annotations

import hmac
import re
from collections import OrderedDict
from collections.abc import Mapping
from html import escape
from typing import Final
from urllib.parse import urlsplit

import attrs

from .messages import HttpResponse
from .relay_form import NONCE_FIELD, PAGE_HEADERS, CredentialField, _document, _input
from .sealed import b64url, tag, unb64url

__all__ = [
    "LOOPBACK_NAMES",
    "MAX_NEXT_LENGTH",
    "FailureLimiter",
    "LoginPage",
    "check_form_nonce",
    "cookie_secure",
    "cookie_values",
    "expired_cookie",
    "read_session",
    "render_login",
    "safe_next",
    "session_cookie",
    "sign_form_nonce",
    "sign_session",
]

LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "::1", "localhost"})
# An authorization request's query is capped at 8 KiB by the ASGI adapter; the path adds a bit.
MAX_NEXT_LENGTH: Final = 9 * 1024
MAX_SUBJECT_LENGTH: Final = 512
_VERSION: Final = "v1"
_NONCE_VERSION: Final = "f1"
_NONCE_LABEL: Final = b"mcp-core login form nonce v1\x00"
MAX_NONCE_LENGTH: Final = 256
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


# ---- the page ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LoginPage:
    """The sign-in form as it is to be shown: `action` is where it posts (with `next` in its
    query), `values` the non-secret values to show again after a refusal."""

    server: str
    action: str
    nonce: str = attrs.field(repr=False)
    fields: tuple[CredentialField, ...]
    error: str | None = None
    values: Mapping[str, str] = attrs.field(factory=dict, repr=False)


def render_login(
    page: LoginPage, *, status: int = 200, extra_headers: tuple[tuple[str, str], ...] = ()
) -> HttpResponse:
    """The sign-in page, in the relay form's markup and with its headers."""
    server = escape(page.server)
    body = f"<h1>Sign in to {server}</h1>\n"
    if page.error is not None:
        body += f'<p class="error" id="error" role="alert">{escape(page.error)}</p>\n'
    body += f'<form method="post" action="{escape(page.action, quote=True)}" autocomplete="off">\n'
    body += f'<input type="hidden" name="{NONCE_FIELD}" value="{escape(page.nonce, quote=True)}">\n'
    for field in page.fields:
        body += _input(field, page.values)
    body += '<button type="submit">Sign in</button>\n</form>\n'
    document = _document(f"{page.server}: sign in", body)
    return HttpResponse(status=status, headers=(*PAGE_HEADERS, *extra_headers), body=document)


# ---- where to go next -------------------------------------------------------------------------


def safe_next(value: str | None, authorize_path: str) -> str | None:
    """`value` if it is a same-origin relative reference to `authorize_path` (with an optional
    query), else None. Never an absolute URL, `//host`, another path or a fragment."""
    if not value or len(value) > MAX_NEXT_LENGTH or not value.isascii():
        return None
    if "\\" in value or "#" in value or _CONTROL_OR_SPACE.search(value):
        return None
    if not value.startswith("/") or value.startswith("//"):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or parts.path != authorize_path:
        return None
    return value


# ---- the session cookie -----------------------------------------------------------------------


def _mac(key: bytes, issuer: str, payload: str) -> str:
    return b64url(tag(key, b"", issuer, payload))


def sign_session(key: bytes, issuer: str, subject: str, expires_at: float) -> str:
    """The cookie value for `subject` until `expires_at` (Unix seconds)."""
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise ValueError(f"a subject is 1 to {MAX_SUBJECT_LENGTH} characters")
    payload = f"{_VERSION}.{b64url(subject.encode('utf-8'))}.{int(expires_at)}"
    return f"{payload}.{_mac(key, issuer, payload)}"


def read_session(key: bytes, issuer: str, value: str, now: float) -> str | None:
    """The subject of a cookie value signed with `key` for `issuer` and not expired, else None."""
    parts = value.split(".")
    # ASCII only, as `check_form_nonce` requires: a cookie may carry any latin-1 text.
    if not value.isascii() or len(value) > 2048:
        return None
    if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_mac(key, issuer, payload).encode(), parts[3].encode()):
        return None
    if int(parts[2]) <= now:
        return None
    raw = unb64url(parts[1])
    try:
        subject = raw.decode("utf-8") if raw is not None else None
    except UnicodeDecodeError:
        return None
    return subject or None


# ---- the form nonce ---------------------------------------------------------------------------


def sign_form_nonce(key: bytes, issuer: str, random: bytes, expires_at: float) -> str:
    """A form nonce, valid for `issuer` until `expires_at` (Unix seconds); `random` makes each
    one unpredictable (16 bytes or more)."""
    if len(random) < 16:
        raise ValueError("a form nonce needs at least 16 random bytes")
    payload = f"{_NONCE_VERSION}.{b64url(random)}.{int(expires_at)}"
    return f"{payload}.{b64url(tag(key, _NONCE_LABEL, issuer, payload))}"


def check_form_nonce(key: bytes, issuer: str, value: str, now: float) -> bool:
    """Whether `value` is a form nonce signed with `key` for `issuer` and not expired (the MAC
    compared in constant time)."""
    parts = value.split(".")
    if len(value) > MAX_NONCE_LENGTH or len(parts) != 4 or parts[0] != _NONCE_VERSION:
        return False
    if not parts[2].isascii() or not parts[2].isdigit() or unb64url(parts[1]) is None:
        return False
    mac = unb64url(parts[3])
    payload = ".".join(parts[:3])
    if mac is None or not hmac.compare_digest(tag(key, _NONCE_LABEL, issuer, payload), mac):
        return False
    return int(parts[2]) > now


def cookie_secure(issuer: str) -> bool:
    """Whether the session cookie is `Secure`: always, except for plain http on a loopback host
    (development). Plain http elsewhere is refused: a session cookie would cross the network
    in the clear."""
    parts = urlsplit(issuer)
    if parts.scheme == "https":
        return True
    if parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_NAMES:
        return False
    raise ValueError("the issuer is https, or http on a loopback host (127.0.0.1, ::1, localhost)")


def session_cookie(
    name: str, value: str, *, path: str, max_age: int, secure: bool, same_site: str = "Lax"
) -> str:
    """A `Set-Cookie` value (RFC 6265 4.1): the session (`Lax`), or the form nonce's binding
    (`Strict`)."""
    attributes = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly"]
    attributes.append(f"SameSite={same_site}")
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def expired_cookie(name: str, *, path: str, secure: bool, same_site: str = "Lax") -> str:
    """A `Set-Cookie` value that removes the cookie (RFC 6265 5.3, step 3: Max-Age=0)."""
    attributes = [f"{name}=", f"Path={path}", "Max-Age=0", "HttpOnly", f"SameSite={same_site}"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def cookie_values(header: str | None, name: str) -> list[str]:
    """Every value of the cookie `name` in a `Cookie` header, in order. Several `Cookie`
    header lines arrive joined with ", " (`header_map`), so "," separates pairs too; none of
    this module's values contains one."""
    if not header:
        return []
    out = []
    for pair in re.split(r"[;,]", header):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            out.append(value.strip().strip('"'))
    return out


# ---- failure limits ---------------------------------------------------------------------------


@attrs.define
class _Window:
    started: float
    failures: int


class FailureLimiter:
    """At most `limit` refused attempts per key in a `window` of seconds (a fixed window that
    opens with the key's first failure). Bounded: past `max_keys` keys the least recently
    failed is forgotten."""

    def __init__(self, *, limit: int, window: float, max_keys: int = 10_000) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys are at least 1, window is positive")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until `key` may try again, or None when it may try now."""
        entry = self._windows.get(key)
        if entry is None:
            return None
        ends = entry.started + self.window
        if now >= ends:
            del self._windows[key]
            return None
        return ends - now if entry.failures >= self.limit else None

    def failed(self, key: str, now: float) -> None:
        """Count one refused attempt for `key`."""
        entry = self._windows.get(key)
        if entry is None or now >= entry.started + self.window:
            entry = _Window(started=now, failures=0)
        entry.failures += 1
        self._windows[key] = entry
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """Forget `key`'s failures."""
        self._windows.pop(key, None)
