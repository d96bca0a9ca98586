"""The thin controller: discovery and the hook endpoints (CDS Hooks 2.0 "Discovery", "Calling").

Role in the data flow: request -> parse JSON and check limits -> validate the envelope
(`hooks.envelope`) -> gather data (`gather`) -> evaluate (`pipeline`) -> record the judgements
(governance store) -> response. Every stage's failure is a `CdsError`, rendered as JSON by the
app's error handlers; nothing here knows clinical rules.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson
from flask import Blueprint, Response, current_app, g, request

from cds_service import metrics
from cds_service.gather.prefetch import gather
from cds_service.hooks.envelope import parse_hook_request
from cds_service.hooks.errors import CdsError
from cds_service.logs import get_logger, log_event
from cds_service.security.outbound import check_fhir_server
from cds_service.web.limits import check_bundle_sizes, check_judged_orders, check_raw_depth

api = Blueprint("api", __name__)
log = get_logger("api")

JSON_MIMETYPES = {"application/json", "application/fhir+json"}


def json_response(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def state():
    return current_app.extensions["lumbar_cds"]


def parse_json_body() -> dict:
    """The request body as a JSON object, with the structural limits checked."""
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
    settings = current_app.config
    check_raw_depth(raw, settings["MAX_JSON_DEPTH"])  # on the bytes: a walk of the dicts costs ~4x
    check_bundle_sizes(body, settings["MAX_BUNDLE_ENTRIES"])
    return body


@api.get("/cds-services")
def discovery():
    return json_response(state().registry.discovery_json())


@api.post("/cds-services/<service_id>")
def call_service(service_id: str):
    cds = state()
    service = cds.registry.get(service_id)
    g.service_id = service_id if service else "(unknown)"
    if service is None:
        raise CdsError("LCDS-1404", {"service": service_id[:64]})
    body = parse_json_body()
    hook_request = parse_hook_request(body, service)
    g.hook_instance = hook_request.hook_instance

    settings = current_app.config
    check_judged_orders(hook_request.hook, hook_request.selections, hook_request.draft_orders,
                        int(settings.get("MAX_JUDGED_ORDERS", 50)))
    if hook_request.fhir_server:
        why = check_fhir_server(
            hook_request.fhir_server, settings["FHIR_PLAIN_HTTP_HOSTS"], settings["FHIR_ALLOWED_ORIGINS"]
        )
        if why:
            raise CdsError("LCDS-1009", {"field": "fhirServer", "reason": why}, field="fhirServer")

    # One clock for the call: the date floors of the FHIR searches and the reference date agree.
    now = datetime.now(UTC)
    started = time.perf_counter()
    gathered = gather(hook_request, service, settings, cds.evaluator.query_plan, now.date())
    g.gather_ms = round((time.perf_counter() - started) * 1000, 2)
    if gathered.fetched or gathered.incomplete:
        log_event(
            log, "prefetch gathered", service=service.id, hookInstance=hook_request.hook_instance,
            fetched=sorted(gathered.fetched), requests=gathered.requests,
            incomplete={key: kind for key, kind in sorted(gathered.incomplete.items())},
            unavailable_reasons=sorted(set(gathered.unavailable.values())), ms=g.gather_ms,
        )

    # The red-flag screen (clinical-specification.md §12): the patient's attested answers in, the
    # screen's link out (governance.screen; absent when CDS_SCREEN_ENABLED is false).
    screen = current_app.extensions.get("lumbar_cds_screen")
    attested = screen.attested_for(hook_request, now) if screen else None
    result = cds.evaluator.evaluate(hook_request, gathered, now, attested)
    if screen:
        screen.after_call(hook_request, result, now, request.url_root)
    cds.recorder.record(hook_request, result, now)
    metrics.judged(result.judgements)

    if settings["MODE"] == "silent":
        # Silent mode (pilot a rule before turning it on): decided and recorded, nothing shown.
        return json_response({"cards": []})
    return json_response(result.response)


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
