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

Facts are read from the raw JSON once it has validated, keeping a pointer (`Condition/123`) to
the resource for every fact, so a card can cite its evidence.
"""

from __future__ import annotations

from datetime import date

from cds_service.gather.prefetch import GatheredData
from cds_service.hooks.envelope import HookRequest
from cds_service.read.conditions import bilateral_sciatica, read_condition
from cds_service.read.context import ReadContext
from cds_service.read.fhir import iter_resources, parse_date
from cds_service.read.inputs import PathwayInputs, PatientFacts
from cds_service.read.medications import prolonged_steroids, read_medication
from cds_service.read.observations import read_observation, weight_loss
from cds_service.read.orders import read_order_reasons, read_orders
from cds_service.read.patient import read_patient
from cds_service.read.procedures import read_diagnostic_report, read_imaging_study, read_procedure
from cds_service.read.valuesets import ValueSets

# One reader per record family, by resourceType.
READERS = {
    "Condition": read_condition, "Observation": read_observation, "Procedure": read_procedure,
    "MedicationRequest": read_medication, "MedicationStatement": read_medication,
    "ImagingStudy": read_imaging_study, "DiagnosticReport": read_diagnostic_report,
}


def parse_inputs(request: HookRequest, gathered: GatheredData, valuesets: ValueSets,
                 settings: dict, today: date) -> PathwayInputs:
    """FHIR JSON -> PathwayInputs. `today` is the fallback reference date (no authoredOn)."""
    ctx = ReadContext(request, gathered, valuesets, settings, today)
    pid = ctx.request.patient_id
    ctx.patient_refs = {f"Patient/{pid}", f"urn:uuid:{pid}"}
    ctx.patient_suffix = f"/Patient/{pid}"  # absolute references: <base>/Patient/<id>
    ctx.vital_sign_windows = {
        "body-temperature": ctx.vs["infection-fever"].window_days,
        "body-weight": ctx.vs["observation-codes"].extra.get("weight_loss_window_days", 180),
    }
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
    incomplete = dict(ctx.gathered.incomplete)
    for key in ctx.gathered.unavailable:
        incomplete.setdefault(key, "not-fetched")
    for key in ctx.gathered.truncated:
        incomplete.setdefault(key, "page-cap")
    ctx.inputs.incomplete_data = incomplete
    ctx.inputs.unavailable_data = list(incomplete)
    return ctx.inputs


__all__ = ["iter_resources", "parse_date", "parse_inputs"]
