"""The authorization server's signing keys, kept in the vault: encrypted at rest, shared by nodes.

Issue 4 ("signed with server keys behind the `KeySet` port ..., rotated with an overlap
period, published in JWKS"). An `InMemoryKeySet` signs and verifies; this module persists it
so that tokens survive a restart and every node of a deployment signs with the same keys.

The whole key set (private keys in PKCS#8, `InMemoryKeySet.to_bytes`) is one vault record:
server `mcp-core.authorization-server`, subject the issuer URL, kind `signing-keys`. The vault
seals it with AES-256-GCM under the `KEYRING_SECRET` keys, bound to that record, so the private
keys are never on disk in the clear, and `mcp-core keys rotate` re-encrypts it like any
credential.

`load_keyset` reads the record, or makes a new key set and stores it (compare-and-set: two
nodes booting together agree on one set, the loser reads the winner's). When the current key is
older than `rotate_after` seconds it rotates: a new current key, the previous one kept for
`overlap_seconds` (at least the access-token lifetime, so no token outlives the key that
verifies it), keys past their overlap pruned, and the result written back, again
compare-and-set. `rotate_keyset` does the same on demand.

`VaultKeySet` is the `SharedKeySet` a running server holds: an `InMemoryKeySet` that
`refresh()` re-reads from the vault every `refresh_interval` seconds (rotating there when the
current key is due), and at once (rate-limited) when a token names a key it does not know. So a
node that rotates publishes the new key to the others within one interval, every node signs with
the same current key, and a node that never restarts still rotates. A vault that is down at
refresh time leaves the held keys serving; the next refresh tries again.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import anyio

from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.core.services.vault import Vault, VaultError
from mcp_core.ports.credentials import StoreUnavailable, VersionConflict
from mcp_core.ports.keys import SigningAlgorithm, SigningKey, VerificationKey
from mcp_core.ports.system import Clock

__all__ = ["KEYSET_KIND", "KEYSET_SERVER", "VaultKeySet", "load_keyset", "rotate_keyset"]

log = logging.getLogger(__name__)

KEYSET_SERVER: Final = "mcp-core.authorization-server"
KEYSET_KIND: Final = "signing-keys"
_ATTEMPTS: Final = 5
# The options of `load_keyset` that a `VaultKeySet` passes on at every refresh.
_LOAD_OPTIONS: Final = ("algorithm", "overlap_seconds", "rotate_after")


def _decode(
    data: object, *, algorithm: SigningAlgorithm, overlap_seconds: float, clock: Clock
) -> InMemoryKeySet:
    if not isinstance(data, bytes):
        raise ValueError("the signing-keys record does not hold a key set")
    return InMemoryKeySet.from_bytes(
        data, algorithm=algorithm, overlap_seconds=overlap_seconds, clock=clock
    )


async def load_keyset(
    vault: Vault,
    *,
    issuer: str,
    clock: Clock,
    algorithm: SigningAlgorithm = "EdDSA",
    overlap_seconds: float = 86_400.0,
    rotate_after: float | None = 30 * 86_400.0,
) -> InMemoryKeySet:
    """The issuer's key set from the vault, created (and stored) on first use, rotated when
    its current key is older than `rotate_after` (None: never here)."""
    conflict: VersionConflict | None = None
    for _ in range(_ATTEMPTS):
        stored = await vault.get(KEYSET_SERVER, issuer, KEYSET_KIND)
        if stored is None:
            keyset = InMemoryKeySet(algorithm, overlap_seconds=overlap_seconds, clock=clock)
            version = None
        else:
            keyset = _decode(
                stored.data, algorithm=algorithm, overlap_seconds=overlap_seconds, clock=clock
            )
            version = stored.version
            now = clock.wall()
            if rotate_after is None or now - keyset.current().created_at < rotate_after:
                return keyset
            keyset.rotate(now)
            keyset.prune(now)
        try:
            await vault.put(
                KEYSET_SERVER, issuer, KEYSET_KIND, keyset.to_bytes(), expected_version=version
            )
        except VersionConflict as exc:
            conflict = exc  # another node wrote first: use what it wrote
            continue
        return keyset
    # The signing keys kept changing under us, _ATTEMPTS times in a row.
    assert conflict is not None
    raise conflict


async def rotate_keyset(
    vault: Vault,
    *,
    issuer: str,
    clock: Clock,
    algorithm: SigningAlgorithm = "EdDSA",
    overlap_seconds: float = 86_400.0,
) -> InMemoryKeySet:
    """Rotate the issuer's stored keys now (a new current key; the old one kept for
    `overlap_seconds`) and return the stored result."""
    return await load_keyset(
        vault,
        issuer=issuer,
        clock=clock,
        algorithm=algorithm,
        overlap_seconds=overlap_seconds,
        rotate_after=-1.0,
    )


class VaultKeySet:
    """A `SharedKeySet` kept in the vault (see the module docstring). Build it with `open`, or
    from a key set already loaded (`initial`) when the first read had to happen elsewhere."""

    def __init__(
        self,
        vault: Vault,
        *,
        issuer: str,
        clock: Clock,
        initial: InMemoryKeySet,
        algorithm: SigningAlgorithm = "EdDSA",
        overlap_seconds: float = 86_400.0,
        rotate_after: float | None = 30 * 86_400.0,
        refresh_interval: float = 60.0,
        unknown_kid_interval: float = 5.0,
    ) -> None:
        if refresh_interval <= 0 or unknown_kid_interval <= 0:
            raise ValueError("refresh intervals must be positive")
        self._vault = vault
        self._issuer = issuer
        self._clock = clock
        self._keys = initial
        self._options: dict[str, Any] = {
            "algorithm": algorithm,
            "overlap_seconds": overlap_seconds,
            "rotate_after": rotate_after,
        }
        self._interval = refresh_interval
        self._unknown_interval = unknown_kid_interval
        self._next_refresh = clock.now() + refresh_interval
        self._last_attempt = clock.now()
        self._lock: anyio.Lock | None = None

    @classmethod
    async def open(cls, vault: Vault, *, issuer: str, clock: Clock, **options: Any) -> VaultKeySet:
        """Load (or create) the issuer's keys from the vault and hold them."""
        load_options = {k: v for k, v in options.items() if k in _LOAD_OPTIONS}
        initial = await load_keyset(vault, issuer=issuer, clock=clock, **load_options)
        return cls(vault, issuer=issuer, clock=clock, initial=initial, **options)

    def __repr__(self) -> str:
        return f"VaultKeySet(issuer={self._issuer!r}, kid={self.current().kid!r})"

    def _due(self, unknown_kid: bool) -> bool:
        now = self._clock.now()
        return now >= self._next_refresh or (
            unknown_kid and now >= self._last_attempt + self._unknown_interval
        )

    async def refresh(self, *, unknown_kid: bool = False) -> None:
        if not self._due(unknown_kid):
            return
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if not self._due(unknown_kid):
                return  # another task refreshed while this one waited
            self._last_attempt = self._clock.now()
            self._next_refresh = self._last_attempt + self._interval
            try:
                self._keys = await load_keyset(
                    self._vault, issuer=self._issuer, clock=self._clock, **self._options
                )
            except (StoreUnavailable, VersionConflict, VaultError, ValueError) as exc:
                log.warning(
                    "signing keys of %s not refreshed from the vault (%s); the held keys serve",
                    self._issuer,
                    type(exc).__name__,
                )

    # ---- KeySet: the keys held now ----

    def current(self) -> SigningKey:
        return self._keys.current()

    def all_keys(self) -> tuple[SigningKey, ...]:
        return self._keys.all_keys()

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any]) -> str:
        return self._keys.sign(claims, headers=headers)

    def jwks(self) -> dict[str, Any]:
        return self._keys.jwks()

    def verification_key(self, kid: str) -> VerificationKey | None:
        return self._keys.verification_key(kid)

    def rotate(self, now: float) -> SigningKey:
        """Rotate the held keys only (this node, until the next refresh): to rotate for every
        node, `rotate_keyset` in the vault; the next refresh picks it up."""
        return self._keys.rotate(now)

    def prune(self, now: float) -> tuple[SigningKey, ...]:
        return self._keys.prune(now)
