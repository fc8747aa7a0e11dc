"""A sign-in form for the built-in authorization server: `FormLogin`, an ASGI app that is also
its `UserAuthenticator`.

Issue 4 ("the user authentication step is a port so the operator plugs in their login"); the
guide is `docs/authorization-server.md` ("Signing users in"). The page, the cookie format, the
`next` rule and the failure limits are pure (`mcp_core.core.http.login`); this module carries
requests to them and keeps the little state a sign-in needs.

Routes, relative to the issuer's path:
- `GET /login?next=<path>`: the relay form's markup with the operator's fields, a fresh
  signed nonce in the form (`core.http.login.sign_form_nonce`: HMAC-SHA256 under the key, with
  an expiry `form_ttl` away) and the same nonce in a `SameSite=Strict` cookie scoped to
  `/login`. A post must carry both, equal, with a MAC that verifies and an expiry not passed:
  a cross-site page can neither read the form's nonce nor make the browser send the cookie, so
  it can neither post as the user nor sign the user in as someone else (login CSRF). Every
  answer that shows the form again sets a fresh nonce, and success clears the cookie. Nothing
  is remembered, so any node holding the key accepts a form another node rendered; the price
  is that a nonce is not single use within its lifetime, which the double submit makes
  harmless (only the browser holding both copies can post it, and its credentials are
  checked every time).
- `POST /login?next=<path>`: the fields are checked as the relay form checks them, then the
  operator's `verify(values)` decides (it returns the subject or None). Before it is called,
  the client address and the user name (the `username_field`'s value, case-folded) must be
  under their failure limits (`FailureLimiter`); a refusal counts against both, a success
  clears the user name's count. A refusal shows the form again with a new nonce and no
  session cookie; a blocked attempt is answered 429 with `Retry-After`. Success sets the
  session cookie (`core.http.login`: HMAC-signed, `HttpOnly`, `SameSite=Lax`,
  `Path=<issuer path>`, `Secure` unless the issuer is loopback http, `Max-Age=session_ttl`)
  and answers 303 to `next`; without `next` it says "signed in".
- `GET` or `POST /logout`: clears the session cookie.

`next` must be a relative reference to the issuer's `/authorize` (`safe_next`); anything else
is refused with 400, never redirected to. `AuthorizationApp` sends a user with no session
here through `login_url(next)` (the `LoginRedirector` protocol), and `create_secured_app(...,
authenticator=login)` mounts `paths` next to the authorization server's routes.

State: the HMAC key, which signs both the session cookie and the form nonces (given, or drawn
from the `Random` port when the app is built: sessions and forms then end with the process,
and each node has its own; give the same key to every node), and the failure counters (at most
`max_tracked` keys each, per process). Time comes from the `Clock` port.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final
from urllib.parse import parse_qsl, quote, urlsplit

import attrs

from mcp_core.core.http.login import (
    FailureLimiter,
    LoginPage,
    check_form_nonce,
    cookie_secure,
    cookie_values,
    expired_cookie,
    read_session,
    render_login,
    safe_next,
    session_cookie,
    sign_form_nonce,
    sign_session,
)
from mcp_core.core.http.messages import HttpResponse
from mcp_core.core.http.relay_form import (
    MAX_FORM_BYTES,
    CredentialField,
    FormError,
    Notice,
    check_fields,
    field_problems,
    origin_headers,
    parse_form,
    read_submission,
    render_notice,
)
from mcp_core.core.http.security import OriginPolicy
from mcp_core.core.services.authorization_server import RequestFacts
from mcp_core.ports.system import Clock, Random

from ._plumbing import BodyTooLarge, Receive, Scope, Send, header_map, read_body, respond

__all__ = ["DEFAULT_FIELDS", "FormLogin", "Verify"]

# The operator's check: the submitted values (one per declared field) -> the subject, or None.
Verify = Callable[[Mapping[str, str]], Awaitable[str | None]]
AddressOf = Callable[[Scope], str | None]

DEFAULT_FIELDS: Final = (
    CredentialField(name="username", label="User name", secret=False),
    CredentialField(name="password", label="Password"),
)
_REFUSED: Final = "The user name or password is not right."


def _client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class FormLogin:
    """The sign-in form and the session it opens (see the module docstring)."""

    def __init__(
        self,
        issuer: str,
        verify: Verify,
        *,
        clock: Clock,
        random: Random,
        fields: Sequence[CredentialField] = DEFAULT_FIELDS,
        username_field: str | None = None,
        display_name: str = "this server",
        key: bytes | None = None,
        session_ttl: float = 8 * 3600.0,
        cookie_name: str = "mcp_core_session",
        form_ttl: float = 600.0,
        address_failures: tuple[int, float] = (20, 900.0),
        username_failures: tuple[int, float] = (5, 900.0),
        max_tracked: int = 10_000,
        address_of: AddressOf = _client_address,
        origin_policy: OriginPolicy | None = None,
    ) -> None:
        if session_ttl <= 0 or form_ttl <= 0:
            raise ValueError("session_ttl and form_ttl must be positive")
        if key is not None and len(key) < 32:
            raise ValueError("the session key is at least 32 bytes")
        self.fields = check_fields(fields)
        names = [field.name for field in self.fields]
        if username_field is None:
            username_field = next((f.name for f in self.fields if not f.secret), None)
        elif username_field not in names:
            raise ValueError(f"username_field {username_field!r} is not a declared field")
        self.username_field = username_field
        self.issuer = issuer
        self.secure = cookie_secure(issuer)  # raises ValueError for http off loopback
        self.verify = verify
        self.clock = clock
        self.random = random
        self.display_name = display_name
        self._key = key if key is not None else random.token(32)
        self.session_ttl = session_ttl
        self.cookie_name = cookie_name
        self.form_ttl = form_ttl
        self.address_of = address_of
        self.origin_policy = origin_policy if origin_policy is not None else OriginPolicy()
        self._addresses = FailureLimiter(
            limit=address_failures[0], window=address_failures[1], max_keys=max_tracked
        )
        self._usernames = FailureLimiter(
            limit=username_failures[0], window=username_failures[1], max_keys=max_tracked
        )
        base = urlsplit(issuer).path.rstrip("/")
        self.cookie_path = base or "/"
        self.login_path = f"{base}/login"
        self.logout_path = f"{base}/logout"
        self.authorize_path = f"{base}/authorize"
        self._nonce_cookie = f"{cookie_name}_form"

    def __repr__(self) -> str:
        return f"FormLogin(issuer={self.issuer!r})"

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths this app answers, for mounting at exact paths."""
        return (self.login_path, self.logout_path)

    # ---- the ports ------------------------------------------------------------------------

    async def authenticate(self, request: RequestFacts) -> str | None:
        """`UserAuthenticator`: the subject of a valid, unexpired session cookie, or None."""
        now = self.clock.wall()
        for value in cookie_values(request.headers.get("cookie"), self.cookie_name):
            subject = read_session(self._key, self.issuer, value, now)
            if subject is not None:
                return subject
        return None

    def login_url(self, next: str) -> str:
        """`LoginRedirector`: the sign-in page that returns to `next` afterwards."""
        return f"{self.login_path}?next={quote(next, safe='')}"

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await respond(send, await self._handle(scope, receive))

    async def _handle(self, scope: Scope, receive: Receive) -> HttpResponse:
        # Like `AuthorizationApp`: the issuer's path is the public path, matched as it arrives.
        path: str = scope["path"].rstrip("/") or "/"
        headers = header_map(scope.get("headers", []))
        refusal = self.origin_policy.check(origin_headers(headers))
        if refusal is not None:
            message = "This page refuses requests from that host or origin."
            return self._notice(refusal.status, "Refused", message)
        method = scope.get("method", "GET")
        if path == self.logout_path:
            if method not in ("GET", "POST"):
                return self._not_allowed()
            cleared = expired_cookie(self.cookie_name, path=self.cookie_path, secure=self.secure)
            response = self._notice(200, "Signed out", "You are signed out.", kind="success")
            return attrs.evolve(response, headers=(*response.headers, ("set-cookie", cleared)))
        if path != self.login_path:
            return self._notice(404, "Not found", "There is no page here.")
        raw_query = scope.get("query_string", b"").decode("latin-1")
        next_path: str | None = None
        wanted = _query_value(raw_query, "next")
        if wanted is not None:
            next_path = safe_next(wanted, self.authorize_path)
            if next_path is None:
                message = "This sign-in link does not lead back to this server's authorization."
                return self._notice(400, "Invalid link", message)
        action = self.login_path
        if next_path is not None:
            action += f"?next={quote(next_path, safe='')}"
        if method == "GET":
            return self._form(action)
        if method != "POST":
            return self._not_allowed()
        try:
            body = await read_body(headers, receive, MAX_FORM_BYTES)
            submission = read_submission(self.fields, parse_form(body, headers.get("content-type")))
        except BodyTooLarge:
            return self._notice(413, "Too large", "The form data is too large.")
        except FormError as error:
            return self._notice(error.status, "Not accepted", error.message)
        if not self._check_nonce(submission.nonce, headers.get("cookie")):
            return self._form(action, error="This form has expired; please try again.", status=400)
        shown = {f.name: submission.values[f.name] for f in self.fields if not f.secret}
        problems = field_problems(self.fields, submission.values)
        if problems:
            return self._form(action, error="; ".join(problems) + ".", values=shown, status=400)
        now = self.clock.wall()
        address = f"address:{self.address_of(scope) or 'unknown'}"
        user = None
        if self.username_field is not None:
            user = f"user:{submission.values[self.username_field].casefold()}"
        waits = [self._addresses.retry_after(address, now)]
        if user is not None:
            waits.append(self._usernames.retry_after(user, now))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            notice = Notice(
                server=self.display_name,
                kind="error",
                heading="Too many attempts",
                message="Signing in is paused after several refused attempts.",
                retry_after=wait,
            )
            return render_notice(notice, status=429)
        subject = await self.verify(dict(submission.values))
        if not subject:
            self._addresses.failed(address, now)
            if user is not None:
                self._usernames.failed(user, now)
            return self._form(action, error=_REFUSED, values=shown)
        if user is not None:
            self._usernames.succeeded(user)
        cookie = session_cookie(
            self.cookie_name,
            sign_session(self._key, self.issuer, subject, now + self.session_ttl),
            path=self.cookie_path,
            max_age=int(self.session_ttl),
            secure=self.secure,
        )
        spent = self._clear_nonce_cookie()
        if next_path is None:
            response = self._notice(200, "Signed in", "You are signed in.", kind="success")
            return attrs.evolve(
                response, headers=(*response.headers, ("set-cookie", cookie), spent)
            )
        headers_out = (
            ("location", next_path),
            ("cache-control", "no-store"),
            ("set-cookie", cookie),
            spent,
        )
        return HttpResponse(status=303, headers=headers_out, body=b"")

    # ---- helpers --------------------------------------------------------------------------

    def _form(
        self,
        action: str,
        *,
        error: str | None = None,
        values: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> HttpResponse:
        nonce = self._new_nonce()
        page = LoginPage(
            server=self.display_name,
            action=action,
            nonce=nonce,
            fields=self.fields,
            error=error,
            values=values or {},
        )
        binding = session_cookie(
            self._nonce_cookie,
            nonce,
            path=self.login_path,
            max_age=int(self.form_ttl),
            secure=self.secure,
            same_site="Strict",
        )
        return render_login(page, status=status, extra_headers=(("set-cookie", binding),))

    def _clear_nonce_cookie(self) -> tuple[str, str]:
        cleared = expired_cookie(
            self._nonce_cookie,
            path=self.login_path,
            secure=self.secure,
            same_site="Strict",
        )
        return ("set-cookie", cleared)

    def _new_nonce(self) -> str:
        expires_at = self.clock.wall() + self.form_ttl
        return sign_form_nonce(self._key, self.issuer, self.random.token(32), expires_at)

    def _check_nonce(self, nonce: str, cookie_header: str | None) -> bool:
        """Whether `nonce` was signed with this key (on any node), is unexpired, and the
        browser holds it in the form cookie too (double submit)."""
        if not nonce or not check_form_nonce(self._key, self.issuer, nonce, self.clock.wall()):
            return False
        held = cookie_values(cookie_header, self._nonce_cookie)
        return any(hmac.compare_digest(value.encode(), nonce.encode()) for value in held)

    def _notice(
        self, status: int, heading: str, message: str, *, kind: str = "error"
    ) -> HttpResponse:
        notice = Notice(
            server=self.display_name,
            kind="success" if kind == "success" else "error",
            heading=heading,
            message=message,
        )
        return render_notice(notice, status=status)

    def _not_allowed(self) -> HttpResponse:
        response = self._notice(405, "Not allowed", "This page takes GET and POST only.")
        return attrs.evolve(response, headers=(*response.headers, ("allow", "GET, POST")))


def _query_value(raw_query: str, name: str) -> str | None:
    """The one value of `name` in a query string; a repeated or malformed one gives ""
    (which `safe_next` refuses)."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict", max_num_fields=16)
    except (ValueError, UnicodeDecodeError):
        return ""
    values = [value for key, value in pairs if key == name]
    if not values:
        return None
    return values[0] if len(values) == 1 else ""
