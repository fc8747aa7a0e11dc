"""The daemon supervisor over a fake `DaemonHost`: deterministic, no process, no real time.

`FakeDaemonHost` simulates one machine's worth of lock file and processes: `spawn` starts a
fake daemon that publishes its record (unless told not to), `kill` makes a pid die, `recycle`
gives a dead daemon's pid to an unrelated process, `sleep` records the delay and advances a
fake clock. Randomness is a fixed byte string, so every
jitter (and so every backoff delay) is known in advance.
"""

from __future__ import annotations

import anyio
import pytest

from mcp_core.core.machines.daemon_recovery import (
    AcquireLock,
    DaemonRecoveryState,
    ProbeHealth,
    ReadLock,
    RecoveryLimits,
    Relay,
    Spawn,
    StopDaemon,
    SweepLock,
)
from mcp_core.core.services.supervisor import DaemonSupervisor, DaemonUnavailable
from mcp_core.ports.daemon import (
    DaemonAddress,
    DaemonExited,
    DaemonHealthy,
    DaemonHost,
    DaemonHostError,
    DaemonUnhealthy,
    LockRecord,
    ProbeOutcome,
    UnreadableLock,
)

pytestmark = pytest.mark.anyio

VERSION = "1.0; mcp-core 0.1.0"
BRIDGE_PID = 100
LIMITS = RecoveryLimits(max_attempts=3, base_delay=0.5, max_delay=4.0, probe_timeout=2.0)


class FixedRandom:
    """Every draw is the same bytes: 0x40000000 / 2**32 = a jitter of exactly 0.25."""

    def token(self, nbytes: int) -> bytes:
        return (b"\x40" + b"\x00" * 7)[:nbytes]


JITTER = 0.25


class FakeDaemonHost:
    def __init__(self) -> None:
        self.record: LockRecord | UnreadableLock | None = None
        self.alive: set[int] = {BRIDGE_PID}
        self.next_pid = 1000
        self.spawned: list[int] = []
        self.stopped: list[int] = []
        self.sleeps: list[float] = []
        self.now = 0.0
        self.spawn_errors: list[str] = []  # consumed one per spawn
        self.publishes = True  # a spawned daemon publishes its record
        self.hung: set[int] = set()  # alive but never healthy
        self.busy_then: LockRecord | None = None  # acquire loses once; then this record
        self.read_errors: list[str] = []
        self.recycled: set[int] = set()  # running, but no longer the daemon they were

    # ---- test controls ----

    def kill(self, pid: int, *, remove_record: bool = False) -> None:
        self.alive.discard(pid)
        if remove_record and isinstance(self.record, LockRecord) and self.record.pid == pid:
            self.record = None

    def recycle(self, pid: int) -> None:
        """Daemon `pid` crashed and the kernel gave its pid to an unrelated process."""
        self.recycled.add(pid)

    def start_daemon(self, *, version: str = VERSION) -> LockRecord:
        pid = self.next_pid
        self.next_pid += 1
        self.alive.add(pid)
        self.record = LockRecord(pid=pid, port=40000 + pid, token=f"token-{pid}", version=version)
        return self.record

    # ---- DaemonHost ----

    async def read_lock(self) -> LockRecord | UnreadableLock | None:
        if self.read_errors:
            raise DaemonHostError(self.read_errors.pop(0))
        return self.record

    async def sweep_lock(self, pid: int | None) -> None:
        record = self.record
        if (pid is None and isinstance(record, UnreadableLock)) or (
            isinstance(record, LockRecord) and record.pid == pid
        ):
            self.record = None

    async def acquire_lock(self) -> bool:
        if self.busy_then is not None:
            self.record, self.busy_then = self.busy_then, None
            return False
        if self.record is not None:
            return False
        self.record = LockRecord(pid=BRIDGE_PID, version=VERSION)
        return True

    async def release_lock(self) -> None:
        record = self.record
        if isinstance(record, LockRecord) and record.pid == BRIDGE_PID and record.spawning:
            self.record = None

    async def spawn(self) -> int:
        if self.spawn_errors:
            raise DaemonHostError(self.spawn_errors.pop(0))
        pid = self.next_pid
        self.next_pid += 1
        self.alive.add(pid)
        self.spawned.append(pid)
        if self.publishes:
            self.record = LockRecord(
                pid=pid, port=40000 + pid, token=f"token-{pid}", version=VERSION
            )
        return pid

    async def probe_health(self, pid: int, timeout: float) -> ProbeOutcome:
        if pid not in self.alive:
            return DaemonExited(pid=pid, exit_code=-9)
        record = self.record
        if pid in self.hung or not (isinstance(record, LockRecord) and record.pid == pid):
            self.now += timeout
            return DaemonUnhealthy(reason="no answer")
        assert record.port is not None
        assert record.token is not None
        return DaemonHealthy(address=DaemonAddress(pid=pid, port=record.port, token=record.token))

    def pid_alive(self, pid: int) -> bool:
        return pid in self.alive and pid not in self.recycled

    def holder_alive(self, record: LockRecord) -> bool:
        return self.pid_alive(record.pid)

    def exit_code(self, pid: int) -> int | None:
        return None if pid in self.alive else -9

    async def stop_daemon(self, pid: int) -> None:
        if pid in self.recycled:
            return  # never signal what is no longer the daemon
        self.stopped.append(pid)
        self.kill(pid)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(host: FakeDaemonHost, limits: RecoveryLimits = LIMITS) -> DaemonSupervisor:
    return DaemonSupervisor(host, version=VERSION, random=FixedRandom(), limits=limits)


