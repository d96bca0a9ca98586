"""The JWT replay store: each (issuer, jti) is accepted once within the token's lifetime.

Role in the data flow: the last step of `auth`, after the signature and claims are verified
(CDS Hooks 2.0 "Trusting CDS Clients": jti is "a nonce string value that uniquely identifies
this authentication JWT", used to prevent replay). Three implementations:
- `SqliteReplayStore` (the default): a table in an embedded SQLite file in the instance folder,
  shared by every worker process of the host; the key is unique, so an insert either records a
  first use or finds the jti taken, atomically across processes; expired rows are purged;
- `RedisReplayStore`: `SET key 1 NX EX ttl`, atomic in Redis, so several hosts behind a load
  balancer share one memory of used tokens (CDS_REDIS_URL). A Redis that keeps nothing across
  a restart (no append-only file) has forgotten the jtis it held: a token issued before the Redis
  server started is then refused (`ReplayUnknown`), as no one can say it was not used;
- `MemoryReplayStore`: in process, thread-safe; the fallback when the SQLite file cannot be
  opened (one worker only: the app warns at start-up).
Keys are SHA-256 digests of issuer and jti (unique per issuer), so a hostile jti cannot make huge
keys.

A call a proxy resends. nginx in front of several replicas (`deploy/nginx.conf`,
`proxy_next_upstream ... non_idempotent`) resends a hook call whose connection broke, a replica
killed mid-call, to another replica with the same token: the jti is taken, but its first use never
answered. So the shared stores keep, beside each jti, the request's *fingerprint* (method, path
and a SHA-256 of the body), the process answering it (its *owner*) and whether the answer was
given (`complete`, once the response is handed to the server). A second use is accepted only when
all of these hold: the first was never answered, the request is byte-for-byte the same, and its
owner is dead (SQLite: the process is gone; Redis: its heartbeat key, refreshed every 0.5 s, has
expired, which the second use waits for, at most `OWNER_WAIT_SECONDS`). Anything else is refused
as before: a token sent twice at once is accepted once, and an answered token is never accepted
again. The retried call records its judgement once (the store's unique key per hook instance and
order).
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cds_service.security.owners import (
    HEARTBEAT_TTL_MS,
    RedisHeartbeat,
    process_alive,
    this_process,
)

# How long a second use of a jti, whose first is still unanswered, waits for the Redis heartbeat
# of the first's process to expire (owners.HEARTBEAT_TTL_MS) or for the first to be answered.
OWNER_WAIT_SECONDS = 2.0
POLL_SECONDS = 0.05
IN_FLIGHT, DONE = "i", "d"


class ReplayStoreError(Exception):
    """The store could not answer (e.g. Redis unreachable): the token is then refused."""


class ReplayUnknown(ReplayStoreError):
    """The store cannot tell whether the token was used (issued before its memory began)."""


class ReplayStore(Protocol):
    shared: bool  # True when every worker process of the host sees the same store

    def first_use(self, issuer: str, jti: str, ttl_seconds: int, issued_at: float | None = None,
                  fingerprint: str | None = None) -> bool:
        """Record (issuer, jti) for `ttl_seconds`; True if it was not seen before, or if this is
        the same request (`fingerprint`) resent after its first use died unanswered."""

    def complete(self, issuer: str, jti: str) -> None:
        """The call of (issuer, jti) was answered: it is never accepted again."""


def replay_key(issuer: str, jti: str) -> str:
    return hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two sends the same call: method, path and body (SHA-256)."""
    digest = hashlib.sha256(f"{method}\n{path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


class MemoryReplayStore:
    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (expiry, key), for cheap purging
        self._lock = threading.Lock()

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expiry, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expiry:
                del self._expiry[key]

    def first_use(self, issuer: str, jti: str, ttl_seconds: int, issued_at: float | None = None,
                  fingerprint: str | None = None) -> bool:
        # One process: the first use's owner is this process, alive, so a second use is refused.
        key = replay_key(issuer, jti)
        with self._lock:
            now = self._clock()
            self._purge(now)
            if key in self._expiry:
                return False
            expiry = now + max(1, ttl_seconds)
            self._expiry[key] = expiry
            heapq.heappush(self._heap, (expiry, key))
            return True

    def complete(self, issuer: str, jti: str) -> None:
        """Nothing to mark: no other process can resend into this store."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)


class SqliteReplayStore:
    """Used jtis in an SQLite file: every worker of the host inserts into the same table."""

    shared = True
    PURGE_INTERVAL_SECONDS = 60.0

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time):
        self.path = str(Path(path).expanduser().resolve())
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock  # wall clock: the processes sharing the file share no other
        self._local = threading.local()
        self._next_purge = 0.0
        try:
            connection = self._connection()
            connection.execute("CREATE TABLE IF NOT EXISTS lcds_replay "
                               "(key TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
            connection.execute("CREATE INDEX IF NOT EXISTS ix_lcds_replay_expires_at ON lcds_replay (expires_at)")
            self._add_retry_columns(connection)
        except sqlite3.Error as error:
            raise ReplayStoreError(f"cannot open the replay store file: {type(error).__name__}") from None

    @staticmethod
    def _add_retry_columns(connection: sqlite3.Connection) -> None:
        """A file written before the retry rule: its rows (state NULL) count as answered."""
        have = {row[1] for row in connection.execute("PRAGMA table_info(lcds_replay)")}
        for column in ("state", "fingerprint", "owner"):
            if column not in have:
                try:
                    connection.execute(f"ALTER TABLE lcds_replay ADD COLUMN {column} TEXT")
                except sqlite3.OperationalError:  # another worker added it meanwhile
                    pass

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # One connection per thread, in autocommit: each statement is its own transaction.
            connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=5000")
            self._local.connection = connection
        return connection

    def first_use(self, issuer: str, jti: str, ttl_seconds: int, issued_at: float | None = None,
                  fingerprint: str | None = None) -> bool:
        key = replay_key(issuer, jti)
        now = self._clock()
        owner = this_process()
        try:
            connection = self._connection()
            if now >= self._next_purge:
                self._next_purge = now + self.PURGE_INTERVAL_SECONDS
                connection.execute("DELETE FROM lcds_replay WHERE expires_at <= ?", (now,))
            # Insert or fail, in one statement: a live row of this key makes it change nothing;
            # an expired one (not purged yet) is taken over, as the token it guarded is dead.
            cursor = connection.execute(
                "INSERT INTO lcds_replay (key, expires_at, state, fingerprint, owner) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at, state = excluded.state, "
                "fingerprint = excluded.fingerprint, owner = excluded.owner WHERE lcds_replay.expires_at <= ?",
                (key, now + max(1, ttl_seconds), IN_FLIGHT, fingerprint, owner, now),
            )
            if cursor.rowcount == 1:
                return True
            return fingerprint is not None and self._take_over(connection, key, fingerprint, owner)
        except sqlite3.Error as error:
            raise ReplayStoreError(type(error).__name__) from None

    @staticmethod
    def _take_over(connection: sqlite3.Connection, key: str, fingerprint: str, owner: str) -> bool:
        """The same request resent while its first use is unanswered and its process dead."""
        row = connection.execute("SELECT state, fingerprint, owner FROM lcds_replay WHERE key = ?",
                                 (key,)).fetchone()
        if row is None or row[0] != IN_FLIGHT or row[1] != fingerprint or not row[2] or process_alive(row[2]):
            return False
        cursor = connection.execute(  # compare-and-set: of two resends, one takes it over
            "UPDATE lcds_replay SET owner = ? WHERE key = ? AND state = ? AND owner = ?",
            (owner, key, IN_FLIGHT, row[2]))
        return cursor.rowcount == 1

    def complete(self, issuer: str, jti: str) -> None:
        try:
            self._connection().execute("UPDATE lcds_replay SET state = ? WHERE key = ?",
                                       (DONE, replay_key(issuer, jti)))
        except sqlite3.Error as error:
            raise ReplayStoreError(type(error).__name__) from None

    def __len__(self) -> int:
        return self._connection().execute(
            "SELECT count(*) FROM lcds_replay WHERE expires_at > ?", (self._clock(),)).fetchone()[0]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


# Set the key if it is not there (and answer nil), else answer what is there: one atomic step.
CLAIM_SCRIPT = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
# Replace the value only if it is still the one read (a resend taking over a dead owner's claim).
COMPARE_AND_SET_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""


class RedisReplayStore:
    PREFIX = "lumbar-cds:jti:"
    # The moment the server's memory of jtis began, kept in Redis without expiry (so every worker
    # reads the same): when it is gone, Redis restarted (or was flushed) and it is learnt again.
    SENTINEL = "lumbar-cds:replay-memory-since"
    shared = True

    def __init__(self, url: str, *, timeout: float = 2.0, clock: Callable[[], float] = time.time):
        import redis  # imported here: only deployments that set CDS_REDIS_URL need it

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._errors = (redis.RedisError, OSError)
        self._response_error = redis.ResponseError
        self._clock = clock
        self._monotonic = time.monotonic
        self._claim = self._redis.register_script(CLAIM_SCRIPT)
        self._compare_and_set = self._redis.register_script(COMPARE_AND_SET_SCRIPT)
        self._heartbeat = RedisHeartbeat(self._redis, self._errors)
        self._persistent: bool | None = None  # does Redis keep its keys across a restart?

    def first_use(self, issuer: str, jti: str, ttl_seconds: int, issued_at: float | None = None,
                  fingerprint: str | None = None) -> bool:
        key = self.PREFIX + replay_key(issuer, jti)
        try:
            owner = self._heartbeat.ensure()
            mine = f"{IN_FLIGHT}|{fingerprint or ''}|{owner}".encode()
            # SET NX EX in one script with the read of what was there: two workers racing with
            # the same token cannot both see "not set". The memory's start and this process's
            # heartbeat ride in the same round trip.
            pipe = self._redis.pipeline(transaction=False)
            self._claim(keys=[key], args=[mine, max(1, ttl_seconds)], client=pipe)
            pipe.get(self.SENTINEL)
            pipe.set(self._heartbeat.key(owner), b"1", px=HEARTBEAT_TTL_MS)
            existing, since, _ = pipe.execute()
            memory_since = float(since) if since is not None else self._learn_memory_since()
            if self._persistent is None:
                self._persistent = self._persists()
        except (ValueError, *self._errors) as error:
            raise ReplayStoreError(type(error).__name__) from None
        if not self._persistent and issued_at is not None and issued_at < memory_since:
            raise ReplayUnknown("token issued before the Redis server started (it keeps no jtis across restarts)")
        if existing is None:
            return True
        if fingerprint is None:
            return False
        try:
            return self._take_over(key, existing, fingerprint, mine)
        except self._errors as error:
            raise ReplayStoreError(type(error).__name__) from None

    def _take_over(self, key: str, existing: bytes, fingerprint: str, mine: bytes) -> bool:
        """The same request resent while its first use is unanswered: accepted once the first's
        process is dead (its heartbeat expired), refused once the first is answered."""
        state, _, rest = existing.decode("ascii", "replace").partition("|")
        first_fingerprint, _, first_owner = rest.partition("|")
        if state != IN_FLIGHT or first_fingerprint != fingerprint or not first_owner:
            return False
        deadline = self._monotonic() + OWNER_WAIT_SECONDS
        while self._heartbeat.alive(first_owner):
            if self._monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
            if self._redis.get(key) != existing:
                return False  # answered meanwhile, or another resend took it over
        return bool(self._compare_and_set(keys=[key], args=[existing, mine]))

    def complete(self, issuer: str, jti: str) -> None:
        try:
            self._redis.set(self.PREFIX + replay_key(issuer, jti), DONE.encode(), xx=True, keepttl=True)
        except self._errors as error:
            raise ReplayStoreError(type(error).__name__) from None

    def memory_since(self) -> float:
        """When the server's memory of jtis began (its start), as the store reads it."""
        since = self._redis.get(self.SENTINEL)
        return float(since) if since is not None else self._learn_memory_since()

    def _learn_memory_since(self) -> float:
        uptime = int(self._redis.info("server").get("uptime_in_seconds", 0))
        # Uptime counts whole seconds: the server started up to a second before now - uptime.
        started = float(int(self._clock()) - uptime - 1)
        self._persistent = self._persists()
        self._redis.set(self.SENTINEL, str(started).encode(), nx=True)
        return started

    def _persists(self) -> bool:
        """True when Redis keeps its keys across a restart: an append-only file. (RDB snapshots
        lose every key set since the last one.) When it cannot be told, assume it keeps nothing."""
        try:
            return self._redis.config_get("appendonly").get("appendonly") == "yes"
        except self._response_error:  # CONFIG renamed or disabled, as managed Redis often has it
            pass
        try:
            return str(self._redis.info("persistence").get("aof_enabled", 0)) == "1"
        except self._errors:
            return False

    def close(self) -> None:
        self._redis.close()


def replay_file(settings: dict) -> Path:
    """The host-wide replay store: an SQLite file in the instance folder, beside the embedded
    governance store (CDS_DATABASE_PATH's folder), whatever database the governance store uses."""
    database = Path(settings.get("DATABASE_PATH") or "instance/lumbar-cds.sqlite3")
    return database.expanduser().resolve().parent / "lumbar-cds-replay.sqlite3"


def create_replay_store(settings: dict):
    """Redis when CDS_REDIS_URL is set; else the host-wide SQLite file (`replay_file`); in process
    only if that file cannot be opened."""
    if settings.get("REDIS_URL"):
        return RedisReplayStore(settings["REDIS_URL"])
    try:
        return SqliteReplayStore(replay_file(settings))
    except (ReplayStoreError, OSError):
        return MemoryReplayStore()
