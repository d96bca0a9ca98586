"""The query plan of this deployment: the prefetch templates and the service's own FHIR searches,
narrowed from the value sets to what the pathway reads (clinical-specification.md §8.4).

Role in the data flow: top level, built once at start-up by the `Evaluator` (it joins `read`'s
value sets to `gather`'s planner and `decide`'s windows), then used by discovery and by
`gather.prefetch` on every call.
"""

from __future__ import annotations

from cds_service.gather.planner import KeyPlan, QueryPlan, SearchQuery, coded_keys
from cds_service.hooks.registry import PREFETCH_TEMPLATES
from cds_service.read.valuesets import ValueSets
from cds_service.rules.windows import (
    MANAGEMENT_LOOKBACK_DAYS,
    MEDICATION_LOOKBACK_DAYS,
    NOTES_LOOKBACK_DAYS,
    REPEAT_WINDOW_DAYS,
    WEIGHT_LOSS_WINDOW_DAYS,
)

# The Medication a MedicationRequest or MedicationStatement references, asked for with the
# record where the server supports _include (clinical-specification.md §3.7).
MEDICATION_INCLUDE = {
    "MedicationRequest": ("_include", "MedicationRequest:medication"),
    "MedicationStatement": ("_include", "MedicationStatement:medication"),
}


# Procedure codes (CPT) name what was done, never what was observed: not asked for on Observation.
NOT_OBSERVATION_SYSTEMS = frozenset({"http://www.ama-assn.org/go/cpt"})


def _codes(valuesets: ValueSets, purposes: set[str]) -> list[str]:
    """`system|code` of every exact entry of the value sets with these purposes (prefix entries,
    ICD-10-CM categories, cannot be asked for by code; Observations carry LOINC/SNOMED codes)."""
    found = []
    for valueset_id, entries in valuesets.entries_by_id.items():
        if valuesets[valueset_id].purpose not in purposes:
            continue
        found += [f"{e.system}|{e.code}" for e in entries
                  if e.match == "exact" and not e.exclude and e.system not in NOT_OBSERVATION_SYSTEMS]
    return found


def build_query_plan(valuesets: ValueSets, settings: dict) -> QueryPlan:
    """Every key's discovery template and the service's own searches for it."""
    plan = QueryPlan()
    _add_patient_and_problems(plan)
    _add_observations(plan, valuesets, settings)
    _add_medications(plan)
    _add_imaging_notes_and_management(plan)
    return plan


def _add_patient_and_problems(plan: QueryPlan) -> None:
    plan.add(KeyPlan("patient", PREFETCH_TEMPLATES["patient"], "Patient", required=True))
    # Oracle Health has no code search on Condition: the whole problem list, always.
    plan.add(KeyPlan("conditions", PREFETCH_TEMPLATES["conditions"], "Condition",
                     (SearchQuery("Condition"),), required=True))
    # Oracle Health has no code search on Procedure either; prior surgery counts any time.
    plan.add(KeyPlan("procedures", PREFETCH_TEMPLATES["procedures"], "Procedure", (SearchQuery("Procedure"),)))


