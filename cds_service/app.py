"""The app factory: `create_app(config)` wires settings, components and blueprints.

Role in the data flow: built once per process. Everything that can be done at start-up is done
here (value sets loaded and card templates compiled by the Evaluator, the thread pool for FHIR
fetches, the governance store), so the per-request path only does per-request work.
"""

from __future__ import annotations

import atexit
import gc
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from cds_service.config import load_settings
from cds_service.governance.store import create_recorder
from cds_service.hooks.errors import CdsError
from cds_service.hooks.registry import ServiceRegistry
from cds_service.logs import configure_logging, log_event, said_once, warn_once
from cds_service.pipeline import Evaluator
from cds_service.security import auth
from cds_service.web.api import api, json_response, log_request
from cds_service.web.memory import limit_malloc_arenas

# The environ key where web.serving.BufferedWsgi puts the perf_counter() of a request's arrival.
RECEIVED_AT = "lumbar_cds.received_at"
# Werkzeug's HTTP errors mapped onto our numbered messages.
_HTTP_TO_CODE = {404: "LCDS-1404P", 405: "LCDS-1405", 413: "LCDS-1413", 415: "LCDS-1415", 429: "LCDS-1429"}


@dataclass
class CdsState:
    registry: ServiceRegistry
    evaluator: Evaluator
    executor: ThreadPoolExecutor
    recorder: Any  # store.Recorder: record(request, result, now), close()


def create_app(config: dict | None = None) -> Flask:
    settings = load_settings(config)
    limit_malloc_arenas()  # before the request threads exist (web/memory.py)
    logger = configure_logging(settings["LOG_LEVEL"], bool(settings.get("LOG_THIRD_PARTY", False)))

    app = Flask(__name__)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]
    app.json.sort_keys = False

    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fhir-fetch")
    evaluator = Evaluator(settings)
    app.extensions["lumbar_cds"] = CdsState(
        registry=ServiceRegistry(prefetch=evaluator.query_plan.templates()),
        evaluator=evaluator,
        executor=executor,
        recorder=create_recorder(settings),
    )

    def shutdown() -> None:
        state = app.extensions["lumbar_cds"]
        state.recorder.close()  # flush queued judgements: nothing accepted is lost
        executor.shutdown(wait=False, cancel_futures=True)

    app.extensions["lumbar_cds_shutdown"] = shutdown
    atexit.register(shutdown)

    # CORS for browser clients such as the CDS Hooks sandbox (clinical-specification.md §7.6).
    CORS(
        app,
        resources={r"/cds-services*": {"origins": list(settings["CORS_ORIGINS"])}},
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )

    # The request's clock starts first, before the JWT check (`ms` and the latency histogram
    # include authentication); under `serve`, at the first byte (web.serving.BufferedWsgi).
    @app.before_request
    def start_timer():
        g.started = request.environ.get(RECEIVED_AT) or time.perf_counter()

    app.register_blueprint(api)
    from cds_service.governance.dashboard import dashboard_bp
    from cds_service.governance.feedback import feedback_bp
    from cds_service.web.openapi import openapi_bp
    from cds_service.web.ops import ops_bp

    app.register_blueprint(feedback_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(ops_bp)
    auth.init_app(app)
    _warn_at_start_up(settings, logger)

    @app.get("/healthz")
    def healthz():
        return json_response({"status": "ok"})

    app.after_request(log_request)

    @app.errorhandler(CdsError)
    def handle_cds_error(error: CdsError):
        g.error_code = error.code
        if error.code == "LCDS-1412":
            # The answer names the key only; why the fetch failed ("could not connect", "HTTP
            # 404": the network behind fhirServer) is for the operator. Never PHI: see FhirFetchError.
            params = error.params or {}
            log_event(logger, "required data unavailable", 30, key=params.get("key"),
                      reason=params.get("reason"), hookInstance=(g.get("hook_instance") or "")[:64])
        response = json_response(error.to_json(), error.status)
        if error.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        code = _HTTP_TO_CODE.get(error.code or 0)
        if code is None:
            body = {"error": {"code": f"LCDS-HTTP-{error.code}", "status": error.code, "message": error.name}}
            g.error_code = body["error"]["code"]
            return json_response(body, error.code or 500)
        params = {"method": request.method, "limit": settings["MAX_BODY_BYTES"]}
        response = handle_cds_error(CdsError(code, params))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(error.valid_methods))  # RFC 9110 15.5.6
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        reference = uuid.uuid4().hex[:12]
        log_event(
            logger, "unhandled error", 40, reference=reference, path=request.path,
            exception=type(error).__name__,
        )
        logger.debug("unhandled error traceback", exc_info=error)
        return handle_cds_error(CdsError("LCDS-1500", {"reference": reference}))

    if not app.testing:
        # Everything built so far lives as long as the process: move it out of the cyclic GC's
        # reach, so the collections a large request body sets off do not rescan it each time
        # (`make bench`, CPU per call at N = 3 000: service 164 -> 96 ms, floor 95 -> 25 ms).
        # Skipped under TESTING, where many apps come and go in one process.
        gc.collect()
        gc.freeze()
    return app


_warned = said_once  # the one-time warnings seen (tests clear it)


def _warn_at_start_up(settings: dict, logger) -> None:
    """Deployment choices that weaken a guarantee, said once per process group at start-up."""
    if not settings.get("AUTH_REQUIRED"):
        return
    if not settings.get("FHIR_ALLOWED_ORIGINS"):
        warn_once(logger, "allowlist", "authentication is on but CDS_FHIR_ALLOWED_ORIGINS is empty: any "
                  "https fhirServer a client names is called; set the allowlist in production")
