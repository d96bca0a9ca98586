"""The app factory: `create_app(config)` wires settings, the service and the HTTP edge.

Role in the data flow: built once per process, in small `init_*` steps (as Flask's tutorial
does with `db.init_app(app)`). Everything that can be done at start-up is done here (value sets
loaded and card templates compiled by the Evaluator, the governance store opened, both inside
`CdsService.start`), so the per-request path only does per-request work.
"""

from __future__ import annotations

import atexit
import gc
import time

from flask import Flask, g, request
from flask_cors import CORS

from cds_service.config import load_settings
from cds_service.governance.screen import init_screen
from cds_service.logs import configure_logging, said_once, warn_once
from cds_service.security import auth
from cds_service.service import CdsService
from cds_service.warmup import warm_edge
from cds_service.web.api import api, json_response, log_request
from cds_service.web.errors import init_error_handlers
from cds_service.web.memory import limit_malloc_arenas

# The environ key where web.serving.BufferedWsgi puts the perf_counter() of a request's arrival.
RECEIVED_AT = "lumbar_cds.received_at"


def create_app(config: dict | None = None) -> Flask:
    settings = load_settings(config)
    limit_malloc_arenas()  # before the request threads exist (web/memory.py)
    logger = configure_logging(settings["LOG_LEVEL"], bool(settings.get("LOG_THIRD_PARTY", False)))
    app = Flask(__name__)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]
    app.json.sort_keys = False
    init_service(app, CdsService.start(settings))
    init_cors(app, settings)
    init_request_clock(app)
    init_blueprints(app)
    init_screen(app, settings)  # the red-flag screen's page and store (clinical-specification.md §12)
    auth.init_app(app)
    _warn_at_start_up(settings, logger)
    init_health(app)
    app.after_request(log_request)
    init_error_handlers(app)
    warm_edge(app)  # the pipeline was warmed by CdsService.start (warmup.py)
    if not app.testing:
        freeze_start_up_objects()
    return app


def init_service(app: Flask, service: CdsService) -> None:
    """The one service the views call (`app.extensions["lumbar_cds"]`), and its shutdown."""
    app.extensions["lumbar_cds"] = service
    app.extensions["lumbar_cds_shutdown"] = service.close  # flush queued judgements
    atexit.register(service.close)


def init_cors(app: Flask, settings: dict) -> None:
    # CORS for browser clients such as the CDS Hooks sandbox (clinical-specification.md §7.6).
    CORS(
        app,
        resources={r"/cds-services*": {"origins": list(settings["CORS_ORIGINS"])}},
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )


def init_request_clock(app: Flask) -> None:
    # The request's clock starts first, before the JWT check (`ms` and the latency histogram
    # include authentication); under `serve`, at the first byte (web.serving.BufferedWsgi).
    @app.before_request
    def start_timer():
        g.started = request.environ.get(RECEIVED_AT) or time.perf_counter()


def init_blueprints(app: Flask) -> None:
    from cds_service.governance.dashboard import dashboard_bp
    from cds_service.governance.feedback import feedback_bp
    from cds_service.web.openapi import openapi_bp
    from cds_service.web.ops import ops_bp

    for blueprint in (api, feedback_bp, dashboard_bp, openapi_bp, ops_bp):
        app.register_blueprint(blueprint)


def init_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz():
        return json_response({"status": "ok"})


def freeze_start_up_objects() -> None:
    # Everything built so far lives as long as the process: move it out of the cyclic GC's
    # reach, so the collections a large request body sets off do not rescan it each time
    # (`make bench`, CPU per call at N = 3 000: service 164 -> 96 ms, floor 95 -> 25 ms).
    # Skipped under TESTING, where many apps come and go in one process.
    gc.collect()
    gc.freeze()


_warned = said_once  # the one-time warnings seen (tests clear it)


def _warn_at_start_up(settings: dict, logger) -> None:
    """Deployment choices that weaken a guarantee, said once per process group at start-up."""
    if not settings.get("AUTH_REQUIRED"):
        return
    if not settings.get("FHIR_ALLOWED_ORIGINS"):
        warn_once(logger, "allowlist", "authentication is on but CDS_FHIR_ALLOWED_ORIGINS is empty: any "
                  "https fhirServer a client names is called; set the allowlist in production")
