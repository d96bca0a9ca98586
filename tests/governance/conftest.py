"""Fixtures of the governance tests: a store on embedded SQLite or on the local PostgreSQL.

PostgreSQL tests run against TEST_DATABASE_URL when set (`.ci/run` sets it), else against a
throwaway server of the session (tests/conftest.py `postgres_url`); each test gets its own schema
(dropped afterwards), so reruns and parallel helpers never see each other's rows.
"""

from __future__ import annotations

import pytest

from cds_service.app import create_app
from cds_service.cli import main as cli_main


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_config(request, tmp_path):
    """App settings for a store on each back end; PostgreSQL migrated by `lumbar-cds db upgrade`."""
    config = {"TESTING": True, "DATABASE_PATH": str(tmp_path / "instance" / "store.sqlite3"),
              "PATIENT_HASH_KEY": "test-hash-key"}
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        assert cli_main(["db", "upgrade", "--database-url", url]) == 0
        config["DATABASE_URL"] = url
    return config


@pytest.fixture
def gov_app(store_config):
    app = create_app(store_config)
    yield app
    app.extensions["lumbar_cds_shutdown"]()


@pytest.fixture
def gov_client(gov_app):
    return gov_app.test_client()
