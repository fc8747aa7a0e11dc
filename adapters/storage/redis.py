"""Redis adapters for the storage ports: credentials, sessions, SSE event logs, OAuth clients
and grants.

`RedisCredentialStore`, `RedisSessionStore`, `RedisEventStore`, `RedisClientStore` and
`RedisGrantStore` keep the values of `mcp_core.ports` in one Redis server (give a URL, or a
`redis.asyncio.Redis` of your own, e.g. one from Sentinel). They are what several nodes
behind a load balancer share when the operator picked Redis.

Theory of operation
-------------------
- Every write that must be atomic is one Lua script (`register_script`, sent as EVALSHA and
  reloaded by redis-py after a restart empties the script cache). Redis runs a script alone, so
  compare-and-set, "create unless a live session has this id, unless the cap is reached" and
  "take the next event number and append" cannot interleave with another node's write.
- Keys live under `<prefix>:` and cannot collide. A key with several variable parts frames each
  as `<length>:<text>` (netstring-like), so `("a:u1", "api", "x")` and `("a", "u1:api", "x")` give
  different keys; a key with one variable part keeps it last, where nothing follows it.

      <prefix>:schema                          "1": the layout version, checked at first use
      <prefix>:cred:rec:<frame(server, subject, kind)>
                                               hash {version, key_id, ciphertext, updated_at}
      <prefix>:cred:idx:<frame(server)>        sorted set (score 0) of frame(subject, kind)
      <prefix>:sess:rec:<session id>           hash {last_active, body (JSON)}; TTL
      <prefix>:sess:live                       sorted set of session ids by last_active; TTL
      <prefix>:ev:seq:<session id>             INCR counter of the session's events; TTL
      <prefix>:ev:log:<session id>             stream, entry id 0-<n>, fields {s: stream, p}; TTL
      <prefix>:oauth:client:<client id>        hash {metadata (JSON), secret_hash?, registered_at,
                                               source}
      <prefix>:oauth:code:<code hash>          hash {body (JSON), family_id, expires_at, used};
                                               TTL (see below)
      <prefix>:oauth:codes                     sorted set of code hashes by expires_at
      <prefix>:oauth:fam:<family id>           hash {subject, client_id, resource, scope,
                                               created_at, rotated_at, current, generation}
      <prefix>:oauth:fam-tokens:<family id>    set of every token hash the family had
      <prefix>:oauth:families                  sorted set of family ids by rotated_at
      <prefix>:oauth:token:<token hash>        string: its family id
      <prefix>:oauth:revoked                   hash family id -> reason (first reason wins)
      <prefix>:oauth:access:<jti>              string: expires_at of the revocation; TTL
      <prefix>:oauth:access-index              sorted set of jtis by expires_at

  The three sorted sets are `purge`'s work lists (`ZRANGEBYSCORE -inf (before`). Codes and
  access revocations expire with a TTL by the Redis server's clock, `retention` after their
  `expires_at` and never sooner than `retention` after they were written (so a caller whose
  clock differs from Redis's loses nothing early); their index entries stay until `purge`,
  which counts only the records it deleted itself. Families never expire by themselves.

- The layout version: the first call of a store sets `<prefix>:schema` to 1 unless it exists
  (idempotent, so every node may do it), and refuses with `RedisSchemaError` when it holds a
  newer version than this code reads. After a backend failure the check runs again, so the marker
  is put back after a restart that lost it.
- Failures: connection errors, timeouts, a server that is loading, read-only (a replica after a
  failover), out of memory or busy with a script raise `StoreUnavailable`, chaining redis-py's
  error. Other errors are bugs and propagate unchanged.
- Retries: a client built from a URL here has redis-py's automatic retry turned off. redis-py
  re-sends a command after a connection error, and a compare-and-set that was applied but whose
  answer was lost would come back as a `VersionConflict` against the caller's own write; without
  the retry the caller gets `StoreUnavailable`, the port's "may or may not have been applied,
  re-read" answer. A pooled connection that the server closed (a restart) is replaced when it is
  next checked out, so the client reconnects by itself once Redis is back. A client you pass in
  is used as it is: prefer one with `retry=Retry(NoBackoff(), 0)`.

Durability: Redis acknowledges a write once it is in memory. What survives a restart depends on
the server's configuration, not on this adapter: with `--save "" --appendonly no` (the test
server on this machine) nothing survives a restart, so every record is lost with it; RDB
snapshots (`save`) lose what was written since the last snapshot. For credentials, which cannot
be re-derived, run Redis with AOF (`appendonly yes`, `appendfsync everysec` loses at most about a
second, `always` nothing acknowledged) or keep credentials in PostgreSQL or SQLite. A failover to
a replica also loses what was acknowledged but not yet replicated. Sessions and event logs are
soft state: losing them ends sessions, which clients recover from by initializing again.

Time: sessions expire against the `now` the caller passes (the port's contract), compared in the
scripts exactly as the in-memory adapter compares it. Redis TTLs (`idle_timeout` plus
`expiry_grace`, in wall-clock time, renewed by every write) only reclaim memory of what nobody
sweeps; with `now` read from the wall clock they fire just after a session has expired.

Redis Cluster (not tested here): the scripts touch keys they compute (a sweep deletes other
sessions' records, a rotation finds its family through the token), so all keys of a store must
hash to one slot: give a prefix with a hash tag, e.g. `{mcp}`.

Grants: redeeming a code, creating a family, rotating a refresh token, revoking an access
token and each `purge` batch are single scripts, so of several nodes racing on one code or one
refresh token exactly one wins, and a replayed code or a reused token revokes the family inside
the script that saw it (OAuth 2.1 §4.1.3, §4.3.1; RFC 9700 §4.14.2).

Spec context: DESIGN.md "Ports and adapters", issue 3 "Storage adapters", issue 4 (the
authorization server's stores).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final, Self, cast

import attrs
import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mcp_core.ports.credentials import CredentialRecord, StoreUnavailable, VersionConflict
from mcp_core.ports.events import Replay, StoredEvent
from mcp_core.ports.oauth_stores import (
    ClientSource,
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

from ._sql import check_code_record, check_storable, code_outcome, storable

__all__ = [
    "SCHEMA_VERSION",
    "RedisClientStore",
    "RedisCredentialStore",
    "RedisEventStore",
    "RedisGrantStore",
    "RedisSchemaError",
    "RedisSessionStore",
]

SCHEMA_VERSION: Final = 1

# Errors that mean "the backend cannot serve this now", not "this code is wrong".
_UNAVAILABLE_ERRORS: Final = (
    RedisConnectionError,  # refused, reset, EOF, MaxConnectionsError, authentication
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    OSError,
)
# Error replies (their first word) with the same meaning that redis-py has no class for.
_UNAVAILABLE_REPLIES: Final = (
    "MISCONF",
    "MASTERDOWN",
    "NOREPLICAS",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
)


class RedisSchemaError(RuntimeError):
    """The keys under the prefix were written in a layout this code cannot read."""


def _frame(*parts: str) -> str:
    """An unambiguous join: each part as `<length>:<text>`."""
    return "".join(f"{len(part)}:{part}" for part in parts)


def _unframe(framed: str) -> list[str]:
    parts: list[str] = []
    rest = framed
    while rest:
        length, sep, rest = rest.partition(":")
        if not sep or not (length.isascii() and length.isdigit()):
            raise ValueError(f"not a framed key part: {framed!r}")
        size = int(length)
        parts.append(rest[:size])
        rest = rest[size:]
    return parts


def _number(value: float, what: str) -> str:
    """A float as the text Redis and Lua parse back to the same double."""
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return repr(float(value))


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class _RedisStore:
    """What the three stores share: the client, the prefix and the layout check."""

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str,
        socket_timeout: float,
    ) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        if isinstance(redis, str):
            self._client: Redis = Redis.from_url(
                redis,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._owns_client = True
        else:
            if redis.connection_pool.connection_kwargs.get("decode_responses"):
                raise ValueError("the Redis client must return bytes (decode_responses=False)")
            self._client = redis
            self._owns_client = False
        self.prefix = prefix
        self._schema_checked = False

    @property
    def client(self) -> Redis:
        return self._client

    @contextlib.contextmanager
    def _backend(self, operation: str) -> Iterator[None]:
        """Re-raise backend failures as `StoreUnavailable`, chained; check the layout again
        on the next call (a restart may have lost the marker)."""
        try:
            yield
        except _UNAVAILABLE_ERRORS as exc:
            self._schema_checked = False
            raise StoreUnavailable(f"redis {operation} failed: {exc}") from exc
        except ResponseError as exc:
            if str(exc).split(" ", 1)[0] not in _UNAVAILABLE_REPLIES:
                raise
            self._schema_checked = False
            raise StoreUnavailable(f"redis {operation} failed: {exc}") from exc

    def _script(self, source: str) -> AsyncScript:
        return self._client.register_script(source)

    async def _ensure_schema(self) -> None:
        if self._schema_checked:
            return
        key = f"{self.prefix}:schema"
        with self._backend("schema check"):
            await self._client.set(key, SCHEMA_VERSION, nx=True)
            found = await self._client.get(key)
        text = _text(found) if found is not None else str(SCHEMA_VERSION)
        if not (text.isascii() and text.isdigit()):
            raise RedisSchemaError(f"{key} holds {text!r}, not a layout version")
        if int(text) > SCHEMA_VERSION:
            raise RedisSchemaError(
                f"the keys under {self.prefix!r} use layout version {int(text)}, newer than the"
                f" {SCHEMA_VERSION} this mcp-core reads: upgrade mcp-core or use another prefix"
            )
        self._schema_checked = True

    async def aclose(self) -> None:
        """Close the client when this store made it from a URL (a passed client is yours)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# ---- credentials ---------------------------------------------------------------------------