def effect_types(supervisor: DaemonSupervisor) -> list[type]:
    return [type(item) for item in supervisor.trace if type(item).__module__.endswith("recovery")]


def test_fake_host_satisfies_the_port() -> None:
    assert isinstance(FakeDaemonHost(), DaemonHost)


async def test_first_bridge_spawns_and_relays() -> None:
    host = FakeDaemonHost()
    supervisor = make(host)
    address = await supervisor.ensure()
    assert host.spawned == [1000]
    assert address == DaemonAddress(pid=1000, port=41000, token="token-1000")
    assert supervisor.state is DaemonRecoveryState.HEALTHY
    performed = [type(e) for e in supervisor.trace]
    for effect in (ReadLock, AcquireLock, Spawn, ProbeHealth, Relay):
        assert effect in performed
    assert host.sleeps == []
    assert await supervisor.ensure() == address  # healthy: no further I/O
    assert host.spawned == [1000]


async def test_a_live_daemon_of_this_version_is_reused_without_spawning() -> None:
    host = FakeDaemonHost()
    existing = host.start_daemon()
    address = await make(host).ensure()
    assert host.spawned == []
    assert address.pid == existing.pid
    assert address.token == existing.token


async def test_a_dead_pid_in_the_lock_is_swept() -> None:
    host = FakeDaemonHost()
    dead = host.start_daemon()
    host.kill(dead.pid)
    supervisor = make(host)
    address = await supervisor.ensure()
    assert address.pid != dead.pid
    assert host.spawned == [address.pid]
    sweeps = [e for e in supervisor.trace if isinstance(e, SweepLock)]
    assert [s.pid for s in sweeps] == [dead.pid]


async def test_an_unparseable_lock_is_swept() -> None:
    host = FakeDaemonHost()
    host.record = UnreadableLock(reason="the lock file is not JSON")
    supervisor = make(host)
    address = await supervisor.ensure()
    assert host.spawned == [address.pid]
    assert [e.pid for e in supervisor.trace if isinstance(e, SweepLock)] == [None]


async def test_a_daemon_of_another_version_is_swept_but_not_killed() -> None:
    host = FakeDaemonHost()
    old = host.start_daemon(version="0.9; mcp-core 0.0.1")
    address = await make(host).ensure()
    assert address.pid != old.pid
    assert old.pid in host.alive  # it may still serve bridges of its own version
    assert host.stopped == []


async def test_a_busy_lock_is_waited_for_and_the_other_daemon_used() -> None:
    host = FakeDaemonHost()
    # Another bridge wins the race and its daemon publishes before our next read.
    host.busy_then = LockRecord(pid=5000, port=45000, token="theirs", version=VERSION)
    host.alive.add(5000)
    supervisor = make(host)
    address = await supervisor.ensure()
    assert host.spawned == []
    assert address.pid == 5000
    assert host.sleeps == [LIMITS.lock_poll_interval]


async def test_kill_9_is_recovered_after_one_backoff() -> None:
    host = FakeDaemonHost()
    supervisor = make(host)
    first = await supervisor.ensure()
    host.kill(first.pid)  # the record stays behind: a crash
    second = await supervisor.recover(first, "connection refused")
    assert second.pid != first.pid
    assert host.spawned == [first.pid, second.pid]
    # The first retry's delay: base_delay * 2**0, stretched by the jitter.
    assert host.sleeps == [pytest.approx(LIMITS.base_delay * (1 + JITTER))]
    assert supervisor.machine.attempts == 0  # healthy again: attempts reset


