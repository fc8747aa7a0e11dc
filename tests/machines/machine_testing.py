"""Checks every state machine of mcp-core gets: totality against its table, and its exports.

DESIGN.md "State machines: the table is the spec": anything not in the table raises
`LocalProtocolError` and leaves the state unchanged. h2 tests its stream machine by trying every
input in every state; these helpers do the same for any machine built on
`mcp_core.core.machines._fsm`, so a new machine gets the test in a few lines:

    def test_daemon_is_total() -> None:
        assert_total(DaemonMachine, DaemonState, DAEMON_SAMPLES, TABLE)

Vocabulary:
- `samples` maps each event class the machine knows to a zero-argument factory returning one
  sample event, or a list of them. The helpers reach each state by a breadth-first search
  through the table from the initial state, firing samples, so the samples must be able to
  reach every state: where guards pick among rules, give one sample per guard.
- For one (state, event) the table predicts an outcome: the first rule whose guard holds (the
  machine must move to its `to` state and return exactly `rule.effects(event)`), or none (the
  machine must raise `LocalProtocolError` and keep its state). Any other exception, or any other
  result, fails the check.
- Effect builders are pure functions of the event, so calling them again here to get the
  expected effects is legitimate.

The export helpers re-derive the rows of `specs/machines/<name>.json` from the table, so a bug in
`export_table` is caught as well as a stale file.
"""

from __future__ import annotations

import collections
import difflib
import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core.core.machines._fsm import LocalProtocolError, Rule, StateMachine, Table

__all__ = [
    "HYPOTHESIS_SETTINGS",
    "MachineFactory",
    "Samples",
    "assert_spec_file_matches_table",
    "assert_spec_matches_table",
    "assert_table_well_formed",
    "assert_text_file_is",
    "assert_total",
    "assert_total_hypothesis",
    "assert_walks_follow_table",
    "expect_step",
    "expected_rule",
    "paths_to_states",
    "rules_for",
    "samples_of",
    "spec_rows",
]

MachineFactory = Callable[[], StateMachine[Any]]
Samples = Mapping[type, Callable[[], object]]
Outcome = Literal["moved", "refused"]

# Deterministic (same examples every run, nothing written to .hypothesis/) and fast.
HYPOTHESIS_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
)


# ---- reading the table ----------------------------------------------------------------------


def rules_for(table: Table[Any], state: enum.Enum, event_type: type) -> tuple[Rule[Any], ...]:
    """The rules of one (state, event class) pair, in order; empty when the pair is absent."""
    value = table.get((state, event_type))
    if value is None:
        return ()
    return (value,) if isinstance(value, Rule) else tuple(value)


def expected_rule(table: Table[Any], state: enum.Enum, event: object) -> Rule[Any] | None:
    """The rule the table says applies: the first whose guard holds, or None (refused)."""
    for rule in rules_for(table, state, type(event)):
        if rule.when is None or rule.when(event):
            return rule
    return None


def _event_types(table: Table[Any]) -> list[type]:
    seen: dict[type, None] = {}
    for _state, event_type in table:
        seen.setdefault(event_type, None)
    return list(seen)


def samples_of(samples: Samples, event_type: type) -> list[object]:
    """The sample events of one class, always as a list."""
    made = samples[event_type]()
    events = list(made) if isinstance(made, list | tuple) else [made]
    assert events, f"the sample factory for {event_type.__name__} returned no events"
    for event in events:
        assert type(event) is event_type, (
            f"the sample factory for {event_type.__name__} made a {type(event).__name__}"
        )
    return events


def _check_samples_cover_table(table: Table[Any], samples: Samples) -> None:
    missing = [t.__name__ for t in _event_types(table) if t not in samples]
    assert not missing, f"no sample factory for event classes in the table: {missing}"


def assert_samples_take_every_rule(table: Table[Any], samples: Samples) -> None:
    """Every rule of the table is the one some sample event takes (guards in order)."""
    every: set[tuple[enum.Enum, type, int]] = set()
    taken: set[tuple[enum.Enum, type, int]] = set()
    for state, event_type in table:
        rules = rules_for(table, state, event_type)
        every.update((state, event_type, index) for index in range(len(rules)))
        for event in samples_of(samples, event_type):
            for index, rule in enumerate(rules):
                if rule.when is None or rule.when(event):
                    taken.add((state, event_type, index))
                    break
    missing = sorted((s.value, t.__name__, i) for s, t, i in every - taken)
    assert not missing, f"no sample takes these rules (state, event, index): {missing}"


