"""Parse the gathered FHIR JSON into `PathwayInputs` (clinical-specification.md §3, §7.6 and §10).

Role in the data flow: the read stage's entry point, after `gather`, before `decide`. Each record
family has its own module (patient, orders, conditions, observations, procedures, medications),
sharing the state of one call through `ReadContext`. Pure: no I/O, no clock (`today` is passed in
and only used when no judged order has an authoredOn).

Cost model: prefetch Bundles may hold thousands of irrelevant resources. Each resource is first
SELECTED on its raw JSON, by looking its codings up in the value sets (dict reads, see
`cds_service.read.valuesets`); only the selected few are then validated with the fhir.resources R4B
models. A selected resource that fails validation is skipped and reported in
`skipped_resources` (the card says so) -- never an exception. A resource whose subject/patient is
another patient than context.patientId is never evidence (clinical-specification.md §3).

Free text (order reasons, text-only Conditions, Observation values, notes, clinical notes) is
read by the TextReader (`read/text`, built once) and mapped to facts by `read/free_text.py` (§9).

Facts are read from the raw JSON once it has validated, keeping a pointer (`Condition/123`) to
the resource for every fact, so a card can cite its evidence.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.gather.prefetch import GatheredData
from cds_service.hooks.envelope import HookRequest
from cds_service.read.conditions import bilateral_sciatica, read_condition
from cds_service.read.context import ReadContext
from cds_service.read.documents import read_document
from cds_service.read.fhir import iter_resources, parse_date
from cds_service.read.inputs import EpisodeCondition, PathwayInputs, PatientFacts
from cds_service.read.management import read_encounter, read_service_request
from cds_service.read.medications import prolonged_steroids, read_medication
from cds_service.read.observations import read_observation, weight_loss
from cds_service.read.orders import read_order_reasons, read_orders
from cds_service.read.patient import read_patient
from cds_service.read.procedures import read_diagnostic_report, read_imaging_study, read_procedure
from cds_service.read.text import default_reader
from cds_service.read.valuesets import ValueSets

# One reader per record family, by resourceType.
READERS = {
    "Condition": read_condition, "Observation": read_observation, "Procedure": read_procedure,
    "MedicationRequest": read_medication, "MedicationStatement": read_medication,
    "ImagingStudy": read_imaging_study, "DiagnosticReport": read_diagnostic_report,
    "ServiceRequest": read_service_request, "Encounter": read_encounter,  # prior management (§5.8)
    "DocumentReference": read_document,  # clinical notes, free text (§9)
}
# `parse_inputs(text_reader=...)` left out: the process-wide reader (read/text, built on first use).
DEFAULT_READER: Any = object()


def parse_inputs(request: HookRequest, gathered: GatheredData, valuesets: ValueSets,
                 settings: dict, today: date, text_reader: Any = DEFAULT_READER) -> PathwayInputs:
    """FHIR JSON -> PathwayInputs. `today` is the fallback reference date (no authoredOn).
    `text_reader`: the free-text reader (clinical-specification.md §9); None reads no text."""
    ctx = ReadContext(request, gathered, valuesets, settings, today)
    ctx.text_reader = default_reader() if text_reader is DEFAULT_READER else text_reader
    pid = ctx.request.patient_id
    ctx.patient_refs = {f"Patient/{pid}", f"urn:uuid:{pid}"}
    ctx.patient_suffix = f"/Patient/{pid}"  # absolute references: <base>/Patient/<id>
    # A post-void residual is read whatever its age: its fact carries its own window.
    windows = valuesets.measure_windows()
    ctx.vital_sign_windows = {key: windows[key] for key in ("body-temperature", "body-weight")}
    orders, order_resources, skipped = read_orders(ctx)
    dates = [o.authored_on for o in orders if o.authored_on]
    ctx.inputs = PathwayInputs(
        patient=PatientFacts(reference=f"Patient/{pid}"),
        reference_date=max(dates) if dates else ctx.today,
        orders=orders,
        skipped_resources=skipped,
    )
    ctx.inputs.patient = read_patient(ctx)
    for ref, resource in order_resources:
        read_order_reasons(ctx, ref, resource)
    for key, value in ctx.gathered.data.items():
        if key == "patient":
            continue
        for resource, full_url in iter_resources(value):
            handler = READERS.get(resource["resourceType"])
            if handler is not None:
                handler(ctx, resource, full_url)
    bilateral_sciatica(ctx)
    weight_loss(ctx)
    prolonged_steroids(ctx)
    text_onsets(ctx)
    incomplete = dict(ctx.gathered.incomplete)
    for key, why in ctx.text_gaps.items():
        incomplete.setdefault(key, why)
    for key in ctx.gathered.unavailable:
        incomplete.setdefault(key, "not-fetched")
    for key in ctx.gathered.truncated:
        incomplete.setdefault(key, "page-cap")
    ctx.inputs.incomplete_data = incomplete
    ctx.inputs.unavailable_data = list(incomplete)
    return ctx.inputs


def text_onsets(ctx: ReadContext) -> None:
    """clinical-specification.md §9.5: a duration in text ("back pain x 3 days") is an onset of the
    episode when there is one (coded, or qualified by text); the episode starts at the earliest."""
    if not ctx.inputs.episode:
        return
    for onset, evidence in ctx.text_onsets:
        ctx.inputs.episode.append(EpisodeCondition(evidence=evidence, onset=onset, recorded=None))


__all__ = ["iter_resources", "parse_date", "parse_inputs"]
