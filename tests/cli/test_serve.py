"""`lumbar-cds serve` really serves discovery over HTTP with gunicorn (what `make run` starts)."""

import os
import signal
import socket
import subprocess
import sys
import time

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