# KEYS: record, server index. ARGV: expected version ("" = must not exist), key_id, ciphertext,
# updated_at, index member. Returns {1, new version} or {0, current version or ""}.
_CREDENTIAL_PUT: Final = """
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if current then return {0, current} end
elseif (not current) or tonumber(current) ~= tonumber(ARGV[1]) then
  return {0, current or ''}
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'key_id', ARGV[2], 'ciphertext', ARGV[3], 'updated_at', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[5])
return {1, version}
"""

# KEYS: record, server index. ARGV: expected version ("" = any), index member.
# Returns {1, 1} deleted, {1, 0} absent, {0, current version or ""} conflict.
_CREDENTIAL_DELETE: Final = """
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] ~= '' and ((not current) or tonumber(current) ~= tonumber(ARGV[1])) then
  return {0, current or ''}
end
if not current then return {1, 0} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return {1, 1}
"""

_CREDENTIAL_FIELDS: Final = ("version", "key_id", "ciphertext", "updated_at")


class RedisCredentialStore(_RedisStore):
    """`CredentialStore` on Redis: one hash per record, one sorted set per server to list them.

    `redis` is a URL (`redis://127.0.0.1:6379/0`; the store then owns the client: `aclose()` it)
    or a `redis.asyncio.Redis` that returns bytes. Reads of several records (`list_*`) see each
    record as of one moment, not the whole list as of one moment.
    """

    def __init__(
        self, redis: str | Redis, *, prefix: str = "mcp", socket_timeout: float = 5.0
    ) -> None:
        super().__init__(redis, prefix=prefix, socket_timeout=socket_timeout)
        self._put = self._script(_CREDENTIAL_PUT)
        self._delete = self._script(_CREDENTIAL_DELETE)

    def _record_key(self, server: str, subject: str, kind: str) -> str:
        return f"{self.prefix}:cred:rec:{_frame(server, subject, kind)}"

    def _index_key(self, server: str) -> str:
        return f"{self.prefix}:cred:idx:{_frame(server)}"

    @staticmethod
    def _decode(
        server: str, subject: str, kind: str, fields: list[bytes | None]
    ) -> CredentialRecord | None:
        version, key_id, ciphertext, updated_at = fields
        if version is None or key_id is None or ciphertext is None or updated_at is None:
            return None
        return CredentialRecord(
            server=server,
            subject=subject,
            kind=kind,
            version=int(version),
            key_id=_text(key_id),
            ciphertext=bytes(ciphertext),
            updated_at=float(updated_at),
        )

    async def get(self, server: str, subject: str, kind: str) -> CredentialRecord | None:
        await self._ensure_schema()
        key = self._record_key(server, subject, kind)
        with self._backend("get"):
            fields = await self._client.hmget(key, list(_CREDENTIAL_FIELDS))
        return self._decode(server, subject, kind, cast(list[bytes | None], fields))

    async def put(
        self, record: CredentialRecord, *, expected_version: int | None
    ) -> CredentialRecord:
        await self._ensure_schema()
        keys = [
            self._record_key(record.server, record.subject, record.kind),
            self._index_key(record.server),
        ]
        args: list[Any] = [
            "" if expected_version is None else str(expected_version),
            record.key_id,
            record.ciphertext,
            _number(record.updated_at, "updated_at"),
            _frame(record.subject, record.kind),
        ]
        with self._backend("put"):
            done, version = cast(list[Any], await self._put(keys=keys, args=args))
        if not done:
            raise VersionConflict(expected_version, int(version) if version else None)
        return attrs.evolve(record, version=int(version))

    async def delete(
        self, server: str, subject: str, kind: str, *, expected_version: int | None = None
    ) -> bool:
        await self._ensure_schema()
        keys = [self._record_key(server, subject, kind), self._index_key(server)]
        args = ["" if expected_version is None else str(expected_version), _frame(subject, kind)]
        with self._backend("delete"):
            done, outcome = cast(list[Any], await self._delete(keys=keys, args=args))
        if not done:
            raise VersionConflict(expected_version, int(outcome) if outcome else None)
        return bool(outcome)

    async def list_subject(self, server: str, subject: str) -> list[CredentialRecord]:
        # Members starting with frame(subject): lexicographic on UTF-8 bytes, where 0xff
        # never occurs, so "[p" .. "[p\xff" is exactly the members with prefix p.
        start = _frame(subject).encode()
        return await self._list(server, b"[" + start, b"[" + start + b"\xff")

    async def list_server(self, server: str) -> list[CredentialRecord]:
        return await self._list(server, b"-", b"+")

    async def _list(self, server: str, low: bytes, high: bytes) -> list[CredentialRecord]:
        await self._ensure_schema()
        with self._backend("list"):
            members = cast(
                list[bytes], await self._client.zrangebylex(self._index_key(server), low, high)
            )
            names = [_unframe(member.decode()) for member in members]
            async with self._client.pipeline(transaction=True) as pipe:
                for subject, kind in names:
                    pipe.hmget(self._record_key(server, subject, kind), list(_CREDENTIAL_FIELDS))
                rows = cast(list[list[bytes | None]], await pipe.execute()) if names else []
        records = [
            self._decode(server, subject, kind, row)
            for (subject, kind), row in zip(names, rows, strict=True)
        ]
        # Deleted between the two reads: skipped.
        return sorted(
            (record for record in records if record is not None),
            key=lambda record: (record.subject, record.kind),
        )


