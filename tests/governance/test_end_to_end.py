"""Through the HTTP endpoints with the real pathway: a card is issued, recorded, fed back, reported;
silent mode decides and records but shows nothing; `lumbar-cds serve` writes the embedded store
and closes it when its worker exits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from cds_service.app import create_app
from cds_service.governance.report import build_report
from cds_service.governance.store.database import create_store_engine
from cds_service.governance.store.schema import judgement as judgement_table

from .support import SIGN, early_mri_request

TOPIC = "imaging-before-6-weeks"


def recorded(app) -> list:
    recorder = app.extensions["lumbar_cds"].recorder
    recorder.flush()
    with recorder.store.engine.connect() as connection:
        return list(connection.execute(select(judgement_table).order_by(judgement_table.c.id)))


def test_issued_card_is_recorded_fed_back_and_reported(gov_app, gov_client):
    response = gov_client.post(f"/cds-services/{SIGN}", json=early_mri_request())
    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    assert card["source"]["topic"]["code"] == TOPIC

    (row,) = recorded(gov_app)
    assert (row.card_uuid, row.topic, row.indicator, row.rating, row.shown) == (
        card["uuid"], TOPIC, "warning", "not-appropriate", True)
    assert row.hook_instance == "5b0b8c4e-0000-4000-8000-000000000001"
    assert row.suggestion_uuids == [s["uuid"] for s in card["suggestions"]]

    taken = card["suggestions"][-1]["uuid"]
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "accepted",
                              "acceptedSuggestions": [{"id": taken}],
                              "outcomeTimestamp": "2026-03-16T09:00:00Z"}]}
    answer = gov_client.post(f"/cds-services/{SIGN}/feedback", json=feedback)
    assert answer.get_json() == {"received": 1, "stored": 1, "duplicates": 0, "orphans": 0, "recorded": True}

    store = gov_app.extensions["lumbar_cds"].recorder.store
    (figures,) = build_report(*store.load_rows(None, None))["topics"]
    assert (figures["topic"], figures["cards_shown"], figures["accepted"], figures["suggestions_accepted"]) == (
        TOPIC, 1, 1, 1)


@pytest.fixture
def silent_app(store_config):
    app = create_app(dict(store_config, MODE="silent"))
    yield app
    app.extensions["lumbar_cds_shutdown"]()


def test_silent_mode_returns_no_cards_but_records_the_judgement(silent_app):
    response = silent_app.test_client().post(f"/cds-services/{SIGN}", json=early_mri_request())
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}  # no cards, no system actions
    (row,) = recorded(silent_app)
    assert (row.topic, row.rating, row.shown) == (TOPIC, "not-appropriate", False)
    assert row.card_uuid  # the card that would have been shown

    store = silent_app.extensions["lumbar_cds"].recorder.store
    (figures,) = build_report(*store.load_rows(None, None))["topics"]
    assert (figures["cards_shown"], figures["cards_silent"], figures["orders_judged"]) == (0, 1, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_worker_records_into_the_embedded_store_and_closes_it_on_exit(tmp_path):
    database = tmp_path / "instance" / "lumbar-cds.sqlite3"
    port = _free_port()
    env = dict(os.environ, CDS_DATABASE_PATH=str(database), CDS_PATIENT_HASH_KEY="serve-test-key")
    env.pop("CDS_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):  # wait for the workers (readiness poll, not a timing assertion)
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:  # not up yet (refused, or not answered yet)
                time.sleep(0.1)
        cards = []
        for n in range(6):
            body = early_mri_request(f"serve-{n}")
            response = requests.post(f"{base}/cds-services/{SIGN}", json=body, timeout=10)
            assert response.status_code == 200
            cards.extend(c["uuid"] for c in response.json()["cards"])
    finally:
        process.send_signal(signal.SIGTERM)  # graceful: gunicorn ends each worker with sys.exit
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0

    engine = create_store_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        stored = [r.card_uuid for r in connection.execute(select(judgement_table))]
    engine.dispose()
    assert sorted(stored) == sorted(cards) and len(cards) == 6
    # Each worker that recorded closed its writer at exit (atexit), and together they wrote every
    # row. (Which of the 2 workers takes which call is the kernel's choice: one may take them all.)
    closed = [line for line in stderr.splitlines() if '"governance writer closed"' in line]
    answered = {json.loads(line)["pid"] for line in stderr.splitlines()
                if '"event":"request"' in line and "<service_id>" in line}
    assert answered and {json.loads(line)["pid"] for line in closed} >= answered
    assert sum(int(line.split('"written":')[1].split(",")[0]) for line in closed) == 6
    assert "serve-test-key" not in stderr and "pat-governance-1" not in stderr
    assert Path(database).exists()
