"""The state shared by the record-family readers of one hook call, and the selection machinery.

Role in the data flow: read stage. `ReadContext` holds the `PathwayInputs` being built and the
value-set lookups every reader uses: a resource is selected by its codings (`lookup`), accepted
when it is this patient's and valid (`accept`), and every fact cites the resource's own coding
(`evidence`). A resource of another patient is never evidence (docs/clinical-specification.md
section 3.9).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cds_service.gather.prefetch import GatheredData
from cds_service.hooks.envelope import HookRequest
from cds_service.read.fhir import MODELS, codings, concepts_of, ref_of, text_of, validate
from cds_service.read.inputs import Evidence, PathwayInputs, RedFlagFact
from cds_service.read.valuesets import Entry, ValueSets


@dataclass(frozen=True, eq=False)
class Hit:
    """A value-set entry matched by one of the resource's own codings (the coding is cited)."""

    entry: Entry
    coding: dict

    @property
    def valueset(self):
        return self.entry.valueset

    def attr(self, name: str, default: Any = None) -> Any:
        return self.entry.attr(name, default)


@dataclass
class ReadContext:
    """The state of reading one hook call's records: the inputs being built, the patient's
    references, and what the record-family readers collect for the trends read at the end."""

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
    # Free text (clinical-specification.md §9): the TextReader (None: text is not read), the
    # onsets durations in text give, and keys whose text could not be read (key -> why).
    text_reader: Any = None
    text_onsets: list[tuple[date, Evidence]] = field(default_factory=list)
    text_gaps: dict[str, str] = field(default_factory=dict)
    # Medications by 'Medication/<id>' and fullUrl, for medicationReference (§3.7): gather's
    # index, else built from the gathered data on first use (read/medications.py).
    medications: dict[str, dict] | None = None



    def lookup(self, concepts: Iterable[dict], purposes: frozenset[str] | None = None) -> tuple[Hit, ...]:
        found: list[Hit] = []
        for concept in concepts:
            for coding in codings(concept):
                for entry in self.vs.lookup_coding(coding):
                    if purposes is None or entry.valueset.purpose in purposes:
                        found.append(Hit(entry, coding))
        return tuple(found)

    def select(self, resource: dict, full_url: str | None, concepts: Iterable[dict],
               ignored_statuses: frozenset[str], purposes: frozenset[str] | None = None
               ) -> tuple[tuple[Hit, ...], str] | None:
        """The value-set hits and the reference of a resource that counts: its codes match, its
        status is not one the reader ignores, and it is this patient's and valid. None otherwise."""
        matches = self.lookup(concepts, purposes)
        if not matches or resource.get("status") in ignored_statuses:
            return None
        ref = self.accept(resource, full_url)
        return None if ref is None else (matches, ref)

    def is_other_patient(self, resource: dict) -> bool:
        for key in ("subject", "patient"):
            ref = resource.get(key)
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                reference = ref["reference"].split("/_history")[0]
                return not (reference in self.patient_refs or reference.endswith(self.patient_suffix))
        return False


    def accept(self, resource: dict, full_url: str | None) -> str | None:
        """Reference of a selected resource when it is this patient's and valid; else None."""
        ref = ref_of(resource, full_url)
        dedupe = f"{ref}|{full_url}" if resource.get("id") is None else ref
        if dedupe in self.seen:
            return None
        self.seen.add(dedupe)
        if self.is_other_patient(resource):
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


    def evidence(self, ref: str, resource: dict, hit: Hit, when: date | None,
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


    def red_flag(self, entry: Entry | Hit, evidence: Evidence, negated: bool = False,
                  kind: str | None = None, label: str | None = None,
                  window_days: int | None | str = "valueset") -> None:
        valueset = entry.valueset
        self.inputs.red_flags.append(RedFlagFact(
            group=valueset.group, kind=kind or valueset.kind, label=label or valueset.label,
            evidence=evidence,
            window_days=valueset.window_days if window_days == "valueset" else window_days,
            negated=negated,
        ))


    def laterality(self, resource: dict, entries: Iterable[Hit]) -> frozenset[str]:
        sides: set[str] = set()
        for entry in entries:
            if entry.attr("laterality"):
                sides.add(entry.attr("laterality"))
        sites = concepts_of(resource.get("bodySite"))
        for entry in self.lookup(sites, frozenset({"laterality"})):
            sides.add(entry.attr("laterality"))
        patterns = self.vs["laterality"].extra.get("text_patterns", {})
        text = " ".join([text_of(resource.get("code"))] + [text_of(s) for s in sites]).lower()
        for side, words in patterns.items():
            if any(re.search(rf"\b{re.escape(w)}\b", text) for w in words):
                sides.add(side)
        if "bilateral" in sides:
            sides |= {"left", "right"}
        sides.discard("bilateral")
        return frozenset(sides)


    def site_matches(self, resource: dict, site_valueset: str) -> bool:
        sites = concepts_of(resource.get("bodySite"))
        for entry in self.lookup(sites, frozenset({"body-site"})):
            if entry.valueset.id == site_valueset:
                return True
        notes = [n.get("text") for n in resource.get("note") or [] if isinstance(n, dict)]
        text = " ".join([text_of(resource.get("code"))] + [text_of(s) for s in sites]
                        + [n for n in notes if isinstance(n, str)]).lower()
        return any(p in text for p in self.vs[site_valueset].extra.get("text_patterns", []))


    def lacks_required_site(self, resource: dict, valueset) -> bool:
        """A sign that counts only at a body site (R20.x: saddle / perineal) found elsewhere."""
        site = valueset.extra.get("requires_site")
        return bool(site) and not self.site_matches(resource, site["valueset"])
