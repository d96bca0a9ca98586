"""In-process latency: the service and the floor through Flask's test client, warm, same run.

Role in the benchmark: the measure closest to our own code. Requests alternate between the
service and the floor so both see the same machine state (caches, GC, background threads), and
every loop is bounded by a count and a time budget. The logs still get written (to /dev/null):
their cost is part of every request in production.
Besides wall time, the CPU time of the request thread is recorded: on a machine shared with
other jobs it moves much less than wall time.
"""

from __future__ import annotations

import contextlib
import os
import time

import orjson
from flask import Flask

from .app import FLOOR_PATH, SERVICE_PATH
from .stats import summary

WARMUP = 3


class BenchError(RuntimeError):
    """The service did not answer a benchmark request with 200."""


def post(client, path: str, body: bytes):
    return client.post(path, data=body, content_type="application/json")


def check_answer(response, path: str) -> dict:
    if response.status_code != 200:
        raise BenchError(f"{path} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
    return orjson.loads(response.get_data())


def measure(app: Flask, body: bytes, max_pairs: int, budget_s: float) -> dict:
    """p50/p99 of the service and of the floor on `body`, alternating, bounded by count and time."""
    client = app.test_client()
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        first = check_answer(post(client, SERVICE_PATH, body), SERVICE_PATH)
        check_answer(post(client, FLOOR_PATH, body), FLOOR_PATH)
        for _ in range(WARMUP):
            post(client, SERVICE_PATH, body)
            post(client, FLOOR_PATH, body)
        recorder = app.extensions["lumbar_cds"].recorder
        if hasattr(recorder, "flush"):
            recorder.flush()  # judgements queued by an earlier size are not written during this one
        wall: dict[str, list[float]] = {SERVICE_PATH: [], FLOOR_PATH: []}
        cpu: dict[str, list[float]] = {SERVICE_PATH: [], FLOOR_PATH: []}
        deadline = time.perf_counter() + budget_s
        for i in range(max_pairs):
            # Alternate which goes first so neither always follows the other's garbage.
            order = (SERVICE_PATH, FLOOR_PATH) if i % 2 == 0 else (FLOOR_PATH, SERVICE_PATH)
            for path in order:
                started, started_cpu = time.perf_counter(), time.thread_time()
                response = post(client, path, body)
                cpu[path].append(time.thread_time() - started_cpu)
                wall[path].append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise BenchError(f"{path} answered {response.status_code}")
            if time.perf_counter() > deadline:
                break
    result = {"service": summary(wall[SERVICE_PATH]), "floor": summary(wall[FLOOR_PATH])}
    result["ratio_p50"] = round(result["service"]["p50_ms"] / result["floor"]["p50_ms"], 2)
    result["ratio_p99"] = round(result["service"]["p99_ms"] / result["floor"]["p99_ms"], 2)
    # CPU time of the request thread: less disturbed by other processes on a shared machine
    # (the governance writer thread's work is not in it).
    result["cpu_service_p50_ms"] = summary(cpu[SERVICE_PATH])["p50_ms"]
    result["cpu_floor_p50_ms"] = summary(cpu[FLOOR_PATH])["p50_ms"]
    result["cpu_ratio_p50"] = round(result["cpu_service_p50_ms"] / result["cpu_floor_p50_ms"], 2)
    result["cards"] = [
        (card.get("indicator"), (card.get("source") or {}).get("topic", {}).get("code"))
        for card in first.get("cards", [])
    ]
    result["system_actions"] = len(first.get("systemActions") or [])
    return result