async def test_a_slow_but_alive_daemon_is_not_restarted() -> None:
    host = FakeDaemonHost()
    supervisor = make(host)
    first = await supervisor.ensure()
    again = await supervisor.recover(first, "read timeout")
    assert again == first
    assert host.stopped == []
    assert host.spawned == [first.pid]


async def test_an_unanswering_daemon_is_stopped_and_replaced() -> None:
    host = FakeDaemonHost()
    supervisor = make(host)
    first = await supervisor.ensure()
    host.hung.add(first.pid)
    second = await supervisor.recover(first, "read timeout")
    assert host.stopped == [first.pid]
    assert second.pid not in (first.pid,)
    assert StopDaemon in [type(e) for e in supervisor.trace]


async def test_backoff_doubles_with_jitter_then_gives_up_with_a_clear_error() -> None:
    host = FakeDaemonHost()
    host.spawn_errors = ["cannot run mcp-core: No such file or directory"] * 10
    supervisor = make(host)
    with pytest.raises(DaemonUnavailable) as caught:
        await supervisor.ensure()
    message = str(caught.value)
    assert "No such file or directory" in message
    assert "gave up after 3 failed attempts" in message
    # Two retries before the third failure gives up: 0.5 then 1.0, each times (1 + jitter).
    assert host.sleeps == [pytest.approx(0.5 * 1.25), pytest.approx(1.0 * 1.25)]
    assert supervisor.state is DaemonRecoveryState.GIVEN_UP
    assert host.record is None  # the spawning record was released after every failure
    with pytest.raises(DaemonUnavailable, match="gave up"):
        await supervisor.ensure()  # given_up is final


async def test_backoff_is_capped_by_max_delay() -> None:
    host = FakeDaemonHost()
    host.spawn_errors = ["fork failed"] * 10
    limits = RecoveryLimits(max_attempts=6, base_delay=1.0, max_delay=3.0)
    with pytest.raises(DaemonUnavailable):
        await make(host, limits).ensure()
    assert host.sleeps == [pytest.approx(d * 1.25) for d in (1.0, 2.0, 3.0, 3.0, 3.0)]


async def test_a_daemon_that_dies_before_publishing_spends_attempts() -> None:
    host = FakeDaemonHost()
    host.publishes = False
    original_spawn = host.spawn

    async def spawn_and_die() -> int:
        pid = await original_spawn()
        host.kill(pid)
        return pid

    host.spawn = spawn_and_die  # type: ignore[method-assign]
    supervisor = make(host)
    with pytest.raises(DaemonUnavailable, match="died"):
        await supervisor.ensure()
    assert len(host.spawned) == LIMITS.max_attempts  # not respawned forever as "idle"


async def test_an_idle_exit_is_not_a_failure_and_is_not_respawned_by_the_watchdog() -> None:
    host = FakeDaemonHost()
    supervisor = make(host)
    first = await supervisor.ensure()
    host.kill(first.pid, remove_record=True)  # an idle exit removes its own record
    await supervisor.check()
    assert supervisor.state is DaemonRecoveryState.ABSENT
    assert host.spawned == [first.pid]
    assert host.sleeps == []
    second = await supervisor.ensure()  # the client needs it again
    assert host.spawned == [first.pid, second.pid]
    assert supervisor.machine.attempts == 0


async def test_a_lock_read_error_is_retried() -> None:
    host = FakeDaemonHost()
    host.read_errors = ["Permission denied"]
    address = await make(host).ensure()
    assert host.spawned == [address.pid]
    assert host.sleeps == [pytest.approx(0.5 * 1.25)]


async def test_concurrent_failures_restart_the_daemon_once() -> None:
    host = FakeDaemonHost()
    supervisor = make(host)
    first = await supervisor.ensure()
    host.kill(first.pid)
    results: list[DaemonAddress] = []

    async def fail() -> None:
        results.append(await supervisor.recover(first, "connection reset"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(fail)
    assert len(host.spawned) == 2
    assert len(set(results)) == 1
    assert results[0].pid == host.spawned[1]


async def test_a_lock_whose_pid_was_recycled_is_swept_and_its_process_left_alone() -> None:
    host = FakeDaemonHost()
    crashed = host.start_daemon()
    host.recycle(crashed.pid)  # `kill -9`, then the pid went to an unrelated process
    supervisor = make(host)
    address = await supervisor.ensure()
    assert address.pid != crashed.pid
    assert host.spawned == [address.pid]
    assert [e.pid for e in supervisor.trace if isinstance(e, SweepLock)] == [crashed.pid]
    assert host.stopped == []
    # Only the new daemon was probed, and no attempt was spent on the stale record.
    assert effect_types(supervisor).count(ProbeHealth) == 1
    assert host.sleeps == []
