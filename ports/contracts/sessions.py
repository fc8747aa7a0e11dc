"""The `SessionStore` contract (see `mcp_core.ports.sessions`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mcp_core.ports.sessions import SessionLimitReached, SessionRecord, SessionStore

from ._portal import Driver, driver

__all__ = ["SessionStoreContract"]

IDLE = 100.0


def record(session_id: str, now: float, **changes: Any) -> SessionRecord:
    base = SessionRecord(
        session_id=session_id,
        protocol_version="2025-11-25",
        state="ready",
        created_at=now,
        last_active=now,
        client_capabilities={"sampling": {}},
        client_info={"name": "contract", "version": "1"},
        subject="user-1",
    )
    return attrs.evolve(base, **changes)


class SessionStoreContract:
    """Subclass and implement `make_store`; every test here must pass."""

    max_examples = 60

    def make_store(self, *, idle_timeout: float, max_sessions: int) -> SessionStore:
        raise NotImplementedError

    @pytest.fixture
    def run(self) -> Iterator[Driver]:
        with driver() as d:
            yield d

    def _store(self, run: Driver, *, max_sessions: int = 100) -> SessionStore:
        return run.build(lambda: self.make_store(idle_timeout=IDLE, max_sessions=max_sessions))

    def test_created_record_reads_back_equal(self, run: Driver) -> None:
        store = self._store(run)
        rec = record("a", 0.0, subscriptions=frozenset({"x://1"}), log_level="info")
        run(store.create, rec)
        assert run(store.get, "a", 1.0) == rec

    def test_the_client_binding_round_trips(self, run: Driver) -> None:
        # The session is bound to the subject and the OAuth client of the token that opened
        # it; every node reads both back from the store to enforce the binding.
        store = self._store(run)
        bound = record("a", 0.0, client_id="client-a")
        unbound = record("b", 0.0, subject=None, client_id=None)
        run(store.create, bound)
        run(store.create, unbound)
        assert run(store.get, "a", 1.0) == bound
        assert run(store.get, "b", 1.0) == unbound
        run(store.put, attrs.evolve(bound, state="closed"))
        got = run(store.get, "a", 1.0)
        assert got is not None
        assert (got.subject, got.client_id, got.state) == ("user-1", "client-a", "closed")
        run(store.touch, "a", 2.0)
        got = run(store.get, "a", 2.0)
        assert got is not None
        assert got.client_id == "client-a"
        # Exact strings: no trimming, case folding or empty-to-None conversion.
        odd = record("c", 0.0, client_id=" Client-Ä\u2603 ")
        empty = record("d", 0.0, client_id="")
        run(store.create, odd)
        run(store.create, empty)
        assert run(store.get, "c", 1.0) == odd
        assert run(store.get, "d", 1.0) == empty

    def test_unknown_session_reads_none(self, run: Driver) -> None:
        assert run(self._store(run).get, "nope", 0.0) is None

    def test_duplicate_id_is_refused_and_keeps_the_first(self, run: Driver) -> None:
        store = self._store(run)
        run(store.create, record("a", 0.0))
        with pytest.raises(ValueError, match="taken"):
            run(store.create, record("a", 0.0, subject="intruder"))
        got = run(store.get, "a", 0.0)
        assert got is not None
        assert got.subject == "user-1"

    def test_idle_session_expires(self, run: Driver) -> None:
        store = self._store(run)
        run(store.create, record("a", 0.0))
        assert run(store.get, "a", IDLE) is not None
        assert run(store.get, "a", IDLE + 1) is None
        # and it is gone, not merely hidden
        assert run(store.get, "a", 0.0) is None

    def test_touch_keeps_a_session_alive(self, run: Driver) -> None:
        store = self._store(run)
        run(store.create, record("a", 0.0))
        run(store.touch, "a", IDLE - 1)
        got = run(store.get, "a", IDLE + 10)
        assert got is not None
        assert got.last_active == IDLE - 1

    def test_put_replaces_and_unknown_put_fails(self, run: Driver) -> None:
        store = self._store(run)
        run(store.create, record("a", 0.0))
        run(store.put, record("a", 0.0, state="closed", log_level="error"))
        got = run(store.get, "a", 0.0)
        assert got is not None
        assert (got.state, got.log_level) == ("closed", "error")
        with pytest.raises(KeyError):
            run(store.put, record("b", 0.0))
        assert run(store.get, "b", 0.0) is None

    def test_delete_reports_whether_it_existed(self, run: Driver) -> None:
        store = self._store(run)
        run(store.create, record("a", 0.0))
        assert run(store.delete, "a") is True
        assert run(store.delete, "a") is False
        assert run(store.get, "a", 0.0) is None

    def test_sweep_removes_exactly_the_expired(self, run: Driver) -> None:
        store = self._store(run)
        run(store.create, record("old", 0.0))
        run(store.create, record("new", 50.0))
        assert sorted(run(store.sweep, IDLE + 10)) == ["old"]
        assert run(store.get, "new", IDLE + 10) is not None

    def test_cap_refuses_new_sessions_but_counts_expired_as_free(self, run: Driver) -> None:
        store = self._store(run, max_sessions=2)
        run(store.create, record("a", 0.0))
        run(store.create, record("b", 0.0))
        with pytest.raises(SessionLimitReached):
            run(store.create, record("c", 1.0))
        assert run(store.get, "c", 1.0) is None
        # once a and b have expired, c fits
        run(store.create, record("c", IDLE + 5))
        assert run(store.get, "c", IDLE + 5) is not None

    def test_model_agreement(self, run: Driver) -> None:
        contract = self

        class Machine(RuleBasedStateMachine):
            """The store against a dict of records; expiry is computed, never stored."""

            @initialize()
            def start(self) -> None:
                self.store = contract._store(run, max_sessions=5)
                self.model: dict[str, SessionRecord] = {}
                self.now = 0.0

            def _live(self, sid: str) -> SessionRecord | None:
                rec = self.model.get(sid)
                if rec is None or self.now - rec.last_active > IDLE:
                    return None
                return rec

            def _live_count(self) -> int:
                return sum(1 for sid in self.model if self._live(sid) is not None)

            @rule(sid=st.sampled_from("abcdefg"), client_id=st.sampled_from([None, "c1", "c2"]))
            def create(self, sid: str, client_id: str | None) -> None:
                rec = record(sid, self.now, client_id=client_id)
                if self._live(sid) is not None:
                    with pytest.raises(ValueError, match="taken"):
                        run(self.store.create, rec)
                elif self._live_count() >= 5:
                    with pytest.raises(SessionLimitReached):
                        run(self.store.create, rec)
                else:
                    run(self.store.create, rec)
                    self.model[sid] = rec

            @rule(step=st.sampled_from([0.0, 1.0, 30.0, 60.0, 99.0]))
            def wait(self, step: float) -> None:
                self.now += step

            @rule(sid=st.sampled_from("abcdefg"))
            def get(self, sid: str) -> None:
                assert run(self.store.get, sid, self.now) == self._live(sid)

            @rule(sid=st.sampled_from("abcdefg"))
            def touch(self, sid: str) -> None:
                run(self.store.touch, sid, self.now)
                live = self._live(sid)
                if live is not None:
                    self.model[sid] = attrs.evolve(live, last_active=self.now)

            @rule(sid=st.sampled_from("abcdefg"))
            def delete(self, sid: str) -> None:
                existed = run(self.store.delete, sid)
                if self._live(sid) is not None:
                    assert existed is True
                elif sid not in self.model:
                    assert existed is False
                self.model.pop(sid, None)

            @rule()
            def sweep(self) -> None:
                expired = {sid for sid in self.model if self._live(sid) is None}
                removed = set(run(self.store.sweep, self.now))
                assert removed <= expired
                for sid in expired:
                    del self.model[sid]
                    assert run(self.store.get, sid, self.now) is None

            @invariant()
            def live_records_agree(self) -> None:
                for sid in self.model:
                    assert run(self.store.get, sid, self.now) == self._live(sid)

        Machine.TestCase.settings = settings(
            max_examples=self.max_examples, stateful_step_count=25, deadline=None
        )
        Machine.TestCase().runTest()
