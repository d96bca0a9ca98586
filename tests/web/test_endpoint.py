"""End to end through the HTTP endpoint: request -> gather -> parse -> decide -> cards + ratings."""

from __future__ import annotations

import copy

import pytest

from tests.support.cds_conformance import assert_conforms
from tests.support.hook_requests import (
    LBP_CONDITION,
    MRI_ORDER,
    PATIENT,
    PATIENT_ID,
    full_prefetch,
    searchset,
)

SELECT = "/cds-services/lumbar-imaging-order-select"
SIGN = "/cds-services/lumbar-imaging-order-sign"
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
PAMA_RATING = "http://fhir.org/argonaut/Extension/pama-rating"


def sandbox_order(oid: str, cpt: str | None, reason: str | None = None, authored: str = "2026-11-15") -> dict:
    """A draft ServiceRequest as the CDS Hooks sandbox's PAMA tab builds it (clinical-specification.md §7.6)."""
    return {
        "resourceType": "ServiceRequest",
        "id": oid,
        "status": "draft",
        "intent": "plan",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": authored,
        "code": {"coding": [{"system": CPT, "code": cpt}] if cpt else [{}]},
        "reasonCode": [{"coding": [{"system": SNOMED, "code": reason}]}] if reason else [],
    }


def body(hook: str, orders: list[dict], prefetch: dict | None, selections: list[str] | None = None, **extra) -> dict:
    request = {
        "hook": hook,
        "hookInstance": "2f1a0c66-5a7e-4d0e-9a8b-1f4c3e2d1b0a",
        "context": {
            "userId": "Practitioner/example",
            "patientId": PATIENT_ID,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": o} for o in orders]},
        },
        **extra,
    }
    if hook == "order-select":
        request["context"]["selections"] = selections if selections is not None else [
            f"ServiceRequest/{o['id']}" for o in orders]
    if prefetch is not None:
        request["prefetch"] = prefetch
    return request


def rating(action: dict) -> str:
    ext = {e["url"]: e for e in action["resource"]["extension"]}
    return ext[PAMA_RATING]["valueCodeableConcept"]["coding"][0]["code"]


def post(client, url, payload) -> dict:
    response = client.post(url, json=payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_conforms(response.json)
    return response.json


def test_sandbox_first_empty_call_gets_no_card_and_no_rating(client):
    result = post(client, SELECT, body("order-select", [sandbox_order("pama-1", None)], full_prefetch()))
    assert result == {"cards": []}


def test_sandbox_cauda_equina_reason_without_back_pain_condition(client):
    prefetch = full_prefetch()
    prefetch["conditions"] = searchset()
    order = sandbox_order("pama-2", "72100", reason="192970008")  # X-ray for cauda equina syndrome
    result = post(client, SELECT, body("order-select", [order], prefetch))
    (card,) = result["cards"]
    assert card["indicator"] == "critical"
    assert card["source"]["topic"]["code"] == "cauda-equina-risk"
    assert card["detail"].startswith("**Sign:** Cauda equina syndrome as the reason for this order.")
    assert "ServiceRequest/" not in card["detail"]
    assert card["extension"]["org.lumbar-imaging-cds.evidence"]["order"] == "ServiceRequest/pama-2"
    (update,) = card["suggestions"][0]["actions"]
    assert update["resource"]["code"]["coding"][0]["code"] == "72148"
    assert update["resource"]["priority"] == "stat"
    assert rating(update) == "appropriate"
    (action,) = result["extension"]["systemActions"]
    assert rating(action) == "not-appropriate"
    assert result["systemActions"] == result["extension"]["systemActions"]
    assert "reasonCode" in action["resource"] and action["resource"]["id"] == "pama-2"


@pytest.mark.parametrize("source", ["prefetch", "fhir-server"])
def test_mri_two_weeks_after_onset_warns_either_way_the_data_arrives(client, fhir_server, source):
    orders = [copy.deepcopy(MRI_ORDER)]
    if source == "prefetch":
        payload = body("order-sign", orders, full_prefetch())
    else:
        fhir_server.add(copy.deepcopy(PATIENT), copy.deepcopy(LBP_CONDITION))
        payload = body("order-sign", orders, None, fhirServer=fhir_server.base_url)
    result = post(client, SIGN, payload)
    (card,) = result["cards"]
    assert card["source"]["topic"]["code"] == "imaging-before-6-weeks"
    assert "Low back pain on the problem list since 1 Nov 2026" in card["detail"]
    assert "**Reassess on 13 Dec 2026**" in card["detail"] and "Condition/" not in card["detail"]
    references = [e["reference"] for e in card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"]]
    assert references == ["Condition/cond-lbp-1"]
    ((delete,), (create,)) = [s["actions"] for s in card["suggestions"]]  # one action per suggestion
    assert card["selectionBehavior"] == "any"
    assert delete["resourceId"] == ["ServiceRequest/order-mri-1"]
    assert create["resource"]["subject"] == {"reference": f"Patient/{PATIENT_ID}"}
    assert [rating(a) for a in result["systemActions"]] == ["not-appropriate"]


def test_order_select_judges_the_selection_and_order_sign_all(client):
    orders = [sandbox_order("a", "72148", authored="2027-01-10"), sandbox_order("b", "72100", authored="2027-01-10")]
    # LBP onset 2026-11-01: 70 days by 2027-01-10, physical therapy on 2026-12-01 (prior management,
    # ACR variant 3) -> MRI without is appropriate, X-ray gets a card.
    prefetch = full_prefetch()
    prefetch["procedures"] = searchset({
        "resourceType": "Procedure", "id": "pt-1", "status": "completed", "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91251008", "display": "Physical therapy procedure"}]},
        "performedDateTime": "2026-12-01"})
    selected = post(client, SELECT, body("order-select", orders, prefetch, selections=["ServiceRequest/b"]))
    assert [a["resource"]["id"] for a in selected["systemActions"]] == ["b"]
    assert len(selected["cards"]) == 1 and selected["cards"][0]["source"]["topic"]["code"] == "prefer-mri-without-contrast"
    signed = post(client, SIGN, body("order-sign", orders, prefetch))
    assert [(a["resource"]["id"], rating(a)) for a in signed["systemActions"]] == [("a", "appropriate"), ("b", "appropriate")]
    assert len(signed["cards"]) == 1 and "X-ray" in signed["cards"][0]["summary"]


