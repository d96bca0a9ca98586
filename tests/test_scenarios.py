"""Named clinical scenarios, run end to end through the HTTP endpoint (clinical-specification.md §5-3).

Each `tests/scenarios/<name>.json` is a vignette a clinician can read: a real CDS Hooks request
(draft orders dated by `authoredOn`, so the result never depends on today's date) and the cards
(topic, indicator, the order each names) and PAMA ratings expected. Every vignette runs twice:
1. with the full prefetch, as an EHR that prefetches everything would send it;
2. with no prefetch at all, `fhirServer` pointing at the real loopback FHIR server holding the same
   resources and demanding the `fhirAuthorization` bearer token: the service's fetching path.
Both runs must give exactly the expected topics, indicators and ratings.
"""

from __future__ import annotations

import copy

import pytest

from cds_service.hooks.response import CdsResponse
from tests.support.medplum import MedplumFhirServer
from tests.support.scenario import (
    PLANNED_TEMPLATES,
    PREFETCH_KEYS,
    README_PATH,
    SCENARIO_TOKEN,
    TOPIC_INDICATORS,
    fixture_problems,
    load_fhir_server,
    load_scenarios,
    normalise_expected,
    outcome,
    readme_example_block,
    render_readme_example,
    service_path,
    without_prefetch,
    without_uuids,
)

try:  # the CDS Hooks 2.0 response rules, written with the cards (issue 3)
    from tests.support import cds_conformance
except ImportError:  # pragma: no cover - only until the module lands
    cds_conformance = None

SCENARIOS = load_scenarios()
IDS = [name for name, _ in SCENARIOS]

# The FHIR resource types the service reads for its prefetch keys (cds_service/queries.py).
FETCHED_TYPES = {template.split("?")[0].split("/")[0] for template in PLANNED_TEMPLATES.values()}


def note_urls(request: dict) -> list[str]:
    """The attachment urls of the clinical notes a vignette holds (fetched as Binary)."""
    notes = (request["prefetch"].get("clinicalNotes") or {}).get("entry") or []
    return [c["attachment"]["url"] for e in notes for c in e["resource"].get("content") or []
            if c.get("attachment", {}).get("url")]


def referenced_medications(request: dict) -> bool:
    """Whether a vignette's medication records name a Medication by a literal reference (not a
    contained one): with no prefetch the service reads it from the FHIR server (`_include` is not
    supported by the test server, as by many EHRs), clinical-specification.md §3.7."""
    for key in ("medications", "medicationStatements"):
        for entry in (request["prefetch"].get(key) or {}).get("entry") or []:
            resource = entry["resource"]
            target = (resource.get("medicationReference") or {}).get("reference") or ""
            if target.startswith("Medication/") and resource.get("status") not in ("entered-in-error", "cancelled", "draft"):
                return True
    return False


def conformance_problems(body: dict) -> list[str]:
    if cds_conformance is None:
        return []
    return list(cds_conformance.problems(body))


def check_answer(response, request: dict, expected: dict) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    CdsResponse.model_validate(body)  # every card against the contract's response model
    assert conformance_problems(body) == []
    seen = outcome(body, request)
    assert seen.problems == []
    assert seen.as_expected() == normalise_expected(expected)
    assert seen.citation_problems(expected) == []


@pytest.mark.parametrize(("name", "fixture"), SCENARIOS, ids=IDS)
def test_fixture_is_well_formed(name, fixture):
    assert fixture_problems(name, fixture) == []


