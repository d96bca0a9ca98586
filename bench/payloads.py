"""Hook requests of realistic shape and size for the benchmark.

Role in the benchmark: the input of every measurement. `hook_request(n)` builds an order-select
request whose prefetch holds `n` FHIR resources (the Patient included): Conditions, Observations
(vitals with body temperature, weight, blood pressure and heart rate, labs, surveys),
Procedures, MedicationRequests and DiagnosticReports copied from real Synthea shapes
(bench/data/synthea_shapes.json), re-identified to one test patient and spread over ten years.
Among them, the few resources the pathway must find (clinical-specification.md §10):

- a low back pain Condition, SNOMED 279039007 and ICD-10-CM M54.50, onset 17 days before the
  order (so the service has a real decision to make: the "imaging before 6 weeks" warning);
- the latest vitals (body temperature 8310-5 without fever, body weight 29463-7 without loss);
- the draft order: a ServiceRequest for MRI lumbar spine without contrast, CPT 72148, with
  `authoredOn` (the reference date) and `reasonCode` 279039007.

Everything is deterministic (no clock, a seeded generator): the same `n` gives the same bytes.
"""

from __future__ import annotations

import copy
import random
import re
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import orjson

SHAPES_FILE = Path(__file__).resolve().parent / "data" / "synthea_shapes.json"

PATIENT_ID = "bench-patient-1"
ORDER_ID = "bench-order-mri-1"
HOOK_INSTANCE = "6a1c1d3e-7f51-4c55-9a4e-2f0a5b8c9d10"
REFERENCE_DATE = date(2025, 3, 10)  # the order's authoredOn: "today" for the pathway
ONSET_DAYS_BEFORE = 17  # < 6 weeks: the service has a warning to build
HISTORY_DAYS = 3650  # filler resources spread over the ten years before the order

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"

# The codes a smoke test checks are in every request (system, code).
RELEVANT_CODES = (
    (SNOMED, "279039007"),  # low back pain (Condition and the order's reasonCode)
    (ICD10CM, "M54.50"),  # low back pain, unspecified
    (CPT, "72148"),  # MRI lumbar spine without contrast (the draft order)
    (LOINC, "8310-5"),  # body temperature
    (LOINC, "29463-7"),  # body weight
)

# Share of the resources (after the Patient) in each prefetch key. Observations dominate real
# records (Synthea: about 70 % of a patient's clinical resources).
SHARES = (("conditions", 0.08), ("procedures", 0.07), ("medications", 0.05), ("diagnosticReports", 0.05))
# Keys of the discovery's prefetch for which this record has no resource: the Observations of the
# narrowed searches (findings, exam), and no medication statement, clinical note, prior
# referral or encounter. tests/bench checks that with the seven record keys they are every key
# the services announce.
EMPTY_KEYS = ("observationFindings", "examObservations", "medicationStatements", "clinicalNotes",
              "serviceRequests", "encounters")
VITALS_SHARE = 0.45  # of the Observations: vitals; the rest labs and surveys from Synthea

_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(.*)$", re.S)
_REFERENCE_TYPES = {
    "subject": "Patient", "patient": "Patient", "beneficiary": "Patient",
    "encounter": "Encounter", "context": "Encounter",
    "result": "Observation", "hasMember": "Observation", "derivedFrom": "Observation",
    "reasonReference": "Condition",
    "requester": "Practitioner", "performer": "Practitioner", "recorder": "Practitioner",
    "asserter": "Practitioner", "author": "Practitioner", "actor": "Practitioner",
    "location": "Location", "serviceProvider": "Organization", "organization": "Organization",
}


@cache
def shapes() -> dict[str, list[dict]]:
    return orjson.loads(SHAPES_FILE.read_bytes())


def _iso(day: date) -> str:
    return day.isoformat()


