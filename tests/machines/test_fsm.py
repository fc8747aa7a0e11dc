"""Unit tests of the machine engine (`mcp_core.core.machines._fsm`) on a toy turnstile.

The turnstile is small but has every feature a real machine uses: guarded rules sharing one
(state, event) pair, self-loops with and without effects, an effect builder that can raise, a
terminal state and an event class the table never mentions. The last tests check the totality
helpers of `machine_testing` themselves: a checker that cannot fail proves nothing.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
import pytest
import transitions.core
from hypothesis import strategies as st

from mcp_core.core.machines._fsm import (
    LocalProtocolError,
    Rule,
    StateMachine,
    effects,
    export_table,
    mermaid,
)

from .machine_testing import (
    assert_spec_matches_table,
    assert_table_well_formed,
    assert_total,
    assert_total_hypothesis,
    assert_walks_follow_table,
)


class TurnstileState(enum.Enum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    JAMMED = "jammed"


@attrs.frozen(kw_only=True)
class CoinInserted:
    cents: int


@attrs.frozen(kw_only=True)
class Pushed:
    pass


@attrs.frozen(kw_only=True)
class Kicked:
    strength: int


@attrs.frozen(kw_only=True)
class Inspected:
    """Never in the table: refused in every state."""


@attrs.frozen(kw_only=True)
class Unlock:
    pass


@attrs.frozen(kw_only=True)
class Refund:
    cents: int


@attrs.frozen(kw_only=True)
class CallEngineer:
    pass


class SensorBroke(Exception):
    """What the kick effect builder raises for an out-of-range reading."""


@effects("Unlock")
def _unlock(_event: CoinInserted) -> list[Any]:
    return [Unlock()]


@effects("Refund")
def _refund(event: CoinInserted) -> list[Any]:
    return [Refund(cents=event.cents)]


@effects("CallEngineer")
def _call_engineer(event: Kicked) -> list[Any]:
    if event.strength > 10:
        raise SensorBroke(f"strength {event.strength} is off the scale")
    return [CallEngineer()]


L, U, J = TurnstileState.LOCKED, TurnstileState.UNLOCKED, TurnstileState.JAMMED

TABLE: dict[tuple[TurnstileState, type], Rule[TurnstileState] | list[Rule[TurnstileState]]] = {
    (L, CoinInserted): [
        Rule(to=U, effects=_unlock, when=lambda e: e.cents >= 50, guard_name="enough"),
        Rule(to=L, effects=_refund, when=lambda e: e.cents > 0, guard_name="too little"),
    ],
    (L, Pushed): Rule(to=L),
    (L, Kicked): Rule(to=J, effects=_call_engineer),
    (U, Pushed): Rule(to=L),
    (U, CoinInserted): Rule(to=U, effects=_refund),
}


class Turnstile(StateMachine[TurnstileState]):
    name = "turnstile"

    def __init__(self) -> None:
        super().__init__(TurnstileState, TABLE, TurnstileState.LOCKED)


SAMPLES = {
    CoinInserted: lambda: [CoinInserted(cents=100), CoinInserted(cents=10), CoinInserted(cents=0)],
    Pushed: Pushed,
    Kicked: lambda: Kicked(strength=3),
    Inspected: Inspected,
}


def unlocked() -> Turnstile:
    machine = Turnstile()
    machine.handle(CoinInserted(cents=50))
    assert machine.state is U
    return machine


# ---- inert rows -------------------------------------------------------------------------------


def test_inert_is_exactly_the_unguarded_self_loop_without_effects() -> None:
    locked = Turnstile()
    assert locked.inert(Pushed)  # (L, Pushed): stays, no guard, no effects
    assert not locked.inert(CoinInserted)  # guarded rules
    assert not locked.inert(Kicked)  # moves
    assert not locked.inert(Inspected)  # no rule at all: handle must refuse it
    assert locked.handle(Pushed()) == []
    assert locked.state is L
    opened = unlocked()
    assert not opened.inert(Pushed)  # (U, Pushed) moves to LOCKED
    assert not opened.inert(CoinInserted)  # a self-loop, but with effects


# ---- guards -----------------------------------------------------------------------------------


def test_first_true_guard_wins() -> None:
    machine = Turnstile()
    # 100 cents satisfies both guards; the first rule listed applies.
    assert machine.handle(CoinInserted(cents=100)) == [Unlock()]
    assert machine.state is U


def test_later_guard_applies_when_earlier_ones_fail() -> None:
    machine = Turnstile()
    assert machine.handle(CoinInserted(cents=10)) == [Refund(cents=10)]
    assert machine.state is L


def test_no_guard_holding_is_refused_and_keeps_state() -> None:
    machine = Turnstile()
    with pytest.raises(LocalProtocolError, match="no guard holds"):
        machine.handle(CoinInserted(cents=0))
    assert machine.state is L
    # The machine is still usable afterwards.
    assert machine.handle(CoinInserted(cents=60)) == [Unlock()]


# ---- refusals and failures --------------------------------------------------------------------


def test_event_absent_from_table_is_refused_in_every_state() -> None:
    for machine in (Turnstile(), unlocked()):
        before = machine.state
        with pytest.raises(LocalProtocolError):
            machine.handle(Inspected())
        assert machine.state is before


def test_pair_absent_from_table_is_refused() -> None:
    machine = unlocked()
    with pytest.raises(LocalProtocolError):
        machine.handle(Kicked(strength=1))
    assert machine.state is U


def test_terminal_state_refuses_everything() -> None:
    machine = Turnstile()
    machine.handle(Kicked(strength=1))
    assert machine.state is J
    for event in (CoinInserted(cents=100), Pushed(), Kicked(strength=1), Inspected()):
        with pytest.raises(LocalProtocolError):
            machine.handle(event)
        assert machine.state is J


def test_refusal_names_machine_state_and_event() -> None:
    machine = unlocked()
    event = Kicked(strength=2)
    with pytest.raises(LocalProtocolError) as caught:
        machine.handle(event)
    assert caught.value.machine == "turnstile"
    assert caught.value.state is U
    assert caught.value.event is event
    assert str(caught.value) == "turnstile: Kicked is not allowed in state 'unlocked'"


def test_effect_builder_that_raises_leaves_state_unchanged() -> None:
    machine = Turnstile()
    with pytest.raises(SensorBroke):
        machine.handle(Kicked(strength=11))
    assert machine.state is L
    assert machine.handle(Kicked(strength=4)) == [CallEngineer()]
    assert machine.state is J


def test_engine_out_of_step_is_an_internal_error_not_a_protocol_error() -> None:
    machine = Turnstile()
    # Force the private engine into another state than the machine believes it is in: the only
    # way to make table and engine disagree, which must surface as a bug, never as a refusal.
    machine._model.state = J.value
    with pytest.raises(RuntimeError, match="out of step"):
        machine.handle(CoinInserted(cents=50))
    assert machine.state is L


# ---- self-loops -------------------------------------------------------------------------------


def _engine_must_not_run(*_args: object, **_kwargs: object) -> bool:
    raise AssertionError("the transitions engine ran")


@pytest.fixture
def engine_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any use of the `transitions` engine fail; every engine move goes through
    `Event.trigger`, however `_fsm` chooses to reach it."""
    monkeypatch.setattr(transitions.core.Event, "trigger", _engine_must_not_run)


