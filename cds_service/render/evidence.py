"""The evidence of a decision twice over: in plain words for the clinician, machine-readable for
integrators (docs/clinical-specification.md §7.3).

Role in the data flow: render stage. A card's summary and detail never show a FHIR resource id
or an internal code; they say what was found, when and where ("low back pain on the problem list
since 17 Nov 2026"). The references, codes and dates go into the card's `extension`, under
`EXTENSION_KEY`, for the EHR and the governance store. Record text is escaped for markdown here.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from cds_service.decide.outcomes import OrderDecision
from cds_service.read.inputs import Evidence, RedFlagFact
from cds_service.render.text import md, plain

EXTENSION_KEY = "org.lumbar-imaging-cds.evidence"
# SNOMED CT semantic tags are not words a clinician reads: "Low back pain (finding)" -> "Low back pain".
_SEMANTIC_TAG = re.compile(r"\s*\((finding|disorder|procedure|regime/therapy|situation|observable entity)\)\s*$", re.I)
# Typography (UCUM units and ASCII stand-ins as a clinician writes them).
_TYPOGRAPHY = ((">=", "≥"), ("<=", "≤"), (" -- ", " — "))
_UNITS = ((re.compile(r"(\d) ?Cel\b"), r"\1 °C"), (re.compile(r"(\d) ?\[degF\]"), r"\1 °F"))


def day(value: date | None) -> str:
    """A date as a clinician reads it: 17 Nov 2026."""
    return f"{value.day} {value:%b %Y}" if value else ""


def typeset(text: str) -> str:
    for old, new in _TYPOGRAPHY:
        text = text.replace(old, new)
    for pattern, new in _UNITS:
        text = pattern.sub(new, text)
    return text


_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def _as_day(match: re.Match) -> str:
    try:
        return day(date(int(match[1]), int(match[2]), int(match[3])))
    except ValueError:
        return match[0]


def words(text: str | None, limit: int = 80) -> str:
    """Record or value-set text as card words: semantic tag dropped, typeset, dates as a
    clinician writes them (2026-11-17 -> 17 Nov 2026), escaped."""
    return md(_ISO_DATE.sub(_as_day, typeset(_SEMANTIC_TAG.sub("", plain(text, 200)))), limit)


class EvidenceWords:
    """Plain-words phrases and the machine-readable extension, with `common.yaml`'s labels."""

    def __init__(self, common: dict):
        self.found_in = common.get("found_in") or {}

    def where(self, evidence: Evidence, order_reference: str) -> str:
        if evidence.reference == order_reference and evidence.resource_type == "ServiceRequest":
            return self.found_in.get("order-reason", "as the reason for this order")
        if "free text" in (evidence.display or ""):
            return self.found_in.get("note", "in a clinical note")
        return self.found_in.get(evidence.resource_type, "in the record")

    def phrase(self, evidence: Evidence, order_reference: str, label: str | None = None,
               since: date | None = None) -> str:
        """'<what> <where> <when>': 'urinary retention on the problem list, 3 Nov 2026'."""
        display = evidence.display or evidence.text or "a record"
        if "free text" in display:
            display = display.split(" (")[0]
            if display.lower() == "reason for the order" and evidence.text:
                display = evidence.text  # the order's reason as written: its words are the evidence
        what = words(label or display)
        if evidence.recognised_by == "name" and not label:
            # A medicine known by its name only (§3.7): "naproxen (by name)".
            what += f" {self.found_in.get('by-name', '(by name)')}"
        measured = evidence.text if evidence.text and evidence.text[:1].isupper() and any(
            ch.isdigit() for ch in evidence.text) and display != evidence.text else ""
        if measured:
            measured = measured.strip().rstrip(".")
            if measured[1:2].islower():  # "Body temperature 38.4" -> "body temperature"; "PMH: ..." stays
                measured = measured[:1].lower() + measured[1:]
            what += f" ({words(measured)})"
        text = f"{what} {self.where(evidence, order_reference)}"
        when = since or evidence.date
        if when and not (evidence.reference == order_reference and evidence.resource_type == "ServiceRequest"):
            text += f" since {day(when)}" if since else f", {day(when)}"
        return text

    def fact(self, fact: RedFlagFact, order_reference: str) -> str:
        return self.phrase(fact.evidence, order_reference, label=fact.label)

    @staticmethod
    def record(evidence: Evidence, role: str) -> dict:
        item = {"role": role, "reference": evidence.reference, "resourceType": evidence.resource_type,
                "system": evidence.system, "code": evidence.code, "display": evidence.display,
                "date": evidence.date.isoformat() if evidence.date else None,
                "recognisedBy": evidence.recognised_by}
        return {k: v for k, v in item.items() if v}

    def extension(self, decision: OrderDecision, reference_date: date) -> dict:
        """The card's evidence for integrators: every reference, code and date the card rests on."""
        items = []
        if decision.onset_evidence:
            items.append(self.record(decision.onset_evidence, "episode"))
        items += [self.record(f.evidence, f"red-flag:{f.group}:{f.kind}") for f in decision.red_flags]
        items += [self.record(e, "management") for e in decision.management]
        if decision.prior_imaging:
            items.append(self.record(decision.prior_imaging.evidence, "prior-imaging"))
        items += [self.record(e, "prior-surgery") for e in decision.prior_surgery]
        seen = {(i["role"], i["reference"]) for i in items}
        items += [self.record(e, "evidence") for e in decision.evidence
                  if ("evidence", e.reference) not in seen and not any(i["reference"] == e.reference for i in items)]
        body = {
            "order": decision.order.reference,
            "orderCode": self.record(decision.order.code, "order"),
            "referenceDate": reference_date.isoformat(),
            "acrVariant": decision.acr_variant,
            "rating": decision.rating,
            "onset": decision.onset.isoformat() if decision.onset else None,
            "onsetIsLowerBound": decision.onset_is_lower_bound or None,
            "evidence": items,
            "documentedAbsent": [self.record(f.evidence, f"absent:{f.group}:{f.kind}") for f in decision.documented_absent],
            "notChecked": dict(decision.incomplete_data) or None,
            "ratingWithheld": decision.rating_withheld or None,
            "skippedRecords": list(decision.skipped_resources),
        }
        return {EXTENSION_KEY: body}


def reassess(decision: OrderDecision, reference_date: date) -> date:
    """When to look again: 6 weeks reached (under 6 weeks), else 6 weeks of management from now."""
    if decision.six_weeks_date and decision.six_weeks_date > reference_date:
        return decision.six_weeks_date
    return reference_date + timedelta(days=42)
