"""The CDS Hooks 2.0 Feedback endpoint: `POST /cds-services/<service_id>/feedback`.

Role in the data flow: after a card was shown, the CDS client reports what the clinician did
with it (CDS Hooks 2.0 "Feedback"): `accepted` with the suggestions taken, or `overridden` with
the reason chosen from the card's `overrideReasons` and a comment. Each item is validated (400
naming the item index and the problem), joined to the judgement that issued the card, and stored
once however often the client retries (same card + outcome + outcomeTimestamp). Feedback about a
card uuid the store never recorded is kept as an *orphan* and counted, not refused: a client may
replay feedback across a deployment or a store reset.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from cds_service.governance.store import naive_utc
from cds_service.hooks.errors import CdsError
from cds_service.logs import get_logger, log_event
from cds_service.web.api import json_response, parse_json_body, state

feedback_bp = Blueprint("feedback", __name__)
log = get_logger("feedback")

OUTCOMES = ("accepted", "overridden")
MAX_ITEMS = 1000
MAX_ID = 128
MAX_COMMENT = 4000


def _bad(index: int, reason: str) -> CdsError:
    return CdsError("LCDS-1010", {"index": index, "reason": reason}, field=f"feedback[{index}]")


def _string(value, index: int, name: str, limit: int, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise _bad(index, f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise _bad(index, f"'{name}' must be a string")
    if required and not value.strip():
        raise _bad(index, f"'{name}' must not be empty")
    if len(value) > limit:
        raise _bad(index, f"'{name}' is longer than {limit} characters")
    if "\x00" in value:
        # PostgreSQL refuses NUL in text: a 400 the client can act on, not a 503 it would retry.
        raise _bad(index, f"'{name}' must not contain the NUL character (U+0000)")
    return value


def parse_timestamp(value, index: int) -> datetime:
    text = _string(value, index, "outcomeTimestamp", 64)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(index, "'outcomeTimestamp' is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        # CDS Hooks 2.0: an ISO 8601 instant; without an offset the moment is ambiguous.
        raise _bad(index, "'outcomeTimestamp' must include a time zone offset (e.g. Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-10:00 or 0001-01-01T00:30:00+01:00: no such instant in UTC.
        raise _bad(index, "'outcomeTimestamp' is out of range (years 1 to 9999 in UTC)") from None


def parse_item(item, index: int) -> dict:
    """One feedback item (CDS Hooks 2.0 "Feedback") as a store row, or a CdsError saying why not."""
    if not isinstance(item, dict):
        raise _bad(index, "must be an object")
    card = _string(item.get("card"), index, "card", MAX_ID)
    outcome = item.get("outcome")
    if outcome not in OUTCOMES:
        raise _bad(index, "'outcome' must be 'accepted' or 'overridden'")
    outcome_at = parse_timestamp(item.get("outcomeTimestamp"), index)

    accepted: list[str] = []
    raw_accepted = item.get("acceptedSuggestions")
    if outcome == "accepted":
        # Required for accepted outcomes: which of the card's suggestions the user took.
        if not isinstance(raw_accepted, list) or not raw_accepted:
            raise _bad(index, "'acceptedSuggestions' must be a non-empty array when outcome is 'accepted'")
        for position, suggestion in enumerate(raw_accepted):
            if not isinstance(suggestion, dict):
                raise _bad(index, f"'acceptedSuggestions[{position}]' must be an object with 'id'")
            accepted.append(_string(suggestion.get("id"), index, f"acceptedSuggestions[{position}].id", MAX_ID))
    elif raw_accepted not in (None, []):
        raise _bad(index, "'acceptedSuggestions' is only allowed when outcome is 'accepted'")

    system = code = display = comment = None
    override = item.get("overrideReason")
    if override is not None:
        if outcome != "overridden":
            raise _bad(index, "'overrideReason' is only allowed when outcome is 'overridden'")
        if not isinstance(override, dict):
            raise _bad(index, "'overrideReason' must be an object")
        reason = override.get("reason")
        if reason is not None:
            # A Coding. The sandbox sends only `code` and `system`: `display` is optional.
            if not isinstance(reason, dict):
                raise _bad(index, "'overrideReason.reason' must be a Coding object")
            code = _string(reason.get("code"), index, "overrideReason.reason.code", MAX_ID)
            system = _string(reason.get("system"), index, "overrideReason.reason.system", 256, required=False)
            display = _string(reason.get("display"), index, "overrideReason.reason.display", 256, required=False)
        comment = _string(override.get("userComment"), index, "overrideReason.userComment", MAX_COMMENT,
                          required=False)

    # Idempotency: a retried POST carries the same card, outcome and instant.
    key = f"{card}|{outcome}|{outcome_at.isoformat()}"
    return {
        "dedupe_key": hashlib.sha256(key.encode()).hexdigest(),
        "card_uuid": card,
        "outcome": outcome,
        "outcome_at": naive_utc(outcome_at),
        "accepted_suggestions": accepted,
        "override_system": system,
        "override_code": code,
        "override_display": display,
        "user_comment": comment or None,
    }


def parse_feedback(body: dict) -> list[dict]:
    items = body.get("feedback")
    if items is None:
        raise CdsError("LCDS-1003", {"field": "feedback"}, field="feedback")
    if not isinstance(items, list):
        raise CdsError("LCDS-1004", {"field": "feedback", "expected": "array"}, field="feedback")
    if not items:
        raise CdsError("LCDS-1006", {"field": "feedback", "reason": "must hold at least one item"},
                       field="feedback")
    if len(items) > MAX_ITEMS:
        raise CdsError("LCDS-1414", {"field": "feedback", "limit": MAX_ITEMS}, field="feedback")
    return [parse_item(item, index) for index, item in enumerate(items)]


@feedback_bp.post("/cds-services/<service_id>/feedback")
def receive_feedback(service_id: str):
    cds = state()
    service = cds.registry.get(service_id)
    if service is None:
        raise CdsError("LCDS-1404", {"service": service_id[:64]})
    rows = parse_feedback(parse_json_body())
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
