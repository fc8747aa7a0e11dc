"""The `ClientStore` and `GrantStore` contracts (see `mcp_core.ports.oauth_stores`).

Besides the examples and the model-based machines, the grant contract races: many redeems of
one code, peeks racing a redeem, many rotations of one refresh token, a family's creation racing
the replay of its code, and a purge racing a rotation, started together as tasks on one event
loop and spread over two handles on the same data (`open_again`), so an adapter whose atomicity
depends on its connection (SQLite, PostgreSQL, Redis) is checked across connections too. The
two-party races run for `race_rounds` rounds on fresh ids, alternating which side starts first
and which handle each side uses, and accept any interleaving but check that each ends in one of
the states the port allows, never a mix of two.

It also checks the rule on text no backend can hold (a lone surrogate, a NUL): `ValueError`
from every write, "not found" from the plain reads, nothing stored either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import anyio
import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mcp_core.ports.credentials import StoreUnavailable
from mcp_core.ports.oauth_stores import (
    ClientSource,
    ClientStore,
    CodeOutcome,
    CodeRecord,
    CodeStatus,
    GrantConflict,
    GrantStore,
    RefreshFamily,
    RefreshOutcome,
    RefreshStatus,
    RegisteredClient,
)

from ._portal import Driver, driver

__all__ = ["UNSTORABLE_TEXT", "ClientStoreContract", "GrantStoreContract"]

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

CODE_TTL = 600.0  # OAuth 2.1 §4.1.2: codes live at most 10 minutes


def client(
    client_id: str,
    *,
    source: ClientSource = "dynamic",
    secret_hash: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> RegisteredClient:
    return RegisteredClient(
        client_id=client_id,
        metadata={"redirect_uris": [f"https://{client_id}.example/cb"]}
        if metadata is None
        else metadata,
        secret_hash=secret_hash,
        registered_at=1000.0,
        source=source,
    )


def code(
    code_hash: str, *, family_id: str = "fam-1", issued_at: float = 1000.0, ttl: float = CODE_TTL
) -> CodeRecord:
    return CodeRecord(
        code_hash=code_hash,
        client_id="client-1",
        redirect_uri="http://127.0.0.1:8765/callback",
        resource="https://mcp.example/mcp",
        scope="tools:read tools:call",
        subject="alice",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        family_id=family_id,
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )


async def _together(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Start every call as its own task at once; their results in order."""
    results: dict[int, T] = {}

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    return [results[i] for i in range(len(calls))]


async def _both(
    first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]
) -> tuple[A, B]:
    """Start `first`, then `second`, as two tasks at once (`_together`); both results, typed."""
    a, b = await _together([cast(Callable[[], Awaitable[Any]], first), second])
    return cast(A, a), cast(B, b)


# Text no backend can store: no UTF-8 encoding (a lone surrogate), and NUL (PostgreSQL text).
UNSTORABLE_TEXT = ("h\udcff", "h\x00")


class ClientStoreContract:
    """Subclass and implement `make_store` (an empty store per call)."""

    max_examples = 30

    def make_store(self) -> ClientStore:
        raise NotImplementedError

    @pytest.fixture
    def run(self) -> Iterator[Driver]:
        with driver() as d:
            yield d

    def test_put_then_get_round_trips_metadata_exactly(self, run: Driver) -> None:
        store = run.build(self.make_store)
        metadata = {
            "redirect_uris": ["http://127.0.0.1/cb", "https://app.example/cb"],
            "application_type": "native",
            "client_name": "Ünïcode ✓",
            "token_endpoint_auth_method": "client_secret_basic",
            "nested": {"a": [1, 2.5, None, True]},
        }
        registered = client("c1", source="dynamic", secret_hash="sha256:abc", metadata=metadata)
        run(store.put, registered)
        assert run(store.get, "c1") == registered

    def test_the_store_holds_its_own_copy_of_the_metadata(self, run: Driver) -> None:
        store = run.build(self.make_store)
        uris = ["https://a.example/cb"]
        metadata: dict[str, Any] = {"redirect_uris": uris, "nested": {"list": [1]}}
        run(store.put, client("c1", source="dynamic", metadata=metadata))
        # Changing what was put, or what was got, changes nothing in the store.
        uris.append("https://evil.example/cb")
        got = run(store.get, "c1")
        assert got is not None
        got.metadata["redirect_uris"].append("https://evil.example/other")
        got.metadata["nested"]["list"].append(2)
        again = run(store.get, "c1")
        assert again is not None
        assert again.metadata == {
            "redirect_uris": ["https://a.example/cb"],
            "nested": {"list": [1]},
        }

    def test_unknown_client_is_none(self, run: Driver) -> None:
        store = run.build(self.make_store)
        assert run(store.get, "nobody") is None
        assert run(store.delete, "nobody") is False

    def test_put_replaces_a_client_with_the_same_id(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.put, client("c1", source="static"))
        replacement = client("c1", source="cimd", metadata={"client_name": "again"})
        run(store.put, replacement)
        assert run(store.get, "c1") == replacement

    def test_delete_removes_only_that_client(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.put, client("c1"))
        run(store.put, client("c2"))
        assert run(store.delete, "c1") is True
        assert run(store.get, "c1") is None
        assert run(store.get, "c2") == client("c2")

    def test_model_agreement(self, run: Driver) -> None:
        contract = self
        ids = st.sampled_from(["a", "b", "c"])

        class Machine(RuleBasedStateMachine):
            @initialize()
            def start(self) -> None:
                self.store = run.build(contract.make_store)
                self.model: dict[str, RegisteredClient] = {}

            @rule(
                client_id=ids,
                source=st.sampled_from(["static", "dynamic", "cimd"]),
                secret=st.one_of(st.none(), st.text(max_size=8)),
                name=st.text(max_size=8),
            )
            def put(
                self, client_id: str, source: ClientSource, secret: str | None, name: str
            ) -> None:
                registered = client(
                    client_id, source=source, secret_hash=secret, metadata={"client_name": name}
                )
                run(self.store.put, registered)
                self.model[client_id] = registered

            @rule(client_id=ids)
            def delete(self, client_id: str) -> None:
                existed = self.model.pop(client_id, None) is not None
                assert run(self.store.delete, client_id) is existed

            @invariant()
            def agree(self) -> None:
                if not hasattr(self, "model"):
                    return
                for client_id in ("a", "b", "c"):
                    assert run(self.store.get, client_id) == self.model.get(client_id)

        Machine.TestCase.settings = settings(
            max_examples=self.max_examples, stateful_step_count=15, deadline=None
        )
        Machine.TestCase().runTest()


