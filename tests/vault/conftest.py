"""Fixtures of the vault tests (the doubles themselves are in `vault_testing`)."""

from __future__ import annotations

import pytest

from .vault_testing import FakeClock, HookedStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> HookedStore:
    return HookedStore()
