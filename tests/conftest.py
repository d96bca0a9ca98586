"""Shared fixtures: the app, its test client, and a real loopback FHIR server."""

from __future__ import annotations

import logging

import pytest

from cds_service.app import create_app
from cds_service.logs import LOGGER_NAME
from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer


@pytest.fixture
def app_config(tmp_path):
    """Settings for a test app: embedded store in the test's own folder."""
    return {"TESTING": True, "DATABASE_PATH": str(tmp_path / "store.sqlite3")}


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    yield app
    app.extensions["lumbar_cds_shutdown"]()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def fhir_server():
    with LoopbackFhirServer(FhirServerBehaviour()) as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def quiet_shutdown_logs():
    """Apps that tests build without shutting them down are closed by atexit, after pytest's
    summary; their "writer closed" lines would bury the summary (which CI reads last)."""
    yield
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
