"""Every state machine of mcp-core, by name: the function that exports its table.

`scripts/export_machines.py` writes `specs/machines/<name>.json` and `docs/machines/<name>.md`
for each entry (the doc page's prose is the docstring of the module that defines the spec
function), and `tests/machines/test_machine_exports.py` fails when either drifted from the
table, or when a machine module under `core/machines/` is missing here. A new machine adds
one line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from . import (
    authorization_grant,
    credential_bootstrap,
    daemon_recovery,
    oauth_exchange,
    session,
)

__all__ = ["MACHINES", "SpecFunction"]

SpecFunction = Callable[[], dict[str, Any]]

MACHINES: Final[Mapping[str, SpecFunction]] = {
    "authorization_grant": authorization_grant.spec,
    "credential_bootstrap": credential_bootstrap.spec,
    "daemon_recovery": daemon_recovery.spec,
    "oauth_exchange": oauth_exchange.spec,
    "session": session.spec,
}
