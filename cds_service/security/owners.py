"""Who is answering a token's call, and whether that process still lives.

Role in the data flow: a helper of the replay stores (`security.replay`). A call a proxy resends
after a replica died carries a jti that is already taken; it may be accepted again only when the
process that took it is dead. Two ways to tell:
- on one host (the SQLite store, whose file is the host's): the owner is `host:pid:start`, and the
  process is alive when that pid runs and started at the same moment (pids are reused);
- across hosts (the Redis store): each process keeps a heartbeat key in Redis, refreshed every
  `HEARTBEAT_INTERVAL_SECONDS` by a daemon thread, expiring after `HEARTBEAT_TTL_MS`: the owner
  is alive while its key exists.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from pathlib import Path

HEARTBEAT_INTERVAL_SECONDS = 0.5
HEARTBEAT_TTL_MS = 1500


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc, Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19]  # field 22 of proc(5), counted after the command name


def this_process() -> str:
    """This process as an owner on this host: `host:pid:start` (worked out once per process, not
    on each claim: a forked worker has a pid of its own, so the pid is the key)."""
    return _owner_of(os.getpid())


@functools.lru_cache(maxsize=4)
def _owner_of(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '-'}"


def process_alive(owner: str) -> bool:
    """Whether the process named by `this_process()` still runs. A process of another host, or
    one that cannot be told, counts as alive: then the token is refused, as it was before."""
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now_started = _start_time(pid)
    return started in ("-", "") or now_started is None or now_started == started


class RedisHeartbeat:
    """This process's heartbeat key in Redis; a new owner id after a fork (gunicorn workers)."""

    PREFIX = "lumbar-cds:owner:"

    def __init__(self, redis_client, errors: tuple[type[BaseException], ...]):
        self._redis = redis_client
        self._errors = errors
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.owner = ""

    def key(self, owner: str) -> str:
        return self.PREFIX + owner

    def ensure(self) -> str:
        """This process's owner id, its heartbeat thread started on first use (and after a fork)."""
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self.owner = uuid.uuid4().hex
                threading.Thread(target=self._beat, args=(self._pid,), name="replay-heartbeat",
                                 daemon=True).start()
            return self.owner

    def _beat(self, pid: int) -> None:
        while self._pid == pid:  # (a forked child starts a beat of its own)
            try:
                self._redis.set(self.key(self.owner), b"1", px=HEARTBEAT_TTL_MS)
            except self._errors:
                pass  # Redis away: claims fail closed meanwhile; the beat resumes with it
            time.sleep(HEARTBEAT_INTERVAL_SECONDS)

    def alive(self, owner: str) -> bool:
        return bool(self._redis.exists(self.key(owner)))
