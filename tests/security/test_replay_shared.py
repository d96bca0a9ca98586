"""Replay protection holds across the workers of a host, and across Redis restarts.

- Default configuration (no Redis): the used jtis live in an SQLite file in the instance folder,
  shared by every worker process: against `lumbar-cds serve` with 2 workers and auth on, 24
  concurrent sends of one token are accepted exactly once.
- The SQLite store itself: two stores on one file (two processes' view) see each other's jtis,
  an expired jti is forgotten and its rows purged.
- With Redis that keeps nothing across a restart (the local test Redis runs with no AOF, as
  `.ci/run` starts it), a token issued before the Redis server started is refused.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cds_service.security.replay import RedisReplayStore, ReplayUnknown, SqliteReplayStore

from ..cli.served import Served
from .jwt_support import BASE, EHR_ISS, bearer, claims, ec_key, jwks, sign, write_issuers

SENDS = 24


def test_one_token_is_accepted_once_across_two_served_workers(tmp_path):
    key = ec_key()
    (tmp_path / "ehr-jwks.json").write_text(json.dumps(jwks(key)))
    issuers = write_issuers(tmp_path / "issuers.yaml", [{"iss": EHR_ISS, "jwks_file": "ehr-jwks.json"}])
    env = {"CDS_AUTH_REQUIRED": "true", "CDS_TRUSTED_ISSUERS_FILE": issuers, "CDS_TRUST_SANDBOX": "false"}
    with Served(tmp_path, env=env, workers=2) as served:
        discovery = f"{served.base}/cds-services"
        token = sign(key, claims(discovery))
        # One connection per send, opened a little apart so that both workers accept some (a
        # burst of connects all lands on whichever worker wakes first); then all 24 send the
        # token at the same moment.
        connections = []
        for _ in range(SENDS):
            connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
            connection.connect()
            connections.append(connection)
            time.sleep(0.03)
        barrier = threading.Barrier(SENDS)

        def send(connection):
            barrier.wait()
            connection.request("GET", "/cds-services", headers=bearer(token))
            status = connection.getresponse().status
            connection.close()
            return status

        with ThreadPoolExecutor(max_workers=SENDS) as pool:
            statuses = list(pool.map(send, connections))
        # A fresh token is still accepted: the store refuses replays, not the issuer.
        fresh = requests.get(discovery, headers=bearer(sign(key, claims(discovery))), timeout=20)
        log = served.stderr
    pids = {line.split('"pid":')[1].split(",")[0] for line in log.splitlines()
            if '"event":"request"' in line and '"path":"/cds-services"' in line}
    assert len(pids) == 2, "the sends must reach both workers for this test to prove anything"
    assert sorted(statuses) == [200] + [401] * (SENDS - 1), statuses
    assert fresh.status_code == 200
    assert "replay store is per process" not in log
    assert '"replay_store":"sqlite"' in log


def test_sqlite_store_is_shared_by_every_store_on_the_file_and_forgets_expired_jtis(tmp_path):
    now = [1_000_000.0]
    path = tmp_path / "instance" / "replay.sqlite3"
    first = SqliteReplayStore(path, clock=lambda: now[0])
    second = SqliteReplayStore(path, clock=lambda: now[0])  # as another worker opens it
    try:
        assert first.first_use(EHR_ISS, "a", 60) is True
        assert second.first_use(EHR_ISS, "a", 60) is False
        assert second.first_use("https://other.example", "a", 60) is True  # unique per issuer
        now[0] += 61
        assert second.first_use(EHR_ISS, "a", 60) is True  # expired: the token it guarded is dead
        now[0] += SqliteReplayStore.PURGE_INTERVAL_SECONDS + 61
        assert first.first_use(EHR_ISS, "b", 60) is True  # purges the expired rows
        rows = first._connection().execute("SELECT count(*) FROM lcds_replay").fetchone()[0]
        assert rows == 1 and len(first) == 1
    finally:
        first.close()
        second.close()


def test_auth_app_uses_the_shared_file_by_default_and_warns_only_when_per_process(make_app, ehr_issuers_file,
                                                                                   tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    app = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file)
    assert isinstance(app.extensions["lumbar_cds_auth"].replay_store, SqliteReplayStore)
    assert not any("per process" in r.getMessage() for r in caplog.records)


@pytest.mark.redis
def test_redis_without_persistence_refuses_a_token_issued_before_it_started(redis_url):
    store = RedisReplayStore(redis_url)
    try:
        started = store.memory_since()
        assert started <= time.time()
        with pytest.raises(ReplayUnknown):
            store.first_use(EHR_ISS, uuid.uuid4().hex, 120, issued_at=started - 60)
        assert store.first_use(EHR_ISS, uuid.uuid4().hex, 120, issued_at=time.time()) is True
    finally:
        store.close()


@pytest.mark.redis
def test_a_token_older_than_the_redis_server_is_refused_by_the_app(make_app, ehr_issuers_file, ec, caplog, redis_url):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file, REDIS_URL=redis_url).test_client()
    store = RedisReplayStore(redis_url)
    try:
        started = store.memory_since()
    finally:
        store.close()
    now = int(time.time())
    old = sign(ec, claims(f"{BASE}/cds-services", iat=int(started) - 120, exp=now + 300))
    assert client.get("/cds-services", headers=bearer(old)).status_code == 401
    reasons = [str(getattr(r, "fields", {}).get("reason", "")) for r in caplog.records]
    assert any(r.startswith("jti cannot be checked") for r in reasons), reasons
    fresh = sign(ec, claims(f"{BASE}/cds-services"))
    assert client.get("/cds-services", headers=bearer(fresh)).status_code == 200
