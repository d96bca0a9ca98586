"""Shared fixtures: the app, its test client, a real loopback FHIR server, and the PostgreSQL
and Redis servers of the session (TEST_DATABASE_URL / TEST_REDIS_URL, else throwaway servers
started from the machine's binaries: tests/support/throwaway.py)."""

from __future__ import annotations

import logging
import os
import uuid

import pytest

from cds_service.app import create_app
from cds_service.logs import LOGGER_NAME
from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer
from tests.support.throwaway import ThrowawayPostgres, ThrowawayRedis, postgres_bin, redis_binary


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


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server for the session: TEST_DATABASE_URL, else a throwaway one (skipped, with
    the reason, only where the machine has no PostgreSQL binaries)."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no TEST_DATABASE_URL and no PostgreSQL server binaries (initdb, pg_ctl): "
                    "install Debian's postgresql to run the PostgreSQL tests")
    server = ThrowawayPostgres(bin_dir).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url():
    """A Redis server for the session: TEST_REDIS_URL, else a throwaway redis-server."""
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield given
        return
    binary = redis_binary()
    if binary is None:
        pytest.skip("no TEST_REDIS_URL and no redis-server: install Debian's redis-server to run the Redis tests")
    server = ThrowawayRedis(binary).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_url):
    """A URL to a schema of its own on the session's PostgreSQL, dropped after the test."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"lcds_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