@pytest.mark.parametrize(("name", "fixture"), SCENARIOS, ids=IDS)
def test_scenario_with_full_prefetch(client, request, name, fixture):
    body = fixture["request"]
    if fixture.get("binaries") or fixture.get("server_only"):
        # A clinical note's attachment url, a Medication named by reference only: the EHR's FHIR
        # server holds only those, and the service fetches nothing else (the rest is prefetched).
        server = request.getfixturevalue("ehr_server")
        server.reset()
        load_fhir_server(server, {}, fixture.get("binaries", []), fixture.get("server_only", []))
        sent = dict(without_prefetch(body, server.base_url), prefetch=copy.deepcopy(body["prefetch"]))
        response = client.post(service_path(body), json=sent)
        check_answer(response, body, fixture["expected"])
        held = {r["resourceType"] for r in fixture.get("server_only", [])} | ({"Binary"} if fixture.get("binaries") else set())
        assert {s.path.split("/")[2] for s in server.seen()} == held
        return
    response = client.post(service_path(body), json=body)
    check_answer(response, body, fixture["expected"])


@pytest.fixture(scope="module")
def ehr_server():
    """A real FHIR server (Medplum's search) that behaves as EHRs do: pages of 20 in no set
    order, Observation searches refused without code or category (Epic), no code search on
    Condition or Procedure (Oracle Health), and a bearer token required."""
    with MedplumFhirServer(required_token=SCENARIO_TOKEN, max_page_size=20, shuffle=True,
                           epic_observation_rule=True, no_code_search=["Condition", "Procedure"]) as server:
        yield server


@pytest.mark.parametrize(("name", "fixture"), SCENARIOS, ids=IDS)
def test_scenario_fetched_from_fhir_server(client, ehr_server, name, fixture):
    request = fixture["request"]
    ehr_server.reset()
    assert load_fhir_server(ehr_server, request["prefetch"], fixture.get("binaries", []), fixture.get("server_only", [])) >= 1
    response = client.post(service_path(request), json=without_prefetch(request, ehr_server.base_url))
    check_answer(response, request, fixture["expected"])
    # Every prefetch key was fetched (and the notes' Binary attachments, the referenced
    # Medications), each time with the bearer token and nothing else.
    seen = ehr_server.seen()
    assert {s.path.split("/")[2] for s in seen} == (FETCHED_TYPES | ({"Binary"} if note_urls(request) else set())
                                                   | ({"Medication"} if referenced_medications(request) else set()))
    assert {s.authorization for s in seen} == {f"Bearer {SCENARIO_TOKEN}"}


def test_the_set_covers_the_pathway():
    """At least 40 vignettes; every topic, every rating and every silent case is exercised."""
    assert len(SCENARIOS) >= 40
    topics = {card["topic"] for _, f in SCENARIOS for card in f["expected"]["cards"]}
    assert topics == set(TOPIC_INDICATORS)
    ratings = {r for _, f in SCENARIOS for r in f["expected"]["ratings"].values()}
    assert ratings == {"appropriate", "not-appropriate", "no-criteria-apply"}
    silent = [f["expected"] for _, f in SCENARIOS if not f["expected"]["cards"]]
    # Silence with a rating (appropriate as ordered / no variant fits) and silence with no rating.
    assert any("appropriate" in e["ratings"].values() for e in silent)
    assert any("no-criteria-apply" in e["ratings"].values() for e in silent)
    assert any(not e["ratings"] for e in silent)
    hooks = {f["request"]["hook"] for _, f in SCENARIOS}
    assert hooks == {"order-select", "order-sign"}
    assert all(set(f["request"]["prefetch"]) >= set(PREFETCH_KEYS) for _, f in SCENARIOS)


