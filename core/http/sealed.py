"""Values the server seals with an HMAC and reads back later: base64url without padding, and
the one MAC construction every sealed value uses.

Pure. Used by the consent ticket of the authorization server
(`core.services.authorization_server`) and by the sign-in session cookie and form nonce
(`core.http.login`); `b64url` also serves whoever needs unpadded base64url (RFC 7515 2,
RFC 7636 4.2).

`tag(key, label, issuer, payload)` is HMAC-SHA256 over `label || issuer || 0x00 || payload`.
The label says what kind of value it is (a consent ticket cannot pass as a form nonce), the
issuer which server sealed it, and the NUL keeps the issuer and the payload apart. Callers
compare tags with `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

__all__ = ["b64url", "tag", "unb64url"]

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+\Z")


def b64url(raw: bytes) -> str:
    """`raw` as base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes | None:
    """The bytes of unpadded base64url `text`, or None for anything else (other characters,
    padding, an impossible length)."""
    if not _B64URL.match(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


def tag(key: bytes, label: bytes, issuer: str, payload: str) -> bytes:
    """HMAC-SHA256 of `label || issuer || NUL || payload` under `key` (`payload` is ASCII)."""
    message = label + issuer.encode("utf-8") + b"\x00" + payload.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()
