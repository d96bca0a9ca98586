"""JWT authentication of CDS clients (CDS Hooks 2.0 "Trusting CDS Clients"), end to end.

Each refused token must give 401, `WWW-Authenticate: Bearer` and a body without any detail,
while the log names the real reason (asserted, so each case proves the check it is about fired).
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from cds_service.security.issuers import SANDBOX_ISSUER, SANDBOX_JKU, TrustConfigError

from .jwt_support import (
    BASE,
    EHR_ISS,
    bearer,
    claims,
    ec_key,
    hs256_with_public_key,
    jwks,
    sign,
    unsigned,
    write_issuers,
)
from .requests_support import SERVICE, full_prefetch, order_select

DISCOVERY = f"{BASE}/cds-services"
SERVICE_URL = f"{BASE}/cds-services/{SERVICE}"
FEEDBACK_URL = f"{SERVICE_URL}/feedback"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"


def assert_refused(response, caplog=None, reason: str | None = None):
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    # No detail of why: the same body for every failure, no field, no hint.
    assert response.get_json() == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login",
                   "details": {"coding": [{"system": "urn:lumbar-imaging-cds:error-code", "code": "LCDS-1401"}],
                               "text": "Authentication required."}}],
        "error": {"code": "LCDS-1401", "status": 401, "message": "Authentication required."},
    }
    if reason is not None:
        reasons = [
            r.fields.get("reason", "") for r in caplog.records
            if r.getMessage() == "client authentication failed"
        ]
        assert any(reason in r for r in reasons), reasons


# --- accepted -------------------------------------------------------------------------------

def test_es384_token_accepted_on_discovery(auth_client, ec):
    response = auth_client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY))))
    assert response.status_code == 200
    assert {s["id"] for s in response.get_json()["services"]} >= {SERVICE}


def test_rs384_token_accepted_on_discovery(auth_client, rsa):
    response = auth_client.get("/cds-services", headers=bearer(sign(rsa, claims(DISCOVERY))))
    assert response.status_code == 200


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_token_accepted_on_a_service_call(auth_client, ec, rsa, alg):
    key = ec if alg == "ES384" else rsa
    response = auth_client.post(
        f"/cds-services/{SERVICE}", json=order_select(full_prefetch()),
        headers=bearer(sign(key, claims(SERVICE_URL))),
    )
    assert response.status_code == 200
    assert "cards" in response.get_json()


def test_other_asymmetric_algorithms_accepted(auth_client, rsa, make_app, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec as ec_mod

    from .jwt_support import KeyPair

    es256 = KeyPair("p256", "ES256", ec_mod.generate_private_key(ec_mod.SECP256R1()))
    es512 = KeyPair("p521", "ES512", ec_mod.generate_private_key(ec_mod.SECP521R1()))
    rs256 = KeyPair("rs256", "RS256", rsa.private_key)
    rs512 = KeyPair("rs512", "RS512", rsa.private_key)
    (tmp_path / "more.json").write_text(json.dumps(jwks(es256, es512, rs256, rs512)))
    issuers = write_issuers(tmp_path / "more.yaml", [{"iss": EHR_ISS, "jwks_file": str(tmp_path / "more.json")}])
    client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers).test_client()
    for key in (es256, es512, rs256, rs512):
        assert client.get("/cds-services", headers=bearer(sign(key, claims(DISCOVERY)))).status_code == 200, key.alg


def test_feedback_accepts_the_feedback_url_or_the_service_url_as_aud(auth_client, ec, caplog):
    body = {"feedback": []}
    for aud in (FEEDBACK_URL, SERVICE_URL):
        response = auth_client.post(
            f"/cds-services/{SERVICE}/feedback", json=body, headers=bearer(sign(ec, claims(aud)))
        )
        # Past authentication: whatever the feedback endpoint answers, it is not a 401.
        assert response.status_code != 401, aud
        assert "WWW-Authenticate" not in response.headers
    response = auth_client.post(
        f"/cds-services/{SERVICE}/feedback", json=body, headers=bearer(sign(ec, claims(DISCOVERY)))
    )
    assert_refused(response, caplog, "aud is not the URL that was called")


def test_preflight_and_healthz_and_openapi_need_no_token(auth_client):
    preflight = auth_client.options(
        f"/cds-services/{SERVICE}",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert auth_client.get("/healthz").status_code == 200
    assert auth_client.get("/openapi.yaml").status_code == 200


def test_a_401_still_carries_cors_headers_for_browser_clients(auth_client):
    # The sandbox runs in a browser: without CORS headers it would see a network error, not 401.
    response = auth_client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.status_code == 401
    assert response.headers.get("Access-Control-Allow-Origin") in {"*", "https://sandbox.cds-hooks.org"}


def test_auth_off_by_default(make_app):
    assert make_app().test_client().get("/cds-services").status_code == 200


def test_public_base_url_is_the_audience_behind_a_proxy(make_app, ehr_issuers_file, ec, caplog):
    client = make_app(
        AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file, PUBLIC_BASE_URL="https://cds.example.org/"
    ).test_client()
    ok = client.get("/cds-services", headers=bearer(sign(ec, claims("https://cds.example.org/cds-services"))))
    assert ok.status_code == 200
    # The internal URL (what a proxy forwards to) is no longer an acceptable audience.
    assert_refused(client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY)))), caplog, "aud")


# --- refused ---------------------------------------------------------------------------------

def refused_cases(ec, rsa):
    now = int(time.time())
    other = ec_key("stranger")
    return {
        "expired": (sign(ec, claims(DISCOVERY, iat=now - 600, exp=now - 120)), "token expired"),
        "future iat": (sign(ec, claims(DISCOVERY, iat=now + 600)), "issued in the future"),
        "wrong aud": (sign(ec, claims(f"{BASE}/cds-services/another-service")), "aud is not the URL"),
        "aud of another host": (sign(ec, claims("https://elsewhere.example/cds-services")), "aud is not the URL"),
        "unknown iss": (sign(ec, claims(DISCOVERY, iss="https://evil.example")), "untrusted issuer"),
        "unknown kid": (sign(other, claims(DISCOVERY)), "unknown kid"),
        "known kid, other key": (sign(ec_key(ec.kid), claims(DISCOVERY)), "bad signature"),
        "jku off the allowlist": (
            sign(ec, claims(DISCOVERY), jku="https://evil.example/jwks.json"), "jku is not on the issuer's allowlist"
        ),
        "alg none": (unsigned(ec, claims(DISCOVERY)), "algorithm not allowed"),
        "HS256 with the public key": (hs256_with_public_key(ec, claims(DISCOVERY)), "algorithm not allowed"),
        "HS256 with the RSA public key": (hs256_with_public_key(rsa, claims(DISCOVERY)), "algorithm not allowed"),
        "no kid": (sign(ec, claims(DISCOVERY), kid=None), "no kid"),
        "no jti": (sign(ec, claims(DISCOVERY, jti=None)), "missing claim jti"),
        "no exp": (sign(ec, claims(DISCOVERY, exp=None)), "missing claim exp"),
        "exp a day away": (sign(ec, claims(DISCOVERY, exp=now + 86_400)), "exp is more than an hour away"),
        "RS384 naming an EC key": (sign(rsa, claims(DISCOVERY), alg="RS384", kid=ec.kid), "does not fit"),
        "garbage": ("not-a-jwt", "malformed token"),
        "garbage in three parts": ("eyJhbGciOi.eyJpc3Mi.c2ln", "malformed token"),
    }


CASE_IDS = [
    "expired", "future iat", "wrong aud", "aud of another host", "unknown iss", "unknown kid",
    "known kid, other key", "jku off the allowlist", "alg none", "HS256 with the public key",
    "HS256 with the RSA public key", "no kid", "no jti", "no exp", "exp a day away", "RS384 naming an EC key", "garbage",
    "garbage in three parts",
]


@pytest.mark.parametrize("case", CASE_IDS)
def test_refused_token_gives_401_without_detail(auth_client, ec, rsa, caplog, case):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    token, reason = refused_cases(ec, rsa)[case]
    response = auth_client.get("/cds-services", headers=bearer(token))
    assert_refused(response, caplog, reason)
    # The reason is logged, the token never.
    assert token not in caplog.text
    assert all(token not in str(r.__dict__) for r in caplog.records)


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "no Authorization header"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "scheme is not bearer"),
        ({"Authorization": "Bearer"}, "no single token"),
        ({"Authorization": "Bearer a b"}, "no single token"),
        ({"Authorization": "Bearer " + "a" * 20_000}, "token too long"),
    ],
    ids=["missing header", "basic auth", "empty bearer", "two tokens", "oversized token"],
)
def test_missing_or_malformed_header_gives_401(auth_client, caplog, headers, reason):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    assert_refused(auth_client.get("/cds-services", headers=headers), caplog, reason)


@pytest.mark.parametrize("method, path", [
    ("GET", "/cds-services"),
    ("POST", f"/cds-services/{SERVICE}"),
    ("POST", f"/cds-services/{SERVICE}/feedback"),
    ("POST", "/cds-services/no-such-service"),
])
def test_every_cds_endpoint_requires_the_token(auth_client, method, path):
    response = auth_client.open(path, method=method, json=order_select(full_prefetch()))
    assert_refused(response)


def test_service_call_with_a_discovery_token_is_refused(auth_client, ec, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    response = auth_client.post(
        f"/cds-services/{SERVICE}", json=order_select(full_prefetch()), headers=bearer(sign(ec, claims(DISCOVERY)))
    )
    assert_refused(response, caplog, "aud is not the URL that was called")


def test_replayed_jti_is_refused(auth_client, ec, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    token = sign(ec, claims(DISCOVERY))
    assert auth_client.get("/cds-services", headers=bearer(token)).status_code == 200
    assert_refused(auth_client.get("/cds-services", headers=bearer(token)), caplog, "jti replayed")
    # A new token with a fresh jti from the same client is fine.
    assert auth_client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY)))).status_code == 200


def test_same_jti_reused_in_a_new_token_is_refused(auth_client, ec, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    first = claims(DISCOVERY)
    assert auth_client.get("/cds-services", headers=bearer(sign(ec, first))).status_code == 200
    again = claims(DISCOVERY, jti=first["jti"], exp=first["exp"] + 60)
    assert_refused(auth_client.get("/cds-services", headers=bearer(sign(ec, again))), caplog, "jti replayed")


def test_tenant_is_checked_when_the_issuer_names_one(make_app, tmp_path, ec, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    (tmp_path / "k.json").write_text(json.dumps(jwks(ec)))
    issuers = write_issuers(tmp_path / "t.yaml", [{"iss": EHR_ISS, "jwks_file": "k.json", "tenant": "hospital-a"}])
    client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers).test_client()
    assert client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY, tenant="hospital-a")))).status_code == 200
    assert_refused(
        client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY, tenant="hospital-b")))), caplog, "tenant"
    )
    assert_refused(client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY)))), caplog, "tenant")


# --- the sandbox preset -----------------------------------------------------------------------

def test_sandbox_preset_is_loaded_by_default(auth_app):
    issuers = auth_app.extensions["lumbar_cds_auth"].issuers
    sandbox = issuers[SANDBOX_ISSUER]
    assert SANDBOX_KID in sandbox.static_keys
    assert sandbox.static_keys[SANDBOX_KID]["crv"] == "P-384"
    assert SANDBOX_JKU in sandbox.jku_allowlist
    assert EHR_ISS in issuers  # the issuers file adds to the preset


def test_a_local_key_cannot_pass_as_the_sandbox(auth_client, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    impostor = ec_key(SANDBOX_KID)  # same kid, our own P-384 key
    token = sign(impostor, claims(DISCOVERY, iss=SANDBOX_ISSUER), jku=SANDBOX_JKU, typ="JWT")
    assert_refused(auth_client.get("/cds-services", headers=bearer(token)), caplog, "bad signature")


def test_sandbox_untrusted_when_preset_off(make_app, caplog):
    caplog.set_level(logging.INFO, logger="lumbar_cds")
    app = make_app(AUTH_REQUIRED=True, TRUST_SANDBOX=False)
    assert app.extensions["lumbar_cds_auth"].issuers == {}
    impostor = ec_key(SANDBOX_KID)
    token = sign(impostor, claims(DISCOVERY, iss=SANDBOX_ISSUER), jku=SANDBOX_JKU)
    assert_refused(app.test_client().get("/cds-services", headers=bearer(token)), caplog, "untrusted issuer")


# --- configuration errors fail at start-up -----------------------------------------------------

@pytest.mark.parametrize(
    "entry, message",
    [
        ({"iss": EHR_ISS}, "give jwks_file, jwks_url or jku_allowlist"),
        ({"iss": EHR_ISS, "jwks_url": "http://keys.example.org/jwks.json"}, "must use https"),
        ({"iss": EHR_ISS, "jku_allowlist": ["ftp://keys.example.org/jwks.json"]}, "https"),
        ({"iss": EHR_ISS, "jwks_file": "missing.json"}, "cannot read key set file"),
        ({"jwks_url": "https://keys.example.org/jwks.json"}, "'iss' is required"),
        ({"iss": EHR_ISS, "jwks_url": "https://k.example/j", "typo": 1}, "unknown keys"),
    ],
)
def test_bad_issuers_file_refuses_to_start(make_app, tmp_path, entry, message):
    issuers = write_issuers(tmp_path / "bad.yaml", [entry])
    with pytest.raises(TrustConfigError, match=message):
        make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=issuers)


def test_issuers_file_may_be_json(make_app, tmp_path, ec):
    (tmp_path / "k.json").write_text(json.dumps(jwks(ec)))
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": EHR_ISS, "jwks_file": "k.json"}]))
    client = make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=str(path), TRUST_SANDBOX=False).test_client()
    assert client.get("/cds-services", headers=bearer(sign(ec, claims(DISCOVERY)))).status_code == 200
