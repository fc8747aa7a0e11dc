"""What the SQL adapters (SQLite, PostgreSQL) share: schema versions, row codecs, event ids; and
the one rule on text that every grant store adapter (memory and Redis too) applies alike.

Schema versioning. Each adapter keeps, in the table `mcp_core_schema(component, version)`, how
far each component's tables (`credentials`, `sessions`, `events`, `oauth_clients`,
`oauth_grants`) have been migrated. A
component's migrations are a tuple of steps; step `n` (1-based) takes the schema from version
`n - 1` to `n`, and its statements run in order inside the transaction that records version `n`.
The adapter applies what is missing under a lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an
advisory lock), so two processes starting at once migrate once. A database already at a version
newer than this code knows is refused with `SchemaTooNew`: an older release must not write
through tables it does not understand.

Steps are only ever appended: a released step never changes, so a database records exactly which
statements built it.

Storable text. A `str` holding a lone surrogate (`'h\\udcff'`) has no UTF-8 encoding, so SQLite,
PostgreSQL and Redis cannot write it; PostgreSQL text cannot hold NUL either. `check_storable`
refuses both with `ValueError` before any I/O, so a caller's bad value is the same caller error on
every backend (never `StoreUnavailable`, never stored by one backend and refused by another), and
`storable` lets a plain lookup answer "not found" for a key that could never have been written.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import orjson

from mcp_core.ports.credentials import StoreUnavailable
from mcp_core.ports.oauth_stores import CodeOutcome, CodeRecord, CodeStatus, RefreshFamily
from mcp_core.ports.sessions import SessionRecord

__all__ = [
    "SCHEMA_TABLE",
    "SESSION_COLUMNS",
    "Migration",
    "SchemaTooNew",
    "advisory_key",
    "check_code_record",
    "check_identifier",
    "check_storable",
    "decode_session",
    "encode_session",
    "event_id",
    "parse_event_id",
    "pending_steps",
    "storable",
]

SCHEMA_TABLE = "mcp_core_schema"

# One migration step: the statements that take a component one version further.
Migration = Sequence[str]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class SchemaTooNew(StoreUnavailable):
    """The database was migrated by a newer mcp-core than this one; upgrade before using it.

    A `StoreUnavailable`, so code written against the port alone still sees a store error, but
    one that retrying will not cure.
    """

    def __init__(self, component: str, found: int, known: int) -> None:
        super().__init__(
            f"the {component!r} tables are at schema version {found}, but this mcp-core knows "
            f"only up to version {known}: upgrade mcp-core (or point it at another database)"
        )
        self.component = component
        self.found = found
        self.known = known


def pending_steps(
    component: str, current: int, steps: Sequence[Migration]
) -> list[tuple[int, Migration]]:
    """The (version, statements) still to apply to a component at `current`, in order."""
    if current > len(steps):
        raise SchemaTooNew(component, current, len(steps))
    return [(version, steps[version - 1]) for version in range(current + 1, len(steps) + 1)]


def check_identifier(name: str) -> str:
    """A schema or table name safe to splice into SQL: letters, digits and `_`, at most 63."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a plain SQL identifier (letters, digits and _, at most 63)"
        )
    return name


