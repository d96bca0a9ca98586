"""The service registry: the CDS services this deployment offers (clinical-specification.md §7).

Role in the data flow: discovery lists these definitions; the controller looks a service up by id
and validates the request's hook against it. Both services share one pathway; they differ only
in which draft orders they judge (order-select: the selected ones; order-sign: all).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Prefetch keys. clinical-specification.md §7 fixes the first three; the others are of our own naming
# (procedures for spinal surgery and prior imaging, medications for corticosteroids, imaging,
# clinical notes for the free text).
PREFETCH_TEMPLATES: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "medications": "MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:medication",
    # Medicines the patient reports or the EHR reconciled (clinical-specification.md §3.7).
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}&_include=MedicationStatement:medication",
    "imagingStudies": "ImagingStudy?patient={{context.patientId}}",
    "diagnosticReports": "DiagnosticReport?patient={{context.patientId}}",
    # Clinical notes, read as free text (clinical-specification.md §9.1).
    "clinicalNotes": "DocumentReference?patient={{context.patientId}}&category=clinical-note",
    # Examination findings recorded as Observations, often coded with text only ("DRE: reduced
    # tone"): asked for by category, read as free text (clinical-specification.md §9.1).
    "examObservations": "Observation?patient={{context.patientId}}&category=exam",
    # Prior management (clinical-specification.md §5.8): referrals and physical-therapy visits.
    "serviceRequests": "ServiceRequest?patient={{context.patientId}}",
    "encounters": "Encounter?patient={{context.patientId}}",
}

# Without these the service cannot decide: 412 when they can be neither read nor fetched.
REQUIRED_PREFETCH_KEYS: frozenset[str] = frozenset({"patient", "conditions"})


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str] = field(default_factory=lambda: dict(PREFETCH_TEMPLATES))
    usage_requirements: str | None = None

    def discovery_json(self) -> dict:
        body = {
            "id": self.id,
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(self.prefetch),
        }
        if self.usage_requirements:
            body["usageRequirements"] = self.usage_requirements
        return body


SERVICES: tuple[ServiceDefinition, ...] = (
    ServiceDefinition(
        id="lumbar-imaging-order-select",
        hook="order-select",
        title="Lumbar spine imaging appropriateness (order-select)",
        description=(
            "While a lumbar spine X-ray, CT, CT myelography or MRI is being chosen: warns against "
            "imaging in the first 6 weeks of low back pain or sciatica without red flags, flags "
            "cauda equina signs for emergency MRI, steers toward MRI without contrast, and rates "
            "the order's appropriateness (ACR Appropriateness Criteria, Low Back Pain)."
        ),
        usage_requirements="Judges the draft orders named in context.selections.",
    ),
    ServiceDefinition(
        id="lumbar-imaging-order-sign",
        hook="order-sign",
        title="Lumbar spine imaging appropriateness (order-sign)",
        description=(
            "The same lumbar imaging judgement as a backstop when the orders are signed: every "
            "lumbar spine imaging order in draftOrders is judged and rated."
        ),
        usage_requirements="Judges every lumbar spine imaging order in context.draftOrders.",
    ),
)


class ServiceRegistry:
    """Services by id, in discovery order."""

    def __init__(self, services: tuple[ServiceDefinition, ...] = SERVICES, prefetch: dict[str, str] | None = None):
        # `prefetch`: the deployment's narrowed templates (cds_service.queries), for every service.
        if prefetch is not None:
            services = tuple(replace(s, prefetch=dict(prefetch)) for s in services)
        self._by_id = {s.id: s for s in services}

    def get(self, service_id: str) -> ServiceDefinition | None:
        return self._by_id.get(service_id)

    def __iter__(self):
        return iter(self._by_id.values())

    def discovery_json(self) -> dict:
        return {"services": [s.discovery_json() for s in self]}
