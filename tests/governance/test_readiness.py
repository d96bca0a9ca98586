"""The store at start-up and `/readyz` (issue 14): a SQLite file named by CDS_DATABASE_URL is
created and migrated like the embedded default (judgements were lost with "schema is not
current" while every call answered 200); a server database stays `lumbar-cds db upgrade`;
`/healthz` stays liveness, `/readyz` says whether this replica can answer hooks (issue 23: a store
outage the spool covers is not unreadiness; a schema behind is)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text

from cds_service.app import create_app
from cds_service.cli import main as cli_main
from cds_service.governance.store.database import head_revision
from cds_service.governance.store.schema import VERSION_TABLE, judgement
from tests.support.hook_requests import full_prefetch, hook_request


@pytest.fixture
def make_app(tmp_path):
    made = []

    def factory(**settings):
        app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "default.sqlite3"), **settings})
        made.append(app)
        return app

    yield factory
    for app in made:
        app.extensions["lumbar_cds_shutdown"]()


def sign(client):
    body = hook_request("order-sign", prefetch=full_prefetch())
    response = client.post("/cds-services/lumbar-imaging-order-sign", json=body)
    assert response.status_code == 200


def test_a_sqlite_database_url_is_created_and_migrated_at_start(make_app, tmp_path):
    path = tmp_path / "new" / "folder" / "store.sqlite3"
    app = make_app(DATABASE_URL=f"sqlite:///{path}")
    assert path.is_file()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == head_revision()
        client = app.test_client()
        sign(client)
        assert app.extensions["lumbar_cds"].recorder.flush(10)
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(judgement)).scalar() == 1
        assert app.extensions["lumbar_cds"].recorder.stats()["dropped"] == 0
        assert client.get("/readyz").get_json() == {"status": "ready"}
    finally:
        engine.dispose()


def test_a_relative_sqlite_url_is_made_absolute(make_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(DATABASE_URL="sqlite:///rel/store.sqlite3")
    monkeypatch.chdir("/")
    assert (tmp_path / "rel" / "store.sqlite3").is_file()
    assert app.test_client().get("/readyz").status_code == 200


def test_readyz_is_ready_with_the_embedded_store_and_with_recording_off(make_app):
    assert make_app().test_client().get("/readyz").get_json() == {"status": "ready"}
    assert make_app(RECORD_JUDGEMENTS=False).test_client().get("/readyz").status_code == 200


def test_readyz_stays_ready_through_a_store_outage_the_spool_covers(make_app):
    """A shared store down must not take every replica out of the load balancer: the replica
    still answers hooks (the judgements wait in the spool), and /readyz says so in its body."""
    url = "postgresql+psycopg://cds:s3cret-pw@127.0.0.1:1/cds"
    app = make_app(DATABASE_URL=url, METRICS_TOKEN="m")
    client = app.test_client()
    sign(client)  # the hook calls go on
    app.extensions["lumbar_cds"].recorder.flush()
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["store"], body["judgements"]) == ("ready", "unreachable", "spooled")
    assert body["spool_pending"] == 1 and body["spool_on_disk"] is True
    assert "127.0.0.1" not in response.get_data(as_text=True) and "s3cret" not in response.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200  # liveness: the process answers
    scrape = client.get("/metrics", headers={"Authorization": "Bearer m"}).get_data(as_text=True)
    assert "lumbar_cds_store_reachable 0.0" in scrape


def test_readyz_is_not_ready_when_the_store_is_down_and_the_spool_full(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://cds:pw@127.0.0.1:1/cds", SPOOL_MAX_ROWS=1)
    client = app.test_client()
    sign(client)
    app.extensions["lumbar_cds"].recorder.flush()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "not ready",
                                   "reason": "governance store unreachable and the spool is full"}


def test_readyz_says_when_the_schema_is_behind(make_app, tmp_path):
    path = tmp_path / "behind.sqlite3"
    client = make_app(DATABASE_URL=f"sqlite:///{path}").test_client()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    finally:
        engine.dispose()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "governance store schema is not current: run `lumbar-cds db upgrade`"


@pytest.mark.postgres
def test_postgresql_stays_db_upgrade_and_readyz_follows_it(make_app, pg_url):
    client = make_app(DATABASE_URL=pg_url).test_client()
    assert client.get("/readyz").status_code == 503  # not migrated at start
    assert "not current" in client.get("/readyz").get_json()["reason"]
    assert cli_main(["db", "upgrade", "--database-url", pg_url]) == 0
    assert client.get("/readyz").get_json() == {"status": "ready"}
