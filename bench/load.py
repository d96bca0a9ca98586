"""Load generators on loopback: Debian's `wrk` when it is there, else a Python closed loop.

Role in the benchmark: drives gunicorn for a fixed time with a fixed number of connections and
reports throughput and latency percentiles. `ensure_wrk()` installs wrk with apt when it is
missing and we are root; the result always says which generator ran. `fixed_count()` sends an
exact number of requests (for the memory figure), bounded by time too.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import orjson

from .stats import summary

WRK_SCRIPT = Path(__file__).resolve().parent / "post.lua"


def ensure_wrk() -> str | None:
    """Path of wrk; installed with apt-get when missing and root. None when it cannot be had."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "wrk"]):
        try:
            subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = shutil.which("wrk")
        if found:
            return found
    return None


def run_wrk(wrk: str, url: str, body_file: Path, connections: int, duration_s: int) -> dict:
    """One timed wrk run (1 thread: the two cores are shared with the two gunicorn workers)."""
    completed = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s", "-s", str(WRK_SCRIPT), url],
        env={**os.environ, "BENCH_BODY": str(body_file)},
        capture_output=True, text=True, timeout=duration_s + 60, check=False,
    )
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result (exit {completed.returncode}): {completed.stderr[-500:]}")
    raw = orjson.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("errors_status", "errors_connect", "errors_read", "errors_write", "errors_timeout"))
    return {
        "requests": raw["requests"],
        "errors": errors,
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p90_ms": round(raw["p90_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "max_ms": round(raw["max_us"] / 1000, 3),
    }


def _post(connection: http.client.HTTPConnection, path: str, body: bytes) -> int:
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status


def run_python(port: int, path: str, body: bytes, connections: int, duration_s: float, max_requests: int | None = None) -> dict:
    """Closed loop: `connections` threads, keep-alive, each posting as soon as it has an answer."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + duration_s
    sent = [0]

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        local: list[float] = []
        while time.perf_counter() < deadline:
            with lock:
                if max_requests is not None and sent[0] >= max_requests:
                    break
                sent[0] += 1
            t0 = time.perf_counter()
            try:
                status = _post(connection, path, body)
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            local.append(time.perf_counter() - t0)
            if status != 200:
                with lock:
                    errors[0] += 1
        connection.close()
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    stats = summary(latencies)
    return {
        "requests": stats["count"],
        "errors": errors[0],
        "seconds": round(seconds, 3),
        "rps": round(stats["count"] / seconds, 1),
        "p50_ms": stats["p50_ms"],
        "p90_ms": stats["p90_ms"],
        "p99_ms": stats["p99_ms"],
        "max_ms": stats["max_ms"],
    }


def one_request(port: int, path: str, body: bytes) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, orjson.loads(response.read() or b"{}")
    finally:
        connection.close()
