"""Cryptography as ports: authenticated encryption (`Aead`) and key derivation (`Kdf`).

The core never imports a crypto library: the vault service (`mcp_core.core.services.vault`)
seals and derives through these, and `mcp_core.adapters.crypto` implements them on the
`cryptography` package. Both are synchronous: each call is a few microseconds of CPU (scrypt,
~0.1 s, runs once per passphrase key when a vault starts).

Spec context: issue 3 "The vault" (AES-256-GCM through an `Aead` port, HKDF-SHA256 subkeys,
scrypt for a passphrase); DESIGN.md "Ports and adapters". Algorithms: AES-GCM (NIST SP 800-38D),
HKDF (RFC 5869), scrypt (RFC 7914).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["AEAD_KEY_SIZE", "AEAD_NONCE_SIZE", "AEAD_TAG_SIZE", "Aead", "DecryptionFailed", "Kdf"]

AEAD_KEY_SIZE = 32
AEAD_NONCE_SIZE = 12
AEAD_TAG_SIZE = 16


class DecryptionFailed(Exception):
    """The ciphertext does not authenticate under this key, nonce and associated data.

    Deliberately says nothing more: tampering, a wrong key and a ciphertext moved to another
    record are indistinguishable, and the message never carries key or plaintext material.
    """


@runtime_checkable
class Aead(Protocol):
    """AES-256-GCM: a 32-byte key, a 12-byte nonce that is never reused with the same key,
    and a 16-byte tag appended to the ciphertext.

    - `seal` returns ciphertext followed by the tag.
    - `open` returns the plaintext, or raises `DecryptionFailed` when anything (key, nonce,
      ciphertext, tag, associated data) differs from what was sealed.
    - A key or nonce of the wrong size raises `ValueError` (whose message holds no key bytes).
    """

    def seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes: ...


@runtime_checkable
class Kdf(Protocol):
    """Key derivation.

    - `hkdf_sha256`: HKDF (RFC 5869) with SHA-256, extract with `salt` then expand with `info`
      to `length` bytes (1 to 8160).
    - `scrypt`: scrypt (RFC 7914) of `passphrase` with `salt` and cost `n` (a power of two
      above 1), `r`, `p`, to `length` bytes.
    - Bad parameters raise `ValueError`.
    """

    def hkdf_sha256(self, secret: bytes, *, salt: bytes, info: bytes, length: int) -> bytes: ...

    def scrypt(
        self, passphrase: bytes, *, salt: bytes, length: int, n: int, r: int, p: int
    ) -> bytes: ...
