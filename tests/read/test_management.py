"""Prior management read from the record (clinical-specification.md §5.8): physical therapy as a
Procedure, a referral or a visit; manipulation; exercise or movement therapy; analgesic
prescriptions. Each is an Evidence in `PathwayInputs.management`, dated when the care was given."""

from __future__ import annotations

import pytest

from tests.read.builders import PID, bundle, run

SCT = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
SERVICE_TYPE = "http://terminology.hl7.org/CodeSystem/service-type"
SUBJECT = {"reference": f"Patient/{PID}"}


def procedure(pid: str, system: str, code: str, when: str = "2026-02-10", status: str = "completed") -> dict:
    return {"resourceType": "Procedure", "id": pid, "status": status, "subject": SUBJECT,
            "code": {"coding": [{"system": system, "code": code}]}, "performedDateTime": when}


def prescription(mid: str, system: str, code: str, when: str = "2026-02-05", status: str = "active",
                 kind: str = "MedicationRequest") -> dict:
    resource = {"resourceType": kind, "id": mid, "status": status, "subject": SUBJECT,
                "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]}}
    if kind == "MedicationRequest":
        resource.update(intent="order", authoredOn=when)
    else:
        resource["effectiveDateTime"] = when
    return resource


def referral(sid: str, status: str = "completed", when: str = "2026-02-03") -> dict:
    return {"resourceType": "ServiceRequest", "id": sid, "status": status, "intent": "order", "subject": SUBJECT,
            "code": {"coding": [{"system": SCT, "code": "91251008"}]}, "authoredOn": when}


def visit(eid: str, status: str = "finished", when: str = "2026-02-12T09:00:00Z") -> dict:
    return {"resourceType": "Encounter", "id": eid, "status": status, "subject": SUBJECT,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "serviceType": {"coding": [{"system": SERVICE_TYPE, "code": "65"}]}, "period": {"start": when}}


@pytest.mark.parametrize("record, kind", [
    (procedure("pt", SCT, "91251008"), "physical therapy"),
    (procedure("move", SCT, "229064008"), "exercise therapy"),
    (procedure("chiro", CPT, "98941"), "spinal manipulation"),
    (procedure("ex", CPT, "97110"), "exercise therapy"),
])
def test_procedures_of_conservative_care_are_management(record, kind):
    (evidence,) = run(procedures=[record]).management
    assert (evidence.reference, evidence.text, evidence.date.isoformat()) == (f"Procedure/{record['id']}", kind, "2026-02-10")


@pytest.mark.parametrize("system, code", [(RX, "5640"), (RX, "161"), (RX, "21949"), (RX, "25480"), (ATC, "M01AE01"),
                                          (ATC, "N02BE01"), (ATC, "N03AX16")])
def test_analgesic_prescriptions_are_management(system, code):
    (evidence,) = run(medications=[prescription("m1", system, code)]).management
    assert evidence.reference == "MedicationRequest/m1" and evidence.text == "analgesic prescription"
    assert evidence.date.isoformat() == "2026-02-05"


def test_a_medication_statement_counts_but_not_a_cancelled_request_or_a_steroid():
    inputs = run(medications=[prescription("s1", RX, "7258", kind="MedicationStatement"),
                              prescription("m2", RX, "7258", status="cancelled"),
                              prescription("m3", RX, "8640")])  # prednisone: a steroid, not an analgesic
    assert [e.reference for e in inputs.management] == ["MedicationStatement/s1"]
    assert [e.reference for e in inputs.corticosteroids] == ["MedicationRequest/m3"]


def test_a_referral_counts_unless_draft_or_revoked():
    inputs = run(serviceRequests=bundle(referral("r1"), referral("r2", "revoked"), referral("r3", "draft"),
                                        referral("r4", "active")))
    assert [(e.reference, e.date.isoformat()) for e in inputs.management] == [
        ("ServiceRequest/r1", "2026-02-03"), ("ServiceRequest/r4", "2026-02-03")]


def test_a_physical_therapy_visit_counts_unless_planned_or_cancelled():
    inputs = run(encounters=bundle(visit("e1"), visit("e2", "planned"), visit("e3", "cancelled")))
    assert [(e.reference, e.date.isoformat()) for e in inputs.management] == [("Encounter/e1", "2026-02-12")]


def test_other_care_and_other_patients_records_are_not_management():
    other = dict(procedure("pt-other", SCT, "91251008"), subject={"reference": "Patient/someone-else"})
    inputs = run(procedures=[procedure("appendix", SCT, "80146002"), other],
                 encounters=bundle(dict(visit("e9"), serviceType={"coding": [{"system": SERVICE_TYPE, "code": "1"}]})),
                 medications=[prescription("amox", RX, "723")])
    assert inputs.management == []
