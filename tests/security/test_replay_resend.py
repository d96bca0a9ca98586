"""The replay stores' resend rule: a jti taken by a call that was never answered may be used again
by the same request once the process that took it is dead; nothing else is accepted twice.

Each case takes the jti in a real child process (as another worker or replica would), then tries
it here: the SQLite store (one host's file) and the Redis store (several hosts). The end-to-end
run through nginx is tests/deploy/test_resend.py.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from cds_service.security.replay import (
    RedisReplayStore,
    SqliteReplayStore,
    replay_key,
    request_fingerprint,
)

ISS = "https://ehr.example.test"
BODY = b'{"hook": "order-sign", "hookInstance": "h-1"}'
SAME = request_fingerprint("POST", "/cds-services/lumbar-imaging-order-sign", BODY)
OTHER = request_fingerprint("POST", "/cds-services/lumbar-imaging-order-sign", BODY.replace(b"h-1", b"h-2"))

CHILD = """
import sys, time
from cds_service.security.replay import RedisReplayStore, SqliteReplayStore
kind, where, jti, fingerprint, then = sys.argv[1:6]
store = SqliteReplayStore(where) if kind == "sqlite" else RedisReplayStore(where)
assert store.first_use({iss!r}, jti, 120, time.time(), fingerprint)
if then == "answer":
    store.complete({iss!r}, jti)
print("taken", flush=True)
if then != "answer":
    time.sleep(120)  # in flight until killed
"""


def take_in_child(kind: str, where: str, jti: str, then: str) -> subprocess.Popen:
    """A process that takes `jti` with the request SAME, then answers it and exits, or waits."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD.format(iss=ISS)), kind, where, jti, SAME, then],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "taken"
    if then == "answer":
        child.wait(30)
    return child


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(30)


@pytest.fixture(params=["sqlite", "redis"])
def stores(request, tmp_path):
    """(kind, where, a store of this process)"""
    if request.param == "sqlite":
        where = str(tmp_path / "replay.sqlite3")
        store = SqliteReplayStore(where)
    else:
        where = request.getfixturevalue("redis_url")
        store = RedisReplayStore(where)
    yield request.param, where, store
    store.close()


def test_the_same_request_is_accepted_once_more_when_its_first_process_died_unanswered(stores):
    kind, where, store = stores
    jti = uuid.uuid4().hex
    kill(take_in_child(kind, where, jti, then="wait"))
    assert store.first_use(ISS, jti, 120, time.time(), OTHER) is False  # another body: a replay
    assert store.first_use(ISS, jti, 120, time.time(), SAME) is True  # the resend
    # Now this live process holds it: a second resend is refused, and after the answer too.
    assert store.first_use(ISS, jti, 120, time.time(), SAME) is False
    store.complete(ISS, jti)
    assert store.first_use(ISS, jti, 120, time.time(), SAME) is False


def test_a_resend_is_refused_while_the_first_process_lives(stores):
    kind, where, store = stores
    jti = uuid.uuid4().hex
    child = take_in_child(kind, where, jti, then="wait")
    try:
        started = time.monotonic()
        assert store.first_use(ISS, jti, 120, time.time(), SAME) is False
        waited = time.monotonic() - started
    finally:
        kill(child)
    # (Redis waits for the live owner's heartbeat up to OWNER_WAIT_SECONDS; a bound, not a timing test)
    assert waited < 10


def test_an_answered_call_is_never_accepted_again_even_after_its_process_exits(stores):
    kind, where, store = stores
    jti = uuid.uuid4().hex
    take_in_child(kind, where, jti, then="answer")
    assert store.first_use(ISS, jti, 120, time.time(), SAME) is False


def test_without_a_fingerprint_a_taken_jti_is_refused(stores):
    kind, where, store = stores
    jti = uuid.uuid4().hex
    kill(take_in_child(kind, where, jti, then="wait"))
    assert store.first_use(ISS, jti, 120, time.time()) is False


def test_a_replay_file_of_the_old_shape_is_read_and_its_rows_count_as_answered(tmp_path):
    path = tmp_path / "replay.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE lcds_replay (key TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
        connection.execute("INSERT INTO lcds_replay VALUES (?, ?)", (replay_key(ISS, "old"), time.time() + 300))
    store = SqliteReplayStore(path)
    try:
        assert store.first_use(ISS, "old", 120, time.time(), SAME) is False
        assert store.first_use(ISS, "new", 120, time.time(), SAME) is True
    finally:
        store.close()


@pytest.mark.redis
def test_a_redis_key_of_the_old_shape_counts_as_answered(redis_url):
    store = RedisReplayStore(redis_url)
    jti = uuid.uuid4().hex
    try:
        store._redis.set(RedisReplayStore.PREFIX + replay_key(ISS, jti), b"1", ex=120)
        assert store.first_use(ISS, jti, 120, time.time(), SAME) is False
    finally:
        store.close()
