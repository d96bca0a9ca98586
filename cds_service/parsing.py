"""Parse the gathered FHIR JSON into `PathwayInputs` (pathway.md sections 2, 3a and 4).

Role in the data flow: after gathering, before the pathway decisions. Pure: no I/O, no clock
(`today` is passed in and only used when no judged order has an authoredOn).

Cost model: prefetch Bundles may hold thousands of irrelevant resources. Each resource is first
SELECTED on its raw JSON, by looking its codings up in the value sets (dict reads, see
`cds_service.valuesets`); only the selected few are then validated with the fhir.resources R4B
models. A selected resource that fails validation is skipped and reported in
`skipped_resources` (the card says so) -- never an exception. A resource whose subject/patient is
another patient than context.patientId is never evidence (pathway.md section 2).

Facts are read from the raw JSON once it has validated, keeping a pointer (`Condition/123`) to
the resource for every fact, so a card can cite its evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest

from .envelope import HookRequest
from .gathering import GatheredData
from .inputs import (
    CT,
    CT_MYELOGRAPHY,
    MRI,
    EpisodeCondition,
    Evidence,
    ImagingOrder,
    Measurement,
    PathwayInputs,
    PatientFacts,
    PriorImaging,
    RedFlagFact,
)
from .valuesets import Entry, ValueSets

MODELS = {
    "Condition": Condition, "Observation": Observation, "Procedure": Procedure,
    "MedicationRequest": MedicationRequest, "MedicationStatement": MedicationStatement,
    "ImagingStudy": ImagingStudy, "DiagnosticReport": DiagnosticReport,
    "ServiceRequest": ServiceRequest, "Patient": Patient,
}

# Elements the parser never reads: left out of the model validation of a selected resource, so
# its cost is paid for what the pathway uses (a Synthea Patient's names, addresses, extensions
# and narrative made its validation alone cost about 0.45 ms). Modifier extensions stay in.
UNREAD_ELEMENTS = frozenset({
    "text", "meta", "extension", "identifier", "name", "telecom", "address", "photo", "contact",
    "communication", "generalPractitioner", "managingOrganization", "maritalStatus", "encounter",
    "performer", "recorder", "asserter", "referenceRange", "hasMember", "derivedFrom", "component",
})

# pathway.md section 2: refuted / entered-in-error Conditions are not facts at all.
IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
# Current signs need one of these clinical statuses (or none given).
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
IGNORED_OBSERVATION_STATUS = frozenset({"entered-in-error", "cancelled"})
IGNORED_PROCEDURE_STATUS = frozenset({"not-done", "entered-in-error", "preparation"})
IGNORED_REPORT_STATUS = frozenset({"entered-in-error", "cancelled"})
IGNORED_STUDY_STATUS = frozenset({"entered-in-error", "cancelled"})
IGNORED_MEDREQ_STATUS = frozenset({"entered-in-error", "cancelled", "draft"})
IGNORED_MEDSTATEMENT_STATUS = frozenset({"entered-in-error", "not-taken"})
ONGOING_MED_STATUS = frozenset({"active", "on-hold", "intended"})

PRIOR_IMAGING_MODALITIES = frozenset({CT, CT_MYELOGRAPHY, MRI})
DICOM_MODALITY = {"MR": MRI, "CT": CT}
DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"

CELSIUS_UNITS = frozenset({"cel", "c", "°c", "degc", "celsius"})
FAHRENHEIT_UNITS = frozenset({"[degf]", "degf", "°f", "f", "fahrenheit"})
KG_UNITS = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}
ML_UNITS = {"ml": 1.0, "cm3": 1.0, "l": 1000.0}
AGE_UNIT_DAYS = {"a": 365.25, "yr": 365.25, "year": 365.25, "years": 365.25, "mo": 30.4375,
                 "month": 30.4375, "months": 30.4375, "wk": 7, "week": 7, "weeks": 7,
                 "d": 1, "day": 1, "days": 1}

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


# --------------------------------------------------------------------------- small helpers

def parse_date(value: Any) -> date | None:
    """FHIR date/dateTime/instant -> the calendar date as written; partial dates -> first day."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    year, month, day = match.group(1), match.group(2) or "01", match.group(3) or "01"
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _codings(concept: Any) -> list[dict]:
    """The codings of a CodeableConcept, or a bare Coding itself (ImagingStudy.series.bodySite)."""
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list):
            return [c for c in codings if isinstance(c, dict)]
        if "code" in concept and "system" in concept:
            return [concept]
    return []


