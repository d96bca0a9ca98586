"""The two Synthea patients with chronic low back pain are judged with the analgesics their records
carry as RxNorm clinical and branded drugs (clinical-specification.md §3.7, §5.8; issue 19).

Their records (tests/data/synthea/smart-sample-bulk-fhir-datasets-10-patients, Synthea bulk
export, reference date 2023-04-03) go through the HTTP endpoint as an EHR would prefetch them:
- Patient/ca15b832-...: chronic low back pain since 2014-01-31, "Ibuprofen 400 MG Oral Tablet
  [Ibu]" (RxNorm SBD 206905) prescribed that day and yearly since;
- Patient/fb7c882a-...: chronic low back pain since 2020-09-03, "Acetaminophen 325 MG Oral Tablet
  [Tylenol]" (RxNorm SBD 209387) from 2020-10-04, and budesonide by inhalation for years (not a
  systemic corticosteroid).
Both had conservative care since their episode began: an MRI without contrast is ACR variant 3,
usually appropriate (no card); a CT gets the info card steering to MRI, which names the analgesic.
Observations and Encounters are not part of the snapshot (tests/data/synthea/SOURCE.txt): sent as
known empty.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.hook_requests import PREFETCH_TEMPLATES
from tests.support.scenario import outcome

BULK = Path(__file__).resolve().parent / "data" / "synthea" / "smart-sample-bulk-fhir-datasets-10-patients"
KEY_OF = {"Condition": "conditions", "MedicationRequest": "medications", "Procedure": "procedures"}
IBUPROFEN_PATIENT = "ca15b832-01e4-41dd-6a52-97bd3e5510cb"
ACETAMINOPHEN_PATIENT = "fb7c882a-f897-e7c5-67e0-825e7fd55d15"
MRI = ("72148", "MRI lumbar spine without contrast")
CT = ("72131", "CT lumbar spine without contrast")


def _records() -> dict[str, list[dict]]:
    found = {}
    for kind in ("Patient", *KEY_OF):
        lines = (BULK / f"{kind}.000.ndjson").read_text(encoding="utf-8").splitlines()
        found[kind] = [json.loads(line) for line in lines if line.strip()]
    return found


RECORDS = _records()


def hook_call(pid: str, code: tuple[str, str]) -> dict:
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset", "entry": []} for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = next(p for p in RECORDS["Patient"] if p["id"] == pid)
    for kind, key in KEY_OF.items():
        own = [r for r in RECORDS[kind] if (r.get("subject") or r.get("patient") or {}).get("reference") == f"Patient/{pid}"]
        prefetch[key]["entry"] = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in own]
    order = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
             "subject": {"reference": f"Patient/{pid}"}, "authoredOn": "2023-04-01",
             "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code[0], "display": code[1]}]}}
    return {"hook": "order-sign", "hookInstance": "5d1f3c1e-0c7a-4d61-9d1c-2f5e3b8a9c10",
            "context": {"userId": "Practitioner/synthea", "patientId": pid,
                        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]}},
            "prefetch": prefetch}


def judged(client, request: dict):
    response = client.post("/cds-services/lumbar-imaging-order-sign", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_json()
    seen = outcome(body, request)
    assert seen.problems == []
    return seen, body


@pytest.mark.parametrize("patient", [IBUPROFEN_PATIENT, ACETAMINOPHEN_PATIENT])
def test_mri_after_years_of_analgesics_is_appropriate_without_a_card(client, patient):
    seen, _ = judged(client, hook_call(patient, MRI))
    assert seen.as_expected() == {"cards": [], "ratings": {"ServiceRequest/sr-1": "appropriate"}}


@pytest.mark.parametrize(("patient", "analgesic", "code"), [
    (IBUPROFEN_PATIENT, "Ibuprofen 400 MG Oral Tablet [Ibu]", "206905"),
    (ACETAMINOPHEN_PATIENT, "Acetaminophen 325 MG Oral Tablet [Tylenol]", "209387"),
])
def test_a_ct_is_steered_to_mri_and_the_card_names_the_analgesic(client, patient, analgesic, code):
    seen, body = judged(client, hook_call(patient, CT))
    assert seen.as_expected() == {
        "cards": [{"topic": "prefer-mri-without-contrast", "indicator": "info", "order": "ServiceRequest/sr-1"}],
        "ratings": {"ServiceRequest/sr-1": "appropriate"},
    }
    (card,) = body["cards"]
    assert analgesic.split(" [")[0] in card["detail"]
    prescriptions = [e for e in card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"]
                     if e["role"] == "management" and e["resourceType"] == "MedicationRequest"]
    assert prescriptions and {(e["code"], e["recognisedBy"]) for e in prescriptions} == {(code, "code")}
    # Inhaled budesonide for years is not a systemic corticosteroid: no fracture red flag.
    assert not any(e["role"].startswith("red-flag:fracture") for e in card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"])