@pytest.mark.usefixtures("engine_forbidden")
def test_self_loop_does_not_touch_the_engine() -> None:
    machine = Turnstile()
    assert machine.handle(Pushed()) == []
    assert machine.handle(CoinInserted(cents=5)) == [Refund(cents=5)]
    assert machine.state is L
    # The control: a real move does reach the engine, so the fixture above is effective.
    with pytest.raises(AssertionError, match="engine ran"):
        machine.handle(CoinInserted(cents=50))
    assert machine.state is L


def test_self_loop_without_effects_returns_no_effects() -> None:
    machine = Turnstile()
    assert machine.handle(Pushed()) == []
    assert machine.state is L


@pytest.mark.usefixtures("engine_forbidden")
def test_self_loop_still_validates() -> None:
    machine = Turnstile()
    # (locked, CoinInserted) has a self-loop rule, but its guard must still hold.
    with pytest.raises(LocalProtocolError, match="no guard holds"):
        machine.handle(CoinInserted(cents=-5))
    assert machine.state is L


def test_engine_stays_in_step_across_self_loops() -> None:
    machine = Turnstile()
    machine.handle(Pushed())
    machine.handle(CoinInserted(cents=10))
    machine.handle(CoinInserted(cents=70))
    machine.handle(CoinInserted(cents=70))
    # Each of these moves goes through the engine, which raises if it lagged behind.
    assert machine.handle(Pushed()) == []
    assert machine.handle(CoinInserted(cents=50)) == [Unlock()]
    assert machine.state is U


# ---- allows() and independence ----------------------------------------------------------------


def test_allows_reports_pairs_present_in_current_state() -> None:
    machine = Turnstile()
    assert machine.allows(CoinInserted)
    assert machine.allows(Kicked)
    assert not machine.allows(Inspected)
    machine = unlocked()
    assert machine.allows(Pushed)
    assert not machine.allows(Kicked)


def test_allows_does_not_evaluate_guards() -> None:
    # A pair with rules is allowed even if no guard would hold for a given event.
    assert Turnstile().allows(CoinInserted)


def test_machines_do_not_share_state() -> None:
    first, second = Turnstile(), Turnstile()
    first.handle(CoinInserted(cents=50))
    assert first.state is U
    assert second.state is L


# ---- export_table, mermaid, effects -----------------------------------------------------------


def _spec() -> dict[str, Any]:
    return export_table("turnstile", TurnstileState, L, TABLE)


