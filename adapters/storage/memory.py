"""In-memory adapters: the reference implementations (oracles) of the storage ports.

They are what a single process uses by default, and what every other adapter is compared with
by the contract suites in `mcp_core.ports.contracts`. Bounded: a session store holds at most
`max_sessions` live sessions; an event store keeps at most `max_events_per_session` events per
session (the oldest go first) and `max_sessions` sessions' logs.
"""

from __future__ import annotations

import copy
from collections import OrderedDict, deque

import attrs

from mcp_core.ports.credentials import CredentialRecord, VersionConflict
from mcp_core.ports.events import Replay, StoredEvent
from mcp_core.ports.oauth_stores import (
    CODE_REPLAYED,
    REFRESH_REUSED,
    CodeOutcome,
    CodeRecord,
    CodeStatus,
    GrantConflict,
    RefreshFamily,
    RefreshOutcome,
    RefreshStatus,
    RegisteredClient,
)
from mcp_core.ports.sessions import SessionLimitReached, SessionRecord

from ._sql import check_code_record, check_storable, code_outcome

__all__ = [
    "InMemoryClientStore",
    "InMemoryCredentialStore",
    "InMemoryEventStore",
    "InMemoryGrantStore",
    "InMemorySessionStore",
]


class InMemorySessionStore:
    def __init__(self, *, idle_timeout: float = 1800.0, max_sessions: int = 10_000) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        # Least recently active first: sweeping stops at the first live record.
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _expired(self, record: SessionRecord, now: float) -> bool:
        return now - record.last_active > self.idle_timeout

    async def create(self, record: SessionRecord) -> None:
        existing = self._records.get(record.session_id)
        if existing is not None:
            if not self._expired(existing, record.created_at):
                raise ValueError(f"session id {record.session_id!r} is taken")
            del self._records[record.session_id]
        if len(self._records) >= self.max_sessions:
            self._sweep(record.created_at)
            if len(self._records) >= self.max_sessions:
                raise SessionLimitReached(f"{self.max_sessions} sessions are open")
        self._records[record.session_id] = record

    async def get(self, session_id: str, now: float) -> SessionRecord | None:
        record = self._records.get(session_id)
        if record is None:
            return None
        if self._expired(record, now):
            del self._records[session_id]
            return None
        return record

    async def touch(self, session_id: str, now: float) -> None:
        record = self._records.get(session_id)
        # An expired session stays expired: activity cannot revive it.
        if record is not None and now > record.last_active and not self._expired(record, now):
            self._records[session_id] = attrs.evolve(record, last_active=now)
            self._records.move_to_end(session_id)

    async def put(self, record: SessionRecord) -> None:
        if record.session_id not in self._records:
            raise KeyError(record.session_id)
        self._records[record.session_id] = record

    async def delete(self, session_id: str) -> bool:
        return self._records.pop(session_id, None) is not None

    async def sweep(self, now: float) -> list[str]:
        return self._sweep(now)

    def _sweep(self, now: float) -> list[str]:
        gone: list[str] = []
        for session_id, record in list(self._records.items()):
            if self._expired(record, now):
                gone.append(session_id)
                del self._records[session_id]
        return gone


class InMemoryEventStore:
    """Event ids are `<stream_id>:<n>` with `n` counting per session, so ids order in a stream."""

    def __init__(self, *, max_events_per_session: int = 1_000, max_sessions: int = 10_000) -> None:
        if max_events_per_session < 1 or max_sessions < 1:
            raise ValueError("bounds must be at least 1")
        self.max_events_per_session = max_events_per_session
        self.max_sessions = max_sessions
        self._logs: OrderedDict[str, deque[tuple[str, str, bytes]]] = OrderedDict()
        self._counters: dict[str, int] = {}

    async def append(self, session_id: str, stream_id: str, payload: bytes) -> str:
        log = self._logs.get(session_id)
        if log is None:
            if len(self._logs) >= self.max_sessions:
                oldest, _ = self._logs.popitem(last=False)
                self._counters.pop(oldest, None)
            log = self._logs[session_id] = deque(maxlen=self.max_events_per_session)
        n = self._counters.get(session_id, 0) + 1
        self._counters[session_id] = n
        event_id = f"{stream_id}:{n}"
        log.append((event_id, stream_id, payload))
        return event_id

    async def replay_after(self, session_id: str, last_event_id: str) -> Replay | None:
        log = self._logs.get(session_id)
        if log is None:
            return None
        found: str | None = None
        events: list[StoredEvent] = []
        for event_id, stream_id, payload in log:
            if found is None:
                if event_id == last_event_id:
                    found = stream_id
            elif stream_id == found:
                events.append(StoredEvent(event_id=event_id, payload=payload))
        if found is None:
            return None
        return Replay(stream_id=found, events=tuple(events))

    async def forget_session(self, session_id: str) -> None:
        self._logs.pop(session_id, None)
        self._counters.pop(session_id, None)


