"""The benchmark measures the right thing: valid requests of the asked size, and an honest floor.

No timing here (figures are for `make bench`); these check that the payload generator builds hook
requests the service accepts, with N resources and the relevant codes among them, and that the
floor endpoint answers an empty card list for the same body.
"""

from __future__ import annotations

import orjson
import pytest

from bench import payloads
from bench.app import FLOOR_PATH, SERVICE_PATH, add_floor, bench_settings
from bench.stats import percentile
from cds_service.app import create_app


@pytest.fixture
def bench_app(tmp_path):
    app = add_floor(create_app({"TESTING": True, **bench_settings(str(tmp_path / "store.sqlite3"))}))
    yield app
    app.extensions["lumbar_cds_shutdown"]()


def _codes(value) -> set[tuple[str, str]]:
    found = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
                found.add((node["system"], node["code"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@pytest.mark.parametrize("n", [30, 300])
def test_payload_has_n_resources_and_the_relevant_codes(n):
    body = payloads.hook_request(n)
    assert payloads.count_resources(body) == n
    codes = _codes(body)
    for code in payloads.RELEVANT_CODES:
        assert code in codes, code
    # The order the pathway judges is the selected draft order, dated (the reference date).
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert body["context"]["selections"] == [f"ServiceRequest/{order['id']}"]
    assert order["authoredOn"] and order["reasonCode"]
    # Everything belongs to the one test patient; nothing still points at a Synthea person.
    raw = orjson.dumps(body)
    assert b"urn:uuid:" not in raw
    for value in body["prefetch"].values():
        for entry in value.get("entry", []) if value.get("resourceType") == "Bundle" else []:
            assert entry["resource"]["subject"]["reference"] == f"Patient/{payloads.PATIENT_ID}"


def test_payloads_are_deterministic_and_ids_unique():
    assert payloads.hook_body(300) == payloads.hook_body(300)
    resources = payloads.server_resources(300)
    ids = [(r["resourceType"], r["id"]) for r in resources]
    assert len(ids) == len(set(ids)) == 300


def test_the_low_back_pain_condition_has_an_onset_before_the_order():
    body = payloads.hook_request(30)
    conditions = [e["resource"] for e in body["prefetch"]["conditions"]["entry"]]
    lbp = [c for c in conditions if (payloads.SNOMED, "279039007") in _codes(c["code"])]
    assert len(lbp) == 1
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert lbp[0]["onsetDateTime"][:10] < order["authoredOn"]


@pytest.mark.parametrize("n", [30, 300])
def test_the_service_accepts_the_payload(bench_app, n):
    response = bench_app.test_client().post(SERVICE_PATH, data=payloads.hook_body(n), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert isinstance(orjson.loads(response.get_data())["cards"], list)


def test_the_payload_answers_every_prefetch_template_and_gets_a_rating(bench_app):
    # An EHR honouring the discovery sends every key; a key left out would make the service
    # withhold its rating and offer the red-flag screen on every call, so the benchmark would
    # measure that path instead of the common one.
    client = bench_app.test_client()
    body = payloads.hook_request(300)
    for service in client.get("/cds-services").get_json()["services"]:
        assert set(body["prefetch"]) == set(service["prefetch"]), service["id"]
    answer = orjson.loads(client.post(SERVICE_PATH, data=orjson.dumps(body), content_type="application/json").get_data())
    assert [card["indicator"] for card in answer["cards"]] == ["warning"]
    assert len(answer["systemActions"]) == 1  # the rating on the order: nothing withheld
    links = [link["url"] for card in answer["cards"] for link in card.get("links", [])]
    assert links and not [url for url in links if "/screen/" in url]  # no red-flag screen offered


def test_a_new_patient_body_is_another_record_the_service_judges_alike(bench_app):
    # bench/patients.py: nothing of a new patient's body was seen before, yet the pathway's answer
    # is the one of the repeated request (same episode, same order).
    repeated, first, second = payloads.hook_body(300), payloads.new_patient_body(300, 1), payloads.new_patient_body(300, 2)
    assert len({repeated, first, second}) == 3
    body = orjson.loads(first)
    assert body["context"]["patientId"] == body["prefetch"]["patient"]["id"] == f"{payloads.PATIENT_ID}-v1"
    assert payloads.PATIENT_ID.encode() + b'"' not in first  # no resource left on the first patient
    client = bench_app.test_client()
    answers = [orjson.loads(client.post(SERVICE_PATH, data=raw, content_type="application/json").get_data())
               for raw in (repeated, first)]
    assert [[(c["indicator"], c["summary"]) for c in a["cards"]] for a in answers] == \
        [[("warning", answers[0]["cards"][0]["summary"])]] * 2
    assert all(len(a["systemActions"]) == 1 for a in answers)


def test_the_floor_answers_no_cards_for_the_same_body(bench_app):
    response = bench_app.test_client().post(FLOOR_PATH, data=payloads.hook_body(300), content_type="application/json")
    assert response.status_code == 200
    assert orjson.loads(response.get_data()) == {"cards": []}


def test_the_floor_is_not_part_of_the_product(app):
    # `app` is the product's own app (tests/conftest.py): no floor route there.
    response = app.test_client().post(FLOOR_PATH, data=b"{}", content_type="application/json")
    assert response.status_code == 404


def test_no_prefetch_request_names_the_fhir_server_and_sends_no_prefetch():
    body = payloads.hook_request(30, with_prefetch=False, fhir_server="http://127.0.0.1:1/fhir")
    assert "prefetch" not in body and body["fhirServer"] == "http://127.0.0.1:1/fhir"


def test_percentile_nearest_rank():
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
