"""Fixtures for tests that need a real backend server (shared by tests/storage).

PostgreSQL: `postgres_dsn` is the DSN of a reachable server (`MCP_CORE_TEST_POSTGRES_DSN`, by
default the `test` database on 127.0.0.1:5432); `postgres_schemas` hands out fresh schema
names and drops them after the test. An unreachable server skips the test with the reason,
except when `CI=true`: then it fails, so that a missing service never passes as a skip.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

import anyio
import pytest

POSTGRES_DSN = os.environ.get(
    "MCP_CORE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
CONNECT_TIMEOUT_S = 5.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI=true: a backend the suite needs is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing backend is a failure, not a skip)")
    print(f"skipping: {reason}", file=sys.stderr)
    pytest.skip(reason)


async def _postgres_execute(dsn: str, *statements: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        for statement in statements:
            await conn.execute(statement, timeout=30)
    finally:
        await conn.close(timeout=CONNECT_TIMEOUT_S)


def postgres_execute(dsn: str, *statements: str) -> None:
    """Run statements on a connection of its own, in an event loop of its own."""
    anyio.run(_postgres_execute, dsn, *statements, backend="asyncio")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    if importlib.util.find_spec("asyncpg") is None:
        unavailable("asyncpg is not installed (the postgres extra)")
    try:
        postgres_execute(POSTGRES_DSN, "SELECT 1")
    except Exception as exc:
        unavailable(f"PostgreSQL at {POSTGRES_DSN} is unreachable: {type(exc).__name__}: {exc}")
    return POSTGRES_DSN


@pytest.fixture
def postgres_schemas(postgres_dsn: str) -> Iterator[Callable[[], str]]:
    """`new()` -> a schema name no one uses; every schema handed out is dropped afterwards."""
    prefix = f"mcp_test_{os.getpid()}_{secrets.token_hex(3)}"
    counter = itertools.count()
    handed_out: list[str] = []

    def new() -> str:
        name = f"{prefix}_{next(counter)}"
        handed_out.append(name)
        return name

    yield new
    if handed_out:
        postgres_execute(
            postgres_dsn,
            "SET lock_timeout = '10s'",
            *(f'DROP SCHEMA IF EXISTS "{name}" CASCADE' for name in handed_out),
        )
