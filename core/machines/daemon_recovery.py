"""Daemon recovery: a stdio bridge's supervisor's view of the shared local daemon.

Issue 6 ("Process lifecycle", the shared daemon); DESIGN.md "State machines: the table is the
spec".

Theory of operation. Clients launch `mcp-core bridge SERVER` as a stdio subprocess, often
several at once (one per editor window or agent). The bridges of one server share one local HTTP
daemon, which they find through its lock file (pid, port, bearer token and the server's version,
owner-only), and relay stdio to it over loopback Streamable HTTP. One machine runs in each
bridge. It starts `absent`: no daemon known.

The lock protocol the machine relies on (the supervisor service and the lock adapter keep it):
- A bridge that means to spawn creates the lock file exclusively (`AcquireLock`), holding its
  own pid and version and no port: "a bridge is spawning". Of several bridges racing, exactly
  one is told `LockAcquired`; the others are told `LockBusy`.
- The daemon, once it listens, replaces that record atomically with its own pid, port, token
  and version: from then on the lock is the daemon's. When it exits idle, it removes its own
  record first.
- `SweepLock` and `ReleaseLock` remove the file only while it still holds what this bridge read
  (the stale record) or wrote (its own spawning record), so a bridge never removes a lock that
  another one has just taken. `StopDaemon` stops a pid only while it is still that daemon.

Finding or starting the daemon. When the client needs the daemon (`DaemonNeeded`: the bridge
started, or a request arrived after an idle exit) the machine reads the lock (`locating`):
- no lock (`LockMissing`): acquire it (`acquiring`);
- a stale lock, swept (`SweepLock`) and then acquired: a dead pid, an unparseable file
  (`LockStale`), or a daemon of another version. That daemon is not killed: it may still serve
  bridges of its own version, and it exits when idle;
- a live bridge's spawning record: wait `lock_poll_interval` and read again (`waiting`), so two
  bridges starting at once spawn one daemon, not two. A spawning record is waited for whatever
  its version: sweeping it would race its daemon for the lock;
- a live daemon of this version: probe it (`starting`).
`LockAcquired` leads to `spawning` (`Spawn`) and `LockBusy` to `waiting`. A spawned daemon is
probed too (`starting`): `ProbeHealth(timeout)` asks the service to read the lock for the port
and token of the daemon it names and to wait up to `probe_timeout` for its health route.
`HealthOk(pid, port)` reaches `healthy` with `Relay(pid, port)`: the service relays to that
port with the token it read alongside; the bearer token never enters the machine.

Failures, backoff and giving up. In `healthy`, a failed relay or probe (`HealthFailed`) moves to
`unhealthy`, where one more probe confirms before anything is restarted: the daemon is shared,
and one slow request must not kill it under every bridge. A confirmed failure, like a failed
probe in `starting`, stops the daemon (`StopDaemon`); a dead pid (`ProcessDied`) needs neither
confirmation nor stopping. Every failed try counts one attempt: a lock the service could not
read, sweep or create (`LockError`), `SpawnFailed`, a failed probe in `starting` or a confirmed
one in `unhealthy`, and the daemon's death. While attempts remain, the machine moves to
`restarting` and asks for a timer, `ScheduleRetry(after=delay)`, where for the n-th retry in a
row (n from 0)

    delay = min(max_delay, base_delay * 2**n) * (1 + jitter)

and `jitter`, in [0, 1), is drawn by the service from its `Random` port and carried by the
failure event: each delay lies in [d, 2d), which spreads the bridges that saw the same crash.
`BackoffElapsed` reads the lock again, so a daemon another bridge restarted meanwhile is simply
probed and used. The failure that spends the last of `max_attempts` attempts ends in `given_up`
with `ReportGivenUp(reason, attempts)`: the error the bridge returns to its client. `given_up`
is final; the client restarts the bridge. Reaching `healthy` resets the attempts. A bridge that
holds the lock while spawning gives it back (`ReleaseLock`) whenever its try fails.

Waiting on a busy lock is not a failure and counts no attempt, but it is bounded too: after
`max_lock_waits` busy reads in one try (a bridge stuck while spawning), the machine gives up.

An idle exit is not a failure: `IdleExited` (the daemon's pid is gone and it removed its own
record) returns to `absent` without counting an attempt, and the next request fires
`DaemonNeeded`. `ProcessDied` and `IdleExited` name a pid: a report about any process but the
daemon the machine knows is refused.

Failed effects come back as events: `LockError`, `SpawnFailed`, `HealthFailed`. `StopDaemon`
and `ReleaseLock` report nothing: the next read of the lock shows what they achieved, so no
state claims an outcome that did not happen.

Driving it. A service (the daemon supervisor) keeps one `DaemonRecovery` per bridge, performs
the returned effects in order and reports each outcome as the next event: `ReadLock` is
answered by `LockFound`, `LockMissing`, `LockStale` or `LockError`; `SweepLock` then
`AcquireLock` (always emitted together) by `LockAcquired`, `LockBusy` or `LockError`; `Spawn` by
`Spawned` or `SpawnFailed`; `ProbeHealth` by `HealthOk` or `HealthFailed`; `ScheduleRetry` by
`BackoffElapsed`. While `healthy` it reports `HealthFailed` (a relayed request failed in
transport), `ProcessDied` or `IdleExited` as it notices them. Failure events carry the jitter
the service drew. This module reads no clock, draws no random numbers and does no I/O.

How the table sees the machine's data. As in `credential_bootstrap`, the engine's guards and
effect builders see only their event, while several of these guards read what the machine holds
(the attempts spent, the busy reads, the daemon's pid, whether this bridge holds the lock) or
what it was built with (the limits, the server's version). `DaemonRecovery` keeps that data as
a `RecoveryProgress` and hands the table a *judged* event: the same class re-made in `Judged`
under the same name, carrying a `RecoveryContext` as of the event's arrival. Every guard and
effect is then a pure function of one value, and the table below is the whole specification.

The table below is the specification; `specs/machines/daemon_recovery.json` and
`docs/machines/daemon_recovery.md` are generated from it, and tests fail when they drift.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import attrs

from ._fsm import (
    JudgedMachine,
    LocalProtocolError,
    Rule,
    StateMachine,
    effects,
    export_table,
)

__all__ = [
    "DEFAULT_LIMITS",
    "EFFECTS",
    "EVENTS",
    "AcquireLock",
    "BackoffElapsed",
    "DaemonNeeded",
    "DaemonRecovery",
    "DaemonRecoveryMachine",
    "DaemonRecoveryState",
    "Effect",
    "Event",
    "HealthFailed",
    "HealthOk",
    "IdleExited",
    "Judged",
    "LocalProtocolError",
    "LockAcquired",
    "LockBusy",
    "LockError",
    "LockFound",
    "LockMissing",
    "LockStale",
    "ProbeHealth",
    "ProcessDied",
    "ReadLock",
    "RecoveryContext",
    "RecoveryLimits",
    "RecoveryProgress",
    "Relay",
    "ReleaseLock",
    "ReportGivenUp",
    "ScheduleRetry",
    "Spawn",
    "SpawnFailed",
    "Spawned",
    "StopDaemon",
    "SweepLock",
    "spec",
]


class DaemonRecoveryState(enum.Enum):
    ABSENT = "absent"
    LOCATING = "locating"
    ACQUIRING = "acquiring"
    WAITING = "waiting"
    SPAWNING = "spawning"
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    GIVEN_UP = "given_up"


# ---- validators -------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pid(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def _optional_pid(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _pid(instance, attribute, value)


def _port(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_int(value) or not 1 <= value <= 65535:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be a TCP port (1-65535), got {value!r}")


def _optional_port(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _port(instance, attribute, value)


def _exit_code(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not _is_int(value):
        raise ValueError(f"{attribute.name} must be an integer or None, got {value!r}")


def _jitter(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be a number in [0, 1), got {value!r}")


def _text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{attribute.name} must be a string, got {type(value).__name__}")


def _name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _count(minimum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not _is_int(value) or value < minimum:  # type: ignore[operator]
            raise ValueError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


# ---- the machine's data -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RecoveryLimits:
    """How hard a bridge tries. Times are seconds."""

    # Failed tries in a row (the first one included) before the machine gives up.
    max_attempts: int = attrs.field(default=5, validator=_count(1))
    # The first retry's delay before jitter; each further retry in a row doubles it ...
    base_delay: float = attrs.field(default=0.5, validator=_positive)
    # ... up to this cap (before jitter, which may add up to as much again).
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    # How long a probe waits for the daemon's health route; a fresh daemon must be up by then.
    probe_timeout: float = attrs.field(default=10.0, validator=_positive)
    # How long to wait before reading a busy lock again ...
    lock_poll_interval: float = attrs.field(default=0.1, validator=_positive)
    # ... and how many busy reads one try may see before giving up.
    max_lock_waits: int = attrs.field(default=300, validator=_count(1))

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must not be below base_delay")

    def retry_delay(self, retry: int, jitter: float) -> float:
        """The delay before the `retry`-th retry in a row (from 0): the capped exponential,
        stretched by `jitter` in [0, 1)."""
        # 2.0 ** n overflows past n = 1023; by then the cap has long applied.
        exponential = self.base_delay * 2.0 ** min(retry, 1023)
        return min(self.max_delay, exponential) * (1 + jitter)


DEFAULT_LIMITS: Final = RecoveryLimits()

_S = DaemonRecoveryState
_DAEMON_STATES = frozenset({_S.STARTING, _S.HEALTHY, _S.UNHEALTHY})
_RELAY_STATES = frozenset({_S.HEALTHY, _S.UNHEALTHY})
_LOCK_STATES = frozenset({_S.LOCATING, _S.ACQUIRING, _S.WAITING})


@attrs.frozen(kw_only=True)
class RecoveryProgress:
    """Everything one machine holds: its state and the data its guards read.

    - `attempts`: failed tries since the daemon was last healthy (0 in `healthy` and
      `unhealthy`, at least 1 in `restarting`).
    - `lock_waits`: busy reads of the lock in the current try (`locating`, `acquiring`,
      `waiting`; at least 1 in `waiting`).
    - `pid`: the daemon being probed or relayed to (`starting`, `healthy`, `unhealthy`).
    - `port`: the port relayed to (`healthy`, `unhealthy`).
    - `holds_lock`: this bridge holds the lock's spawning record (`spawning`, and `starting`
      when this bridge spawned the daemon, until it answers).
    Values that do not fit the state are refused with `ValueError`.
    """

    state: DaemonRecoveryState = DaemonRecoveryState.ABSENT
    attempts: int = attrs.field(default=0, validator=_count(0))
    lock_waits: int = attrs.field(default=0, validator=_count(0))
    pid: int | None = attrs.field(default=None, validator=_optional_pid)
    port: int | None = attrs.field(default=None, validator=_optional_port)
    holds_lock: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        state = self.state
        problems = []
        if (state in _DAEMON_STATES) != (self.pid is not None):
            problems.append("a pid exactly in starting, healthy and unhealthy")
        if (state in _RELAY_STATES) != (self.port is not None):
            problems.append("a port exactly in healthy and unhealthy")
        if self.holds_lock and state not in (_S.SPAWNING, _S.STARTING):
            problems.append("the lock held only in spawning and starting")
        if state is _S.SPAWNING and not self.holds_lock:
            problems.append("the lock held in spawning")
        if self.lock_waits and state not in _LOCK_STATES:
            problems.append("busy reads only in locating, acquiring and waiting")
        if state is _S.WAITING and not self.lock_waits:
            problems.append("a busy read in waiting")
        if self.attempts and state in _RELAY_STATES:
            problems.append("no attempts in healthy and unhealthy")
        if state is _S.RESTARTING and not self.attempts:
            problems.append("an attempt in restarting")
        if problems:
            needs = "; ".join(problems)
            raise ValueError(f"inconsistent progress in state {state.value!r}: needs {needs}")


@attrs.frozen(kw_only=True)
class RecoveryContext:
    """What the machine held when an event arrived: the data its guards and effects read."""

    progress: RecoveryProgress
    limits: RecoveryLimits
    # The version of the server this bridge runs; a daemon of another version is stale.
    version: str


# ---- events: facts the service reports --------------------------------------------------------


@attrs.frozen(kw_only=True)
class DaemonNeeded:
    """The client needs the daemon: the bridge started, or a request arrived while none is
    known (after an idle exit)."""


@attrs.frozen(kw_only=True)
class LockFound:
    """`ReadLock` found a well-formed lock. `port` is None while a bridge (`pid`) is still
    spawning; else the daemon `pid` published it. `alive`: whether `pid` is a live process."""

    pid: int = attrs.field(validator=_pid)
    port: int | None = attrs.field(validator=_optional_port)
    version: str = attrs.field(validator=_name)
    alive: bool = attrs.field(validator=attrs.validators.instance_of(bool))


@attrs.frozen(kw_only=True)
class LockMissing:
    """`ReadLock` found no lock file."""


@attrs.frozen(kw_only=True)
class LockStale:
    """`ReadLock` found a lock file it cannot use (unparseable, truncated, missing fields);
    `reason` says what was wrong."""

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class LockAcquired:
    """`AcquireLock` created the lock file: this bridge is the one that spawns."""


@attrs.frozen(kw_only=True)
class LockBusy:
    """`AcquireLock` found the file already there: another bridge took the lock first."""


@attrs.frozen(kw_only=True)
class LockError:
    """Reading, sweeping or creating the lock failed with an OS error (permissions, a full
    disk); `reason` says which. `jitter` in [0, 1) is the service's draw for the retry."""

    reason: str = attrs.field(validator=_text)
    jitter: float = attrs.field(validator=_jitter)


