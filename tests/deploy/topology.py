"""Test support for the topology run: real nginx with deploy/nginx.conf in front of `lumbar-cds
serve` replicas on loopback, and a bounded load of signed hook calls.

- `nginx_conf(...)` templates deploy/nginx.conf for loopback: the listen port, the upstream's
  servers (the replicas' ports; the `resolve` parameter is dropped where the local nginx is older
  than 1.27.3, which cannot re-resolve, and a loopback address needs none), files in a folder.
- `Replica` runs `python -m cds_service.cli serve` in a session of its own, so that `kill()` can
  kill -9 the master and its workers at once, as a crash of the host process would.
- `Load` sends hook calls from a few threads (each with a fresh JWT and hookInstance) until
  stopped, and keeps every outcome: status or connection error, per hookInstance.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from tests.security.jwt_support import EHR_ISS, ec_key, jwks, write_issuers

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def nginx_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def nginx_conf(folder: Path, port: int, replica_ports: list[int], can_resolve: bool,
               backup_ports: tuple[int, ...] = ()) -> Path:
    """deploy/nginx.conf for loopback; `backup_ports` are replicas nginx sends to only when the
    others fail (a test that must know which replica a call reaches first)."""
    text = NGINX_CONF.read_text()

    def servers(line: re.Match) -> str:
        indent, parameters = line.group(1), line.group(2) if can_resolve else line.group(2).replace(" resolve", "")
        primary = "backup" not in parameters.split()
        return "\n".join(f"{indent}server 127.0.0.1:{p} {parameters}{' backup' * (primary and p in backup_ports)};"
                         for p in replica_ports)

    text, count = re.subn(r"(?m)^(\s*)server app:8080 ([^;]*);", servers, text)
    assert count, "deploy/nginx.conf no longer has `server app:8080`: update tests/deploy/topology.py"
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / temp).mkdir(parents=True, exist_ok=True)
    temp_paths = "".join(f"    {t}_temp_path {folder / t};\n" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    replacements = [
        ("worker_processes auto;", "worker_processes 1;" + ("\nuser root;" if os.geteuid() == 0 else "")),
        ("pid /tmp/nginx.pid;", f"pid {folder / 'nginx.pid'};"),
        ("access_log /dev/stdout cds;", f"access_log {folder / 'access.log'} cds;"),
        ("error_log /dev/stderr warn;", f"error_log {folder / 'error.log'} warn;\n{temp_paths}"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
    ]
    for old, new in replacements:
        assert old in text, f"deploy/nginx.conf no longer has {old!r}: update tests/deploy/topology.py"
        text = text.replace(old, new)
    path = folder / "nginx.conf"
    path.write_text(text)
    return path


class Nginx:
    def __init__(self, binary: str, conf: Path):
        self.binary, self.conf = binary, conf
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        folder = self.conf.parent
        check = subprocess.run([self.binary, "-t", "-q", "-p", str(folder), "-c", str(self.conf),
                                "-e", str(folder / "error.log")], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t refused the templated deploy/nginx.conf: {check.stderr}"
        self.process = subprocess.Popen([self.binary, "-p", str(folder), "-c", str(self.conf), "-e",
                                         str(folder / "error.log"), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Replica:
    """`lumbar-cds serve` on a fixed loopback port, in a session of its own."""

    def __init__(self, folder: Path, port: int, env: dict, workers: int = 2):
        self.folder, self.port, self.workers = folder, port, workers
        folder.mkdir(parents=True, exist_ok=True)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
        environ.update(env, PYTHONPATH=str(ROOT), CDS_SPOOL_DIR=str(folder / "spool"))
        self.env = environ
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Replica:
        self.starts += 1
        with open(self.folder / f"serve-{self.starts}.log", "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(self.port),
                 "--workers", str(self.workers)],
                stdout=subprocess.DEVNULL, stderr=log, env=self.env, cwd=self.folder, start_new_session=True)
        return self

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"replica on {self.port} exited: {self.log()[-1500:]}"
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica on {self.port} not ready in {seconds} s")

    def log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.folder.glob("serve-*.log")))

    def kill(self) -> None:
        """kill -9 of the master and every worker (its whole session)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self, seconds: float = 40) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


class Load:
    """Hook calls from `clients` threads through `base` until `stop()`; outcomes by hookInstance."""

    def __init__(self, base: str, make_call, clients: int = 4, pause: float = 0.0):
        self.base, self.make_call, self.clients, self.pause = base, make_call, clients, pause
        self.outcomes: dict[str, int | str] = {}  # hookInstance -> status or error name
        self.latencies: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counter = 0

    def _next(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{self.name}-{self._counter}"

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            hook_instance = self._next()
            path, body, headers = self.make_call(hook_instance)
            started = time.perf_counter()
            try:
                outcome: int | str = session.post(f"{self.base}{path}", json=body, headers=headers, timeout=30).status_code
            except requests.RequestException as error:
                outcome = type(error).__name__
                session = requests.Session()
            with self._lock:
                self.outcomes[hook_instance] = outcome
                self.latencies.append(time.perf_counter() - started)
            if self.pause:
                time.sleep(self.pause)

    def start(self, name: str) -> Load:
        self.name = name
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self

    def answered(self) -> set[str]:
        return {h for h, outcome in self.outcomes.items() if outcome == 200}

    def summary(self) -> Counter:
        return Counter(str(outcome) for outcome in self.outcomes.values())


class SignedDeployment:
    """Two replicas with client authentication on (one trusted EC key), nginx's conf for them.

    `database_url` and `redis_url` are what the replicas share; `backup_ports` as `nginx_conf`.
    The replicas are started, not yet waited for."""

    def __init__(self, folder: Path, database_url: str, redis_url: str, hash_key: str,
                 backup_ports_of: tuple[int, ...] = ()):
        self.key = ec_key()
        (folder / "jwks.json").write_text(json.dumps(jwks(self.key)))
        issuers = write_issuers(folder / "issuers.yaml", [{"iss": EHR_ISS, "jwks_file": str(folder / "jwks.json")}])
        self.nginx_port, ports = free_port(), [free_port(), free_port()]
        self.base = f"http://127.0.0.1:{self.nginx_port}"
        env = {"CDS_DATABASE_URL": database_url, "CDS_REDIS_URL": redis_url, "CDS_AUTH_REQUIRED": "true",
               "CDS_TRUST_SANDBOX": "false", "CDS_TRUSTED_ISSUERS_FILE": issuers, "CDS_PUBLIC_BASE_URL": self.base,
               "CDS_PATIENT_HASH_KEY": hash_key, "CDS_LOG_LEVEL": "WARNING"}
        self.replica_a = Replica(folder / "a", ports[0], env).start()
        self.replica_b = Replica(folder / "b", ports[1], env).start()
        backups = tuple(ports[i] for i in backup_ports_of)
        self.conf = nginx_conf(folder / "nginx", self.nginx_port, ports,
                               can_resolve=nginx_version(nginx_binary()) >= (1, 27, 3), backup_ports=backups)
