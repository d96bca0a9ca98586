"""Data gathering against a real loopback FHIR server: prefetch, fetches, paging, failures.

Each hook is called twice (the cqf-ruler habit): once with full prefetch, once with none and the
service fetching everything from the FHIR server.
"""

import json
from datetime import date

import pytest

from cds_service.app import create_app
from cds_service.queries import build_query_plan
from cds_service.read.valuesets import load_valuesets
from tests.support.fhir_server import FhirServerBehaviour, LoopbackFhirServer
from tests.support.hook_requests import (
    LBP_CONDITION,
    PATIENT,
    PREFETCH_TEMPLATES,
    full_prefetch,
    hook_request,
    service_for,
)

TOKEN = "loopback-token-123"
FHIR_AUTH = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}


def post(client, body):
    return client.post(f"/cds-services/{service_for(body['hook'])}", data=json.dumps(body), content_type="application/json")


def fetching_request(server, hook="order-select", **prefetch):
    return hook_request(hook, prefetch=prefetch or None, fhirServer=server.base_url, fhirAuthorization=FHIR_AUTH)


@pytest.fixture
def ehr():
    """A FHIR server that requires our bearer token and serves the patient's record."""
    with LoopbackFhirServer(FhirServerBehaviour(required_token=TOKEN)) as server:
        server.add(PATIENT, LBP_CONDITION)
        yield server


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_full_prefetch_makes_no_fhir_call(client, ehr, hook):
    body = hook_request(hook, prefetch=full_prefetch(), fhirServer=ehr.base_url, fhirAuthorization=FHIR_AUTH)
    response = post(client, body)
    assert response.status_code == 200
    assert ehr.seen == []


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_no_prefetch_fetches_every_key_with_the_bearer_token(client, ehr, hook):
    response = post(client, fetching_request(ehr, hook))
    assert response.status_code == 200
    # Every key's searches (the narrowed templates plus the service's date floors and _count).
    fetched_types = {s.path.split("/")[2] for s in ehr.seen}
    assert fetched_types == {t.split("?")[0].split("/")[0] for t in PREFETCH_TEMPLATES.values()}
    searches = [s for s in ehr.seen if s.path.count("/") == 2]
    assert searches and all(s.query.get("patient") == PATIENT["id"] for s in searches)
    # Observations by code, but examination findings by category (often coded with text only).
    assert all("code" in s.query or s.query.get("category") == "exam" for s in searches if s.path == "/fhir/Observation")
    assert all(s.authorization == f"Bearer {TOKEN}" for s in ehr.seen)
    assert all(s.accept == "application/fhir+json" for s in ehr.seen)


def test_null_prefetch_key_is_known_empty_and_not_fetched(client, ehr):
    body = fetching_request(ehr, patient=PATIENT, conditions=None, observations=None, observationFindings=None,
                            examObservations=None)
    assert post(client, body).status_code == 200
    fetched = {s.path for s in ehr.seen}
    assert "/fhir/Condition" not in fetched and "/fhir/Observation" not in fetched
    assert "/fhir/Procedure" in fetched


def test_operation_outcome_prefetch_value_is_fetched_again(client, ehr):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body = fetching_request(ehr, patient=PATIENT, conditions=outcome)
    assert post(client, body).status_code == 200
    assert "/fhir/Condition" in {s.path for s in ehr.seen}


def test_paging_follows_next_links_up_to_the_cap(app_config):
    with LoopbackFhirServer(FhirServerBehaviour(page_size=2)) as server:
        server.add(PATIENT)
        for i in range(9):  # 5 pages of Observations
            server.add({"resourceType": "Observation", "id": f"obs-{i}", "status": "final",
                        "subject": {"reference": f"Patient/{PATIENT['id']}"}, "code": {"text": "x"}})
        app = create_app({**app_config, "FHIR_MAX_PAGES": 3})
        response = post(app.test_client(), hook_request(prefetch={"patient": PATIENT, "conditions": None}, fhirServer=server.base_url))
        assert response.status_code == 200
        # Each Observation search (vital signs; coded findings) is followed to the page cap.
        observation_pages = [s.query.get("_page", "1") for s in server.seen if s.path == "/fhir/Observation"]
        searches = observation_pages.count("1")  # temperature, weight, coded findings, exam findings
        assert searches == 4 and sorted(observation_pages) == sorted(["1", "2", "3"] * searches)


