"""The JWT replay store: each (issuer, jti) is accepted once within the token's lifetime.

Role in the data flow: the last step of `auth`, after the signature and claims are verified
(CDS Hooks 2.0 "Trusting CDS Clients": jti is "a nonce string value that uniquely identifies
this authentication JWT", used to prevent replay). Two implementations:
- `MemoryReplayStore`: in process, thread-safe, entries expire with their token (default);
- `RedisReplayStore`: `SET key 1 NX EX ttl`, atomic in Redis, so several workers and instances
  behind a load balancer share one memory of used tokens (CDS_REDIS_URL).
Keys are SHA-256 digests of issuer and jti, so a hostile jti cannot make huge keys.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol


class ReplayStoreError(Exception):
    """The store could not answer (e.g. Redis unreachable): the token is then refused."""


class ReplayStore(Protocol):
    def first_use(self, issuer: str, jti: str, ttl_seconds: int) -> bool:
        """Record (issuer, jti) for `ttl_seconds`; True if it was not seen before."""


def replay_key(issuer: str, jti: str) -> str:
    return hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


class MemoryReplayStore:
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

    def first_use(self, issuer: str, jti: str, ttl_seconds: int) -> bool:
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

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)


class RedisReplayStore:
    PREFIX = "lumbar-cds:jti:"

    def __init__(self, url: str, *, timeout: float = 2.0):
        import redis  # imported here: only deployments that set CDS_REDIS_URL need it

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._errors = (redis.RedisError, OSError)

    def first_use(self, issuer: str, jti: str, ttl_seconds: int) -> bool:
        try:
            # SET NX EX is one atomic command: two workers racing with the same token cannot
            # both see "not set".
            return bool(self._redis.set(self.PREFIX + replay_key(issuer, jti), b"1", nx=True, ex=max(1, ttl_seconds)))
        except self._errors as error:
            raise ReplayStoreError(type(error).__name__) from None

    def close(self) -> None:
        self._redis.close()


def create_replay_store(redis_url: str | None) -> MemoryReplayStore | RedisReplayStore:
    return RedisReplayStore(redis_url) if redis_url else MemoryReplayStore()
