"""Cards a clinician reads in seconds (clinical-specification.md §7.3): every topic rendered on
every scenario fits the length limits, shows no resource id, internal code or ASCII stand-in,
and keeps its evidence machine-readable in the card's `extension`; the emergency card says the
sign, where it was found and the action, and nothing else."""

from __future__ import annotations

import dataclasses
import re
import statistics
from datetime import date

import pytest

from cds_service import cards_dir
from cds_service.decide.outcomes import CAUDA_EQUINA_RISK, TOPICS
from cds_service.decide.rules import decide
from cds_service.gather.prefetch import GatheredData
from cds_service.hooks.envelope import parse_hook_request
from cds_service.hooks.registry import ServiceRegistry
from cds_service.read.parser import parse_inputs
from cds_service.read.valuesets import load_valuesets
from cds_service.render.cards import CardRenderer
from cds_service.render.evidence import EXTENSION_KEY
from tests.support.scenario import RESOURCE_ID, SERVICE_FOR_HOOK, TOPIC_INDICATORS, load_scenarios

SCENARIOS = load_scenarios()
DETAIL_MAX, CRITICAL_DETAIL_MAX, SUMMARY_MAX = 600, 400, 140
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
ASCII_STAND_INS = (">=", "<=", " -- ", " Cel", "[degF]")


@pytest.fixture(scope="module")
def renderer():
    return CardRenderer(cards_dir())


def decisions_of(fixture: dict):
    request = fixture["request"]
    service = ServiceRegistry().get(SERVICE_FOR_HOOK[request["hook"]])
    hook = parse_hook_request({k: v for k, v in request.items() if k != "prefetch"}, service)
    gathered = GatheredData(data=dict(request["prefetch"]))
    inputs = parse_inputs(hook, gathered, load_valuesets(), {}, date(2026, 11, 17), None)
    return inputs, decide(inputs)


def possible(decision, topic: str) -> bool:
    """A topic the decision's facts could carry: the 6-week cards need an onset, the repeat card a
    prior study."""
    if topic in ("imaging-before-6-weeks", "no-prior-management"):
        return decision.onset is not None
    if topic == "repeat-imaging":
        return decision.prior_imaging is not None
    return True


def every_card(renderer):
    """(scenario, topic, card) for every topic forced onto every judged order of every scenario."""
    for name, fixture in SCENARIOS:
        inputs, decisions = decisions_of(fixture)
        for decision in decisions:
            for topic in TOPICS:
                if not possible(decision, topic):
                    continue
                forced = dataclasses.replace(decision, topic=topic, indicator=TOPIC_INDICATORS[topic])
                rendered = renderer.render([forced], f"Patient/{fixture['request']['context']['patientId']}",
                                           inputs.reference_date)
                yield name, topic, rendered[0].card


def problems_of(card: dict, topic: str) -> list[str]:
    out = []
    limit = CRITICAL_DETAIL_MAX if card["indicator"] == "critical" else DETAIL_MAX
    if len(card["summary"]) > SUMMARY_MAX:
        out.append(f"summary {len(card['summary'])} characters")
    if len(card["detail"]) > limit:
        out.append(f"detail {len(card['detail'])} characters (at most {limit})")
    for field in ("summary", "detail"):
        text = card[field]
        out += [f"{field} shows {ref}" for ref in RESOURCE_ID.findall(text)]
        out += [f"{field} shows the ISO date {d}" for d in ISO_DATE.findall(text)]
        out += [f"{field} has {s!r}" for s in ASCII_STAND_INS if s in text]
        out += [f"{field} shows a code system" for s in ("ICD-10", "SNOMED", "CPT", "LOINC", "RxNorm") if s in text]
    # The guideline links (the red-flag screen's link is the service's own URL, §12).
    links = [link for link in card.get("links") or [] if "/screen/" not in link["url"]]
    if not links or not all(link.get("type") == "absolute" and link["url"].startswith("https://") for link in links):
        out.append("the guideline is not an absolute link")
    evidence = (card.get("extension") or {}).get(EXTENSION_KEY) or {}
    if not evidence.get("order", "").startswith("ServiceRequest/"):
        out.append("the extension does not name the order")
    return out


def test_every_topic_on_every_scenario_reads_in_seconds(renderer):
    found = [f"{name} / {topic}: {problem}" for name, topic, card in every_card(renderer)
             for problem in problems_of(card, topic)]
    assert found == []


def test_the_real_cards_carry_their_evidence_in_the_extension(client):
    """The cards the scenarios really get: every fact the card rests on has its reference, code
    and date in the extension, and the median detail stays well under the limit."""
    lengths = []
    for _name, fixture in SCENARIOS:
        request = fixture["request"]
        body = client.post(f"/cds-services/{SERVICE_FOR_HOOK[request['hook']]}", json=request).get_json()
        for card in body["cards"]:
            lengths.append(len(card["detail"]))
            evidence = card["extension"][EXTENSION_KEY]
            assert evidence["referenceDate"] and evidence["evidence"]
            assert all(item["reference"] and item["role"] for item in evidence["evidence"])
            assert problems_of(card, "") == []
    assert lengths and statistics.median(lengths) <= 500


def test_the_emergency_card_is_the_sign_where_and_the_action(client):
    seen = 0
    for _name, fixture in SCENARIOS:
        request = fixture["request"]
        body = client.post(f"/cds-services/{SERVICE_FOR_HOOK[request['hook']]}", json=request).get_json()
        for card in body["cards"]:
            if card["source"]["topic"]["code"] != CAUDA_EQUINA_RISK:
                continue
            seen += 1
            detail = card["detail"]
            assert detail.startswith("**Sign:** ")
            assert any(where in detail for where in ("on the problem list", "in the observations",
                                                      "as the reason for this order", "in a clinical note",
                                                      "in the procedure history"))
            assert "MRI lumbar spine without contrast within hours" in detail
            assert "refer urgently to spine surgery" in detail
            for absent in ("week", "Screened", "none found", "Reassess"):
                assert absent not in detail
            if "CT" in card["summary"] or "CT lumbar" in detail:
                assert "CT only if MRI is contraindicated or unavailable" in detail
    assert seen >= 5
