"""Recording judgements: what a row holds, the keyed patient hash, and no loss on shutdown."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from sqlalchemy import func, select

from cds_service.app import create_app
from cds_service.governance.store import NullRecorder, QueueRecorder, Store, create_recorder
from cds_service.governance.store.database import create_store_engine, upgrade
from cds_service.governance.store.schema import judgement as judgement_table

from .support import PATIENT_ID, SIGN, hook_request, judgement, result

NOW = datetime(2026, 3, 16, 9, 30, tzinfo=UTC)


def rows(store: Store) -> list:
    with store.engine.connect() as connection:
        return list(connection.execute(select(judgement_table).order_by(judgement_table.c.id)))


def test_a_judgement_row_holds_the_decision_and_a_keyed_hash_not_the_patient_id(gov_app):
    recorder = gov_app.extensions["lumbar_cds"].recorder
    recorder.record(
        hook_request(SIGN, hook_instance="hook-instance-9"),
        result(judgement("card-1", suggestions=("s-del", "s-pt")),
               judgement(None, None, rating="appropriate", order="ServiceRequest/other")),
        NOW,
    )
    recorder.flush()
    first, second = rows(recorder.store)
    assert (first.service_id, first.hook, first.hook_instance) == (SIGN, "order-sign", "hook-instance-9")
    assert (first.topic, first.indicator, first.rating, first.card_uuid) == (
        "imaging-before-6-weeks", "warning", "not-appropriate", "card-1")
    assert first.order_reference == "ServiceRequest/order-mri-gov"
    assert first.order_code == "http://www.ama-assn.org/go/cpt|72148"
    assert first.consult_id == "urn:uuid:consult-card-1"
    assert first.suggestion_uuids == ["s-del", "s-pt"]
    assert first.recorded_at == datetime(2026, 3, 16, 9, 30)
    assert first.shown is True
    assert (second.topic, second.card_uuid, second.rating) == (None, None, "appropriate")

    expected = hmac.new(b"test-hash-key", PATIENT_ID.encode(), hashlib.sha256).hexdigest()
    assert first.patient_hash == second.patient_hash == expected
    assert PATIENT_ID not in repr(tuple(first)) + repr(tuple(second))


def test_the_hash_depends_on_the_key(tmp_path):
    hashes = []
    for key in ("key-one", "key-two"):
        app = create_app({"DATABASE_PATH": str(tmp_path / key / "s.sqlite3"), "PATIENT_HASH_KEY": key})
        recorder = app.extensions["lumbar_cds"].recorder
        recorder.record(hook_request(), result(judgement("card")), NOW)
        recorder.flush()
        hashes.append(rows(recorder.store)[0].patient_hash)
        app.extensions["lumbar_cds_shutdown"]()
    assert hashes[0] != hashes[1]


def test_close_drains_every_queued_row(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'drain.sqlite3'}")
    upgrade(engine)
    recorder = QueueRecorder(Store(engine), "k", "active")
    for n in range(2000):
        recorder.record(hook_request(hook_instance=f"hi-{n}"), result(judgement(f"card-{n}")), NOW)
    recorder.close()  # no flush before: close alone must write everything accepted
    recorder.close()  # idempotent
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(judgement_table)) == 2000
        assert connection.scalar(select(func.count(func.distinct(judgement_table.c.card_uuid)))) == 2000
    assert (recorder.dropped, recorder.spooled) == (0, 0)


def test_app_shutdown_writes_what_was_queued(tmp_path):
    config = {"DATABASE_PATH": str(tmp_path / "s.sqlite3")}
    app = create_app(config)
    recorder = app.extensions["lumbar_cds"].recorder
    for n in range(300):
        recorder.record(hook_request(hook_instance=f"hi-{n}"), result(judgement(f"card-{n}")), NOW)
    app.extensions["lumbar_cds_shutdown"]()
    engine = create_store_engine(f"sqlite:///{tmp_path / 's.sqlite3'}")
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(judgement_table)) == 300


def test_a_call_without_judgements_writes_nothing(gov_app):
    recorder = gov_app.extensions["lumbar_cds"].recorder
    recorder.record(hook_request(), result(), NOW)
    recorder.flush()
    assert rows(recorder.store) == []


def test_recording_off_gives_a_null_recorder_and_no_file(tmp_path):
    recorder = create_recorder({"RECORD_JUDGEMENTS": False, "DATABASE_PATH": str(tmp_path / "off" / "s.sqlite3")})
    assert isinstance(recorder, NullRecorder)
    recorder.record(hook_request(), result(judgement("card")), NOW)
    recorder.close()
    assert not (tmp_path / "off").exists()


def test_the_embedded_store_is_created_on_first_start_and_kept_on_the_next(tmp_path):
    path = tmp_path / "deep" / "instance" / "lumbar-cds.sqlite3"
    app = create_app({"DATABASE_PATH": str(path)})
    recorder = app.extensions["lumbar_cds"].recorder
    assert path.exists()
    recorder.record(hook_request(), result(judgement("card-kept")), NOW)
    app.extensions["lumbar_cds_shutdown"]()
    app = create_app({"DATABASE_PATH": str(path)})  # migrations at start-up are a no-op now
    try:
        assert [r.card_uuid for r in rows(app.extensions["lumbar_cds"].recorder.store)] == ["card-kept"]
    finally:
        app.extensions["lumbar_cds_shutdown"]()


def test_a_repeated_call_is_stored_once_and_orders_it_cannot_tell_apart_are_kept(gov_app):
    """The EHR (or nginx, after a lost connection) sends a call again: its cards are new, its
    judgements are the same ones. Two orders of one call without ids are two judgements."""
    recorder = gov_app.extensions["lumbar_cds"].recorder
    for attempt in range(3):
        recorder.record(hook_request(hook_instance="hi-repeated"),
                        result(judgement(f"card-{attempt}-a", order="ServiceRequest/(no id)"),
                               judgement(f"card-{attempt}-b", order="ServiceRequest/(no id)")), NOW)
    recorder.record(hook_request("lumbar-imaging-order-select", hook_instance="hi-repeated"),
                    result(judgement("card-select")), NOW)
    recorder.flush()
    stored = rows(recorder.store)
    assert sorted((r.service_id, r.order_reference, r.card_uuid) for r in stored) == [
        ("lumbar-imaging-order-select", "ServiceRequest/order-mri-gov", "card-select"),
        (SIGN, "ServiceRequest/(no id)", "card-0-a"),
        (SIGN, "ServiceRequest/(no id)#2", "card-0-b"),
    ]
    assert recorder.dropped == 0