def storable(value: str) -> bool:
    """Whether every backend can store `value`: no NUL, and encodable as UTF-8 (no lone
    surrogate)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_storable(*values: str) -> None:
    """Raise `ValueError` if any value is not `storable` (the value itself is not echoed)."""
    for value in values:
        if not storable(value):
            raise ValueError(
                "text for the store must be UTF-8 encodable and free of NUL characters "
                "(a lone surrogate or a NUL was given)"
            )


def check_code_record(record: CodeRecord) -> None:
    """`check_storable` on every text field of an authorization code."""
    check_storable(
        record.code_hash,
        record.client_id,
        record.redirect_uri,
        record.resource,
        record.scope,
        record.subject,
        record.code_challenge,
        record.family_id,
    )


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit lock key for PostgreSQL's advisory locks."""
    digest = hashlib.blake2b("\x1f".join(("mcp_core", *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# ---- sessions ---------------------------------------------------------------------------------
# The JSON-shaped fields of a session are stored as JSON text (not JSONB: text round-trips every
# value exactly, and nothing queries inside them).

SESSION_COLUMNS = (
    "session_id",
    "protocol_version",
    "state",
    "created_at",
    "last_active",
    "client_capabilities",
    "client_info",
    "subject",
    "client_id",
    "log_level",
    "subscriptions",
)


def encode_session(record: SessionRecord) -> tuple[Any, ...]:
    """The row of a session record, in `SESSION_COLUMNS` order."""
    return (
        record.session_id,
        record.protocol_version,
        record.state,
        record.created_at,
        record.last_active,
        orjson.dumps(record.client_capabilities).decode(),
        None if record.client_info is None else orjson.dumps(record.client_info).decode(),
        record.subject,
        record.client_id,
        record.log_level,
        orjson.dumps(sorted(record.subscriptions)).decode(),
    )


def decode_session(row: Sequence[Any]) -> SessionRecord:
    """A session record from a row in `SESSION_COLUMNS` order."""
    return SessionRecord(
        session_id=row[0],
        protocol_version=row[1],
        state=row[2],
        created_at=row[3],
        last_active=row[4],
        client_capabilities=orjson.loads(row[5]),
        client_info=None if row[6] is None else orjson.loads(row[6]),
        subject=row[7],
        client_id=row[8],
        log_level=row[9],
        subscriptions=frozenset(orjson.loads(row[10])),
    )


# ---- events -----------------------------------------------------------------------------------


def event_id(stream_id: str, n: int) -> str:
    """`<stream_id>:<n>`, `n` counting the session's events: ids order within a stream."""
    return f"{stream_id}:{n}"


def parse_event_id(value: str) -> tuple[str, int] | None:
    """(stream_id, n) of an id this module made; None for anything else."""
    stream_id, sep, number = value.rpartition(":")
    if not sep or not number.isascii() or not number.isdigit() or len(number) > 18:
        return None
    return stream_id, int(number)


def code_outcome(record: CodeRecord | None, *, used: bool, now: float) -> CodeRecord | CodeOutcome:
    """What the port's `redeem_code` and `peek_code` answer for a stored code (None: not
    stored), decided the same way on every backend so that a peek always says what a redeem
    would: an unknown code, one already redeemed (a replay), one past `expires_at`, else the
    record. A redeem then revokes the family of a replay, or marks the record used."""
    if record is None:
        return CodeOutcome(status=CodeStatus.UNKNOWN)
    if used:
        return CodeOutcome(status=CodeStatus.REPLAYED, family_id=record.family_id)
    if now > record.expires_at:
        return CodeOutcome(status=CodeStatus.EXPIRED, family_id=record.family_id)
    return record


# ---- the grant store's rows (SQLite and PostgreSQL) -------------------------------------------

CODE_COLUMNS = (
    "code_hash, client_id, redirect_uri, resource, scope, subject, code_challenge, family_id, "
    "issued_at, expires_at"
)
FAMILY_COLUMNS = (
    "family_id, subject, client_id, resource, scope, created_at, rotated_at, "
    "current_token_hash, generation"
)


def decode_code(row: Sequence[Any]) -> CodeRecord:
    """A row of `CODE_COLUMNS`."""
    return CodeRecord(
        code_hash=row[0],
        client_id=row[1],
        redirect_uri=row[2],
        resource=row[3],
        scope=row[4],
        subject=row[5],
        code_challenge=row[6],
        family_id=row[7],
        issued_at=row[8],
        expires_at=row[9],
    )


def code_outcome_of_row(row: Sequence[Any] | None, now: float) -> CodeRecord | CodeOutcome:
    """`code_outcome` for a row of `CODE_COLUMNS, used` (None: no such code)."""
    if row is None:
        return code_outcome(None, used=False, now=now)
    return code_outcome(decode_code(row), used=bool(row[10]), now=now)


def decode_family(row: Sequence[Any], reason: str | None) -> RefreshFamily:
    """A row of `FAMILY_COLUMNS`, revoked for `reason` (None: live)."""
    return RefreshFamily(
        family_id=row[0],
        subject=row[1],
        client_id=row[2],
        resource=row[3],
        scope=row[4],
        created_at=row[5],
        rotated_at=row[6],
        current_token_hash=row[7],
        generation=int(row[8]),
        revoked_reason=reason,
    )