@attrs.frozen(kw_only=True)
class Spawned:
    """`Spawn` started the daemon, detached, as process `pid`."""

    pid: int = attrs.field(validator=_pid)


@attrs.frozen(kw_only=True)
class SpawnFailed:
    """`Spawn` could not start the daemon (no executable, a fork error)."""

    reason: str = attrs.field(validator=_text)
    jitter: float = attrs.field(validator=_jitter)


@attrs.frozen(kw_only=True)
class HealthOk:
    """The daemon named by the lock (`pid`, listening on `port`) answered its health route."""

    pid: int = attrs.field(validator=_pid)
    port: int = attrs.field(validator=_port)


@attrs.frozen(kw_only=True)
class HealthFailed:
    """A health probe failed or timed out, or (in `healthy`) a relayed request failed in
    transport (connection refused or reset, a timeout)."""

    reason: str = attrs.field(validator=_text)
    jitter: float = attrs.field(validator=_jitter)


@attrs.frozen(kw_only=True)
class ProcessDied:
    """Process `pid` is gone and its lock was left behind (a crash, `kill -9`). `exit_code` is
    known only to a bridge that could wait for it."""

    pid: int = attrs.field(validator=_pid)
    exit_code: int | None = attrs.field(validator=_exit_code)
    jitter: float = attrs.field(validator=_jitter)


