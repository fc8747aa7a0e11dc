"""The vault service (core/services/vault.py) over the in-memory store (the oracle).

Spec: issue 3 "The vault": records keyed by (server, subject, kind), sealed with AES-256-GCM
under AAD that binds them to their record, so a moved ciphertext fails; new writes under the
newest key, reads under any, a read under an old key re-encrypts; compare-and-set writes;
secrets never in logs, reprs or exceptions. docs/vault.md.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import anyio
import attrs
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core.core.services.vault import (
    Credential,
    CredentialInfo,
    CredentialUnreadable,
    UnknownKey,
)
from mcp_core.core.vault.keys import Keyring, MasterKey
from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable, VersionConflict

from .vault_testing import K1, K2, K3, FakeClock, FakeRandom, HookedStore, keyring, make_vault

pytestmark = pytest.mark.anyio

SECRET = {"api_key": "sk-live-SUPERSECRET-0123", "otp_seed": "JBSWY3DPEHPK3PXP"}
SECRET_MARKERS = ("SUPERSECRET", "JBSWY3DPEHPK3PXP")
RING1 = keyring(("k1", K1))
RING21 = keyring(("k2", K2), ("k1", K1))


async def record_of(store: HookedStore, server: str, subject: str, kind: str) -> CredentialRecord:
    record = await store.get(server, subject, kind)
    assert record is not None
    return record


# ---- sealing and opening --------------------------------------------------------------------


async def test_put_then_get_round_trips_dicts_and_bytes(store: HookedStore) -> None:
    vault = make_vault(store, RING1)
    info = await vault.put("srv", "alice", "form", SECRET, expected_version=None)
    assert (info.version, info.key_id) == (1, "k1")
    await vault.put("srv", "alice", "blob", b"\x00raw\xff", expected_version=None)
    got = await vault.get("srv", "alice", "form")
    assert got is not None
    assert got.data == SECRET
    assert got.info == info
    blob = await vault.get("srv", "alice", "blob")
    assert blob is not None
    assert blob.data == b"\x00raw\xff"
    assert await vault.get("srv", "bob", "form") is None


async def test_stored_bytes_are_sealed_under_the_documented_derivation(store: HookedStore) -> None:
    # An independent reading of docs/vault.md, written with `cryptography` directly.
    clock = FakeClock(1234.5)
    vault = make_vault(store, RING1, clock=clock, random=FakeRandom())
    await vault.put("srv", "alice", "form", {"k": "v"}, expected_version=None)
    record = await record_of(store, "srv", "alice", "form")
    assert record.updated_at == 1234.5
    subkey = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"mcp-core vault v1",
        info=b"mcp-core vault v1 credentials" + b"\x00\x00\x00\x02k1",
    ).derive(K1)
    aad = b"mcpvault\x01" + b"".join(
        len(f).to_bytes(4, "big") + f for f in (b"k1", b"srv", b"alice", b"form")
    )
    nonce = (1).to_bytes(12, "big")
    assert record.ciphertext[0] == 1
    assert record.ciphertext[1:13] == nonce
    assert AESGCM(subkey).decrypt(nonce, record.ciphertext[13:], aad) == b'\x01{"k":"v"}'


async def test_each_seal_uses_a_fresh_nonce(store: HookedStore) -> None:
    random = FakeRandom()
    vault = make_vault(store, RING1, random=random)
    await vault.put("srv", "alice", "form", SECRET, expected_version=None)
    first = (await record_of(store, "srv", "alice", "form")).ciphertext
    await vault.put("srv", "alice", "form", SECRET, expected_version=1)
    second = (await record_of(store, "srv", "alice", "form")).ciphertext
    assert first[1:13] != second[1:13]
    assert random.calls == 2


MOVES: dict[str, dict[str, Any]] = {
    "server": {"server": "other-srv"},
    "subject": {"subject": "mallory"},
    "kind": {"kind": "oauth"},
    "key id": {"key_id": "k1"},
    "separator shift": {"server": "srv:alice", "subject": "form"},
}


@pytest.mark.parametrize("move", list(MOVES))
async def test_a_ciphertext_moved_to_another_record_fails_to_decrypt(
    store: HookedStore, move: str
) -> None:
    vault = make_vault(store, RING21)
    await vault.put("srv", "alice", "form", SECRET, expected_version=None)
    original = await record_of(store, "srv", "alice", "form")
    assert original.key_id == "k2"
    moved = attrs.evolve(original, **MOVES[move])
    target = HookedStore()
    await target.put(moved, expected_version=None)
    with pytest.raises(CredentialUnreadable, match="does not authenticate") as caught:
        await make_vault(target, RING21).get(moved.server, moved.subject, moved.kind)
    assert caught.value.info.subject == moved.subject


async def test_a_ciphertext_relabelled_between_two_ids_of_one_secret_fails(
    store: HookedStore,
) -> None:
    # Same master secret under two ids: the key id still separates them (HKDF info and AAD).
    same = keyring(("a", K1), ("b", K1))
    await make_vault(store, same).put("srv", "alice", "form", SECRET, expected_version=None)
    record = await record_of(store, "srv", "alice", "form")
    assert record.key_id == "a"
    await store.put(attrs.evolve(record, key_id="b"), expected_version=1)
    with pytest.raises(CredentialUnreadable):
        await make_vault(store, same).get("srv", "alice", "form")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_flipping_any_stored_bit_is_refused(data: st.DataObject) -> None:
    async def scenario() -> None:
        store = HookedStore()
        vault = make_vault(store, RING1)
        await vault.put("srv", "alice", "form", SECRET, expected_version=None)
        record = await record_of(store, "srv", "alice", "form")
        bit = data.draw(st.integers(0, len(record.ciphertext) * 8 - 1), label="bit")
        blob = bytearray(record.ciphertext)
        blob[bit // 8] ^= 1 << (bit % 8)
        await store.put(attrs.evolve(record, ciphertext=bytes(blob)), expected_version=1)
        with pytest.raises(CredentialUnreadable) as caught:
            await vault.get("srv", "alice", "form")
        assert not any(marker in str(caught.value) for marker in SECRET_MARKERS)

    anyio.run(scenario)


async def test_a_malformed_blob_is_unreadable_with_a_clear_reason(store: HookedStore) -> None:
    record = CredentialRecord(
        server="srv",
        subject="alice",
        kind="form",
        version=0,
        key_id="k1",
        ciphertext=b"\x01short",
        updated_at=0.0,
    )
    await store.put(record, expected_version=None)
    with pytest.raises(CredentialUnreadable, match="malformed: sealed blob is 6 bytes"):
        await make_vault(store, RING1).get("srv", "alice", "form")


async def test_an_unknown_key_id_names_the_keys_held(store: HookedStore) -> None:
    await make_vault(store, keyring(("k3", K3))).put(
        "srv", "alice", "form", SECRET, expected_version=None
    )
    with pytest.raises(UnknownKey, match="KEYRING_SECRET holds no key 'k3' \\(it holds k2, k1\\)"):
        await make_vault(store, RING21).get("srv", "alice", "form")


async def test_bad_names_are_refused_before_anything_is_written(store: HookedStore) -> None:
    vault = make_vault(store, RING1)
    with pytest.raises(ValueError, match="subject must not be empty"):
        await vault.put("srv", "", "form", SECRET, expected_version=None)
    with pytest.raises(ValueError, match="not JSON-serializable"):
        await vault.put("srv", "alice", "form", {"x": object()}, expected_version=None)
    assert await store.list_server("srv") == []


# ---- compare-and-set --------------------------------------------------------------------------


async def test_cas_conflicts_are_surfaced_and_change_nothing(store: HookedStore) -> None:
    vault = make_vault(store, RING1)
    await vault.put("srv", "alice", "form", {"v": 1}, expected_version=None)
    with pytest.raises(VersionConflict) as caught:
        await vault.put("srv", "alice", "form", {"v": "again"}, expected_version=None)
    assert (caught.value.expected, caught.value.actual) == (None, 1)
    await vault.put("srv", "alice", "form", {"v": 2}, expected_version=1)
    with pytest.raises(VersionConflict):
        await vault.put("srv", "alice", "form", {"v": "stale"}, expected_version=1)
    got = await vault.get("srv", "alice", "form")
    assert got is not None
    assert (got.version, got.data) == (2, {"v": 2})
    with pytest.raises(VersionConflict):
        await vault.delete("srv", "alice", "form", expected_version=1)
    assert await vault.delete("srv", "alice", "form", expected_version=2) is True
    assert await vault.get("srv", "alice", "form") is None


# ---- keys: re-encrypt on read, rotation -------------------------------------------------------


async def test_a_read_under_an_old_key_re_encrypts_under_the_newest(
    store: HookedStore, clock: FakeClock
) -> None:
    await make_vault(store, RING1, clock=clock).put(
        "srv", "alice", "form", SECRET, expected_version=None
    )
    clock.advance(60)
    vault = make_vault(store, RING21, clock=clock)
    got = await vault.get("srv", "alice", "form")
    assert got is not None
    assert got.data == SECRET
    assert (got.version, got.info.key_id, got.info.updated_at) == (2, "k2", clock.wall())
    stored = await record_of(store, "srv", "alice", "form")
    assert (stored.version, stored.key_id) == (2, "k2")
    puts = store.puts
    again = await vault.get("srv", "alice", "form")
    assert again is not None
    assert again.info == got.info
    assert store.puts == puts  # under the newest key already: no write
    # A node still on the old keyring can no longer read it, and says why.
    with pytest.raises(UnknownKey):
        await make_vault(store, RING1).get("srv", "alice", "form")


async def test_a_write_racing_the_re_encryption_wins_and_is_what_the_read_returns(
    store: HookedStore,
) -> None:
    await make_vault(store, RING1).put("srv", "alice", "form", SECRET, expected_version=None)
    other_node = make_vault(store, RING21)

    raced = False

    async def race(operation: str) -> None:
        nonlocal raced
        raced = True
        # Between our read and our write-back, another node writes the record.
        await other_node.put("srv", "alice", "form", {"fresh": True}, expected_version=1)

    store.after_read = race
    got = await make_vault(store, RING21).get("srv", "alice", "form")
    assert got is not None
    assert (got.data, got.version, got.info.key_id) == ({"fresh": True}, 2, "k2")
    assert raced
    stored = await other_node.get("srv", "alice", "form")
    assert stored is not None
    assert (stored.data, stored.version) == ({"fresh": True}, 2)  # not overwritten


async def test_a_read_that_keeps_losing_the_race_answers_what_it_read(store: HookedStore) -> None:
    await make_vault(store, RING1).put("srv", "alice", "form", {"n": 0}, expected_version=None)
    old_node = make_vault(store, RING1)
    writes = 0

    async def race(record: CredentialRecord, expected: int | None) -> None:
        nonlocal writes
        if record.key_id == "k2":  # our write-back: another old node writes first, every time
            writes += 1
            store.before_put = None
            await old_node.put("srv", "alice", "form", {"n": writes}, expected_version=writes)
            store.before_put = race

    store.before_put = race
    got = await make_vault(store, RING21).get("srv", "alice", "form")
    assert got is not None
    assert writes == 3
    # The last read saw version 3 ({"n": 2}); its write-back lost to version 4; nothing lost.
    assert (got.data, got.version, got.info.key_id) == ({"n": 2}, 3, "k1")
    stored = await record_of(store, "srv", "alice", "form")
    assert (stored.version, stored.key_id) == (4, "k1")


async def test_a_write_back_failure_still_answers_the_read(
    store: HookedStore, caplog: pytest.LogCaptureFixture
) -> None:
    await make_vault(store, RING1).put("srv", "alice", "form", SECRET, expected_version=None)
    store.fail_after = store.puts
    vault = make_vault(store, RING21)
    got = await vault.get("srv", "alice", "form")
    assert got is not None
    assert (got.data, got.version, got.info.key_id) == (SECRET, 1, "k1")
    assert "could not re-encrypt credential server='srv'" in caplog.text
    store.fail_after = None
    again = await vault.get("srv", "alice", "form")  # the next read retries the rewrite
    assert again is not None
    assert (again.version, again.info.key_id) == (2, "k2")


async def seed(store: HookedStore, ring: Keyring, n: int, server: str = "srv") -> None:
    vault = make_vault(store, ring)
    for i in range(n):
        await vault.put(server, f"user{i}", "form", {"i": i}, expected_version=None)


async def test_rotate_re_encrypts_every_record_of_a_server(store: HookedStore) -> None:
    await seed(store, RING1, 5)
    await seed(store, RING1, 2, server="elsewhere")
    vault = make_vault(store, RING21)
    report = await vault.rotate("srv")
    assert (report.reencrypted, report.already_current, report.complete) == (5, 0, True)
    assert {r.key_id for r in await store.list_server("srv")} == {"k2"}
    assert {r.key_id for r in await store.list_server("elsewhere")} == {"k1"}
    for i in range(5):
        got = await vault.get("srv", f"user{i}", "form")
        assert got is not None
        assert got.data == {"i": i}
    again = await vault.rotate("srv")
    assert (again.reencrypted, again.already_current) == (0, 5)


async def test_an_interrupted_rotation_resumes_without_loss(store: HookedStore) -> None:
    await seed(store, RING1, 6)
    store.fail_after = store.puts + 2  # the backend dies after two re-encryptions
    vault = make_vault(store, RING21)
    with pytest.raises(StoreUnavailable):
        await vault.rotate("srv")
    assert [r.key_id for r in await store.list_server("srv")].count("k2") == 2
    store.fail_after = None
    report = await vault.rotate("srv")
    assert (report.reencrypted, report.already_current, report.complete) == (4, 2, True)
    for i in range(6):
        got = await vault.get("srv", f"user{i}", "form")
        assert got is not None
        assert got.data == {"i": i}


async def test_rotation_never_overwrites_a_concurrent_write(store: HookedStore) -> None:
    await seed(store, RING1, 3)
    other_node = make_vault(store, RING1)

    raced = False

    async def race(operation: str) -> None:
        nonlocal raced
        raced = True
        # After rotation listed the records, an old node rewrites user1.
        await other_node.put("srv", "user1", "form", {"new": 1}, expected_version=1)

    store.after_read = race
    report = await make_vault(store, RING21).rotate("srv")
    assert raced
    assert (report.reencrypted, report.complete) == (3, True)
    assert {r.key_id for r in await store.list_server("srv")} == {"k2"}
    got = await make_vault(store, RING21).get("srv", "user1", "form")
    assert got is not None
    assert (got.data, got.version) == ({"new": 1}, 3)


async def test_rotation_reports_unreadable_records_and_moves_on(store: HookedStore) -> None:
    await seed(store, RING1, 3)
    bad = await record_of(store, "srv", "user1", "form")
    await store.put(attrs.evolve(bad, ciphertext=bad.ciphertext[:-1] + b"\x00"), expected_version=1)
    report = await make_vault(store, RING21).rotate("srv")
    assert (report.reencrypted, report.complete) == (2, False)
    assert [(u.info.subject, u.reason[:24]) for u in report.unreadable] == [
        ("user1", "it does not authenticate")
    ]


async def test_rotation_gives_up_on_a_record_that_never_stops_changing(
    store: HookedStore,
) -> None:
    await seed(store, RING1, 1)
    old_node = make_vault(store, RING1)

    async def race(record: CredentialRecord, expected: int | None) -> None:
        if record.key_id == "k2":
            store.before_put = None
            await old_node.put("srv", "user0", "form", {"i": 9}, expected_version=expected)
            store.before_put = race

    store.before_put = race
    report = await make_vault(store, RING21).rotate("srv")
    assert report.complete is False
    assert [c.subject for c in report.contended] == ["user0"]


# ---- metadata and passphrases -----------------------------------------------------------------


async def test_listing_gives_metadata_only(store: HookedStore, clock: FakeClock) -> None:
    vault = make_vault(store, RING1, clock=clock)
    await vault.put("srv", "alice", "oauth", SECRET, expected_version=None)
    await vault.put("srv", "alice", "form", SECRET, expected_version=None)
    await vault.put("srv", "bob", "form", SECRET, expected_version=None)
    listed = await vault.list_subject("srv", "alice")
    assert listed == [
        CredentialInfo(
            server="srv",
            subject="alice",
            kind=kind,
            version=1,
            key_id="k1",
            updated_at=clock.wall(),
        )
        for kind in ("form", "oauth")
    ]
    assert [(i.subject, i.kind) for i in await vault.list_server("srv")] == [
        ("alice", "form"),
        ("alice", "oauth"),
        ("bob", "form"),
    ]
    assert not hasattr(listed[0], "data")


PASSPHRASE = "a long passphrase for the vault"


async def test_a_passphrase_key_works_and_is_flagged(
    store: HookedStore, caplog: pytest.LogCaptureFixture
) -> None:
    ring = Keyring((MasterKey.passphrase("pp", PASSPHRASE),))
    with caplog.at_level(logging.WARNING, logger="mcp_core.vault"):
        vault = make_vault(store, ring)
    assert "KEYRING_SECRET key 'pp' is a passphrase: it is weaker than 32 random bytes" in (
        caplog.text
    )
    assert PASSPHRASE not in caplog.text
    await vault.put("srv", "alice", "form", SECRET, expected_version=None)
    got = await make_vault(store, ring).get("srv", "alice", "form")
    assert got is not None
    assert got.data == SECRET
    other = Keyring((MasterKey.passphrase("pp", PASSPHRASE + "!"),))
    with pytest.raises(CredentialUnreadable):
        await make_vault(store, other).get("srv", "alice", "form")


# ---- secrets stay secret ----------------------------------------------------------------------


def _leaks(text: str) -> list[str]:
    markers = [*SECRET_MARKERS, PASSPHRASE, base64.b64encode(K1).decode(), repr(K1)[2:20]]
    markers += [base64.b64encode(K2).decode(), K2.hex(), K1.hex()]
    return [m for m in markers if m in text]


async def test_secrets_never_reach_logs_reprs_or_errors(
    store: HookedStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ring = Keyring((MasterKey.random("k2", K2), MasterKey.passphrase("k1", PASSPHRASE)))
    old = make_vault(store, Keyring((MasterKey.passphrase("k1", PASSPHRASE),)))
    await old.put("srv", "alice", "form", SECRET, expected_version=None)
    await old.put("srv", "bob", "form", SECRET, expected_version=None)
    vault = make_vault(store, ring)
    got = await vault.get("srv", "alice", "form")
    assert got is not None
    report = await vault.rotate("srv")
    bob = await record_of(store, "srv", "bob", "form")
    errors: list[BaseException] = []
    with pytest.raises(VersionConflict) as conflict:
        await vault.put("srv", "alice", "form", SECRET, expected_version=None)
    errors.append(conflict.value)
    moved = attrs.evolve(bob, subject="mallory")
    await store.put(moved, expected_version=None)
    with pytest.raises(CredentialUnreadable) as unreadable:
        await vault.get("srv", "mallory", "form")
    errors.append(unreadable.value)
    texts = [
        caplog.text,
        repr(vault),
        str(vault),
        repr(got),
        str(got),
        repr(report),
        repr(ring),
        repr(await vault.list_server("srv")),
        *(str(e) for e in errors),
        *(repr(e) for e in errors),
    ]
    assert "re-encrypted credential" in caplog.text
    assert [leak for text in texts for leak in _leaks(text)] == []
    assert repr(vault) == "Vault(key_ids=('k2', 'k1'), store=HookedStore)"
    assert "data" not in repr(got)


async def test_credentials_compare_by_content() -> None:
    info = CredentialInfo(server="s", subject="u", kind="k", version=1, key_id="k1", updated_at=0)
    assert Credential(info=info, data={"x": 1}) == Credential(info=info, data={"x": 1})
    assert Credential(info=info, data=b"x").version == 1
