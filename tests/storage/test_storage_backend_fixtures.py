"""The backend fixtures' promise: a missing backend skips a test, except under CI=true."""

from __future__ import annotations

import pytest
from contracts.conftest import unavailable


@pytest.mark.parametrize("ci", ["", "false", "1"])
def test_a_missing_backend_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="no server"):
        unavailable("no server")


@pytest.mark.parametrize("ci", ["true", "TRUE", " true "])
def test_a_missing_backend_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"no server.*CI=true"):
        unavailable("no server")