@attrs.frozen(kw_only=True)
class IdleExited:
    """Process `pid` exited after its idle time and removed its own lock record."""

    pid: int = attrs.field(validator=_pid)


@attrs.frozen(kw_only=True)
class BackoffElapsed:
    """The delay of the last `ScheduleRetry` passed (a backoff, or a wait on a busy lock)."""


Event: TypeAlias = (
    DaemonNeeded
    | LockFound
    | LockMissing
    | LockStale
    | LockAcquired
    | LockBusy
    | LockError
    | Spawned
    | SpawnFailed
    | HealthOk
    | HealthFailed
    | ProcessDied
    | IdleExited
    | BackoffElapsed
)

EVENTS: Final[tuple[type, ...]] = (
    DaemonNeeded,
    LockFound,
    LockMissing,
    LockStale,
    LockAcquired,
    LockBusy,
    LockError,
    Spawned,
    SpawnFailed,
    HealthOk,
    HealthFailed,
    ProcessDied,
    IdleExited,
    BackoffElapsed,
)

# Aliases so that `Judged` can re-make each class under its own name.
_LockFound = LockFound
_LockBusy = LockBusy
_LockError = LockError
_Spawned = Spawned
_SpawnFailed = SpawnFailed
_HealthFailed = HealthFailed
_ProcessDied = ProcessDied
_IdleExited = IdleExited


