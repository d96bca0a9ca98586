"""The jti replay store: in process by default, Redis when several workers/instances share it.

Redis tests run against TEST_REDIS_URL (`.ci/run` sets it), else a throwaway redis-server of the
session (tests/conftest.py `redis_url`). Each test uses fresh random jtis, so nothing is
flushed and other users of the database are left alone.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from cds_service.security.replay import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStoreError,
    replay_key,
)

from .jwt_support import BASE, bearer, claims, sign

DISCOVERY = f"{BASE}/cds-services"


def test_memory_store_forgets_a_jti_when_its_token_expires():
    now = [0.0]
    store = MemoryReplayStore(clock=lambda: now[0])
    assert store.first_use("iss", "a", 60) is True
    assert store.first_use("iss", "a", 60) is False
    assert store.first_use("other-iss", "a", 60) is True  # jti is unique per issuer
    now[0] = 61.0
    assert store.first_use("iss", "b", 60) is True
    assert len(store) == 1  # the expired entries were purged: memory stays bounded
    assert store.first_use("iss", "a", 60) is True


@pytest.mark.redis
def test_replay_refused_across_two_app_instances_sharing_redis(make_app, ehr_issuers_file, ec, caplog, redis_url):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    first = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file, REDIS_URL=redis_url).test_client()
    second = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file, REDIS_URL=redis_url).test_client()
    token = sign(ec, claims(DISCOVERY))
    assert first.get("/cds-services", headers=bearer(token)).status_code == 200
    replayed = second.get("/cds-services", headers=bearer(token))
    assert replayed.status_code == 401
    assert replayed.headers["WWW-Authenticate"] == "Bearer"
    assert any(getattr(r, "fields", {}).get("reason") == "jti replayed" for r in caplog.records)
    # Fresh tokens work on either instance.
    assert second.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY)))).status_code == 200


@pytest.mark.redis
def test_redis_store_sets_the_key_with_an_expiry(redis_url):
    store = RedisReplayStore(redis_url)
    jti = uuid.uuid4().hex
    try:
        assert store.first_use("https://ehr.example.test", jti, 120) is True
        assert store.first_use("https://ehr.example.test", jti, 120) is False
        ttl = store._redis.ttl(RedisReplayStore.PREFIX + replay_key("https://ehr.example.test", jti))
        assert 0 < ttl <= 120
    finally:
        store.close()


def test_unreachable_redis_fails_closed(make_app, ehr_issuers_file, ec, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    client = make_app(
        AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file, REDIS_URL="redis://127.0.0.1:1/0"
    ).test_client()
    response = client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY))))
    assert response.status_code == 401
    reasons = [str(getattr(r, "fields", {}).get("reason", "")) for r in caplog.records]
    assert any(r.startswith("replay store unavailable") for r in reasons), reasons


def test_redis_store_error_is_a_replay_store_error():
    store = RedisReplayStore("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(ReplayStoreError):
        store.first_use("iss", "jti", 10)