# ---- sessions ------------------------------------------------------------------------------

# Shared by the session scripts: remove up to `limit` expired ids of the live index (and their
# records) and return them. A session is expired when now - last_active > idle, compared
# exactly as the in-memory adapter does; the score range only narrows the candidates.
_SWEEP_FUNCTION: Final = """
local function sweep(live, record_prefix, now, idle, bound, limit)
  local candidates = redis.call(
    'ZRANGEBYSCORE', live, '-inf', bound, 'WITHSCORES', 'LIMIT', 0, limit)
  local gone = {}
  for i = 1, #candidates, 2 do
    local id = candidates[i]
    if now - tonumber(candidates[i + 1]) > idle then
      redis.call('DEL', record_prefix .. id)
      redis.call('ZREM', live, id)
      gone[#gone + 1] = id
    end
  end
  return gone
end
"""

# KEYS: record, live index. ARGV: now, idle, ttl ms, session id, max sessions, body,
# record key prefix, sweep bound, sweep limit, last_active. Returns "ok", "taken" or "full".
_SESSION_CREATE: Final = (
    _SWEEP_FUNCTION
    + """
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
local last = redis.call('HGET', KEYS[1], 'last_active')
if last then
  if not (now - tonumber(last) > idle) then return 'taken' end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
end
local cap = tonumber(ARGV[5])
if redis.call('ZCARD', KEYS[2]) >= cap then
  sweep(KEYS[2], ARGV[7], now, idle, ARGV[8], tonumber(ARGV[9]))
  if redis.call('ZCARD', KEYS[2]) >= cap then return 'full' end
end
redis.call('HSET', KEYS[1], 'last_active', ARGV[10], 'body', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[10], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 'ok'
"""
)

