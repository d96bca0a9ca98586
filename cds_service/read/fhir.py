"""Shared readers of raw FHIR JSON: dates, codings, references, Bundles, model validation.

Role in the data flow: the lowest layer of `read` (FHIR records -> pathway inputs). Each record
family's module (conditions, observations, ...) reads raw JSON through these helpers; only the
resources a value set selects are validated with the fhir.resources R4B models (`validate`), on
the elements the pathway reads.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import date
from typing import Any

import orjson
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.gather.prefetch import PLAUSIBLE_YEARS

MODELS = {
    "Condition": Condition, "Observation": Observation, "Procedure": Procedure,
    "MedicationRequest": MedicationRequest, "MedicationStatement": MedicationStatement,
    "ImagingStudy": ImagingStudy, "DiagnosticReport": DiagnosticReport,
    "ServiceRequest": ServiceRequest, "Patient": Patient, "Encounter": Encounter,
    "DocumentReference": DocumentReference,
}

# Elements the parser never reads: left out of the model validation of a selected resource, so
# its cost is paid for what the pathway uses (a Synthea Patient's names, addresses, extensions
# and narrative made its validation alone cost about 0.45 ms). Modifier extensions stay in.
UNREAD_ELEMENTS = frozenset({
    "text", "meta", "extension", "identifier", "name", "telecom", "address", "photo", "contact",
    "communication", "generalPractitioner", "managingOrganization", "maritalStatus", "encounter",
    "performer", "recorder", "asserter", "referenceRange", "hasMember", "derivedFrom", "component",
})

CELSIUS_UNITS = frozenset({"cel", "c", "°c", "degc", "celsius"})
FAHRENHEIT_UNITS = frozenset({"[degf]", "degf", "°f", "f", "fahrenheit"})
KG_UNITS = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}
ML_UNITS = {"ml": 1.0, "cm3": 1.0, "l": 1000.0}
AGE_UNIT_DAYS = {"a": 365.25, "yr": 365.25, "year": 365.25, "years": 365.25, "mo": 30.4375,
                 "month": 30.4375, "months": 30.4375, "wk": 7, "week": 7, "weeks": 7,
                 "d": 1, "day": 1, "days": 1}

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")




def parse_date(value: Any) -> date | None:
    """FHIR date/dateTime/instant -> the calendar date as written; partial dates -> first day."""
    return _date_of(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=16384)  # a record's times repeat (one per encounter), and so do the calls
def _date_of(value: str) -> date | None:
    match = _DATE.match(value.strip())
    if not match:
        return None
    year, month, day = match.group(1), match.group(2) or "01", match.group(3) or "01"
    if not PLAUSIBLE_YEARS[0] <= int(year) <= PLAUSIBLE_YEARS[1]:
        return None  # clinical-specification.md §3.3: a date no record can mean is not read
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def codings(concept: Any) -> list[dict]:
    """The codings of a CodeableConcept, or a bare Coding itself (ImagingStudy.series.bodySite)."""
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list):
            return [c for c in codings if isinstance(c, dict)]
        if "code" in concept and "system" in concept:
            return [concept]
    return []


def concepts_of(value: Any) -> list[dict]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def text_of(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [concept.get("text")] + [c.get("display") for c in codings(concept)]
    return " ".join(p for p in parts if isinstance(p, str))


def status_code(concept: Any) -> str | None:
    for coding in codings(concept):
        code = coding.get("code")
        if isinstance(code, str):
            return code
    return None


def first_date(resource: dict, *paths: str) -> date | None:
    for path in paths:
        value: Any = resource
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        found = parse_date(value)
        if found:
            return found
    return None


def ref_of(resource: dict, full_url: str | None) -> str:
    rtype = resource.get("resourceType", "Resource")
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return f"{rtype}/{rid}"
    return full_url or f"{rtype}/(no id)"


def iter_resources(value: Any) -> Iterator[tuple[dict, str | None]]:
    """(resource, fullUrl) from a Bundle (any type, with or without OperationOutcome entries),
    a single resource, a list of either, or None."""
    if isinstance(value, list):
        for item in value:
            yield from iter_resources(item)
        return
    if not isinstance(value, dict):
        return
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry")
        if not isinstance(entries, list):
            return
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                yield from iter_resources(resource)
            elif isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                full_url = entry.get("fullUrl")
                yield resource, full_url if isinstance(full_url, str) else None
        return
    if isinstance(value.get("resourceType"), str):
        yield value, None


def modality_code(series: dict) -> str | None:
    modality = series.get("modality")
    if isinstance(modality, dict) and isinstance(modality.get("code"), str):
        return modality["code"].upper()
    return None


def one_per_valueset(matches):
    """The matches of a resource, one per value set (a resource with two codes of one set is
    one fact, not two)."""
    seen: set[str] = set()
    for entry in matches:
        if entry.valueset.id not in seen:
            seen.add(entry.valueset.id)
            yield entry



def validate(model, resource: dict, whole: bool = False) -> None:
    """Validate a selected resource with its fhir.resources R4B model, on the elements the
    pathway reads (UNREAD_ELEMENTS left out; all of them with `whole`); raises when they are
    malformed. A content already found valid is not validated again (`_VALID`)."""
    elements = resource if whole else {k: v for k, v in resource.items() if k not in UNREAD_ELEMENTS}
    try:
        key = hashlib.sha256(model.__name__.encode() + b"\x00" + orjson.dumps(elements)).digest()
    except (TypeError, ValueError):  # not JSON-serialisable: validated every time (it fails anyway)
        key = None
    if key is not None and _VALID.seen(key):
        return
    model.model_validate(elements)
    if key is not None:
        _VALID.add(key)


class _ValidContents:
    """The hashes (sha256 of model name and JSON) of the contents found valid, least recently
    used dropped first. The verdict is a function of the content alone, and an EHR fires the
    same patient's hook again and again (order-select on each selection, then order-sign) with
    the same records: each is validated once per process (0.1-0.2 ms each), not once per call.
    An invalid content is not remembered: validated again, it raises again."""

    def __init__(self, size: int):
        self._size = size
        self._keys: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: bytes) -> bool:
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return True
            return False

    def add(self, key: bytes) -> None:
        with self._lock:
            self._keys[key] = None
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)


_VALID = _ValidContents(8192)  # 32-byte keys: under 1 MB
