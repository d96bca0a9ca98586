"""Builders of small, valid CDS Hooks requests for the foundation tests."""

from __future__ import annotations

import copy

from cds_service.queries import build_query_plan
from cds_service.read.valuesets import load_valuesets

# The prefetch templates the services announce in discovery, narrowed from the value sets
# (cds_service.queries; clinical-specification.md §8.4), with the default settings.
PREFETCH_TEMPLATES = build_query_plan(load_valuesets(), {}).templates()

PATIENT_ID = "pat-foundation-1"

PATIENT = {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female", "birthDate": "1970-05-01"}

LBP_CONDITION = {
    "resourceType": "Condition",
    "id": "cond-lbp-1",
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}]},
    "onsetDateTime": "2026-11-01",
}

MRI_ORDER = {
    "resourceType": "ServiceRequest",
    "id": "order-mri-1",
    "status": "draft",
    "intent": "plan",
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "authoredOn": "2026-11-15",
    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148", "display": "MRI lumbar spine without contrast"}]},
}


def searchset(*resources: dict) -> dict:
    """A searchset Bundle of copies of `resources`."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": copy.deepcopy(r)} for r in resources],
    }


def prefetch_of(patient: dict, *conditions: dict) -> dict:
    """Every prefetch key of the services (registry.PREFETCH_TEMPLATES): the patient, these
    conditions, and empty searchsets for the rest."""
    prefetch = {key: searchset() for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = copy.deepcopy(patient)
    prefetch["conditions"] = searchset(*conditions)
    return prefetch


def hook_request(hook: str = "order-select", *, prefetch: dict | None = None, **overrides) -> dict:
    """A valid request for `hook`; `prefetch=None` sends no prefetch at all."""
    body = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/example",
            "patientId": PATIENT_ID,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": copy.deepcopy(MRI_ORDER)}]},
        },
    }
    if hook == "order-select":
        body["context"]["selections"] = [f"ServiceRequest/{MRI_ORDER['id']}"]
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(overrides)
    return body


def full_prefetch() -> dict:
    return prefetch_of(PATIENT, LBP_CONDITION)


def service_for(hook: str) -> str:
    return "lumbar-imaging-order-select" if hook == "order-select" else "lumbar-imaging-order-sign"