def _concepts(value: Any) -> list[dict]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [concept.get("text")] + [c.get("display") for c in _codings(concept)]
    return " ".join(p for p in parts if isinstance(p, str))


def _status_code(concept: Any) -> str | None:
    for coding in _codings(concept):
        code = coding.get("code")
        if isinstance(code, str):
            return code
    return None


def _first_date(resource: dict, *paths: str) -> date | None:
    for path in paths:
        value: Any = resource
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        found = parse_date(value)
        if found:
            return found
    return None


def _ref_of(resource: dict, full_url: str | None) -> str:
    rtype = resource.get("resourceType", "Resource")
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return f"{rtype}/{rid}"
    return full_url or f"{rtype}/(no id)"


def iter_resources(value: Any) -> Iterator[tuple[dict, str | None]]:
    """(resource, fullUrl) from a Bundle (any type, with or without OperationOutcome entries),
    a single resource, a list of either, or None."""
    if isinstance(value, list):
        for item in value:
            yield from iter_resources(item)
        return
    if not isinstance(value, dict):
        return
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry")
        if not isinstance(entries, list):
            return
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                yield from iter_resources(resource)
            elif isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                full_url = entry.get("fullUrl")
                yield resource, full_url if isinstance(full_url, str) else None
        return
    if isinstance(value.get("resourceType"), str):
        yield value, None


# --------------------------------------------------------------------------- the parser

@dataclass(frozen=True, eq=False)
class _Hit:
    """A value-set entry matched by one of the resource's own codings (the coding is cited)."""

    entry: Entry
    coding: dict

    @property
    def valueset(self):
        return self.entry.valueset

    def attr(self, name: str, default: Any = None) -> Any:
        return self.entry.attr(name, default)


