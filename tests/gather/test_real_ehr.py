"""Real EHR behaviour, against a real FHIR server implementation (Medplum's search, in node):
large records served 20 a page in no set order, Epic's and Oracle Health's search rules,
first-page-only prefetch, and what the service does when a data group cannot be read completely
(clinical-specification.md §8). Each case runs with prefetch and without, where both apply.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from tests.support.hook_requests import PREFETCH_TEMPLATES
from tests.support.medplum import MedplumFhirServer

TOKEN = "ehr-token-5b1e"
PATIENT_ID = "pat-ehr-1"
AUTHORED = date(2026, 11, 20)
FHIR_AUTH = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}
SERVICE = "/cds-services/lumbar-imaging-order-sign"
SUBJECT = {"reference": f"Patient/{PATIENT_ID}"}

PATIENT = {"resourceType": "Patient", "id": PATIENT_ID, "gender": "male", "birthDate": "1975-03-02"}
LBP = {
    "resourceType": "Condition", "id": "lbp", "subject": SUBJECT,
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}]},
    "onsetDateTime": (AUTHORED - timedelta(days=14)).isoformat(),
}
MRI_ORDER = {
    "resourceType": "ServiceRequest", "id": "mri-1", "status": "draft", "intent": "plan", "subject": SUBJECT,
    "authoredOn": AUTHORED.isoformat(),
    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148", "display": "MRI lumbar spine without contrast"}]},
}


def observation(number: int, code: str, value: float, unit: str, day: date, category: str = "vital-signs") -> dict:
    return {
        "resourceType": "Observation", "id": f"obs-{number}", "status": "final", "subject": SUBJECT,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "effectiveDateTime": day.isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def big_record(count: int) -> list[dict]:
    """`count` observations over ~8 years (labs and normal temperatures), one fever 2 days before
    the order, among them."""
    resources = []
    for n in range(count):
        day = AUTHORED - timedelta(days=3 + (n * 7) % 2900)
        if n % 10 == 0:
            resources.append(observation(n, "8310-5", 36.8, "Cel", day))
        else:
            resources.append(observation(n, "2345-7", 5.1, "mmol/L", day, "laboratory"))  # glucose
    resources.append(observation(count, "8310-5", 38.6, "Cel", AUTHORED - timedelta(days=2)))
    return resources


def hook(prefetch: dict | None = None, fhir_server: str | None = None) -> dict:
    body = {
        "hook": "order-sign", "hookInstance": "0b6f3a52-27e0-4c7e-9f0a-6d1d1c2f8a11",
        "context": {"userId": "Practitioner/1", "patientId": PATIENT_ID,
                    "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": MRI_ORDER}]}},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = FHIR_AUTH
    return body


def call(client, body: dict) -> dict:
    response = client.post(SERVICE, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def rating_of(answer: dict) -> str | None:
    for action in (answer.get("extension") or {}).get("systemActions") or []:
        for extension in action["resource"].get("extension") or []:
            if extension["url"].endswith("pama-rating"):
                return extension["valueCodeableConcept"]["coding"][0]["code"]
    return None


def topics(answer: dict) -> list[str]:
    return [card["source"]["topic"]["code"] for card in answer["cards"]]


def searchset(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


@pytest.fixture(scope="module")
def ehr():
    """Pages of 20 in no set order (HAPI's default), Epic's Observation rule, Oracle Health's
    missing code search on Condition and Procedure, a bearer token required."""
    with MedplumFhirServer(required_token=TOKEN, max_page_size=20, shuffle=True, epic_observation_rule=True,
                           no_code_search=["Condition", "Procedure"]) as server:
        yield server


@pytest.fixture
def record(ehr):
    ehr.reset()
    ehr.add(PATIENT, LBP, *big_record(3000))
    ehr.clear_seen()
    return ehr


def test_a_fever_among_3000_observations_paged_20_in_no_order_is_found(client, record):
    answer = call(client, hook(fhir_server=record.base_url))
    # The fever is an infection red flag: MRI without contrast is usually appropriate (variant 7).
    assert "imaging-before-6-weeks" not in topics(answer)
    assert rating_of(answer) == "appropriate"
    observation_searches = [s for s in record.seen() if s.path == "/fhir/Observation"]
    # Epic's rule holds: every Observation search names codes (or, for examination findings, the
    # exam category); the fever needs no deep paging.
    assert observation_searches and all("code" in s.query or s.query.get("category") == "exam"
                                        for s in observation_searches)
    assert len(observation_searches) <= 5


def test_a_first_page_only_prefetch_is_read_to_its_end(client, ehr):
    """The CDS Hooks sandbox prefetches the first page of a search with its `next` link: a cauda
    equina sign on a later page of Conditions must still be found."""
    ehr.reset()
    filler = [
        {"resourceType": "Condition", "id": f"c{n}", "subject": SUBJECT,
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]},
         "recordedDate": "2020-01-01"}
        for n in range(60)
    ]
    retention = {"resourceType": "Condition", "id": "zz-retention", "subject": SUBJECT,
                 "clinicalStatus": LBP["clinicalStatus"], "recordedDate": AUTHORED.isoformat(),
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "236648008", "display": "Acute retention of urine"}]}}
    ehr.add(PATIENT, LBP, retention, *filler)
    first_page = ehr.first_page(f"Condition?patient={PATIENT_ID}")
    assert any(link["relation"] == "next" for link in first_page["link"])
    pages_first = {e["resource"]["id"] for e in first_page["entry"]}
    prefetch = {key: searchset() for key in PREFETCH_TEMPLATES}
    prefetch.update(patient=PATIENT, conditions=first_page)
    answer = call(client, hook(prefetch, ehr.base_url))
    if "zz-retention" not in pages_first:  # shuffled: most often on a later page
        assert any(s.path == "/fhir/Condition" for s in ehr.seen())
    assert topics(answer) == ["cauda-equina-risk"]


def test_without_fhir_server_a_first_page_only_prefetch_is_incomplete_and_not_rated(client, ehr):
    ehr.reset()
    ehr.add(PATIENT, LBP, *[dict(LBP, id=f"lbp{n}") for n in range(30)])
    first_page = ehr.first_page(f"Condition?patient={PATIENT_ID}")
    prefetch = {key: searchset() for key in PREFETCH_TEMPLATES}
    prefetch.update(patient=PATIENT, conditions=first_page)
    answer = call(client, hook(prefetch))
    assert topics(answer) == ["imaging-before-6-weeks"]  # the advice stands
    assert rating_of(answer) is None  # ... but the rating rests on pages not read
    assert "Not checked" in answer["cards"][0]["detail"]


def test_every_optional_key_unreadable_gives_no_rating(client):
    prefetch = {key: {"resourceType": "Bundle", "entry": "garbage"} for key in PREFETCH_TEMPLATES}
    prefetch.update(patient=PATIENT, conditions=searchset(LBP))
    answer = call(client, hook(prefetch))
    assert topics(answer) == ["imaging-before-6-weeks"]
    assert rating_of(answer) is None and "systemActions" not in answer
    detail = answer["cards"][0]["detail"]
    assert "Not checked" in detail and "not readable" in detail


@pytest.mark.parametrize("bad", ["a string", ["a list"], {"resourceType": "Bundle", "entry": ["x"]},
                                 {"entry": []}, {"resourceType": "Condition", "id": "x"}])
def test_an_unusable_conditions_value_is_fetched_or_412(client, ehr, bad):
    ehr.reset()
    ehr.add(PATIENT, LBP)
    prefetch = {key: searchset() for key in PREFETCH_TEMPLATES}
    prefetch.update(patient=PATIENT, conditions=bad)
    # With a FHIR server: fetched, and judged on the real problem list.
    answer = call(client, hook(prefetch, ehr.base_url))
    assert topics(answer) == ["imaging-before-6-weeks"]
    assert rating_of(answer) == "not-appropriate"
    # Without one: 412, never judged as if the patient had no conditions.
    response = client.post(SERVICE, data=json.dumps(hook(prefetch)), content_type="application/json")
    assert response.status_code == 412
    assert response.get_json()["error"]["code"] == "LCDS-1412"


def test_a_server_refusing_the_narrowed_search_is_asked_again_with_fewer_parameters(client, ehr):
    ehr.reset()
    ehr.behave(no_code_search=["Condition", "Procedure", "Observation"], epic_observation_rule=False)
    ehr.add(PATIENT, LBP, *big_record(200))
    answer = call(client, hook(fhir_server=ehr.base_url))
    assert rating_of(answer) == "appropriate"  # the fever was found on the plain search
    observation_queries = [s.query for s in ehr.seen() if s.path == "/fhir/Observation"]
    assert any("code" in q for q in observation_queries) and any("code" not in q for q in observation_queries)


def test_epic_refusing_every_observation_search_leaves_no_rating(client, ehr):
    ehr.reset()
    ehr.behave(fail_status={"Observation": 400})
    ehr.add(PATIENT, LBP, *big_record(50))
    answer = call(client, hook(fhir_server=ehr.base_url))
    assert topics(answer) == ["imaging-before-6-weeks"]
    assert rating_of(answer) is None
    assert "the EHR refused the search" in answer["cards"][0]["detail"]


def test_the_page_cap_leaves_the_key_incomplete_and_no_rating(app_config, ehr):
    from cds_service.app import create_app

    ehr.reset()
    ehr.behave(shuffle=False)
    conditions = [dict(LBP, id=f"lbp{n:03d}") for n in range(100)]
    ehr.add(PATIENT, *conditions)
    app = create_app({**app_config, "FHIR_MAX_PAGES": 2})
    try:
        answer = call(app.test_client(), hook(fhir_server=ehr.base_url))
    finally:
        app.extensions["lumbar_cds_shutdown"]()
    assert rating_of(answer) is None
    assert "more pages than the page limit" in answer["cards"][0]["detail"]


def test_the_gathering_budget_bounds_a_slow_ehr(app_config, ehr):
    from cds_service.app import create_app

    ehr.reset()
    ehr.behave(latency_ms=600)
    ehr.add(PATIENT, LBP)
    prefetch = {"patient": PATIENT, "conditions": searchset(LBP)}  # the rest is fetched, slowly
    app = create_app({**app_config, "GATHER_BUDGET_MS": 250})
    try:
        answer = call(app.test_client(), hook(prefetch, ehr.base_url))
    finally:
        app.extensions["lumbar_cds_shutdown"]()
    assert topics(answer) == ["imaging-before-6-weeks"]
    assert rating_of(answer) is None
    assert "time budget" in answer["cards"][0]["detail"]


def test_discovery_asks_only_for_what_the_pathway_reads(client):
    services = client.get("/cds-services").get_json()["services"]
    for service in services:
        templates = service["prefetch"]
        observation_templates = [t for t in templates.values() if t.startswith("Observation?")]
        # Epic refuses an Observation search without code or category: every template names one.
        assert observation_templates and all("&code=" in t or t.endswith("&category=exam") for t in observation_templates)
        assert all(len(t) <= 2000 for t in templates.values())
        assert all(t.count(",") < 64 for t in templates.values())
        assert templates["conditions"] == "Condition?patient={{context.patientId}}"  # Oracle: no code search


@pytest.mark.parametrize("bad", [searchset(), searchset(LBP), LBP, "Patient", {}])
def test_an_unusable_patient_value_is_fetched_or_412(client, ehr, bad):
    ehr.reset()
    ehr.add(PATIENT, LBP)
    prefetch = {key: searchset() for key in PREFETCH_TEMPLATES}
    prefetch.update(patient=bad, conditions=searchset(LBP))
    answer = call(client, hook(prefetch, ehr.base_url))
    assert rating_of(answer) == "not-appropriate"  # judged with the fetched Patient
    assert any(s.path == f"/fhir/Patient/{PATIENT_ID}" for s in ehr.seen())
    response = client.post(SERVICE, data=json.dumps(hook(prefetch)), content_type="application/json")
    assert response.status_code == 412


def test_a_server_that_honours_count_serves_a_long_problem_list_in_few_pages(client, ehr):
    """HAPI's JPA starter serves 20 a page unless `_count` asks for more (up to 200): the
    service's `_count` hint cuts 300 Conditions from 15 pages to 2, and the cauda equina sign
    on the last of them is still read (clinical-specification.md §8.4)."""
    ehr.reset()
    filler = [
        {"resourceType": "Condition", "id": f"c{n:03d}", "subject": SUBJECT, "recordedDate": "2019-05-01",
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]}}
        for n in range(300)
    ]
    retention = {"resourceType": "Condition", "id": "zz-retention", "subject": SUBJECT,
                 "clinicalStatus": LBP["clinicalStatus"], "recordedDate": AUTHORED.isoformat(),
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "236648008", "display": "Acute retention of urine"}]}}
    ehr.add(PATIENT, LBP, *filler, retention)
    ehr.behave(default_page_size=20, max_page_size=200)
    assert len(ehr.get_json(f"Condition?patient={PATIENT_ID}")["entry"]) == 20  # 20 a page by default
    ehr.clear_seen()
    answer = call(client, hook(fhir_server=ehr.base_url))
    assert topics(answer) == ["cauda-equina-risk"]
    condition_pages = [s for s in ehr.seen() if s.path == "/fhir/Condition"]
    assert len(condition_pages) == 2 and condition_pages[0].query.get("_count") == "200"
