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
  both by code, else by name (`read/care_names.py`: an Epic "Ambulatory referral to Physical
  Therapy" carries only the site's own procedure code);
- MedicationRequests and MedicationStatements of an analgesic, via `read/medications.py`.
"""

from __future__ import annotations

from datetime import date

from cds_service.read.care_names import load_care_names
from cds_service.read.context import Hit, ReadContext
from cds_service.read.fhir import codings, concepts_of, first_date, text_of
from cds_service.read.inputs import Evidence

MANAGEMENT = frozenset({"management"})
# A referral that was never sent, or withdrawn, is no management; nor is a planned or cancelled visit.
IGNORED_REFERRAL_STATUS = frozenset({"draft", "entered-in-error", "revoked"})
IGNORED_ENCOUNTER_STATUS = frozenset({"planned", "cancelled", "entered-in-error"})
# Read and compiled when the app starts (a broken rule stops it).
CARE_NAMES = load_care_names()


def add_management(ctx: ReadContext, ref: str, resource: dict, hit: Hit, when: date | None) -> None:
    """One management fact, citing the resource's own coding; `text` is the kind of care."""
    ctx.inputs.management.append(ctx.evidence(ref, resource, hit, when, text=hit.valueset.label))


def add_management_evidence(ctx: ReadContext, evidence: Evidence) -> None:
    """One management fact already cited (a medicine recognised by code or by name, §3.7)."""
    ctx.inputs.management.append(evidence)


def _named_care(ctx: ReadContext, resource: dict, full_url: str | None, concepts: list[dict],
                ignored: frozenset[str], when_paths: tuple[str, ...]) -> bool:
    """A referral or visit none of whose codes is a management code, recognised by its name
    (read/care_names.py). The evidence cites its own first coding (a site's code) and its name."""
    names = [name for name in (text_of(c) for c in concepts) if name.strip()]
    valueset = CARE_NAMES.valueset_of(names)
    if valueset is None or valueset not in ctx.vs.by_id or resource.get("status") in ignored:
        return False
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return False
    own = next((c for concept in concepts for c in codings(concept) if isinstance(c.get("code"), str)), {})
    add_management_evidence(ctx, Evidence(
        reference=ref, resource_type=resource["resourceType"], code=own.get("code"), system=own.get("system"),
        display=names[0], date=first_date(resource, *when_paths), text=ctx.vs[valueset].label,
        recognised_by="name"))
    return True


REFERRAL_DATES = ("occurrenceDateTime", "occurrencePeriod.start", "authoredOn")
ENCOUNTER_DATES = ("period.start", "period.end")


def read_service_request(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    """A referral in the record (not a draft order of this call): physical therapy, manipulation,
    exercise therapy, by code or else by name. Dated by its occurrence, else by when it was authored."""
    concepts = concepts_of(resource.get("code"))
    selected = ctx.select(resource, full_url, concepts, IGNORED_REFERRAL_STATUS, MANAGEMENT)
    if selected is None:
        _named_care(ctx, resource, full_url, concepts, IGNORED_REFERRAL_STATUS, REFERRAL_DATES)
        return
    matches, ref = selected
    add_management(ctx, ref, resource, matches[0], first_date(resource, *REFERRAL_DATES))


def read_encounter(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    """An Encounter whose type or service type is physical therapy (by code, else by name),
    dated by its period."""
    concepts = concepts_of(resource.get("serviceType")) + concepts_of(resource.get("type"))
    selected = ctx.select(resource, full_url, concepts, IGNORED_ENCOUNTER_STATUS, MANAGEMENT)
    if selected is None:
        _named_care(ctx, resource, full_url, concepts, IGNORED_ENCOUNTER_STATUS, ENCOUNTER_DATES)
        return
    matches, ref = selected
    add_management(ctx, ref, resource, matches[0], first_date(resource, *ENCOUNTER_DATES))
