"""A governance store that cannot be reached never takes the hook answer down; feedback and the
dashboard say 503 (retry later) instead of a 500."""

from __future__ import annotations

import socket

import pytest

from cds_service.app import create_app

from .support import SIGN, early_mri_request, overridden


@pytest.fixture
def unreachable_url():
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql+psycopg://gov:pw@127.0.0.1:{port}/none"


@pytest.fixture
def down_app(unreachable_url, tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": unreachable_url, "DASHBOARD_TOKEN": "t",
                      "DATABASE_PATH": str(tmp_path / "instance" / "store.sqlite3")})
    yield app
    app.extensions["lumbar_cds_shutdown"]()


def test_hook_answers_although_the_store_is_down(down_app):
    response = down_app.test_client().post(f"/cds-services/{SIGN}", json=early_mri_request())
    assert response.status_code == 200
    assert len(response.get_json()["cards"]) == 1
    recorder = down_app.extensions["lumbar_cds"].recorder
    recorder.flush()
    # Kept for a retry (spooled), counted and logged, not raised; nothing counted as lost.
    assert recorder.stats()["spool_pending"] == 1 and recorder.written == 0 and recorder.dropped == 0


def test_feedback_and_dashboard_say_503_when_the_store_is_down(down_app):
    client = down_app.test_client()
    response = client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [overridden("card-1")]})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "LCDS-1503"
    response = client.get("/dashboard/data", headers={"Authorization": "Bearer t"})
    assert response.status_code == 503
