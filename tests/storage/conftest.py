"""Fixtures for the storage adapters' own tests (migrations, faults).

The PostgreSQL fixtures are the ones the contract tests use, defined once in
`tests/contracts/conftest.py` (importable as `contracts.conftest`: the root conftest puts
`tests/` on the path). Tests that restart a shared server are marked `fault` (registered in
pyproject.toml); deselect them with `-m "not fault"`.
"""

from __future__ import annotations

from contracts.conftest import (  # the shared backend fixtures, re-exported for this folder
    postgres_dsn,
    postgres_schemas,
)

__all__ = ["postgres_dsn", "postgres_schemas"]
