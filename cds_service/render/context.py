"""The values a card's templates are rendered with: the decision in plain, escaped words.

Role in the data flow: render stage. Every patient-record value is escaped for markdown here
(`render.text.md`), so a template can never turn record text into links, HTML or emphasis.
"""

from __future__ import annotations

from datetime import date

from cds_service.decide.outcomes import OrderDecision
from cds_service.decide.variants import study_key
from cds_service.read.inputs import Evidence, RedFlagFact
from cds_service.render.text import iso, md, plain, ref


class CardContext:
    """Builds the template context of one decision, with the labels of `common.yaml`."""

    def __init__(self, common: dict):
        self.common = common

    def study_label(self, modality: str, contrast: str) -> str:
        return self.common["study_labels"].get(study_key(modality, contrast), f"{modality} lumbar spine")

    def order_name(self, decision: OrderDecision) -> str:
        """The order as cards name it: the study's short label (code displays such as the CPT
        descriptors are too long for a 140-character summary); the detail adds the code."""
        order = decision.order
        return self.study_label(order.modality, order.contrast)

    def evidence_item(self, evidence: Evidence) -> dict:
        names = self.common["code_system_names"]
        label = evidence.display or evidence.text or evidence.code or evidence.resource_type
        text = evidence.text if evidence.text and evidence.text != label else ""
        return {
            "label": md(label),
            "code": md(evidence.code, 40) if evidence.code else "",
            "system_name": md(names.get(evidence.system or "", evidence.system or "code"), 60),
            "date": iso(evidence.date),
            "text": md(text),
            "reference": ref(evidence.reference),
        }

    def gap(self, key: str, why: str | None) -> str:
        """One "what could not be checked" phrase: "temperature and weight (the EHR refused the search)"."""
        label = self.common["data_labels"].get(key.rstrip("0123456789"), md(key, 40))
        reason = self.common["gap_reasons"].get(why or "", "")
        return f"{label} ({reason})" if reason else label

    @staticmethod
    def fact(fact: RedFlagFact) -> dict:
        return {
            "label": md(fact.label),
            "date": iso(fact.evidence.date),
            "reference": ref(fact.evidence.reference),
        }

    def build(self, decision: OrderDecision, reference_date: date) -> dict:
        order = decision.order
        common = self.common
        groups = []
        for group in decision.red_flag_groups_checked:
            info = common["red_flag_groups"].get(group, {"label": group, "checked": group})
            groups.append({
                "label": info["label"],
                "checked": info["checked"],
                "found": [self.fact(f) for f in decision.red_flags if f.group == group],
            })
        alternative = decision.alternative
        prior = decision.prior_imaging
        onset_evidence = self.evidence_item(decision.onset_evidence) if decision.onset_evidence else None
        return {
            "order": self.order_name(decision),
            "order_reference": ref(order.reference),
            "order_code": (
                f"{self.evidence_item(order.code)['system_name']} {md(order.code.code, 40)}"
                if order.code.code else ""
            ),
            "order_priority": common["priority_labels"].get(order.priority or "", plain(order.priority, 20)),
            "rating": decision.rating or "",
            "rating_label": common["rating_labels"].get(decision.rating or "", "not rated"),
            "variant_label": common["acr_variants"].get(decision.acr_variant or "", "no ACR variant applies"),
            "reference_date": reference_date.isoformat(),
            "evidence": [self.evidence_item(e) for e in decision.evidence],
            "red_flag_groups": groups,
            "documented_absent": [self.fact(f) for f in decision.documented_absent],
            "unavailable_data": [self.gap(key, decision.incomplete_data.get(key)) for key in decision.unavailable_data],
            "rating_withheld": decision.rating_withheld,
            "skipped_resources": [ref(r) for r in decision.skipped_resources],
            "onset": iso(decision.onset),
            "onset_is_lower_bound": decision.onset_is_lower_bound,
            "onset_evidence": onset_evidence,
            "days_since_onset": decision.days_since_onset,
            "weeks_since_onset": decision.weeks_since_onset,
            "six_weeks_date": iso(decision.six_weeks_date),
            "alternative": self.study_label(alternative.modality, alternative.contrast) if alternative else "",
            "alternative_priority": common["priority_labels"].get(alternative.priority or "", "")
            if alternative else "",
            "alternative_rating_label": common["rating_labels"].get(alternative.rating, "") if alternative else "",
            "contrast_alternative": (
                self.study_label(decision.contrast_alternative.modality, decision.contrast_alternative.contrast)
                if decision.contrast_alternative else ""
            ),
            "prior_modality": prior.modality if prior else "",
            "prior_date": iso(prior.evidence.date) if prior else "",
            "prior_reference": ref(prior.evidence.reference) if prior else "",
            "prior_code": (
                f"{self.evidence_item(prior.evidence)['system_name']} {md(prior.evidence.code, 40)}"
                if prior and prior.evidence.code else ""
            ),
            "prior_days": (reference_date - prior.evidence.date).days if prior and prior.evidence.date else "",
        }