def assert_table_well_formed(states: Iterable[enum.Enum], table: Table[Any]) -> None:
    """Catch table mistakes the engine would silently accept.

    Every state named is one of `states`; within one (state, event) pair only the last rule may
    be unguarded (rules after it could never apply), every guard has a name for the export and
    the names differ; event class names are unique (they are the engine's trigger names and
    the export's `event` column).
    """
    known = set(states)
    by_name: dict[str, type] = {}
    for source, event_type in table:
        pair = f"({source!r}, {event_type.__name__})"
        assert source in known, f"{pair}: {source!r} is not one of the machine's states"
        by_name.setdefault(event_type.__name__, event_type)
        assert by_name[event_type.__name__] is event_type, (
            f"two event classes are named {event_type.__name__}"
        )
        rules = rules_for(table, source, event_type)
        assert rules, f"{pair}: an empty list of rules; leave the pair out instead"
        for index, rule in enumerate(rules):
            assert rule.to in known, f"{pair}: goes to {rule.to!r}, not one of the states"
            if rule.when is None:
                assert index == len(rules) - 1, (
                    f"{pair}: rule {index} has no guard, so the rules after it never apply"
                )
            else:
                assert rule.guard_name, f"{pair}: rule {index} has a guard but no guard_name"
        names = [rule.guard_name for rule in rules if rule.guard_name]
        assert len(names) == len(set(names)), f"{pair}: guard names repeat: {names}"


# ---- driving a machine ------------------------------------------------------------------------


def paths_to_states(
    machine_factory: MachineFactory, table: Table[Any], samples: Samples
) -> dict[enum.Enum, list[object]]:
    """For every state reachable with the samples, the shortest list of events leading there.

    A breadth-first search through the table (not through the machine) from the machine's
    initial state; which rule a sample takes is decided by the table's guards.
    """
    _check_samples_cover_table(table, samples)
    initial = machine_factory().state
    paths: dict[enum.Enum, list[object]] = {initial: []}
    queue = collections.deque([initial])
    while queue:
        state = queue.popleft()
        for source, event_type in table:
            if source is not state:
                continue
            for event in samples_of(samples, event_type):
                rule = expected_rule(table, state, event)
                if rule is not None and rule.to not in paths:
                    paths[rule.to] = [*paths[state], event]
                    queue.append(rule.to)
    return paths


def _reachable_paths(
    machine_factory: MachineFactory,
    states: Iterable[enum.Enum],
    table: Table[Any],
    samples: Samples,
) -> dict[enum.Enum, list[object]]:
    paths = paths_to_states(machine_factory, table, samples)
    unreachable = [s for s in states if s not in paths]
    assert not unreachable, (
        f"no path from {machine_factory().state!r} to {unreachable} with the given samples: "
        "add samples that satisfy the guards on the way, or remove the dead states"
    )
    return paths


def _drive(machine_factory: MachineFactory, table: Table[Any], path: Sequence[object]) -> Any:
    machine = machine_factory()
    for event in path:
        expect_step(machine, table, event, context="on the way: ")
    return machine


def expect_step(machine: Any, table: Table[Any], event: object, context: str = "") -> Outcome:
    """Fire one event and check the machine did exactly what its table says."""
    before = machine.state
    label = f"{context}{type(machine).__name__} in {before!r} given {event!r}"
    has_pair = bool(rules_for(table, before, type(event)))
    assert machine.allows(type(event)) == has_pair, (
        f"{label}: allows() says {not has_pair}, the table says {has_pair}"
    )
    rule = expected_rule(table, before, event)
    refusal: LocalProtocolError | None = None
    try:
        got = machine.handle(event)
    except LocalProtocolError as exc:
        refusal = exc
    except Exception as exc:  # anything else is a bug, whatever the table says
        raise AssertionError(f"{label}: raised {type(exc).__name__}: {exc}") from exc
    if refusal is not None:
        assert rule is None, f"{label}: refused ({refusal}), but the table goes to {rule.to!r}"
        assert machine.state is before, f"{label}: refused but moved to {machine.state!r}"
        assert refusal.state is before, f"{label}: the error names state {refusal.state!r}"
        assert refusal.event is event, f"{label}: the error names another event"
        return "refused"
    assert rule is not None, f"{label}: accepted (returned {got!r}), but the table refuses it"
    assert machine.state is rule.to, (
        f"{label}: moved to {machine.state!r}, the table says {rule.to!r}"
    )
    want = rule.effects(event)
    assert list(got) == list(want), f"{label}: effects {got!r}, the table says {want!r}"
    return "moved"


# ---- totality ---------------------------------------------------------------------------------


def assert_total(
    machine_factory: MachineFactory,
    states: Iterable[enum.Enum],
    samples: Samples,
    table: Table[Any],
) -> dict[tuple[enum.Enum, type], set[Outcome]]:
    """Every event class in every state, each on a fresh machine: it moves as the table says or
    refuses with `LocalProtocolError` and keeps its state; nothing else.

    `samples` must have a factory for every event class in the table and may add classes the
    table never mentions (they must be refused everywhere). Returns the outcomes seen per pair,
    for tests that want to assert on the shape of the table.
    """
    states = list(states)
    paths = _reachable_paths(machine_factory, states, table, samples)
    seen: dict[tuple[enum.Enum, type], set[Outcome]] = {}
    for state in states:
        for event_type in samples:
            for event in samples_of(samples, event_type):
                machine = _drive(machine_factory, table, paths[state])
                assert machine.state is state
                outcome = expect_step(machine, table, event)
                seen.setdefault((state, event_type), set()).add(outcome)
    return seen


