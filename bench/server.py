"""Start and stop gunicorn on loopback for the HTTP measurements, and find its workers.

Role in the benchmark: runs gunicorn the way `lumbar-cds serve` runs the product (2 workers of
`CdsUvicornWorker`, the app behind `BufferedWsgi` with `threads` threads: `bench.asgi:app`) on
127.0.0.1 with a free port, optionally with `reuse_port` (a listener per worker); the store and
the logs go to the benchmark's temporary folder. Nothing listens beyond loopback.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
THREADS = 8  # as `lumbar-cds serve` (cds_service/cli/__init__.py)
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    def __init__(self, workdir: Path, env: dict[str, str], threads: int = THREADS, reuse_port: bool = False):
        self.workdir = workdir
        self.threads = threads
        self.reuse_port = reuse_port
        self.port = free_port()
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "BENCH_THREADS": str(threads)}
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"gunicorn-{self.port}.log"

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        command = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(WORKERS), "--worker-class", "cds_service.web.serving.CdsUvicornWorker",
            "--timeout", "60", "--graceful-timeout", "5", "--keep-alive", "5",
            *(["--reuse-port"] if self.reuse_port else []),
            "bench.asgi:app",
        ]
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            if self._healthy() and len(self.worker_pids()) == WORKERS:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start within {START_TIMEOUT_S} s; see {self.log_path}")

    def _healthy(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            connection.request("GET", "/healthz")
            ok = connection.getresponse().status == 200
            connection.close()
            return ok
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The master's child processes (gunicorn workers), read from /proc."""
        if self.process is None:
            return []
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4 (ppid) comes after the command name in parentheses, which may hold spaces.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid:
                children.append(int(entry.name))
        return sorted(children)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of a process, in kB, from /proc/<pid>/status."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            figures[key] = int(value.split()[0])
    return figures
