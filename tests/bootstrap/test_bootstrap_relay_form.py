"""The relay form's markup, headers and body parsing (`core/http/relay_form.py`, pure).

Issue 3 ("the relay form"): one page for both modes, every text escaped, secrets never echoed,
no JavaScript, `no-store` and a strict CSP; bodies size-capped with clear errors."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from mcp_core.core.http.relay_form import (
    MAX_FORM_BYTES,
    MAX_VALUE_LENGTH,
    NONCE_FIELD,
    PAGE_HEADERS,
    STYLE,
    CredentialField,
    FormError,
    FormPage,
    Notice,
    check_fields,
    field_problems,
    origin_headers,
    parse_form,
    read_submission,
    render_form,
    render_notice,
)

NASTY = "\"><script>alert(1)</script>&'"
FIELDS = (
    CredentialField(name="user", label="User", secret=False, help="Your login"),
    CredentialField(name="key", label="Key", pattern="[a-z]{3}"),
)
FORM = "application/x-www-form-urlencoded"


def _page(**overrides: object) -> str:
    options: dict[str, object] = {
        "server": "srv",
        "action": "/relay",
        "nonce": "n" * 43,
        "fields": FIELDS,
    }
    options.update(overrides)
    return render_form(FormPage(**options)).body.decode()  # type: ignore[arg-type]


# ---- markup ------------------------------------------------------------------------------------


def test_the_form_posts_to_its_action_with_the_nonce_hidden() -> None:
    html = _page()
    assert '<form method="post" action="/relay" autocomplete="off">' in html
    assert f'<input type="hidden" name="{NONCE_FIELD}" value="{"n" * 43}">' in html
    assert '<button type="submit">Save</button>' in html


def test_secret_fields_are_password_inputs_never_filled_in() -> None:
    html = _page(values={"user": "bob", "key": "abc"}, error="try again")
    key_input = re.search(r"<input [^>]*name=\"key\"[^>]*>", html)
    assert key_input is not None
    assert 'type="password"' in key_input.group(0)
    assert 'autocomplete="off"' in key_input.group(0)
    assert "value=" not in key_input.group(0)
    assert 'value="bob"' in html
    assert "abc" not in html.replace('pattern="[a-z]{3}"', "")


def test_declared_field_details_are_rendered() -> None:
    html = _page()
    assert '<label for="f-user">User</label>' in html
    assert 'pattern="[a-z]{3}"' in html
    assert 'aria-describedby="h-user"' in html
    assert '<p class="help" id="h-user">Your login</p>' in html
    assert html.count(" required") == 2
    assert f'maxlength="{MAX_VALUE_LENGTH}"' in html


def test_an_optional_field_is_not_required() -> None:
    html = _page(fields=(CredentialField(name="org", label="Org", required=False),))
    assert " required" not in html


def test_every_text_is_escaped() -> None:
    fields = (
        CredentialField(name="user", label=NASTY, secret=False, help=NASTY, pattern='[<>"]+'),
    )
    html = _page(
        server=NASTY,
        action='/r"x',
        nonce=NASTY,
        fields=fields,
        error=NASTY,
        values={"user": NASTY},
        step="otp",
        prompt=NASTY,
    )
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") >= 5
    assert 'action="/r&quot;x"' in html
    assert 'pattern="[&lt;&gt;&quot;]+"' in html
    notice = render_notice(
        Notice(server=NASTY, kind="failure", heading=NASTY, message=NASTY, link=(NASTY, NASTY))
    ).body.decode()
    assert "<script>" not in notice
    assert 'href="&quot;&gt;&lt;script&gt;' in notice


def test_pages_need_no_javascript() -> None:
    pages = [
        _page(),
        _page(step="otp", prompt="Code?", error="wrong"),
        render_notice(Notice(server="s", kind="success", heading="h", message="m")).body.decode(),
    ]
    for html in pages:
        assert "<script" not in html
        assert " on" not in re.sub(r">[^<]*<", "><", html)  # no onclick= and friends


def test_a_step_page_shows_the_prompt_and_continue() -> None:
    html = _page(step="otp", prompt="Enter the code", attempts_left=1, expires_in=90)
    assert "srv: one more step" in html
    assert "<p>Enter the code</p>" in html
    assert '<button type="submit">Continue</button>' in html
    assert "1 attempt left; this page expires in 2 minutes." in html


def test_the_error_area_is_an_alert() -> None:
    assert '<p class="error" id="error" role="alert">Bad key.</p>' in _page(error="Bad key.")
    assert 'role="alert"' not in _page()


def test_notices_offer_a_link_and_a_retry_after() -> None:
    response = render_notice(
        Notice(
            server="s",
            kind="failure",
            heading="Wait",
            message="Too many attempts.",
            link=("/relay", "Start again"),
            retry_after=119.2,
        ),
        status=429,
    )
    html = response.body.decode()
    assert response.status == 429
    assert dict(response.headers)["retry-after"] == "120"
    assert '<a href="/relay">Start again</a>' in html
    assert "Try again in 2 minutes." in html


# ---- headers -----------------------------------------------------------------------------------


def test_pages_are_never_cached_framed_or_given_a_referrer() -> None:
    headers = dict(render_form(FormPage(server="s", action="/", nonce="n", fields=FIELDS)).headers)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "form-action 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
    assert headers == dict(PAGE_HEADERS)


def test_the_csp_hash_matches_the_inline_style() -> None:
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    csp = dict(PAGE_HEADERS)["content-security-policy"]
    assert f"style-src 'sha256-{digest}'" in csp
    assert f"<style>{STYLE}</style>" in _page()


def test_origin_null_is_left_to_the_nonce() -> None:
    headers = {"host": "h", "origin": "null"}
    assert origin_headers(headers) == {"host": "h"}
    assert origin_headers({"origin": "http://evil"}) == {"origin": "http://evil"}


# ---- parsing -----------------------------------------------------------------------------------


def test_an_urlencoded_body_is_parsed() -> None:
    body = b"user=b%C3%B6b&key=a+b&" + NONCE_FIELD.encode() + b"=n"
    assert parse_form(body, FORM) == {"user": "böb", "key": "a b", NONCE_FIELD: "n"}
    assert parse_form(body, "Application/X-WWW-Form-Urlencoded; charset=UTF-8")["user"] == "böb"
    assert parse_form(b"", FORM) == {}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"a=b", None, 415, "must be posted as application/x-www-form-urlencoded"),
        (b"a=b", "multipart/form-data", 415, "must be posted as"),
        (b"a=b", FORM + "; charset=iso-8859-1", 415, "UTF-8"),
        (b"a=" + b"x" * MAX_FORM_BYTES, FORM, 413, "larger than"),
        (b"a=\xff", FORM, 400, "not valid UTF-8"),
        (b"a=%ff", FORM, 400, "not valid UTF-8"),
        (b"a", FORM, 400, "malformed"),
        (b"&".join(b"f%d=1" % i for i in range(40)), FORM, 400, "fields"),
        (b"a=1&a=2", FORM, 400, "'a' appears more than once"),
        (b"a=x%0Ay", FORM, 400, "'a' contains control characters"),
    ],
)
def test_bad_bodies_are_refused_clearly(
    body: bytes, content_type: str | None, status: int, message: str
) -> None:
    with pytest.raises(FormError) as caught:
        parse_form(body, content_type)
    assert caught.value.status == status
    assert message in caught.value.message


def test_errors_never_quote_a_value() -> None:
    with pytest.raises(FormError) as caught:
        parse_form(b"k=secret-value%01", FORM)
    assert "secret-value" not in str(caught.value)


def test_a_submission_splits_the_nonce_from_the_values() -> None:
    submission = read_submission(FIELDS, {"user": "u", NONCE_FIELD: "n"})
    assert submission.nonce == "n"
    assert submission.values == {"user": "u", "key": ""}
    assert "n" not in repr(submission).replace("Submission", "")
    with pytest.raises(FormError, match="no field 'other'"):
        read_submission(FIELDS, {"other": "x"})


# ---- fields ------------------------------------------------------------------------------------


def test_field_problems_name_the_label_not_the_value() -> None:
    problems = field_problems(FIELDS, {"user": "", "key": "SECRET"})
    assert problems == ["User is required", "Key does not have the expected format"]
    assert field_problems(FIELDS, {"user": "u", "key": "abc"}) == []
    long = "a" * (MAX_VALUE_LENGTH + 1)
    assert field_problems(FIELDS, {"user": long, "key": "abc"}) == [
        f"User is longer than {MAX_VALUE_LENGTH} characters"
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "", "label": "L"}, "field name"),
        ({"name": "1a", "label": "L"}, "field name"),
        ({"name": "a b", "label": "L"}, "field name"),
        ({"name": NONCE_FIELD, "label": "L"}, "reserved"),
        ({"name": "a", "label": " "}, "label"),
        ({"name": "a", "label": "L", "pattern": "("}, "not a regular expression"),
        ({"name": "a", "label": "L", "pattern": ""}, "pattern"),
    ],
)
def test_bad_field_declarations_are_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CredentialField(**options)  # type: ignore[arg-type]


def test_a_form_has_unique_fields() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        check_fields(())
    with pytest.raises(ValueError, match="unique: a"):
        check_fields([CredentialField(name="a", label="A"), CredentialField(name="a", label="B")])
    assert check_fields(list(FIELDS)) == FIELDS
