"""The conformance suite's authorization-server scenarios pass against the built-in server.

The stable suite (0.1.16) has no authorization-server scenarios; the alpha suite
(0.2.0-alpha.12) has two: `authorization-server-metadata-endpoint` (RFC 8414 metadata: every
required field, S256, the `iss` parameter, client ID metadata documents) and
`authorization-code-grant` (a pre-registered public client, PKCE S256, `resource`, the redirect
back to the harness's callback with `iss`, the token exchange). `scripts/conformance.sh
authorization` serves `examples/conformance_authorization_server.py`, plays the user's browser,
and sums up; this test requires both scenarios to pass with no warning.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from .test_server_conformance import FINAL_LINE, SUITE_UNAVAILABLE, _run, _unavailable

pytestmark = pytest.mark.conformance

SETUP_TIMEOUT = 600.0
RUN_TIMEOUT = 180.0
AUTHORIZATION_SCENARIOS = ("authorization-server-metadata-endpoint", "authorization-code-grant")


@pytest.fixture(scope="module")
def alpha_env() -> dict[str, str]:
    # The interpreter running the tests serves the fixture.
    return {**os.environ, "CONFORMANCE_SUITE": "alpha", "PYTHON": sys.executable}


def test_builtin_authorization_server_passes_the_alpha_authorization_scenarios(
    alpha_env: dict[str, str], tmp_path: Path
) -> None:
    setup = _run(["setup"], SETUP_TIMEOUT, alpha_env)
    if setup.returncode != 0:
        _unavailable(f"scripts/conformance.sh setup (alpha) exited {setup.returncode}")
    results = tmp_path / "results"
    run = _run(["authorization", "--strict-warnings", "-o", str(results)], RUN_TIMEOUT, alpha_env)
    report = f"{run.stdout}\n{run.stderr}\n(results in {results})"
    if run.returncode == SUITE_UNAVAILABLE:
        _unavailable(run.stderr.strip() or "the suite could not be installed")
    for scenario in AUTHORIZATION_SCENARIOS:
        assert f"PASS {scenario}:" in run.stdout, report
    finals = FINAL_LINE.findall(run.stdout)
    assert finals, report
    assert tuple(map(int, finals[-1])) == (len(AUTHORIZATION_SCENARIOS), 0), report
    assert run.returncode == 0, report
