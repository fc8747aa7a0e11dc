"""The vault's pure parts: the credential envelope and the keyring (issue 3, "The vault").

No I/O, no clock, no randomness, no crypto library: the service that seals and opens records
is `mcp_core.core.services.vault`, over the `Aead` and `Kdf` ports. Design: `docs/vault.md`.
"""

from .envelope import (
    AAD_MAGIC,
    FORMAT_VERSION,
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
from .keys import (
    KEYRING_VARIABLE,
    KeyKind,
    Keyring,
    KeyringError,
    MasterKey,
    keyring_from_environ,
    next_key_id,
    parse_keyring,
)

__all__ = [
    "AAD_MAGIC",
    "FORMAT_VERSION",
    "KEYRING_VARIABLE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "AadFields",
    "EnvelopeError",
    "KeyKind",
    "Keyring",
    "KeyringError",
    "MasterKey",
    "SealedBlob",
    "check_name",
    "decode_aad",
    "decode_payload",
    "encode_aad",
    "encode_payload",
    "keyring_from_environ",
    "next_key_id",
    "parse_keyring",
]
