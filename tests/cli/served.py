"""Test support: `lumbar-cds serve` in a subprocess (the served app, as `make run` starts it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`python -m cds_service.cli serve` on a free loopback port, in `cwd`, with `env` added."""

    def __init__(self, cwd: Path, env: dict | None = None, args: tuple[str, ...] = (), workers: int = 1):
        self.cwd = cwd
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
        environ.setdefault("CDS_DATABASE_PATH", str(cwd / "instance" / "lumbar-cds.sqlite3"))
        environ["PYTHONPATH"] = str(ROOT)
        environ.update(env or {})
        self.env = environ
        self.args = ["--port", str(self.port), "--workers", str(workers), *args]
        self.process: subprocess.Popen | None = None
        self.log_path = cwd / f"serve-{self.port}.log"  # a file, not a pipe: a full pipe would block the server

    @property
    def stderr(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> Served:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cds_service.cli", "serve", *self.args],
                stdout=subprocess.DEVNULL, stderr=log, env=self.env, cwd=self.cwd,
            )
        for _ in range(300):  # readiness poll (bounded), not a timing assertion
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.stderr[-2000:]}")
            try:
                if requests.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("the server did not start")

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: each worker ends with sys.exit
        self.process.wait(timeout=60)
        code = self.process.returncode
        self.process = None
        return code

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_workers(served: Served, workers: int) -> None:
    """Until `workers` workers have built the app (a booting worker does not listen yet)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        warmed = {json.loads(line)["pid"] for line in served.stderr.splitlines()
                  if line.startswith("{") and '"event":"worker warmed"' in line}
        if len(warmed) >= workers:
            time.sleep(0.5)  # from warmed to listening
            return
        time.sleep(0.1)
    raise AssertionError(f"{workers} workers did not start")
