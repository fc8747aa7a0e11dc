"""The one engine every state machine in mcp-core runs on.

Rules of this module (see DESIGN.md "State machines: the table is the spec"):
- A machine is a table: `(state, event class) -> Rule(s)`. A `Rule` names the next state, the
  effects to emit (a function of the event) and, when one (state, event) pair can lead to
  several states, a guard that picks the rule from the event's fields.
- `handle(event)` looks the pair up. A pair that is not in the table raises
  `LocalProtocolError` and leaves the state unchanged; so does an event whose guards all fail.
- Effects are computed before the state moves, so an exception while computing them also
  leaves the state unchanged.
- Machines never read a clock, roll dice or do I/O: time and randomness arrive in events.

The `transitions` library moves the state. It is confined to this module, built from the table
with `auto_transitions=False` on a private plain model (never on attrs classes, never
`AsyncMachine`). Self-loops (a rule whose next state is the current one) are answered from the
table without calling the engine: they change nothing, and the session machine sees one on
every request, where the engine's ~14 us per trigger would be measurable.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import attrs
from transitions import Machine, MachineError

# `transitions` logs every state change at INFO; one line per session start is noise in a
# server's log. Quieten it unless the application configured that logger itself.
_transitions_log = logging.getLogger("transitions")
if _transitions_log.level == logging.NOTSET:
    _transitions_log.setLevel(logging.WARNING)

__all__ = [
    "JudgedMachine",
    "LocalProtocolError",
    "Rule",
    "StateMachine",
    "Table",
    "effects",
    "export_table",
    "feed",
    "judge",
    "mermaid",
]

S = TypeVar("S", bound=enum.Enum)


class LocalProtocolError(Exception):
    """An event arrived that the machine's table does not allow in the current state."""

    def __init__(self, machine: str, state: enum.Enum, event: object, reason: str = "") -> None:
        name = type(event).__name__
        detail = f": {reason}" if reason else ""
        super().__init__(f"{machine}: {name} is not allowed in state {state.value!r}{detail}")
        self.machine = machine
        self.state = state
        self.event = event


def _no_effects(_event: Any) -> list[Any]:
    return []


@attrs.frozen(kw_only=True)
class Rule(Generic[S]):
    """One row of a transition table."""

    to: S
    effects: Callable[[Any], list[Any]] = _no_effects
    # When several rules share a (state, event) pair, the first whose guard holds wins.
    when: Callable[[Any], bool] | None = None
    # Names the guard in the exported spec and diagram.
    guard_name: str = ""


Table = Mapping[tuple[S, type], Rule[S] | Sequence[Rule[S]]]


