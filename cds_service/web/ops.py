"""The operator's endpoint `GET /metrics`: the service's Prometheus metrics (`cds_service.metrics`).

Role in the data flow: beside the flow, for monitoring. Off (404) unless CDS_METRICS_TOKEN is set;
a scrape must carry the token, as `Authorization: Bearer <token>` (a Prometheus scrape config's
`authorization` or `bearer_token`) or `?token=<token>`, else 401. Under `lumbar-cds serve` the
answer adds up every worker of the instance (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

from cds_service import metrics
from cds_service.hooks.errors import CdsError
from cds_service.web.api import state

ops_bp = Blueprint("ops", __name__)


def _require_metrics_token() -> None:
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        raise CdsError("LCDS-1404P")  # off: the endpoint does not exist
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else request.args.get("token", "")
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise CdsError("LCDS-1401")


@ops_bp.get("/metrics")
def scrape() -> Response:
    _require_metrics_token()
    recorder = state().recorder
    metrics.store_stats(recorder, recorder.stats())  # this worker's store counters, up to now
    body, content_type = metrics.exposition()
    return Response(body, status=200, content_type=content_type)
