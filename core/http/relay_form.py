"""The relay form: the one HTML page through which a user gives a server their credentials.

Issue 3 ("Credential bootstrap", the relay form); `docs/credentials.md` is the guide. Pure: values
in, `HttpResponse` values out; no I/O, no clock, no randomness (the nonce arrives drawn).

One page, two modes. In local-relay mode the server opens the user's browser on a one-time
loopback page; in remote-relay mode the deployed server serves it to the authenticated subject.
Both render exactly this markup, so what a user sees, and what the tests check, is the same.

What a page holds:
- the server's name, a heading and, on a step page (an OTP, a second password), the validator's
  prompt;
- the fields the server author declared (`CredentialField`): a label, a text or password input,
  optional `pattern` and help text. Secret fields are `type=password` with `autocomplete=off`
  and are never echoed back: after an error only non-secret values are filled in again;
- a hidden one-time nonce (`NONCE_FIELD`), the CSRF token the bootstrap machine checks;
- an error area (`role=alert`) when the last post was refused.
It needs no JavaScript: a plain `<form method=post>`; `required` and `pattern` are hints for
the browser, and the service checks the same rules again (`field_problems`).

Every piece of text that reaches the markup goes through `html.escape`, attribute values
included. Headers (`PAGE_HEADERS`): `Cache-Control: no-store` (a page holds a nonce and a
secret may be typed into it), a Content-Security-Policy that allows nothing but the page's
one inline stylesheet (by hash) and posting to itself (`form-action 'self'`), no framing,
`Referrer-Policy: no-referrer` and `nosniff`.

A note on `Origin`: under `Referrer-Policy: no-referrer` a browser posts the form with
`Origin: null` (Fetch, "append a request Origin header"). The nonce, not the Origin header,
is the CSRF defence here; `origin_headers` drops a literal `null` before the usual Host and
Origin checks so those still refuse other sites and DNS rebinding.

Bodies are `application/x-www-form-urlencoded`, at most `MAX_FORM_BYTES`; `parse_form`
refuses anything else with a `FormError` that says what was wrong and never quotes a value.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import attrs

from .messages import HttpResponse

__all__ = [
    "FORM_CONTENT_TYPE",
    "MAX_FIELDS",
    "MAX_FORM_BYTES",
    "MAX_VALUE_LENGTH",
    "NONCE_FIELD",
    "PAGE_HEADERS",
    "STYLE",
    "CredentialField",
    "FormError",
    "FormPage",
    "Notice",
    "Submission",
    "check_fields",
    "field_problems",
    "origin_headers",
    "parse_form",
    "read_submission",
    "render_form",
    "render_notice",
]

# The hidden field that carries the page's nonce; a declared field may not take this name.
NONCE_FIELD: Final = "mcp_core_nonce"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
# A form of a few fields is well under this; anything bigger is not our form.
MAX_FORM_BYTES: Final = 16 * 1024
MAX_FIELDS: Final = 32
MAX_VALUE_LENGTH: Final = 4096

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f5f5f5;color:#222}"
    "main{max-width:28rem;margin:3rem auto;background:#fff;padding:1.5rem 2rem;"
    "border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15)}"
    "h1{font-size:1.3rem;margin-top:0}"
    ".field{margin:1rem 0}"
    "label{display:block;font-weight:600;margin-bottom:.3rem}"
    "input{box-sizing:border-box;width:100%;padding:.5rem;font-size:1rem}"
    ".help,.meta{color:#555;font-size:.9rem;margin:.3rem 0 0}"
    ".error{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:4px}"
    ".ok{background:#e6f4ea;border:1px solid #9ccfa8;padding:.6rem;border-radius:4px}"
    "button{padding:.6rem 1.2rem;font-size:1rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")

CONTENT_SECURITY_POLICY: Final = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

PAGE_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("pragma", "no-cache"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
)


# ---- fields -----------------------------------------------------------------------------------


def _field_name(_instance: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            "a field name is 1 to 64 letters, digits, '_' or '-', starting with a letter; "
            f"got {value!r}"
        )
    if value == NONCE_FIELD:
        raise ValueError(f"{NONCE_FIELD!r} is reserved for the form's nonce")


def _label(_instance: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a field needs a non-empty label")


def _pattern(_instance: object, _attribute: object, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise ValueError("a field's pattern is a non-empty regular expression or None")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"the pattern {value!r} is not a regular expression: {exc}") from None


@attrs.frozen(kw_only=True)
class CredentialField:
    """One input of the relay form, as the server author declares it.

    - `name`: the key of the value (`values[name]` for the validator, and what is stored).
    - `label`: what the user reads.
    - `secret`: a password input, never echoed back or logged (the default: credentials are).
    - `pattern`: a regular expression the whole value must match, checked by the service and
      given to the browser as the `pattern` attribute, so keep to the syntax Python and
      JavaScript share (classes, groups, quantifiers, alternation).
    - `help`: a line under the input.
    - `required`: an empty value is refused.
    """

    name: str = attrs.field(validator=_field_name)
    label: str = attrs.field(validator=_label)
    secret: bool = True
    pattern: str | None = attrs.field(default=None, validator=_pattern)
    help: str | None = None
    required: bool = True

    def problem(self, value: str) -> str | None:
        """Why `value` is not acceptable for this field, or None. Never quotes the value."""
        if value == "":
            return f"{self.label} is required" if self.required else None
        if len(value) > MAX_VALUE_LENGTH:
            return f"{self.label} is longer than {MAX_VALUE_LENGTH} characters"
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return f"{self.label} does not have the expected format"
        return None


def check_fields(fields: Sequence[CredentialField]) -> tuple[CredentialField, ...]:
    """The fields as a tuple, refusing an empty form and duplicate names."""
    out = tuple(fields)
    if not out:
        raise ValueError("a form needs at least one field")
    names = [field.name for field in out]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"field names must be unique: {', '.join(duplicates)}")
    for field in out:
        if not isinstance(field, CredentialField):
            raise TypeError(f"fields are CredentialField values, got {type(field).__name__}")
    return out


# ---- parsing a post ---------------------------------------------------------------------------


class FormError(Exception):
    """A post that is not a submission of this form; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_form(
    body: bytes, content_type: str | None, *, max_bytes: int = MAX_FORM_BYTES
) -> dict[str, str]:
    """The fields of an urlencoded body. Raises `FormError` (415, 413 or 400)."""
    media_type, _, params = (content_type or "").partition(";")
    if media_type.strip().lower() != FORM_CONTENT_TYPE:
        raise FormError(415, f"the form must be posted as {FORM_CONTENT_TYPE}")
    charset = _param(params, "charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise FormError(415, "the form must be posted in UTF-8")
    if len(body) > max_bytes:
        raise FormError(413, f"the form data is larger than {max_bytes} bytes")
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeError:
        raise FormError(400, "the form data is not valid UTF-8 in urlencoded form") from None
    except ValueError:
        raise FormError(
            400, f"the form data is malformed (or has over {MAX_FIELDS} fields)"
        ) from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise FormError(400, f"the field {_shown(name)} appears more than once")
        if _CONTROL.search(value):
            raise FormError(400, f"the field {_shown(name)} contains control characters")
        out[name] = value
    return out


def _param(params: str, wanted: str) -> str | None:
    for part in params.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == wanted:
            return value.strip().strip('"')
    return None


def _shown(name: str) -> str:
    """A field name for a message: a declared name is safe; anything else is shortened."""
    return repr(name if _NAME.match(name) else name[:32] + ("..." if len(name) > 32 else ""))


@attrs.frozen(kw_only=True)
class Submission:
    """A parsed post of the form: the nonce it carried and the declared fields' values."""

    nonce: str = attrs.field(repr=False)
    values: dict[str, str] = attrs.field(repr=False)


def read_submission(fields: Sequence[CredentialField], form: Mapping[str, str]) -> Submission:
    """Split a parsed post into its nonce and the values of `fields` (missing ones are "").
    A field the page does not have is refused (400): it did not come from this form."""
    declared = {field.name for field in fields}
    unexpected = sorted(name for name in form if name not in declared and name != NONCE_FIELD)
    if unexpected:
        raise FormError(400, f"the form has no field {_shown(unexpected[0])}")
    return Submission(
        nonce=form.get(NONCE_FIELD, ""),
        values={field.name: form.get(field.name, "") for field in fields},
    )


def field_problems(fields: Sequence[CredentialField], values: Mapping[str, str]) -> list[str]:
    """What is wrong with the values, field by field, in the form's order (never quoting one)."""
    problems = []
    for field in fields:
        problem = field.problem(values.get(field.name, ""))
        if problem is not None:
            problems.append(problem)
    return problems


def origin_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers for the Host and Origin checks, without an `Origin: null` (see above)."""
    return {k: v for k, v in headers.items() if not (k == "origin" and v.strip() == "null")}


# ---- rendering --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FormPage:
    """The form, or a step of it, as it is to be shown.

    `action` is the path the form posts to. `values` are the values to show again after an
    error: only non-secret fields are ever filled in. `expires_in` is in seconds.
    """

    server: str
    action: str
    nonce: str = attrs.field(repr=False)
    fields: tuple[CredentialField, ...]
    step: str | None = None
    prompt: str | None = None
    error: str | None = None
    values: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    attempts_left: int | None = None
    expires_in: float | None = None


@attrs.frozen(kw_only=True)
class Notice:
    """A page that only says something: success, failure, "try again later", "not found".
    `link` is an (href, text) pair, e.g. the form's path and "Start again"."""

    server: str
    kind: Literal["success", "failure", "error"]
    heading: str
    message: str
    link: tuple[str, str] | None = None
    retry_after: float | None = None


def _document(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    ).encode()


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _input(field: CredentialField, values: Mapping[str, str]) -> str:
    ident = f"f-{field.name}"
    attributes: list[tuple[str, str | None]] = [
        ("id", ident),
        ("name", field.name),
        ("type", "password" if field.secret else "text"),
        ("autocomplete", "off"),
        ("spellcheck", "false"),
        ("autocapitalize", "off"),
        ("maxlength", str(MAX_VALUE_LENGTH)),
    ]
    if field.required:
        attributes.append(("required", None))
    if field.pattern is not None:
        attributes.append(("pattern", field.pattern))
    if field.help is not None:
        attributes.append(("aria-describedby", f"h-{field.name}"))
    if not field.secret and values.get(field.name):
        attributes.append(("value", values[field.name]))
    rendered = " ".join(
        escape(key) if value is None else f'{escape(key)}="{escape(value, quote=True)}"'
        for key, value in attributes
    )
    out = f'<div class="field">\n<label for="{ident}">{escape(field.label)}</label>\n'
    out += f"<input {rendered}>\n"
    if field.help is not None:
        out += f'<p class="help" id="h-{field.name}">{escape(field.help)}</p>\n'
    return out + "</div>\n"


def render_form(page: FormPage, *, status: int = 200) -> HttpResponse:
    """The form page (or a step page) with its headers."""
    server = escape(page.server)
    if page.step is None:
        heading = f"Connect {server}"
        intro = f"<p>{server} needs these credentials to act on your behalf.</p>\n"
        button = "Save"
    else:
        heading = f"{server}: one more step"
        intro = f"<p>{escape(page.prompt or 'Please complete this step.')}</p>\n"
        button = "Continue"
    body = f"<h1>{heading}</h1>\n{intro}"
    if page.error is not None:
        body += f'<p class="error" id="error" role="alert">{escape(page.error)}</p>\n'
    body += f'<form method="post" action="{escape(page.action, quote=True)}" autocomplete="off">\n'
    body += f'<input type="hidden" name="{NONCE_FIELD}" value="{escape(page.nonce, quote=True)}">\n'
    for field in page.fields:
        body += _input(field, page.values)
    notes = []
    if page.attempts_left is not None:
        noun = "attempt" if page.attempts_left == 1 else "attempts"
        notes.append(f"{page.attempts_left} {noun} left")
    if page.expires_in is not None:
        notes.append(f"this page expires in {_minutes(page.expires_in)}")
    if notes:
        text = "; ".join(notes)
        body += f'<p class="meta">{escape(text[:1].upper() + text[1:])}.</p>\n'
    body += f'<button type="submit">{button}</button>\n</form>\n'
    title = f"{page.server}: credentials"
    return HttpResponse(status=status, headers=PAGE_HEADERS, body=_document(title, body))


def render_notice(notice: Notice, *, status: int = 200) -> HttpResponse:
    """A page that says something and offers at most one link."""
    css = {"success": "ok", "failure": "error", "error": "error"}[notice.kind]
    role = ' role="alert"' if notice.kind != "success" else ""
    body = f"<h1>{escape(notice.heading)}</h1>\n"
    body += f'<p class="{css}"{role}>{escape(notice.message)}</p>\n'
    headers: tuple[tuple[str, str], ...] = PAGE_HEADERS
    if notice.retry_after is not None:
        seconds = max(1, math.ceil(notice.retry_after))
        body += f'<p class="meta">Try again in {_minutes(seconds)}.</p>\n'
        headers = (*headers, ("retry-after", str(seconds)))
    if notice.link is not None:
        href, text = notice.link
        body += f'<p><a href="{escape(href, quote=True)}">{escape(text)}</a></p>\n'
    title = f"{notice.server}: {notice.heading}"
    return HttpResponse(status=status, headers=headers, body=_document(title, body))