class InMemoryCredentialStore:
    """Sealed credentials in a dict, with compare-and-set writes."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str], CredentialRecord] = {}

    async def get(self, server: str, subject: str, kind: str) -> CredentialRecord | None:
        return self._records.get((server, subject, kind))

    async def put(
        self, record: CredentialRecord, *, expected_version: int | None
    ) -> CredentialRecord:
        key = (record.server, record.subject, record.kind)
        current = self._records.get(key)
        actual = current.version if current is not None else None
        if actual != expected_version:
            raise VersionConflict(expected_version, actual)
        stored = attrs.evolve(record, version=(expected_version or 0) + 1)
        self._records[key] = stored
        return stored

    async def delete(
        self, server: str, subject: str, kind: str, *, expected_version: int | None = None
    ) -> bool:
        key = (server, subject, kind)
        current = self._records.get(key)
        if current is None:
            if expected_version is not None:
                raise VersionConflict(expected_version, None)
            return False
        if expected_version is not None and current.version != expected_version:
            raise VersionConflict(expected_version, current.version)
        del self._records[key]
        return True

    async def list_subject(self, server: str, subject: str) -> list[CredentialRecord]:
        return sorted(
            (r for (s, sub, _), r in self._records.items() if s == server and sub == subject),
            key=lambda r: r.kind,
        )

    async def list_server(self, server: str) -> list[CredentialRecord]:
        return sorted(
            (r for (s, _, _), r in self._records.items() if s == server),
            key=lambda r: (r.subject, r.kind),
        )


# ---- OAuth: clients and grants ----------------------------------------------------------------
# Imported here, not at the top, so that this section stays one self-contained block.


class InMemoryClientStore:
    """Registered clients in a dict."""

    def __init__(self) -> None:
        self._clients: dict[str, RegisteredClient] = {}

    async def put(self, client: RegisteredClient) -> None:
        # A deep copy of the metadata (it is JSON): a caller mutating its dict or a nested list
        # later must not change the store, as with every other adapter.
        self._clients[client.client_id] = attrs.evolve(
            client, metadata=copy.deepcopy(dict(client.metadata))
        )

    async def get(self, client_id: str) -> RegisteredClient | None:
        stored = self._clients.get(client_id)
        if stored is None:
            return None
        return attrs.evolve(stored, metadata=copy.deepcopy(dict(stored.metadata)))

    async def delete(self, client_id: str) -> bool:
        return self._clients.pop(client_id, None) is not None


class InMemoryGrantStore:
    """Codes, refresh families and revoked access tokens in dicts.

    Every method runs without awaiting, so each is atomic on its event loop: that is the whole
    of its concurrency story (one process, one loop).
    """

    def __init__(self) -> None:
        self._codes: dict[str, CodeRecord] = {}
        self._used: set[str] = set()
        self._families: dict[str, RefreshFamily] = {}
        self._tokens: dict[str, str] = {}  # token hash -> family id
        self._revoked: dict[str, str] = {}  # family id -> reason
        self._access: dict[str, float] = {}  # jti -> expires_at

    async def save_code(self, record: CodeRecord) -> None:
        check_code_record(record)
        if record.code_hash in self._codes:
            raise GrantConflict(f"code hash {record.code_hash!r} is already stored")
        self._codes[record.code_hash] = record

    async def redeem_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)
        outcome = await self.peek_code(code_hash, now)
        if isinstance(outcome, CodeRecord):
            self._used.add(code_hash)
        elif outcome.status is CodeStatus.REPLAYED and outcome.family_id is not None:
            self._revoked.setdefault(outcome.family_id, CODE_REPLAYED)
        return outcome

    async def peek_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)
        record = self._codes.get(code_hash)
        return code_outcome(record, used=code_hash in self._used, now=now)

    async def create_family(
        self,
        family_id: str,
        *,
        subject: str,
        client_id: str,
        resource: str,
        scope: str,
        first_token_hash: str,
        now: float,
    ) -> RefreshFamily:
        check_storable(family_id, subject, client_id, resource, scope, first_token_hash)
        if family_id in self._families or family_id in self._revoked:
            raise GrantConflict(f"family {family_id!r} already exists or was revoked")
        if first_token_hash in self._tokens:
            raise GrantConflict("the refresh token hash is already stored")
        family = RefreshFamily(
            family_id=family_id,
            subject=subject,
            client_id=client_id,
            resource=resource,
            scope=scope,
            created_at=now,
            rotated_at=now,
            current_token_hash=first_token_hash,
            generation=0,
            revoked_reason=None,
        )
        self._families[family_id] = family
        self._tokens[first_token_hash] = family_id
        return family

    async def rotate_refresh(
        self, token_hash: str, new_token_hash: str, now: float
    ) -> RefreshOutcome:
        check_storable(token_hash, new_token_hash)
        family_id = self._tokens.get(token_hash)
        if family_id is None:
            return RefreshOutcome(status=RefreshStatus.UNKNOWN)
        family = self._families[family_id]
        if family_id in self._revoked:
            return RefreshOutcome(status=RefreshStatus.REVOKED, family=self._view(family))
        if token_hash != family.current_token_hash:
            self._revoked[family_id] = REFRESH_REUSED
            return RefreshOutcome(status=RefreshStatus.REUSED, family=self._view(family))
        if new_token_hash in self._tokens:
            raise GrantConflict("the new refresh token hash is already stored")
        rotated = attrs.evolve(
            family,
            current_token_hash=new_token_hash,
            generation=family.generation + 1,
            rotated_at=now,
        )
        self._families[family_id] = rotated
        self._tokens[new_token_hash] = family_id
        return RefreshOutcome(status=RefreshStatus.ROTATED, family=rotated)

    async def revoke_family(self, family_id: str, reason: str) -> bool:
        check_storable(family_id, reason)
        if family_id in self._revoked:
            return False
        self._revoked[family_id] = reason
        return True

    async def family(self, family_id: str) -> RefreshFamily | None:
        family = self._families.get(family_id)
        return None if family is None else self._view(family)

    async def is_revoked(self, family_id: str) -> bool:
        return family_id in self._revoked

    async def revoke_access(self, jti: str, expires_at: float) -> None:
        check_storable(jti)
        self._access[jti] = max(expires_at, self._access.get(jti, expires_at))

    async def is_access_revoked(self, jti: str, now: float) -> bool:
        expires_at = self._access.get(jti)
        return expires_at is not None and now <= expires_at

    async def purge(self, before: float) -> int:
        codes = [h for h, record in self._codes.items() if record.expires_at < before]
        for code_hash in codes:
            del self._codes[code_hash]
            self._used.discard(code_hash)
        access = [jti for jti, expires_at in self._access.items() if expires_at < before]
        for jti in access:
            del self._access[jti]
        families = {f for f, family in self._families.items() if family.rotated_at < before}
        for family_id in families:
            del self._families[family_id]
            self._revoked.pop(family_id, None)
        for token_hash in [t for t, f in self._tokens.items() if f in families]:
            del self._tokens[token_hash]
        return len(codes) + len(access) + len(families)

    def _view(self, family: RefreshFamily) -> RefreshFamily:
        return attrs.evolve(family, revoked_reason=self._revoked.get(family.family_id))
