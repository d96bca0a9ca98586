"""The patient: age and sex from the Patient resource (pathway input 3.1).

Role in the data flow: read stage; the first record read, since ages at onset need the birth date.
"""

from __future__ import annotations

from fhir.resources.R4B.patient import Patient

from cds_service.read.context import ReadContext
from cds_service.read.fhir import iter_resources, parse_date, validate
from cds_service.read.inputs import PatientFacts


def read_patient(ctx: ReadContext) -> PatientFacts:
    pid = ctx.request.patient_id
    facts = PatientFacts(reference=f"Patient/{pid}")
    candidates = [(r, url) for r, url in iter_resources(ctx.gathered.data.get("patient"))
                  if r.get("resourceType") == "Patient"]
    chosen = next(((r, url) for r, url in candidates if r.get("id") == pid), None)
    if chosen is None and len(candidates) == 1 and candidates[0][0].get("id") is None:
        chosen = candidates[0]
    if chosen is None:
        return facts  # another patient's record is never evidence
    resource, full_url = chosen
    try:
        validate(Patient, resource)
    except Exception:
        ctx.inputs.skipped_resources.append(f"Patient/{pid}")
        return facts
    if full_url:  # Bundles may reference the patient by its fullUrl (urn:uuid:...)
        ctx.patient_refs.add(full_url)
    sex = resource.get("gender") if isinstance(resource.get("gender"), str) else None
    return PatientFacts(reference=f"Patient/{pid}", birth_date=parse_date(resource.get("birthDate")), sex=sex)
