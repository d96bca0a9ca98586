"""The one entry point (service.CdsService): a hook call from its parsed body to the answer, the
same whether the HTTP endpoint, `lumbar-cds evaluate` or a test calls it."""

from __future__ import annotations

import copy

import pytest

from cds_service.config import load_settings
from cds_service.hooks.errors import CdsError
from cds_service.service import CdsService, with_planned_keys
from tests.support.scenario import (
    PLANNED_TEMPLATES,
    load_scenarios,
    normalise_expected,
    outcome,
    service_path,
)

SCENARIOS = dict(load_scenarios())
SCENARIO = SCENARIOS["acute-lbp-2-weeks-xray"]


@pytest.fixture
def make_service(tmp_path):
    started = []

    def make(**settings) -> CdsService:
        service = CdsService.start(load_settings({"DATABASE_PATH": str(tmp_path / "store.sqlite3"), **settings}))
        started.append(service)
        return service

    yield make
    for service in started:
        service.close()


def test_a_call_gathers_evaluates_and_records(make_service):
    service = make_service()
    request = SCENARIO["request"]
    answer = service.call(service_path(request).rsplit("/", 1)[1], copy.deepcopy(request))
    assert outcome(answer.response, request).as_expected() == normalise_expected(SCENARIO["expected"])
    assert answer.request.hook_instance == request["hookInstance"]
    assert [j.rating for j in answer.result.judgements] == list(SCENARIO["expected"]["ratings"].values())
    assert service.recorder.flush(10)
    assert service.recorder.stats()["written"] == len(SCENARIO["expected"]["ratings"])


def test_the_endpoint_answers_what_the_service_answers(make_service, client):
    service = make_service(RECORD_JUDGEMENTS=False)
    for name in ("acute-lbp-2-weeks-xray", "cauda-equina-urinary-retention-xray"):
        request = SCENARIOS[name]["request"]
        direct = service.call(service_path(request).rsplit("/", 1)[1], copy.deepcopy(request)).response
        served = client.post(service_path(request), json=request).get_json()
        assert outcome(direct, request).as_expected() == outcome(served, request).as_expected()


def test_silent_mode_records_but_shows_nothing(make_service):
    service = make_service(MODE="silent")
    request = SCENARIO["request"]
    answer = service.call(service_path(request).rsplit("/", 1)[1], copy.deepcopy(request))
    assert answer.response == {"cards": []}
    assert answer.result.response["cards"]  # decided all the same, and recorded
    assert service.recorder.flush(10) and service.recorder.stats()["written"] >= 1


def test_refusals_are_numbered_errors(make_service):
    service = make_service(RECORD_JUDGEMENTS=False)
    with pytest.raises(CdsError) as raised:
        service.call("no-such-service", {})
    assert raised.value.code == "LCDS-1404"
    body = copy.deepcopy(SCENARIO["request"])
    del body["context"]["patientId"]
    with pytest.raises(CdsError) as raised:
        service.call(service_path(body).rsplit("/", 1)[1], body)
    assert (raised.value.code, raised.value.field) == ("LCDS-1003", "context.patientId")


def test_with_planned_keys_gives_each_narrowed_key_its_own_copy():
    request = {"prefetch": {"observations": {"resourceType": "Bundle", "entry": []}}}
    with_planned_keys(request, PLANNED_TEMPLATES)
    observation_keys = [k for k, t in PLANNED_TEMPLATES.items() if t.startswith("Observation")]
    assert len(observation_keys) > 1 and set(observation_keys) <= set(request["prefetch"])
    first, second = (request["prefetch"][k] for k in observation_keys[:2])
    assert first == second and first is not second
