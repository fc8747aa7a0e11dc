"""The daemon supervisor: one bridge's driver of the `daemon_recovery` machine.

Issue 6 ("Process lifecycle", the shared local daemon); the machine and its lock protocol are
`mcp_core.core.machines.daemon_recovery` (read its docstring first: it is the specification this
service performs); the I/O is the `DaemonHost` port (`mcp_core.ports.daemon`).

Theory of operation. A bridge asks `ensure()` for the address of a healthy daemon (pid, port,
bearer token). The supervisor feeds the machine `DaemonNeeded` and then performs the effects
it returns, in order, answering each with the event that reports its outcome, until the
machine emits `Relay` (the address is returned) or `ReportGivenUp` (`DaemonUnavailable` is
raised with the machine's message, now and on every later call: `given_up` is final):

    ReadLock      -> LockFound(alive from holder_alive) | LockMissing | LockStale | LockError
    SweepLock     -> nothing, or LockError (and the AcquireLock that follows is skipped)
    AcquireLock   -> LockAcquired | LockBusy | LockError
    Spawn         -> Spawned | SpawnFailed
    ProbeHealth   -> HealthOk | HealthFailed | ProcessDied | IdleExited
    ScheduleRetry -> BackoffElapsed, after sleeping through the host
    StopDaemon, ReleaseLock -> nothing (the next ReadLock shows what they did)

When a relayed request fails in transport, the bridge calls `recover(address, reason)`. The
supervisor diagnoses the failure before telling the machine: a pid still alive is
`HealthFailed` (the machine probes once more before restarting a daemon that other bridges
share); a dead pid whose record is still in the lock crashed (`ProcessDied`); a dead pid that
removed its own record exited idle (`IdleExited`, then `DaemonNeeded`: no attempt is counted).
The same diagnosis answers a probe that found its pid gone. `check()` is the watchdog form:
it reports a dead daemon as soon as it is noticed, so the next request does not have to fail
first.

Randomness: every failure event carries a jitter in [0, 1) drawn from the `Random` port (four
bytes, big-endian, over 2**32). Time: only through `DaemonHost.sleep`, so a test with a fake
host runs every backoff instantly and can read the delays it was asked for.

Concurrency: one anyio lock serializes `ensure`, `recover` and `check`, so a crash noticed by
several requests at once restarts the daemon once. `recover` given an address other than the
current one (another task already recovered) just returns the current address.
"""

from __future__ import annotations

import logging

import anyio

from mcp_core.ports.daemon import (
    DaemonAddress,
    DaemonExited,
    DaemonHealthy,
    DaemonHost,
    DaemonHostError,
    LockRecord,
    UnreadableLock,
)
from mcp_core.ports.system import Random

from ..machines.daemon_recovery import (
    DEFAULT_LIMITS,
    AcquireLock,
    BackoffElapsed,
    DaemonNeeded,
    DaemonRecovery,
    DaemonRecoveryState,
    Effect,
    Event,
    HealthFailed,
    HealthOk,
    IdleExited,
    LockAcquired,
    LockBusy,
    LockError,
    LockFound,
    LockMissing,
    LockStale,
    ProbeHealth,
    ProcessDied,
    ReadLock,
    RecoveryLimits,
    Relay,
    ReleaseLock,
    ReportGivenUp,
    ScheduleRetry,
    Spawn,
    Spawned,
    SpawnFailed,
    StopDaemon,
    SweepLock,
)

__all__ = ["DaemonSupervisor", "DaemonUnavailable"]

log = logging.getLogger("mcp_core.daemon")

_State = DaemonRecoveryState


class DaemonUnavailable(Exception):
    """The supervisor gave up on the daemon; `str(error)` is the message for the client."""


