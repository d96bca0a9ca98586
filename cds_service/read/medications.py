"""MedicationRequests and MedicationStatements: systemic corticosteroid exposure and its duration,
and analgesic prescriptions as prior management (clinical-specification.md §5.8).

Role in the data flow: read stage; prolonged exposure (days covered in 12 months) is decided once
all medication records have been read.
"""

from __future__ import annotations

from datetime import date, timedelta

from cds_service.read.context import ReadContext
from cds_service.read.fhir import AGE_UNIT_DAYS, concepts_of, first_date, parse_date, text_of
from cds_service.read.inputs import Evidence
from cds_service.read.management import MANAGEMENT, add_management

IGNORED_MEDREQ_STATUS = frozenset({"entered-in-error", "cancelled", "draft"})
IGNORED_MEDSTATEMENT_STATUS = frozenset({"entered-in-error", "not-taken"})
ONGOING_MED_STATUS = frozenset({"active", "on-hold", "intended"})
MAX_COURSE_DAYS = 3660


def _medication_concepts(ctx: ReadContext, resource: dict) -> list[dict]:
    concepts = concepts_of(resource.get("medicationCodeableConcept"))
    reference = resource.get("medicationReference")
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str) \
            and reference["reference"].startswith("#"):
        wanted = reference["reference"][1:]
        for contained in resource.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id") == wanted:
                concepts += concepts_of(contained.get("code"))
                for ingredient in contained.get("ingredient") or []:
                    if isinstance(ingredient, dict):
                        concepts += concepts_of(ingredient.get("itemCodeableConcept"))
    return concepts


def read_medication(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    concepts = _medication_concepts(ctx, resource)
    matches = ctx.lookup(concepts, frozenset({"systemic-corticosteroid"}))
    ignored = IGNORED_MEDREQ_STATUS if resource["resourceType"] == "MedicationRequest" else IGNORED_MEDSTATEMENT_STATUS
    if not matches:
        _analgesic(ctx, resource, full_url, concepts, ignored)
        return
    if resource.get("status") in ignored:
        return
    # Not systemic when the route or the product text says so (e.g. inhaled budesonide).
    dosages = resource.get("dosageInstruction") or resource.get("dosage") or []
    route_text = " ".join(
        [text_of(c) for c in concepts]
        + [text_of(d.get("route")) + " " + str(d.get("text") or "") for d in dosages if isinstance(d, dict)]
    ).lower()
    excluded = ctx.vs["systemic-corticosteroids"].extra.get("route_exclude_text", [])
    if any(word in route_text for word in excluded):
        return
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return
    start, end = _course(ctx, resource, dosages)
    evidence = ctx.evidence(ref, resource, matches[0], start)
    ctx.inputs.corticosteroids.append(evidence)
    if start:
        ctx.steroid_courses.append((start, end or start, evidence))


def _analgesic(ctx: ReadContext, resource: dict, full_url: str | None, concepts: list[dict],
               ignored: frozenset[str]) -> None:
    """An analgesic prescription (NSAID, acetaminophen, muscle relaxant, neuropathic agent) is
    prior management of the episode, dated by its start (clinical-specification.md §5.8)."""
    selected = ctx.select(resource, full_url, concepts, ignored, MANAGEMENT)
    if selected is None:
        return
    matches, ref = selected
    start, _ = _course(ctx, resource, resource.get("dosageInstruction") or resource.get("dosage") or [])
    add_management(ctx, ref, resource, matches[0], start)


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
