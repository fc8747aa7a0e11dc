"""Fixtures of the credential bootstrap tests (the doubles are in `bootstrap_testing`)."""

from __future__ import annotations

import pytest

from .bootstrap_testing import Rig


@pytest.fixture
def rig() -> Rig:
    return Rig()
