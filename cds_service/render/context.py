"""The values a card's templates are rendered with: the decision in plain, escaped words.

Role in the data flow: render stage. Every patient-record value is escaped for markdown here
(`render.text.md`), so a template can never turn record text into links, HTML or emphasis. The
values say what was found, when and where, never a resource id or an internal code
(docs/clinical-specification.md §7.3); `render.evidence` builds the phrases and the card's
machine-readable `extension`.
"""

from __future__ import annotations

from datetime import date, timedelta

from cds_service.decide.outcomes import OrderDecision
from cds_service.decide.variants import study_key
from cds_service.render.evidence import EvidenceWords, day, reassess, words
from cds_service.render.text import md, plain
from cds_service.vocabulary import Contrast, Modality, RedFlagGroup, Topic


def unique(phrases) -> list[str]:
    """Phrases in order, each once (two codings of one record read as the same words)."""
    seen: dict[str, str] = {}
    for phrase in phrases:
        seen.setdefault(phrase.lower(), phrase)
    return list(seen.values())


class CardContext:
    """Builds the template context of one decision, with the labels of `common.yaml`."""

    def __init__(self, common: dict):
        self.common = common
        self.words = EvidenceWords(common)

    def study_label(self, modality: str, contrast: str) -> str:
        return self.common["study_labels"].get(study_key(modality, contrast), f"{modality} lumbar spine")

    def order_name(self, decision: OrderDecision) -> str:
        """The order as cards name it: the study's short label (code displays such as the CPT
        descriptors are too long for a 140-character summary)."""
        order = decision.order
        return self.study_label(order.modality, order.contrast)

    def gap(self, key: str, why: str | None) -> str:
        """One "what could not be checked" phrase: "temperature and weight (the EHR refused the search)"."""
        label = self.common["data_labels"].get(key.rstrip("0123456789"), md(key, 40))
        reason = self.common["gap_reasons"].get(why or "", "")
        return f"{label} ({reason})" if reason else label

    def gaps(self, decision: OrderDecision) -> list[str]:
        """What could not be checked, grouped by why: "procedures, prescriptions (the EHR refused
        the search)"; each data group named once (observationFindings2 is observationFindings)."""
        by_reason: dict[str, list[str]] = {}
        for key in decision.unavailable_data:
            label = self.common["data_labels"].get(key.rstrip("0123456789"), md(key, 40))
            labels = by_reason.setdefault(decision.incomplete_data.get(key) or "", [])
            if label not in labels:
                labels.append(label)
        out = []
        for why, labels in by_reason.items():
            reason = self.common["gap_reasons"].get(why, "")
            out.append(f"{', '.join(labels)} ({reason})" if reason else ", ".join(labels))
        return out

    def screen(self, decision: OrderDecision) -> str:
        """The red-flag screen as one line: "Screened in the record: cauda equina, ...: none found"."""
        names = {g: info.get("short", info["label"]) for g, info in self.common["red_flag_groups"].items()}
        found = decision.red_flag_groups_found
        clear = [names.get(g, g) for g in decision.red_flag_groups_checked if g not in found]
        parts = []
        if clear:
            parts.append(f"{', '.join(clear)}: none found")
        if found:
            parts.append(f"found: {', '.join(names.get(g, g) for g in found)}")
        if decision.documented_absent:
            absent = sorted({words(f.label, 40).lower() for f in decision.documented_absent})
            parts.append(f"documented absent: {', '.join(absent)}")
        return "Screened in the record: " + "; ".join(parts)

    def onset_phrase(self, decision: OrderDecision) -> str:
        evidence = decision.onset_evidence
        if evidence is None or decision.onset is None:
            return ""
        ref = decision.order.reference
        if decision.onset_is_lower_bound:
            return (f"{words(evidence.display or evidence.text or 'back pain')} {self.words.where(evidence, ref)}, "
                    f"recorded {day(decision.onset)} (onset not recorded)")
        return self.words.phrase(evidence, ref, since=decision.onset)

    def build(self, decision: OrderDecision, reference_date: date) -> dict:
        order = decision.order
        common = self.common
        ref = order.reference
        alternative = decision.alternative
        prior = decision.prior_imaging
        onset_ref = decision.onset_evidence.reference if decision.onset_evidence else None
        cauda = [f for f in decision.red_flags if f.group == RedFlagGroup.CAUDA_EQUINA]
        signs = cauda if decision.topic == Topic.CAUDA_EQUINA_RISK else decision.red_flags
        key = study_key(order.modality, order.contrast)
        return {
            "order": self.order_name(decision),
            "order_is_ct": order.modality in (Modality.CT, Modality.CT_MYELOGRAPHY),
            "order_is_xr": order.modality == Modality.XR,
            "order_is_mri": order.modality == Modality.MRI,
            "order_is_mri_without": key == study_key(Modality.MRI, Contrast.WITHOUT),
            "order_is_stat": order.priority == "stat",
            "order_priority": common["priority_labels"].get(order.priority or "", plain(order.priority, 20)),
            "rating": decision.rating or "",
            "rating_label": common["rating_labels"].get(decision.rating or "", "not rated"),
            "variant": decision.acr_variant or "",
            "variant_label": common["acr_variants"].get(decision.acr_variant or "", "no ACR variant applies"),
            "reference_date": day(reference_date),
            "signs": unique(self.words.fact(f, ref) for f in signs),
            "why": unique(self.words.phrase(e, ref) for e in decision.evidence
                          if e.reference != onset_ref and e not in decision.management),
            "management": unique(self.words.phrase(e, ref) for e in decision.management),
            "screen": self.screen(decision),
            "unavailable_data": self.gaps(decision),
            "rating_withheld": decision.rating_withheld,
            "skipped_count": len(decision.skipped_resources),
            "onset": day(decision.onset),
            "onset_phrase": self.onset_phrase(decision),
            "onset_is_lower_bound": decision.onset_is_lower_bound,
            "days_since_onset": decision.days_since_onset,
            "weeks_since_onset": decision.weeks_since_onset,
            "six_weeks_date": day(decision.six_weeks_date),
            "reassess_date": day(reassess(decision, reference_date)),
            "alternative": self.study_label(alternative.modality, alternative.contrast) if alternative else "",
            "alternative_priority": common["priority_labels"].get(alternative.priority or "", "")
            if alternative else "",
            "alternative_rating_label": common["rating_labels"].get(alternative.rating, "") if alternative else "",
            "contrast_alternative": (
                self.study_label(decision.contrast_alternative.modality, decision.contrast_alternative.contrast)
                if decision.contrast_alternative else ""
            ),
            "prior_modality": prior.modality if prior else "",
            "prior_date": day(prior.evidence.date) if prior else "",
            "prior_where": self.words.where(prior.evidence, ref) if prior else "",
            "prior_days": (reference_date - prior.evidence.date).days if prior and prior.evidence.date else "",
            "prior_window_ends": day(prior.evidence.date + timedelta(days=365)) if prior and prior.evidence.date else "",
        }
