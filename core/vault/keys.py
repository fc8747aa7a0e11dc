"""The vault's keyring: master keys with ids, newest first, and the `KEYRING_SECRET` format.

Pure: the value of the variable comes in as a string (read by whoever owns the environment),
random bytes for a new key come in as an argument, and derivation is described here (salts,
labels, scrypt cost) but performed through the `Kdf` port by the vault service.

Spec context: issue 3 "The vault" ("a master secret from KEYRING_SECRET (32 random bytes,
base64) ... a passphrase instead of random bytes goes through scrypt and is flagged in the
logs. Several keys with ids ... A missing or malformed secret is a clear startup error, never a
silent plaintext fallback"). The full design is `docs/vault.md`.

`KEYRING_SECRET`, the format:

```
KEYRING_SECRET = ENTRY ("," ENTRY)*          newest key first
ENTRY          = [KEY_ID ":"] SECRET
SECRET         = BASE64                      exactly 32 bytes once decoded
               | "passphrase:" TEXT          explicitly marked; at least 12 characters, no ","
KEY_ID         = [A-Za-z0-9][A-Za-z0-9_.-]{0,31}, not "passphrase"
```

- The first entry is the newest key: new writes are sealed with it. Reads accept every listed
  key; a record read under an older key is re-encrypted under the newest one.
- A lone entry may omit its id: it is key `k1` (what `mcp-core keys generate` prints is
  `k1:<base64>`, the same key). With several entries every entry names its id, and ids are
  unique.
- BASE64 is the standard or the URL-safe alphabet, padding optional. Anything that is not
  base64 of exactly 32 bytes is an error unless it is marked `passphrase:`: a typo never
  silently turns a key into a weak passphrase.
- Whitespace around entries is ignored. Errors name the variable, the entry (by position and,
  when it is well formed, by id) and what is wrong; they never quote secret material.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterable, Mapping

import attrs

from .envelope import encode_fields

__all__ = [
    "DEFAULT_KEY_ID",
    "HKDF_SALT",
    "KEYRING_VARIABLE",
    "KEY_SIZE",
    "MIN_PASSPHRASE_LENGTH",
    "PASSPHRASE_PREFIX",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "KeyKind",
    "Keyring",
    "KeyringError",
    "MasterKey",
    "check_key_id",
    "credentials_info",
    "keyring_from_environ",
    "next_key_id",
    "parse_keyring",
    "scrypt_salt",
]

KEYRING_VARIABLE = "KEYRING_SECRET"
KEY_SIZE = 32
PASSPHRASE_PREFIX = "passphrase:"
MIN_PASSPHRASE_LENGTH = 12
DEFAULT_KEY_ID = "k1"

# Key derivation (docs/vault.md "Key derivation"). Changing any of these changes every key.
HKDF_SALT = b"mcp-core vault v1"
_CREDENTIALS_LABEL = b"mcp-core vault v1 credentials"
_SCRYPT_LABEL = b"mcp-core vault v1 scrypt"
# RFC 7914 parameters: 2**15 * 8 * 128 bytes = 32 MiB of memory, ~0.1 s, once per key at start.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1

_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
_NUMBERED = re.compile(r"k([0-9]{1,9})\Z")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}\Z")


class KeyringError(ValueError):
    """The keyring configuration is missing or malformed (the message says which and why)."""


class KeyKind(enum.Enum):
    RANDOM = "random"
    PASSPHRASE = "passphrase"


def check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise KeyringError(
            "a key id is 1 to 32 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    if key_id == "passphrase":
        raise KeyringError("'passphrase' is reserved and cannot be a key id")
    return key_id


def _key_id_validator(_: object, __: object, key_id: str) -> None:
    check_key_id(key_id)


def credentials_info(key_id: str) -> bytes:
    """HKDF `info` of the subkey that seals credentials under master key `key_id`."""
    return _CREDENTIALS_LABEL + encode_fields(check_key_id(key_id))


def scrypt_salt(key_id: str) -> bytes:
    """scrypt salt for a passphrase key: fixed per key id, so the same passphrase and id always
    give the same key (there is nowhere to keep a random salt but the secret itself)."""
    return _SCRYPT_LABEL + encode_fields(check_key_id(key_id))


@attrs.frozen(kw_only=True)
class MasterKey:
    """One master key: 32 random bytes, or a passphrase (its UTF-8 bytes) to stretch with scrypt.

    `secret` is left out of repr, and `str()` is the repr: print it freely.
    """

    key_id: str = attrs.field(validator=_key_id_validator)
    kind: KeyKind
    secret: bytes = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        if self.kind is KeyKind.RANDOM and len(self.secret) != KEY_SIZE:
            raise KeyringError(f"a random master key is {KEY_SIZE} bytes, not {len(self.secret)}")
        if self.kind is KeyKind.PASSPHRASE:
            _check_passphrase(self.secret)

    @classmethod
    def random(cls, key_id: str, secret: bytes) -> MasterKey:
        """A key from `secret`, which must be 32 bytes from a cryptographic random source."""
        return cls(key_id=key_id, kind=KeyKind.RANDOM, secret=bytes(secret))

    @classmethod
    def passphrase(cls, key_id: str, text: str) -> MasterKey:
        try:
            secret = text.encode("utf-8")
        except UnicodeEncodeError:
            raise KeyringError("a passphrase must be encodable as UTF-8") from None
        return cls(key_id=key_id, kind=KeyKind.PASSPHRASE, secret=secret)

    def entry(self) -> str:
        """This key as one `KEYRING_SECRET` entry, `ID:SECRET`. Secret material."""
        if self.kind is KeyKind.PASSPHRASE:
            return f"{self.key_id}:{PASSPHRASE_PREFIX}{self.secret.decode('utf-8')}"
        return f"{self.key_id}:{base64.b64encode(self.secret).decode('ascii')}"


def _check_passphrase(secret: bytes) -> None:
    try:
        text = secret.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyringError("a passphrase must be UTF-8") from None
    if text != text.strip():
        raise KeyringError("a passphrase must not start or end with whitespace")
    if len(text) < MIN_PASSPHRASE_LENGTH:
        raise KeyringError(
            f"a passphrase is at least {MIN_PASSPHRASE_LENGTH} characters "
            f"(better: 32 random bytes from `mcp-core keys generate`)"
        )
    if "," in text:
        raise KeyringError("a passphrase cannot contain ',' (it separates keyring entries)")


def _check_keys(_: object, __: object, keys: tuple[MasterKey, ...]) -> None:
    if not keys:
        raise KeyringError("a keyring holds at least one key")
    seen: set[str] = set()
    for key in keys:
        if key.key_id in seen:
            raise KeyringError(f"key id {key.key_id!r} appears twice")
        seen.add(key.key_id)


@attrs.frozen
class Keyring:
    """Master keys, newest first. Its repr lists key ids only."""

    keys: tuple[MasterKey, ...] = attrs.field(validator=_check_keys)

    def __repr__(self) -> str:
        return f"Keyring(ids={self.ids!r})"

    __str__ = __repr__

    @property
    def newest(self) -> MasterKey:
        return self.keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key.key_id for key in self.keys)

    def get(self, key_id: str) -> MasterKey | None:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        return None

    def with_newest(self, key: MasterKey) -> Keyring:
        """This keyring with `key` in front (the new newest); the older keys are kept."""
        return Keyring((key, *self.keys))

    def secret_value(self) -> str:
        """The `KEYRING_SECRET` value that parses back to this keyring. Secret material."""
        return ",".join(key.entry() for key in self.keys)


def next_key_id(existing: Iterable[str]) -> str:
    """`k<N+1>` where `k<N>` is the highest numbered id in `existing` (`k1` if none)."""
    taken = set(existing)
    numbers = [int(m.group(1)) for m in map(_NUMBERED.match, taken) if m is not None]
    n = max(numbers, default=0) + 1
    while f"k{n}" in taken:
        n += 1
    return f"k{n}"


def _decode_base64(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    for altchars in (b"+/", b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _parse_entry(entry: str, position: int, total: int, variable: str) -> MasterKey:
    where = f"{variable}: entry {position}" if total > 1 else variable
    if not entry:
        raise KeyringError(f"{where} is empty (a stray ',' ?)")
    head, colon, rest = entry.partition(":")
    if colon and head != "passphrase":
        try:
            key_id = check_key_id(head)
        except KeyringError as exc:
            raise KeyringError(f"{where}: the text before ':' is not a key id: {exc}") from None
        secret = rest.strip()
        where = f"{where} (key {key_id})"
    else:
        if total > 1:
            raise KeyringError(
                f"{where} has no key id: with several keys each entry is ID:SECRET, newest "
                "first (and a passphrase cannot contain ',')"
            )
        key_id, secret = DEFAULT_KEY_ID, entry
    if secret.startswith(PASSPHRASE_PREFIX):
        try:
            return MasterKey.passphrase(key_id, secret[len(PASSPHRASE_PREFIX) :].strip())
        except KeyringError as exc:
            raise KeyringError(f"{where}: {exc}") from None
    if not secret:
        raise KeyringError(f"{where}: the secret after ':' is empty")
    raw = _decode_base64(secret)
    if raw is None:
        hint = (
            " (it looks like hex: use base64)"
            if _HEX_KEY.match(secret)
            else " (a passphrase must be marked: passphrase:TEXT)"
        )
        raise KeyringError(
            f"{where} is not base64{hint}; generate a key with `mcp-core keys generate`"
        )
    if len(raw) != KEY_SIZE:
        hint = " (it looks like hex: use base64)" if _HEX_KEY.match(secret) else ""
        raise KeyringError(
            f"{where} decodes to {len(raw)} bytes, not {KEY_SIZE}{hint}; generate a key with "
            "`mcp-core keys generate`, or mark a passphrase as passphrase:TEXT"
        )
    return MasterKey.random(key_id, raw)


def parse_keyring(value: str | None, *, variable: str = KEYRING_VARIABLE) -> Keyring:
    """The keyring a `KEYRING_SECRET` value describes (format in the module docstring).

    `None` (unset) and malformed values raise `KeyringError`, whose message names `variable`.
    """
    if value is None:
        raise KeyringError(
            f"{variable} is not set: the vault needs a key to encrypt credentials; generate one "
            f"with `mcp-core keys generate` and set {variable} to what it prints"
        )
    stripped = value.strip()
    if not stripped:
        raise KeyringError(f"{variable} is empty; set it to what `mcp-core keys generate` prints")
    entries = [entry.strip() for entry in stripped.split(",")]
    keys = [
        _parse_entry(entry, position, len(entries), variable)
        for position, entry in enumerate(entries, 1)
    ]
    seen: set[str] = set()
    for key in keys:
        if key.key_id in seen:
            raise KeyringError(f"{variable}: key id {key.key_id!r} appears twice")
        seen.add(key.key_id)
    return Keyring(tuple(keys))


def keyring_from_environ(
    environ: Mapping[str, str], *, variable: str = KEYRING_VARIABLE
) -> Keyring:
    """`parse_keyring(environ.get(variable))`: pass `os.environ` from the edge."""
    return parse_keyring(environ.get(variable), variable=variable)
