"""The CDS Hooks 2.0 Feedback endpoint: `POST /cds-services/<service_id>/feedback`.

Role in the data flow: after a card was shown, the CDS client reports what the clinician did
with it (CDS Hooks 2.0 "Feedback"): `accepted` with the suggestions taken, or `overridden` with
the reason chosen from the card's `overrideReasons` and a comment. The body is validated against
the contract (`hooks.feedback`: 400 naming the item index and the problem); here each item is
joined to the judgement that issued the card, and stored once however often the client retries
(same card + outcome + outcomeTimestamp). Feedback about a card uuid the store never recorded is
kept as an *orphan* and counted, not refused: a client may replay feedback across a deployment
or a store reset. Every override reason an item gives (Epic's `overrideReasons` may hold several)
is kept in `override_reasons`; the first also fills the single reason columns.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from flask import Blueprint, current_app
from sqlalchemy.exc import SQLAlchemyError

from cds_service.governance.store import naive_utc
from cds_service.hooks.errors import CdsError
from cds_service.hooks.feedback import FeedbackItem, parse_feedback_body
from cds_service.logs import get_logger, log_event
from cds_service.web.api import json_response, parse_json_body, state
from cds_service.web.limits import check_bundle_sizes

feedback_bp = Blueprint("feedback", __name__)
log = get_logger("feedback")


def store_row(item: FeedbackItem) -> dict:
    """One validated feedback item (hooks.feedback) as a row of the store."""
    accepted = [suggestion.id for suggestion in item.acceptedSuggestions or ()]
    codings = [r.reason for r in item.reasons if r.reason]
    reason = codings[0] if codings else None
    comments = [r.userComment for r in item.reasons if r.userComment and r.userComment.strip()]
    # Idempotency: a retried POST carries the same card, outcome and instant.
    key = f"{item.card}|{item.outcome}|{item.outcomeTimestamp.isoformat()}"
    return {
        "dedupe_key": hashlib.sha256(key.encode()).hexdigest(),
        "card_uuid": item.card,
        "outcome": item.outcome,
        "outcome_at": naive_utc(item.outcomeTimestamp),
        "accepted_suggestions": accepted,
        "override_system": reason.system if reason else None,
        "override_code": reason.code if reason else None,
        "override_display": reason.display if reason else None,
        "override_reasons": [{"system": c.system, "code": c.code, "display": c.display} for c in codings] or None,
        "user_comment": "\n".join(dict.fromkeys(comments)) or None,
    }


def parse_feedback(body) -> list[dict]:
    """A feedback body as store rows, or the CdsError of its first problem (400)."""
    return [store_row(item) for item in parse_feedback_body(body).feedback]


@feedback_bp.post("/cds-services/<service_id>/feedback")
def receive_feedback(service_id: str):
    cds = state()
    service = cds.definition(service_id)  # 404 when unknown
    body = parse_json_body()
    check_bundle_sizes(body, current_app.config["MAX_BUNDLE_ENTRIES"])  # as on a hook call
    rows = parse_feedback(body)
    store = getattr(cds.recorder, "store", None)
    if store is None:  # recording is off: acknowledge, keep nothing
        return json_response({"received": len(rows), "stored": 0, "duplicates": 0, "orphans": 0,
                              "recorded": False})
    # A card issued a moment ago may still sit in the writer's queue: write it first, so the
    # item joins its card instead of counting as an orphan.
    cds.recorder.flush(timeout=2.0)
    received_at = naive_utc(datetime.now(UTC))
    for row in rows:
        row["received_at"] = received_at
        row["service_id"] = service.id
    try:
        counts = store.insert_feedback(rows)
    except SQLAlchemyError as error:
        # The client may retry: items are idempotent, so a retry after an outage stores each once.
        log_event(log, "governance store unavailable for feedback", 40, exception=type(error).__name__)
        raise CdsError("LCDS-1503") from None
    return json_response(dict(counts.to_json(), recorded=True))
