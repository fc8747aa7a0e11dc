"""The official conformance suite's client scenarios pass against `examples/conformance_client.py`.

Issue 5 "Conformance": every client scenario of the stable suite (0.1.16) but
`auth/2025-03-26-oauth-metadata-backcompat` (the suite's mock is wrong there; the alpha's is
fixed, and it passes there), and every client scenario of the alpha (0.2.0-alpha.12) tagged
2025-03-26, 2025-06-18, 2025-11-25 or `extension`, except the extension scenarios docs/client.md
lists as unsupported, with the reason. Required: all pass.

`scripts/conformance.sh client` does the work: for each scenario the suite starts its mock
server (and authorization server) on loopback and runs our client against it; the script sums
up with the suite's own verdict per scenario (a FAILURE or WARNING check, a timeout, or an exit
status the scenario does not allow fails it). Both suites run at the same time, each with a
few scenarios in parallel (every scenario has its own ports); then the timing check
`sse-retry` of each suite runs alone, with nothing else running. About 30 s on two cores.

The scenario lists come from the suites themselves (`conformance.sh list --client`), so a new
scenario in a suite is required here at once. The unsupported list is read from docs/client.md:
it may name only extension scenarios the alpha lists.

Installing needs the npm registry the first time: without it the test skips with the reason,
except in CI (`CI=true`), where it fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "conformance.sh"
DOCS = ROOT / "docs" / "client.md"
SETUP_TIMEOUT = 600.0  # seconds: downloading Node 22 and a suite on a slow link
HARNESS_TIMEOUT = 120  # seconds one scenario's harness run may take
RUN_TIMEOUT = 420.0  # seconds for one suite's whole run
STOP_GRACE = 15.0
SUITE_UNAVAILABLE = 3  # the script's exit status when Node or the suite cannot be installed
JOBS = 3  # scenarios at a time, per suite
TIMED = {"sse-retry"}  # run alone, after the others

STABLE_EXCLUDED = {"auth/2025-03-26-oauth-metadata-backcompat"}
ALPHA_TAGS = {"2025-03-26", "2025-06-18", "2025-11-25", "extension"}

LISTED = re.compile(r"^  - (\S+) \[([^\]]*)\]", re.MULTILINE)
SECTION = re.compile(r"^## Unsupported extension scenarios\n(.*?)(?=^## |\Z)", re.M | re.S)
FINAL_LINE = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)
SCENARIO_LINE = re.compile(r"^  (pass|warn|skip|FAIL)  client (\S+):", re.MULTILINE)


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI a suite that cannot run is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"conformance suite unavailable in CI: {reason}")
    print(f"skipping the conformance suite: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _env(suite: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CONFORMANCE_SUITE=suite,
        PYTHON=sys.executable,  # run the client with the interpreter running the tests
        MCP_CORE_CONFORMANCE_TIMEOUT=str(HARNESS_TIMEOUT),
    )
    return env


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(
    process: subprocess.Popen[str], timeout: float, what: str
) -> subprocess.CompletedProcess[str]:
    """Wait, bounded: SIGTERM at the deadline (the script then stops what it started), SIGKILL
    to its whole group if it does not end soon after."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        pytest.fail(f"{what} took more than {timeout:.0f}s\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _run(args: list[str], timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _finish(_start(args, env), timeout, f"scripts/conformance.sh {' '.join(args)}")


def _client_scenarios(suite: str) -> dict[str, set[str]]:
    """name -> tags, as the suite lists its client scenarios (installing it if need be)."""
    setup = _run(["setup"], SETUP_TIMEOUT, _env(suite))
    if setup.returncode != 0:
        tail = "\n".join(setup.stderr.strip().splitlines()[-5:])
        _unavailable(f"scripts/conformance.sh setup ({suite}) exited {setup.returncode}: {tail}")
    listed = _run(["list", "--client"], 120.0, _env(suite))
    assert listed.returncode == 0, listed.stderr
    scenarios = {name: set(tags.split(",")) for name, tags in LISTED.findall(listed.stdout)}
    assert scenarios, f"the {suite} suite lists no client scenarios:\n{listed.stdout}"
    return scenarios


def unsupported_scenarios() -> set[str]:
    """The extension scenarios docs/client.md says the client does not support."""
    section = SECTION.search(DOCS.read_text())
    assert section, "docs/client.md has no 'Unsupported extension scenarios' section"
    names: set[str] = set()
    for line in section.group(1).splitlines():
        if line.startswith("- `"):
            names.update(re.findall(r"`([^`]+)`", line.split(":", 1)[0]))
    return names


def _required() -> dict[str, list[str]]:
    stable = _client_scenarios("stable")
    alpha = _client_scenarios("alpha")
    unsupported = unsupported_scenarios()
    for name in unsupported:
        assert "extension" in alpha.get(name, set()), (
            f"docs/client.md lists {name!r} as unsupported, but the alpha has no such "
            "extension scenario: only extension scenarios may be left out"
        )
    assert set(stable) >= STABLE_EXCLUDED
    return {
        "stable": sorted(set(stable) - STABLE_EXCLUDED),
        "alpha": sorted(
            name for name, tags in alpha.items() if tags & ALPHA_TAGS and name not in unsupported
        ),
    }


def _check(suite: str, run: subprocess.CompletedProcess[str], names: list[str], out: Path) -> None:
    report = f"{suite} suite:\n{run.stdout}\n{run.stderr}\n(results in {out})"
    if run.returncode == SUITE_UNAVAILABLE:
        _unavailable(run.stderr.strip() or f"the {suite} suite could not be installed")
    verdicts = {name: mark for mark, name in SCENARIO_LINE.findall(run.stdout)}
    assert set(verdicts) == set(names), report
    failing = sorted(name for name, mark in verdicts.items() if mark != "pass")
    assert not failing, f"not passing: {failing}\n{report}"
    finals = FINAL_LINE.findall(run.stdout)
    assert finals, f"no 'N passed, M failed' line:\n{report}"
    assert tuple(int(n) for n in finals[-1]) == (len(names), 0), report
    assert run.returncode == 0, report


def _args(names: list[str], out: Path, jobs: int) -> list[str]:
    args = ["client", "--jobs", str(jobs), "-o", str(out)]
    for name in names:
        args += ["--scenario", name]
    return args


def test_every_required_client_scenario_passes(tmp_path: Path) -> None:
    required = _required()
    # Both suites at once, a few scenarios each; then the timing checks one at a time, with
    # nothing else running (sse-retry wants a reconnect 450 to 700 ms after a close).
    runs = {
        suite: _start(
            _args([n for n in names if n not in TIMED], tmp_path / suite, JOBS), _env(suite)
        )
        for suite, names in required.items()
    }
    for suite, process in runs.items():
        run = _finish(process, RUN_TIMEOUT, f"the {suite} client scenarios")
        _check(suite, run, [n for n in required[suite] if n not in TIMED], tmp_path / suite)
    for suite, names in required.items():
        timed = [n for n in names if n in TIMED]
        out = tmp_path / f"{suite}-timed"
        run = _run(_args(timed, out, 1), RUN_TIMEOUT, _env(suite))
        _check(suite, run, timed, out)


def test_the_unsupported_list_names_only_extension_scenarios_it_explains() -> None:
    # Cheap and offline: each entry has a reason, and none is a required protocol scenario.
    section = SECTION.search(DOCS.read_text())
    assert section
    entries = [line for line in section.group(1).splitlines() if line.startswith("- `")]
    assert entries
    for entry in entries:
        _names, _, reason = entry.partition(":")
        assert len(reason.strip()) > 20, f"no reason given: {entry}"
    for name in unsupported_scenarios():
        assert not name.startswith(("initialize", "tools_call", "sse-retry")), name
