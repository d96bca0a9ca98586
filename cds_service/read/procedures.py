"""Procedures, ImagingStudies and DiagnosticReports: prior lumbar imaging, spinal surgery and
spinal procedures.

Role in the data flow: read stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from cds_service.read.context import Hit, ReadContext
from cds_service.read.fhir import concepts_of, first_date, modality_code, one_per_valueset, text_of
from cds_service.read.inputs import Evidence, PriorImaging
from cds_service.read.management import add_management
from cds_service.vocabulary import Modality

IGNORED_PROCEDURE_STATUS = frozenset({"not-done", "entered-in-error", "preparation"})
IGNORED_REPORT_STATUS = frozenset({"entered-in-error", "cancelled"})
IGNORED_STUDY_STATUS = frozenset({"entered-in-error", "cancelled"})

PRIOR_IMAGING_MODALITIES = frozenset({Modality.CT, Modality.CT_MYELOGRAPHY, Modality.MRI})
DICOM_MODALITY = {"MR": Modality.MRI, "CT": Modality.CT}
DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"


def _prior_imaging(ctx: ReadContext, ref: str, resource: dict, entries: Iterable[Hit], when: date | None) -> bool:
    for entry in entries:
        if entry.valueset.purpose == "imaging-order" and entry.attr("modality") in PRIOR_IMAGING_MODALITIES:
            ctx.inputs.prior_imaging.append(
                PriorImaging(entry.attr("modality"), ctx.evidence(ref, resource, entry, when)))
            return True
    return False


def read_procedure(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    selected = ctx.select(resource, full_url, concepts_of(resource.get("code")), IGNORED_PROCEDURE_STATUS)
    if selected is None:
        return
    matches, ref = selected
    when = first_date(resource, "performedDateTime", "performedPeriod.start", "performedPeriod.end")
    _prior_imaging(ctx, ref, resource, matches, when)
    for entry in one_per_valueset(matches):
        valueset = entry.valueset
        if valueset.purpose == "spinal-surgery":
            ctx.inputs.spinal_surgery.append(ctx.evidence(ref, resource, entry, when))
            # A lumbar operation is also a spinal procedure (infection risk, 90 days).
            procedure = ctx.vs.entries_by_id["infection-spinal-procedure"][0]
            ctx.red_flag(procedure, ctx.evidence(ref, resource, entry, when))
        elif valueset.purpose == "red-flag" and not valueset.extra.get("requires_site"):
            ctx.red_flag(entry, ctx.evidence(ref, resource, entry, when))
        elif valueset.purpose == "management":  # physical therapy, manipulation, exercise (§5.8)
            add_management(ctx, ref, resource, entry, when)


def read_imaging_study(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    matches = ctx.lookup(concepts_of(resource.get("procedureCode")), frozenset({"imaging-order"}))
    series_hit = None
    if not matches:
        series_hit = _lumbar_series(ctx, resource)
        if series_hit is None:
            return
    if resource.get("status") in IGNORED_STUDY_STATUS:
        return
    ref = ctx.accept(resource, full_url)
    if ref is None:
        return
    when = first_date(resource, "started")
    if matches:
        _prior_imaging(ctx, ref, resource, matches, when)
        return
    modality, series = series_hit
    when = when or first_date(series, "started")
    evidence = Evidence(reference=ref, resource_type="ImagingStudy", code=modality_code(series),
                        system=DICOM_SYSTEM, display=f"{modality} lumbar spine (series)", date=when)
    ctx.inputs.prior_imaging.append(PriorImaging(modality, evidence))


def _lumbar_series(ctx: ReadContext, resource: dict) -> tuple[str, dict] | None:
    series_list = resource.get("series")
    if not isinstance(series_list, list):
        return None
    site_vs = "body-site-lumbar-spine"
    patterns = ctx.vs[site_vs].extra.get("text_patterns", [])
    for series in series_list:
        if not isinstance(series, dict):
            continue
        modality = DICOM_MODALITY.get(modality_code(series) or "")
        if modality is None:
            continue
        site = series.get("bodySite")
        if any(e.valueset.id == site_vs for e in ctx.lookup(concepts_of(site))):
            return modality, series
        text = " ".join([text_of(site)] + ([site.get("display")] if isinstance(site, dict) and isinstance(site.get("display"), str) else []))
        if any(p in text.lower() for p in patterns):
            return modality, series
    return None


def read_diagnostic_report(ctx: ReadContext, resource: dict, full_url: str | None) -> None:
    selected = ctx.select(resource, full_url, concepts_of(resource.get("code")), IGNORED_REPORT_STATUS,
                          frozenset({"imaging-order"}))
    if selected is None:
        return
    matches, ref = selected
    when = first_date(resource, "effectiveDateTime", "effectivePeriod.start", "issued")
    _prior_imaging(ctx, ref, resource, matches, when)