def test_gathering_merges_all_pages(app_config):
    """The gathering stage itself: every entry of every page ends up in one Bundle."""
    from cds_service.config import load_settings
    from cds_service.gather.prefetch import gather
    from cds_service.hooks.envelope import parse_hook_request
    from cds_service.hooks.registry import ServiceRegistry

    with LoopbackFhirServer(FhirServerBehaviour(page_size=2)) as server:
        server.add(PATIENT)
        for i in range(5):
            server.add({"resourceType": "Condition", "id": f"c-{i}", "subject": {"reference": f"Patient/{PATIENT['id']}"}})
        settings = load_settings({"FHIR_MAX_PAGES": 2})
        plan = build_query_plan(load_valuesets(), settings)
        service = ServiceRegistry(prefetch=plan.templates()).get("lumbar-imaging-order-select")
        request = parse_hook_request(hook_request(fhirServer=server.base_url), service)
        gathered = gather(request, service, settings, plan, date(2026, 11, 15))
        assert gathered.data["patient"]["id"] == PATIENT["id"]
        assert len(gathered.data["conditions"]["entry"]) == 4  # 2 pages of 2: the cap
        assert gathered.truncated == ["conditions"]
        assert set(gathered.fetched) == set(PREFETCH_TEMPLATES)


def test_fhir_server_down_is_412_for_required_data(client):
    server = LoopbackFhirServer()
    base_url = server.base_url
    server._httpd.server_close()  # bound once, now nothing listens there
    response = post(client, hook_request(fhirServer=base_url, fhirAuthorization=FHIR_AUTH))
    assert response.status_code == 412
    error = response.get_json()["error"]
    assert error["code"] == "LCDS-1412" and error["field"] in ("prefetch.patient", "prefetch.conditions")
    assert "did not answer usably" in error["message"] and "connect" not in error["message"]  # no network detail


def test_no_prefetch_and_no_fhir_server_is_412(client):
    response = post(client, hook_request())
    assert response.status_code == 412
    assert "no fhirServer" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("status", [401, 500])
def test_fhir_server_refusing_required_data_is_412(client, status):
    with LoopbackFhirServer(FhirServerBehaviour(fail_status={"Condition": status})) as server:
        server.add(PATIENT)
        response = post(client, fetching_request(server))
        assert response.status_code == 412
        assert "did not answer usably" in response.get_json()["error"]["message"]


def test_wrong_token_is_412_not_500(client, ehr):
    body = fetching_request(ehr)
    body["fhirAuthorization"] = {**FHIR_AUTH, "access_token": "wrong"}
    response = post(client, body)
    assert response.status_code == 412
    assert "did not answer usably" in response.get_json()["error"]["message"]


def test_optional_data_failing_degrades_and_is_remembered(app, ehr):
    """Observations failing with 500: the answer still comes, and the gap is known."""
    from cds_service.gather.prefetch import gather
    from cds_service.hooks.envelope import parse_hook_request
    from cds_service.hooks.registry import ServiceRegistry

    ehr.behaviour.fail_status = {"Observation": 500}
    response = post(app.test_client(), fetching_request(ehr))
    assert response.status_code == 200
    plan = build_query_plan(load_valuesets(), app.config)
    service = ServiceRegistry(prefetch=plan.templates()).get("lumbar-imaging-order-select")
    gathered = gather(parse_hook_request(fetching_request(ehr), service), service, app.config, plan, date(2026, 11, 15))
    assert gathered.unavailable == {"observations": "HTTP 500", "observationFindings": "HTTP 500",
                                    "examObservations": "HTTP 500"}
    assert gathered.incomplete == {"observations": "error", "observationFindings": "error", "examObservations": "error"}
    assert "observations" not in gathered.data


def test_slow_fhir_server_times_out_to_412(app_config):
    with LoopbackFhirServer(FhirServerBehaviour(delay_seconds=1.0)) as server:
        server.add(PATIENT, LBP_CONDITION)
        app = create_app({**app_config, "FHIR_READ_TIMEOUT": 0.2})
        response = post(app.test_client(), fetching_request(server))
        assert response.status_code == 412
        assert "did not answer usably" in response.get_json()["error"]["message"]


def test_slow_optional_key_still_answers(app_config):
    """Only observations are fetched, and they time out: the hook still answers 200."""
    with LoopbackFhirServer(FhirServerBehaviour(delay_seconds=1.0)) as server:
        app = create_app({**app_config, "FHIR_READ_TIMEOUT": 0.2})
        prefetch = {k: v for k, v in full_prefetch().items() if k != "observations"}
        response = post(app.test_client(), hook_request(prefetch=prefetch, fhirServer=server.base_url))
        assert response.status_code == 200
        assert [s.path for s in server.seen] == ["/fhir/Observation"]


def test_missing_keys_are_fetched_in_parallel(client):
    """All seven keys are in flight at once (measured by the server, not by a clock)."""
    with LoopbackFhirServer(FhirServerBehaviour(delay_seconds=0.5)) as server:
        server.add(PATIENT, LBP_CONDITION)
        assert post(client, fetching_request(server)).status_code == 200
        assert server.max_in_flight == len(PREFETCH_TEMPLATES)
