"""Builders of `PathwayInputs` for the pathway tests (the decision function's own contract)."""

from __future__ import annotations

from datetime import date, timedelta

from cds_service.read.inputs import (
    CT,
    CT_MYELOGRAPHY,
    MRI,
    UNSPECIFIED,
    WITH,
    WITHOUT,
    WITHOUT_WITH,
    XR,
    EpisodeCondition,
    Evidence,
    ImagingOrder,
    Measurement,
    PathwayInputs,
    PatientFacts,
    PriorImaging,
    RedFlagFact,
)

REF = date(2026, 6, 1)  # the reference date of every test
PATIENT_ID = "pat-1"
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

# (modality, contrast) -> (CPT code, display)
STUDIES = {
    (XR, UNSPECIFIED): ("72100", "Radiologic examination, spine, lumbosacral; 2 or 3 views"),
    (CT, WITHOUT): ("72131", "CT lumbar spine without contrast"),
    (CT, WITH): ("72132", "CT lumbar spine with contrast"),
    (CT, WITHOUT_WITH): ("72133", "CT lumbar spine without and with contrast"),
    (CT, UNSPECIFIED): ("72131", "CT lumbar spine"),
    (CT_MYELOGRAPHY, UNSPECIFIED): ("62304", "Myelography lumbosacral"),
    (MRI, WITHOUT): ("72148", "MRI lumbar spine without contrast"),
    (MRI, WITH): ("72149", "MRI lumbar spine with contrast"),
    (MRI, WITHOUT_WITH): ("72158", "MRI lumbar spine without and with contrast"),
    (MRI, UNSPECIFIED): ("72148", "MRI lumbar spine"),
}


def ago(days: int | None) -> date | None:
    return None if days is None else REF - timedelta(days=days)


def order(modality: str = MRI, contrast: str = WITHOUT, oid: str = "o1", priority: str | None = "routine",
          reason: list[dict] | None = None) -> ImagingOrder:
    if modality in (XR, CT_MYELOGRAPHY):
        contrast_key = UNSPECIFIED
    else:
        contrast_key = contrast
    code, display = STUDIES[(modality, contrast_key)]
    resource = {
        "resourceType": "ServiceRequest",
        "id": oid,
        "status": "draft",
        "intent": "plan",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": REF.isoformat(),
        "code": {"coding": [{"system": CPT, "code": code, "display": display}]},
        "reasonCode": reason if reason is not None else [],  # the sandbox sends [] (section 3a)
    }
    if priority:
        resource["priority"] = priority
    return ImagingOrder(
        reference=f"ServiceRequest/{oid}", modality=modality, contrast=contrast,
        code=Evidence(f"ServiceRequest/{oid}", "ServiceRequest", code, CPT, display, REF),
        priority=priority, authored_on=REF, resource=resource,
    )


def episode(onset_days: int | None = None, recorded_days: int | None = None, cid: str = "lbp",
            code: str = "279039007", display: str = "Low back pain",
            laterality: frozenset[str] = frozenset()) -> EpisodeCondition:
    when = ago(onset_days) if onset_days is not None else ago(recorded_days)
    return EpisodeCondition(
        evidence=Evidence(f"Condition/{cid}", "Condition", code, SNOMED, display, when),
        onset=ago(onset_days), recorded=ago(recorded_days), laterality=laterality,
    )


def flag(group: str, kind: str, days: int | None = None, window: int | None = None, negated: bool = False,
         ref: str | None = None, label: str | None = None, code: str = "X00") -> RedFlagFact:
    reference = ref or f"Condition/{kind}-{days}-{'neg' if negated else 'pos'}"
    resource_type = reference.split("/")[0]
    return RedFlagFact(
        group=group, kind=kind, label=label or kind.replace("-", " ").capitalize(),
        evidence=Evidence(reference, resource_type, code, ICD10CM, label or kind, ago(days)),
        window_days=window, negated=negated,
    )


def prior(modality: str, days: int, pid: str = "prior") -> PriorImaging:
    return PriorImaging(modality, Evidence(f"ImagingStudy/{pid}", "ImagingStudy", "MR", None, "MRI", ago(days)))


def measurement(kind: str, value: float, days: int, mid: str) -> Measurement:
    return Measurement(kind, value, Evidence(f"Observation/{mid}", "Observation", None, None, kind, ago(days)))


def inputs(*, orders: list[ImagingOrder] | None = None, age: int | None = 45, episodes=None, flags=(),
           priors=(), surgery=(), measurements=(), unavailable=(), skipped=(), management=()) -> PathwayInputs:
    birth = None if age is None else date(REF.year - age, 1, 15)
    return PathwayInputs(
        patient=PatientFacts(reference=f"Patient/{PATIENT_ID}", birth_date=birth, sex="female"),
        reference_date=REF,
        episode=list(episodes if episodes is not None else [episode(onset_days=10)]),
        red_flags=list(flags),
        measurements=list(measurements),
        prior_imaging=list(priors),
        spinal_surgery=[Evidence(f"Procedure/{s}", "Procedure", "Z98.1", ICD10CM, "Lumbar surgery", ago(400))
                        for s in surgery],
        # Conservative care: days ago (a physical therapy Procedure) or a ready Evidence (§5.8).
        management=[m if isinstance(m, Evidence) else
                    Evidence(f"Procedure/pt{n}", "Procedure", "91251008", "http://snomed.info/sct",
                             "Physical therapy procedure", ago(m), "physical therapy")
                    for n, m in enumerate(management)],
        orders=list(orders if orders is not None else [order()]),
        unavailable_data=list(unavailable),
        skipped_resources=list(skipped),
    )