def test_the_reader_catches_a_wrong_answer(client):
    """The runner must be able to fail: a tampered answer is reported, not silently accepted."""
    fixture = dict(SCENARIOS)["acute-lbp-2-weeks-xray"]
    request = fixture["request"]
    body = client.post(service_path(request), json=request).get_json()
    good = outcome(body, request)
    assert good.problems == [] and good.as_expected() == normalise_expected(fixture["expected"])
    assert good.citation_problems(fixture["expected"]) == []

    # Rating in extension.systemActions (what the sandbox reads) differs from the top level.
    tampered = copy.deepcopy(body)
    rating = tampered["extension"]["systemActions"][0]["resource"]["extension"][0]
    rating["valueCodeableConcept"]["coding"][0]["code"] = "appropriate"
    assert any("differ" in p for p in outcome(tampered, request).problems)
    # A card that names no order, and a consult id that is not a urn:uuid.
    tampered = copy.deepcopy(body)
    card = tampered["cards"][0]
    card.pop("suggestions")
    card["extension"]["org.lumbar-imaging-cds.evidence"].pop("order")
    tampered["systemActions"][0]["resource"]["extension"][1]["valueUri"] = "consult-1"
    problems = outcome(tampered, request).problems
    assert any("names 0 draft orders" in p for p in problems)
    assert any("consult-id" in p for p in problems)
    # A suggestion of two actions (Epic applies one), an action with no description (Epic shows it).
    tampered = copy.deepcopy(body)
    (remove, refer) = tampered["cards"][0]["suggestions"]
    remove["actions"] += refer["actions"]
    refer["actions"][0]["description"] = " "
    problems = outcome(tampered, request).problems
    assert "card 'imaging-before-6-weeks': suggestion 0 holds 2 actions, not one" in problems
    assert "card 'imaging-before-6-weeks': suggestion 1 has an action without a description" in problems
    # A card whose summary or detail shows a resource id (§7.3: they go to the extension).
    tampered = copy.deepcopy(body)
    tampered["cards"][0]["detail"] += " See Condition/cond-1."
    assert any("detail shows resource ids ['Condition/cond-1']" in p for p in outcome(tampered, request).problems)
    # Evidence that no longer holds the patient's record; a reference that must never appear.
    tampered = copy.deepcopy(body)
    for item in tampered["cards"][0]["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"]:
        item["reference"] = item["reference"].replace("Condition/cond-1", "Condition/cond-10")
    assert outcome(tampered, request).citation_problems(fixture["expected"]) == [
        "imaging-before-6-weeks card for ServiceRequest/sr-1 does not cite Condition/cond-1"
    ]
    assert good.citation_problems({"cards": [], "ratings": {}, "never_cites": ["Condition/cond-1"]}) == [
        "the response cites Condition/cond-1"
    ]


def test_every_card_of_every_scenario_has_one_action_per_suggestion_and_namespaced_extensions(client):
    """Each scenario's cards as the runner reads them: every suggestion one action with a
    description (what Epic applies and shows), `selectionBehavior` set. The runner checks this
    on every scenario run too (`outcome().problems`); here the set is also shown to exercise
    every kind of suggestion, so the check is not empty."""
    kinds = set()
    for name, fixture in SCENARIOS:
        request = fixture["request"]
        if fixture.get("binaries") or fixture.get("server_only"):
            continue  # these need the FHIR server: the runner's own runs check them
        body = client.post(service_path(request), json=request).get_json()
        # Extension keys in reverse-domain form (CDS Hooks 2.0 SHOULD); the response's
        # systemActions stay where the sandbox reads them (README "CDS Hooks 2.0 and 3.0").
        assert set(body.get("extension") or {}) <= {"systemActions"}, name
        for card in body["cards"]:
            assert outcome({"cards": [card]}, request).problems == [], name
            assert all(key.startswith("org.lumbar-imaging-cds.") for key in card.get("extension") or {}), name
            kinds |= {(a["type"], card["selectionBehavior"]) for s in card.get("suggestions") or [] for a in s["actions"]}
    assert kinds >= {("delete", "any"), ("create", "any"), ("update", "any")}


def test_readme_example_is_a_real_run(client):
    """The README's "Clinical behaviour" example is what the service really answers today.
    After a deliberate change of card wording: `.venv/bin/python -m tests.support.scenario`."""
    readme = README_PATH.read_text(encoding="utf-8")
    assert without_uuids(readme_example_block(readme)) == without_uuids(render_readme_example(client))
