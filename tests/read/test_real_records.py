"""Robustness on real-world shapes: every official FHIR R4 example and every Synthea record in
tests/data parses without an exception; Synthea's two chronic low back pain patients are found.
The data is the project's own copy (tests/data/SOURCE.md gives the source and licence of each file)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from cds_service.gather.prefetch import GatheredData
from cds_service.read.parser import iter_resources, parse_inputs
from cds_service.read.valuesets import load_valuesets
from tests.support.hook_requests import PREFETCH_TEMPLATES

from .builders import bundle, hook_request, order

DATA = Path(__file__).resolve().parents[1] / "data"
EXAMPLES = sorted((DATA / "fhir-r4-examples").glob("*.json"))
SYNTHEA_BUNDLES = sorted((DATA / "synthea").glob("*/*.json"))
BULK = DATA / "synthea" / "smart-sample-bulk-fhir-datasets-10-patients"
# Which prefetch key a resource type arrives under (registry.PREFETCH_TEMPLATES).
KEY_OF = {template.split("?")[0].split("/")[0]: key for key, template in PREFETCH_TEMPLATES.items()}
KEY_OF["MedicationStatement"] = "medications"


def test_the_data_is_in_the_repository():
    """No skip when the data is missing: a lost file must fail, not silence the tests below."""
    assert len(EXAMPLES) >= 200 and len(SYNTHEA_BUNDLES) == 3
    assert {p.name for p in BULK.glob("*.ndjson")} >= {"Patient.000.ndjson", "Condition.000.ndjson"}


def _gathered_for(resources: list[dict], patient_id: str) -> GatheredData:
    by_key: dict[str, list[dict]] = defaultdict(list)
    for resource in resources:
        key = KEY_OF.get(resource["resourceType"])
        if key == "patient":
            if resource.get("id") == patient_id:
                by_key[key].append(resource)
        elif key:
            by_key[key].append(resource)
    data = {key: bundle(*items) for key, items in by_key.items() if key != "patient"}
    data["patient"] = by_key["patient"][0] if by_key.get("patient") else None
    return GatheredData(data=data)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_official_example_parses(path: Path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "resourceType" not in raw:
        pytest.skip("not a FHIR resource (package metadata)")
    resources = [r for r, _ in iter_resources(raw)] if raw["resourceType"] == "Bundle" else [raw]
    patient_ids = {r["id"] for r in resources if r.get("resourceType") == "Patient" and r.get("id")} or {"example"}
    for patient_id in sorted(patient_ids):
        gathered = _gathered_for(resources, patient_id)
        # The example itself also goes in as one raw prefetch value (a Bundle or a bare resource).
        gathered.data["diagnosticReports"] = raw
        orders = [r for r in resources if r.get("resourceType") == "ServiceRequest"]
        request = hook_request([], patient_id=patient_id, draft_bundle=bundle(*orders, bundle_type=None))
        inputs = parse_inputs(request, gathered, load_valuesets(), {}, date(2026, 3, 1))
        assert inputs.reference_date is not None
        for fact in inputs.red_flags + [e for e in inputs.episode]:
            assert fact.evidence.reference


@pytest.mark.parametrize("path", SYNTHEA_BUNDLES, ids=lambda p: p.name)
def test_synthea_patient_bundles_parse(path: Path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    resources = [r for r, _ in iter_resources(raw)]
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    request = hook_request([order(patient=patient["id"])], patient_id=patient["id"])
    inputs = parse_inputs(request, _gathered_for(resources, patient["id"]), load_valuesets(), {}, date(2026, 3, 1))
    assert inputs.patient.birth_date is not None and inputs.patient.sex in {"male", "female"}
    assert inputs.skipped_resources == []
    assert [o.reference for o in inputs.orders] == ["ServiceRequest/o1"]


def _bulk() -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    for path in sorted(BULK.glob("*.ndjson")):
        if path.name == "log.ndjson":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        by_type[path.name.split(".")[0]] = [json.loads(line) for line in lines if line.strip()]
    return by_type


def test_synthea_bulk_patients_parse_and_chronic_low_back_pain_is_found():
    data = _bulk()
    everything = [r for rs in data.values() for r in rs]
    episodes = {}
    for patient in data["Patient"]:
        pid = patient["id"]
        request = hook_request([order(patient=pid, authored="2023-04-01")], patient_id=pid)
        # All patients' records are sent: only this patient's may become evidence.
        gathered = _gathered_for(everything, pid)
        inputs = parse_inputs(request, gathered, load_valuesets(), {}, date(2023, 4, 3))
        assert inputs.skipped_resources == []
        assert inputs.patient.birth_date == date.fromisoformat(patient["birthDate"])
        for fact in inputs.episode + inputs.red_flags:
            assert fact.evidence.reference  # and it is this patient's:
        own = {f"Condition/{c['id']}" for c in data["Condition"] if c["subject"]["reference"] == f"Patient/{pid}"}
        assert {e.evidence.reference for e in inputs.episode} <= own
        if inputs.episode:
            episodes[pid[:8]] = [(e.evidence.code, e.onset) for e in inputs.episode]
    assert episodes == {
        "ca15b832": [("278860009", date(2014, 1, 31))],
        "fb7c882a": [("278860009", date(2020, 9, 3))],
    }
