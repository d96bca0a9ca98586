"""`/metrics` (issue 14): Prometheus figures of requests, cards, ratings, FHIR fetches, the
gathering budget, the store and JWT refusals; token-protected; no patient data in any label.
Each test scrapes before and after what it does and checks the difference (the process's
registry is shared by every app of the test run)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds_service import metrics
from cds_service.render.result import Judgement
from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer
from tests.support.scenario import (
    load_fhir_server,
    load_scenarios,
    service_path,
    with_planned_keys,
    without_prefetch,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-test-token"
SCENARIO = dict(load_scenarios())["acute-lbp-2-weeks-xray"]
CALL = "/cds-services/<service_id>"


@pytest.fixture
def app_config(tmp_path):
    return {"TESTING": True, "DATABASE_PATH": str(tmp_path / "store.sqlite3"), "METRICS_TOKEN": TOKEN}


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_is_off_without_a_token_setting(tmp_path):
    from cds_service.app import create_app

    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3")})
    try:
        assert app.test_client().get("/metrics").status_code == 404
    finally:
        app.extensions["lumbar_cds_shutdown"]()


def test_metrics_needs_the_token(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics?token=wrong").status_code == 401
    assert client.get(f"/metrics?token={TOKEN}").status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_scenario_run_shows_in_the_metrics(app, client):
    """The done-when of issue 14: a scenario through the app, then a scrape with the expected counts."""
    request = SCENARIO["request"]
    before = scrape(client)
    response = client.post(service_path(request), json=request)
    assert response.status_code == 200
    assert app.extensions["lumbar_cds"].recorder.flush(10)
    after = scrape(client)

    (card,) = SCENARIO["expected"]["cards"]
    assert delta(before, after, "lumbar_cds_cards_total", topic=card["topic"], indicator=card["indicator"]) == 1
    for rating in set(SCENARIO["expected"]["ratings"].values()):
        expected = list(SCENARIO["expected"]["ratings"].values()).count(rating)
        assert delta(before, after, "lumbar_cds_ratings_total", rating=rating) == expected
    assert delta(before, after, "lumbar_cds_http_request_duration_seconds_count",
                 route=CALL, method="POST", status="200") == 1
    assert delta(before, after, "lumbar_cds_http_request_duration_seconds_sum",
                 route=CALL, method="POST", status="200") > 0
    assert delta(before, after, "lumbar_cds_store_rows_written_total") == len(SCENARIO["expected"]["ratings"])
    # Everything was prefetched: nothing fetched, no budget spent.
    assert delta(before, after, "lumbar_cds_fhir_requests_total") == 0
    assert delta(before, after, "lumbar_cds_gather_budget_exhausted_total") == 0


def test_fhir_fetches_by_key_and_outcome_and_their_latency(client):
    request = SCENARIO["request"]
    with LoopbackFhirServer(FhirServerBehaviour()) as server:
        load_fhir_server(server, request["prefetch"])
        before = scrape(client)
        response = client.post(service_path(request), json=without_prefetch(request, server.base_url))
        assert response.status_code == 200
        sent = len(server.seen)
    after = scrape(client)
    assert delta(before, after, "lumbar_cds_fhir_fetches_total", key="patient", outcome="complete") == 1
    assert delta(before, after, "lumbar_cds_fhir_fetches_total", key="conditions", outcome="complete") == 1
    fetched = sum(after[k] - before.get(k, 0.0) for k in after if k[0] == "lumbar_cds_fhir_fetches_total")
    timed = sum(after[k] - before.get(k, 0.0) for k in after if k[0] == "lumbar_cds_fhir_fetch_duration_seconds_count")
    assert fetched == timed == len(with_planned_keys(copy.deepcopy(SCENARIO))["request"]["prefetch"])
    assert delta(before, after, "lumbar_cds_fhir_requests_total") == sent


def test_a_gathering_budget_running_out_is_counted(make_client):
    client = make_client(GATHER_BUDGET_MS=100)
    request = SCENARIO["request"]
    with LoopbackFhirServer(FhirServerBehaviour(delay_seconds=1.0)) as server:
        load_fhir_server(server, request["prefetch"])
        before = scrape(client)
        response = client.post(service_path(request), json=without_prefetch(request, server.base_url))
    assert response.status_code == 412  # the patient could not be had within the budget
    after = scrape(client)
    assert delta(before, after, "lumbar_cds_gather_budget_exhausted_total") == 1
    assert delta(before, after, "lumbar_cds_fhir_fetches_total", key="patient", outcome="budget") == 1
    assert delta(before, after, "lumbar_cds_http_request_duration_seconds_count",
                 route=CALL, method="POST", status="412") == 1


@pytest.fixture
def make_client(tmp_path):
    from cds_service.app import create_app

    made = []

    def factory(**settings):
        config = {"TESTING": True, "DATABASE_PATH": str(tmp_path / f"s{len(made)}.sqlite3"), "METRICS_TOKEN": TOKEN}
        app = create_app({**config, **settings})
        made.append(app)
        return app.test_client()

    yield factory
    for app in made:
        app.extensions["lumbar_cds_shutdown"]()


def test_jwt_refusals_are_counted_by_reason(make_client):
    client = make_client(AUTH_REQUIRED=True)
    before = scrape(client)
    assert client.get("/cds-services").status_code == 401
    assert client.get("/cds-services", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    after = scrape(client)
    assert delta(before, after, "lumbar_cds_jwt_refusals_total", reason="no Authorization header") == 1
    assert delta(before, after, "lumbar_cds_jwt_refusals_total", reason="malformed token") == 1
    assert delta(before, after, "lumbar_cds_http_request_duration_seconds_count",
                 route="/cds-services", method="GET", status="401") == 2


def test_every_refusal_reason_of_auth_has_its_own_label():
    source = (ROOT / "cds_service" / "security" / "auth.py").read_text()
    reasons = re.findall(r'AuthFailure\(f?"([^"]+)"', source)
    assert len(reasons) >= 25
    for reason in reasons:
        sample = re.sub(r"\{[^}]*\}", "X", reason)  # an f-string's values
        assert metrics.jwt_reason(sample) != "other", reason
    assert metrics.jwt_reason("algorithm not allowed: HS256") == "algorithm not allowed"
    assert metrics.jwt_reason("anything a caller could make up") == "other"


def test_withheld_ratings_and_cards_are_counted(client):
    before = scrape(client)
    metrics.judged([
        Judgement("ServiceRequest/a", None, "imaging-before-6-weeks", "warning", None, None, None),
        Judgement("ServiceRequest/b", None, None, None, "appropriate", None, None),
    ])
    after = scrape(client)
    assert delta(before, after, "lumbar_cds_ratings_total", rating="withheld") == 1
    assert delta(before, after, "lumbar_cds_ratings_total", rating="appropriate") == 1
    assert delta(before, after, "lumbar_cds_cards_total", topic="imaging-before-6-weeks", indicator="warning") == 1


def test_store_retries_drops_and_spool_come_from_the_recorder_counters(client):
    class Recorder:
        pass

    recorder = Recorder()
    before = scrape(client)
    metrics.store_stats(recorder, {"written": 5, "retried": 2, "spooled": 3, "spool_pending": 1,
                                   "dropped_queue_full": 1, "dropped_refused": 0, "dropped_spool_full": 2,
                                   "dropped_at_close": 0})
    metrics.store_stats(recorder, {"written": 6, "retried": 2, "spooled": 3, "spool_pending": 0,
                                   "dropped_queue_full": 1, "dropped_refused": 1, "dropped_spool_full": 2,
                                   "dropped_at_close": 0})
    after = scrape(client)
    assert delta(before, after, "lumbar_cds_store_rows_written_total") >= 6  # (+ the app's own, if any)
    assert delta(before, after, "lumbar_cds_store_rows_retried_total") == 2
    assert delta(before, after, "lumbar_cds_store_rows_spooled_total") == 3
    assert delta(before, after, "lumbar_cds_store_rows_dropped_total", reason="queue-full") == 1
    assert delta(before, after, "lumbar_cds_store_rows_dropped_total", reason="refused") == 1
    assert delta(before, after, "lumbar_cds_store_rows_dropped_total", reason="spool-full") == 2


def test_no_patient_data_in_any_label(client):
    request = SCENARIO["request"]
    assert client.post(service_path(request), json=request).status_code == 200
    client.get("/Patient/secret-id-123?patient=secret-id-123")  # a 404 with an id in its path
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    patient = request["prefetch"]["patient"]
    for value in (patient["id"], patient["birthDate"], request["hookInstance"], "secret-id-123",
                  json.dumps(patient["name"][0]["family"]).strip('"')):
        assert value not in text
    assert 'route="(no route)"' in text


def test_the_readme_lists_every_metric():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- metrics-table:start -->", 1)[1].split("<!-- metrics-table:end -->", 1)[0]
    listed = set(re.findall(r"^\| `(lumbar_cds_[a-z_]+)`", table, re.M))
    defined = {m._name + ("_total" if m._type == "counter" else "") for m in vars(metrics).values()
               if hasattr(m, "_type") and hasattr(m, "_name")}
    assert listed == defined
