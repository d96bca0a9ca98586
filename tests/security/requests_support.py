"""Test support: small valid CDS Hooks requests (order-select) for the security tests."""

from __future__ import annotations

import copy

from tests.support.hook_requests import prefetch_of, searchset  # noqa: F401 - searchset re-exported

SERVICE = "lumbar-imaging-order-select"
PATIENT_ID = "pat-sec-7Q4ZK9"

PATIENT = {
    "resourceType": "Patient",
    "id": PATIENT_ID,
    "name": [{"family": "Quillfeather", "given": ["Zephyrine"]}],
    "gender": "female",
    "birthDate": "1931-02-27",
}

CONDITION = {
    "resourceType": "Condition",
    "id": "cond-sec-1",
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}]},
    "onsetDateTime": "2026-11-01",
}

ORDER = {
    "resourceType": "ServiceRequest",
    "id": "order-sec-1",
    "status": "draft",
    "intent": "plan",
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
}


def full_prefetch() -> dict:
    return prefetch_of(PATIENT, CONDITION)


def order_select(prefetch: dict | None = None, **top) -> dict:
    body = {
        "hook": "order-select",
        "hookInstance": "5c0f1d4e-sec-0001",
        "context": {
            "userId": "Practitioner/sec-1",
            "patientId": PATIENT_ID,
            "selections": [f"ServiceRequest/{ORDER['id']}"],
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": copy.deepcopy(ORDER)}]},
        },
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(top)
    return body