def _add_observations(plan: QueryPlan, valuesets: ValueSets, settings: dict) -> None:
    # Vital signs and measurements: one key (one discovery template), and for the service's own
    # fetch one search per look-back window (temperature and post-void residual: 14 days;
    # weight: 180 days), so a long record's years of vital signs are not paged through.
    windows = valuesets.measure_windows()
    by_window: dict[int, list[str]] = {}
    for entry in valuesets.entries_by_id["observation-codes"]:
        if entry.match == "exact":
            by_window.setdefault(windows.get(entry.attr("measure"), WEIGHT_LOSS_WINDOW_DAYS), []).append(
                f"{entry.system}|{entry.code}")
    local_pvr = [code for code in settings.get("POST_VOID_RESIDUAL_CODES") or () if "|" in code]
    if local_pvr:
        by_window.setdefault(windows["post-void-residual"], []).extend(local_pvr)
    vitals = sorted(code for codes in by_window.values() for code in codes)
    template = coded_keys("observations", "Observation", vitals, date_param="date", window_days=None)[0].template
    queries = tuple(
        query for window, codes in sorted(by_window.items())
        for key_plan in coded_keys("observations", "Observation", codes, date_param="date", window_days=window)
        for query in key_plan.queries
    )
    plan.add(KeyPlan("observations", template, "Observation", queries))
    # Coded findings (retention, incontinence, saddle anaesthesia, deficits...), any time.
    findings = _codes(valuesets, {"red-flag"})
    for key_plan in coded_keys("observationFindings", "Observation", findings, date_param=None, window_days=None):
        plan.add(key_plan)
    # Examination Observations (clinical-specification.md §9.1): by category, not code, as an exam
    # finding is often coded with text only; those of the notes' look-back. Epic refuses an
    # Observation search without code or category, so the category is never dropped.
    plan.add(KeyPlan("examObservations", PREFETCH_TEMPLATES["examObservations"], "Observation", (
        SearchQuery("Observation", (("category", "exam"),), "date", NOTES_LOOKBACK_DAYS,
                    fallbacks=(("date", "_count"),)),
    )))


def _add_medications(plan: QueryPlan) -> None:
    # Medication records with the Medications they reference (`_include`, where the server
    # supports it; a server that refuses it is asked again without, and gather reads the
    # referenced Medications itself, clinical-specification.md §3.7).
    plan.add(KeyPlan("medications", PREFETCH_TEMPLATES["medications"], "MedicationRequest", (
        SearchQuery("MedicationRequest", (MEDICATION_INCLUDE["MedicationRequest"],), "authoredon",
                    MEDICATION_LOOKBACK_DAYS, fallbacks=(("_include",), ("date", "_count"))),
        SearchQuery("MedicationRequest", (("status", "active"), MEDICATION_INCLUDE["MedicationRequest"]),
                    fallbacks=(("_include",), ("_count",), ("status",))),
    )))
    plan.add(KeyPlan("medicationStatements", PREFETCH_TEMPLATES["medicationStatements"], "MedicationStatement", (
        SearchQuery("MedicationStatement", (MEDICATION_INCLUDE["MedicationStatement"],), "effective",
                    MEDICATION_LOOKBACK_DAYS, fallbacks=(("_include",), ("date", "_count"))),
        SearchQuery("MedicationStatement", (("status", "active"), MEDICATION_INCLUDE["MedicationStatement"]),
                    fallbacks=(("_include",), ("_count",), ("status",))),
    )))


def _add_imaging_notes_and_management(plan: QueryPlan) -> None:
    plan.add(KeyPlan("imagingStudies", PREFETCH_TEMPLATES["imagingStudies"], "ImagingStudy",
                     (SearchQuery("ImagingStudy", (), "started", REPEAT_WINDOW_DAYS),)))
    plan.add(KeyPlan("diagnosticReports", PREFETCH_TEMPLATES["diagnosticReports"], "DiagnosticReport",
                     (SearchQuery("DiagnosticReport", (), "date", REPEAT_WINDOW_DAYS),)))
    # A server that refuses the category (or the date) is asked again without them.
    plan.add(KeyPlan("clinicalNotes", PREFETCH_TEMPLATES["clinicalNotes"], "DocumentReference", (
        SearchQuery("DocumentReference", (("category", "clinical-note"),), "date", NOTES_LOOKBACK_DAYS,
                    fallbacks=(("date", "_count"), ("category",))),
    )))
    # Prior management (§5.8): referrals and visits by date, not by code: EHRs code a referral
    # with a site's own procedure code ("Ambulatory referral to Physical Therapy", Epic), which
    # is recognised by its name (read/care_names.py); Procedures and medication records are read
    # from the keys above.
    plan.add(KeyPlan("serviceRequests", PREFETCH_TEMPLATES["serviceRequests"], "ServiceRequest",
                     (SearchQuery("ServiceRequest", (), "authored", MANAGEMENT_LOOKBACK_DAYS),)))
    plan.add(KeyPlan("encounters", PREFETCH_TEMPLATES["encounters"], "Encounter",
                     (SearchQuery("Encounter", (), "date", MANAGEMENT_LOOKBACK_DAYS),)))
