"""The authorization server's signing keys kept in the vault (`adapters.vault_keyset`): created
once, read back by the next process (tokens survive a restart), never stored in the clear,
rotated with an overlap, and agreed on by two nodes booting together."""

from __future__ import annotations

import os

import pytest
from vault.vault_testing import FakeClock, HookedStore, keyring, make_vault

from mcp_core.adapters.storage.memory import InMemoryCredentialStore
from mcp_core.adapters.token_verifiers import KeySetVerifier
from mcp_core.adapters.vault_keyset import (
    KEYSET_KIND,
    KEYSET_SERVER,
    VaultKeySet,
    load_keyset,
    rotate_keyset,
)
from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable
from mcp_core.ports.keys import SharedKeySet

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
DAY = 86_400.0
CLAIMS = {"iss": ISSUER, "sub": "u", "aud": f"{ISSUER}/mcp", "client_id": "c", "jti": "j"}


def _claims(clock: FakeClock) -> dict[str, object]:
    now = int(clock.wall())
    return {**CLAIMS, "iat": now, "exp": now + 300}


async def test_keys_are_created_once_and_read_back_by_the_next_process() -> None:
    store, clock, ring = InMemoryCredentialStore(), FakeClock(), keyring(("k1", os.urandom(32)))
    first = await load_keyset(make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock)
    token = first.sign(_claims(clock), headers={"typ": "at+jwt"})
    # "Restart": a new vault over the same store finds the same keys, and verifies the token.
    again = await load_keyset(make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock)
    assert again.current().kid == first.current().kid
    assert again.jwks() == first.jwks()
    assert again.verify(token, audience=f"{ISSUER}/mcp", issuer=ISSUER)["sub"] == "u"
    # At rest the record is sealed: no PEM, no key material in the clear.
    record = await store.get(KEYSET_SERVER, ISSUER, KEYSET_KIND)
    assert isinstance(record, CredentialRecord)
    assert b"PRIVATE KEY" not in record.ciphertext
    assert b"kid" not in record.ciphertext


async def test_old_keys_rotate_with_an_overlap_and_are_pruned_after_it() -> None:
    store, clock, ring = InMemoryCredentialStore(), FakeClock(), keyring(("k1", os.urandom(32)))
    vault = make_vault(store, ring, clock=clock)
    first = await load_keyset(vault, issuer=ISSUER, clock=clock, overlap_seconds=DAY)
    old_token = first.sign(_claims(clock), headers={"typ": "at+jwt"})
    clock.advance(31 * DAY)  # older than rotate_after (30 days): rotated on load
    second = await load_keyset(vault, issuer=ISSUER, clock=clock, overlap_seconds=DAY)
    assert second.current().kid != first.current().kid
    kids = {key["kid"] for key in second.jwks()["keys"]}
    assert kids == {first.current().kid, second.current().kid}  # the old one, in its overlap
    # The stored set is the rotated one.
    reread = await load_keyset(vault, issuer=ISSUER, clock=clock, overlap_seconds=DAY)
    assert reread.current().kid == second.current().kid
    # Past the overlap, a further rotation prunes the first key.
    clock.advance(2 * DAY)
    third = await rotate_keyset(vault, issuer=ISSUER, clock=clock, overlap_seconds=DAY)
    kids = {key["kid"] for key in third.jwks()["keys"]}
    assert first.current().kid not in kids
    assert third.verification_key(first.current().kid) is None
    assert old_token  # signed by a key that is gone: nothing verifies it any more


async def test_two_nodes_booting_together_agree_on_one_key_set() -> None:
    store, clock, ring = HookedStore(), FakeClock(), keyring(("k1", os.urandom(32)))
    node_a, node_b = make_vault(store, ring, clock=clock), make_vault(store, ring, clock=clock)
    loaded_by_b = []

    async def b_boots_first(record: CredentialRecord, expected: int | None) -> None:
        # Node B creates the set between node A's read (nothing there) and A's write.
        store.before_put = None
        loaded_by_b.append(await load_keyset(node_b, issuer=ISSUER, clock=clock))

    store.before_put = b_boots_first
    from_a = await load_keyset(node_a, issuer=ISSUER, clock=clock)
    assert loaded_by_b, "node B never booted: the race was not staged"
    assert from_a.current().kid == loaded_by_b[0].current().kid


async def test_a_record_that_is_not_a_key_set_is_a_clear_error() -> None:
    store, clock, ring = InMemoryCredentialStore(), FakeClock(), keyring(("k1", os.urandom(32)))
    vault = make_vault(store, ring, clock=clock)
    await vault.put(KEYSET_SERVER, ISSUER, KEYSET_KIND, b"{}", expected_version=None)
    with pytest.raises(ValueError, match=r"key set|format"):
        await load_keyset(vault, issuer=ISSUER, clock=clock)


async def test_nodes_sharing_the_vault_follow_each_others_rotations() -> None:
    store, clock, ring = InMemoryCredentialStore(), FakeClock(), keyring(("k1", os.urandom(32)))
    node_a = await VaultKeySet.open(
        make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock, refresh_interval=60.0
    )
    node_b = await VaultKeySet.open(
        make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock, refresh_interval=60.0
    )
    assert node_a.current().kid == node_b.current().kid
    assert isinstance(node_b, SharedKeySet)
    # Node A's process rotates the stored keys (an operator, or A booting past rotate_after).
    rotated = await rotate_keyset(make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock)
    clock.advance(6)  # past the unknown-kid rate limit (5 s), well inside the interval (60 s)
    await node_a.refresh(unknown_kid=True)
    assert node_a.current().kid == rotated.current().kid != node_b.current().kid
    token = node_a.sign(_claims(clock), headers={"typ": "at+jwt"})
    # B's verifier meets the unknown kid, refreshes at once, and accepts the token.
    verifier = KeySetVerifier(node_b, ISSUER, clock)
    info = await verifier.verify(token, resource=f"{ISSUER}/mcp")
    assert info.subject == "u"
    assert node_b.current().kid == rotated.current().kid
    # A flood of garbage kids does not hammer the store: one look per interval.
    reads = []
    original_get = store.get

    async def counting_get(*args: object) -> object:
        reads.append(args)
        return await original_get(*args)

    store.get = counting_get  # type: ignore[method-assign]
    for _ in range(20):
        await node_b.refresh(unknown_kid=True)
    assert len(reads) <= 1
    # Without any token, a node picks up the stored keys within one refresh interval.
    await rotate_keyset(make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock)
    clock.advance(61)
    await node_b.refresh()
    stored = await load_keyset(make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock)
    assert node_b.current().kid == stored.current().kid


async def test_a_vault_that_is_down_leaves_the_held_keys_serving() -> None:
    store, clock, ring = HookedStore(), FakeClock(), keyring(("k1", os.urandom(32)))
    node = await VaultKeySet.open(make_vault(store, ring, clock=clock), issuer=ISSUER, clock=clock)
    kid = node.current().kid

    async def down(operation: str) -> None:
        raise StoreUnavailable("down")

    store.after_read = down
    clock.advance(120)
    await node.refresh()  # logs, does not raise
    assert node.current().kid == kid
    assert node.sign(_claims(clock), headers={"typ": "at+jwt"})
