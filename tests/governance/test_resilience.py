"""The governance store loses nothing it should keep, on the real PostgreSQL.

- NUL (U+0000), which PostgreSQL refuses in text, is refused at the edge with a 400 naming the
  field (hook ids, draft orders, feedback fields): calls carrying it never reach the store, and
  the valid calls around them are all recorded;
- a row the store refuses anyway loses only itself: the batch is written again row by row;
- a store outage loses nothing: judgements made while PostgreSQL is unreachable (a TCP proxy in
  front of it is stopped, the server itself is left alone) are spooled and all written after it,
  in process; and, from a file spool, after the served app is stopped and started again.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from cds_service.app import create_app
from cds_service.cli import main as cli_main
from cds_service.governance.store import QueueRecorder, Store
from cds_service.governance.store.database import create_store_engine
from cds_service.governance.store.schema import judgement as judgement_table
from cds_service.governance.store.spool import Spool

from ..cli.served import Served
from .support import SIGN, early_mri_request, hook_request, judgement, overridden, result
from .tcp_proxy import TcpProxy

NUL = "\u0000"


def stored(engine) -> list:
    with engine.connect() as connection:
        return list(connection.execute(select(judgement_table.c.hook_instance, judgement_table.c.order_reference)))


def nul_variants(n: int) -> dict:
    """A valid order-sign request with NUL planted in one of the places the store would keep."""
    body = early_mri_request(f"nul-{n}")
    place = n % 4
    if place == 0:
        body["hookInstance"] = f"nul{NUL}{n}"
    elif place == 1:
        body["context"]["patientId"] = f"pat{NUL}"
    elif place == 2:
        body["context"]["draftOrders"]["entry"][0]["resource"]["id"] = f"order{NUL}{n}"
    else:
        body["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"][0]["code"] = f"72148{NUL}"
    return body


def test_nul_calls_are_refused_with_400_and_lose_no_judgement_of_other_calls(gov_app, gov_client):
    valid = []
    for n in range(38):
        response = gov_client.post(f"/cds-services/{SIGN}", json=nul_variants(n))
        assert response.status_code == 400, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "LCDS-1006" and "NUL" in error["message"] and error["field"]
        if n % 2 == 0:
            body = early_mri_request(f"valid-{n}")
            assert gov_client.post(f"/cds-services/{SIGN}", json=body).status_code == 200
            valid.append(body["hookInstance"])
    recorder = gov_app.extensions["lumbar_cds"].recorder
    recorder.flush()
    assert sorted(h for h, _ in stored(recorder.store.engine)) == sorted(valid)
    assert recorder.dropped == 0


@pytest.mark.postgres
def test_a_row_the_store_refuses_loses_only_itself_not_its_batch(pg_url):
    assert cli_main(["db", "upgrade", "--database-url", pg_url]) == 0
    engine = create_store_engine(pg_url)
    recorder = QueueRecorder(Store(engine), "k", "active")
    try:
        good = [judgement(f"card-{n}", order=f"ServiceRequest/good-{n}") for n in range(5)]
        bad = judgement("card-bad", order=f"ServiceRequest/bad{NUL}")  # past the edge: PostgreSQL refuses it
        recorder.record(hook_request(), result(*good[:2], bad, *good[2:]), time_now())
        # A request the edge never saw (built directly), in the same queue.
        sneaky = dataclasses.replace(hook_request(hook_instance="ok"), hook_instance=f"hi{NUL}")
        recorder.record(sneaky, result(judgement("card-sneaky")), time_now())
        recorder.record(hook_request(hook_instance="after"), result(judgement("card-after")), time_now())
        recorder.flush()
        references = sorted(r for _, r in stored(engine))
        assert references == sorted([f"ServiceRequest/good-{n}" for n in range(5)] + ["ServiceRequest/order-mri-gov"])
        assert recorder.stats()["dropped_refused"] == 2 and recorder.dropped == 2
        assert recorder.written == 6
    finally:
        recorder.close()


def test_feedback_with_nul_is_400_naming_the_field_not_503(gov_client):
    for item in (overridden(f"card{NUL}"), overridden("card-1", f"reason{NUL}"),
                 overridden("card-1", comment=f"comment{NUL}")):
        response = gov_client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [item]})
        assert response.status_code == 400, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "LCDS-1010" and "NUL" in error["message"] and error["field"] == "feedback[0]"


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-10:00", "0001-01-01T00:30:00+01:00"])
def test_feedback_timestamp_outside_the_utc_range_is_400_naming_the_field(gov_client, moment):
    item = overridden("card-1", at=moment)
    response = gov_client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": [item]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "LCDS-1010" and "'outcomeTimestamp'" in error["message"]


# --- outages ------------------------------------------------------------------------------------

def time_now() -> datetime:
    return datetime.now(UTC)


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.postgres
def test_judgements_made_during_a_store_outage_are_all_written_after_it(pg_url, tmp_path):
    assert cli_main(["db", "upgrade", "--database-url", pg_url]) == 0
    target = make_url(pg_url)
    direct = create_engine(pg_url)
    with TcpProxy((target.host, target.port or 5432)) as proxy:
        app = create_app({"TESTING": True, "DATABASE_URL": through(proxy, pg_url),
                          "DATABASE_PATH": str(tmp_path / "instance" / "store.sqlite3")})
        client = app.test_client()
        recorder = app.extensions["lumbar_cds"].recorder
        try:
            assert client.post(f"/cds-services/{SIGN}", json=early_mri_request("before")).status_code == 200
            recorder.flush()
            proxy.stop()  # the store is unreachable from here on
            during = [f"during-{n}" for n in range(30)]
            for hook_instance in during:
                assert client.post(f"/cds-services/{SIGN}", json=early_mri_request(hook_instance)).status_code == 200
            recorder.flush()
            assert recorder.stats()["spool_pending"] == 30 and recorder.dropped == 0
            assert list((tmp_path / "instance" / "spool").glob("*.jsonl"))  # on disk, fsync'd
            proxy.start()  # the store is back
            assert client.post(f"/cds-services/{SIGN}", json=early_mri_request("after")).status_code == 200
            assert wait_for(lambda: recorder.stats()["spool_pending"] == 0 and recorder.flush())
            hook_instances = sorted(h for h, _ in stored(direct))
            assert hook_instances == sorted(["before", "after", *during])
            stats = recorder.stats()
            assert stats["retried"] == stats["spooled"] >= 30 and stats["dropped"] == 0, stats
            print(f"store outage: {len(during)} judgements made during it, "
                  f"{stats['retried']} written after it")
        finally:
            app.extensions["lumbar_cds_shutdown"]()
            direct.dispose()


@pytest.mark.postgres
def test_the_file_spool_survives_a_restart_of_the_served_app(pg_url, tmp_path):
    assert cli_main(["db", "upgrade", "--database-url", pg_url]) == 0
    target = make_url(pg_url)
    direct = create_engine(pg_url)
    proxy = TcpProxy((target.host, target.port or 5432))  # not started: the store is down
    env = {"CDS_DATABASE_URL": through(proxy, pg_url), "CDS_PATIENT_HASH_KEY": "spool-test-key"}
    made = [f"spooled-{n}" for n in range(12)]
    try:
        with Served(tmp_path, env=env, workers=2) as served:
            for hook_instance in made:
                response = requests.post(
                    f"{served.base}/cds-services/{SIGN}", json=early_mri_request(hook_instance), timeout=20)
                assert response.status_code == 200
        spooled = [json.loads(line) for path in (tmp_path / "instance" / "spool").glob("*.jsonl")
                   for line in path.read_text().splitlines()]
        assert sorted(r["hook_instance"] for r in spooled) == sorted(made)
        assert "pat-governance-1" not in json.dumps(spooled)  # the spool holds rows, hashed ids only
        proxy.start()  # the store is back; the service starts again and adopts the spool
        with Served(tmp_path, env=env, workers=2):
            assert wait_for(lambda: len(stored(direct)) >= len(made))
            time.sleep(0.5)
        assert sorted(h for h, _ in stored(direct)) == sorted(made)  # each exactly once
        assert not list((tmp_path / "instance" / "spool").glob("*.jsonl"))
    finally:
        proxy.stop()
        direct.dispose()


def test_the_spool_is_bounded_oldest_dropped_and_counted(tmp_path):
    rows = []
    for n in range(8):
        row = {"recorded_at": time_now().replace(tzinfo=None), "hook_instance": f"h-{n}",
               "suggestion_uuids": [], "shown": True}
        rows.append(copy.deepcopy(row))
    spool = Spool(tmp_path / "spool", max_rows=5, max_bytes=1_000_000)
    spool.add(rows[:3])
    spool.add(rows[3:])
    assert len(spool) == 5 and spool.dropped == 3
    assert [r["hook_instance"] for r in spool.peek(10)] == [f"h-{n}" for n in range(3, 8)]
    (path,) = (tmp_path / "spool").glob("*.jsonl")
    assert len(path.read_text().splitlines()) == 5
    spool._file.close()  # the process "dies" without closing the spool: its lock is released
    spool._file = None
    heir = Spool(tmp_path / "spool", max_rows=5, max_bytes=1_000_000)
    assert heir.adopt() == 5 and [r["hook_instance"] for r in heir.peek(5)] == [f"h-{n}" for n in range(3, 8)]
    heir.pop(5)
    heir.close()
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    small = Spool(None, max_rows=100, max_bytes=300)
    small.add(rows)
    assert small.bytes <= 300 and small.dropped == 8 - len(small)


KILLED_WRITER = """
import os, signal, sys
from datetime import datetime
from cds_service.governance.store.spool import Spool
spool = Spool(sys.argv[1])
for n in range(20):
    spool.log([{"recorded_at": datetime(2026, 3, 16, 9, 30), "hook_instance": f"killed-{n}",
                "service_id": "lumbar-imaging-order-sign", "hook": "order-sign", "patient_hash": "0" * 64,
                "order_reference": "ServiceRequest/o", "order_code": None, "topic": None, "indicator": None,
                "rating": "appropriate", "card_uuid": None, "consult_id": None, "suggestion_uuids": [],
                "shown": True}])