def _event_strategy(
    samples: Samples, strategies: Mapping[type, st.SearchStrategy[Any]] | None
) -> st.SearchStrategy[Any]:
    strategies = strategies or {}
    unknown = [t.__name__ for t in strategies if t not in samples]
    assert not unknown, f"strategies for event classes without samples: {unknown}"
    return st.one_of(
        *(
            strategies[event_type]
            if event_type in strategies
            else st.sampled_from(samples_of(samples, event_type))
            for event_type in samples
        )
    )


def assert_total_hypothesis(
    machine_factory: MachineFactory,
    states: Iterable[enum.Enum],
    samples: Samples,
    table: Table[Any],
    strategies: Mapping[type, st.SearchStrategy[Any]] | None = None,
    hypothesis_settings: settings = HYPOTHESIS_SETTINGS,
) -> None:
    """`assert_total` with Hypothesis drawing the (state, event) pairs.

    `strategies` may replace the samples of some event classes with strategies that draw richer
    events (arbitrary field values); the samples are still used to reach each state.
    """
    states = list(states)
    paths = _reachable_paths(machine_factory, states, table, samples)
    events = _event_strategy(samples, strategies)

    @hypothesis_settings
    @given(state=st.sampled_from(states), event=events)
    def check(state: enum.Enum, event: object) -> None:
        machine = _drive(machine_factory, table, paths[state])
        expect_step(machine, table, event)

    check()


def assert_walks_follow_table(
    machine_factory: MachineFactory,
    table: Table[Any],
    samples: Samples,
    strategies: Mapping[type, st.SearchStrategy[Any]] | None = None,
    hypothesis_settings: settings = HYPOTHESIS_SETTINGS,
    max_steps: int = 30,
) -> None:
    """Random sequences of events from the initial state, each step checked against the table.

    Catches machines whose behaviour depends on history the state enum does not show.
    """
    _check_samples_cover_table(table, samples)
    events = _event_strategy(samples, strategies)

    @hypothesis_settings
    @given(walk=st.lists(events, max_size=max_steps))
    def check(walk: list[object]) -> None:
        machine = machine_factory()
        for step, event in enumerate(walk):
            expect_step(machine, table, event, context=f"step {step}: ")

    check()


# ---- exports ----------------------------------------------------------------------------------


def spec_rows(table: Table[Any]) -> list[dict[str, Any]]:
    """The `transitions` rows an export of `table` must hold, in table order.

    Derived here on purpose rather than by calling `export_table`, so that a bug in the
    exporter shows up as a mismatch.
    """
    rows: list[dict[str, Any]] = []
    for source, event_type in table:
        for rule in rules_for(table, source, event_type):
            row: dict[str, Any] = {
                "from": source.value,
                "event": event_type.__name__,
                "to": rule.to.value,
            }
            if rule.guard_name:
                row["guard"] = rule.guard_name
            names = list(getattr(rule.effects, "effect_names", ()))
            if names:
                row["effects"] = names
            rows.append(row)
    return rows


def _rows_diff(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str:
    dump = [json.dumps(r, sort_keys=True) for r in got]
    expect = [json.dumps(r, sort_keys=True) for r in want]
    return "\n".join(difflib.unified_diff(expect, dump, "table", "spec", lineterm=""))


def assert_spec_matches_table(
    spec: Mapping[str, Any],
    name: str,
    states: Iterable[enum.Enum],
    initial: enum.Enum,
    table: Table[Any],
) -> None:
    """An exported spec (already parsed) says exactly what the table says."""
    assert spec.get("machine") == name, f"spec names machine {spec.get('machine')!r}"
    assert spec.get("states") == [s.value for s in states], f"{name}: states differ"
    assert spec.get("initial") == initial.value, f"{name}: initial state differs"
    rows = list(spec.get("transitions", []))
    want = spec_rows(table)
    assert rows == want, f"{name}: transitions differ from the table:\n{_rows_diff(rows, want)}"
    extra = set(spec) - {"machine", "states", "initial", "transitions"}
    assert not extra, f"{name}: unexpected keys in the spec: {sorted(extra)}"


def assert_spec_file_matches_table(
    path: Path,
    name: str,
    states: Iterable[enum.Enum],
    initial: enum.Enum,
    table: Table[Any],
) -> None:
    """`specs/machines/<name>.json` exists, parses and matches the table."""
    assert path.is_file(), f"{path} is missing: run scripts/export_machines.py"
    assert_spec_matches_table(json.loads(path.read_text("utf-8")), name, states, initial, table)


def assert_text_file_is(path: Path, expected: str) -> None:
    """A generated file holds exactly `expected`; the failure shows a diff."""
    assert path.is_file(), f"{path} is missing: run scripts/export_machines.py"
    actual = path.read_text("utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "expected", str(path), lineterm=""
        )
        raise AssertionError(f"{path} drifted; run scripts/export_machines.py:\n" + "\n".join(diff))
