"""MedicationRequests and MedicationStatements: systemic corticosteroid exposure and its duration,
and analgesic prescriptions as prior management (clinical-specification.md §3.7, §5.8).

Role in the data flow: read stage; prolonged exposure (days covered in 12 months) is decided once
all medication records have been read. Where the medicine is (§3.7): `medicationCodeableConcept`;
a `medicationReference` to a contained Medication, to one in the gathered Bundles or read from the
FHIR server by `gather.medications`; else the reference's `display`. What it is: the value sets'
codes first (ATC, RxNorm ingredients), then the medicine vocabulary's RxNorm clinical and branded
drug codes, then its names (`read/medicines`); the evidence says which (`recognised_by`). The dose
form decides systemic or not: an inhaled, nasal, topical, eye or ear product counts for nothing.
Self-reported records (`reportedBoolean`, intent `plan`) and MedicationStatements count like
prescriptions; a record not to be given (`doNotPerform`) or entered in error does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from cds_service.gather.medications import index_medications, reference_key
from cds_service.read.context import ReadContext
from cds_service.read.fhir import (
    AGE_UNIT_DAYS,
    codings,
    concepts_of,
    first_date,
    parse_date,
    text_of,
)
from cds_service.read.inputs import Evidence
from cds_service.read.management import add_management_evidence
from cds_service.read.medicines import MedicineMatch, load_vocabulary

IGNORED_MEDREQ_STATUS = frozenset({"entered-in-error", "cancelled", "draft"})
IGNORED_MEDSTATEMENT_STATUS = frozenset({"entered-in-error", "not-taken"})
ONGOING_MED_STATUS = frozenset({"active", "on-hold", "intended"})
MAX_COURSE_DAYS = 3660
STEROIDS = "systemic-corticosteroids"
READ_PURPOSES = frozenset({"systemic-corticosteroid", "management"})
# Read, validated and compiled when the app starts (a broken vocabulary stops it, §3.7).
VOCABULARY = load_vocabulary()


@dataclass
class Medicine:
    """What one record says about its medicine: its concepts (codes), the texts that name it, and
    the texts that may name its dose form (the names, Medication.form, routes, dosage text)."""

    concepts: list[dict] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)


def _referenced(ctx: ReadContext, resource: dict, reference: object) -> dict | None:
    """The Medication a reference points to: contained, gathered (a Bundle or read from fhirServer)."""
    if not isinstance(reference, str):
        return None
    if reference.startswith("#"):
        for contained in resource.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id") == reference[1:] \
                    and contained.get("resourceType", "Medication") == "Medication":
                return contained
        return None
    if ctx.medications is None:
        ctx.medications = dict(ctx.gathered.medications) or index_medications(ctx.gathered.data)
    found = ctx.medications.get(reference) or ctx.medications.get(reference_key(reference) or "")
    return found if isinstance(found, dict) else None


def medicine_of(ctx: ReadContext, resource: dict) -> Medicine:
    medicine = Medicine(concepts=concepts_of(resource.get("medicationCodeableConcept")))
    reference = resource.get("medicationReference")
    if isinstance(reference, dict):
        target = _referenced(ctx, resource, reference.get("reference"))
        if target is not None:
            medicine.concepts += concepts_of(target.get("code"))
            for ingredient in target.get("ingredient") or []:
                if isinstance(ingredient, dict):
                    medicine.concepts += concepts_of(ingredient.get("itemCodeableConcept"))
            medicine.forms.append(text_of(target.get("form")))
        if isinstance(reference.get("display"), str):
            medicine.names.append(reference["display"])  # Epic: "ibuprofen (MOTRIN) 600 MG tablet"
    medicine.names = [text_of(c) for c in medicine.concepts] + medicine.names
    dosages = resource.get("dosageInstruction") or resource.get("dosage") or []
    medicine.forms += medicine.names + [
        f"{text_of(d.get('route'))} {d.get('text') if isinstance(d.get('text'), str) else ''}"
        for d in dosages if isinstance(d, dict)]
    return medicine


def _recognised(ctx: ReadContext, ref: str, resource: dict, medicine: Medicine,
                when: date | None) -> dict[str, Evidence]:
    """Value set id -> the evidence of the medicine found for it: by a value-set code, else by a
    vocabulary code (SCD, SBD, ingredient), else by name."""
    found: dict[str, Evidence] = {}
    for hit in ctx.lookup(medicine.concepts, READ_PURPOSES):
        if hit.valueset.id not in found:
            evidence = ctx.evidence(ref, resource, hit, when, text=hit.valueset.label)
            found[hit.valueset.id] = Evidence(**{**evidence.__dict__, "recognised_by": "code"})
    if found:
        return found
    matches = VOCABULARY.recognise([c for concept in medicine.concepts for c in codings(concept)], medicine.names)
    for match in matches:
        if match.valueset not in found and match.valueset in ctx.vs.by_id:
            found[match.valueset] = _evidence(ctx, ref, resource, match, when)
    return found


def _evidence(ctx: ReadContext, ref: str, resource: dict, match: MedicineMatch, when: date | None) -> Evidence:
    label = ctx.vs[match.valueset].label
    if match.recognised_by == "code" and match.coding is not None:
        display = match.coding.get("display")
        return Evidence(
            reference=ref, resource_type=resource["resourceType"], code=str(match.coding.get("code")).strip(),
            system=match.coding.get("system"), date=when, text=label, recognised_by="code",
            display=display if isinstance(display, str) and display else
            (match.product.name if match.product else match.ingredient.name))
    return Evidence(reference=ref, resource_type=resource["resourceType"], display=match.ingredient.name,
                    date=when, text=label, recognised_by="name")


def _systemic(medicine: Medicine, found: dict[str, Evidence]) -> bool:
    """Not systemic when any text names an inhaled, nasal, topical, eye or ear form (§3.7)."""
    return VOCABULARY.systemic(medicine.forms + [e.display or "" for e in found.values()])


def read_medication(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    ignored = IGNORED_MEDREQ_STATUS if resource["resourceType"] == "MedicationRequest" else IGNORED_MEDSTATEMENT_STATUS
    if resource.get("status") in ignored or resource.get("doNotPerform") is True:
        return
    medicine = medicine_of(ctx, resource)
    # Recognised on the raw JSON first (no validation cost for the many records that are no
    # medicine of the pathway), then accepted: this patient's, valid, not seen before.
    found = _recognised(ctx, "", resource, medicine, None)
    if not found or not _systemic(medicine, found):
        return
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return
    start, end = _course(ctx, resource, resource.get("dosageInstruction") or resource.get("dosage") or [])
    found = {key: replace(evidence, reference=ref, date=start) for key, evidence in found.items()}
    steroid = found.pop(STEROIDS, None)
    if steroid is not None:
        ctx.inputs.corticosteroids.append(steroid)
        if start:
            ctx.steroid_courses.append((start, end or start, steroid))
    for evidence in found.values():
        # An analgesic (NSAID, acetaminophen, muscle relaxant, neuropathic agent) is prior
        # management of the episode, dated by its start (clinical-specification.md §5.8).
        add_management_evidence(ctx, evidence)


def _course(ctx: ReadContext, resource: dict, dosages: list) -> tuple[date | None, date | None]:
    """The days a record covers: explicit bounds, else start + supply x fills, else ongoing
    (active records run to the reference date), else the single day recorded."""
    start = end = None
    for dosage in dosages:
        bounds = ((dosage.get("timing") or {}).get("repeat") or {}).get("boundsPeriod") if isinstance(dosage, dict) else None
        if isinstance(bounds, dict):
            start = start or parse_date(bounds.get("start"))
            end = end or parse_date(bounds.get("end"))
    start = start or first_date(resource, "effectivePeriod.start", "effectiveDateTime",
                                 "dispenseRequest.validityPeriod.start", "authoredOn", "dateAsserted")
    end = end or first_date(resource, "effectivePeriod.end")
    if start and not end:
        dispense = resource.get("dispenseRequest") or {}
        supply = dispense.get("expectedSupplyDuration") if isinstance(dispense, dict) else None
        if isinstance(supply, dict) and isinstance(supply.get("value"), (int, float)):
            days = AGE_UNIT_DAYS.get(str(supply.get("code") or supply.get("unit") or "d").lower(), 1)
            repeats = dispense.get("numberOfRepeatsAllowed")
            fills = 1 + (repeats if isinstance(repeats, int) and repeats > 0 else 0)
            covered = supply["value"] * days * fills
            # A course is counted over at most MAX_COURSE_DAYS (a 1e308-day supply is a typo).
            covered = min(max(covered, 1), MAX_COURSE_DAYS) if covered == covered else 1
            end = start + timedelta(days=round(covered) - 1)
        elif resource.get("status") in ONGOING_MED_STATUS:
            end = max(start, ctx.inputs.reference_date)
    return start, end


def prolonged_steroids(ctx: ReadContext) -> None:
    """>= 90 days of systemic corticosteroids within the last 365 days (clinical-specification.md §5)."""
    if not ctx.steroid_courses:
        return
    entry = ctx.vs.entries_by_id["fracture-long-term-steroids"][0]
    window = entry.valueset.window_days or 365
    ref_day = ctx.inputs.reference_date
    window_start = ref_day - timedelta(days=window)
    covered: set[date] = set()
    latest = None
    for start, end, evidence in ctx.steroid_courses:
        first, last = max(start, window_start), min(end, ref_day)
        if first > last:
            continue
        # Union of covered days (overlapping prescriptions count once); at most 366 per course.
        covered.update(first + timedelta(days=i) for i in range((last - first).days + 1))
        if latest is None or start > latest[0]:
            latest = (start, evidence)
    if len(covered) >= 90 and latest is not None:
        text = f"{len(covered)} days of systemic corticosteroids in the last {window} days"
        evidence = Evidence(**{**latest[1].__dict__, "text": text})
        ctx.red_flag(entry, evidence, kind="prolonged-corticosteroids",
                       label="Systemic corticosteroids >= 90 days in 12 months")
