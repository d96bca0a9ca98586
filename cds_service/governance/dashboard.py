"""The governance dashboard: `GET /dashboard` (page) and `GET /dashboard/data` (JSON).

Role in the data flow: has the store count a period (`Store.report`: GROUP BY in the database,
the pure `report` module's figures), and shows them: cards per day by topic, override rate by
topic, override reasons, and the per-topic table of `lumbar-cds report`. Off (404) unless
CDS_DASHBOARD_TOKEN is set; every page and data request must carry the token, as
`Authorization: Bearer <token>` or, for a browser address bar, `?token=<token>`. The charting
library (plotly.js, shipped inside the plotly Python package) is served by the app itself: a
hospital network may have no route to a CDN.
"""

from __future__ import annotations

import hmac
from datetime import date
from pathlib import Path

from flask import Blueprint, current_app, render_template, request, send_file
from sqlalchemy.exc import SQLAlchemyError

from cds_service.governance.rendering import chart_data
from cds_service.governance.screen.counts import load_screen_counts
from cds_service.governance.store.labels import load_reason_labels
from cds_service.hooks.errors import CdsError
from cds_service.logs import get_logger, log_event
from cds_service.web.api import json_response, state

dashboard_bp = Blueprint("dashboard", __name__, template_folder="templates")
log = get_logger("dashboard")

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}

# The page runs only our own scripts; plotly injects <style> elements, hence 'unsafe-inline'
# for styles only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _store():
    """The store when the dashboard is on; 404 otherwise (the page does not exist)."""
    token = current_app.config.get("DASHBOARD_TOKEN")
    store = getattr(state().recorder, "store", None)
    if not token or store is None:
        raise CdsError("LCDS-1404P")
    return store


def _require_token() -> None:
    expected = current_app.config["DASHBOARD_TOKEN"].encode()
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else request.args.get("token", "")
    if not given or not hmac.compare_digest(given.encode(), expected):
        raise CdsError("LCDS-1401")


def _date_arg(name: str) -> date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CdsError("LCDS-1006", {"field": name, "reason": "must be a date YYYY-MM-DD"}, field=name) from None


def _period_report(store) -> dict:
    since, until = _date_arg("since"), _date_arg("until")
    if since and until and since > until:
        raise CdsError("LCDS-1006", {"field": "since", "reason": "must not be after 'until'"}, field="since")
    labels = current_app.extensions.get("lumbar_cds_reason_labels")
    if labels is None:  # read once: the card content does not change while the app runs
        labels = current_app.extensions["lumbar_cds_reason_labels"] = load_reason_labels(
            current_app.config.get("CARDS_DIR"))
    try:
        report = store.report(since, until, labels)  # counted in the database, not in this worker
        screens = load_screen_counts(store.engine, since, until)  # the red-flag screen (§12.5)
    except SQLAlchemyError as error:
        log_event(log, "governance store unavailable for the dashboard", 40, exception=type(error).__name__)
        raise CdsError("LCDS-1503") from None
    return {**report, "screen": screens}


def _private(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the ?token= must not leak onwards
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@dashboard_bp.get("/dashboard")
def page():
    store = _store()
    _require_token()
    report = _period_report(store)
    html = render_template(
        "dashboard.html", report=report, charts=chart_data(report),
        token=request.args.get("token", ""),
    )
    response = current_app.response_class(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    return _private(response)


@dashboard_bp.get("/dashboard/data")
def data():
    store = _store()
    _require_token()
    report = _period_report(store)
    return _private(json_response({"report": report, "charts": chart_data(report)}))


@dashboard_bp.get("/dashboard/assets/<name>")
def asset(name: str):
    """Our script and style, and plotly.js: public code holding no data, so no token needed."""
    _store()
    if name == "plotly.min.js":
        path, mimetype = plotly_js_path(), "text/javascript"
    elif name in ASSETS:
        path, mimetype = STATIC_DIR / name, ASSETS[name]
    else:
        raise CdsError("LCDS-1404P")
    response = send_file(path, mimetype=mimetype, max_age=3600, conditional=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