class Judged:
    """The events whose rules read the machine's data, as the table receives them: each with
    the `RecoveryContext` of its arrival. Built by `DaemonRecovery.handle` (and by tests of the
    table); a service never builds one. Same names as the events they judge, so the exported
    spec reads in the service's words."""

    @attrs.frozen(kw_only=True)
    class LockFound(_LockFound):
        context: RecoveryContext

    @attrs.frozen(kw_only=True)
    class LockBusy(_LockBusy):
        context: RecoveryContext

    @attrs.frozen(kw_only=True)
    class LockError(_LockError):
        context: RecoveryContext

    @attrs.frozen(kw_only=True)
    class Spawned(_Spawned):
        context: RecoveryContext

    @attrs.frozen(kw_only=True)
    class SpawnFailed(_SpawnFailed):
        context: RecoveryContext

    @attrs.frozen(kw_only=True)
    class HealthFailed(_HealthFailed):
        context: RecoveryContext

    @attrs.frozen(kw_only=True)
    class ProcessDied(_ProcessDied):
        context: RecoveryContext

    @attrs.frozen(kw_only=True)
    class IdleExited(_IdleExited):
        context: RecoveryContext


_JUDGED: Final[dict[type, type]] = {
    LockFound: Judged.LockFound,
    LockBusy: Judged.LockBusy,
    LockError: Judged.LockError,
    Spawned: Judged.Spawned,
    SpawnFailed: Judged.SpawnFailed,
    HealthFailed: Judged.HealthFailed,
    ProcessDied: Judged.ProcessDied,
    IdleExited: Judged.IdleExited,
}


# ---- effects: what the service must do --------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReadLock:
    """Read the lock file; report `LockFound`, `LockMissing`, `LockStale` or `LockError`."""


@attrs.frozen(kw_only=True)
class SweepLock:
    """Remove the stale lock just read, only while the file still holds that record (`pid`;
    None for an unparseable file). `reason` is for the log. Always followed by `AcquireLock`;
    a failed sweep is reported as `LockError`."""

    reason: str
    pid: int | None


@attrs.frozen(kw_only=True)
class AcquireLock:
    """Create the lock file exclusively with this bridge's pid and version and no port; report
    `LockAcquired`, `LockBusy` (it exists) or `LockError`."""


@attrs.frozen(kw_only=True)
class Spawn:
    """Start the daemon detached (it outlives this bridge); report `Spawned` or `SpawnFailed`.
    The daemon publishes its pid, port and token in the lock once it listens."""


@attrs.frozen(kw_only=True)
class ProbeHealth:
    """Read the lock for the daemon's port and token, and wait up to `timeout` seconds for its
    health route to answer; report `HealthOk` or `HealthFailed`."""

    timeout: float


@attrs.frozen(kw_only=True)
class Relay:
    """The daemon `pid` is healthy: relay the client's messages to `port`, with the bearer
    token read from the same lock record."""

    pid: int
    port: int


@attrs.frozen(kw_only=True)
class StopDaemon:
    """Stop the daemon `pid` (terminate, then kill after a grace period), only while that pid
    is still the daemon: it failed its health probe and a restart needs it gone."""

    pid: int