def test_non_lumbar_order_gets_nothing(client):
    chest_ct = sandbox_order("chest", "71250")
    assert post(client, SIGN, body("order-sign", [chest_ct], full_prefetch())) == {"cards": []}


def test_under_18_no_card_but_rated_no_criteria_apply(client):
    prefetch = full_prefetch()
    prefetch["patient"]["birthDate"] = "2010-01-01"
    result = post(client, SIGN, body("order-sign", [copy.deepcopy(MRI_ORDER)], prefetch))
    assert result["cards"] == []
    assert [rating(a) for a in result["systemActions"]] == ["no-criteria-apply"]


def test_unavailable_optional_data_is_named_in_the_card(client):
    prefetch = full_prefetch()
    del prefetch["observations"]  # absent and no fhirServer to fetch it from
    result = post(client, SIGN, body("order-sign", [copy.deepcopy(MRI_ORDER)], prefetch))
    assert "temperature, weight and post-void residual" in result["cards"][0]["detail"]


@pytest.mark.parametrize("key", ["serviceRequests", "encounters", "procedures", "medications"])
def test_management_records_that_cannot_be_read_leave_the_order_unrated(client, key):
    """10 weeks of back pain, no red flag, an MRI, and one of the data groups that could show
    prior management unreadable: the card still advises management first, but the order is not
    rated not-appropriate on the strength of records the service could not read (§8.3)."""
    prefetch = full_prefetch()
    prefetch["conditions"] = searchset(dict(LBP_CONDITION, onsetDateTime="2026-09-06"))
    readable = post(client, SIGN, body("order-sign", [copy.deepcopy(MRI_ORDER)], copy.deepcopy(prefetch)))
    assert [c["source"]["topic"]["code"] for c in readable["cards"]] == ["no-prior-management"]
    assert rating(readable["systemActions"][0]) == "not-appropriate"

    prefetch[key] = {"resourceType": "Bundle", "entry": "garbage"}
    unreadable = post(client, SIGN, body("order-sign", [copy.deepcopy(MRI_ORDER)], prefetch))
    assert [c["source"]["topic"]["code"] for c in unreadable["cards"]] == ["no-prior-management"]
    assert "systemActions" not in unreadable
    assert "Not checked" in unreadable["cards"][0]["detail"]
