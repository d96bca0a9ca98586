"""Prior management of the back-pain episode: physical therapy, spinal manipulation, exercise
therapy and analgesic prescriptions, as coded in the record (docs/clinical-specification.md §5.8).

Role in the data flow: read stage. Each fact is an `Evidence` in `PathwayInputs.management`
whose `text` names the kind of care ("physical therapy"), dated when the care was given, ordered
or prescribed; the free-text reader adds the conservative care found in notes to the same list.
Which facts fall within the current episode (its start to the reference date) is decided by
`decide`, not here. Sources:
- Procedures (physical therapy, manipulation, exercise or movement therapy), via
  `read/procedures.py`, which hands its management matches to `add_management`;
- ServiceRequests in the record (a physical therapy referral), `read_service_request`;
- Encounters of a physical-therapy service type, `read_encounter`;
- MedicationRequests and MedicationStatements of an analgesic, via `read/medications.py`.
"""

from __future__ import annotations

from datetime import date

from cds_service.read.context import Hit, ReadContext
from cds_service.read.fhir import concepts_of, first_date

MANAGEMENT = frozenset({"management"})
# A referral that was never sent, or withdrawn, is no management; nor is a planned or cancelled visit.
IGNORED_REFERRAL_STATUS = frozenset({"draft", "entered-in-error", "revoked"})
IGNORED_ENCOUNTER_STATUS = frozenset({"planned", "cancelled", "entered-in-error"})


def add_management(ctx: ReadContext, ref: str, resource: dict, hit: Hit, when: date | None) -> None:
    """One management fact, citing the resource's own coding; `text` is the kind of care."""
    ctx.inputs.management.append(ctx.evidence(ref, resource, hit, when, text=hit.valueset.label))


def read_service_request(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    """A referral in the record (not a draft order of this call): physical therapy, manipulation,
    exercise therapy. Dated by its occurrence, else by when it was authored."""
    selected = ctx.select(resource, full_url, concepts_of(resource.get("code")), IGNORED_REFERRAL_STATUS, MANAGEMENT)
    if selected is None:
        return
    matches, ref = selected
    when = first_date(resource, "occurrenceDateTime", "occurrencePeriod.start", "authoredOn")
    add_management(ctx, ref, resource, matches[0], when)


def read_encounter(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    """An Encounter whose type or service type is physical therapy, dated by its period."""
    concepts = concepts_of(resource.get("serviceType")) + concepts_of(resource.get("type"))
    selected = ctx.select(resource, full_url, concepts, IGNORED_ENCOUNTER_STATUS, MANAGEMENT)
    if selected is None:
        return
    matches, ref = selected
    when = first_date(resource, "period.start", "period.end")
    add_management(ctx, ref, resource, matches[0], when)
