"""A screen store that cannot be reached never takes the hook answer down (docs/clinical-specification.md
§12.6): the card goes out without the link, the store is left alone for a pause instead of
costing a connect timeout on every call, and the page says 503 in plain words."""

from __future__ import annotations

import logging
import socket

import pytest

from cds_service.app import create_app
from cds_service.logs import LOGGER_NAME
from tests.screen.support import lbp, post_hook, request_for, screen_link


@pytest.fixture
def down_app(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app({"TESTING": True, "DATABASE_URL": f"postgresql+psycopg://gov:pw@127.0.0.1:{port}/none",
                      "DATABASE_PATH": str(tmp_path / "instance" / "store.sqlite3")})
    yield app
    app.extensions["lumbar_cds_shutdown"]()


def test_hook_answers_without_the_link_and_pauses_the_store(down_app, caplog):
    client = down_app.test_client()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        for pid in ("pat-down-1", "pat-down-2", "pat-down-3"):
            response = post_hook(client, request_for(pid, lbp(pid)))
            assert [c["source"]["topic"]["code"] for c in response["cards"]] == ["symptom-duration-unknown"]
            assert screen_link(response) is None
    tried = [r for r in caplog.records if r.getMessage() in ("screen answers unavailable", "screen not offered")]
    assert len(tried) == 1  # the first call found the store down; the next two left it alone


def test_the_page_says_503_when_its_store_is_down(down_app):
    service = down_app.extensions["lumbar_cds_screen"]
    handle = service.signer.issue(service.signer.new_session_id())
    page = down_app.test_client().get(f"/screen/{handle}")
    assert page.status_code == 503
    assert "cannot be opened right now" in page.get_data(as_text=True)
