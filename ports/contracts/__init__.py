"""Contract suites for the ports: what every adapter must do, checked against the real backend.

Each suite is a pytest base class plus a Hypothesis `RuleBasedStateMachine` that drives the
adapter and a plain in-test model side by side and checks they always agree. To check an
adapter of your own, subclass the base class and provide the factory:

```python
from mcp_core.ports.contracts import SessionStoreContract

class TestMySessionStore(SessionStoreContract):
    def make_store(self, *, idle_timeout: float, max_sessions: int):
        return MySessionStore(idle_timeout=idle_timeout, max_sessions=max_sessions)
```

The suites need pytest and hypothesis (the `dev` extra); adapters are driven through an anyio
blocking portal, so an adapter bound to its event loop (a connection pool) works too.
"""

from .credentials import CredentialStoreContract
from .events import EventStoreContract
from .oauth_stores import ClientStoreContract, GrantStoreContract
from .sessions import SessionStoreContract

__all__ = [
    "ClientStoreContract",
    "CredentialStoreContract",
    "EventStoreContract",
    "GrantStoreContract",
    "SessionStoreContract",
]
