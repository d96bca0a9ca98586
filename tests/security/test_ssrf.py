"""The SSRF guard: link-local and cloud metadata hosts are never called, named or resolved.

For fhirServer (400 `LCDS-1009` before any call) and for key-set URLs (refused at configuration
and before a fetch). A host name is resolved with `socket.getaddrinfo`; the tests make a name
resolve to a metadata address by answering getaddrinfo for that one name (no resolver on this
machine knows such a name). And the production rule: auth on without a FHIR allowlist warns at
start-up, and `lumbar-cds serve --require-fhir-allowlist` (the Docker image's command) refuses to
start, with one line and exit 2.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.security import outbound
from cds_service.security.issuers import TrustConfigError
from cds_service.security.jwks import JwksError, check_jwks_url, fetch_key_set

from .jwt_support import EHR_ISS, write_issuers
from .requests_support import SERVICE, order_select

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "c"}
REFUSED = [
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.10.1/fhir",
    "https://[fe80::1]/fhir",
    "https://[fd00:ec2::254]/",
    "https://[::ffff:169.254.169.254]/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://metadata/fhir",
    "https://METADATA.google.internal./x",
]


@pytest.fixture
def resolves_to_metadata(monkeypatch):
    """`imds.example.test` resolves to the AWS metadata address; every other name as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "imds.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    outbound._cache.clear()
    yield
    outbound._cache.clear()


@pytest.mark.parametrize("url", REFUSED)
def test_link_local_and_metadata_fhir_servers_are_refused(client, url):
    body = order_select(None, fhirServer=url, fhirAuthorization=AUTH)
    response = client.post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("LCDS-1009", "fhirServer")
    assert "link-local or cloud metadata" in error["message"]


def test_refused_even_when_the_origin_is_allowlisted(make_app):
    client = make_app(FHIR_ALLOWED_ORIGINS="https://169.254.169.254").test_client()
    body = order_select(None, fhirServer="https://169.254.169.254/fhir", fhirAuthorization=AUTH)
    assert client.post(f"/cds-services/{SERVICE}", json=body).status_code == 400


def test_a_name_resolving_to_a_metadata_address_is_refused(client, resolves_to_metadata):
    body = order_select(None, fhirServer="https://imds.example.test/fhir", fhirAuthorization=AUTH)
    response = client.post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code == 400
    assert "must not resolve to a link-local or cloud metadata address" in response.get_json()["error"]["message"]
    assert check_jwks_url("https://imds.example.test/jwks.json")


def test_a_name_that_does_not_resolve_is_not_refused_here():
    assert outbound.check_fhir_server("https://no-such-host.invalid/fhir", (), ()) is None


def test_a_name_off_the_allowlist_is_refused_without_a_dns_query(monkeypatch):
    asked = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: asked.append(host) or [])
    why = outbound.check_fhir_server("https://elsewhere.example/fhir", (), ("https://fhir.example.org",))
    assert why == "origin is not on the allowlist" and asked == []


@pytest.mark.parametrize("url", ["https://169.254.169.254/jwks.json", "https://metadata.google.internal/jwks"])
def test_key_set_urls_on_link_local_or_metadata_hosts_are_refused(tmp_path, make_app, url):
    assert "link-local or cloud metadata" in check_jwks_url(url)
    with pytest.raises(JwksError):
        fetch_key_set(url, 1.0)  # refused before any connection
    issuers = write_issuers(tmp_path / "issuers.yaml", [{"iss": EHR_ISS, "jwks_url": url}])
    with pytest.raises(TrustConfigError, match="link-local or cloud metadata"):
        make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers)


def test_auth_on_without_a_fhir_allowlist_warns_at_start_up(make_app, ehr_issuers_file, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    from cds_service import app as app_module

    app_module._warned.clear()
    make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file)
    warnings = [r for r in caplog.records if "CDS_FHIR_ALLOWED_ORIGINS is empty" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    caplog.clear()
    app_module._warned.clear()
    make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file,
             FHIR_ALLOWED_ORIGINS="https://fhir.example.org")
    assert not [r for r in caplog.records if "CDS_FHIR_ALLOWED_ORIGINS is empty" in r.getMessage()]


def test_serve_with_require_fhir_allowlist_refuses_to_start_without_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env.update(CDS_AUTH_REQUIRED="true", CDS_DATABASE_PATH=str(tmp_path / "s.sqlite3"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve", "--require-fhir-allowlist"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CDS_FHIR_ALLOWED_ORIGINS" in lines[0] and "refusing to start" in lines[0]


def test_the_docker_image_serves_with_the_allowlist_rule():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-fhir-allowlist" in dockerfile