class _Model:
    """The private object `transitions` moves; nothing else ever sees it."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


_Rules = dict[tuple[Any, type], tuple[Rule[Any], ...]]
# (state, event type) pairs whose one rule stays in the state, unguarded and without effects.
_Inert = frozenset[tuple[Any, type]]
# One engine per table, shared by every machine built from it: a `transitions.Machine` costs
# ~16 KB and ~0.7 ms to build, too much for one per session. Each machine keeps its own tiny
# `_Model` and fires the shared engine's events on it directly, so the engine keeps no
# per-machine state and nothing has to be unregistered.
_ENGINES: dict[int, tuple[_Rules, Machine, _Inert]] = {}


def _engine_for(
    states: type[enum.Enum], table: Table[Any], initial: enum.Enum
) -> tuple[_Rules, Machine, _Inert]:
    cached = _ENGINES.get(id(table))
    if cached is not None:
        return cached
    rules: _Rules = {
        key: (value,) if isinstance(value, Rule) else tuple(value) for key, value in table.items()
    }
    engine = Machine(
        model=None,
        states=[s.value for s in states],
        initial=initial.value,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=True,
        model_attribute="state",
    )
    for (source, event_type), options in rules.items():
        for rule in options:
            if rule.to is source:
                continue
            engine.add_transition(
                trigger=event_type.__name__,
                source=source.value,
                dest=rule.to.value,
                conditions=[_destination_is(rule.to.value)],
            )
    inert = frozenset(
        key
        for key, (*others, rule) in rules.items()
        if not others and rule.to is key[0] and rule.when is None and rule.effects is _no_effects
    )
    # Tables are module constants; keep them alive with the engine so the id stays theirs.
    _ENGINES[id(table)] = (rules, engine, inert)
    _TABLES_KEPT.append(table)
    return rules, engine, inert


_TABLES_KEPT: list[Table[Any]] = []


class StateMachine(Generic[S]):
    """A table-driven machine. Subclasses set `name` and pass their states, table and initial
    state. Not thread-safe: drive one machine from one thread (or one task) at a time."""

    name: str = "machine"
    __slots__ = ("_by_value", "_engine", "_inert", "_model", "_rules", "_state")

    def __init__(self, states: type[S], table: Table[S], initial: S) -> None:
        self._rules, self._engine, self._inert = _engine_for(states, table, initial)
        self._by_value = states._value2member_map_
        self._model = _Model(initial.value)
        self._state = initial

    @property
    def state(self) -> S:
        return self._state

    def allows(self, event_type: type) -> bool:
        """Whether some rule exists for this event type in the current state."""
        return (self._state, event_type) in self._rules

    def inert(self, event_type: type) -> bool:
        """Whether an event of this type would change nothing now: its table row stays in the
        current state, with no guard and no effects. A caller on a hot path may skip `handle`
        for it; the table, not the caller, says when that holds."""
        return (self._state, event_type) in self._inert

    def handle(self, event: object) -> list[Any]:
        rules = self._rules.get((self._state, type(event)))
        if rules is None:
            raise LocalProtocolError(self.name, self._state, event)
        for rule in rules:
            if rule.when is None or rule.when(event):
                break
        else:
            raise LocalProtocolError(self.name, self._state, event, "no guard holds")
        effects = rule.effects(event)
        if rule.to is not self._state:
            try:
                moved = self._engine.events[type(event).__name__].trigger(
                    self._model, destination=rule.to.value
                )
            # The table allowed this move, so an engine that refuses it is a bug in this module,
            # not a peer breaking the protocol: it must not pass for `LocalProtocolError`, which
            # callers answer as a protocol error and totality tests accept.
            except MachineError as exc:
                message = f"{self.name}: engine out of step with the table: {exc}"
                raise RuntimeError(message) from exc
            if not moved:
                message = f"{self.name}: engine out of step with the table: it refused the move"
                raise RuntimeError(message)
            self._state = self._by_value[self._model.state]  # type: ignore[assignment]
        return effects


def _destination_is(value: str) -> Callable[[Any], bool]:
    def check(event_data: Any) -> bool:
        return bool(event_data.kwargs.get("destination") == value)

    return check


def export_table(
    name: str, states: Iterable[enum.Enum], initial: enum.Enum, table: Table[Any]
) -> dict[str, Any]:
    """The machine as plain data: what `specs/machines/<name>.json` holds."""
    rows = []
    for (source, event_type), value in table.items():
        rules = (value,) if isinstance(value, Rule) else tuple(value)
        for rule in rules:
            row: dict[str, Any] = {
                "from": source.value,
                "event": event_type.__name__,
                "to": rule.to.value,
            }
            if rule.guard_name:
                row["guard"] = rule.guard_name
            effect_names = getattr(rule.effects, "effect_names", None)
            if effect_names:
                row["effects"] = list(effect_names)
            rows.append(row)
    return {
        "machine": name,
        "states": [s.value for s in states],
        "initial": initial.value,
        "transitions": rows,
    }


def mermaid(spec: Mapping[str, Any]) -> str:
    """A Mermaid state diagram drawn from an exported table."""
    lines = ["stateDiagram-v2", f"    [*] --> {spec['initial']}"]
    for row in spec["transitions"]:
        label = row["event"]
        if row.get("guard"):
            label += f" [{row['guard']}]"
        lines.append(f"    {row['from']} --> {row['to']}: {label}")
    return "\n".join(lines) + "\n"


def effects(*names: str) -> Callable[[Callable[[Any], list[Any]]], Callable[[Any], list[Any]]]:
    """Decorate an effect builder with the names of the effects it emits (for the export)."""

    def wrap(fn: Callable[[Any], list[Any]]) -> Callable[[Any], list[Any]]:
        fn.effect_names = names  # type: ignore[attr-defined]
        return fn

    return wrap


# ---- machines whose guards read data they own ---------------------------------------------
#
# A machine such as the credential bootstrap keeps data of its own (a nonce, deadlines,
# counters) that its guards must read, while the table's guards see only the event. Its driver
# re-makes each such event as a same-named "judged" class carrying that data (`context`), feeds
# the judged event to the table, and reports a refusal in terms of the event the caller sent.


def judge(judged: Mapping[type, type], event: object, context: object) -> object:
    """`event` as the table receives it: re-made as its judged class with `context`, or as is."""
    judged_type = judged.get(type(event))
    if judged_type is None:
        return event
    return judged_type(**attrs.asdict(event, recurse=False), context=context)  # type: ignore[arg-type]


def feed(
    machine: StateMachine[S],
    fed: object,
    sent: object,
    refusal: Callable[[S, object], str],
) -> list[Any]:
    """Handle a judged event; a refusal names the event the caller `sent` and `refusal`'s reason."""
    before = machine.state
    try:
        return machine.handle(fed)
    except LocalProtocolError as exc:
        raise LocalProtocolError(machine.name, before, sent, refusal(before, fed)) from exc


P = TypeVar("P")


class JudgedMachine(Generic[S, P]):
    """The driver of a table whose guards read data the machine owns.

    A subclass holds its table machine in `_machine` and its data in `_progress`, names its
    judged classes in `judged`, and says how events are judged (`_context`), why a guard
    refused (`_refusal`) and how the data moves on (`_advance`). `handle` judges, feeds,
    advances; a refusal changes nothing.
    """

    __slots__ = ("_machine", "_progress")
    judged: ClassVar[Mapping[type, type]] = {}
    _machine: StateMachine[S]
    _progress: P

    def _context(self) -> object:
        raise NotImplementedError

    def _refusal(self, state: S, fed: object) -> str:
        raise NotImplementedError

    def _advance(self, fed: object, effects: list[Any]) -> P:
        raise NotImplementedError

    def handle(self, event: object) -> list[Any]:
        """Apply one event; returns the effects the service must perform, in order."""
        fed = judge(self.judged, event, self._context())
        out = feed(self._machine, fed, event, self._refusal)
        self._progress = self._advance(fed, out)
        return out

    def allows(self, event_type: type) -> bool:
        """Whether the table has a row for this event class in the current state (its guards
        may still refuse a given event)."""
        return self._machine.allows(self.judged.get(event_type, event_type))

    @property
    def state(self) -> S:
        return self._machine.state

    @property
    def progress(self) -> P:
        """Everything to persist; the subclass's constructor restores it."""
        return self._progress
