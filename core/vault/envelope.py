"""The credential envelope: the associated data that binds a ciphertext to its record, and the
layout of a sealed blob. Pure: bytes in, bytes or values out; no I/O, no clock, no crypto.

Spec context: issue 3 "The vault" (AES-256-GCM, associated data binding version, key id,
server, subject and record kind "in an unambiguous length-prefixed encoding, so a ciphertext
moved to another record fails to decrypt"); DESIGN.md "Security defaults". The full design is
`docs/vault.md`.

Associated data (AAD), format version 1, byte by byte:

```
offset  size  field
0       8     magic: the ASCII bytes b"mcpvault"
8       1     format version: 0x01
9       4     len(key_id), unsigned 32-bit big-endian, then the UTF-8 bytes of key_id
...     4     len(server), then server's UTF-8 bytes
...     4     len(subject), then subject's UTF-8 bytes
...     4     len(kind), then kind's UTF-8 bytes
```

Nothing follows the last field. Every field carries its own length and the number of fields is
fixed by the version, so the encoding is injective: two different (version, key id, server,
subject, kind) tuples never give the same bytes, whatever characters the names hold (a
`server + ":" + subject` join would make ("a:b", "c") and ("a", "b:c") collide). The record's
version counter is deliberately not bound: it changes on every write, and a restored backup
of a whole row must stay readable.

Sealed blob (what `CredentialRecord.ciphertext` holds), format version 1:

```
offset  size  field
0       1     format version: 0x01 (the same number as in the AAD)
1       12    nonce (96 bits, random per seal)
13      >=16  AES-256-GCM ciphertext followed by its 16-byte tag
```

The plaintext inside is itself typed by one leading byte, so `get` returns what `put` took:
0x01 then canonical JSON (UTF-8, sorted keys, no NaN) for a mapping; 0x02 then the raw bytes.

Errors here never quote the payload: a malformed blob is described by its sizes, a payload by
its type.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "AAD_MAGIC",
    "FORMAT_VERSION",
    "NONCE_SIZE",
    "TAG_SIZE",
    "AadFields",
    "EnvelopeError",
    "SealedBlob",
    "check_name",
    "decode_aad",
    "decode_payload",
    "encode_aad",
    "encode_fields",
    "encode_payload",
]

AAD_MAGIC = b"mcpvault"
FORMAT_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16

_LENGTH = struct.Struct(">I")
_MAX_FIELD = 2**32 - 1

_PAYLOAD_JSON = 0x01
_PAYLOAD_BYTES = 0x02


class EnvelopeError(ValueError):
    """Malformed envelope input: a bad name, a truncated blob, an unknown version."""


def check_name(what: str, value: object) -> str:
    """A record name (server, subject, kind, key id) as the envelope accepts it.

    Non-empty `str` that encodes to UTF-8 (no lone surrogates), at most 2**32 - 1 bytes.
    """
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise EnvelopeError(f"{what} must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise EnvelopeError(f"{what} is not encodable as UTF-8 (lone surrogate)") from None
    if size > _MAX_FIELD:
        raise EnvelopeError(f"{what} is {size} bytes long; the limit is {_MAX_FIELD}")
    return value


def encode_fields(*fields: str) -> bytes:
    """Each field as a 4-byte big-endian length and its UTF-8 bytes, concatenated."""
    out = bytearray()
    for field in fields:
        data = field.encode("utf-8")
        if len(data) > _MAX_FIELD:
            raise EnvelopeError(f"a field is {len(data)} bytes long; the limit is {_MAX_FIELD}")
        out += _LENGTH.pack(len(data))
        out += data
    return bytes(out)


@attrs.frozen(kw_only=True)
class AadFields:
    """What the associated data binds: the sealing key and the record's identity."""

    key_id: str
    server: str
    subject: str
    kind: str
    version: int = FORMAT_VERSION


def encode_aad(*, key_id: str, server: str, subject: str, kind: str) -> bytes:
    """The associated data of a record (format version 1; layout in the module docstring)."""
    names = (
        check_name("key id", key_id),
        check_name("server", server),
        check_name("subject", subject),
        check_name("kind", kind),
    )
    return AAD_MAGIC + bytes([FORMAT_VERSION]) + encode_fields(*names)


