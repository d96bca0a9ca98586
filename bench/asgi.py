"""gunicorn entry point of the benchmark under the product's serving: the bench app (service and
floor) behind `web.serving.BufferedWsgi`, run by `web.serving.CdsUvicornWorker`, as `lumbar-cds
serve` runs the product; BENCH_THREADS threads per worker (default 8, as serve)."""

import os

from bench.app import create_bench_app
from cds_service.web.serving import BufferedWsgi

_app = create_bench_app()
app = BufferedWsgi(_app, threads=int(os.environ.get("BENCH_THREADS", "8")), max_body=int(_app.config["MAX_BODY_BYTES"]),
                   on_shutdown=_app.extensions["lumbar_cds_shutdown"])
