"""Key sets fetched over HTTP: the jku allowlist, configured jwks_url, refresh budget, timeouts.

The key sets are served by a real loopback HTTP server (plain http is allowed for loopback
only, as for fhirServer). The refresh budget ("at most once a minute per issuer") is tested by
moving the key cache's clock, never by waiting.
"""

from __future__ import annotations

import logging

import pytest

from cds_service.security.issuers import TrustConfigError
from cds_service.security.jwks import JwksError, check_jwks_url, fetch_key_set

from .jwt_support import (
    BASE,
    JKU_ISS,
    JwksServer,
    bearer,
    claims,
    ec_key,
    jwks,
    rsa_key,
    sign,
    write_issuers,
)

DISCOVERY = f"{BASE}/cds-services"


def log_reasons(caplog) -> list[str]:
    return [str(getattr(r, "fields", {}).get("reason", "")) for r in caplog.records]


@pytest.fixture
def key():
    return ec_key()


@pytest.fixture
def jwks_server(key):
    with JwksServer(jwks(key)) as server:
        yield server


@pytest.fixture
def jku_client(make_app, tmp_path, jwks_server):
    issuers = write_issuers(tmp_path / "jku.yaml", [{"iss": JKU_ISS, "jku_allowlist": [jwks_server.url]}])
    app = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers, JWKS_TIMEOUT=2.0)
    return app, app.test_client()


def test_allowlisted_jku_is_fetched_and_cached(jku_client, jwks_server, key):
    _, client = jku_client
    for _ in range(3):
        token = sign(key, claims(DISCOVERY, iss=JKU_ISS), jku=jwks_server.url)
        assert client.get("/cds-services", headers=bearer(token)).status_code == 200
    assert jwks_server.hits == 1  # fetched once, then served from the cache


def test_jku_off_the_allowlist_is_never_fetched(jku_client, jwks_server, key, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    _, client = jku_client
    with JwksServer(jwks(key)) as rogue:
        token = sign(key, claims(DISCOVERY, iss=JKU_ISS), jku=rogue.url)
        response = client.get("/cds-services", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert rogue.hits == 0
    assert jwks_server.hits == 0
    assert "jku is not on the issuer's allowlist" in log_reasons(caplog)


def test_unknown_kid_refreshes_at_most_once_a_minute(jku_client, jwks_server, key, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    app, client = jku_client
    now = [1000.0]
    app.extensions["lumbar_cds_auth"].remote_keys.clock = lambda: now[0]

    def call(signing_key):
        token = sign(signing_key, claims(DISCOVERY, iss=JKU_ISS), jku=jwks_server.url)
        return client.get("/cds-services", headers=bearer(token)).status_code

    assert call(key) == 200
    assert jwks_server.hits == 1

    # The client rotates to a new key and publishes it.
    rotated = rsa_key()
    jwks_server.key_set = jwks(key, rotated)
    now[0] += 10
    # Within the minute: no new fetch however many tokens name unknown kids.
    assert call(rotated) == 401
    assert call(ec_key()) == 401
    assert jwks_server.hits == 1
    assert "unknown kid" in log_reasons(caplog)

    now[0] += 60
    assert call(rotated) == 200  # a minute later the refresh finds the new key
    assert jwks_server.hits == 2
    # A made-up kid right after spends no new fetch.
    assert call(ec_key()) == 401
    assert jwks_server.hits == 2


def test_configured_jwks_url_is_used_without_jku(make_app, tmp_path, key):
    with JwksServer(jwks(key)) as server:
        issuers = write_issuers(tmp_path / "u.yaml", [{"iss": JKU_ISS, "jwks_url": server.url}])
        client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers).test_client()
        assert client.get("/cds-services", headers=bearer(sign(key, claims(DISCOVERY, iss=JKU_ISS)))).status_code == 200
        # A jku naming the configured jwks_url is accepted as well.
        token = sign(key, claims(DISCOVERY, iss=JKU_ISS), jku=server.url)
        assert client.get("/cds-services", headers=bearer(token)).status_code == 200
        assert server.hits == 1


def test_slow_key_set_gives_401_and_logs_the_timeout(make_app, tmp_path, key, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    with JwksServer(jwks(key), delay_seconds=1.0) as slow:
        issuers = write_issuers(tmp_path / "s.yaml", [{"iss": JKU_ISS, "jwks_url": slow.url}])
        client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers, JWKS_TIMEOUT=0.2).test_client()
        response = client.get("/cds-services", headers=bearer(sign(key, claims(DISCOVERY, iss=JKU_ISS))))
        assert response.status_code == 401
    fetch_errors = [r.fields for r in caplog.records if r.getMessage() == "key set fetch failed"]
    assert fetch_errors and fetch_errors[0]["reason"] == "key set fetch timed out"


def test_key_set_endpoint_error_gives_401(make_app, tmp_path, key, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    with JwksServer(jwks(key), status=500) as broken:
        issuers = write_issuers(tmp_path / "b.yaml", [{"iss": JKU_ISS, "jwks_url": broken.url}])
        client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers).test_client()
        response = client.get("/cds-services", headers=bearer(sign(key, claims(DISCOVERY, iss=JKU_ISS))))
        assert response.status_code == 401
    assert "unknown kid" in log_reasons(caplog)


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://ehr.example.org/.well-known/jwks.json", True),
        ("http://127.0.0.1:8080/jwks.json", True),
        ("http://localhost/jwks.json", True),
        ("http://[::1]:9000/jwks.json", True),
        ("http://ehr.example.org/jwks.json", False),
        ("http://10.0.0.5/jwks.json", False),
        ("file:///etc/passwd", False),
        ("https://user:pw@ehr.example.org/jwks.json", False),
        ("jwks.json", False),
    ],
)
def test_key_sets_only_over_https_or_loopback(url, allowed):
    assert (check_jwks_url(url) is None) is allowed


def test_fetch_refuses_plain_http_to_a_remote_host():
    with pytest.raises(JwksError, match="must use https"):
        fetch_key_set("http://ehr.example.org/jwks.json", 1.0)


def test_issuers_file_with_http_jku_on_a_remote_host_refuses_to_start(make_app, tmp_path):
    issuers = write_issuers(tmp_path / "h.yaml", [{"iss": JKU_ISS, "jku_allowlist": ["http://ehr.example.org/jwks.json"]}])
    with pytest.raises(TrustConfigError, match="must use https"):
        make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers)
