"""Build `bench/data/synthea_shapes.json`: real Synthea resource shapes for the payload generator.

Role in the benchmark: run once by hand (`python -m bench.extract_shapes [SYNTHEA_DIR]`, by default
the project's copy in tests/data/synthea); its output is committed so `make bench` need not run it.
It keeps one resource per distinct code of each type the prefetch templates read (Conditions,
Observations, Procedures, MedicationRequests, DiagnosticReports), drops narratives and reference displays (synthetic names
live there), and leaves out anything the pathway could read as relevant (back pain, red flags,
cancer treatment, immunosuppressants, spinal procedures): the generator adds the few relevant
resources itself, so the benchmark controls exactly what the service should find.

Sources (synthetic, no PHI; see bench/data/SOURCE.txt and tests/data/SOURCE.md for commits and licences):
Synthea R4 bundles from smart-on-fhir/generated-sample-data and inferno-reference-server-data, and
the Synthea bulk NDJSON set from smart-on-fhir/sample-bulk-fhir-datasets (10-patients branch).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "synthea"
OUT = Path(__file__).resolve().parent / "data" / "synthea_shapes.json"

BUNDLES = (
    "smart-generated-sample-data-R4/Nicky_Little_0468e9ab-c204-40c3-bd99-3116967b0ed7.json",
    "smart-generated-sample-data-R4/Gayla_Ferry_259bc6c6-9c1d-43e9-bd25-7539cf07f8ac.json",
    "inferno-reference-server-data/uscore_bundle_patient_85.json",
)
NDJSON = (
    "smart-sample-bulk-fhir-datasets-10-patients/Condition.000.ndjson",
    "smart-sample-bulk-fhir-datasets-10-patients/Procedure.000.ndjson",
    "smart-sample-bulk-fhir-datasets-10-patients/MedicationRequest.000.ndjson",
)
TYPES = ("Condition", "Observation", "Procedure", "MedicationRequest", "DiagnosticReport")
MAX_PER_TYPE = {"Condition": 45, "Observation": 60, "Procedure": 45, "MedicationRequest": 30, "DiagnosticReport": 12}

# Anything the pathway might count as evidence (clinical-specification.md §10) stays out of the filler.
RELEVANT = re.compile(
    r"pain|back|spin|lumb|sciatica|fever|chill|sepsis|infect|osteomyel|fractur|osteopor|cancer|"
    r"carcinom|neoplasm|malignan|tumou?r|metasta|chemo|radiation|transplant|tacrolimus|paclitaxel|"
    r"cisplatin|budesonide|predni|dexameth|cortis|drug|opioid|meperidine|HIV|immun|incontinen|"
    r"retention|bladder|bowel|weight loss|temperature|seizure",
    re.I,
)
# Observations the generator writes itself (vitals it controls), so not taken as filler.
OWN_OBSERVATION_CODES = {"8310-5", "8331-1", "29463-7", "85354-9", "55284-4", "8867-4"}


def _code(resource: dict) -> tuple[str, str]:
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    coding = (concept.get("coding") or [{}])[0]
    return coding.get("code", ""), coding.get("display", "") + " " + concept.get("text", "")


def _scrub(value):
    """Drop narratives and the display of references (names of synthetic people and places)."""
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            if key == "text" and isinstance(child, dict) and "div" in child:
                continue
            out[key] = _scrub(child)
        if isinstance(out.get("reference"), str):
            out.pop("display", None)
        return out
    if isinstance(value, list):
        return [_scrub(child) for child in value]
    return value


def _resources(folder: Path):
    for name in BUNDLES:
        for entry in json.loads((folder / name).read_text())["entry"]:
            yield entry["resource"]
    for name in NDJSON:
        with open(folder / name) as lines:
            for line in lines:
                yield json.loads(line)


def extract(folder: Path) -> dict:
    shapes: dict[str, list[dict]] = {t: [] for t in TYPES}
    seen: set[tuple[str, str]] = set()
    for resource in _resources(folder):
        kind = resource.get("resourceType")
        if kind not in shapes or len(shapes[kind]) >= MAX_PER_TYPE[kind]:
            continue
        code, words = _code(resource)
        if not code or (kind, code) in seen or RELEVANT.search(words):
            continue
        if kind == "Observation" and code in OWN_OBSERVATION_CODES:
            continue
        seen.add((kind, code))
        shapes[kind].append(_scrub(resource))
    return shapes


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEFAULT_DIR
    shapes = extract(folder)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(shapes, indent=1) + "\n")
    print({kind: len(items) for kind, items in shapes.items()}, "->", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