# KEYS: record, live index. ARGV: now, idle, session id. Returns {last_active, body} or nil;
# an expired record is deleted on the way.
_SESSION_GET: Final = """
local found = redis.call('HMGET', KEYS[1], 'last_active', 'body')
if not found[1] then return false end
if tonumber(ARGV[1]) - tonumber(found[1]) > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  return false
end
return found
"""

# KEYS: record, live index. ARGV: now, idle, ttl ms, session id. An expired session stays
# expired; activity older than the last is ignored.
_SESSION_TOUCH: Final = """
local last = redis.call('HGET', KEYS[1], 'last_active')
if not last then return 0 end
local now = tonumber(ARGV[1])
if now > tonumber(last) and not (now - tonumber(last) > tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], 'last_active', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0
"""

# KEYS: record, live index. ARGV: last_active, body, ttl ms, session id. 0 when unknown.
_SESSION_PUT: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_active', ARGV[1], 'body', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS: live index. ARGV: now, idle, record key prefix, sweep bound, limit.
_SESSION_SWEEP: Final = (
    _SWEEP_FUNCTION
    + """
return sweep(KEYS[1], ARGV[3], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[4], tonumber(ARGV[5]))
"""
)

_SWEEP_BATCH: Final = 1000


def _session_body(record: SessionRecord) -> bytes:
    return orjson.dumps(
        {
            "protocol_version": record.protocol_version,
            "state": record.state,
            "created_at": record.created_at,
            "client_capabilities": record.client_capabilities,
            "client_info": record.client_info,
            "subject": record.subject,
            "client_id": record.client_id,
            "log_level": record.log_level,
            "subscriptions": sorted(record.subscriptions),
        }
    )


def _session_record(session_id: str, last_active: bytes, body: bytes) -> SessionRecord:
    data = orjson.loads(body)
    return SessionRecord(
        session_id=session_id,
        protocol_version=data["protocol_version"],
        state=data["state"],
        created_at=data["created_at"],
        last_active=float(last_active),
        client_capabilities=data["client_capabilities"],
        client_info=data["client_info"],
        subject=data["subject"],
        client_id=data["client_id"],
        log_level=data["log_level"],
        subscriptions=frozenset(data["subscriptions"]),
    )