@dataclass
class _Parser:
    request: HookRequest
    gathered: GatheredData
    vs: ValueSets
    settings: dict
    today: date
    inputs: PathwayInputs = field(init=False)
    patient_refs: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    weights: list[tuple[date, float, Evidence]] = field(default_factory=list)
    steroid_courses: list[tuple[date, date, Evidence]] = field(default_factory=list)
    radicular_sides: list[tuple[frozenset[str], Evidence]] = field(default_factory=list)
    patient_suffix: str = ""
    vital_sign_windows: dict[str, int | None] = field(default_factory=dict)  # measure -> days

    # ---- entry point
    def run(self) -> PathwayInputs:
        pid = self.request.patient_id
        self.patient_refs = {f"Patient/{pid}", f"urn:uuid:{pid}"}
        self.patient_suffix = f"/Patient/{pid}"  # absolute references: <base>/Patient/<id>
        self.vital_sign_windows = {
            "body-temperature": self.vs["infection-fever"].window_days,
            "body-weight": self.vs["observation-codes"].extra.get("weight_loss_window_days", 180),
        }
        orders, order_resources, skipped = self._orders()
        dates = [o.authored_on for o in orders if o.authored_on]
        self.inputs = PathwayInputs(
            patient=PatientFacts(reference=f"Patient/{pid}"),
            reference_date=max(dates) if dates else self.today,
            orders=orders,
            skipped_resources=skipped,
        )
        self.inputs.patient = self._patient()
        for ref, resource in order_resources:
            self._order_reasons(ref, resource)
        handlers = {
            "Condition": self._condition, "Observation": self._observation,
            "Procedure": self._procedure, "MedicationRequest": self._medication,
            "MedicationStatement": self._medication, "ImagingStudy": self._imaging_study,
            "DiagnosticReport": self._diagnostic_report,
        }
        for key, value in self.gathered.data.items():
            if key == "patient":
                continue
            for resource, full_url in iter_resources(value):
                handler = handlers.get(resource["resourceType"])
                if handler is not None:
                    handler(resource, full_url)
        self._bilateral_sciatica()
        self._weight_loss()
        self._prolonged_steroids()
        self.inputs.unavailable_data = list(self.gathered.unavailable) + [
            f"{key} (incomplete: page limit reached)" for key in self.gathered.truncated
        ]
        return self.inputs

    # ---- shared selection machinery
    def _lookup(self, concepts: Iterable[dict], purposes: frozenset[str] | None = None) -> tuple[_Hit, ...]:
        found: list[_Hit] = []
        for concept in concepts:
            for coding in _codings(concept):
                for entry in self.vs.lookup_coding(coding):
                    if purposes is None or entry.valueset.purpose in purposes:
                        found.append(_Hit(entry, coding))
        return tuple(found)

    def _is_other_patient(self, resource: dict) -> bool:
        for key in ("subject", "patient"):
            ref = resource.get(key)
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                reference = ref["reference"].split("/_history")[0]
                return not (reference in self.patient_refs or reference.endswith(self.patient_suffix))
        return False

    def _accept(self, resource: dict, full_url: str | None) -> str | None:
        """Reference of a selected resource when it is this patient's and valid; else None."""
        ref = _ref_of(resource, full_url)
        dedupe = f"{ref}|{full_url}" if resource.get("id") is None else ref
        if dedupe in self.seen:
            return None
        self.seen.add(dedupe)
        if self._is_other_patient(resource):
            return None
        model = MODELS.get(resource["resourceType"])
        if model is not None:
            try:
                validate(model, resource)
            except Exception:  # pydantic ValidationError and anything a broken resource raises
                if ref not in self.inputs.skipped_resources:
                    self.inputs.skipped_resources.append(ref)
                return None
        return ref

    def _evidence(self, ref: str, resource: dict, hit: _Hit, when: date | None,
                  text: str | None = None) -> Evidence:
        """Cite the resource's own coding (e.g. 'M46.46', not the value set's prefix 'M46.4')."""
        code, system, display = (hit.coding.get(k) for k in ("code", "system", "display"))
        return Evidence(
            reference=ref, resource_type=resource.get("resourceType", "Resource"),
            code=code.strip() if isinstance(code, str) else hit.entry.code,
            system=system if isinstance(system, str) else hit.entry.system,
            display=display if isinstance(display, str) and display else hit.entry.display,
            date=when, text=text,
        )

    def _red_flag(self, entry: Entry | _Hit, evidence: Evidence, negated: bool = False,
                  kind: str | None = None, label: str | None = None,
                  window_days: int | None | str = "valueset") -> None:
        valueset = entry.valueset
        self.inputs.red_flags.append(RedFlagFact(
            group=valueset.group, kind=kind or valueset.kind, label=label or valueset.label,
            evidence=evidence,
            window_days=valueset.window_days if window_days == "valueset" else window_days,
            negated=negated,
        ))

    # ---- patient
    def _patient(self) -> PatientFacts:
        pid = self.request.patient_id
        facts = PatientFacts(reference=f"Patient/{pid}")
        candidates = [(r, url) for r, url in iter_resources(self.gathered.data.get("patient"))
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
            self.inputs.skipped_resources.append(f"Patient/{pid}")
            return facts
        if full_url:  # Bundles may reference the patient by its fullUrl (urn:uuid:...)
            self.patient_refs.add(full_url)
        sex = resource.get("gender") if isinstance(resource.get("gender"), str) else None
        return PatientFacts(reference=f"Patient/{pid}", birth_date=parse_date(resource.get("birthDate")), sex=sex)

    # ---- orders (context.draftOrders)
    def _orders(self) -> tuple[list[ImagingOrder], list[tuple[str, dict]], list[str]]:
        judged: list[ImagingOrder] = []
        lumbar: list[tuple[str, dict]] = []
        selections = set(self.request.selections)
        skipped: list[str] = []
        for resource, full_url in iter_resources(self.request.draft_orders):
            if resource.get("resourceType") != "ServiceRequest":
                continue
            matches = self._lookup(_concepts(resource.get("code")), frozenset({"imaging-order"}))
            if not matches:
                continue  # the sandbox's empty {"coding": [{}]}: simply not a lumbar order
            ref = _ref_of(resource, full_url)
            if self._is_other_patient(resource):
                continue
            try:
                ServiceRequest.model_validate(resource)
            except Exception:
                skipped.append(ref)
                continue
            lumbar.append((ref, resource))
            if self.request.hook == "order-select" and not ({ref, full_url} & selections):
                continue
            entry = matches[0]
            authored = parse_date(resource.get("authoredOn"))
            priority = resource.get("priority") if isinstance(resource.get("priority"), str) else None
            judged.append(ImagingOrder(
                reference=ref, modality=entry.attr("modality"), contrast=entry.attr("contrast"),
                code=self._evidence(ref, resource, entry, authored), priority=priority,
                authored_on=authored, resource=resource,
            ))
        return judged, lumbar, skipped

    def _order_reasons(self, ref: str, resource: dict) -> None:
        """pathway.md 3a: the order's reasonCode qualifies the episode and can carry a red flag."""
        authored = parse_date(resource.get("authoredOn")) or self.inputs.reference_date
        for entry in self._lookup(_concepts(resource.get("reasonCode"))):
            evidence = self._evidence(ref, resource, entry, authored, text="reason for the order")
            purpose = entry.valueset.purpose
            if purpose == "qualifying-episode":
                side = entry.attr("laterality")
                self.inputs.episode.append(EpisodeCondition(
                    evidence=evidence, onset=None, recorded=None,
                    laterality=frozenset({side}) if side else frozenset(), from_order_reason=True,
                ))
            elif purpose == "red-flag" and not entry.valueset.extra.get("requires_site"):
                self._red_flag(entry, evidence)

    # ---- laterality / body site helpers
    def _laterality(self, resource: dict, entries: Iterable[_Hit]) -> frozenset[str]:
        sides: set[str] = set()
        for entry in entries:
            if entry.attr("laterality"):
                sides.add(entry.attr("laterality"))
        sites = _concepts(resource.get("bodySite"))
        for entry in self._lookup(sites, frozenset({"laterality"})):
            sides.add(entry.attr("laterality"))
        patterns = self.vs["laterality"].extra.get("text_patterns", {})
        text = " ".join([_text(resource.get("code"))] + [_text(s) for s in sites]).lower()
        for side, words in patterns.items():
            if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words):
                sides.add(side)
        if "bilateral" in sides:
            sides |= {"left", "right"}
        sides.discard("bilateral")
        return frozenset(sides)

    def _site_matches(self, resource: dict, site_valueset: str) -> bool:
        sites = _concepts(resource.get("bodySite"))
        for entry in self._lookup(sites, frozenset({"body-site"})):
            if entry.valueset.id == site_valueset:
                return True
        notes = [n.get("text") for n in resource.get("note") or [] if isinstance(n, dict)]
        text = " ".join([_text(resource.get("code"))] + [_text(s) for s in sites]
                        + [n for n in notes if isinstance(n, str)]).lower()
        return any(p in text for p in self.vs[site_valueset].extra.get("text_patterns", []))

    def _lacks_required_site(self, resource: dict, valueset) -> bool:
        """A sign that counts only at a body site (R20.x: saddle / perineal) found elsewhere."""
        site = valueset.extra.get("requires_site")
        return bool(site) and not self._site_matches(resource, site["valueset"])

    # ---- Conditions
    def _condition(self, resource: dict, full_url: str | None) -> None:
        matches = self._lookup(_concepts(resource.get("code")))
        if not matches:
            return
        if _status_code(resource.get("verificationStatus")) in IGNORED_VERIFICATION:
            return
        ref = self._accept(resource, full_url)
        if ref is None:
            return
        clinical = _status_code(resource.get("clinicalStatus"))
        active = clinical is None or clinical in ACTIVE_CLINICAL
        onset = self._onset(resource)
        recorded = parse_date(resource.get("recordedDate"))
        known = [d for d in (onset, recorded) if d]
        # The latest date someone asserted the condition: what look-back windows are measured from.
        when = max(known) if known else None
        episode_entries = [e for e in matches if e.valueset.purpose == "qualifying-episode"]
        if episode_entries and active:
            sides = self._laterality(resource, episode_entries)
            evidence = self._evidence(ref, resource, episode_entries[0], onset or recorded)
            self.inputs.episode.append(EpisodeCondition(
                evidence=evidence, onset=onset, recorded=recorded, laterality=sides,
            ))
            if sides and any(e.attr("radicular") for e in episode_entries):
                self.radicular_sides.append((sides, evidence))
        for entry in _one_per_valueset(matches):
            valueset = entry.valueset
            if valueset.purpose == "red-flag":
                if valueset.current_sign and not active:
                    continue
                if self._lacks_required_site(resource, valueset):
                    continue
                self._red_flag(entry, self._evidence(ref, resource, entry, when))
                if valueset.kind == "long-term-steroids":
                    self.inputs.corticosteroids.append(self._evidence(ref, resource, entry, when))
            elif valueset.purpose == "spinal-surgery":
                self.inputs.spinal_surgery.append(self._evidence(ref, resource, entry, when))

    def _onset(self, resource: dict) -> date | None:
        onset = _first_date(resource, "onsetDateTime", "onsetPeriod.start")
        if onset:
            return onset
        age = resource.get("onsetAge")
        birth = self.inputs.patient.birth_date
        if isinstance(age, dict) and birth and isinstance(age.get("value"), (int, float)):
            unit = str(age.get("code") or age.get("unit") or "a").lower()
            days = AGE_UNIT_DAYS.get(unit)
            if days is not None:
                if days == 365.25 and float(age["value"]).is_integer():
                    try:  # whole years: the birthday itself, not an approximation
                        return birth.replace(year=birth.year + int(age["value"]))
                    except ValueError:  # 29 February
                        return birth.replace(year=birth.year + int(age["value"]), day=28)
                return birth + timedelta(days=round(age["value"] * days))
        return None

    def _bilateral_sciatica(self) -> None:
        """pathway.md section 1: right and left sciatica/radiculopathy both active -> cauda equina."""
        sides = set().union(*(s for s, _ in self.radicular_sides)) if self.radicular_sides else set()
        if {"left", "right"} <= sides:
            valueset = self.vs["cauda-equina-bilateral-sciatica"]
            for side, evidence in self.radicular_sides:
                self.inputs.red_flags.append(RedFlagFact(
                    group=valueset.group, kind=valueset.kind, label=valueset.label,
                    evidence=Evidence(**{**evidence.__dict__, "text": f"{'/'.join(sorted(side))} side"}),
                    window_days=valueset.window_days,
                ))

    # ---- Observations
    def _observation(self, resource: dict, full_url: str | None) -> None:
        code = resource.get("code")
        matches = self._lookup(_concepts(code))
        pvr = self._is_post_void_residual(code)
        if not matches and not pvr:
            return
        if resource.get("status") in IGNORED_OBSERVATION_STATUS:
            return
        when = _first_date(resource, "effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued")
        if not pvr and when is not None and self._vital_sign_out_of_window(matches, when):
            return
        ref = self._accept(resource, full_url)
        if ref is None:
            return
        negated = self._says_absent(resource)
        for entry in _one_per_valueset(matches):
            valueset = entry.valueset
            if valueset.purpose == "red-flag":
                if self._lacks_required_site(resource, valueset):
                    continue
                self._red_flag(entry, self._evidence(ref, resource, entry, when), negated=negated)
            elif valueset.purpose == "observation" and entry.attr("measure") == "body-temperature":
                self._temperature(resource, ref, entry, when)
            elif valueset.purpose == "observation" and entry.attr("measure") == "body-weight":
                self._weight(resource, ref, entry, when)
        if pvr:
            self._post_void_residual(resource, ref, when)

    def _vital_sign_out_of_window(self, matches: tuple[_Hit, ...], when: date) -> bool:
        """A temperature older than the fever window, or a weight older than the weight-loss
        window, can count for nothing: skip it before paying for its validation (years of
        vital signs are most of a real record's Observations)."""
        if any(hit.valueset.purpose != "observation" for hit in matches):
            return False  # a coded sign (e.g. urinary retention) has windows of its own
        windows = self.vital_sign_windows
        days_before = (self.inputs.reference_date - when).days
        return all(
            windows.get(hit.attr("measure")) is not None and days_before > windows[hit.attr("measure")]
            for hit in matches
        )

    def _says_absent(self, resource: dict) -> bool:
        if resource.get("valueBoolean") is False:
            return True
        concepts = _concepts(resource.get("valueCodeableConcept")) + _concepts(resource.get("interpretation"))
        return bool(self._lookup(concepts, frozenset({"negative-finding"})))

    @staticmethod
    def _quantity(resource: dict) -> tuple[float, str] | None:
        quantity = resource.get("valueQuantity")
        if not isinstance(quantity, dict) or isinstance(quantity.get("value"), bool):
            return None
        value = quantity.get("value")
        if not isinstance(value, (int, float)):
            return None
        unit = quantity.get("code") or quantity.get("unit") or ""
        return float(value), str(unit).strip().lower()

    def _temperature(self, resource: dict, ref: str, entry: Entry, when: date | None) -> None:
        quantity = self._quantity(resource)
        if quantity is None:
            return
        value, unit = quantity
        if unit in CELSIUS_UNITS:
            celsius, shown = value, f"{value:g} Cel"
        elif unit in FAHRENHEIT_UNITS:
            # Round the conversion: 100.4 [degF] is exactly 38.0 Cel, not 37.99999...
            celsius, shown = round((value - 32) * 5 / 9, 3), f"{value:g} [degF]"
        else:
            return  # an unknown unit is not guessed at
        evidence = self._evidence(ref, resource, entry, when, text=f"Body temperature {shown}")
        self.inputs.measurements.append(Measurement("body-temperature-cel", celsius, evidence))
        threshold = self.vs["observation-codes"].extra.get("fever_threshold_cel", 38.0)
        if celsius >= threshold:
            fever = self.vs.entries_by_id["infection-fever"][0]
            self._red_flag(fever, evidence)

    def _weight(self, resource: dict, ref: str, entry: Entry, when: date | None) -> None:
        quantity = self._quantity(resource)
        if quantity is None or quantity[1] not in KG_UNITS:
            return
        kg = round(quantity[0] * KG_UNITS[quantity[1]], 3)
        evidence = self._evidence(ref, resource, entry, when, text=f"Body weight {kg:g} kg")
        self.inputs.measurements.append(Measurement("body-weight-kg", kg, evidence))
        if when:
            self.weights.append((when, kg, evidence))

    def _is_post_void_residual(self, code: Any) -> bool:
        configured = self.settings.get("POST_VOID_RESIDUAL_CODES") or ()
        if not configured:
            return False
        for coding in _codings(code):
            if f"{coding.get('system')}|{coding.get('code')}" in configured:
                return True
        return False

    def _post_void_residual(self, resource: dict, ref: str, when: date | None) -> None:
        quantity = self._quantity(resource)
        if quantity is None or quantity[1] not in ML_UNITS:
            return
        ml = quantity[0] * ML_UNITS[quantity[1]]
        config = self.vs["observation-codes"].extra.get("post_void_residual", {})
        if ml > config.get("threshold_ml", 200):
            retention = self.vs.entries_by_id["cauda-equina-urinary-retention"][0]
            coding = next(iter(_codings(resource.get("code"))), {})
            evidence = Evidence(
                reference=ref, resource_type="Observation", code=coding.get("code"),
                system=coding.get("system"), display=coding.get("display"), date=when,
                text=f"Post-void residual {ml:g} mL",
            )
            self._red_flag(retention, evidence, window_days=config.get("window_days"))

    def _weight_loss(self) -> None:
        """>= 5 % body weight lost within 180 days (pathway.md section 1, malignancy)."""
        config = self.vs["observation-codes"].extra
        window = config.get("weight_loss_window_days", 180)
        start = self.inputs.reference_date - timedelta(days=window)
        weights = sorted((w for w in self.weights if start <= w[0] <= self.inputs.reference_date),
                         key=lambda w: w[0])
        if len(weights) < 2:
            return
        last_day, last_kg, last_evidence = weights[-1]
        earlier = [w for w in weights if w[0] < last_day]
        if not earlier:
            return
        top_day, top_kg, _ = max(earlier, key=lambda w: w[1])
        loss = (top_kg - last_kg) / top_kg if top_kg > 0 else 0
        if loss >= config.get("weight_loss_fraction", 0.05):
            entry = self.vs.entries_by_id["malignancy-weight-loss"][0]
            text = (f"Body weight {top_kg:g} kg on {top_day.isoformat()}, {last_kg:g} kg on "
                    f"{last_day.isoformat()} (-{loss * 100:.1f} %)")
            evidence = Evidence(**{**last_evidence.__dict__, "text": text})
            self._red_flag(entry, evidence, kind="weight-loss-measured",
                           label="Weight loss >= 5 % in 180 days", window_days=window)

    # ---- Procedures, imaging studies, reports: prior imaging, surgery, spinal procedures
    def _prior_imaging(self, ref: str, resource: dict, entries: Iterable[_Hit], when: date | None) -> bool:
        for entry in entries:
            if entry.valueset.purpose == "imaging-order" and entry.attr("modality") in PRIOR_IMAGING_MODALITIES:
                self.inputs.prior_imaging.append(
                    PriorImaging(entry.attr("modality"), self._evidence(ref, resource, entry, when)))
                return True
        return False

    def _procedure(self, resource: dict, full_url: str | None) -> None:
        matches = self._lookup(_concepts(resource.get("code")))
        if not matches or resource.get("status") in IGNORED_PROCEDURE_STATUS:
            return
        ref = self._accept(resource, full_url)
        if ref is None:
            return
        when = _first_date(resource, "performedDateTime", "performedPeriod.start", "performedPeriod.end")
        self._prior_imaging(ref, resource, matches, when)
        for entry in _one_per_valueset(matches):
            valueset = entry.valueset
            if valueset.purpose == "spinal-surgery":
                self.inputs.spinal_surgery.append(self._evidence(ref, resource, entry, when))
                # A lumbar operation is also a spinal procedure (infection risk, 90 days).
                procedure = self.vs.entries_by_id["infection-spinal-procedure"][0]
                self._red_flag(procedure, self._evidence(ref, resource, entry, when))
            elif valueset.purpose == "red-flag" and not valueset.extra.get("requires_site"):
                self._red_flag(entry, self._evidence(ref, resource, entry, when))

    def _imaging_study(self, resource: dict, full_url: str | None) -> None:
        matches = self._lookup(_concepts(resource.get("procedureCode")), frozenset({"imaging-order"}))
        series_hit = None
        if not matches:
            series_hit = self._lumbar_series(resource)
            if series_hit is None:
                return
        if resource.get("status") in IGNORED_STUDY_STATUS:
            return
        ref = self._accept(resource, full_url)
        if ref is None:
            return
        when = _first_date(resource, "started")
        if matches:
            self._prior_imaging(ref, resource, matches, when)
            return
        modality, series = series_hit
        when = when or _first_date(series, "started")
        evidence = Evidence(reference=ref, resource_type="ImagingStudy", code=modality_code(series),
                            system=DICOM_SYSTEM, display=f"{modality} lumbar spine (series)", date=when)
        self.inputs.prior_imaging.append(PriorImaging(modality, evidence))

    def _lumbar_series(self, resource: dict) -> tuple[str, dict] | None:
        series_list = resource.get("series")
        if not isinstance(series_list, list):
            return None
        site_vs = "body-site-lumbar-spine"
        patterns = self.vs[site_vs].extra.get("text_patterns", [])
        for series in series_list:
            if not isinstance(series, dict):
                continue
            modality = DICOM_MODALITY.get(modality_code(series) or "")
            if modality is None:
                continue
            site = series.get("bodySite")
            if any(e.valueset.id == site_vs for e in self._lookup(_concepts(site))):
                return modality, series
            text = " ".join([_text(site)] + ([site.get("display")] if isinstance(site, dict) and isinstance(site.get("display"), str) else []))
            if any(p in text.lower() for p in patterns):
                return modality, series
        return None

    def _diagnostic_report(self, resource: dict, full_url: str | None) -> None:
        matches = self._lookup(_concepts(resource.get("code")), frozenset({"imaging-order"}))
        if not matches or resource.get("status") in IGNORED_REPORT_STATUS:
            return
        ref = self._accept(resource, full_url)
        if ref is None:
            return
        when = _first_date(resource, "effectiveDateTime", "effectivePeriod.start", "issued")
        self._prior_imaging(ref, resource, matches, when)

    # ---- Medications: systemic corticosteroid exposure
    def _medication_concepts(self, resource: dict) -> list[dict]:
        concepts = _concepts(resource.get("medicationCodeableConcept"))
        reference = resource.get("medicationReference")
        if isinstance(reference, dict) and isinstance(reference.get("reference"), str) \
                and reference["reference"].startswith("#"):
            wanted = reference["reference"][1:]
            for contained in resource.get("contained") or []:
                if isinstance(contained, dict) and contained.get("id") == wanted:
                    concepts += _concepts(contained.get("code"))
                    for ingredient in contained.get("ingredient") or []:
                        if isinstance(ingredient, dict):
                            concepts += _concepts(ingredient.get("itemCodeableConcept"))
        return concepts

    def _medication(self, resource: dict, full_url: str | None) -> None:
        concepts = self._medication_concepts(resource)
        matches = self._lookup(concepts, frozenset({"systemic-corticosteroid"}))
        if not matches:
            return
        ignored = IGNORED_MEDREQ_STATUS if resource["resourceType"] == "MedicationRequest" else IGNORED_MEDSTATEMENT_STATUS
        if resource.get("status") in ignored:
            return
        # Not systemic when the route or the product text says so (e.g. inhaled budesonide).
        dosages = resource.get("dosageInstruction") or resource.get("dosage") or []
        route_text = " ".join(
            [_text(c) for c in concepts]
            + [_text(d.get("route")) + " " + str(d.get("text") or "") for d in dosages if isinstance(d, dict)]
        ).lower()
        excluded = self.vs["systemic-corticosteroids"].extra.get("route_exclude_text", [])
        if any(word in route_text for word in excluded):
            return
        ref = self._accept(resource, full_url)
        if ref is None:
            return
        start, end = self._course(resource, dosages)
        evidence = self._evidence(ref, resource, matches[0], start)
        self.inputs.corticosteroids.append(evidence)
        if start:
            self.steroid_courses.append((start, end or start, evidence))

    def _course(self, resource: dict, dosages: list) -> tuple[date | None, date | None]:
        """The days a record covers: explicit bounds, else start + supply x fills, else ongoing
        (active records run to the reference date), else the single day recorded."""
        start = end = None
        for dosage in dosages:
            bounds = ((dosage.get("timing") or {}).get("repeat") or {}).get("boundsPeriod") if isinstance(dosage, dict) else None
            if isinstance(bounds, dict):
                start = start or parse_date(bounds.get("start"))
                end = end or parse_date(bounds.get("end"))
        start = start or _first_date(resource, "effectivePeriod.start", "effectiveDateTime",
                                     "dispenseRequest.validityPeriod.start", "authoredOn", "dateAsserted")
        end = end or _first_date(resource, "effectivePeriod.end")
        if start and not end:
            dispense = resource.get("dispenseRequest") or {}
            supply = dispense.get("expectedSupplyDuration") if isinstance(dispense, dict) else None
            if isinstance(supply, dict) and isinstance(supply.get("value"), (int, float)):
                days = AGE_UNIT_DAYS.get(str(supply.get("code") or supply.get("unit") or "d").lower(), 1)
                repeats = dispense.get("numberOfRepeatsAllowed")
                fills = 1 + (repeats if isinstance(repeats, int) and repeats > 0 else 0)
                end = start + timedelta(days=round(supply["value"] * days * fills) - 1)
            elif resource.get("status") in ONGOING_MED_STATUS:
                end = max(start, self.inputs.reference_date)
        return start, end

    def _prolonged_steroids(self) -> None:
        """>= 90 days of systemic corticosteroids within the last 365 days (pathway.md section 1)."""
        if not self.steroid_courses:
            return
        entry = self.vs.entries_by_id["fracture-long-term-steroids"][0]
        window = entry.valueset.window_days or 365
        ref_day = self.inputs.reference_date
        window_start = ref_day - timedelta(days=window)
        covered: set[date] = set()
        latest = None
        for start, end, evidence in self.steroid_courses:
            first, last = max(start, window_start), min(end, ref_day)
            if first > last:
                continue
            # Union of covered days (overlapping prescriptions count once); at most 366 per course.
            covered.update(first + timedelta(days=i) for i in range((last - first).days + 1))
            if latest is None or start > latest[0]:
                latest = (start, evidence)
        if len(covered) >= 90 and latest is not None:
            text = f"{len(covered)} days of systemic corticosteroids in the last {window} days"
            evidence = Evidence(**{**latest[1].__dict__, "text": text})
            self._red_flag(entry, evidence, kind="prolonged-corticosteroids",
                           label="Systemic corticosteroids >= 90 days in 12 months")


def modality_code(series: dict) -> str | None:
    modality = series.get("modality")
    if isinstance(modality, dict) and isinstance(modality.get("code"), str):
        return modality["code"].upper()
    return None


def parse_inputs(request: HookRequest, gathered: GatheredData, valuesets: ValueSets,
                 settings: dict, today: date) -> PathwayInputs:
    """FHIR JSON -> PathwayInputs. `today` is the fallback reference date (no authoredOn)."""
    return _Parser(request, gathered, valuesets, settings, today).run()


__all__ = ["iter_resources", "parse_date", "parse_inputs"]


def _one_per_valueset(matches):
    """The matches of a resource, one per value set (a resource with two codes of one set is
    one fact, not two)."""
    seen: set[str] = set()
    for entry in matches:
        if entry.valueset.id not in seen:
            seen.add(entry.valueset.id)
            yield entry


def validate(model, resource: dict) -> None:
    """Validate a selected resource with its fhir.resources R4B model, on the elements the
    pathway reads (UNREAD_ELEMENTS left out); raises when they are malformed."""
    model.model_validate({k: v for k, v in resource.items() if k not in UNREAD_ELEMENTS})
