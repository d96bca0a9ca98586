"""`lumbar-cds serve` really serves discovery over HTTP with gunicorn (what `make run` starts)."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_discovery_and_health(tmp_path):
    port = free_port()
    env = {**os.environ, "CDS_DATABASE_PATH": str(tmp_path / "store.sqlite3")}
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):  # wait for the port to open (bounded)
            try:
                health = requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.RequestException:  # not up yet (refused, or not answered yet)
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not start")
        assert health.json() == {"status": "ok"}
        discovery = requests.get(f"{base}/cds-services", timeout=5).json()
        assert {s["id"] for s in discovery["services"]} == {"lumbar-imaging-order-select", "lumbar-imaging-order-sign"}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"Traceback" not in stderr


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_serve_refuses_fewer_than_one_worker_in_one_line(tmp_path, workers):
    result = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve", "--workers", workers],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (f"lumbar-cds serve: argument --workers: must be at least 1, not {workers}; "
                    "see lumbar-cds serve --help")


def test_serve_on_port_0_logs_the_port_it_really_listens_on(tmp_path):
    env = {**os.environ, "CDS_DATABASE_PATH": str(tmp_path / "store.sqlite3")}
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service.cli", "serve", "--port", "0", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True,
    )
    try:
        serving = None
        deadline = time.monotonic() + 60
        while serving is None and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 1.0)
            line = process.stderr.readline() if ready else ""
            if line.startswith("{") and json.loads(line).get("event") == "serving":
                serving = json.loads(line)
        assert serving, "no `serving` log line"
        url = serving["url"]
        port = int(url.split(":")[2].split("/")[0])
        assert port != 0 and url == f"http://127.0.0.1:{port}/cds-services"
        for _ in range(150):  # the worker may still be booting (bounded)
            try:
                discovery = requests.get(url, timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise AssertionError("nothing answers on the logged port")
        assert discovery.status_code == 200 and discovery.json()["services"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
