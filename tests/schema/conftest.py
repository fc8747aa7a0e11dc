"""The official MCP JSON schema, loaded from the shared specs folder next to the repository.

The schemas are never copied into the project: they are read from `<repo>/../shared/specs/`.
Where that folder is absent the schema tests are skipped, saying why, except in CI
(`CI=true`), where a missing schema is a failure.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO.parent / "shared" / "specs"


class McpSchema:
    """One revision's schema; `validate(instance, "CallToolResult")` checks against a definition."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.definitions: dict[str, Any] = document["$defs"]
        # The document's own `$schema` picks the dialect (2020-12 for 2025-11-25).
        self._validator_class = jsonschema.validators.validator_for(document)
        self._validator_class.check_schema(document)

    @cache  # noqa: B019 (one instance per session; the cache lives as long as it does)
    def _validator(self, definition: str) -> Any:
        if definition not in self.definitions:
            raise KeyError(f"the schema has no definition {definition!r}")
        # The whole document with a root `$ref`: every `#/$defs/...` resolves inside it.
        return self._validator_class({**self.document, "$ref": f"#/$defs/{definition}"})

    def validate(self, instance: Any, *definitions: str) -> None:
        for definition in definitions:
            errors = sorted(
                self._validator(definition).iter_errors(instance), key=lambda e: list(e.path)
            )
            if errors:
                detail = "; ".join(
                    f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in errors[:5]
                )
                raise AssertionError(f"not a valid {definition}: {detail}\n{instance!r}")

    def is_valid(self, instance: Any, definition: str) -> bool:
        return bool(self._validator(definition).is_valid(instance))


def _load(revision: str) -> McpSchema:
    path = SPECS / f"schema-{revision}.json"
    if not path.is_file():
        reason = f"the official MCP schema {revision} is not at {path}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        print(f"skipping: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return McpSchema(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def mcp_schema() -> McpSchema:
    """The 2025-11-25 schema: the revision this server targets."""
    return _load("2025-11-25")
