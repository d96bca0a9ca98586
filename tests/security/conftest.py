"""Fixtures of the security tests: generated keys, a trusted-issuers file, apps with auth on."""

from __future__ import annotations

import json

import pytest

from cds_service.app import create_app

from .jwt_support import EHR_ISS, ec_key, jwks, rsa_key, write_issuers


@pytest.fixture(scope="session")
def ec():
    return ec_key()


@pytest.fixture(scope="session")
def rsa():
    return rsa_key()


@pytest.fixture
def make_app(tmp_path):
    """create_app(settings) with the test's own store; every app made is shut down after."""
    made = []

    def factory(**settings):
        config = {"TESTING": True, "DATABASE_PATH": str(tmp_path / f"store{len(made)}.sqlite3")}
        config.update(settings)
        app = create_app(config)
        made.append(app)
        return app

    yield factory
    for app in made:
        app.extensions["lumbar_cds_shutdown"]()


@pytest.fixture
def ehr_issuers_file(tmp_path, ec, rsa):
    """An issuers file trusting EHR_ISS with a key set file holding the EC and RSA public keys."""
    (tmp_path / "ehr-jwks.json").write_text(json.dumps(jwks(ec, rsa)))
    return write_issuers(tmp_path / "issuers.yaml", [{"iss": EHR_ISS, "jwks_file": "ehr-jwks.json"}])


@pytest.fixture
def auth_app(make_app, ehr_issuers_file):
    return make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS_FILE=ehr_issuers_file)


@pytest.fixture
def auth_client(auth_app):
    return auth_app.test_client()
