"""Builders of small synthetic FHIR resources and hook requests for the parser tests."""

from __future__ import annotations

from datetime import date

from cds_service.gather.prefetch import GatheredData
from cds_service.hooks.envelope import HookRequest, parse_hook_request
from cds_service.hooks.registry import ServiceRegistry
from cds_service.read.inputs import PathwayInputs
from cds_service.read.parser import parse_inputs
from cds_service.read.valuesets import load_valuesets

PID = "pat-1"
CPT = "http://www.ama-assn.org/go/cpt"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
TODAY = date(2026, 3, 1)
AUTHORED = "2026-02-20"


def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def order(oid: str = "o1", cpt: str | None = "72148", reason: list[tuple[str, str]] | None = None,
          authored: str | None = AUTHORED, patient: str = PID, **extra) -> dict:
    resource = {
        "resourceType": "ServiceRequest", "id": oid, "status": "draft", "intent": "plan",
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [coding(CPT, cpt)]} if cpt else {"coding": [{}]},
        "reasonCode": [{"coding": [coding(s, c)]} for s, c in (reason or [])],
    }
    if authored:
        resource["authoredOn"] = authored
    resource.update(extra)
    return resource


def condition(cid: str, system: str, code: str, onset: str | None = "2026-02-01",
              clinical: str | None = "active", verification: str | None = "confirmed",
              patient: str = PID, **extra) -> dict:
    resource = {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{patient}"},
                "code": {"coding": [coding(system, code)]}}
    if onset:
        resource["onsetDateTime"] = onset
    if clinical:
        resource["clinicalStatus"] = {"coding": [coding(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)]}
    if verification:
        resource["verificationStatus"] = {"coding": [coding(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)]}
    resource.update(extra)
    return resource


def observation(oid: str, system: str, code: str, when: str = "2026-02-18", status: str = "final",
                **value) -> dict:
    resource = {"resourceType": "Observation", "id": oid, "status": status,
                "subject": {"reference": f"Patient/{PID}"},
                "code": {"coding": [coding(system, code)]}, "effectiveDateTime": when}
    resource.update(value)
    return resource


def quantity(value: float, unit: str) -> dict:
    return {"valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def bundle(*resources: dict, bundle_type: str | None = "searchset") -> dict:
    b = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    if bundle_type:
        b["type"] = bundle_type
    return b


def patient(birth: str = "1970-06-15", gender: str = "female", pid: str = PID) -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": gender}


def hook_request(orders: list[dict], hook: str = "order-sign", selections: list[str] | None = None,
                 patient_id: str = PID, draft_bundle: dict | None = None) -> HookRequest:
    service = ServiceRegistry().get(
        "lumbar-imaging-order-select" if hook == "order-select" else "lumbar-imaging-order-sign")
    context = {"userId": "Practitioner/1", "patientId": patient_id,
               "draftOrders": draft_bundle or bundle(*orders, bundle_type=None)}
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [
            f"ServiceRequest/{o['id']}" for o in orders]
    return parse_hook_request({"hook": hook, "hookInstance": "h-1", "context": context}, service)


def run(orders: list[dict] | None = None, *, conditions=(), observations=(), procedures=(),
        medications=(), imaging=(), reports=(), patient_resource: dict | None = None,
        settings: dict | None = None, unavailable: dict | None = None, truncated=(),
        request: HookRequest | None = None, today: date = TODAY, **data) -> PathwayInputs:
    request = request or hook_request(orders if orders is not None else [order()])
    gathered = GatheredData(
        data={
            "patient": patient_resource if patient_resource is not None else patient(),
            "conditions": bundle(*conditions),
            "observations": bundle(*observations),
            "procedures": bundle(*procedures),
            "medications": bundle(*medications),
            "imagingStudies": bundle(*imaging),
            "diagnosticReports": bundle(*reports),
            **data,
        },
        unavailable=dict(unavailable or {}),
        truncated=list(truncated),
    )
    return parse_inputs(request, gathered, load_valuesets(), settings or {}, today)
