"""The benchmark's app: the real service plus a floor endpoint (never shipped in the product).

Role in the benchmark: the floor answers `{"cards": []}` after doing only what every hook call
must do at the least: read the body and parse it with orjson, as `cds_service.web.api` does. It sits
in the same app behind the same before/after-request hooks (timer, request log, CORS), so the
ratio service / floor is the cost of our own work: limits, envelope, gathering, the pathway,
cards and the governance record.
"""

from __future__ import annotations

import orjson
from flask import Flask, request

from cds_service.app import create_app
from cds_service.web.api import json_response

FLOOR_PATH = "/bench/floor"
SERVICE_PATH = "/cds-services/lumbar-imaging-order-select"

# N = 10 000 resources is about 9.4 MB of JSON, above the 5 MB default: the benchmark raises the
# body cap so the largest size is measured rather than refused (413).
MAX_BODY_BYTES = 64_000_000


def bench_settings(database_path: str) -> dict:
    return {"DATABASE_PATH": database_path, "MAX_BODY_BYTES": MAX_BODY_BYTES}


def add_floor(app: Flask) -> Flask:
    @app.post(FLOOR_PATH)
    def bench_floor():
        orjson.loads(request.get_data(cache=False))
        return json_response({"cards": []})

    return app


def create_bench_app(config: dict | None = None) -> Flask:
    return add_floor(create_app(config))
