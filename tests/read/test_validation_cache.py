"""`read.fhir.validate` remembers the contents it found valid: a content is validated once per
process, and the verdict never covers another content."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.condition import Condition

from cds_service.read import fhir


def _condition(onset: str) -> dict:
    return {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "279039007"}]},
            "onsetDateTime": onset}


def test_a_valid_content_is_validated_once(monkeypatch):
    calls = []
    real = Condition.model_validate
    monkeypatch.setattr(Condition, "model_validate", lambda data: calls.append(data) or real(data))
    resource = _condition("2026-11-02")
    fhir.validate(Condition, resource)
    fhir.validate(Condition, dict(resource))  # equal content, another dict
    assert len(calls) == 1


def test_an_invalid_content_raises_every_time_and_spoils_nothing():
    fhir.validate(Condition, _condition("2026-11-03"))
    broken = _condition("not a date")
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError, whatever its form
            fhir.validate(Condition, broken)
    fhir.validate(Condition, _condition("2026-11-03"))


def test_the_elements_the_pathway_does_not_read_are_left_out_unless_whole():
    resource = {**_condition("2026-11-04"), "text": {"status": "generated"}}  # narrative without div: invalid
    fhir.validate(Condition, resource)
    with pytest.raises(Exception):  # noqa: B017
        fhir.validate(Condition, resource, whole=True)