class DaemonSupervisor:
    """Finds, starts and keeps alive the shared daemon of one server, for one bridge.

    ```python
    supervisor = DaemonSupervisor(host, version="1.2.0", random=SystemRandom())
    address = await supervisor.ensure()          # pid, port, token of a healthy daemon
    ...                                           # relay; a request fails in transport:
    address = await supervisor.recover(address, "connection refused")
    ```
    """

    def __init__(
        self,
        host: DaemonHost,
        *,
        version: str,
        random: Random,
        limits: RecoveryLimits = DEFAULT_LIMITS,
    ) -> None:
        self._host = host
        self._random = random
        self._machine = DaemonRecovery(version, limits)
        self._lock = anyio.Lock()
        self._address: DaemonAddress | None = None
        self._probed: DaemonAddress | None = None
        self._given_up: str | None = None
        # Every event fed and every effect performed, in order: for logs and tests.
        self.trace: list[Event | Effect] = []

    # ---- reading ----

    @property
    def state(self) -> DaemonRecoveryState:
        return self._machine.state

    @property
    def machine(self) -> DaemonRecovery:
        return self._machine

    @property
    def address(self) -> DaemonAddress | None:
        """The daemon relayed to, while the machine is `healthy`."""
        return self._address if self._machine.state is _State.HEALTHY else None

    # ---- driving ----

    async def ensure(self) -> DaemonAddress:
        """The address of a healthy daemon, found or started as needed."""
        async with self._lock:
            return await self._ensure_locked()

    async def recover(self, failed: DaemonAddress, reason: str) -> DaemonAddress:
        """A request relayed to `failed` failed in transport (`reason`): diagnose it, restart
        the daemon if the machine says so, and return the address to relay to now."""
        async with self._lock:
            state = self._machine.state
            if state is _State.HEALTHY and self._address != failed:
                assert self._address is not None
                return self._address  # another task already recovered from this failure
            if state is not _State.HEALTHY:
                return await self._ensure_locked()
            return await self._drive(await self._diagnose(failed.pid, reason))

    async def check(self) -> None:
        """The watchdog: report a daemon that died under a healthy relay. A crash is recovered
        at once; an idle exit only moves the machine to `absent` (the next `ensure` starts a
        daemon again, when the client needs one)."""
        async with self._lock:
            address = self.address
            if address is None or self._host.pid_alive(address.pid):
                return
            event = await self._diagnose(address.pid, f"pid {address.pid} is gone")
            await self._drive(event, after_idle_exit=False)

    async def _ensure_locked(self) -> DaemonAddress:
        state = self._machine.state
        if state is _State.HEALTHY:
            assert self._address is not None
            return self._address
        if state is _State.GIVEN_UP:
            assert self._given_up is not None
            raise DaemonUnavailable(self._given_up)
        # Every other state is passed through only inside `_drive`, which always ends in
        # healthy, given_up or (after an idle exit) absent.
        assert state is _State.ABSENT, state
        return await self._drive(DaemonNeeded())

    # ---- the loop: feed an event, perform its effects, feed their outcome ----

    async def _drive(self, event: Event, *, after_idle_exit: bool = True) -> DaemonAddress:
        """Run the machine from `event` to `healthy` (the address) or `given_up` (raises).
        After an idle exit it goes on with `DaemonNeeded`, unless `after_idle_exit` is False:
        then it stops in `absent` and the (stale) address is returned."""
        stale = self._address
        next_event: Event | None = event
        while next_event is not None:
            self.trace.append(next_event)
            effects = self._machine.handle(next_event)
            next_event = None
            for effect in effects:
                self.trace.append(effect)
                outcome = await self._perform(effect)
                if outcome is not None:
                    next_event = outcome
                    if isinstance(outcome, LockError):
                        break  # a failed sweep: the AcquireLock after it is not attempted
            state = self._machine.state
            if state is _State.HEALTHY:
                assert self._address is not None
                return self._address
            if state is _State.GIVEN_UP:
                assert self._given_up is not None
                raise DaemonUnavailable(self._given_up)
            if state is _State.ABSENT and next_event is None:
                if not after_idle_exit:
                    assert stale is not None
                    return stale
                next_event = DaemonNeeded()  # the daemon exited idle; the client needs one
        raise AssertionError(f"the machine stopped in {self._machine.state.value} with no event")

    async def _perform(self, effect: Effect) -> Event | None:
        host = self._host
        if isinstance(effect, ReadLock):
            return await self._read_lock()
        if isinstance(effect, SweepLock):
            log.info("sweeping a stale daemon lock: %s", effect.reason)
            try:
                await host.sweep_lock(effect.pid)
            except DaemonHostError as exc:
                return LockError(reason=str(exc), jitter=self._jitter())
            return None
        if isinstance(effect, AcquireLock):
            try:
                acquired = await host.acquire_lock()
            except DaemonHostError as exc:
                return LockError(reason=str(exc), jitter=self._jitter())
            return LockAcquired() if acquired else LockBusy()
        if isinstance(effect, Spawn):
            try:
                pid = await host.spawn()
            except DaemonHostError as exc:
                return SpawnFailed(reason=str(exc), jitter=self._jitter())
            log.info("spawned the daemon as pid %d", pid)
            return Spawned(pid=pid)
        if isinstance(effect, ProbeHealth):
            return await self._probe(effect.timeout)
        if isinstance(effect, Relay):
            probed = self._probed
            # HealthOk carried exactly the probed address, so Relay names it.
            assert probed is not None
            assert (probed.pid, probed.port) == (effect.pid, effect.port)
            self._address = probed
            log.info("relaying to the daemon (pid %d) on port %d", effect.pid, effect.port)
            return None
        if isinstance(effect, StopDaemon):
            log.warning("stopping the daemon (pid %d): it failed its health probe", effect.pid)
            await host.stop_daemon(effect.pid)
            return None
        if isinstance(effect, ReleaseLock):
            await host.release_lock()
            return None
        if isinstance(effect, ScheduleRetry):
            log.info("retrying in %.2fs: %s", effect.after, effect.reason)
            await host.sleep(effect.after)
            return BackoffElapsed()
        assert isinstance(effect, ReportGivenUp)
        self._given_up = effect.message
        log.error("%s", effect.message)
        return None

    async def _read_lock(self) -> Event:
        try:
            record = await self._host.read_lock()
        except DaemonHostError as exc:
            return LockError(reason=str(exc), jitter=self._jitter())
        if record is None:
            return LockMissing()
        if isinstance(record, UnreadableLock):
            return LockStale(reason=record.reason)
        return LockFound(
            pid=record.pid,
            port=record.port,
            version=record.version,
            # Not just "the pid runs": a pid recycled by an unrelated process must read as
            # dead, or its record is probed, fails, and is never swept.
            alive=self._host.holder_alive(record),
        )

    async def _probe(self, timeout: float) -> Event:
        pid = self._machine.pid
        assert pid is not None  # the machine names its daemon in starting and unhealthy
        outcome = await self._host.probe_health(pid, timeout)
        if isinstance(outcome, DaemonHealthy):
            self._probed = outcome.address
            return HealthOk(pid=outcome.address.pid, port=outcome.address.port)
        if isinstance(outcome, DaemonExited):
            return await self._gone(pid, outcome.exit_code)
        return HealthFailed(reason=outcome.reason, jitter=self._jitter())

    async def _diagnose(self, pid: int, reason: str) -> Event:
        """What a transport failure of daemon `pid` means, as the machine's event."""
        if self._host.pid_alive(pid):
            return HealthFailed(reason=reason, jitter=self._jitter())
        return await self._gone(pid, self._host.exit_code(pid))

    async def _gone(self, pid: int, exit_code: int | None) -> Event:
        """Daemon `pid` is dead: crashed if its record is still in the lock, else idle-exited.

        A daemon this bridge spawned and is still probing never published a record (the lock
        holds this bridge's spawning record): its death is a crash, never an idle exit, so a
        daemon that cannot start spends attempts instead of being respawned forever.
        """
        if self._machine.holds_lock:
            return ProcessDied(pid=pid, exit_code=exit_code, jitter=self._jitter())
        try:
            record = await self._host.read_lock()
        except DaemonHostError:
            record = None
        if isinstance(record, LockRecord) and record.pid == pid:
            return ProcessDied(pid=pid, exit_code=exit_code, jitter=self._jitter())
        if isinstance(record, UnreadableLock):  # it did not remove its record cleanly
            return ProcessDied(pid=pid, exit_code=exit_code, jitter=self._jitter())
        return IdleExited(pid=pid)

    def _jitter(self) -> float:
        return int.from_bytes(self._random.token(4), "big") / 2**32
