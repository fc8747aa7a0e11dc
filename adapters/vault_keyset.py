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
"""

from __future__ import annotations

from typing import Final

from mcp_core.adapters.jwt_keys import InMemoryKeySet
from mcp_core.core.services.vault import Vault
from mcp_core.ports.credentials import VersionConflict
from mcp_core.ports.keys import SigningAlgorithm
from mcp_core.ports.system import Clock

__all__ = ["KEYSET_KIND", "KEYSET_SERVER", "load_keyset", "rotate_keyset"]

KEYSET_SERVER: Final = "mcp-core.authorization-server"
KEYSET_KIND: Final = "signing-keys"
_ATTEMPTS: Final = 5


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
