"""The CDS Hooks 2.0 conformance checker itself: it passes a good response and names each fault."""

from __future__ import annotations

import copy

import pytest

from tests.support.cds_conformance import assert_conforms, problems

GOOD = {
    "cards": [{
        "uuid": "2c7f1c47-77a3-4f3a-9e37-5d1f1f0c3b10",
        "summary": "MRI lumbar spine without contrast: imaging is not indicated before 6 weeks",
        "indicator": "warning",
        "detail": "Details",
        "source": {"label": "ACR", "url": "https://acsearch.acr.org/",
                   "topic": {"system": "urn:lumbar-imaging-cds:card-topic", "code": "imaging-before-6-weeks"}},
        "suggestions": [{
            "label": "Remove the order",
            "uuid": "0f4b5d54-8a3b-4d86-9d8b-8f3f5b2b6f11",
            "actions": [
                {"type": "delete", "description": "Remove", "resourceId": ["ServiceRequest/1"]},
                {"type": "create", "description": "Refer", "resource": {"resourceType": "ServiceRequest", "status": "draft"}},
            ],
        }],
        "selectionBehavior": "at-most-one",
        "overrideReasons": [{"code": "x", "system": "urn:s", "display": "Reason"}],
    }],
    "systemActions": [{"type": "update", "description": "Rate",
                       "resource": {"resourceType": "ServiceRequest", "id": "1"}}],
    "extension": {"systemActions": [{"type": "update", "description": "Rate",
                                     "resource": {"resourceType": "ServiceRequest", "id": "1"}}]},
}


def test_good_response_and_empty_cards_conform():
    assert problems(GOOD) == []
    assert problems({"cards": []}) == []


def _set(path, value):
    def mutate(body):
        target = body
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


CARD = ["cards", 0]
SUGGESTION = CARD + ["suggestions", 0]
BAD = [
    ("no cards", _set(["cards"], KeyError), "cards: required"),
    ("long summary", _set(CARD + ["summary"], "x" * 141), "141 characters"),
    ("bad indicator", _set(CARD + ["indicator"], "hard-stop"), "indicator"),
    ("no source label", _set(CARD + ["source", "label"], KeyError), "source.label"),
    ("topic without code", _set(CARD + ["source", "topic", "code"], KeyError), "source.topic.code"),
    ("no card uuid", _set(CARD + ["uuid"], KeyError), "cards[0].uuid"),
    ("uuid not a uuid", _set(CARD + ["uuid"], "card-1"), "not a uuid"),
    ("duplicate uuid", _set(SUGGESTION + ["uuid"], "2c7f1c47-77a3-4f3a-9e37-5d1f1f0c3b10"), "used twice"),
    ("suggestions without selectionBehavior", _set(CARD + ["selectionBehavior"], KeyError), "selectionBehavior"),
    ("suggestion without actions", _set(SUGGESTION + ["actions"], []), "at least one action"),
    ("override reason without display", _set(CARD + ["overrideReasons", 0, "display"], KeyError), "overrideReasons[0].display"),
    ("action without description", _set(SUGGESTION + ["actions", 0, "description"], KeyError), "description"),
    ("bad action type", _set(SUGGESTION + ["actions", 0, "type"], "remove"), "create|update|delete"),
    ("delete without resourceId", _set(SUGGESTION + ["actions", 0, "resourceId"], KeyError), "resourceId"),
    ("create without resource", _set(SUGGESTION + ["actions", 1, "resource"], KeyError), "needs a FHIR resource"),
    ("update without id", _set(["systemActions", 0, "resource", "id"], KeyError), "resource.id"),
    ("sandbox extension action broken", _set(["extension", "systemActions", 0, "description"], KeyError),
     "extension.systemActions[0].description"),
    ("null value", _set(CARD + ["detail"], None), "detail: null"),
    ("empty string", _set(CARD + ["source", "url"], ""), "empty string"),
    ("empty array", _set(["systemActions"], []), "systemActions: empty array"),
    ("empty object in a resource", _set(["systemActions", 0, "resource", "code"], {}), "empty object"),
    ("empty array deep in a resource", _set(SUGGESTION + ["actions", 1, "resource", "reasonCode"], []), "reasonCode: empty array"),
]


@pytest.mark.parametrize("mutate, expected", [pytest.param(m, e, id=n) for n, m, e in BAD])
def test_checker_names_the_fault(mutate, expected):
    body = copy.deepcopy(GOOD)
    mutate(body)
    found = problems(body)
    assert any(expected in p for p in found), found
    with pytest.raises(AssertionError):
        assert_conforms(body)