class GrantStoreContract:
    """Subclass and implement `make_store` (an empty store per call). Override `open_again` to
    return a second handle on the same data (a second connection, pool or client) so that the
    races run across handles; by default both sides use the one handle."""

    max_examples = 40
    racers = 16
    race_rounds = 30

    def make_store(self) -> GrantStore:
        raise NotImplementedError

    def open_again(self, store: GrantStore) -> GrantStore:
        return store

    @pytest.fixture
    def run(self) -> Iterator[Driver]:
        with driver() as d:
            yield d

    def _family(self, run: Driver, store: GrantStore, family_id: str, token: str) -> RefreshFamily:
        return run(
            store.create_family,
            family_id,
            subject="alice",
            client_id="client-1",
            resource="https://mcp.example/mcp",
            scope="tools:read",
            first_token_hash=token,
            now=1000.0,
        )

    # ---- codes --------------------------------------------------------------------------------

    def test_code_redeems_once(self, run: Driver) -> None:
        store = run.build(self.make_store)
        record = code("h1")
        run(store.save_code, record)
        assert run(store.redeem_code, "h1", 1001.0) == record
        assert run(store.redeem_code, "h1", 1002.0) == CodeOutcome(
            status=CodeStatus.REPLAYED, family_id="fam-1"
        )

    def test_code_replay_revokes_its_family(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.save_code, code("h1", family_id="fam-1"))
        run(store.redeem_code, "h1", 1001.0)
        self._family(run, store, "fam-1", "t1")
        assert run(store.is_revoked, "fam-1") is False
        run(store.redeem_code, "h1", 1002.0)
        assert run(store.is_revoked, "fam-1") is True
        family = run(store.family, "fam-1")
        assert family is not None
        assert family.revoked_reason == "code_replayed"
        assert run(store.rotate_refresh, "t1", "t2", 1003.0).status is RefreshStatus.REVOKED

    def test_replay_before_the_family_exists_prevents_it(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.save_code, code("h1", family_id="fam-1"))
        run(store.redeem_code, "h1", 1001.0)
        run(store.redeem_code, "h1", 1001.0)  # the replay wins the race with the token response
        with pytest.raises(GrantConflict):
            self._family(run, store, "fam-1", "t1")
        assert run(store.family, "fam-1") is None
        assert run(store.is_revoked, "fam-1") is True

    def test_code_expires_after_its_lifetime(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.save_code, code("late", issued_at=1000.0))
        run(store.save_code, code("edge", issued_at=1000.0))
        expired = CodeOutcome(status=CodeStatus.EXPIRED, family_id="fam-1")
        assert run(store.redeem_code, "late", 1000.0 + CODE_TTL + 0.5) == expired
        assert run(store.redeem_code, "late", 1000.0 + CODE_TTL + 1.0) == expired
        assert run(store.redeem_code, "edge", 1000.0 + CODE_TTL) == code("edge")
        assert run(store.is_revoked, "fam-1") is False

    def test_unknown_code(self, run: Driver) -> None:
        store = run.build(self.make_store)
        assert run(store.redeem_code, "nope", 1000.0) == CodeOutcome(status=CodeStatus.UNKNOWN)

    def test_peek_has_no_side_effect(self, run: Driver) -> None:
        store = run.build(self.make_store)
        record = code("h1", family_id="fam-1")
        run(store.save_code, record)
        # Peeking any number of times leaves the code redeemable.
        assert run(store.peek_code, "h1", 1001.0) == record
        assert run(store.peek_code, "h1", 1001.0) == record
        assert run(store.redeem_code, "h1", 1002.0) == record
        self._family(run, store, "fam-1", "t1")
        # A peek at a redeemed code says it was replayed and revokes nothing...
        replayed = CodeOutcome(status=CodeStatus.REPLAYED, family_id="fam-1")
        assert run(store.peek_code, "h1", 1003.0) == replayed
        assert run(store.peek_code, "h1", 1000.0 + CODE_TTL + 1.0) == replayed
        assert run(store.is_revoked, "fam-1") is False
        assert run(store.rotate_refresh, "t1", "t2", 1004.0).status is RefreshStatus.ROTATED
        # ...while a redeem of it does.
        assert run(store.redeem_code, "h1", 1005.0) == replayed
        assert run(store.is_revoked, "fam-1") is True

    def test_peek_at_a_replayed_code_before_its_family_exists_revokes_nothing(
        self, run: Driver
    ) -> None:
        store = run.build(self.make_store)
        run(store.save_code, code("h1", family_id="fam-1"))
        run(store.redeem_code, "h1", 1001.0)
        assert run(store.peek_code, "h1", 1001.0) == CodeOutcome(
            status=CodeStatus.REPLAYED, family_id="fam-1"
        )
        assert run(store.is_revoked, "fam-1") is False
        created = self._family(run, store, "fam-1", "t1")  # the family can still be created
        assert created.revoked is False

    def test_peek_follows_the_expiry_edge_of_redeem(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.save_code, code("late", issued_at=1000.0))
        run(store.save_code, code("edge", issued_at=1000.0))
        expired = CodeOutcome(status=CodeStatus.EXPIRED, family_id="fam-1")
        assert run(store.peek_code, "late", 1000.0 + CODE_TTL + 0.5) == expired
        assert run(store.peek_code, "edge", 1000.0 + CODE_TTL) == code("edge")
        # Peeking at an expired code did not mark it used: it is still expired, not replayed.
        assert run(store.redeem_code, "late", 1000.0 + CODE_TTL + 0.5) == expired
        assert run(store.redeem_code, "edge", 1000.0 + CODE_TTL) == code("edge")
        assert run(store.is_revoked, "fam-1") is False

    def test_peek_at_unknown_and_purged_codes(self, run: Driver) -> None:
        store = run.build(self.make_store)
        unknown = CodeOutcome(status=CodeStatus.UNKNOWN)
        assert run(store.peek_code, "nope", 1000.0) == unknown
        run(store.save_code, code("h1", issued_at=1000.0))
        run(store.redeem_code, "h1", 1001.0)
        run(store.purge, 2000.0)
        assert run(store.peek_code, "h1", 1001.0) == unknown
        assert run(store.redeem_code, "h1", 1001.0) == unknown

    def test_peeks_racing_a_redeem_never_change_its_outcome(self, run: Driver) -> None:
        store = run.build(self.make_store)
        handles = [store, run.build(lambda: self.open_again(store))]
        run(store.save_code, code("h1"))

        async def race() -> list[CodeRecord | CodeOutcome]:
            calls: list[Callable[[], Awaitable[CodeRecord | CodeOutcome]]] = [
                partial(handles[i % 2].peek_code, "h1", 1001.0) for i in range(self.racers)
            ]
            calls.insert(self.racers // 2, partial(handles[1].redeem_code, "h1", 1001.0))
            return await _together(calls)

        results = run(race)
        redeemed = results.pop(self.racers // 2)
        assert redeemed == code("h1")
        replayed = CodeOutcome(status=CodeStatus.REPLAYED, family_id="fam-1")
        # Each peek saw the code before or after the redeem, never anything else.
        assert all(r in (code("h1"), replayed) for r in results)
        assert run(store.is_revoked, "fam-1") is False
        assert run(store.peek_code, "h1", 1001.0) == replayed

    def test_saving_a_code_hash_twice_is_refused(self, run: Driver) -> None:
        store = run.build(self.make_store)
        run(store.save_code, code("h1", family_id="fam-1"))
        with pytest.raises(GrantConflict):
            run(store.save_code, code("h1", family_id="fam-2"))
        result = run(store.redeem_code, "h1", 1001.0)
        assert isinstance(result, CodeRecord)
        assert result.family_id == "fam-1"

    def test_concurrent_redeems_have_exactly_one_winner(self, run: Driver) -> None:
        store = run.build(self.make_store)
        handles = [store, run.build(lambda: self.open_again(store))]
        run(store.save_code, code("h1"))

        async def race() -> list[CodeRecord | CodeOutcome]:
            return await _together(
                [partial(handles[i % 2].redeem_code, "h1", 1001.0) for i in range(self.racers)]
            )

        results = run(race)
        assert [r for r in results if isinstance(r, CodeRecord)] == [code("h1")]
        replayed = CodeOutcome(status=CodeStatus.REPLAYED, family_id="fam-1")
        assert [r for r in results if not isinstance(r, CodeRecord)] == [replayed] * (
            self.racers - 1
        )

    # ---- refresh families ---------------------------------------------------------------------

    def test_rotation_replaces_the_current_token(self, run: Driver) -> None:
        store = run.build(self.make_store)
        created = self._family(run, store, "fam-1", "t1")
        assert (created.generation, created.current_token_hash, created.revoked) == (
            0,
            "t1",
            False,
        )
        first = run(store.rotate_refresh, "t1", "t2", 1010.0)
        second = run(store.rotate_refresh, "t2", "t3", 1020.0)
        assert (first.status, second.status) == (RefreshStatus.ROTATED, RefreshStatus.ROTATED)
        expected = attrs.evolve(created, current_token_hash="t3", generation=2, rotated_at=1020.0)
        assert second.family == expected
        assert run(store.family, "fam-1") == expected

    def test_refresh_reuse_revokes_family(self, run: Driver) -> None:
        store = run.build(self.make_store)
        self._family(run, store, "fam-1", "t1")
        run(store.rotate_refresh, "t1", "t2", 1010.0)
        reused = run(store.rotate_refresh, "t1", "t9", 1020.0)
        assert reused.status is RefreshStatus.REUSED
        assert reused.family is not None
        assert reused.family.revoked_reason == "refresh_reused"
        assert run(store.is_revoked, "fam-1") is True
        # The current token dies with its family, and the attacker's new hash was not stored.
        assert run(store.rotate_refresh, "t2", "t3", 1030.0).status is RefreshStatus.REVOKED
        assert run(store.rotate_refresh, "t9", "t4", 1030.0).status is RefreshStatus.UNKNOWN

    def test_revoked_family_refuses_every_token(self, run: Driver) -> None:
        store = run.build(self.make_store)
        self._family(run, store, "fam-1", "t1")
        run(store.rotate_refresh, "t1", "t2", 1010.0)
        assert run(store.revoke_family, "fam-1", "user_revoked") is True
        assert run(store.revoke_family, "fam-1", "again") is False
        for token in ("t1", "t2"):
            outcome = run(store.rotate_refresh, token, "t3", 1020.0)
            assert outcome.status is RefreshStatus.REVOKED
            assert outcome.family is not None
            assert outcome.family.revoked_reason == "user_revoked"

    def test_unknown_refresh_token(self, run: Driver) -> None:
        store = run.build(self.make_store)
        assert run(store.rotate_refresh, "nope", "t2", 1000.0) == RefreshOutcome(
            status=RefreshStatus.UNKNOWN
        )
        assert run(store.family, "fam-x") is None
        assert run(store.is_revoked, "fam-x") is False

    def test_family_ids_and_token_hashes_are_unique(self, run: Driver) -> None:
        store = run.build(self.make_store)
        created = self._family(run, store, "fam-1", "t1")
        with pytest.raises(GrantConflict):
            self._family(run, store, "fam-1", "t5")
        with pytest.raises(GrantConflict):
            self._family(run, store, "fam-2", "t1")
        assert run(store.family, "fam-2") is None
        self._family(run, store, "fam-2", "u1")
        with pytest.raises(GrantConflict):
            run(store.rotate_refresh, "t1", "u1", 1010.0)
        assert run(store.family, "fam-1") == created  # the failed rotation changed nothing
        assert run(store.rotate_refresh, "t1", "t2", 1010.0).status is RefreshStatus.ROTATED

    def test_concurrent_rotations_have_exactly_one_winner(self, run: Driver) -> None:
        store = run.build(self.make_store)
        handles = [store, run.build(lambda: self.open_again(store))]
        self._family(run, store, "fam-1", "t0")

        async def race() -> list[RefreshOutcome]:
            return await _together(
                [
                    partial(handles[i % 2].rotate_refresh, "t0", f"new-{i}", 1010.0)
                    for i in range(self.racers)
                ]
            )

        statuses = [outcome.status for outcome in run(race)]
        assert statuses.count(RefreshStatus.ROTATED) == 1
        # The first loser is reuse and revokes the family; any later one finds it revoked.
        assert statuses.count(RefreshStatus.REUSED) == 1
        assert statuses.count(RefreshStatus.REVOKED) == self.racers - 2
        assert run(store.is_revoked, "fam-1") is True

    def test_a_replay_racing_create_family_never_leaves_a_live_family(self, run: Driver) -> None:
        """OAuth 2.1 §4.1.3: the token response creates the family while a replay of the code
        revokes it. Whichever lands first, the family ends revoked or can never be created."""
        store = run.build(self.make_store)
        handles = (store, run.build(lambda: self.open_again(store)))

        async def create(handle: GrantStore, family_id: str, token: str) -> RefreshFamily | None:
            try:
                return await handle.create_family(
                    family_id,
                    subject="alice",
                    client_id="client-1",
                    resource="https://mcp.example/mcp",
                    scope="tools:read",
                    first_token_hash=token,
                    now=1000.0,
                )
            except GrantConflict:
                return None

        async def rounds() -> tuple[int, int]:
            created_count = refused_count = 0
            for i in range(self.race_rounds):
                family_id, token = f"fam-{i}", f"t-{i}"
                record = code(f"h-{i}", family_id=family_id)
                await store.save_code(record)
                assert await store.redeem_code(record.code_hash, 1001.0) == record
                creator, replayer = handles[i % 2], handles[(i // 2 + 1) % 2]
                create_call = partial(create, creator, family_id, token)
                replay_call = partial(replayer.redeem_code, record.code_hash, 1002.0)
                if i % 3 == 0:
                    replayed, created = await _both(replay_call, create_call)
                else:
                    created, replayed = await _both(create_call, replay_call)
                assert replayed == CodeOutcome(status=CodeStatus.REPLAYED, family_id=family_id)
                assert await store.is_revoked(family_id) is True
                family = await store.family(family_id)
                if created is not None:
                    # Created first: the replay revoked it, with its token.
                    created_count += 1
                    assert family == attrs.evolve(created, revoked_reason="code_replayed")
                    outcome = await store.rotate_refresh(token, f"u-{i}", 1003.0)
                    assert outcome.status is RefreshStatus.REVOKED
                else:
                    # The replay came first: the id is revoked and can never be created.
                    refused_count += 1
                    assert family is None
                    assert await create(handles[1], family_id, f"v-{i}") is None
                    assert await store.family(family_id) is None
                    unknown = RefreshOutcome(status=RefreshStatus.UNKNOWN)
                    assert await store.rotate_refresh(token, f"u-{i}", 1003.0) == unknown
            return created_count, refused_count

        created_count, refused_count = run(rounds)
        assert created_count + refused_count == self.race_rounds

    def test_a_purge_racing_a_rotation_keeps_or_forgets_the_whole_family(self, run: Driver) -> None:
        """A family rotated before `before` races its own rotation: either the rotation wins
        (the family stays, with the new token current, uncounted) or the purge does (the family
        and every token are gone, counted once); never a family without its tokens, nor a
        token left rotating in a purged family."""
        store = run.build(self.make_store)
        handles = (store, run.build(lambda: self.open_again(store)))

        async def rounds() -> tuple[int, int]:
            kept = purged = 0
            for i in range(self.race_rounds):
                family_id, old, new = f"fam-{i}", f"t-{i}", f"n-{i}"
                await store.create_family(
                    family_id,
                    subject="alice",
                    client_id="client-1",
                    resource="https://mcp.example/mcp",
                    scope="tools:read",
                    first_token_hash=old,
                    now=1000.0,
                )
                rotator, purger = handles[i % 2], handles[(i // 2 + 1) % 2]
                rotate_call = partial(rotator.rotate_refresh, old, new, 3000.0)
                purge_call = partial(purger.purge, 2000.0)
                if i % 3 == 0:
                    count, outcome = await _both(purge_call, rotate_call)
                else:
                    outcome, count = await _both(rotate_call, purge_call)
                family = await store.family(family_id)
                if outcome.status is RefreshStatus.ROTATED:
                    kept += 1
                    assert count == 0
                    assert family is not None
                    assert outcome.family == family
                    assert (family.current_token_hash, family.generation) == (new, 1)
                    assert (family.rotated_at, family.revoked_reason) == (3000.0, None)
                    # Both tokens are still there: the new one rotates, the old one is reuse.
                    again = await store.rotate_refresh(new, f"m-{i}", 3001.0)
                    assert again.status is RefreshStatus.ROTATED
                    assert (await store.rotate_refresh(old, f"x-{i}", 3002.0)).status is (
                        RefreshStatus.REUSED
                    )
                else:
                    purged += 1
                    assert outcome == RefreshOutcome(status=RefreshStatus.UNKNOWN)
                    assert count == 1
                    assert family is None
                    assert await store.is_revoked(family_id) is False
                    for token in (old, new):
                        gone = await store.rotate_refresh(token, f"x-{i}", 3001.0)
                        assert gone == RefreshOutcome(status=RefreshStatus.UNKNOWN)
                    # The id and both hashes are free again (no row was left behind).
                    await store.create_family(
                        family_id,
                        subject="alice",
                        client_id="client-1",
                        resource="https://mcp.example/mcp",
                        scope="tools:read",
                        first_token_hash=new,
                        now=5000.0,
                    )
                    again = await store.rotate_refresh(new, old, 5001.0)
                    assert again.status is RefreshStatus.ROTATED
            return kept, purged

        kept, purged = run(rounds)
        assert kept + purged == self.race_rounds

    # ---- text the store cannot hold -----------------------------------------------------------

    def test_text_the_store_cannot_hold_is_a_value_error_and_stores_nothing(
        self, run: Driver
    ) -> None:
        store = run.build(self.make_store)
        live = self._family(run, store, "fam-live", "t-live")
        fields = (
            "code_hash",
            "client_id",
            "redirect_uri",
            "resource",
            "scope",
            "subject",
            "code_challenge",
            "family_id",
        )
        for bad in UNSTORABLE_TEXT:
            changes: list[dict[str, Any]] = [{field: bad} for field in fields]
            writes: list[Callable[[], Awaitable[object]]] = [
                *(partial(store.save_code, attrs.evolve(code("h-ok"), **c)) for c in changes),
                partial(store.redeem_code, bad, 1001.0),
                partial(store.peek_code, bad, 1001.0),
                partial(store.rotate_refresh, bad, "t-new", 1010.0),
                partial(store.rotate_refresh, "t-live", bad, 1010.0),
                partial(store.revoke_family, bad, "admin"),
                partial(store.revoke_family, "fam-live", bad),
                partial(store.revoke_access, bad, 2000.0),
            ]
            for argument in range(6):
                texts = ["fam-new", "alice", "client-1", "https://mcp.example/mcp", "s", "t-9"]
                texts[argument] = bad
                family_id, subject, client_id, resource, scope, token = texts
                writes.append(
                    partial(
                        store.create_family,
                        family_id,
                        subject=subject,
                        client_id=client_id,
                        resource=resource,
                        scope=scope,
                        first_token_hash=token,
                        now=1000.0,
                    )
                )
            for write in writes:
                with pytest.raises(ValueError) as caught:  # noqa: PT011 - the port fixes the type only
                    run(write)
                assert not isinstance(caught.value, StoreUnavailable)
            # The plain reads answer as for an id never stored.
            assert run(store.family, bad) is None
            assert run(store.is_revoked, bad) is False
            assert run(store.is_access_revoked, bad, 1000.0) is False
        # Nothing was written, and the live family was neither rotated nor revoked.
        assert run(store.peek_code, "h-ok", 1001.0) == CodeOutcome(status=CodeStatus.UNKNOWN)
        assert run(store.family, "fam-live") == live
        assert run(store.family, "fam-new") is None
        assert run(store.purge, 1e12) == 1  # the live family, and nothing else

    # ---- access tokens ------------------------------------------------------------------------

    def test_access_revocation_lasts_until_expiry(self, run: Driver) -> None:
        store = run.build(self.make_store)
        assert run(store.is_access_revoked, "jti-1", 1000.0) is False
        run(store.revoke_access, "jti-1", 2000.0)
        assert run(store.is_access_revoked, "jti-1", 1000.0) is True
        assert run(store.is_access_revoked, "jti-1", 2000.0) is True
        assert run(store.is_access_revoked, "jti-1", 2000.5) is False
        assert run(store.is_access_revoked, "jti-2", 1000.0) is False
        run(store.revoke_access, "jti-1", 1500.0)  # an earlier expiry never shortens it
        assert run(store.is_access_revoked, "jti-1", 1800.0) is True
        run(store.revoke_access, "jti-1", 3000.0)
        assert run(store.is_access_revoked, "jti-1", 2500.0) is True

    # ---- purge --------------------------------------------------------------------------------

    def test_purge_removes_codes_and_access_revocations_that_expired_before(
        self, run: Driver
    ) -> None:
        store = run.build(self.make_store)
        run(store.save_code, code("old", issued_at=1000.0))  # expires 1600
        run(store.save_code, code("used", family_id="fam-2", issued_at=1000.0))
        run(store.redeem_code, "used", 1001.0)
        run(store.save_code, code("edge", issued_at=1400.0))  # expires 2000: not before 2000
        run(store.save_code, code("new", issued_at=2000.0))
        run(store.revoke_access, "jti-old", 1999.0)
        run(store.revoke_access, "jti-edge", 2000.0)
        run(store.revoke_access, "jti-new", 5000.0)
        assert run(store.purge, 2000.0) == 3
        unknown = CodeOutcome(status=CodeStatus.UNKNOWN)
        assert run(store.redeem_code, "old", 1500.0) == unknown
        # A purged used code is forgotten: its replay no longer finds (nor revokes) the family.
        assert run(store.redeem_code, "used", 1500.0) == unknown
        assert run(store.is_revoked, "fam-2") is False
        assert run(store.redeem_code, "edge", 1999.0) == code("edge", issued_at=1400.0)
        assert run(store.redeem_code, "new", 2001.0) == code("new", issued_at=2000.0)
        assert run(store.is_access_revoked, "jti-old", 1000.0) is False
        assert run(store.is_access_revoked, "jti-edge", 1000.0) is True
        assert run(store.is_access_revoked, "jti-new", 1000.0) is True
        assert run(store.purge, 2000.0) == 0
        run(store.save_code, code("old", issued_at=3000.0))  # the hash is free again
        assert run(store.purge, 5000.5) == 5  # edge, new, old; jti-edge, jti-new

    def test_purge_forgets_families_rotated_before_with_their_tokens(self, run: Driver) -> None:
        store = run.build(self.make_store)
        self._family(run, store, "fam-old", "a1")
        run(store.rotate_refresh, "a1", "a2", 1500.0)
        self._family(run, store, "fam-revoked", "b1")
        run(store.revoke_family, "fam-revoked", "user_revoked")
        self._family(run, store, "fam-live", "c1")
        run(store.rotate_refresh, "c1", "c2", 3000.0)
        self._family(run, store, "fam-edge", "d1")
        run(store.rotate_refresh, "d1", "d2", 2000.0)
        run(store.revoke_family, "fam-never-created", "code_replayed")
        live = run(store.family, "fam-live")
        edge = run(store.family, "fam-edge")
        assert run(store.purge, 2000.0) == 2
        for family_id in ("fam-old", "fam-revoked"):
            assert run(store.family, family_id) is None
            assert run(store.is_revoked, family_id) is False
        for token in ("a1", "a2", "b1"):
            outcome = run(store.rotate_refresh, token, "x", 4000.0)
            assert outcome == RefreshOutcome(status=RefreshStatus.UNKNOWN)
        assert run(store.family, "fam-live") == live
        assert run(store.family, "fam-edge") == edge
        # A revocation with no family carries no time: it stays.
        assert run(store.is_revoked, "fam-never-created") is True
        # The old ids and token hashes are free again.
        self._family(run, store, "fam-old", "a2")
        assert run(store.rotate_refresh, "c2", "c3", 4000.0).status is RefreshStatus.ROTATED
        assert run(store.rotate_refresh, "c1", "c9", 4000.0).status is RefreshStatus.REUSED
        assert run(store.purge, 2000.0) == 1  # the new fam-old, created at 1000

    def test_concurrent_purges_count_each_record_once(self, run: Driver) -> None:
        store = run.build(self.make_store)
        handles = [store, run.build(lambda: self.open_again(store))]
        for i in range(4):
            run(store.save_code, code(f"h{i}", family_id=f"fam-{i}"))
            self._family(run, store, f"fam-{i}", f"t{i}")
            run(store.revoke_access, f"jti-{i}", 1500.0)

        async def race() -> list[int]:
            return await _together([partial(handles[i % 2].purge, 9999.0) for i in range(4)])

        assert sum(run(race)) == 12
        assert run(store.purge, 9999.0) == 0

    # ---- against a model ----------------------------------------------------------------------

    def test_model_agreement(self, run: Driver) -> None:
        contract = self
        code_hashes = st.sampled_from(["c1", "c2", "c3"])
        family_ids = st.sampled_from(["f1", "f2", "f3"])
        tokens = st.sampled_from(["t1", "t2", "t3", "t4", "t5", "t6"])
        jtis = st.sampled_from(["j1", "j2"])

        class Machine(RuleBasedStateMachine):
            @initialize()
            def start(self) -> None:
                self.store = run.build(contract.make_store)
                self.now = 1000.0
                self.codes: dict[str, CodeRecord] = {}
                self.used: set[str] = set()
                self.families: dict[str, RefreshFamily] = {}
                self.tokens: dict[str, str] = {}
                self.revoked: dict[str, str] = {}
                self.access: dict[str, float] = {}

            def view(self, family_id: str) -> RefreshFamily | None:
                family = self.families.get(family_id)
                if family is None:
                    return None
                return attrs.evolve(family, revoked_reason=self.revoked.get(family_id))

            @rule(seconds=st.sampled_from([0.0, 1.0, 300.0, 601.0]))
            def tick(self, seconds: float) -> None:
                self.now += seconds

            @rule(code_hash=code_hashes, family_id=family_ids, ttl=st.sampled_from([0.0, 600.0]))
            def save_code(self, code_hash: str, family_id: str, ttl: float) -> None:
                record = code(code_hash, family_id=family_id, issued_at=self.now, ttl=ttl)
                if code_hash in self.codes:
                    with pytest.raises(GrantConflict):
                        run(self.store.save_code, record)
                    return
                run(self.store.save_code, record)
                self.codes[code_hash] = record

            @rule(code_hash=code_hashes)
            def redeem(self, code_hash: str) -> None:
                got = run(self.store.redeem_code, code_hash, self.now)
                record = self.codes.get(code_hash)
                if record is None:
                    assert got == CodeOutcome(status=CodeStatus.UNKNOWN)
                elif code_hash in self.used:
                    assert got == CodeOutcome(
                        status=CodeStatus.REPLAYED, family_id=record.family_id
                    )
                    self.revoked.setdefault(record.family_id, "code_replayed")
                elif self.now > record.expires_at:
                    assert got == CodeOutcome(status=CodeStatus.EXPIRED, family_id=record.family_id)
                else:
                    assert got == record
                    self.used.add(code_hash)

            @rule(code_hash=code_hashes)
            def peek(self, code_hash: str) -> None:
                # The model is left as it is: the later rules and the invariant then check that
                # the peek changed nothing a redeem, a rotation or `is_revoked` can see.
                got = run(self.store.peek_code, code_hash, self.now)
                record = self.codes.get(code_hash)
                if record is None:
                    assert got == CodeOutcome(status=CodeStatus.UNKNOWN)
                elif code_hash in self.used:
                    assert got == CodeOutcome(
                        status=CodeStatus.REPLAYED, family_id=record.family_id
                    )
                elif self.now > record.expires_at:
                    assert got == CodeOutcome(status=CodeStatus.EXPIRED, family_id=record.family_id)
                else:
                    assert got == record

            @rule(family_id=family_ids, token=tokens)
            def create_family(self, family_id: str, token: str) -> None:
                taken = family_id in self.families or family_id in self.revoked
                if taken or token in self.tokens:
                    with pytest.raises(GrantConflict):
                        contract._family(run, self.store, family_id, token)
                    return
                created = run(
                    self.store.create_family,
                    family_id,
                    subject="alice",
                    client_id="client-1",
                    resource="https://mcp.example/mcp",
                    scope="tools:read",
                    first_token_hash=token,
                    now=self.now,
                )
                self.families[family_id] = created
                self.tokens[token] = family_id
                assert created == self.view(family_id)

            @rule(token=tokens, new_token=tokens)
            def rotate(self, token: str, new_token: str) -> None:
                family_id = self.tokens.get(token)
                if family_id is None:
                    outcome = run(self.store.rotate_refresh, token, new_token, self.now)
                    assert outcome == RefreshOutcome(status=RefreshStatus.UNKNOWN)
                    return
                family = self.families[family_id]
                if family_id in self.revoked:
                    expected = RefreshStatus.REVOKED
                elif family.current_token_hash != token:
                    expected = RefreshStatus.REUSED
                    self.revoked[family_id] = "refresh_reused"
                elif new_token in self.tokens:
                    with pytest.raises(GrantConflict):
                        run(self.store.rotate_refresh, token, new_token, self.now)
                    return
                else:
                    expected = RefreshStatus.ROTATED
                    self.families[family_id] = attrs.evolve(
                        family,
                        current_token_hash=new_token,
                        generation=family.generation + 1,
                        rotated_at=self.now,
                    )
                    self.tokens[new_token] = family_id
                outcome = run(self.store.rotate_refresh, token, new_token, self.now)
                assert outcome == RefreshOutcome(status=expected, family=self.view(family_id))

            @rule(family_id=family_ids, reason=st.sampled_from(["user", "admin"]))
            def revoke_family(self, family_id: str, reason: str) -> None:
                fresh = family_id not in self.revoked
                self.revoked.setdefault(family_id, reason)
                assert run(self.store.revoke_family, family_id, reason) is fresh

            @rule(jti=jtis, lifetime=st.sampled_from([0.0, 60.0, 900.0]))
            def revoke_access(self, jti: str, lifetime: float) -> None:
                expires_at = self.now + lifetime
                run(self.store.revoke_access, jti, expires_at)
                self.access[jti] = max(expires_at, self.access.get(jti, expires_at))

            @rule(back=st.sampled_from([0.0, 300.0, 900.0]))
            def purge(self, back: float) -> None:
                before = self.now - back
                codes = [h for h, record in self.codes.items() if record.expires_at < before]
                for code_hash in codes:
                    del self.codes[code_hash]
                    self.used.discard(code_hash)
                access = [jti for jti, expires_at in self.access.items() if expires_at < before]
                for jti in access:
                    del self.access[jti]
                families = {f for f, family in self.families.items() if family.rotated_at < before}
                for family_id in families:
                    del self.families[family_id]
                    self.revoked.pop(family_id, None)
                self.tokens = {t: f for t, f in self.tokens.items() if f not in families}
                removed = len(codes) + len(access) + len(families)
                assert run(self.store.purge, before) == removed

            @invariant()
            def agree(self) -> None:
                if not hasattr(self, "store"):
                    return
                for family_id in ("f1", "f2", "f3"):
                    assert run(self.store.family, family_id) == self.view(family_id)
                    assert run(self.store.is_revoked, family_id) is (family_id in self.revoked)
                for jti in ("j1", "j2"):
                    expires_at = self.access.get(jti)
                    revoked = expires_at is not None and self.now <= expires_at
                    assert run(self.store.is_access_revoked, jti, self.now) is revoked

        Machine.TestCase.settings = settings(
            max_examples=self.max_examples, stateful_step_count=25, deadline=None
        )
        Machine.TestCase().runTest()
