"""Every stable server scenario of the official conformance suite passes, with --strict.

The suite (`@modelcontextprotocol/conformance@0.1.16`, under Node 22) plays an SDK client
against `examples/conformance_server.py`. `scripts/conformance.sh` does all of it: installs
Node and the suite into a cache once, serves the fixture on a free loopback port, runs the 32
server scenarios, sums up, and stops the server. This test runs that script the way a developer
would and checks its verdict: 32 passed, 0 failed, no fixture missing.

Installing needs the npm registry the first time. When it cannot be reached the test is
skipped with the reason, except in CI (`CI=true`), where it fails: CI must run the suite.
Every subprocess is bounded in time, and the script's own harness timeout is shorter than
ours, so the script gets to stop its server before we give up on it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "conformance.sh"
STABLE_SERVER_SCENARIOS = 32
SETUP_TIMEOUT = 600.0  # seconds: downloading Node 22 and the suite on a slow link
HARNESS_TIMEOUT = 300  # seconds the script lets the suite run
RUN_TIMEOUT = HARNESS_TIMEOUT + 120.0  # seconds for the whole script, server start included
STOP_GRACE = 15.0  # seconds the script gets to clean up after SIGTERM
SUITE_UNAVAILABLE = 3  # the script's exit status when Node or the suite cannot be installed

FINAL_LINE = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)
SERVED_ON = re.compile(r"^== serving \S+ on 127\.0\.0\.1:(\d+) ", re.MULTILINE)


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI a suite that cannot run is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"conformance suite unavailable in CI: {reason}")
    print(f"skipping the conformance suite: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _run(args: list[str], timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the script in a session of its own, bounded: SIGTERM at the deadline (the script
    then stops what it started), SIGKILL to its whole group if it does not end soon after."""
    process = subprocess.Popen(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        pytest.fail(
            f"scripts/conformance.sh {' '.join(args)} took more than {timeout:.0f}s\n"
            f"{stdout}\n{stderr}"
        )
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CONFORMANCE_SUITE="stable",
        PYTHON=sys.executable,  # serve the fixture with the interpreter running the tests
        MCP_CORE_CONFORMANCE_TIMEOUT=str(HARNESS_TIMEOUT),
    )
    return env


@pytest.fixture(scope="module")
def suite_installed(script_env: dict[str, str]) -> None:
    """Node 22 and the suite are in the cache (installed now if need be), or the test skips."""
    setup = _run(["setup"], SETUP_TIMEOUT, script_env)
    if setup.returncode != 0:
        tail = "\n".join(setup.stderr.strip().splitlines()[-5:])
        _unavailable(f"scripts/conformance.sh setup exited {setup.returncode}: {tail}")


def _nothing_listens_on(port: int) -> bool:
    # Connecting, not binding: the run leaves connections in TIME_WAIT on the port.
    with socket.socket() as probe:
        probe.settimeout(2.0)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_fixture_server_passes_every_stable_server_scenario_strictly(
    suite_installed: None, script_env: dict[str, str], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    run = _run(["server", "--strict", "-o", str(results)], RUN_TIMEOUT, script_env)
    report = f"{run.stdout}\n{run.stderr}\n(results in {results})"
    if run.returncode == SUITE_UNAVAILABLE:
        _unavailable(run.stderr.strip() or "the suite could not be installed")

    finals = FINAL_LINE.findall(run.stdout)
    assert finals, f"no 'N passed, M failed' line:\n{report}"
    passed, failed = (int(n) for n in finals[-1])
    assert (passed, failed) == (STABLE_SERVER_SCENARIOS, 0), report
    assert "missing:" not in run.stdout, report  # every fixture the scenarios call is listed
    assert run.returncode == 0, report

    served = SERVED_ON.search(run.stdout)
    assert served, f"the script did not say where it served the fixture:\n{report}"
    assert _nothing_listens_on(int(served.group(1))), "the script left its server running"