@attrs.frozen(kw_only=True)
class ReleaseLock:
    """Remove the lock file if it still holds this bridge's spawning record: the try failed,
    and other bridges must not wait for it."""


@attrs.frozen(kw_only=True)
class ScheduleRetry:
    """Fire `BackoffElapsed` in `after` seconds. `reason` (why the wait) is for the log."""

    after: float
    reason: str


@attrs.frozen(kw_only=True)
class ReportGivenUp:
    """The machine gave up: answer the client's pending and future requests with `message`.
    `attempts`: failed tries in a row, this last one included."""

    reason: str
    attempts: int

    @property
    def message(self) -> str:
        tries = f" (gave up after {self.attempts} failed attempts)" if self.attempts else ""
        return f"the local mcp-core daemon is unavailable: {self.reason}{tries}"


Effect: TypeAlias = (
    ReadLock
    | SweepLock
    | AcquireLock
    | Spawn
    | ProbeHealth
    | Relay
    | StopDaemon
    | ReleaseLock
    | ScheduleRetry
    | ReportGivenUp
)

EFFECTS: Final[tuple[type, ...]] = (
    ReadLock,
    SweepLock,
    AcquireLock,
    Spawn,
    ProbeHealth,
    Relay,
    StopDaemon,
    ReleaseLock,
    ScheduleRetry,
    ReportGivenUp,
)


# ---- guards: pure functions of a judged event -------------------------------------------------


def _attempts_left(event: Judged.LockError | Judged.SpawnFailed | Judged.HealthFailed) -> bool:
    """This failure is not the last one allowed: a retry follows."""
    context = event.context
    return context.progress.attempts + 1 < context.limits.max_attempts


def _waits_left(event: Judged.LockFound | Judged.LockBusy) -> bool:
    context = event.context
    return context.progress.lock_waits < context.limits.max_lock_waits


def _holder_dead(event: Judged.LockFound) -> bool:
    return not event.alive


def _spawning_waits_left(event: Judged.LockFound) -> bool:
    return event.port is None and _waits_left(event)


def _spawning(event: Judged.LockFound) -> bool:
    return event.port is None


def _other_version(event: Judged.LockFound) -> bool:
    return event.version != event.context.version


def _our_daemon(event: Judged.ProcessDied | Judged.IdleExited) -> bool:
    return event.pid == event.context.progress.pid


def _our_daemon_attempts_left(event: Judged.ProcessDied) -> bool:
    context = event.context
    return _our_daemon(event) and context.progress.attempts + 1 < context.limits.max_attempts


# ---- effect builders: pure functions of an event ----------------------------------------------


def _daemon_pid(event: Judged.HealthFailed) -> int:
    pid = event.context.progress.pid
    # In starting and unhealthy the pid is always there (`RecoveryProgress` checks it).
    assert pid is not None
    return pid


def _release(event: Any) -> list[Any]:
    return [ReleaseLock()] if event.context.progress.holds_lock else []


def _retry(event: Any, reason: str) -> ScheduleRetry:
    context = event.context
    after = context.limits.retry_delay(context.progress.attempts, event.jitter)
    return ScheduleRetry(after=after, reason=reason)


def _given_up(event: Any, reason: str) -> ReportGivenUp:
    return ReportGivenUp(reason=reason, attempts=event.context.progress.attempts + 1)


def _died(event: Judged.ProcessDied) -> str:
    code = "" if event.exit_code is None else f" with exit code {event.exit_code}"
    return f"the daemon (pid {event.pid}) died{code}"


def _spawn_failed(event: Judged.SpawnFailed) -> str:
    return f"the daemon could not be spawned: {event.reason}"


def _never_healthy(event: Judged.HealthFailed) -> str:
    return f"the daemon did not become healthy: {event.reason}"


def _stopped_answering(event: Judged.HealthFailed) -> str:
    return f"the daemon stopped answering its health route: {event.reason}"


def _lock_failed(event: Judged.LockError) -> str:
    return f"the lock file could not be used: {event.reason}"


@effects("ReadLock")
def _read_lock(_event: DaemonNeeded | BackoffElapsed) -> list[Any]:
    return [ReadLock()]


@effects("SweepLock", "AcquireLock")
def _sweep_dead(event: Judged.LockFound) -> list[Any]:
    return [SweepLock(reason=f"pid {event.pid} is dead", pid=event.pid), AcquireLock()]


@effects("SweepLock", "AcquireLock")
def _sweep_other_version(event: Judged.LockFound) -> list[Any]:
    reason = f"a daemon of version {event.version!r}, not {event.context.version!r}"
    return [SweepLock(reason=reason, pid=event.pid), AcquireLock()]


@effects("SweepLock", "AcquireLock")
def _sweep_unparseable(event: LockStale) -> list[Any]:
    return [SweepLock(reason=event.reason, pid=None), AcquireLock()]


@effects("AcquireLock")
def _acquire(_event: LockMissing) -> list[Any]:
    return [AcquireLock()]


