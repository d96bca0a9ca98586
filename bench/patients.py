"""A new patient on every call against one request repeated: what the content caches are worth.

Role in the benchmark: `make bench` repeats one request, so every cache keyed by content hits
(resource contents found valid, the prefilter's verdicts, dates, medicine names, value-set
look-ups). Here, in process and warm at N = 300, three streams alternate call by call: the same
request again, the request of a patient never seen before (`payloads.new_patient_body`: every
resource refers to that patient, the vital signs differ), and the floor on that same new body.
Figures: CPU time of the request thread, p50 and p90 (steadier than wall time on a shared
machine). Not part of `make bench`; the README quotes a run.

    python -m bench.patients [--n 300] [--calls 300]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import orjson

from . import payloads
from .app import FLOOR_PATH, SERVICE_PATH, bench_settings, create_bench_app
from .inprocess import WARMUP, BenchError, check_answer, post
from .stats import summary


def measure(n: int = 300, calls: int = 300) -> dict:
    """CPU p50/p90 (ms) of `calls` calls of each stream; every new-patient body is used once."""
    repeated = payloads.hook_body(n)
    new_patients = [payloads.new_patient_body(n, index) for index in range(1, calls + 1)]
    cpu: dict[str, list[float]] = {"repeated request": [], "new patient": [], "floor (new patient)": []}
    with tempfile.TemporaryDirectory(prefix="lcds-bench-patients-") as folder, \
            open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        app = create_bench_app(bench_settings(str(Path(folder) / "store.sqlite3")))
        try:
            client = app.test_client()
            check_answer(post(client, SERVICE_PATH, repeated), SERVICE_PATH)
            for _ in range(WARMUP):
                post(client, SERVICE_PATH, repeated)
                post(client, FLOOR_PATH, repeated)
            for body in new_patients:
                for stream, path, sent in (("repeated request", SERVICE_PATH, repeated),
                                           ("new patient", SERVICE_PATH, body),
                                           ("floor (new patient)", FLOOR_PATH, body)):
                    started = time.thread_time()
                    response = post(client, path, sent)
                    cpu[stream].append(time.thread_time() - started)
                    if response.status_code != 200:
                        raise BenchError(f"{path} answered {response.status_code}")
        finally:
            app.extensions["lumbar_cds_shutdown"]()
    figures = {stream: {k: v for k, v in summary(samples).items() if k in ("count", "p50_ms", "p90_ms")}
               for stream, samples in cpu.items()}
    return {"n": n, "cpu": figures,
            "new_over_repeated_p50": round(figures["new patient"]["p50_ms"] / figures["repeated request"]["p50_ms"], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    print(orjson.dumps(measure(args.n, args.calls), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
