"""The credential envelope (core/vault/envelope.py): the AAD encoding is injective and exactly
the documented layout, sealed blobs parse and format, malformed input gets a clear error.

Spec: issue 3 "The vault" (an unambiguous length-prefixed encoding of version, key id, server,
subject, record kind); docs/vault.md "Associated data" and "Sealed blob".
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.core.vault.envelope import (
    AAD_MAGIC,
    NONCE_SIZE,
    TAG_SIZE,
    AadFields,
    EnvelopeError,
    SealedBlob,
    check_name,
    decode_aad,
    decode_payload,
    encode_aad,
    encode_payload,
)

# Names that stress the encoding: separators, NULs, multi-byte characters.
names = st.text(
    alphabet=st.sampled_from(["a", "b", ":", "|", "\x00", "\x01", "é", "日", " ", "4"]),
    min_size=1,
    max_size=6,
) | st.text(min_size=1, max_size=12).filter(lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s))
fields = st.tuples(names, names, names, names)


def aad(t: tuple[str, str, str, str]) -> bytes:
    key_id, server, subject, kind = t
    return encode_aad(key_id=key_id, server=server, subject=subject, kind=kind)


@given(fields, fields)
def test_distinct_field_tuples_never_encode_equal(
    a: tuple[str, str, str, str], b: tuple[str, str, str, str]
) -> None:
    assert (aad(a) == aad(b)) == (a == b)


@given(fields)
def test_aad_round_trips(t: tuple[str, str, str, str]) -> None:
    key_id, server, subject, kind = t
    assert decode_aad(aad(t)) == AadFields(key_id=key_id, server=server, subject=subject, kind=kind)


def test_separator_shifts_do_not_collide() -> None:
    # The failure of `server + ":" + subject`: both would read "a:b:c".
    assert aad(("k1", "a:b", "c", "api")) != aad(("k1", "a", "b:c", "api"))
    assert aad(("k1", "ab", "c", "api")) != aad(("k1", "a", "bc", "api"))
    assert aad(("k1", "s", "u", "a\x00")) != aad(("k1", "s", "u\x00", "a"))


def test_aad_is_exactly_the_documented_layout() -> None:
    def field(text: str) -> bytes:
        data = text.encode("utf-8")
        return struct.pack(">I", len(data)) + data

    expected = b"mcpvault" + b"\x01" + field("k1") + field("srv") + field("ü") + field("api")
    assert aad(("k1", "srv", "ü", "api")) == expected
    assert expected[:9] == AAD_MAGIC + b"\x01"
    assert field("ü") == b"\x00\x00\x00\x02\xc3\xbc"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"", "does not start with the vault magic"),
        (lambda b: b"mcpvaulx" + b[8:], "does not start with the vault magic"),
        (lambda b: b[:8] + b"\x02" + b[9:], "format version 2"),
        (lambda b: b + b"\x00", "1 bytes after the kind"),
        (lambda b: b[:-1], "truncated: the kind claims 3 bytes, 2 remain"),
        (lambda b: b[:11], "truncated before the key id length"),
        (lambda b: b[:9] + b"\x00\x00\x00\x00" + b[15:], "key id must not be empty"),
    ],
)
def test_malformed_aad_is_refused_clearly(mangle: object, message: str) -> None:
    good = aad(("k1", "srv", "sub", "api"))
    with pytest.raises(EnvelopeError, match=message):
        decode_aad(mangle(good))  # type: ignore[operator]


def test_every_truncation_of_an_aad_is_refused() -> None:
    good = aad(("k1", "srv", "sub", "api"))
    for end in range(len(good)):
        with pytest.raises(EnvelopeError):
            decode_aad(good[:end])


def test_non_utf8_field_is_refused() -> None:
    bad = b"mcpvault\x01" + b"\x00\x00\x00\x01\xff" + aad(("k", "s", "u", "k"))[15:]
    with pytest.raises(EnvelopeError, match="key id in the associated data is not UTF-8"):
        decode_aad(bad)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "server must not be empty"),
        (b"srv", "server must be a str, not bytes"),
        ("a\udc80", "server is not encodable as UTF-8"),
    ],
)
def test_bad_names_are_refused(value: object, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        check_name("server", value)


@given(st.binary(min_size=NONCE_SIZE, max_size=NONCE_SIZE), st.binary(min_size=TAG_SIZE))
def test_sealed_blob_round_trips(nonce: bytes, ciphertext: bytes) -> None:
    blob = SealedBlob(nonce=nonce, ciphertext=ciphertext)
    data = blob.format()
    assert data == b"\x01" + nonce + ciphertext
    assert SealedBlob.parse(data) == blob


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "sealed blob is empty"),
        (b"\x02" + bytes(40), "format version 2; this vault reads 1"),
        (b"\x01" + bytes(28), "sealed blob is 29 bytes; a version 1 blob is at least 29"),
    ],
)
def test_malformed_sealed_blobs_are_refused_clearly(data: bytes, message: str) -> None:
    if data == b"\x01" + bytes(28):  # exactly the minimum parses: make it one byte short
        data = data[:-1]
        message = "sealed blob is 28 bytes; a version 1 blob is at least 29"
    with pytest.raises(EnvelopeError, match=message):
        SealedBlob.parse(data)


def test_sealed_blob_validates_its_parts_and_hides_the_body_from_repr() -> None:
    with pytest.raises(EnvelopeError, match="a nonce is 12 bytes, not 3"):
        SealedBlob(nonce=b"abc", ciphertext=bytes(16))
    with pytest.raises(EnvelopeError, match="16-byte tag"):
        SealedBlob(nonce=bytes(12), ciphertext=bytes(15))
    assert "ciphertext" not in repr(SealedBlob(nonce=bytes(12), ciphertext=b"Z" * 40))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), json_values, max_size=4))
def test_dict_payload_round_trips(data: dict[str, object]) -> None:
    assert decode_payload(encode_payload(data)) == data


@given(st.binary())
def test_bytes_payload_round_trips_and_stays_bytes(data: bytes) -> None:
    assert decode_payload(encode_payload(data)) == data


def test_payload_is_canonical_json() -> None:
    assert encode_payload({"b": 1, "a": "é"}) == b'\x01{"a":"\xc3\xa9","b":1}'


@pytest.mark.parametrize(
    "data",
    [{"token": float("nan")}, {"token": object()}, {"token": {1, 2}}],
)
def test_unserializable_payload_error_quotes_no_value(data: dict[str, object]) -> None:
    with pytest.raises(EnvelopeError, match="not JSON-serializable") as caught:
        encode_payload(data)
    assert "nan" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_payload_must_be_a_dict_or_bytes() -> None:
    with pytest.raises(EnvelopeError, match="a dict or bytes, not list"):
        encode_payload(["a"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("plaintext", "message"),
    [
        (b"", "empty"),
        (b"\x07abc", "unknown type byte 7"),
        (b"\x01[1]", "not an object"),
        (b"\x01{", "not valid JSON"),
    ],
)
def test_malformed_payloads_are_refused(plaintext: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode_payload(plaintext)
