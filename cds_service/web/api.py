"""The thin controller: discovery and the hook endpoints (CDS Hooks 2.0 "Discovery", "Calling").

Role in the data flow: the HTTP edge. Request -> parse the JSON body and check its size and depth
-> the service entry point (`service.CdsService`: the contract, gathering, the pathway,
recording) -> JSON response. Every failure is a `CdsError`, rendered as JSON by `web.errors`;
nothing here knows clinical rules or the pipeline's stages.
"""

from __future__ import annotations

import logging
import time

import orjson
from flask import Blueprint, Response, current_app, g, request

from cds_service import metrics
from cds_service.hooks.errors import CdsError
from cds_service.logs import get_logger, log_event
from cds_service.web.limits import check_raw_depth

api = Blueprint("api", __name__)
log = get_logger("api")

JSON_MIMETYPES = {"application/json", "application/fhir+json"}


def json_response(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def state():
    """The app's `service.CdsService` (set by app.init_service)."""
    return current_app.extensions["lumbar_cds"]


def parse_json_body() -> dict:
    """The request body as a JSON object, its size and nesting depth checked."""
    if request.mimetype not in JSON_MIMETYPES:
        raise CdsError("LCDS-1415")
    raw = request.get_data(cache=False)  # Flask enforces MAX_CONTENT_LENGTH here (413)
    limit = current_app.config["MAX_BODY_BYTES"]
    if request.content_length is None and len(raw) >= limit and request.environ["wsgi.input"].read(1):
        # A chunked body is cut at the limit by the input stream, silently: say 413, not "not JSON".
        raise CdsError("LCDS-1413", {"limit": limit})
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CdsError("LCDS-1001") from None
    if not isinstance(body, dict):
        raise CdsError("LCDS-1002")
    check_raw_depth(raw, current_app.config["MAX_JSON_DEPTH"])  # on the bytes: a walk of the dicts costs ~4x
    return body


@api.get("/cds-services")
def discovery():
    return json_response(state().registry.discovery_json())


@api.post("/cds-services/<service_id>")
def call_service(service_id: str):
    """A hook call: the JSON body to the service (`service.CdsService`), its answer back."""
    service = state()
    g.service_id = service_id if service.registry.get(service_id) else "(unknown)"
    service.definition(service_id)  # an unknown service is 404 whatever the body
    hook_call = service.read_request(service_id, parse_json_body())
    g.hook_instance = hook_call.hook_instance
    return json_response(service.answer(hook_call, url_root=request.url_root).response)


def log_request(response: Response) -> Response:
    """Structured request log and the latency metric: service id, hookInstance, status, duration
    (from the request's arrival, authentication included). No PHI, no tokens."""
    started = g.get("started")
    if started is not None and request.endpoint != "static":
        seconds = time.perf_counter() - started
        route = request.url_rule.rule if request.url_rule else "(no route)"
        metrics.request_done(route, request.method, response.status_code, seconds)
        recorder = current_app.extensions["lumbar_cds"].recorder
        metrics.store_stats(recorder, recorder.stats())
        fields = {
            "method": request.method,
            "path": route,
            "status": response.status_code,
            "ms": round(seconds * 1000, 2),
        }
        if g.get("service_id"):
            fields["service"] = g.service_id
        if g.get("hook_instance"):
            fields["hookInstance"] = g.hook_instance[:64]
        if g.get("error_code"):
            fields["error"] = g.error_code
        level = logging.WARNING if response.status_code >= 400 else logging.INFO
        log_event(log, "request", level, **fields)
    return response
