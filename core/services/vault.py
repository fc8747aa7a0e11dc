"""The vault: per-user credentials sealed with AES-256-GCM, kept in a `CredentialStore`.

Spec context: issue 3 "The vault"; DESIGN.md "Security defaults" (AAD that binds each
ciphertext to its record, key ids for rotation). The pure parts (the AAD encoding, the blob
layout, the keyring and its `KEYRING_SECRET` format) are `mcp_core.core.vault`; the design is
`docs/vault.md`.

How it works:
- Every master key of the keyring gives one 32-byte subkey per purpose, derived at start-up
  with HKDF-SHA256 (salt `HKDF_SALT`, info "mcp-core vault v1 credentials" followed by the key
  id, length-prefixed). A passphrase key is first stretched with scrypt (salt derived from its
  key id) and a warning is logged: a passphrase is weaker than 32 random bytes.
- `put` seals the data under the newest key with a fresh random 96-bit nonce (from the
  `Random` port) and associated data binding (format version, key id, server, subject, kind),
  then writes with compare-and-set: a writer that lost the race gets the store's
  `VersionConflict`, nothing is overwritten.
- `get` opens a record with the key its `key_id` names. A record under an older key is
  re-sealed under the newest one and written back with compare-and-set at the version it was
  read at; if another writer got there first, the record is read again (bounded), so the
  answer is never older than what the store held when the read began and nothing is lost. A
  write-back that fails with `StoreUnavailable` is logged and the read still answers.
- `rotate(server)` re-seals every record of a server that is not under the newest key, one
  compare-and-set at a time: it can stop at any point (a crash, a `StoreUnavailable`) and be
  run again, it skips what is already done, and it never overwrites a concurrent write.
- Secrets never reach a log line, a repr or an exception message: keys and plaintext are kept
  out of reprs, errors name the record (server, subject, kind, version, key id) and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from mcp_core.ports.credentials import (
    CredentialRecord,
    CredentialStore,
    StoreUnavailable,
    VersionConflict,
)
from mcp_core.ports.crypto import Aead, DecryptionFailed, Kdf
from mcp_core.ports.system import Clock, Random

from ..vault.envelope import (
    NONCE_SIZE,
    EnvelopeError,
    SealedBlob,
    check_name,
    decode_payload,
    encode_aad,
    encode_payload,
)
from ..vault.keys import (
    HKDF_SALT,
    KEY_SIZE,
    KEYRING_VARIABLE,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    KeyKind,
    Keyring,
    MasterKey,
    credentials_info,
    scrypt_salt,
)

__all__ = [
    "Credential",
    "CredentialInfo",
    "CredentialUnreadable",
    "RotationReport",
    "UnknownKey",
    "Unreadable",
    "Vault",
    "VaultError",
    "VersionConflict",
]

logger = logging.getLogger("mcp_core.vault")

# A read that keeps losing the write-back race gives up re-encrypting after this many tries and
# answers with what it read; rotation leaves such a record for its next run.
_ATTEMPTS = 3


class VaultError(Exception):
    """Base of the vault's own errors (the store's `VersionConflict` passes through as is)."""


class CredentialUnreadable(VaultError):
    """A stored record cannot be opened: tampered with, moved from another record, sealed under
    a different key with the same id, or not a sealed blob at all."""

    def __init__(self, record: CredentialRecord, reason: str) -> None:
        super().__init__(
            f"credential server={record.server!r} subject={record.subject!r} "
            f"kind={record.kind!r} (version {record.version}, key {record.key_id!r}) "
            f"cannot be decrypted: {reason}"
        )
        self.info = CredentialInfo.of(record)
        self.reason = reason


class UnknownKey(CredentialUnreadable):
    """The record was sealed under a key id the keyring does not hold."""


@attrs.frozen(kw_only=True)
class CredentialInfo:
    """What can be said about a record without decrypting it."""

    server: str
    subject: str
    kind: str
    version: int
    key_id: str
    updated_at: float

    @classmethod
    def of(cls, record: CredentialRecord) -> CredentialInfo:
        return cls(
            server=record.server,
            subject=record.subject,
            kind=record.kind,
            version=record.version,
            key_id=record.key_id,
            updated_at=record.updated_at,
        )


@attrs.frozen(kw_only=True)
class Credential:
    """A decrypted credential bundle: `data` is what `put` took (a dict or bytes), never shown
    in repr. `version` is what a following `put` passes as `expected_version`."""

    info: CredentialInfo
    data: dict[str, Any] | bytes = attrs.field(repr=False)

    @property
    def version(self) -> int:
        return self.info.version


@attrs.frozen(kw_only=True)
class Unreadable:
    """A record rotation could not open, and why (`CredentialUnreadable.reason`)."""

    info: CredentialInfo
    reason: str


@attrs.frozen(kw_only=True)
class RotationReport:
    """What one `rotate(server)` run did. `complete` when nothing is left under an older key."""

    server: str
    key_id: str
    reencrypted: int = 0
    already_current: int = 0
    vanished: int = 0
    # Records that kept changing under us; the next run (or a read) picks them up.
    contended: tuple[CredentialInfo, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.contended and not self.unreadable


class Vault:
    """Seal, open, list and rotate credentials; see the module docstring."""

    def __init__(
        self,
        *,
        store: CredentialStore,
        keyring: Keyring,
        aead: Aead,
        kdf: Kdf,
        random: Random,
        clock: Clock,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._aead = aead
        self._random = random
        self._clock = clock
        self._subkeys = {key.key_id: _derive(kdf, key) for key in keyring.keys}

    def __repr__(self) -> str:
        return f"Vault(key_ids={self._keyring.ids!r}, store={type(self._store).__name__})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The keyring's ids, newest first."""
        return self._keyring.ids

    @property
    def newest_key_id(self) -> str:
        return self._keyring.newest.key_id

    # ---- sealing ------------------------------------------------------------------------------

    def _seal(
        self, server: str, subject: str, kind: str, plaintext: bytes, expected_version: int | None
    ) -> CredentialRecord:
        key_id = self.newest_key_id
        nonce = self._random.token(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise VaultError(f"the Random port returned {len(nonce)} bytes for a nonce")
        aad = encode_aad(key_id=key_id, server=server, subject=subject, kind=kind)
        ciphertext = self._aead.seal(self._subkeys[key_id], nonce, plaintext, aad)
        return CredentialRecord(
            server=server,
            subject=subject,
            kind=kind,
            version=(expected_version or 0) + 1,
            key_id=key_id,
            ciphertext=SealedBlob(nonce=nonce, ciphertext=ciphertext).format(),
            updated_at=self._clock.wall(),
        )

    def _open(self, record: CredentialRecord) -> bytes:
        """The plaintext payload of a record, or `CredentialUnreadable`."""
        subkey = self._subkeys.get(record.key_id)
        if subkey is None:
            raise UnknownKey(
                record,
                f"{KEYRING_VARIABLE} holds no key {record.key_id!r} "
                f"(it holds {', '.join(self._keyring.ids)})",
            )
        try:
            blob = SealedBlob.parse(record.ciphertext)
            aad = encode_aad(
                key_id=record.key_id, server=record.server, subject=record.subject, kind=record.kind
            )
        except EnvelopeError as exc:
            raise CredentialUnreadable(record, f"malformed: {exc}") from None
        try:
            return self._aead.open(subkey, blob.nonce, blob.ciphertext, aad)
        except DecryptionFailed:
            logger.warning(
                "credential server=%r kind=%r version %d under key %r does not authenticate "
                "(tampered, moved from another record, or a different key under that id)",
                record.server,
                record.kind,
                record.version,
                record.key_id,
            )
            raise CredentialUnreadable(
                record,
                "it does not authenticate (tampered with, moved from another record, or "
                "sealed with a different key under the same id)",
            ) from None

    # ---- the API ------------------------------------------------------------------------------

    async def put(
        self,
        server: str,
        subject: str,
        kind: str,
        data: Mapping[str, Any] | bytes,
        *,
        expected_version: int | None,
    ) -> CredentialInfo:
        """Seal `data` under the newest key and store it if the record is at `expected_version`
        (None: it must not exist yet). Raises `VersionConflict` otherwise, changing nothing."""
        check_name("server", server)
        check_name("subject", subject)
        check_name("kind", kind)
        record = self._seal(server, subject, kind, encode_payload(data), expected_version)
        stored = await self._store.put(record, expected_version=expected_version)
        return CredentialInfo.of(stored)

    async def get(self, server: str, subject: str, kind: str) -> Credential | None:
        """The decrypted record, or None. Raises `CredentialUnreadable` when it cannot be opened.

        A record under an older key is re-encrypted under the newest and written back
        (compare-and-set); the returned version is the one the store holds afterwards.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            record = await self._store.get(server, subject, kind)
            if record is None:
                return None
            plaintext = self._open(record)
            if record.key_id != self.newest_key_id:
                try:
                    record = await self._reseal(record, plaintext)
                except VersionConflict:
                    if attempt < _ATTEMPTS:
                        continue  # someone wrote meanwhile: read what they wrote
                    # Still racing: what we read was true when we read it; leave the rewrite.
                except StoreUnavailable:
                    # The read succeeded; the rewrite is an optimisation a later read retries.
                    logger.warning(
                        "could not re-encrypt credential server=%r kind=%r under key %r: "
                        "the store is unavailable; it stays under key %r for now",
                        record.server,
                        record.kind,
                        self.newest_key_id,
                        record.key_id,
                        exc_info=True,
                    )
            return Credential(info=CredentialInfo.of(record), data=_decode(record, plaintext))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reseal(self, record: CredentialRecord, plaintext: bytes) -> CredentialRecord:
        fresh = self._seal(record.server, record.subject, record.kind, plaintext, record.version)
        stored = await self._store.put(fresh, expected_version=record.version)
        logger.info(
            "re-encrypted credential server=%r kind=%r from key %r to key %r (version %d)",
            record.server,
            record.kind,
            record.key_id,
            stored.key_id,
            stored.version,
        )
        return stored

    async def delete(
        self, server: str, subject: str, kind: str, *, expected_version: int | None = None
    ) -> bool:
        """Remove a record (only at `expected_version` when given); whether it existed."""
        return await self._store.delete(server, subject, kind, expected_version=expected_version)

    async def list_subject(self, server: str, subject: str) -> list[CredentialInfo]:
        """Metadata of a subject's records, by kind. Nothing is decrypted."""
        return [CredentialInfo.of(r) for r in await self._store.list_subject(server, subject)]

    async def list_server(self, server: str) -> list[CredentialInfo]:
        """Metadata of every record of a server, by (subject, kind). Nothing is decrypted."""
        return [CredentialInfo.of(r) for r in await self._store.list_server(server)]

    async def rotate(self, server: str) -> RotationReport:
        """Re-encrypt every record of `server` that is not under the newest key.

        Safe to interrupt and run again, and to run while other nodes read and write: each
        record moves with one compare-and-set. Records that cannot be opened are reported
        (not changed); `StoreUnavailable` propagates, and a rerun continues from there.
        """
        newest = self.newest_key_id
        reencrypted = already_current = vanished = 0
        contended: list[CredentialInfo] = []
        unreadable: list[Unreadable] = []
        for listed in await self._store.list_server(server):
            record: CredentialRecord | None = listed
            for _ in range(_ATTEMPTS):
                if record is None:
                    vanished += 1
                    break
                if record.key_id == newest:
                    already_current += 1
                    break
                try:
                    await self._reseal(record, self._open(record))
                except CredentialUnreadable as exc:
                    unreadable.append(Unreadable(info=exc.info, reason=exc.reason))
                    break
                except VersionConflict:
                    record = await self._store.get(record.server, record.subject, record.kind)
                    continue
                reencrypted += 1
                break
            else:
                contended.append(CredentialInfo.of(listed))
        report = RotationReport(
            server=server,
            key_id=newest,
            contended=tuple(contended),
            unreadable=tuple(unreadable),
            reencrypted=reencrypted,
            already_current=already_current,
            vanished=vanished,
        )
        logger.info(
            "rotation of server=%r to key %r: %d re-encrypted, %d already current, "
            "%d contended, %d unreadable",
            server,
            newest,
            report.reencrypted,
            report.already_current,
            len(report.contended),
            len(report.unreadable),
        )
        return report


def _derive(kdf: Kdf, key: MasterKey) -> bytes:
    material = key.secret
    if key.kind is KeyKind.PASSPHRASE:
        logger.warning(
            "%s key %r is a passphrase: it is weaker than 32 random bytes "
            "(generate a key with `mcp-core keys generate` and rotate to it)",
            KEYRING_VARIABLE,
            key.key_id,
        )
        material = kdf.scrypt(
            key.secret,
            salt=scrypt_salt(key.key_id),
            length=KEY_SIZE,
            n=SCRYPT_N,
            r=SCRYPT_R,
            p=SCRYPT_P,
        )
    return kdf.hkdf_sha256(
        material, salt=HKDF_SALT, info=credentials_info(key.key_id), length=KEY_SIZE
    )


def _decode(record: CredentialRecord, plaintext: bytes) -> dict[str, Any] | bytes:
    try:
        return decode_payload(plaintext)
    except EnvelopeError as exc:
        # Authenticated but not ours: written by a newer format, or a bug. Never quote it.
        raise CredentialUnreadable(record, f"the decrypted payload is malformed: {exc}") from None
