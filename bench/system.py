"""The whole-system figures: the no-prefetch path, worker memory, cold start, the machine.

Role in the benchmark:
- `no_prefetch()`: order-select without prefetch against the real loopback FHIR server of the
  tests, delaying every answer 50 ms; if the service fetches the 13 keys of its discovery in
  parallel the total is about 50 ms, if one after another about 650 ms.
- `worker_memory()`: a fresh gunicorn, exactly 1 000 service calls at N = 3 000, then the peak
  resident set (VmHWM) of each worker.
- `cold_start()`: import + `create_app` timed in fresh interpreters (median of a few).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer

from . import load, payloads
from .app import SERVICE_PATH, create_bench_app
from .inprocess import BenchError, post
from .server import ROOT, Gunicorn, memory_kb
from .stats import summary


def no_prefetch(settings: dict, n: int, max_requests: int, budget_s: float, delay_s: float = 0.05) -> dict:
    behaviour = FhirServerBehaviour(delay_seconds=delay_s, page_size=max(n, 50))  # one page per key
    with LoopbackFhirServer(behaviour) as server:
        server.add(*payloads.server_resources(n))
        app = create_bench_app(settings)
        try:
            client = app.test_client()
            body = payloads.hook_body(n, with_prefetch=False, fhir_server=server.base_url)
            samples: list[float] = []
            with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                first = post(client, SERVICE_PATH, body)  # warm: connection pools, imports
                if first.status_code != 200:
                    raise BenchError(f"no-prefetch call answered {first.status_code}: {first.get_data(as_text=True)[:300]}")
                server.seen.clear()
                deadline = time.perf_counter() + budget_s
                for _ in range(max_requests):
                    started = time.perf_counter()
                    response = post(client, SERVICE_PATH, body)
                    samples.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise BenchError(f"no-prefetch call answered {response.status_code}")
                    if time.perf_counter() > deadline:
                        break
        finally:
            app.extensions["lumbar_cds_shutdown"]()
        keys = len(payloads.prefetch(n))
        return {
            "n": n,
            "delay_ms": delay_s * 1000,
            "keys_fetched": keys,
            "fhir_requests_per_call": round(len(server.seen) / len(samples), 2),
            "max_in_flight": server.max_in_flight,
            "serial_would_be_ms": round(keys * delay_s * 1000, 1),
            **summary(samples),
        }


def worker_memory(workdir: Path, env: dict, n: int, requests: int, budget_s: float) -> dict:
    body = payloads.hook_body(n)
    with Gunicorn(workdir, env) as server:
        status, _ = load.one_request(server.port, SERVICE_PATH, body)
        if status != 200:
            raise BenchError(f"service answered {status} at N={n}")
        # 4 connections: both workers stay busy however the connections fall between them.
        run = load.run_python(server.port, SERVICE_PATH, body, connections=4, duration_s=budget_s, max_requests=requests - 1)
        workers = {pid: memory_kb(pid) for pid in server.worker_pids()}
    peak = max(figures["VmHWM"] for figures in workers.values())
    return {
        "n": n,
        "body_bytes": len(body),
        "requests": run["requests"] + 1,
        "errors": run["errors"],
        "seconds": run["seconds"],
        "workers": [{"VmHWM_kB": f["VmHWM"], "VmRSS_kB": f["VmRSS"]} for f in workers.values()],
        "peak_rss_mb": round(peak / 1024, 1),
    }


_COLD_START = """
import time
started = time.perf_counter()
from cds_service.app import create_app
app = create_app({"DATABASE_PATH": %r})
print(time.perf_counter() - started)
"""


def cold_start(workdir: Path, runs: int) -> dict:
    database = str(workdir / "cold-start.sqlite3")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDS_LOG_LEVEL": "ERROR"}

    def once() -> tuple[float, float]:
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-c", _COLD_START % database], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=60, check=True,
        )
        return float(completed.stdout.strip().splitlines()[-1]), time.perf_counter() - started

    first_inside, _ = once()  # creates and migrates the embedded store
    timings = [once() for _ in range(runs)]
    inside, process = [t[0] for t in timings], [t[1] for t in timings]
    return {
        "runs": runs,
        "create_app_s": round(statistics.median(inside), 3),
        "process_s": round(statistics.median(process), 3),
        "first_start_with_new_store_s": round(first_inside, 3),
    }


_FIRST_CALL = """
import json, statistics, time
from bench import payloads
from cds_service.app import create_app
app = create_app({"DATABASE_PATH": %r, "MAX_BODY_BYTES": 50_000_000})
client = app.test_client()
body = payloads.hook_request(%d)
timings = []
for n in range(11):
    started = time.perf_counter()
    response = client.post("/cds-services/lumbar-imaging-order-select", json=dict(body, hookInstance="00000000-0000-4000-8000-%%012d" %% n))
    timings.append((time.perf_counter() - started) * 1000)
    assert response.status_code == 200, response.status_code
app.extensions["lumbar_cds_shutdown"]()
print(json.dumps(timings))
"""


def first_call(workdir: Path, runs: int, n: int = 100) -> dict:
    """A worker's first hook call against its later ones (issue 22 item 5: start-up warms what a
    first call would build lazily, `cds_service/warmup.py`), in fresh interpreters: each starts
    the app, then times eleven calls with a prefetch of `n` resources; medians over the runs."""
    database = str(workdir / "first-call.sqlite3")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDS_LOG_LEVEL": "ERROR"}
    firsts, laters = [], []
    for _ in range(runs):
        completed = subprocess.run([sys.executable, "-c", _FIRST_CALL % (database, n)], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=120, check=True)
        timings = json.loads(completed.stdout.strip().splitlines()[-1])
        firsts.append(timings[0])
        laters.append(statistics.median(timings[1:]))
    return {"runs": runs, "resources": n, "first_call_ms": round(statistics.median(firsts), 2),
            "later_calls_ms": round(statistics.median(laters), 2),
            "first_over_later": round(statistics.median(firsts) / statistics.median(laters), 2)}


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
