"""The crypto ports on the `cryptography` package: AES-256-GCM, HKDF-SHA256 and scrypt.

Spec context: issue 3 "The vault" ("AES-256-GCM through an `Aead` port (`cryptography`
adapter)"); the ports are `mcp_core.ports.crypto`. Errors from `cryptography` are translated:
an authentication failure is the port's `DecryptionFailed`, bad sizes are `ValueError` with our
own message (never one that could quote key bytes).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mcp_core.ports.crypto import AEAD_KEY_SIZE, AEAD_NONCE_SIZE, AEAD_TAG_SIZE, DecryptionFailed

__all__ = ["CryptographyAead", "CryptographyKdf"]

_HKDF_MAX = 255 * 32


def _check(key: bytes, nonce: bytes) -> None:
    if len(key) != AEAD_KEY_SIZE:
        raise ValueError(f"AES-256-GCM takes a {AEAD_KEY_SIZE}-byte key, not {len(key)} bytes")
    if len(nonce) != AEAD_NONCE_SIZE:
        raise ValueError(f"the nonce is {AEAD_NONCE_SIZE} bytes, not {len(nonce)}")


class CryptographyAead:
    """AES-256-GCM with a 16-byte tag."""

    def __repr__(self) -> str:
        return "CryptographyAead()"

    def seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        _check(key, nonce)
        return AESGCM(key).encrypt(nonce, plaintext, aad)

    def open(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        _check(key, nonce)
        if len(ciphertext) < AEAD_TAG_SIZE:
            raise DecryptionFailed("ciphertext is shorter than its tag")
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed("ciphertext does not authenticate") from None


class CryptographyKdf:
    """HKDF-SHA256 and scrypt."""

    def __repr__(self) -> str:
        return "CryptographyKdf()"

    def hkdf_sha256(self, secret: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
        if not 1 <= length <= _HKDF_MAX:
            raise ValueError(f"HKDF-SHA256 derives 1 to {_HKDF_MAX} bytes, not {length}")
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)

    def scrypt(
        self, passphrase: bytes, *, salt: bytes, length: int, n: int, r: int, p: int
    ) -> bytes:
        if n < 2 or n & (n - 1):
            raise ValueError(f"scrypt's n is a power of two above 1, not {n}")
        if r < 1 or p < 1 or length < 1:
            raise ValueError("scrypt's r, p and length are positive")
        return Scrypt(salt=salt, length=length, n=n, r=r, p=p).derive(passphrase)
