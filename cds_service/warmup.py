"""Worker start-up: one synthetic hook call per service, so a worker's first real call costs what
the others do.

Role in the data flow: start-up only (`CdsService.start`). What a first call would otherwise build
lazily is built here: the contract models' first validations (pydantic), the fhir.resources
models and the element types they import on first use, the card templates' first renders, the
rule readers' caches and orjson's first dump; `warm_edge` the web edge's URL matcher. The text reader's pipeline is warmed by its own
builder (read.text.nlp). The synthetic record is made up (no patient), the call goes through
`read_request`, `gather` (prefetch only: no fhirServer, so no network) and the evaluator, and is
neither recorded, counted in the metrics nor offered the red-flag screen.
"""

from __future__ import annotations

import base64
import time
import typing
from datetime import UTC, date, datetime, timedelta

import orjson

from cds_service.gather.prefetch import gather
from cds_service.read.fhir import MODELS
from cds_service.read.text.attachments import attachment_text

PATIENT_ID = "warm-up-patient"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def _coded(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def synthetic_record(today: date) -> dict[str, dict]:
    """A made-up record touching each kind of resource the reader reads, by prefetch key."""
    subject = {"reference": f"Patient/{PATIENT_ID}"}
    onset = (today - timedelta(days=10)).isoformat()
    note = "Low back pain for ten days after lifting. No saddle anaesthesia, no fever. Denies weight loss."
    return {
        "patient": {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female", "birthDate": "1970-05-01"},
        "conditions": _bundle({
            "resourceType": "Condition", "id": "warm-lbp", "subject": subject, "onsetDateTime": onset,
            "clinicalStatus": _coded("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
            "verificationStatus": _coded("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
            "code": _coded(SNOMED, "279039007", "Low back pain"), "recordedDate": onset}),
        "observations": _bundle({
            "resourceType": "Observation", "id": "warm-temp", "status": "final", "subject": subject,
            "code": _coded(LOINC, "8310-5", "Body temperature"), "effectiveDateTime": onset,
            "valueQuantity": {"value": 36.8, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"}}),
        "procedures": _bundle({
            "resourceType": "Procedure", "id": "warm-pt", "status": "completed", "subject": subject,
            "code": _coded(SNOMED, "91251008", "Physical therapy procedure"), "performedDateTime": onset}),
        "medications": _bundle({
            "resourceType": "MedicationRequest", "id": "warm-nsaid", "status": "active", "intent": "order",
            "subject": subject, "authoredOn": onset,
            "medicationCodeableConcept": _coded("http://www.nlm.nih.gov/research/umls/rxnorm", "197806",
                                                "Ibuprofen 600 MG Oral Tablet")}),
        "clinicalNotes": _bundle({
            "resourceType": "DocumentReference", "id": "warm-note", "status": "current", "subject": subject,
            "date": f"{onset}T09:00:00Z", "type": _coded(LOINC, "11506-3", "Progress note"),
            "content": [{"attachment": {"contentType": "text/plain",
                                        "data": base64.b64encode(note.encode()).decode()}}]}),
    }


def synthetic_request(hook: str, templates: dict[str, str], today: date) -> dict:
    """A valid call of `hook` for the synthetic record: one draft lumbar MRI, every prefetch key."""
    order = {"resourceType": "ServiceRequest", "id": "warm-order", "status": "draft", "intent": "plan",
             "subject": {"reference": f"Patient/{PATIENT_ID}"}, "authoredOn": today.isoformat(),
             "code": _coded("http://www.ama-assn.org/go/cpt", "72148", "MRI lumbar spine without contrast"),
             "reasonCode": [_coded(SNOMED, "279039007", "Low back pain")]}
    record = synthetic_record(today)
    context: dict = {"userId": "Practitioner/warm-up", "patientId": PATIENT_ID,
                     "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]}}
    if hook == "order-select":
        context["selections"] = ["ServiceRequest/warm-order"]
    return {"hook": hook, "hookInstance": "00000000-0000-4000-8000-00000000a11c", "context": context,
            "prefetch": {key: record.get(key) or _bundle() for key in templates}}


def warm_edge(app) -> None:
    """What the first call through the web edge builds: the URL map's matcher (Werkzeug compiles it
    on the first match). Called by `app.create_app` once every part is attached. The red-flag
    screen's query is left to the first call (about 1 ms to compile): running it here would find
    a store that is down at start-up and pause the screen before any call."""
    adapter = app.url_map.bind("localhost")
    for path in ("/cds-services", "/cds-services/warm-up"):
        try:
            adapter.match(path, method="POST")
        except Exception:  # noqa: BLE001 - a 404/405 is a match attempt too: the matcher is built
            pass


def _element_types(annotation) -> list[type]:
    """The fhir.resources model classes a field's annotation names (through Optional and list)."""
    if isinstance(annotation, type) and hasattr(annotation, "get_model_klass"):
        return [annotation.get_model_klass()]
    return [model for part in typing.get_args(annotation) for model in _element_types(part)]


def import_element_types() -> int:
    """Import every element type (Period, Dosage, Timing, Annotation, ...) the resources the
    reader validates can hold: fhir.resources imports each on the first value of its kind, which
    would be in some call's time. The number of model classes reached."""
    seen: set[type] = set()
    pending = list(MODELS.values())
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            pending += [t for t in _element_types(field.annotation) if t not in seen]
    return len(seen)


def read_each_attachment_kind() -> None:
    """The note readers of each format (clinical-specification.md §3.8): a plain-text note in
    Windows-1252 (its codec is imported on first use), HTML, RTF (striprtf imported on first use)."""
    attachment_text("text/plain", "Back pain \u2013 no fever".encode("cp1252"))
    attachment_text("text/html", b"<p>Back pain</p>")
    attachment_text("text/rtf", rb"{\rtf1\ansi Back pain\par}")


def warm_up(service) -> float:
    """One synthetic call of each service of `service` (a CdsService), nothing recorded, after
    importing the element types and reading each note format; the milliseconds it took."""
    started = time.perf_counter()
    import_element_types()
    read_each_attachment_kind()
    now = datetime.now(UTC)
    templates = service.evaluator.query_plan.templates()
    for definition in service.registry:
        request = service.read_request(definition.id, synthetic_request(definition.hook, templates, now.date()))
        gathered = gather(request, definition, service.settings, service.evaluator.query_plan, now.date())
        result = service.evaluator.evaluate(request, gathered, now, None)
        orjson.dumps(result.response)
    return round((time.perf_counter() - started) * 1000, 1)
