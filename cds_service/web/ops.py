"""The operator's endpoints: `GET /readyz` (can this replica answer hooks?) and `GET /metrics`
(the service's Prometheus metrics, `cds_service.metrics`).

Role in the data flow: beside the flow, for load balancers and monitoring. `/readyz` is 200
while the replica can answer hooks, including during a store outage the spool covers (the body
and the metric `lumbar_cds_store_reachable` say so); 503 when the schema is behind or the spool is
full. `/healthz` (liveness) stays in the app factory. `/metrics` is Off (404) unless CDS_METRICS_TOKEN is set;
a scrape must carry the token, as `Authorization: Bearer <token>` (a Prometheus scrape config's
`authorization` or `bearer_token`) or `?token=<token>`, else 401. Under `lumbar-cds serve` the
answer adds up every worker of the instance (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

from cds_service import metrics
from cds_service.hooks.errors import CdsError
from cds_service.web.api import json_response, state

ops_bp = Blueprint("ops", __name__)


def _require_metrics_token() -> None:
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        raise CdsError("LCDS-1404P")  # off: the endpoint does not exist
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else request.args.get("token", "")
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise CdsError("LCDS-1401")


@ops_bp.get("/readyz")
def readyz() -> Response:
    ready, body = state().recorder.readiness()
    metrics.store_reachable(body.get("store") != "unreachable" if ready else None)
    return json_response(body, 200 if ready else 503)


@ops_bp.get("/metrics")
def scrape() -> Response:
    _require_metrics_token()
    recorder = state().recorder
    ready, body = recorder.readiness()
    metrics.store_reachable(body.get("store") != "unreachable" if ready else None)
    metrics.store_stats(recorder, recorder.stats())  # this worker's store counters, up to now
    body, content_type = metrics.exposition()
    return Response(body, status=200, content_type=content_type)
