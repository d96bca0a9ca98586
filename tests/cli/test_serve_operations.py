"""`lumbar-cds serve` as an operator runs it (issue 14): one JSON-lines log stream with gunicorn's
own lines in it, one-time warnings once per instance (not per worker), CDS_HOST/CDS_PORT read,
no gunicorn control socket in $HOME, and /metrics adding up every worker (multiprocess mode) from
a folder of the instance's own that is removed at exit."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.hook_requests import full_prefetch, hook_request

from .served import ROOT, Served, free_port

TOKEN = "serve-metrics-token"


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is JSON: a plain one fails here


def answered_by(log: str) -> set[int]:
    """The pids of the workers that logged a hook call."""
    return {json.loads(line)["pid"] for line in log.splitlines()
            if '"event":"request"' in line and "<service_id>" in line}


def spread_calls(base: str, body: dict, connections: int = 8) -> int:
    """One hook call on each of `connections` connections, opened 30 ms apart (a burst of
    connects all lands on the worker that is accepting) and then used at the same moment, so
    both workers take calls. Returns how many calls were answered (all must be 200 with a card)."""
    host, port = base.split("//")[1].split(":")
    opened = []
    for _ in range(connections):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.connect()
        opened.append(connection)
        time.sleep(0.03)
    payload = json.dumps(body)

    def send(connection) -> None:
        connection.request("POST", "/cds-services/lumbar-imaging-order-sign", payload,
                           {"Content-Type": "application/json", "Connection": "close"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200 and len(answer["cards"]) == 1
        connection.close()

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, opened))
    return connections


def cards_total(base: str) -> float:
    text = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("lumbar_cds_cards_total{"))


def test_two_workers_one_json_stream_one_warning_no_control_socket_and_summed_metrics(tmp_path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmp), "CDS_METRICS_TOKEN": TOKEN}
    body = hook_request("order-sign", prefetch=full_prefetch())
    with Served(tmp_path, env=env, workers=2) as served:
        (instance,) = tmp.glob("lumbar-cds-*")  # the instance's own folder
        assert (instance / "metrics").is_dir()
        before = cards_total(served.base)
        calls = 0
        for _ in range(10):  # bounded: rounds of connections opened apart, used at once
            calls += spread_calls(served.base, body)
            if calls >= 6 and len(answered_by(served.stderr)) == 2:
                break
        assert len(answered_by(served.stderr)) == 2
        assert cards_total(served.base) - before == calls  # whichever worker answered the scrape
        assert not (home / ".gunicorn").exists()  # no control socket at the per-user path
        code = served.stop()
    assert code == 0
    assert not instance.exists()  # removed at exit
    events = json_lines(served.stderr)
    gunicorn = [e for e in events if e["logger"] == "gunicorn.error"]
    assert any(e["event"].startswith("Booting worker") for e in gunicorn)
    assert any(e["event"].startswith("Listening at") for e in gunicorn)
    booted = {e["pid"] for e in gunicorn if e["event"].startswith("Booting worker")}
    assert len(booted) == 2
    warnings = [e for e in events if "CDS_PATIENT_HASH_KEY" in e["event"]]
    assert len(warnings) == 1  # once for the instance, not once per worker
    requests_logged = [e for e in events if e["event"] == "request" and e["path"] == "/cds-services/<service_id>"]
    assert len(requests_logged) == calls and all(e["ms"] > 0 for e in requests_logged)
    assert not any("uvicorn.access" == e["logger"] for e in events)


def test_serve_reads_cds_host_and_cds_port_and_the_flags_win(tmp_path):
    port = free_port()
    env = {"CDS_HOST": "127.0.0.1", "CDS_PORT": str(port), "PYTHONPATH": str(ROOT),
           "CDS_DATABASE_PATH": str(tmp_path / "store.sqlite3")}
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("CDS_")}, **env}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "cds_service.cli", "serve", "--workers", "1"],
                               stdout=subprocess.DEVNULL, stderr=log, env=environ, cwd=tmp_path)
    try:
        for _ in range(300):  # readiness poll (bounded)
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise AssertionError("not serving on CDS_PORT")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    # A flag wins over the variable: Served passes --port, CDS_PORT names another one.
    with Served(tmp_path, env={"CDS_PORT": str(free_port())}) as served:
        assert requests.get(f"{served.base}/healthz", timeout=5).status_code == 200