@effects("ScheduleRetry")
def _wait_for_spawner(event: Judged.LockFound) -> list[Any]:
    reason = f"a bridge (pid {event.pid}) is spawning the daemon"
    return [ScheduleRetry(after=event.context.limits.lock_poll_interval, reason=reason)]


@effects("ScheduleRetry")
def _wait_for_lock(event: Judged.LockBusy) -> list[Any]:
    reason = "another bridge took the lock first"
    return [ScheduleRetry(after=event.context.limits.lock_poll_interval, reason=reason)]


@effects("ReportGivenUp")
def _stuck_spawner(event: Judged.LockFound) -> list[Any]:
    waits = event.context.progress.lock_waits
    reason = f"a bridge (pid {event.pid}) held the lock for {waits} reads without a daemon"
    return [ReportGivenUp(reason=reason, attempts=event.context.progress.attempts)]


@effects("ReportGivenUp")
def _busy_too_long(event: Judged.LockBusy) -> list[Any]:
    waits = event.context.progress.lock_waits
    reason = f"the lock stayed busy for {waits} reads without a daemon"
    return [ReportGivenUp(reason=reason, attempts=event.context.progress.attempts)]


@effects("ProbeHealth")
def _probe(event: Judged.LockFound | Judged.Spawned | Judged.HealthFailed) -> list[Any]:
    return [ProbeHealth(timeout=event.context.limits.probe_timeout)]


@effects("Spawn")
def _spawn(_event: LockAcquired) -> list[Any]:
    return [Spawn()]


@effects("Relay")
def _relay(event: HealthOk) -> list[Any]:
    return [Relay(pid=event.pid, port=event.port)]


@effects("ScheduleRetry")
def _retry_lock(event: Judged.LockError) -> list[Any]:
    return [_retry(event, _lock_failed(event))]


@effects("ReportGivenUp")
def _give_up_lock(event: Judged.LockError) -> list[Any]:
    return [_given_up(event, _lock_failed(event))]


@effects("ReleaseLock", "ScheduleRetry")
def _retry_spawn(event: Judged.SpawnFailed) -> list[Any]:
    return [*_release(event), _retry(event, _spawn_failed(event))]


@effects("ReleaseLock", "ReportGivenUp")
def _give_up_spawn(event: Judged.SpawnFailed) -> list[Any]:
    return [*_release(event), _given_up(event, _spawn_failed(event))]


@effects("StopDaemon", "ReleaseLock", "ScheduleRetry")
def _retry_start(event: Judged.HealthFailed) -> list[Any]:
    reason = _never_healthy(event)
    return [StopDaemon(pid=_daemon_pid(event)), *_release(event), _retry(event, reason)]


@effects("StopDaemon", "ReleaseLock", "ReportGivenUp")
def _give_up_start(event: Judged.HealthFailed) -> list[Any]:
    reason = _never_healthy(event)
    return [StopDaemon(pid=_daemon_pid(event)), *_release(event), _given_up(event, reason)]


@effects("StopDaemon", "ScheduleRetry")
def _retry_unhealthy(event: Judged.HealthFailed) -> list[Any]:
    return [StopDaemon(pid=_daemon_pid(event)), _retry(event, _stopped_answering(event))]


@effects("StopDaemon", "ReportGivenUp")
def _give_up_unhealthy(event: Judged.HealthFailed) -> list[Any]:
    return [StopDaemon(pid=_daemon_pid(event)), _given_up(event, _stopped_answering(event))]


@effects("ReleaseLock", "ScheduleRetry")
def _retry_died(event: Judged.ProcessDied) -> list[Any]:
    return [*_release(event), _retry(event, _died(event))]


@effects("ReleaseLock", "ReportGivenUp")
def _give_up_died(event: Judged.ProcessDied) -> list[Any]:
    return [*_release(event), _given_up(event, _died(event))]


@effects("ScheduleRetry")
def _retry_relay_died(event: Judged.ProcessDied) -> list[Any]:
    return [_retry(event, _died(event))]


@effects("ReportGivenUp")
def _give_up_relay_died(event: Judged.ProcessDied) -> list[Any]:
    return [_given_up(event, _died(event))]


@effects("ReleaseLock")
def _idle_exit(event: Judged.IdleExited) -> list[Any]:
    return _release(event)


def _relay_idle_exit(_event: Judged.IdleExited) -> list[Any]:
    return []


# ---- the table --------------------------------------------------------------------------------

A, L, Q, W, SP, ST, H, U, R, G = (
    DaemonRecoveryState.ABSENT,
    DaemonRecoveryState.LOCATING,
    DaemonRecoveryState.ACQUIRING,
    DaemonRecoveryState.WAITING,
    DaemonRecoveryState.SPAWNING,
    DaemonRecoveryState.STARTING,
    DaemonRecoveryState.HEALTHY,
    DaemonRecoveryState.UNHEALTHY,
    DaemonRecoveryState.RESTARTING,
    DaemonRecoveryState.GIVEN_UP,
)