def test_export_table_lists_every_rule_in_table_order() -> None:
    assert _spec() == {
        "machine": "turnstile",
        "states": ["locked", "unlocked", "jammed"],
        "initial": "locked",
        "transitions": [
            {
                "from": "locked",
                "event": "CoinInserted",
                "to": "unlocked",
                "guard": "enough",
                "effects": ["Unlock"],
            },
            {
                "from": "locked",
                "event": "CoinInserted",
                "to": "locked",
                "guard": "too little",
                "effects": ["Refund"],
            },
            {"from": "locked", "event": "Pushed", "to": "locked"},
            {"from": "locked", "event": "Kicked", "to": "jammed", "effects": ["CallEngineer"]},
            {"from": "unlocked", "event": "Pushed", "to": "locked"},
            {"from": "unlocked", "event": "CoinInserted", "to": "unlocked", "effects": ["Refund"]},
        ],
    }


def test_export_table_agrees_with_independent_rows() -> None:
    assert_spec_matches_table(_spec(), "turnstile", TurnstileState, L, TABLE)


def test_export_of_undecorated_effects_names_none() -> None:
    table = {(L, Pushed): Rule(to=U, effects=lambda _e: [Unlock()])}
    rows = export_table("t", TurnstileState, L, table)["transitions"]
    assert rows == [{"from": "locked", "event": "Pushed", "to": "unlocked"}]


def test_mermaid_draws_initial_state_and_every_transition() -> None:
    assert mermaid(_spec()) == (
        "stateDiagram-v2\n"
        "    [*] --> locked\n"
        "    locked --> unlocked: CoinInserted [enough]\n"
        "    locked --> locked: CoinInserted [too little]\n"
        "    locked --> locked: Pushed\n"
        "    locked --> jammed: Kicked\n"
        "    unlocked --> locked: Pushed\n"
        "    unlocked --> unlocked: CoinInserted\n"
    )


def test_effects_decorator_records_names_and_keeps_function() -> None:
    @effects("A", "B")
    def build(_event: object) -> list[Any]:
        return ["a", "b"]

    assert build.effect_names == ("A", "B")  # type: ignore[attr-defined]
    assert build(None) == ["a", "b"]


# ---- the totality helpers, on the turnstile and on broken machines ----------------------------


def test_turnstile_table_is_well_formed() -> None:
    assert_table_well_formed(TurnstileState, TABLE)


def test_turnstile_is_total() -> None:
    seen = assert_total(Turnstile, TurnstileState, SAMPLES, TABLE)
    assert seen[(L, CoinInserted)] == {"moved", "refused"}
    assert seen[(J, Pushed)] == {"refused"}
    assert all(seen[(s, Inspected)] == {"refused"} for s in TurnstileState)


def test_turnstile_is_total_under_hypothesis() -> None:
    assert_total_hypothesis(
        Turnstile,
        TurnstileState,
        SAMPLES,
        TABLE,
        strategies={
            CoinInserted: st.builds(CoinInserted, cents=st.integers(-10, 200)),
            Kicked: st.builds(Kicked, strength=st.integers(0, 10)),
        },
    )


def test_turnstile_walks_follow_table() -> None:
    assert_walks_follow_table(
        Turnstile,
        TABLE,
        SAMPLES,
        strategies={CoinInserted: st.builds(CoinInserted, cents=st.integers(-10, 200))},
    )


class _AcceptsEverything(Turnstile):
    """Swallows events its table refuses: the bug totality tests exist for."""

    def handle(self, event: object) -> list[Any]:
        try:
            return super().handle(event)
        except LocalProtocolError:
            return []


class _CrashesOnUnknown(Turnstile):
    def handle(self, event: object) -> list[Any]:
        if isinstance(event, Inspected):
            raise KeyError("Inspected")
        return super().handle(event)


class _ForgetsEffects(Turnstile):
    def handle(self, event: object) -> list[Any]:
        super().handle(event)
        return []


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        (_AcceptsEverything, "the table refuses it"),
        (_CrashesOnUnknown, "raised KeyError"),
        (_ForgetsEffects, "effects"),
    ],
)
def test_totality_check_catches_broken_machines(broken: type[Turnstile], complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        assert_total(broken, TurnstileState, SAMPLES, TABLE)


def test_totality_check_needs_samples_that_reach_every_state() -> None:
    only_small_coins = {**SAMPLES, CoinInserted: lambda: CoinInserted(cents=1)}
    with pytest.raises(AssertionError, match="no path"):
        assert_total(Turnstile, TurnstileState, only_small_coins, TABLE)


def test_well_formed_check_catches_unreachable_rules() -> None:
    table = {(L, Pushed): [Rule(to=U), Rule(to=J, when=lambda _e: True, guard_name="g")]}
    with pytest.raises(AssertionError, match="never apply"):
        assert_table_well_formed(TurnstileState, table)


def test_well_formed_check_catches_unnamed_guards() -> None:
    table = {(L, Pushed): Rule(to=U, when=lambda _e: True)}
    with pytest.raises(AssertionError, match="no guard_name"):
        assert_table_well_formed(TurnstileState, table)
