"""The `EventStore` contract (see `mcp_core.ports.events`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from mcp_core.ports.events import EventStore

from ._portal import Driver, driver

__all__ = ["EventStoreContract"]


class EventStoreContract:
    """Subclass and implement `make_store`. `bound` is how many events per session the store
    keeps; the suite never appends more than that to one session, so nothing is evicted."""

    max_examples = 60
    bound = 1000

    def make_store(self) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    def run(self) -> Iterator[Driver]:
        with driver() as d:
            yield d

    def test_ids_are_unique_within_a_session(self, run: Driver) -> None:
        store = run.build(self.make_store)
        ids = [run(store.append, "s", stream, b"{}") for stream in ("a", "b", "a", "b", "a")]
        assert len(set(ids)) == len(ids)

    def test_replay_returns_later_events_of_the_same_stream_in_order(self, run: Driver) -> None:
        store = run.build(self.make_store)
        first = run(store.append, "s", "a", b"")
        run(store.append, "s", "b", b"other")
        second = run(store.append, "s", "a", b"1")
        third = run(store.append, "s", "a", b"2")
        replay = run(store.replay_after, "s", first)
        assert replay is not None
        assert replay.stream_id == "a"
        assert [(e.event_id, e.payload) for e in replay.events] == [(second, b"1"), (third, b"2")]

    def test_replay_after_the_last_event_is_empty(self, run: Driver) -> None:
        store = run.build(self.make_store)
        last = run(store.append, "s", "a", b"x")
        replay = run(store.replay_after, "s", last)
        assert replay is not None
        assert replay.events == ()

    def test_unknown_id_or_session_replays_none(self, run: Driver) -> None:
        store = run.build(self.make_store)
        event_id = run(store.append, "s", "a", b"x")
        assert run(store.replay_after, "s", "no-such-id") is None
        assert run(store.replay_after, "other-session", event_id) is None

    def test_sessions_are_isolated_and_forgotten(self, run: Driver) -> None:
        store = run.build(self.make_store)
        mine = run(store.append, "s1", "a", b"mine")
        run(store.append, "s2", "a", b"theirs")
        replay = run(store.replay_after, "s1", mine)
        assert replay is not None
        assert replay.events == ()
        run(store.forget_session, "s1")
        assert run(store.replay_after, "s1", mine) is None

    def test_model_agreement(self, run: Driver) -> None:
        contract = self

        class Machine(RuleBasedStateMachine):
            @initialize()
            def start(self) -> None:
                self.store = run.build(contract.make_store)
                # session -> list of (event_id, stream, payload)
                self.model: dict[str, list[tuple[str, str, bytes]]] = {}

            @rule(
                session=st.sampled_from(["s1", "s2"]),
                stream=st.sampled_from(["a", "b", "_"]),
                payload=st.binary(max_size=8),
            )
            def append(self, session: str, stream: str, payload: bytes) -> None:
                log = self.model.setdefault(session, [])
                if len(log) >= contract.bound:
                    return
                event_id = run(self.store.append, session, stream, payload)
                assert event_id not in {e for e, _, _ in log}
                log.append((event_id, stream, payload))

            @rule(session=st.sampled_from(["s1", "s2"]), data=st.data())
            def replay(self, session: str, data: st.DataObject) -> None:
                log = self.model.get(session, [])
                if not log:
                    return
                index = data.draw(st.integers(0, len(log) - 1))
                event_id, stream, _ = log[index]
                replay = run(self.store.replay_after, session, event_id)
                assert replay is not None
                assert replay.stream_id == stream
                expected = [(e, p) for e, s, p in log[index + 1 :] if s == stream]
                assert [(e.event_id, e.payload) for e in replay.events] == expected

            @rule(session=st.sampled_from(["s1", "s2"]))
            def forget(self, session: str) -> None:
                run(self.store.forget_session, session)
                for event_id, _, _ in self.model.pop(session, []):
                    assert run(self.store.replay_after, session, event_id) is None

        Machine.TestCase.settings = settings(
            max_examples=self.max_examples, stateful_step_count=30, deadline=None
        )
        Machine.TestCase().runTest()