spool.committed([0, 1])  # the first two reached the store before the kill
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_rows_logged_by_a_killed_process_are_adopted_and_stored_once(tmp_path):
    """kill -9 between the answer and the commit: the rows are in the dead process's spool file
    (appended and flushed, no fsync needed for a process kill); the next writer adopts them."""
    import subprocess
    import sys

    spool_dir = tmp_path / "spool"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(spool_dir)], timeout=60)
    assert killed.returncode == -9
    (path,) = spool_dir.glob("*.jsonl")
    logged = path.read_text().splitlines()
    assert {json.loads(line)["hook_instance"] for line in logged} >= {f"killed-{n}" for n in range(2, 20)}
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    from cds_service.governance.store.database import upgrade

    upgrade(engine)
    # The two committed before the kill are in the store (their lines may still be in the file).
    Store(engine).insert_judgements([{**json.loads(line), "recorded_at": datetime(2026, 3, 16, 9, 30)}
                                     for line in logged[:2]])
    recorder = QueueRecorder(Store(engine), "k", "active", spool=Spool(spool_dir))
    try:
        assert wait_for(lambda: recorder.stats()["spool_pending"] == 0 and len(stored(engine)) >= 20)
    finally:
        recorder.close()
    assert sorted(h for h, _ in stored(engine)) == sorted(f"killed-{n}" for n in range(20))  # each once
    assert not list(spool_dir.glob("*.jsonl"))