_Rules = Rule[DaemonRecoveryState] | list[Rule[DaemonRecoveryState]]
_Builder = Callable[[Any], list[Any]]

_ATTEMPTS_LEFT = "attempts left"
_OUR_DAEMON = "our daemon"


def _process_died(retry: _Builder, give_up: _Builder) -> list[Rule[DaemonRecoveryState]]:
    return [
        Rule(
            to=R,
            effects=retry,
            when=_our_daemon_attempts_left,
            guard_name=f"{_OUR_DAEMON}, {_ATTEMPTS_LEFT}",
        ),
        Rule(to=G, effects=give_up, when=_our_daemon, guard_name=f"{_OUR_DAEMON}, none left"),
    ]


def _idle_exited(exit_effects: _Builder) -> Rule[DaemonRecoveryState]:
    return Rule(to=A, effects=exit_effects, when=_our_daemon, guard_name=_OUR_DAEMON)


TABLE: dict[tuple[DaemonRecoveryState, type], _Rules] = {
    (A, DaemonNeeded): Rule(to=L, effects=_read_lock),
    (L, Judged.LockFound): [
        Rule(to=Q, effects=_sweep_dead, when=_holder_dead, guard_name="holder dead"),
        Rule(
            to=W,
            effects=_wait_for_spawner,
            when=_spawning_waits_left,
            guard_name="a bridge is spawning, waits left",
        ),
        Rule(
            to=G,
            effects=_stuck_spawner,
            when=_spawning,
            guard_name="a bridge is spawning, no waits left",
        ),
        Rule(to=Q, effects=_sweep_other_version, when=_other_version, guard_name="another version"),
        Rule(to=ST, effects=_probe, guard_name="otherwise: a live daemon of this version"),
    ],
    (L, LockMissing): Rule(to=Q, effects=_acquire),
    (L, LockStale): Rule(to=Q, effects=_sweep_unparseable),
    (L, Judged.LockError): [
        Rule(to=R, effects=_retry_lock, when=_attempts_left, guard_name=_ATTEMPTS_LEFT),
        Rule(to=G, effects=_give_up_lock, guard_name="otherwise"),
    ],
    (Q, LockAcquired): Rule(to=SP, effects=_spawn),
    (Q, Judged.LockBusy): [
        Rule(to=W, effects=_wait_for_lock, when=_waits_left, guard_name="waits left"),
        Rule(to=G, effects=_busy_too_long, guard_name="otherwise"),
    ],
    (Q, Judged.LockError): [
        Rule(to=R, effects=_retry_lock, when=_attempts_left, guard_name=_ATTEMPTS_LEFT),
        Rule(to=G, effects=_give_up_lock, guard_name="otherwise"),
    ],
    (W, BackoffElapsed): Rule(to=L, effects=_read_lock),
    (SP, Judged.Spawned): Rule(to=ST, effects=_probe),
    (SP, Judged.SpawnFailed): [
        Rule(to=R, effects=_retry_spawn, when=_attempts_left, guard_name=_ATTEMPTS_LEFT),
        Rule(to=G, effects=_give_up_spawn, guard_name="otherwise"),
    ],
    (ST, HealthOk): Rule(to=H, effects=_relay),
    (ST, Judged.HealthFailed): [
        Rule(to=R, effects=_retry_start, when=_attempts_left, guard_name=_ATTEMPTS_LEFT),
        Rule(to=G, effects=_give_up_start, guard_name="otherwise"),
    ],
    (ST, Judged.ProcessDied): _process_died(_retry_died, _give_up_died),
    (ST, Judged.IdleExited): _idle_exited(_idle_exit),
    (H, Judged.HealthFailed): Rule(to=U, effects=_probe),
    (H, Judged.ProcessDied): _process_died(_retry_relay_died, _give_up_relay_died),
    (H, Judged.IdleExited): _idle_exited(_relay_idle_exit),
    (U, HealthOk): Rule(to=H, effects=_relay),
    (U, Judged.HealthFailed): [
        Rule(to=R, effects=_retry_unhealthy, when=_attempts_left, guard_name=_ATTEMPTS_LEFT),
        Rule(to=G, effects=_give_up_unhealthy, guard_name="otherwise"),
    ],
    (U, Judged.ProcessDied): _process_died(_retry_relay_died, _give_up_relay_died),
    (U, Judged.IdleExited): _idle_exited(_relay_idle_exit),
    (R, BackoffElapsed): Rule(to=L, effects=_read_lock),
}


class DaemonRecoveryMachine(StateMachine[DaemonRecoveryState]):
    """The table alone, driven by judged events. Services drive `DaemonRecovery`, which keeps
    the data and judges each event; this class is what the table's tests exercise."""

    name = "daemon_recovery"

    def __init__(self, state: DaemonRecoveryState = DaemonRecoveryState.ABSENT) -> None:
        super().__init__(DaemonRecoveryState, TABLE, state)


# ---- the data after a move ----------------------------------------------------------------------

