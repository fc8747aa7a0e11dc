"""The crypto ports on `cryptography` (adapters/crypto.py): AES-256-GCM seals and opens, any
changed bit is refused with the port's `DecryptionFailed`, and the KDFs meet their RFC vectors.

Spec: issue 3 "The vault" (AES-256-GCM through an `Aead` port, HKDF-SHA256, scrypt); RFC 5869
appendix A.1, RFC 7914 section 12.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_core.adapters.crypto import CryptographyAead, CryptographyKdf
from mcp_core.ports.crypto import Aead, DecryptionFailed, Kdf

from .vault_testing import K1, K2

AEAD = CryptographyAead()
KDF = CryptographyKdf()
NONCE = bytes(range(12))
AAD = b"associated"


def test_adapters_satisfy_the_ports() -> None:
    assert isinstance(AEAD, Aead)
    assert isinstance(KDF, Kdf)


@given(st.binary(max_size=200), st.binary(max_size=50))
def test_seal_then_open_round_trips(plaintext: bytes, aad: bytes) -> None:
    sealed = AEAD.seal(K1, NONCE, plaintext, aad)
    assert len(sealed) == len(plaintext) + 16
    assert AEAD.open(K1, NONCE, sealed, aad) == plaintext


def test_flipping_any_bit_of_ciphertext_nonce_or_aad_is_refused() -> None:
    plaintext = b"api-key-123"
    sealed = AEAD.seal(K1, NONCE, plaintext, AAD)

    def flipped(data: bytes, bit: int) -> bytes:
        out = bytearray(data)
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    for bit in range(len(sealed) * 8):
        with pytest.raises(DecryptionFailed):
            AEAD.open(K1, NONCE, flipped(sealed, bit), AAD)
    for bit in range(len(NONCE) * 8):
        with pytest.raises(DecryptionFailed):
            AEAD.open(K1, flipped(NONCE, bit), sealed, AAD)
    for bit in range(len(AAD) * 8):
        with pytest.raises(DecryptionFailed):
            AEAD.open(K1, NONCE, sealed, flipped(AAD, bit))
    with pytest.raises(DecryptionFailed):
        AEAD.open(K2, NONCE, sealed, AAD)
    with pytest.raises(DecryptionFailed):
        AEAD.open(K1, NONCE, sealed[:-1], AAD)
    with pytest.raises(DecryptionFailed):
        AEAD.open(K1, NONCE, sealed[:15], AAD)


def test_wrong_sizes_are_value_errors_without_key_bytes() -> None:
    with pytest.raises(ValueError, match="32-byte key, not 16 bytes") as caught:
        AEAD.seal(K1[:16], NONCE, b"x", b"")
    assert repr(K1[:16]) not in str(caught.value)
    with pytest.raises(ValueError, match="nonce is 12 bytes, not 8"):
        AEAD.open(K1, NONCE[:8], bytes(32), b"")


def test_hkdf_sha256_meets_rfc5869_a1() -> None:
    okm = KDF.hkdf_sha256(
        b"\x0b" * 22, salt=bytes(range(13)), info=bytes(range(0xF0, 0xFA)), length=42
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_scrypt_meets_rfc7914_vector_1() -> None:
    key = KDF.scrypt(b"", salt=b"", length=64, n=16, r=1, p=1)
    assert key.hex() == (
        "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
        "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
    )


def test_kdf_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="1 to 8160 bytes, not 0"):
        KDF.hkdf_sha256(K1, salt=b"", info=b"", length=0)
    with pytest.raises(ValueError, match="power of two above 1, not 12"):
        KDF.scrypt(b"pw", salt=b"", length=32, n=12, r=1, p=1)