def decode_aad(data: bytes) -> AadFields:
    """The inverse of `encode_aad`; `EnvelopeError` for anything it would not produce."""
    prefix = len(AAD_MAGIC) + 1
    if len(data) < prefix or not data.startswith(AAD_MAGIC):
        raise EnvelopeError("associated data does not start with the vault magic")
    version = data[len(AAD_MAGIC)]
    if version != FORMAT_VERSION:
        raise EnvelopeError(f"associated data has format version {version}, not {FORMAT_VERSION}")
    offset = prefix
    names: list[str] = []
    for what in ("key id", "server", "subject", "kind"):
        if offset + _LENGTH.size > len(data):
            raise EnvelopeError(f"associated data is truncated before the {what} length")
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + size > len(data):
            raise EnvelopeError(
                f"associated data is truncated: the {what} claims {size} bytes, "
                f"{len(data) - offset} remain"
            )
        try:
            text = data[offset : offset + size].decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError(f"the {what} in the associated data is not UTF-8") from None
        names.append(check_name(what, text))
        offset += size
    if offset != len(data):
        raise EnvelopeError(f"associated data has {len(data) - offset} bytes after the kind")
    key_id, server, subject, kind = names
    return AadFields(key_id=key_id, server=server, subject=subject, kind=kind, version=version)


def _check_version(_: object, __: object, value: int) -> None:
    if value != FORMAT_VERSION:
        raise EnvelopeError(f"sealed blob format version {value!r} is not {FORMAT_VERSION}")


def _check_nonce(_: object, __: object, value: bytes) -> None:
    if len(value) != NONCE_SIZE:
        raise EnvelopeError(f"a nonce is {NONCE_SIZE} bytes, not {len(value)}")


def _check_ciphertext(_: object, __: object, value: bytes) -> None:
    if len(value) < TAG_SIZE:
        raise EnvelopeError(f"a ciphertext holds at least its {TAG_SIZE}-byte tag")


@attrs.frozen(kw_only=True)
class SealedBlob:
    """A parsed sealed blob. Not secret (it is what the store keeps); repr leaves out the body."""

    nonce: bytes = attrs.field(validator=_check_nonce)
    ciphertext: bytes = attrs.field(validator=_check_ciphertext, repr=False)
    version: int = attrs.field(default=FORMAT_VERSION, validator=_check_version)

    @classmethod
    def parse(cls, data: bytes) -> SealedBlob:
        if not data:
            raise EnvelopeError("sealed blob is empty")
        version = data[0]
        if version != FORMAT_VERSION:
            raise EnvelopeError(
                f"sealed blob has format version {version}; this vault reads {FORMAT_VERSION}"
            )
        minimum = 1 + NONCE_SIZE + TAG_SIZE
        if len(data) < minimum:
            raise EnvelopeError(
                f"sealed blob is {len(data)} bytes; a version {version} blob is at least {minimum}"
            )
        return cls(nonce=data[1 : 1 + NONCE_SIZE], ciphertext=data[1 + NONCE_SIZE :])

    def format(self) -> bytes:
        return bytes([self.version]) + self.nonce + self.ciphertext


def encode_payload(data: Mapping[str, Any] | bytes) -> bytes:
    """The plaintext to seal: a type byte, then canonical JSON (a mapping) or the bytes."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes([_PAYLOAD_BYTES]) + bytes(data)
    if not isinstance(data, Mapping):
        raise EnvelopeError(f"credential data is a dict or bytes, not {type(data).__name__}")
    try:
        text = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError) as exc:
        # json's messages can quote values (`Out of range float values ...: nan`); say only what.
        raise EnvelopeError(
            f"credential data is not JSON-serializable ({type(exc).__name__})"
        ) from None
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise EnvelopeError("credential data holds a string that is not UTF-8") from None
    return bytes([_PAYLOAD_JSON]) + encoded


def decode_payload(plaintext: bytes) -> dict[str, Any] | bytes:
    """The inverse of `encode_payload`."""
    if not plaintext:
        raise EnvelopeError("decrypted payload is empty")
    tag, body = plaintext[0], plaintext[1:]
    if tag == _PAYLOAD_BYTES:
        return body
    if tag != _PAYLOAD_JSON:
        raise EnvelopeError(f"decrypted payload has unknown type byte {tag}")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("decrypted payload is not valid JSON") from None
    if not isinstance(value, dict):
        raise EnvelopeError("decrypted JSON payload is not an object")
    return value
