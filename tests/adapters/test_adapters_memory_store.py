"""The in-memory storage adapters: named behaviours of the session and event stores (the
port contracts in `mcp_core.ports.contracts` check the general rules)."""

from __future__ import annotations

import attrs
import pytest

from mcp_core.adapters.storage.memory import InMemoryEventStore, InMemorySessionStore
from mcp_core.ports.events import EventStore, Replay, StoredEvent
from mcp_core.ports.sessions import SessionLimitReached, SessionRecord, SessionStore

pytestmark = pytest.mark.anyio


def _record(session_id: str, at: float = 0.0, **fields: object) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        protocol_version="2025-11-25",
        state="ready",
        created_at=at,
        last_active=at,
        **fields,  # type: ignore[arg-type]
    )


def test_the_memory_stores_implement_their_ports() -> None:
    assert isinstance(InMemorySessionStore(), SessionStore)
    assert isinstance(InMemoryEventStore(), EventStore)


@pytest.mark.parametrize(
    "options", [{"idle_timeout": 0}, {"idle_timeout": -1}, {"max_sessions": 0}]
)
def test_session_store_bounds_must_be_positive(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"idle_timeout|max_sessions"):
        InMemorySessionStore(**options)  # type: ignore[arg-type]


# ---- sessions -------------------------------------------------------------------------------


async def test_a_created_session_is_found_until_it_idles_past_the_timeout() -> None:
    store = InMemorySessionStore(idle_timeout=10)
    record = _record("a", at=100.0, subscriptions=frozenset({"u://x"}))
    await store.create(record)
    assert await store.get("a", 110.0) == record  # exactly the timeout: still alive
    assert await store.get("a", 110.5) is None
    assert len(store) == 0  # an expired record is deleted on the way
    assert await store.get("a", 100.0) is None


async def test_touch_extends_a_session_but_never_revives_an_expired_one() -> None:
    store = InMemorySessionStore(idle_timeout=10)
    await store.create(_record("a", at=0.0))
    await store.touch("a", 8.0)
    found = await store.get("a", 17.0)
    assert found is not None
    assert found.last_active == 8.0
    await store.touch("a", 5.0)  # time never runs backwards for a record
    assert (await store.get("a", 17.0)) is not None
    await store.touch("a", 30.0)  # idle for 22 s: already expired
    assert await store.get("a", 30.0) is None
    await store.touch("unknown", 1.0)  # ignored


async def test_a_taken_id_is_refused_unless_its_session_expired() -> None:
    store = InMemorySessionStore(idle_timeout=10)
    await store.create(_record("a", at=0.0))
    with pytest.raises(ValueError, match="taken"):
        await store.create(_record("a", at=5.0))
    await store.create(_record("a", at=50.0))
    assert (await store.get("a", 50.0)) == _record("a", at=50.0)


async def test_the_store_holds_at_most_max_sessions_live_sessions() -> None:
    store = InMemorySessionStore(idle_timeout=10, max_sessions=2)
    await store.create(_record("a", at=0.0))
    await store.create(_record("b", at=5.0))
    with pytest.raises(SessionLimitReached):
        await store.create(_record("c", at=6.0))
    assert len(store) == 2
    # Once "a" expired, creating makes room by dropping it.
    await store.create(_record("c", at=10.5))
    assert await store.get("a", 10.5) is None
    assert await store.get("b", 10.5) is not None
    assert await store.get("c", 10.5) is not None


async def test_sweep_deletes_and_names_every_expired_session() -> None:
    store = InMemorySessionStore(idle_timeout=10)
    for name, at in (("a", 0.0), ("b", 4.0), ("c", 12.0)):
        await store.create(_record(name, at=at))
    await store.touch("a", 9.0)
    assert sorted(await store.sweep(15.0)) == ["b"]
    assert sorted(await store.sweep(40.0)) == ["a", "c"]
    assert len(store) == 0


async def test_put_replaces_a_record_and_delete_forgets_it() -> None:
    store = InMemorySessionStore()
    await store.create(_record("a"))
    updated = attrs.evolve(_record("a"), state="closed", log_level="error")
    await store.put(updated)
    assert await store.get("a", 1.0) == updated
    with pytest.raises(KeyError):
        await store.put(_record("b"))
    assert await store.delete("a") is True
    assert await store.delete("a") is False
    assert await store.get("a", 1.0) is None


# ---- events ---------------------------------------------------------------------------------


async def test_event_ids_are_unique_within_a_session_across_its_streams() -> None:
    store = InMemoryEventStore()
    ids = [await store.append("s", stream, b"x") for stream in ("s1", "s2", "_", "s1", "s2")]
    assert len(set(ids)) == len(ids)
    other = [await store.append("t", "s1", b"x") for _ in range(2)]
    assert len(set(other)) == 2


async def test_replay_returns_only_that_streams_later_events_in_order() -> None:
    store = InMemoryEventStore()
    prime = await store.append("s", "s1", b"")
    mine = []
    for n in range(3):
        mine.append(await store.append("s", "s1", b"mine-%d" % n))
        await store.append("s", "s2", b"other-%d" % n)
        await store.append("elsewhere", "s1", b"foreign")
    replay = await store.replay_after("s", prime)
    assert replay == Replay(
        stream_id="s1",
        events=tuple(StoredEvent(event_id=i, payload=b"mine-%d" % n) for n, i in enumerate(mine)),
    )
    tail = await store.replay_after("s", mine[1])
    assert tail is not None
    assert [e.payload for e in tail.events] == [b"mine-2"]
    last = await store.replay_after("s", mine[2])
    assert last == Replay(stream_id="s1", events=())


async def test_an_unknown_or_foreign_event_id_replays_nothing() -> None:
    store = InMemoryEventStore()
    event_id = await store.append("s", "s1", b"x")
    assert await store.replay_after("s", "s1:999") is None
    assert await store.replay_after("s", "garbage") is None
    assert await store.replay_after("other-session", event_id) is None


async def test_a_session_keeps_only_its_latest_events() -> None:
    store = InMemoryEventStore(max_events_per_session=3)
    ids = [await store.append("s", "s1", b"%d" % n) for n in range(5)]
    assert await store.replay_after("s", ids[0]) is None  # evicted
    assert await store.replay_after("s", ids[1]) is None  # evicted
    replay = await store.replay_after("s", ids[2])
    assert replay is not None
    assert [e.payload for e in replay.events] == [b"3", b"4"]


async def test_the_oldest_sessions_log_goes_when_too_many_sessions_have_one() -> None:
    store = InMemoryEventStore(max_sessions=2)
    a = await store.append("a", "s1", b"a")
    b = await store.append("b", "s1", b"b")
    await store.append("c", "s1", b"c")
    assert await store.replay_after("a", a) is None
    assert await store.replay_after("b", b) == Replay(stream_id="s1", events=())


async def test_forgetting_a_session_drops_its_log() -> None:
    store = InMemoryEventStore()
    event_id = await store.append("s", "s1", b"x")
    await store.forget_session("s")
    assert await store.replay_after("s", event_id) is None
    await store.forget_session("never-seen")


@pytest.mark.parametrize("options", [{"max_events_per_session": 0}, {"max_sessions": 0}])
def test_event_store_bounds_must_be_positive(options: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="bounds"):
        InMemoryEventStore(**options)
