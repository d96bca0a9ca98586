"""Builders for the governance tests: hook requests, judgements, feedback items, a seeded data set.

The seeded data set (`seed_rows`) is small enough that every figure of the report can be worked
out by hand; `EXPECTED` in test_report.py holds those hand-worked figures.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from cds_service.governance.report import FeedbackRow, JudgementRow
from cds_service.hooks.envelope import parse_hook_request
from cds_service.hooks.registry import ServiceRegistry
from cds_service.render.result import EvaluationResult, Judgement
from tests.support.hook_requests import prefetch_of

SIGN = "lumbar-imaging-order-sign"
SELECT = "lumbar-imaging-order-select"
PATIENT_ID = "pat-governance-1"
OVERRIDE_SYSTEM = "urn:lumbar-imaging-cds:override-reason"
CPT = "http://www.ama-assn.org/go/cpt"

LBP_CONDITION = {
    "resourceType": "Condition",
    "id": "cond-lbp-gov",
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}]},
    "onsetDateTime": "2026-03-02",  # two weeks before the order's authoredOn
}

MRI_ORDER = {
    "resourceType": "ServiceRequest",
    "id": "order-mri-gov",
    "status": "draft",
    "intent": "plan",
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "authoredOn": "2026-03-16",
    "code": {"coding": [{"system": CPT, "code": "72148", "display": "MRI lumbar spine without contrast"}]},
    "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}]}],
}

PATIENT = {"resourceType": "Patient", "id": PATIENT_ID, "gender": "male", "birthDate": "1980-06-01"}


def early_mri_request(hook_instance: str = "5b0b8c4e-0000-4000-8000-000000000001") -> dict:
    """order-sign of a lumbar MRI two weeks into uncomplicated low back pain (pathway step 3)."""
    return {
        "hook": "order-sign",
        "hookInstance": hook_instance,
        "context": {
            "userId": "Practitioner/gov-1",
            "patientId": PATIENT_ID,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": copy.deepcopy(MRI_ORDER)}]},
        },
        "prefetch": prefetch_of(PATIENT, LBP_CONDITION),
    }


def hook_request(service_id: str = SIGN, patient_id: str = PATIENT_ID, hook_instance: str = "hi-1"):
    body = early_mri_request(hook_instance)
    body["context"]["patientId"] = patient_id
    service = ServiceRegistry().get(service_id)
    if service.hook == "order-select":
        body["hook"] = "order-select"
        body["context"]["selections"] = ["ServiceRequest/order-mri-gov"]
    return parse_hook_request(body, service)


def judgement(card_uuid: str | None, topic: str | None = "imaging-before-6-weeks", *,
              rating: str = "not-appropriate", suggestions: tuple[str, ...] = (),
              indicator: str | None = "warning", order: str = "ServiceRequest/order-mri-gov") -> Judgement:
    return Judgement(
        order_reference=order, order_code=f"{CPT}|72148", topic=topic,
        indicator=indicator if topic else None, rating=rating, card_uuid=card_uuid,
        consult_id=f"urn:uuid:consult-{card_uuid or order}", suggestion_uuids=suggestions,
    )


def result(*judgements: Judgement) -> EvaluationResult:
    return EvaluationResult(response={"cards": []}, judgements=list(judgements))


def accepted(card: str, *suggestion_ids: str, at: str = "2026-03-16T10:00:00Z") -> dict:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": s} for s in suggestion_ids],
            "outcomeTimestamp": at}


def overridden(card: str, code: str | None = "patient-declines-wait", *, at: str = "2026-03-16T10:00:00Z",
               comment: str | None = None, display: str | None = None) -> dict:
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": at}
    reason: dict = {}
    if code:
        reason["reason"] = {"code": code, "system": OVERRIDE_SYSTEM}  # what the sandbox sends
        if display:
            reason["reason"]["display"] = display
    if comment:
        reason["userComment"] = comment
    if reason:
        item["overrideReason"] = reason
    return item


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the seeded data set ------------------------------------------------------------------------
# Three UTC days, three card topics plus orders judged without a card, one silent card, one
# card outside the period, feedback with a later change of mind, and one orphan item.

SEED_JUDGEMENTS: list[tuple[str, str | None, str | None, str, tuple[str, ...], bool]] = [
    # (recorded_at, topic, card uuid, rating, suggestion uuids, shown)
    ("2026-02-28T23:00:00", "imaging-before-6-weeks", "card-out", "not-appropriate", ("s-out",), True),  # before --since
    ("2026-03-01T08:00:00", "imaging-before-6-weeks", "card-a1", "not-appropriate", ("s-a1-del", "s-a1-pt"), True),
    ("2026-03-01T09:00:00", "imaging-before-6-weeks", "card-a2", "not-appropriate", ("s-a2-del", "s-a2-pt"), True),
    ("2026-03-01T10:00:00", "cauda-equina-risk", "card-c1", "not-appropriate", ("s-c1-mri",), True),
    ("2026-03-01T11:00:00", None, None, "appropriate", (), True),
    ("2026-03-02T08:00:00", "imaging-before-6-weeks", "card-a3", "not-appropriate", ("s-a3-del", "s-a3-pt"), True),
    ("2026-03-02T09:30:00", "imaging-before-6-weeks", "card-a4", "not-appropriate", ("s-a4-del", "s-a4-pt"), True),
    ("2026-03-02T12:00:00", "prefer-mri-without-contrast", "card-p1", "appropriate", ("s-p1-mri",), True),
    ("2026-03-02T13:00:00", None, None, "no-criteria-apply", (), True),
    ("2026-03-03T07:00:00", "imaging-before-6-weeks", "card-a5", "not-appropriate", ("s-a5-del", "s-a5-pt"), True),
    ("2026-03-03T08:00:00", "repeat-imaging", "card-r1", "not-appropriate", (), False),  # silent mode
    ("2026-03-03T23:59:59", None, None, "appropriate", (), True),
    ("2026-03-04T00:00:00", "imaging-before-6-weeks", "card-late", "not-appropriate", ("s-late",), True),  # after --until
]

SEED_FEEDBACK: list[dict] = [
    accepted("card-a1", "s-a1-pt", at="2026-03-01T08:05:00Z"),
    overridden("card-a2", "patient-declines-wait", at="2026-03-01T09:05:00Z", display="Patient declines to wait"),
    overridden("card-a3", "specialist-request", at="2026-03-02T08:05:00Z"),
    overridden("card-a4", "patient-declines-wait", at="2026-03-02T09:35:00Z"),
    # changed mind: overridden first, then took both suggestions -> the card counts as accepted
    overridden("card-a5", "patient-declines-wait", at="2026-03-03T07:05:00Z"),
    accepted("card-a5", "s-a5-del", "s-a5-pt", "not-a-suggestion-of-this-card", at="2026-03-03T07:06:00Z"),
    accepted("card-c1", "s-c1-mri", at="2026-03-01T10:01:00Z"),
    overridden("card-p1", None, at="2026-03-02T12:01:00Z", comment="contrast needed: prior surgery"),
    overridden("card-out", "specialist-request", at="2026-03-01T00:10:00Z"),  # its card is before --since
    overridden("card-never-issued", "other", at="2026-03-02T15:00:00Z"),  # orphan in the period
    overridden("card-never-issued-2", "other", at="2026-02-20T15:00:00Z"),  # orphan before the period
]


def seed_judgement_rows() -> list[dict]:
    """Rows as the recorder writes them (store.insert_judgements)."""
    rows = []
    for index, (at, topic, card, rating, suggestions, shown) in enumerate(SEED_JUDGEMENTS):
        rows.append({
            "recorded_at": datetime.fromisoformat(at),
            "service_id": SIGN, "hook": "order-sign", "hook_instance": f"seed-{index}",
            "patient_hash": "0" * 64, "order_reference": f"ServiceRequest/seed-{index}",
            "order_code": f"{CPT}|72148", "topic": topic,
            "indicator": "warning" if topic else None, "rating": rating, "card_uuid": card,
            "consult_id": None, "suggestion_uuids": list(suggestions), "shown": shown,
        })
    return rows


def seed_pure_rows() -> tuple[list[JudgementRow], list[FeedbackRow]]:
    """The same data set as the pure report's input rows."""
    from cds_service.governance.feedback import parse_feedback
    from cds_service.governance.report import reason_tuples

    judgements = [
        JudgementRow(recorded_at=r["recorded_at"], service_id=r["service_id"], topic=r["topic"],
                     rating=r["rating"], card_uuid=r["card_uuid"],
                     suggestion_uuids=tuple(r["suggestion_uuids"]), shown=r["shown"],
                     patient_hash=r["patient_hash"], order_reference=r["order_reference"])
        for r in seed_judgement_rows()
    ]
    cards = {j.card_uuid for j in judgements if j.card_uuid}
    feedback = []
    for row in parse_feedback({"feedback": SEED_FEEDBACK}):
        feedback.append(FeedbackRow(
            card_uuid=row["card_uuid"], outcome=row["outcome"], outcome_at=row["outcome_at"],
            accepted_suggestions=tuple(row["accepted_suggestions"]), override_system=row["override_system"],
            override_code=row["override_code"], override_display=row["override_display"],
            card_known=row["card_uuid"] in cards, override_reasons=reason_tuples(row["override_reasons"]),
        ))
    return judgements, feedback


def seed_store(store, client=None) -> None:
    """Write the data set into a store: judgements directly, feedback through the endpoint if a
    test client is given (the real path), else through the store."""
    from cds_service.governance.feedback import parse_feedback

    store.insert_judgements(seed_judgement_rows())
    if client is not None:
        response = client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": SEED_FEEDBACK})
        assert response.status_code == 200, response.get_json()
        return
    rows = parse_feedback({"feedback": SEED_FEEDBACK})
    for row in rows:
        row["received_at"] = datetime(2026, 3, 5)
        row["service_id"] = SIGN
    store.insert_feedback(rows)
