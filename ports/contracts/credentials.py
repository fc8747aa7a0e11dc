"""The `CredentialStore` contract (see `mcp_core.ports.credentials`)."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mcp_core.ports.credentials import CredentialRecord, CredentialStore, VersionConflict

from ._portal import Driver, driver

__all__ = ["CredentialStoreContract"]

Key = tuple[str, str, str]


def sealed(
    server: str, subject: str, kind: str, blob: bytes = b"\x00sealed", key_id: str = "k1"
) -> CredentialRecord:
    return CredentialRecord(
        server=server,
        subject=subject,
        kind=kind,
        version=0,
        key_id=key_id,
        ciphertext=blob,
        updated_at=1.0,
    )


class CredentialStoreContract:
    """Subclass and implement `make_store` (a store whose data is empty at the start: use a
    fresh database, schema or key prefix per call)."""

    max_examples = 40

    def make_store(self) -> CredentialStore:
        raise NotImplementedError

    @pytest.fixture
    def run(self) -> Iterator[Driver]:
        with driver() as d:
            yield d

    def test_put_then_get_round_trips_bytes_exactly(self, run: Driver) -> None:
        store = run.build(self.make_store)
        blob = bytes(range(256)) * 4
        stored = run(store.put, sealed("srv", "alice", "api", blob), expected_version=None)
        assert stored.version == 1
        got = run(store.get, "srv", "alice", "api")
        assert got == stored
        assert got is not None
        assert got.ciphertext == blob

    def test_create_refuses_an_existing_record(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.put, sealed("srv", "alice", "api", b"first"), expected_version=None)
        with pytest.raises(VersionConflict):
            run(store.put, sealed("srv", "alice", "api", b"second"), expected_version=None)
        got = run(store.get, "srv", "alice", "api")
        assert got is not None
        assert got.ciphertext == b"first"

    def test_stale_write_loses_and_changes_nothing(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.put, sealed("srv", "alice", "api", b"v1"), expected_version=None)
        run(store.put, sealed("srv", "alice", "api", b"v2"), expected_version=1)
        with pytest.raises(VersionConflict) as caught:
            run(store.put, sealed("srv", "alice", "api", b"stale"), expected_version=1)
        assert caught.value.actual == 2
        got = run(store.get, "srv", "alice", "api")
        assert got is not None
        assert (got.version, got.ciphertext) == (2, b"v2")

    def test_update_of_a_missing_record_is_a_conflict(self, run: Driver) -> None:
        store = run.build(self.make_store)
        with pytest.raises(VersionConflict):
            run(store.put, sealed("srv", "bob", "api"), expected_version=3)
        assert run(store.get, "srv", "bob", "api") is None

    def test_delete_with_and_without_a_version(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.put, sealed("srv", "alice", "api"), expected_version=None)
        with pytest.raises(VersionConflict):
            run(store.delete, "srv", "alice", "api", expected_version=7)
        assert run(store.get, "srv", "alice", "api") is not None
        assert run(store.delete, "srv", "alice", "api", expected_version=1) is True
        assert run(store.delete, "srv", "alice", "api") is False
        assert run(store.get, "srv", "alice", "api") is None

    def test_records_are_isolated_by_server_subject_and_kind(self, run: Driver) -> None:
        store = run.build(self.make_store)
        for server, subject, kind in [
            ("a", "u1", "api"),
            ("a", "u1", "oauth"),
            ("a", "u2", "api"),
            ("b", "u1", "api"),
            # separators inside names must not make two keys collide
            ("a:u1", "api", "x"),
            ("a", "u1:api", "x"),
        ]:
            run(
                store.put,
                sealed(server, subject, kind, f"{server}|{subject}|{kind}".encode()),
                expected_version=None,
            )
        assert [r.kind for r in run(store.list_subject, "a", "u1")] == ["api", "oauth"]
        listed = run(store.list_server, "a")
        assert [(r.subject, r.kind) for r in listed] == [
            ("u1", "api"),
            ("u1", "oauth"),
            ("u1:api", "x"),
            ("u2", "api"),
        ]
        got = run(store.get, "a:u1", "api", "x")
        assert got is not None
        assert got.ciphertext == b"a:u1|api|x"

    def test_model_agreement(self, run: Driver) -> None:
        contract = self
        keys = st.sampled_from(
            [
                ("s", "alice", "api"),
                ("s", "alice", "oauth"),
                ("s", "bob", "api"),
                ("t", "alice", "api"),
            ]
        )

        class Machine(RuleBasedStateMachine):
            @initialize()
            def start(self) -> None:
                self.store = run.build(contract.make_store)
                self.model: dict[Key, CredentialRecord] = {}

            @rule(
                key=keys, blob=st.binary(max_size=32), guess=st.one_of(st.none(), st.integers(1, 4))
            )
            def put(self, key: Key, blob: bytes, guess: int | None) -> None:
                current = self.model.get(key)
                actual = current.version if current else None
                record = sealed(*key, blob=blob)
                if guess != actual:
                    with pytest.raises(VersionConflict):
                        run(self.store.put, record, expected_version=guess)
                    return
                stored = run(self.store.put, record, expected_version=guess)
                assert stored.version == (guess or 0) + 1
                self.model[key] = attrs.evolve(record, version=stored.version)

            @rule(key=keys, guess=st.one_of(st.none(), st.integers(1, 4)))
            def delete(self, key: Key, guess: int | None) -> None:
                current = self.model.get(key)
                if guess is not None and (current is None or current.version != guess):
                    with pytest.raises(VersionConflict):
                        run(self.store.delete, *key, expected_version=guess)
                    return
                assert run(self.store.delete, *key, expected_version=guess) is (current is not None)
                self.model.pop(key, None)

            @invariant()
            def agree(self) -> None:
                if not hasattr(self, "model"):
                    return
                for server in ("s", "t"):
                    expected = sorted(
                        (r for k, r in self.model.items() if k[0] == server),
                        key=lambda r: (r.subject, r.kind),
                    )
                    got = run(self.store.list_server, server)
                    assert [(r.subject, r.kind, r.version, r.ciphertext) for r in got] == [
                        (r.subject, r.kind, r.version, r.ciphertext) for r in expected
                    ]

        Machine.TestCase.settings = settings(
            max_examples=self.max_examples, stateful_step_count=20, deadline=None
        )
        Machine.TestCase().runTest()
