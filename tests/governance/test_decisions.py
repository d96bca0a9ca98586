"""Governance counts decisions, not fires: order-select fires on every edit of an order.

Against the embedded SQLite and the local PostgreSQL: the report the database counts
(`Store.report`) and the pure report over the same rows agree, and three fires of one order
within the window count as one decision, the raw fires as a second figure.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.governance.feedback import parse_feedback
from cds_service.governance.report import build_report

from .support import CPT, SELECT, accepted, early_mri_request, overridden

TOPIC = "imaging-before-6-weeks"


def order_select(hook_instance: str) -> dict:
    body = early_mri_request(hook_instance)
    body["hook"] = "order-select"
    body["context"]["selections"] = ["ServiceRequest/order-mri-gov"]
    return body


def test_three_fires_of_one_order_count_as_one_decision(gov_app, gov_client):
    """The sandbox fires order-select three times while one order is entered; the clinician
    overrides the last card (as Epic sends it). One decision shown and overridden, three fires."""
    cards = []
    for n in range(3):
        response = gov_client.post(f"/cds-services/{SELECT}", json=order_select(f"5b0b8c4e-0000-4000-8000-00000000010{n}"))
        assert response.status_code == 200
        (card,) = response.get_json()["cards"]
        cards.append(card)
    recorder = gov_app.extensions["lumbar_cds"].recorder
    recorder.flush()
    feedback = {"card": cards[-1]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-16T09:00:00Z",
                "overrideReasons": [{"reason": {"system": "urn:lumbar-imaging-cds:override-reason",
                                                "code": "specialist-request"}}]}
    assert gov_client.post(f"/cds-services/{SELECT}/feedback", json={"feedback": [feedback]}).status_code == 200

    report = recorder.store.report(None, None)
    (figures,) = report["topics"]
    assert (figures["orders_judged"], figures["fires"]) == (1, 3)
    assert (figures["cards_shown"], figures["cards_shown_fires"]) == (1, 3)
    # Suggestions offered once per decision (remove; refer), not 2 x 3.
    assert figures["suggestions_offered"] == len(cards[-1]["suggestions"]) == 2
    assert (figures["overridden"], figures["override_rate"]) == (1, 1.0)
    assert report["totals"]["orders_judged"] == 1 and report["totals"]["fires"] == 3
    assert report["counting"]["unit"] == "decision" and report["counting"]["window_minutes"] == 30
    assert report == build_report(*recorder.store.load_rows(None, None))


def row(at: str, n: int, *, order: str = "ServiceRequest/o-1", patient: str = "a" * 64, topic: str | None = TOPIC,
        rating: str = "not-appropriate", suggestions: int = 2) -> dict:
    card = f"card-{n}" if topic else None
    return {"recorded_at": datetime.fromisoformat(at), "service_id": SELECT, "hook": "order-select",
            "hook_instance": f"hi-{n}", "patient_hash": patient, "order_reference": order,
            "order_code": f"{CPT}|72148", "topic": topic, "indicator": "warning" if topic else None,
            "rating": rating, "card_uuid": card, "consult_id": None,
            "suggestion_uuids": [f"s-{n}-{k}" for k in range(suggestions)] if card else [], "shown": True}


def test_fires_further_apart_than_the_window_are_new_decisions(gov_app):
    store = gov_app.extensions["lumbar_cds"].recorder.store
    store.insert_judgements([
        row("2026-03-02T10:00:00", 1),
        row("2026-03-02T10:20:00", 2),  # 20 min after: the same decision
        row("2026-03-02T10:50:00", 3),  # 30 min after the last fire: still the same (a gap above 30 starts anew)
        row("2026-03-02T11:30:00", 4, rating="appropriate", suggestions=1),  # 40 min later: a second decision
        row("2026-03-02T10:05:00", 5, patient="b" * 64),  # another patient
        row("2026-03-02T10:06:00", 6, order="ServiceRequest/o-2"),  # another order
        row("2026-03-02T10:07:00", 7, topic=None, rating="appropriate"),  # the same order without a card
        row("2026-03-02T23:50:00", 8, order="ServiceRequest/o-3"),
        row("2026-03-03T00:10:00", 9, order="ServiceRequest/o-3"),  # over midnight: counted on its last day
    ])
    report = store.report(None, None)
    assert report == build_report(*store.load_rows(None, None))
    topic, no_card = report["topics"]
    assert (topic["orders_judged"], topic["fires"], topic["cards_shown"], topic["cards_shown_fires"]) == (5, 8, 5, 8)
    # A decision counts with its last fire's rating and day; suggestions of last fires only (2+1+2+2+2).
    assert topic["ratings"] == {"appropriate": 1, "not-appropriate": 4}
    assert topic["orders_per_day"] == {"2026-03-02": 4, "2026-03-03": 1}
    assert topic["suggestions_offered"] == 9
    assert (no_card["orders_judged"], no_card["fires"]) == (1, 1)
    # A period that cuts a decision counts only the fires inside it.
    assert store.report(datetime(2026, 3, 3).date(), None)["totals"]["orders_judged"] == 1


def test_a_decision_joins_fires_through_one_without_feedback(gov_app):
    """Feedback on the first and the last of three fires 25 minutes apart: one decision (each fire
    within the window of the one before), whose outcome is the later item. The store numbers the
    decisions of the orders that have feedback over all their fires, not only the ones answered:
    over those alone the two answered fires would be 50 minutes apart, two decisions."""
    store = gov_app.extensions["lumbar_cds"].recorder.store
    store.insert_judgements([
        row("2026-03-02T10:00:00", 1),
        row("2026-03-02T10:25:00", 2),
        row("2026-03-02T10:50:00", 3),
        row("2026-03-02T10:10:00", 4, order="ServiceRequest/o-2"),  # an order without feedback
    ])
    items = parse_feedback({"feedback": [accepted("card-1", "s-1-0", at="2026-03-02T10:01:00Z"),
                                         overridden("card-3", at="2026-03-02T10:51:00Z")]})
    for item in items:
        item["received_at"], item["service_id"] = datetime(2026, 3, 2, 11), SELECT
    assert store.insert_feedback(items).stored == 2
    report = store.report(None, None)
    assert report == build_report(*store.load_rows(None, None))
    (figures,) = report["topics"]
    assert (figures["orders_judged"], figures["fires"]) == (2, 4)
    assert (figures["accepted"], figures["overridden"]) == (0, 1)