class RedisSessionStore(_RedisStore):
    """`SessionStore` on Redis: a hash per session and a sorted set of ids by last activity.

    The sorted set is the cap's count and the sweep's work list; expired sessions in it count as
    free when a new session would exceed `max_sessions` (they are swept then, in batches).
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "mcp",
        idle_timeout: float = 1800.0,
        max_sessions: int = 10_000,
        expiry_grace: float = 60.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if not (idle_timeout > 0 and math.isfinite(idle_timeout)):
            raise ValueError("idle_timeout must be positive")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if expiry_grace < 0:
            raise ValueError("expiry_grace must not be negative")
        super().__init__(redis, prefix=prefix, socket_timeout=socket_timeout)
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._idle = _number(idle_timeout, "idle_timeout")
        self._ttl_ms = str(math.ceil((idle_timeout + expiry_grace) * 1000))
        self._record_prefix = f"{prefix}:sess:rec:"
        self._live = f"{prefix}:sess:live"
        self._create = self._script(_SESSION_CREATE)
        self._get = self._script(_SESSION_GET)
        self._touch = self._script(_SESSION_TOUCH)
        self._put = self._script(_SESSION_PUT)
        self._sweep = self._script(_SESSION_SWEEP)

    def _keys(self, session_id: str) -> list[str]:
        return [self._record_prefix + session_id, self._live]

    def _sweep_bound(self, now: float) -> str:
        # A little above now - idle: the scripts decide exactly, this only has to include
        # every expired score.
        threshold = now - self.idle_timeout
        return repr(threshold + 1e-9 * max(1.0, abs(now), self.idle_timeout))

    async def create(self, record: SessionRecord) -> None:
        await self._ensure_schema()
        now = _number(record.created_at, "created_at")
        args: list[str | bytes] = [
            now,
            self._idle,
            self._ttl_ms,
            record.session_id,
            str(self.max_sessions),
            _session_body(record),
            self._record_prefix,
            self._sweep_bound(record.created_at),
            str(_SWEEP_BATCH),
            _number(record.last_active, "last_active"),
        ]
        with self._backend("create"):
            outcome = _text(await self._create(keys=self._keys(record.session_id), args=args))
        if outcome == "taken":
            raise ValueError(f"session id {record.session_id!r} is taken")
        if outcome == "full":
            raise SessionLimitReached(f"{self.max_sessions} sessions are open")

    async def get(self, session_id: str, now: float) -> SessionRecord | None:
        await self._ensure_schema()
        args = [_number(now, "now"), self._idle, session_id]
        with self._backend("get"):
            found = await self._get(keys=self._keys(session_id), args=args)
        if found is None:
            return None
        last_active, body = cast(list[bytes], found)
        return _session_record(session_id, last_active, body)

    async def touch(self, session_id: str, now: float) -> None:
        await self._ensure_schema()
        args = [_number(now, "now"), self._idle, self._ttl_ms, session_id]
        with self._backend("touch"):
            await self._touch(keys=self._keys(session_id), args=args)

    async def put(self, record: SessionRecord) -> None:
        await self._ensure_schema()
        args: list[str | bytes] = [
            _number(record.last_active, "last_active"),
            _session_body(record),
            self._ttl_ms,
            record.session_id,
        ]
        with self._backend("put"):
            stored = await self._put(keys=self._keys(record.session_id), args=args)
        if not stored:
            raise KeyError(record.session_id)

    async def delete(self, session_id: str) -> bool:
        await self._ensure_schema()
        with self._backend("delete"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self._record_prefix + session_id)
                pipe.zrem(self._live, session_id)
                deleted, _ = cast(list[int], await pipe.execute())
        return bool(deleted)

    async def sweep(self, now: float) -> list[str]:
        await self._ensure_schema()
        gone: list[str] = []
        args = [
            _number(now, "now"),
            self._idle,
            self._record_prefix,
            self._sweep_bound(now),
            str(_SWEEP_BATCH),
        ]
        with self._backend("sweep"):
            while True:
                batch = cast(list[bytes], await self._sweep(keys=[self._live], args=args))
                gone.extend(_text(session_id) for session_id in batch)
                if len(batch) < _SWEEP_BATCH:
                    return gone


# ---- SSE event logs ------------------------------------------------------------------------

# KEYS: counter, stream. ARGV: stream id, payload, max length, ttl ms. Returns the number.
_EVENT_APPEND: Final = """
local n = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '0-' .. n, 's', ARGV[1], 'p', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return n
"""


class RedisEventStore(_RedisStore):
    """`EventStore` on Redis: a stream per session, entry `0-<n>` for event `<stream>:<n>`.

    `n` counts the session's events (INCR, in the same script as the XADD, so the entries stay in
    order under concurrent appends). A session keeps its newest `max_events_per_session` events
    (XADD MAXLEN) for `retention` seconds after its last append.
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "mcp",
        max_events_per_session: int = 1_000,
        retention: float = 86_400.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if max_events_per_session < 1:
            raise ValueError("max_events_per_session must be at least 1")
        if not retention > 0:
            raise ValueError("retention must be positive")
        super().__init__(redis, prefix=prefix, socket_timeout=socket_timeout)
        self.max_events_per_session = max_events_per_session
        self._ttl_ms = str(math.ceil(retention * 1000))
        self._append = self._script(_EVENT_APPEND)

    def _keys(self, session_id: str) -> list[str]:
        return [f"{self.prefix}:ev:seq:{session_id}", f"{self.prefix}:ev:log:{session_id}"]

    async def append(self, session_id: str, stream_id: str, payload: bytes) -> str:
        await self._ensure_schema()
        args: list[Any] = [stream_id, payload, str(self.max_events_per_session), self._ttl_ms]
        with self._backend("append"):
            n = await self._append(keys=self._keys(session_id), args=args)
        return f"{stream_id}:{int(n)}"

    async def replay_after(self, session_id: str, last_event_id: str) -> Replay | None:
        stream_id, sep, number = last_event_id.rpartition(":")
        if not sep or not (number.isascii() and number.isdigit()):
            return None
        n = int(number)
        await self._ensure_schema()
        log = self._keys(session_id)[1]
        with self._backend("replay"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xrange(log, f"0-{n}", f"0-{n}")
                pipe.xrange(log, f"0-{n + 1}", "+")
                anchor, later = cast(
                    list[list[tuple[bytes, dict[bytes, bytes]]]], await pipe.execute()
                )
        if not anchor or _text(anchor[0][1][b"s"]) != stream_id:
            return None
        events = tuple(
            StoredEvent(event_id=f"{stream_id}:{_text(entry_id)[2:]}", payload=fields[b"p"])
            for entry_id, fields in later
            if _text(fields[b"s"]) == stream_id
        )
        return Replay(stream_id=stream_id, events=events)

    async def forget_session(self, session_id: str) -> None:
        await self._ensure_schema()
        with self._backend("forget"):
            await self._client.delete(*self._keys(session_id))


# ---- OAuth: clients and grants -------------------------------------------------------------

_CLIENT_FIELDS: Final = ("metadata", "secret_hash", "registered_at", "source")


class RedisClientStore(_RedisStore):
    """`ClientStore` on Redis: one hash per client, `secret_hash` absent for a public client.

    `put` replaces the hash in one MULTI/EXEC transaction (DEL, then HSET), so no reader sees
    half of an old client and half of a new one.
    """

    def __init__(
        self, redis: str | Redis, *, prefix: str = "mcp", socket_timeout: float = 5.0
    ) -> None:
        super().__init__(redis, prefix=prefix, socket_timeout=socket_timeout)

    def _key(self, client_id: str) -> str:
        return f"{self.prefix}:oauth:client:{client_id}"

    async def put(self, client: RegisteredClient) -> None:
        await self._ensure_schema()
        fields: dict[str, str | bytes] = {
            "metadata": orjson.dumps(dict(client.metadata)),
            "registered_at": _number(client.registered_at, "registered_at"),
            "source": client.source,
        }
        if client.secret_hash is not None:
            fields["secret_hash"] = client.secret_hash.encode("utf-8", "surrogatepass")
        key = self._key(client.client_id)
        with self._backend("put"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                await pipe.execute()

    async def get(self, client_id: str) -> RegisteredClient | None:
        await self._ensure_schema()
        with self._backend("get"):
            found = await self._client.hmget(self._key(client_id), list(_CLIENT_FIELDS))
        metadata, secret_hash, registered_at, source = cast(list[bytes | None], found)
        if metadata is None or registered_at is None or source is None:
            return None
        return RegisteredClient(
            client_id=client_id,
            metadata=orjson.loads(metadata),
            secret_hash=None
            if secret_hash is None
            else secret_hash.decode("utf-8", "surrogatepass"),
            registered_at=float(registered_at),
            source=cast(ClientSource, _text(source)),
        )

    async def delete(self, client_id: str) -> bool:
        await self._ensure_schema()
        with self._backend("delete"):
            deleted = await self._client.delete(self._key(client_id))
        return bool(deleted)


# Shared by the grant scripts that set a TTL: the absolute time (ms, the Redis server's clock)
# until which a record that stops mattering at `expires_at` is kept: `retention` after it
# expires, and never less than `retention` from now (so a caller whose clock is not Redis's,
# or a test with times near 1970, never sees a record vanish before the port says it may).
_KEEP_UNTIL_FUNCTION: Final = """
local function keep_until(expires_at, retention_ms)
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local by_expiry = math.floor(tonumber(expires_at) * 1000) + retention_ms
  local at = math.max(by_expiry, now_ms + retention_ms)
  return string.format('%.0f', math.min(at, 4503599627370496))
end
"""

# Shared by the scripts that answer with a family: {family_id, revoked (0/1), reason, subject,
# client_id, resource, scope, created_at, rotated_at, current, generation}.
_FAMILY_VIEW_FUNCTION: Final = """
local function view(family_key, revoked_key, family_id)
  local fields = redis.call('HMGET', family_key, 'subject', 'client_id', 'resource', 'scope',
    'created_at', 'rotated_at', 'current', 'generation')
  if not fields[1] then return false end
  local reason = redis.call('HGET', revoked_key, family_id)
  local out = {family_id, reason and '1' or '0', reason or ''}
  for i = 1, 8 do out[#out + 1] = fields[i] end
  return out
end
"""

# KEYS: code, code index. ARGV: body, family id, expires_at, retention ms, code hash.
# Returns 1 stored, 0 already stored.
_CODE_SAVE: Final = (
    _KEEP_UNTIL_FUNCTION
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'body', ARGV[1], 'family_id', ARGV[2], 'expires_at', ARGV[3],
  'used', '0')
redis.call('PEXPIREAT', KEYS[1], keep_until(ARGV[3], tonumber(ARGV[4])))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
return 1
"""
)

# KEYS: code, family revocations. ARGV: now. Returns {'ok', body}, {'replayed', family id},
# {'expired', family id} or {'unknown'}. A replay revokes the family in the same script.
_CODE_REDEEM: Final = """
local found = redis.call('HMGET', KEYS[1], 'body', 'family_id', 'expires_at', 'used')
if not found[1] then return {'unknown'} end
if found[4] == '1' then
  redis.call('HSETNX', KEYS[2], found[2], 'code_replayed')
  return {'replayed', found[2]}
end
if tonumber(ARGV[1]) > tonumber(found[3]) then return {'expired', found[2]} end
redis.call('HSET', KEYS[1], 'used', '1')
return {'ok', found[1]}
"""

# KEYS: family, family revocations, token, family's tokens, family index. ARGV: family id,
# subject, client_id, resource, scope, now, token hash. Returns 'ok', 'family' or 'token'.
_FAMILY_CREATE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 'family'
end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'token' end
redis.call('HSET', KEYS[1], 'subject', ARGV[2], 'client_id', ARGV[3], 'resource', ARGV[4],
  'scope', ARGV[5], 'created_at', ARGV[6], 'rotated_at', ARGV[6], 'current', ARGV[7],
  'generation', 0)
redis.call('SET', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[7])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
return 'ok'
"""

# KEYS: token, family revocations, new token, family index. ARGV: token hash, new token hash,
# now, family key prefix, family tokens key prefix. Returns {status, view...} with status
# 'rotated', 'reused', 'revoked'; {'unknown'}; or {'conflict'} (the new hash is taken).
_REFRESH_ROTATE: Final = (
    _FAMILY_VIEW_FUNCTION
    + """
local family_id = redis.call('GET', KEYS[1])
if not family_id then return {'unknown'} end
local family_key = ARGV[4] .. family_id
local current = redis.call('HGET', family_key, 'current')
if not current then return {'unknown'} end
local status
if redis.call('HEXISTS', KEYS[2], family_id) == 1 then
  status = 'revoked'
elseif current ~= ARGV[1] then
  redis.call('HSET', KEYS[2], family_id, 'refresh_reused')
  status = 'reused'
elseif redis.call('EXISTS', KEYS[3]) == 1 then
  return {'conflict'}
else
  redis.call('HSET', family_key, 'current', ARGV[2], 'rotated_at', ARGV[3])
  redis.call('HINCRBY', family_key, 'generation', 1)
  redis.call('SET', KEYS[3], family_id)
  redis.call('SADD', ARGV[5] .. family_id, ARGV[2])
  redis.call('ZADD', KEYS[4], ARGV[3], family_id)
  status = 'rotated'
end
local out = {status}
for _, value in ipairs(view(family_key, KEYS[2], family_id)) do out[#out + 1] = value end
return out
"""
)

# KEYS: family, family revocations. ARGV: family id. Returns a view or nil.
_FAMILY_GET: Final = (
    _FAMILY_VIEW_FUNCTION
    + """
return view(KEYS[1], KEYS[2], ARGV[1])
"""
)

# KEYS: revocation, revocation index. ARGV: expires_at, retention ms, jti. Keeps the later
# expiry; the TTL follows it (and so never shortens).
_ACCESS_REVOKE: Final = (
    _KEEP_UNTIL_FUNCTION
    + """
local expires_at = ARGV[1]
local old = redis.call('GET', KEYS[1])
if old and tonumber(old) >= tonumber(expires_at) then expires_at = old end
redis.call('SET', KEYS[1], expires_at, 'PXAT', keep_until(expires_at, tonumber(ARGV[2])))
redis.call('ZADD', KEYS[2], expires_at, ARGV[3])
return 1
"""
)

# KEYS: code index, revocation index, family index, family revocations. ARGV: '(' .. before,
# code key prefix, revocation key prefix, family key prefix, family tokens key prefix, token key
# prefix, batch size. Removes up to a batch of each kind whose score is below `before`;
# returns {records removed, 1 when a kind filled its batch (call again), else 0}.
_GRANT_PURGE: Final = """
local limit = tonumber(ARGV[7])
local removed, more = 0, 0
local function expired(index, key_prefix)
  local members = redis.call('ZRANGEBYSCORE', KEYS[index], '-inf', ARGV[1], 'LIMIT', 0, limit)
  if #members == limit then more = 1 end
  for _, member in ipairs(members) do
    removed = removed + redis.call('DEL', key_prefix .. member)
    redis.call('ZREM', KEYS[index], member)
  end
end
expired(1, ARGV[2])
expired(2, ARGV[3])
local families = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, limit)
if #families == limit then more = 1 end
-- A family may hold thousands of old refresh tokens: the work of one call is bounded by token
-- keys too (Redis runs a script alone), and a family goes only once its tokens are gone.
local budget = tonumber(ARGV[8])
for _, family_id in ipairs(families) do
  if budget <= 0 then more = 1; break end
  local tokens_key = ARGV[5] .. family_id
  local batch = redis.call('SPOP', tokens_key, budget)
  for _, token in ipairs(batch) do
    redis.call('DEL', ARGV[6] .. token)
  end
  budget = budget - #batch
  if redis.call('SCARD', tokens_key) > 0 then more = 1; break end
  redis.call('HDEL', KEYS[4], family_id)
  removed = removed + redis.call('DEL', ARGV[4] .. family_id)
  redis.call('ZREM', KEYS[3], family_id)
end
return {removed, more}
"""

_PURGE_BATCH: Final = 500
_PURGE_TOKEN_BUDGET: Final = 5_000  # refresh-token keys one purge script deletes at most


def _family_of(view: list[bytes]) -> RefreshFamily:
    (
        family_id,
        revoked,
        reason,
        subject,
        client_id,
        resource,
        scope,
        created_at,
        rotated_at,
        current,
        generation,
    ) = view
    return RefreshFamily(
        family_id=_text(family_id),
        subject=_text(subject),
        client_id=_text(client_id),
        resource=_text(resource),
        scope=_text(scope),
        created_at=float(created_at),
        rotated_at=float(rotated_at),
        current_token_hash=_text(current),
        generation=int(generation),
        revoked_reason=_text(reason) if revoked == b"1" else None,
    )


def _code_body(record: CodeRecord) -> bytes:
    return orjson.dumps(
        {
            "client_id": record.client_id,
            "redirect_uri": record.redirect_uri,
            "resource": record.resource,
            "scope": record.scope,
            "subject": record.subject,
            "code_challenge": record.code_challenge,
            "family_id": record.family_id,
            "issued_at": record.issued_at,
            "expires_at": record.expires_at,
        }
    )


# The default backstop TTL of codes and access revocations: longer than the built-in
# authorization server's default purge horizon (30 days), so the TTL never forgets first.
GRANT_RETENTION: Final = 40 * 86_400.0


class RedisGrantStore(_RedisStore):
    """`GrantStore` on Redis. Every operation that reads and then writes is one Lua script, so
    of several nodes racing on one code or one refresh token exactly one wins, and a replay or
    a reuse revokes the family inside the same script that detected it.

    Codes and access-token revocations carry a TTL (by the Redis server's clock): they are kept
    `retention` seconds after they expire and at least `retention` seconds after they were
    written, so memory is reclaimed even if nobody calls `purge`. The TTL is a backstop that
    must never come before the purge horizon: only `purge` may forget a code that a replay must
    still find (a replayed code revokes its family), so `retention` (default `GRANT_RETENTION`,
    40 days) must be at least the authorization server's `max(refresh_ttl, access_ttl)`
    (30 days by default); `purge` removes what it finds
    expired by the caller's `before` and counts only what it removed itself. Families have no
    TTL: a revoked family must stay revoked until the operator's `purge` says it may go.
    Needs Redis 6.2 or newer (`SET ... PXAT`, and `TIME` inside a writing script).
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "mcp",
        retention: float = GRANT_RETENTION,
        socket_timeout: float = 5.0,
    ) -> None:
        if not (retention > 0 and math.isfinite(retention)):
            raise ValueError("retention must be positive")
        super().__init__(redis, prefix=prefix, socket_timeout=socket_timeout)
        self._retention_ms = str(math.ceil(retention * 1000))
        self._purge_token_budget = _PURGE_TOKEN_BUDGET
        base = f"{prefix}:oauth"
        self._code_prefix = f"{base}:code:"
        self._codes = f"{base}:codes"
        self._family_prefix = f"{base}:fam:"
        self._family_tokens_prefix = f"{base}:fam-tokens:"
        self._families = f"{base}:families"
        self._token_prefix = f"{base}:token:"
        self._revoked = f"{base}:revoked"
        self._access_prefix = f"{base}:access:"
        self._access = f"{base}:access-index"
        self._save = self._script(_CODE_SAVE)
        self._redeem = self._script(_CODE_REDEEM)
        self._create = self._script(_FAMILY_CREATE)
        self._rotate = self._script(_REFRESH_ROTATE)
        self._family = self._script(_FAMILY_GET)
        self._revoke_access = self._script(_ACCESS_REVOKE)
        self._purge = self._script(_GRANT_PURGE)

    async def save_code(self, record: CodeRecord) -> None:
        check_code_record(record)
        await self._ensure_schema()
        keys = [self._code_prefix + record.code_hash, self._codes]
        args: list[str | bytes] = [
            _code_body(record),
            record.family_id,
            _number(record.expires_at, "expires_at"),
            self._retention_ms,
            record.code_hash,
        ]
        _number(record.issued_at, "issued_at")
        with self._backend("save_code"):
            stored = await self._save(keys=keys, args=args)
        if not stored:
            raise GrantConflict(f"code hash {record.code_hash!r} is already stored")

    async def redeem_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)
        await self._ensure_schema()
        keys = [self._code_prefix + code_hash, self._revoked]
        with self._backend("redeem_code"):
            answer = cast(list[bytes], await self._redeem(keys=keys, args=[_number(now, "now")]))
        status = _text(answer[0])
        if status == "unknown":
            return CodeOutcome(status=CodeStatus.UNKNOWN)
        if status == "replayed":
            return CodeOutcome(status=CodeStatus.REPLAYED, family_id=_text(answer[1]))
        if status == "expired":
            return CodeOutcome(status=CodeStatus.EXPIRED, family_id=_text(answer[1]))
        return CodeRecord(code_hash=code_hash, **orjson.loads(answer[1]))

    async def peek_code(self, code_hash: str, now: float) -> CodeRecord | CodeOutcome:
        check_storable(code_hash)
        await self._ensure_schema()
        # Parsed back exactly as the redeem script parses ARGV[1]: both sides agree on the edge.
        instant = float(_number(now, "now"))
        with self._backend("peek_code"):
            # One HMGET reads the hash atomically; nothing is written, no script needed.
            found = await self._client.hmget(
                self._code_prefix + code_hash, ["body", "family_id", "expires_at", "used"]
            )
        body, family_id, expires_at, used = cast(list[bytes | None], found)
        if body is None or family_id is None or expires_at is None:
            return code_outcome(None, used=False, now=instant)
        record = CodeRecord(code_hash=code_hash, **orjson.loads(body))
        # The body's expires_at is the float the `expires_at` field was written from (both
        # round-trip exactly), so this decides the edge as the redeem script does.
        return code_outcome(record, used=used is not None and _text(used) == "1", now=instant)

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
        await self._ensure_schema()
        created_at = _number(now, "now")
        keys = [
            self._family_prefix + family_id,
            self._revoked,
            self._token_prefix + first_token_hash,
            self._family_tokens_prefix + family_id,
            self._families,
        ]
        args = [family_id, subject, client_id, resource, scope, created_at, first_token_hash]
        with self._backend("create_family"):
            outcome = _text(await self._create(keys=keys, args=args))
        if outcome == "family":
            raise GrantConflict(f"family {family_id!r} already exists or was revoked")
        if outcome == "token":
            raise GrantConflict("the refresh token hash is already stored")
        return RefreshFamily(
            family_id=family_id,
            subject=subject,
            client_id=client_id,
            resource=resource,
            scope=scope,
            created_at=float(created_at),
            rotated_at=float(created_at),
            current_token_hash=first_token_hash,
            generation=0,
            revoked_reason=None,
        )

    async def rotate_refresh(
        self, token_hash: str, new_token_hash: str, now: float
    ) -> RefreshOutcome:
        check_storable(token_hash, new_token_hash)
        await self._ensure_schema()
        keys = [
            self._token_prefix + token_hash,
            self._revoked,
            self._token_prefix + new_token_hash,
            self._families,
        ]
        args = [
            token_hash,
            new_token_hash,
            _number(now, "now"),
            self._family_prefix,
            self._family_tokens_prefix,
        ]
        with self._backend("rotate_refresh"):
            answer = cast(list[bytes], await self._rotate(keys=keys, args=args))
        status = _text(answer[0])
        if status == "unknown":
            return RefreshOutcome(status=RefreshStatus.UNKNOWN)
        if status == "conflict":
            raise GrantConflict("the new refresh token hash is already stored")
        return RefreshOutcome(status=RefreshStatus(status), family=_family_of(answer[1:]))

    async def revoke_family(self, family_id: str, reason: str) -> bool:
        check_storable(family_id, reason)
        await self._ensure_schema()
        with self._backend("revoke_family"):
            return bool(await self._client.hsetnx(self._revoked, family_id, reason))

    async def family(self, family_id: str) -> RefreshFamily | None:
        if not storable(family_id):  # never written, so never found
            return None
        await self._ensure_schema()
        keys = [self._family_prefix + family_id, self._revoked]
        with self._backend("family"):
            view = await self._family(keys=keys, args=[family_id])
        return None if view is None else _family_of(cast(list[bytes], view))

    async def is_revoked(self, family_id: str) -> bool:
        if not storable(family_id):
            return False
        await self._ensure_schema()
        with self._backend("is_revoked"):
            return bool(await self._client.hexists(self._revoked, family_id))

    async def revoke_access(self, jti: str, expires_at: float) -> None:
        check_storable(jti)
        await self._ensure_schema()
        keys = [self._access_prefix + jti, self._access]
        args = [_number(expires_at, "expires_at"), self._retention_ms, jti]
        with self._backend("revoke_access"):
            await self._revoke_access(keys=keys, args=args)

    async def is_access_revoked(self, jti: str, now: float) -> bool:
        if not storable(jti):
            return False
        await self._ensure_schema()
        with self._backend("is_access_revoked"):
            found = await self._client.get(self._access_prefix + jti)
        return found is not None and now <= float(found)

    async def purge(self, before: float) -> int:
        await self._ensure_schema()
        keys = [self._codes, self._access, self._families, self._revoked]
        args = [
            "(" + _number(before, "before"),
            self._code_prefix,
            self._access_prefix,
            self._family_prefix,
            self._family_tokens_prefix,
            self._token_prefix,
            str(_PURGE_BATCH),
            str(self._purge_token_budget),
        ]
        removed = 0
        with self._backend("purge"):
            while True:
                count, more = cast(list[int], await self._purge(keys=keys, args=args))
                removed += int(count)
                if not more:
                    return removed
