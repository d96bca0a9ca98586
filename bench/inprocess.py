"""In-process latency: the service and the floor through Flask's test client, warm, same run.

Role in the benchmark: the measure closest to our own code. Requests alternate between the
service and the floor so both see the same machine state (caches, GC, background threads), and
every loop is bounded by a count and a time budget. The logs still get written (to /dev/null):
their cost is part of every request in production.
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
        service: list[float] = []
        floor: list[float] = []
        deadline = time.perf_counter() + budget_s
        for i in range(max_pairs):
            # Alternate which goes first so neither always follows the other's garbage.
            order = ((SERVICE_PATH, service), (FLOOR_PATH, floor))
            for path, samples in order if i % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                response = post(client, path, body)
                samples.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise BenchError(f"{path} answered {response.status_code}")
            if time.perf_counter() > deadline:
                break
    result = {"service": summary(service), "floor": summary(floor)}
    result["ratio_p50"] = round(result["service"]["p50_ms"] / result["floor"]["p50_ms"], 2)
    result["ratio_p99"] = round(result["service"]["p99_ms"] / result["floor"]["p99_ms"], 2)
    result["cards"] = [
        (card.get("indicator"), (card.get("source") or {}).get("topic", {}).get("code"))
        for card in first.get("cards", [])
    ]
    result["system_actions"] = len(first.get("systemActions") or [])
    return result