class _Reidentifier:
    """Copies a Synthea resource onto the test patient, with a new id and moved dates."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def copy(self, shape: dict, new_id: str, when: date) -> dict:
        resource = copy.deepcopy(shape)
        resource["id"] = new_id
        first = self._first_date(resource)
        shift = (when - first) if first else timedelta(0)
        return self._walk(resource, None, shift)

    def _first_date(self, value) -> date | None:
        for key in ("effectiveDateTime", "onsetDateTime", "authoredOn", "recordedDate", "issued"):
            text = value.get(key)
            if isinstance(text, str) and _DATE.match(text):
                return date.fromisoformat(text[:10])
        period = value.get("performedPeriod") or value.get("effectivePeriod")
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return date.fromisoformat(period["start"][:10])
        return None

    def _walk(self, value, key, shift):
        if isinstance(value, dict):
            out = {k: self._walk(v, k, shift) for k, v in value.items()}
            if isinstance(out.get("reference"), str):
                kind = _REFERENCE_TYPES.get(key or "", "Basic")
                out["reference"] = (
                    f"Patient/{PATIENT_ID}" if kind == "Patient" else f"{kind}/bench-{kind.lower()}-{self.rng.randrange(10_000)}"
                )
            return out
        if isinstance(value, list):
            return [self._walk(v, key, shift) for v in value]
        if isinstance(value, str) and shift and key not in ("id", "code", "value", "url", "system"):
            match = _DATE.match(value)
            if match:
                try:
                    moved = date.fromisoformat(match.group(1)) + shift
                except ValueError:
                    return value
                return moved.isoformat() + match.group(2)
        return value


def patient() -> dict:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                "valueCode": "F",
            }
        ],
        "identifier": [{"system": "urn:bench:mrn", "value": "bench-mrn-0001"}],
        "name": [{"use": "official", "family": "Bench", "given": ["Test"]}],
        "gender": "female",
        "birthDate": "1972-06-14",
    }


def low_back_pain_condition() -> dict:
    onset = REFERENCE_DATE - timedelta(days=ONSET_DAYS_BEFORE)
    return {
        "resourceType": "Condition",
        "id": "bench-cond-lbp-1",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-encounter-diagnosis"]},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis", "display": "Encounter Diagnosis"}]}],
        "code": {
            "coding": [
                {"system": SNOMED, "code": "279039007", "display": "Low back pain (finding)"},
                {"system": ICD10CM, "code": "M54.50", "display": "Low back pain, unspecified"},
            ],
            "text": "Low back pain",
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "encounter": {"reference": "Encounter/bench-encounter-lbp"},
        "onsetDateTime": _iso(onset) + "T09:30:00-05:00",
        "recordedDate": _iso(onset) + "T09:30:00-05:00",
    }


def mri_order() -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": ORDER_ID,
        "status": "draft",
        "intent": "plan",
        "category": [{"coding": [{"system": SNOMED, "code": "363679005", "display": "Imaging"}]}],
        "code": {"coding": [{"system": CPT, "code": "72148", "display": "MRI lumbar spine without contrast"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": _iso(REFERENCE_DATE),
        "reasonCode": [{"coding": [{"system": SNOMED, "code": "279039007", "display": "Low back pain"}]}],
    }


def _vital(kind: int, index: int, when: date, rng: random.Random) -> dict:
    """One of four vitals in the US Core shape Synthea writes (temperature, weight, BP, pulse)."""
    body = {
        "resourceType": "Observation",
        "id": f"bench-vital-{index:05d}",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"]},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "vital-signs"}]}],
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "encounter": {"reference": f"Encounter/bench-encounter-{index // 4}"},
        "effectiveDateTime": _iso(when) + "T09:30:00-05:00",
        "issued": _iso(when) + "T09:30:00.000-05:00",
    }
    if kind == 0:  # no fever: 36.4 - 37.3 Cel (a red flag only above 38)
        body["code"] = {"coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}, {"system": LOINC, "code": "8331-1", "display": "Oral temperature"}], "text": "Body temperature"}
        body["valueQuantity"] = {"value": round(rng.uniform(36.4, 37.3), 1), "unit": "Cel", "system": UCUM, "code": "Cel"}
    elif kind == 1:  # stable weight: no unexplained weight loss
        body["code"] = {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body Weight"}], "text": "Body Weight"}
        body["valueQuantity"] = {"value": round(rng.uniform(71.0, 71.6), 1), "unit": "kg", "system": UCUM, "code": "kg"}
    elif kind == 2:
        body["code"] = {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel with all children optional"}], "text": "Blood pressure panel with all children optional"}
        body["component"] = [
            {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic Blood Pressure"}], "text": "Diastolic Blood Pressure"},
             "valueQuantity": {"value": rng.randrange(70, 86), "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic Blood Pressure"}], "text": "Systolic Blood Pressure"},
             "valueQuantity": {"value": rng.randrange(110, 135), "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}},
        ]
    else:
        body["code"] = {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"}
        body["valueQuantity"] = {"value": rng.randrange(58, 92), "unit": "/min", "system": UCUM, "code": "/min"}
    return body


def _counts(n: int) -> dict[str, int]:
    """How many resources each prefetch key gets so that they add up to `n` (Patient included)."""
    if n < 8:
        raise ValueError("n must be at least 8 (a Patient, a Condition and a few vitals)")
    rest = n - 1
    counts = {key: max(1, round(rest * share)) for key, share in SHARES}
    counts["conditions"] = max(2, counts["conditions"])
    counts["observations"] = rest - sum(counts.values())
    return counts


def _searchset(resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"urn:bench:{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def _history_date(i: int, count: int) -> date:
    """Oldest first: resource i of count, spread over the ten years before the order."""
    first, span = ONSET_DAYS_BEFORE + 1, HISTORY_DAYS - ONSET_DAYS_BEFORE - 1
    return REFERENCE_DATE - timedelta(days=first + span - (span * i) // max(count, 1))


def prefetch(n: int, seed: int = 0) -> dict:
    """Every prefetch key the services announce, holding `n` resources in all (Patient
    included): seven with the record, the rest empty searchsets (`EMPTY_KEYS`)."""
    rng = random.Random(seed * 1_000_003 + n)
    reid = _Reidentifier(rng)
    counts = _counts(n)
    pools = shapes()

    def filler(kind: str, key_prefix: str, count: int) -> list[dict]:
        pool = pools[kind]
        return [reid.copy(pool[i % len(pool)], f"bench-{key_prefix}-{i:05d}", _history_date(i, count)) for i in range(count)]

    # Conditions: irrelevant history, the low back pain episode last (a searchset has no order).
    conditions = filler("Condition", "cond", counts["conditions"] - 1) + [low_back_pain_condition()]

    # Observations: vitals at every visit (the last set at the low back pain visit), labs between.
    n_obs = counts["observations"]
    n_vitals = max(4, int(n_obs * VITALS_SHARE))
    n_vitals -= n_vitals % 4
    n_vitals = min(n_vitals, n_obs - (n_obs % 4)) if n_obs >= 4 else n_obs
    labs = filler("Observation", "obs", n_obs - n_vitals)
    visit_days = max(n_vitals // 4, 1)
    vitals = []
    for i in range(n_vitals):
        visit = i // 4
        when = (
            REFERENCE_DATE - timedelta(days=ONSET_DAYS_BEFORE)
            if visit == visit_days - 1
            else _history_date(visit, visit_days)
        )
        vitals.append(_vital(i % 4, i, when, rng))
    observations = labs + vitals

    return {
        "patient": patient(),
        "conditions": _searchset(conditions),
        "observations": _searchset(observations),
        "procedures": _searchset(filler("Procedure", "proc", counts["procedures"])),
        "medications": _searchset(filler("MedicationRequest", "med", counts["medications"])),
        "imagingStudies": _searchset([]),  # no prior imaging: the common case
        "diagnosticReports": _searchset(filler("DiagnosticReport", "dr", counts["diagnosticReports"])),
        # The service's other templates, answered as an EHR answers a search that matches nothing
        # in this record: without them the service rightly withholds its rating ("not-fetched")
        # and offers the red-flag screen on every call, which is not the common path.
        **{key: _searchset([]) for key in EMPTY_KEYS},
    }


def hook_request(n: int, *, seed: int = 0, with_prefetch: bool = True, fhir_server: str | None = None) -> dict:
    """An order-select request for the MRI order; `n` resources in prefetch (or none)."""
    order = mri_order()
    body: dict = {
        "hook": "order-select",
        "hookInstance": HOOK_INSTANCE,
        "context": {
            "userId": "Practitioner/bench-practitioner-1",
            "patientId": PATIENT_ID,
            "selections": [f"ServiceRequest/{ORDER_ID}"],
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]},
        },
    }
    if fhir_server:
        body["fhirServer"] = fhir_server
    if with_prefetch:
        body["prefetch"] = prefetch(n, seed)
    return body


def hook_body(n: int, **kwargs) -> bytes:
    """The request as the bytes an EHR would send."""
    return orjson.dumps(hook_request(n, **kwargs))


def new_patient_body(n: int, index: int) -> bytes:
    """The request of another patient (`bench-patient-v<index>`, records drawn with seed `index`):
    every resource refers to that patient and the vital signs' values differ, so nothing in it
    was seen in an earlier call (bench/patients.py)."""
    body = hook_body(n, seed=index)
    for written in (f'"Patient/{PATIENT_ID}"', f'"{PATIENT_ID}"'):  # references, then the ids
        body = body.replace(written.encode(), written.replace(PATIENT_ID, f"{PATIENT_ID}-v{index}").encode())
    return body


def server_resources(n: int, seed: int = 0) -> list[dict]:
    """The same record as loose resources, for a FHIR server to answer searches with."""
    data = prefetch(n, seed)
    resources = [data["patient"]]
    for key, value in data.items():
        if key != "patient":
            resources.extend(entry["resource"] for entry in value["entry"])
    return resources


def count_resources(body: dict) -> int:
    """Resources in a request's prefetch (a Bundle counts its entries, a resource counts one)."""
    total = 0
    for value in (body.get("prefetch") or {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            total += len(value.get("entry") or [])
        elif isinstance(value, dict):
            total += 1
    return total
