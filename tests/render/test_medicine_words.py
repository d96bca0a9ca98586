"""A medicine known only by its name says so in the card, and its evidence says how it was
recognised (clinical-specification.md §3.7, §7.3)."""

from __future__ import annotations

import copy

from tests.support.scenario import load_scenarios, service_path

SCENARIOS = dict(load_scenarios())


def card_of(client, name: str) -> dict:
    request = copy.deepcopy(SCENARIOS[name]["request"])
    (card,) = client.post(service_path(request), json=request).get_json()["cards"]
    return card


def test_a_self_reported_brand_is_named_by_its_ingredient_and_by_name(client):
    card = card_of(client, "self-reported-otc-aleve-text-only-ct")
    assert "naproxen (by name) in the prescriptions, 18 Apr 2024" in card["detail"]
    (management,) = [e for e in card["extension"]["org.lumbar-imaging-cds.evidence"]["evidence"] if e["role"] == "management"]
    assert management == {"role": "management", "reference": "MedicationRequest/medrx-1",
                          "resourceType": "MedicationRequest", "display": "naproxen", "date": "2024-04-18",
                          "recognisedBy": "name"}


def test_a_combination_named_in_a_reference_display(client):
    card = card_of(client, "hydrocodone-acetaminophen-reference-display-only-ct")
    assert "acetaminophen (by name) in the prescriptions, 9 Apr 2024" in card["detail"]