_FAILURES = (LockError, SpawnFailed, HealthFailed, ProcessDied)


def _next_progress(
    progress: RecoveryProgress, event: object, to: DaemonRecoveryState
) -> RecoveryProgress:
    """The progress after the table moved to `to` on `event` (as judged, and accepted)."""
    attempts = progress.attempts
    if to is R or (to is G and isinstance(event, _FAILURES)):
        return RecoveryProgress(state=to, attempts=attempts + 1)
    if to in (A, G):
        return RecoveryProgress(state=to, attempts=attempts)
    if to in (L, Q):  # still in the same try: the busy reads so far count
        return RecoveryProgress(state=to, attempts=attempts, lock_waits=progress.lock_waits)
    if to is W:
        return RecoveryProgress(state=to, attempts=attempts, lock_waits=progress.lock_waits + 1)
    if to is SP:
        return RecoveryProgress(state=to, attempts=attempts, holds_lock=True)
    if to is ST and isinstance(event, Spawned | LockFound):
        held = isinstance(event, Spawned)
        return RecoveryProgress(state=to, attempts=attempts, pid=event.pid, holds_lock=held)
    if to is H and isinstance(event, HealthOk):
        return RecoveryProgress(state=to, pid=event.pid, port=event.port)
    if to is U:  # confirming: the daemon relayed to stays named until the probe answers
        return attrs.evolve(progress, state=to)
    raise AssertionError(f"no progress rule for {type(event).__name__} to {to.value}")


# ---- the class services drive -----------------------------------------------------------------


class DaemonRecovery(JudgedMachine[DaemonRecoveryState, RecoveryProgress]):
    """One bridge's view of its server's shared daemon: `handle(event) -> effects`, plus its
    data read-only.

    `version` is the version of the server this bridge runs (a daemon of another version is
    stale); `limits` bound the retries; `progress` restores a machine persisted elsewhere (by
    default a new one starts `absent`). A refused event raises `LocalProtocolError` naming that
    event, and changes nothing. Not thread-safe: drive one machine from one task at a time.
    """

    name = DaemonRecoveryMachine.name
    __slots__ = ("_limits", "_version")
    judged = _JUDGED

    def __init__(
        self,
        version: str,
        limits: RecoveryLimits = DEFAULT_LIMITS,
        *,
        progress: RecoveryProgress | None = None,
    ) -> None:
        if not isinstance(version, str) or not version:
            raise ValueError("version must be a non-empty string")
        progress = progress if progress is not None else RecoveryProgress()
        if progress.attempts > limits.max_attempts or (
            progress.attempts == limits.max_attempts and progress.state is not G
        ):
            raise ValueError("progress has spent more attempts than limits.max_attempts allows")
        if progress.lock_waits > limits.max_lock_waits:
            raise ValueError("progress waited more often than limits.max_lock_waits allows")
        self._version = version
        self._limits = limits
        self._progress = progress
        self._machine = DaemonRecoveryMachine(progress.state)

    def __repr__(self) -> str:
        return f"<DaemonRecovery {self._version!r} {self._progress!r}>"

    # ---- driving ----

    def _context(self) -> object:
        return RecoveryContext(progress=self._progress, limits=self._limits, version=self._version)

    def _refusal(self, state: DaemonRecoveryState, fed: object) -> str:
        return _refusal(state, fed)

    def _advance(self, fed: object, effects: list[Any]) -> RecoveryProgress:
        return _next_progress(self._progress, fed, self._machine.state)

    # ---- reading ----

    @property
    def limits(self) -> RecoveryLimits:
        return self._limits

    @property
    def version(self) -> str:
        return self._version

    @property
    def attempts(self) -> int:
        """Failed tries since the daemon was last healthy."""
        return self._progress.attempts

    @property
    def attempts_left(self) -> int:
        """Failures still allowed before the machine gives up (the last one gives up)."""
        return self._limits.max_attempts - self._progress.attempts

    @property
    def lock_waits(self) -> int:
        """Busy reads of the lock in the current try."""
        return self._progress.lock_waits

    @property
    def pid(self) -> int | None:
        """The daemon probed or relayed to (`starting`, `healthy`, `unhealthy`)."""
        return self._progress.pid

    @property
    def port(self) -> int | None:
        """The port relayed to (`healthy`, `unhealthy`)."""
        return self._progress.port

    @property
    def holds_lock(self) -> bool:
        """Whether this bridge holds the lock's spawning record."""
        return self._progress.holds_lock


def _refusal(state: DaemonRecoveryState, fed: object) -> str:
    value = TABLE.get((state, type(fed)))
    if value is None:
        return ""
    rules = [value] if isinstance(value, Rule) else value
    return "needs " + " or ".join(repr(rule.guard_name) for rule in rules)


def spec() -> dict[str, Any]:
    """The exported table (`specs/machines/daemon_recovery.json`)."""
    return export_table(
        DaemonRecoveryMachine.name, DaemonRecoveryState, DaemonRecoveryState.ABSENT, TABLE
    )
