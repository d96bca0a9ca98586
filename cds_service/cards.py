"""Cards, suggestions and system actions: pathway decisions -> the CDS Hooks 2.0 response body.

Role in the data flow: after `pathway.decide()`, inside `evaluation.Evaluator`. The wording lives
in `cards/` (one YAML file per topic plus `common.yaml`); its Jinja2 templates are compiled once
when the `CardRenderer` is built at start-up, and a missing topic or template fails the start-up,
not a request. Rendering is pure apart from the uuids it mints.

What it produces (pathway.md sections 3 and 3a; CDS Hooks 2.0 "CDS Service Response"):
- one card per decision with a topic: uuid, summary (<= 140 characters, naming the order),
  indicator, markdown detail citing the patient's own evidence, source {label, url, topic};
  suggestions with FHIR actions and `selectionBehavior: at-most-one`; override reasons where the
  card advises against the order;
- one system action per rated order: an update of the draft ServiceRequest carrying the Argonaut
  PAMA rating and consult-id extensions. Every update *suggestion* carries the rating the order
  would have after the update: the sandbox's PAMA tab crashes on an update without it.
No value in the output is null or an empty string, array or object (the sandbox and strict
clients reject them; FHIR forbids them in resources).
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from jinja2 import DictLoader, Environment, StrictUndefined, TemplateSyntaxError

from .inputs import Evidence, RedFlagFact
from .pathway import (
    DURATION_UNKNOWN,
    SUGGEST_DELETE,
    SUGGEST_DELETE_AND_REFER,
    SUGGEST_UPDATE_TO_MRI,
    TOPICS,
    OrderDecision,
    study_key,
)

SUMMARY_MAX = 140  # CDS Hooks 2.0 Card.summary: "<140 characters"
PAMA_RATING_URL = "http://fhir.org/argonaut/Extension/pama-rating"
PAMA_RATING_SYSTEM = "http://fhir.org/argonaut/CodeSystem/pama-rating"
PAMA_CONSULT_ID_URL = "http://fhir.org/argonaut/Extension/pama-rating-consult-id"
_PAMA_URLS = {PAMA_RATING_URL, PAMA_CONSULT_ID_URL}

_REQUIRED_TOPIC_KEYS = ("topic", "display", "summary", "detail", "source")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#|!~])")


class CardContentError(RuntimeError):
    """The card content files are incomplete or malformed (raised at start-up)."""


def new_uuid() -> str:
    return str(uuid.uuid4())


def prune(value: Any) -> Any:
    """Drop nulls and empty strings, arrays and objects, recursively (FHIR forbids them)."""
    if isinstance(value, dict):
        cleaned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if not _empty(v)}
    if isinstance(value, list):
        cleaned = [prune(v) for v in value]
        return [v for v in cleaned if not _empty(v)]
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, (list, dict)) and not value
    )


def _plain(text: str | None, limit: int = 200) -> str:
    """Patient-record text made safe for one line: no control characters, bounded length."""
    if not text:
        return ""
    text = " ".join(_CONTROL.sub(" ", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _md(text: str | None, limit: int = 200) -> str:
    """Patient-record text escaped for markdown: it must not turn into links, HTML or emphasis."""
    return _MD_SPECIAL.sub(r"\\\1", _plain(text, limit))


def _ref(text: str | None) -> str:
    """A resource reference shown inside `code` spans: no backticks, one line."""
    return _plain(text, 120).replace("`", "'")


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


@dataclass
class RenderedOrder:
    """The rendered outcome of one decision."""

    decision: OrderDecision
    card: dict | None = None
    card_uuid: str | None = None
    suggestion_uuids: tuple[str, ...] = ()
    consult_id: str | None = None
    system_action: dict | None = None


@dataclass
class _Topic:
    code: str
    display: str
    source: dict
    override_reasons: list[dict] = field(default_factory=list)
    suggestion_label: str | None = None
    priority_suggestion_label: str | None = None  # when only the priority changes (same study)
    contrast_suggestion_label: str | None = None  # the MRI without and with contrast alternative


class CardRenderer:
    """Card content loaded and compiled once; `render()` per hook call."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        common_path = self.directory / "common.yaml"
        if not common_path.is_file():
            raise CardContentError(f"card content file missing: {common_path}")
        self.common = self._load(common_path)
        for key in ("topic_system", "override_reason_system", "system_action_description",
                    "suggested_studies", "physical_therapy", "study_labels", "red_flag_groups",
                    "data_labels", "partials", "rating_labels", "acr_variants", "code_system_names"):
            if key not in self.common:
                raise CardContentError(f"{common_path.name}: missing key {key!r}")

        templates: dict[str, str] = dict(self.common["partials"])
        templates["system_action_description"] = self.common["system_action_description"]
        templates["physical_therapy_description"] = self.common["physical_therapy"]["description"]
        self.topics: dict[str, _Topic] = {}
        for code in TOPICS:
            path = self.directory / f"{code}.yaml"
            if not path.is_file():
                raise CardContentError(f"card content file missing: {path}")
            data = self._load(path)
            for key in _REQUIRED_TOPIC_KEYS:
                if not data.get(key):
                    raise CardContentError(f"{path.name}: missing key {key!r}")
            if data["topic"] != code:
                raise CardContentError(f"{path.name}: topic {data['topic']!r} should be {code!r}")
            source = data["source"]
            if not source.get("label"):
                raise CardContentError(f"{path.name}: source.label missing")
            reasons = data.get("override_reasons") or []
            for reason in reasons:
                if not reason.get("code") or not reason.get("display"):
                    raise CardContentError(f"{path.name}: every override reason needs code and display")
            self.topics[code] = _Topic(
                code=code,
                display=data["display"],
                source={"label": source["label"], "url": source.get("url")},
                override_reasons=[
                    {"code": r["code"], "system": self.common["override_reason_system"], "display": r["display"]}
                    for r in reasons
                ],
                suggestion_label=data.get("suggestion_label"),
                priority_suggestion_label=data.get("priority_suggestion_label"),
                contrast_suggestion_label=data.get("contrast_suggestion_label"),
            )
            templates[f"{code}/summary"] = data["summary"]
            templates[f"{code}/detail"] = data["detail"]
            if data.get("delete_description"):
                templates[f"{code}/delete_description"] = data["delete_description"]

        self.env = Environment(
            loader=DictLoader(templates), undefined=StrictUndefined, autoescape=False,
            trim_blocks=True, lstrip_blocks=True,
        )
        # Compile every template now: a syntax error fails the start-up, not a request.
        try:
            self.templates = {name: self.env.get_template(name) for name in templates}
        except TemplateSyntaxError as error:
            raise CardContentError(f"card template {error.name!r} line {error.lineno}: {error.message}") from None

    @staticmethod
    def _load(path: Path) -> dict:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise CardContentError(f"{path.name}: not valid YAML ({error})") from None
        if not isinstance(data, dict):
            raise CardContentError(f"{path.name}: expected a mapping")
        return data

    # --- Public ------------------------------------------------------------------------------

    def render(self, decisions: list[OrderDecision], patient_reference: str, reference_date: date) -> list[RenderedOrder]:
        rendered = []
        for decision in decisions:
            out = RenderedOrder(decision=decision)
            if decision.rating:
                out.consult_id = f"urn:uuid:{new_uuid()}"
                out.system_action = self._system_action(decision, out.consult_id)
            if decision.topic:
                out.card, out.suggestion_uuids = self._card(decision, patient_reference, reference_date)
                out.card_uuid = out.card["uuid"]
            rendered.append(out)
        return rendered

    @staticmethod
    def response(rendered: list[RenderedOrder]) -> dict:
        """The CDS Hooks response: `cards` always (required), system actions only when any."""
        body: dict[str, Any] = {"cards": [r.card for r in rendered if r.card]}
        actions = [r.system_action for r in rendered if r.system_action]
        if actions:
            body["systemActions"] = actions
            # The CDS Hooks sandbox and the Argonaut PAMA guidance read them here (pathway.md 3a).
            # The same list object twice: serialised twice, never mutated after this point.
            body["extension"] = {"systemActions": actions}
        return body

    # --- Names -------------------------------------------------------------------------------

    def study_label(self, modality: str, contrast: str) -> str:
        return self.common["study_labels"].get(study_key(modality, contrast), f"{modality} lumbar spine")

    def order_name(self, decision: OrderDecision) -> str:
        """The order as cards name it: the study's short label (code displays such as the CPT
        descriptors are too long for a 140-character summary); the detail adds the code."""
        order = decision.order
        return self.study_label(order.modality, order.contrast)

    # --- Cards -------------------------------------------------------------------------------

    def _card(self, decision: OrderDecision, patient_reference: str, reference_date: date) -> tuple[dict, tuple[str, ...]]:
        topic = self.topics[decision.topic]
        context = self._context(decision, reference_date)
        card: dict[str, Any] = {
            "uuid": new_uuid(),
            "summary": self._summary(decision.topic, context),
            "indicator": decision.indicator,
            "detail": self._detail(decision.topic, context),
            "source": {
                "label": topic.source["label"],
                "url": topic.source["url"],
                "topic": {
                    "system": self.common["topic_system"],
                    "code": topic.code,
                    "display": topic.display,
                },
            },
        }
        suggestions = self._suggestions(decision, topic, context, patient_reference)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        # Override reasons only where the card advises against the order as placed.
        if topic.override_reasons and decision.topic != DURATION_UNKNOWN:
            card["overrideReasons"] = copy.deepcopy(topic.override_reasons)
        return prune(card), tuple(s["uuid"] for s in suggestions)

    def _summary(self, topic: str, context: dict) -> str:
        template = self.templates[f"{topic}/summary"]
        name = context["order"]
        summary = _plain(template.render(context), 10_000)
        # Shorten the order's name (never the advice) until the summary fits.
        while len(summary) > SUMMARY_MAX and len(name) > 12:
            name = name[: max(11, len(name) - (len(summary) - SUMMARY_MAX) - 1)].rstrip() + "\u2026"
            summary = _plain(template.render({**context, "order": name}), 10_000)
        return summary if len(summary) <= SUMMARY_MAX else summary[: SUMMARY_MAX - 1] + "\u2026"

    def _detail(self, topic: str, context: dict) -> str:
        md_context = {**context, "order": _md(context["order"])}
        text = self.templates[f"{topic}/detail"].render(md_context)
        # Collapse the blank lines left by empty optional sections.
        return re.sub(r"\n{3,}", "\n\n", text).strip()

    def _evidence_item(self, evidence: Evidence) -> dict:
        names = self.common["code_system_names"]
        label = evidence.display or evidence.text or evidence.code or evidence.resource_type
        text = evidence.text if evidence.text and evidence.text != label else ""
        return {
            "label": _md(label),
            "code": _md(evidence.code, 40) if evidence.code else "",
            "system_name": _md(names.get(evidence.system or "", evidence.system or "code"), 60),
            "date": _iso(evidence.date),
            "text": _md(text),
            "reference": _ref(evidence.reference),
        }

    @staticmethod
    def _fact(fact: RedFlagFact) -> dict:
        return {
            "label": _md(fact.label),
            "date": _iso(fact.evidence.date),
            "reference": _ref(fact.evidence.reference),
        }

    def _context(self, decision: OrderDecision, reference_date: date) -> dict:
        order = decision.order
        common = self.common
        groups = []
        for group in decision.red_flag_groups_checked:
            info = common["red_flag_groups"].get(group, {"label": group, "checked": group})
            groups.append({
                "label": info["label"],
                "checked": info["checked"],
                "found": [self._fact(f) for f in decision.red_flags if f.group == group],
            })
        alternative = decision.alternative
        prior = decision.prior_imaging
        onset_evidence = self._evidence_item(decision.onset_evidence) if decision.onset_evidence else None
        return {
            "order": self.order_name(decision),
            "order_reference": _ref(order.reference),
            "order_code": (
                f"{self._evidence_item(order.code)['system_name']} {_md(order.code.code, 40)}"
                if order.code.code else ""
            ),
            "order_priority": common["priority_labels"].get(order.priority or "", _plain(order.priority, 20)),
            "rating": decision.rating or "",
            "rating_label": common["rating_labels"].get(decision.rating or "", "not rated"),
            "variant_label": common["acr_variants"].get(decision.acr_variant or "", "no ACR variant applies"),
            "reference_date": reference_date.isoformat(),
            "evidence": [self._evidence_item(e) for e in decision.evidence],
            "red_flag_groups": groups,
            "documented_absent": [self._fact(f) for f in decision.documented_absent],
            "unavailable_data": [common["data_labels"].get(k, _md(k, 40)) for k in decision.unavailable_data],
            "skipped_resources": [_ref(r) for r in decision.skipped_resources],
            "onset": _iso(decision.onset),
            "onset_is_lower_bound": decision.onset_is_lower_bound,
            "onset_evidence": onset_evidence,
            "days_since_onset": decision.days_since_onset,
            "weeks_since_onset": decision.weeks_since_onset,
            "six_weeks_date": _iso(decision.six_weeks_date),
            "alternative": self.study_label(alternative.modality, alternative.contrast) if alternative else "",
            "alternative_priority": common["priority_labels"].get(alternative.priority or "", "")
            if alternative else "",
            "alternative_rating_label": common["rating_labels"].get(alternative.rating, "") if alternative else "",
            "contrast_alternative": (
                self.study_label(decision.contrast_alternative.modality, decision.contrast_alternative.contrast)
                if decision.contrast_alternative else ""
            ),
            "prior_modality": prior.modality if prior else "",
            "prior_date": _iso(prior.evidence.date) if prior else "",
            "prior_reference": _ref(prior.evidence.reference) if prior else "",
            "prior_code": (
                f"{self._evidence_item(prior.evidence)['system_name']} {_md(prior.evidence.code, 40)}"
                if prior and prior.evidence.code else ""
            ),
            "prior_days": (reference_date - prior.evidence.date).days if prior and prior.evidence.date else "",
        }

    # --- Suggestions and actions -----------------------------------------------------------------

    def _suggestions(self, decision: OrderDecision, topic: _Topic, context: dict, patient_reference: str) -> list[dict]:
        kind = decision.suggestion
        if not kind or not topic.suggestion_label:
            return []
        order = decision.order
        actions: list[dict] = []
        label = topic.suggestion_label
        if kind == SUGGEST_UPDATE_TO_MRI and decision.alternative:
            alternative = decision.alternative
            if study_key(alternative.modality, alternative.contrast) == study_key(order.modality, order.contrast):
                label = topic.priority_suggestion_label or label  # same study, new priority
            actions.append({
                "type": "update",
                "description": label,
                "resource": self._updated_order(decision, alternative),
            })
        elif kind in (SUGGEST_DELETE, SUGGEST_DELETE_AND_REFER):
            describe = self.templates.get(f"{decision.topic}/delete_description")
            actions.append({
                "type": "delete",
                "description": _plain(describe.render(context)) if describe else topic.suggestion_label,
                "resourceId": [order.reference],
            })
            if kind == SUGGEST_DELETE_AND_REFER:
                actions.append({
                    "type": "create",
                    "description": _plain(self.templates["physical_therapy_description"].render(context)),
                    "resource": self._physical_therapy_referral(decision, patient_reference),
                })
        if not actions:
            return []
        suggestions = [{"label": label, "uuid": new_uuid(), "isRecommended": True, "actions": actions}]
        if decision.contrast_alternative and topic.contrast_suggestion_label:
            contrast_label = topic.contrast_suggestion_label
            suggestions.append({"label": contrast_label, "uuid": new_uuid(), "actions": [{
                "type": "update",
                "description": contrast_label,
                "resource": self._updated_order(decision, decision.contrast_alternative),
            }]})
        return suggestions

    def _order_resource(self, decision: OrderDecision) -> dict:
        """The client's draft ServiceRequest, cleaned of the empty values the sandbox sends."""
        order = decision.order
        resource = prune(copy.deepcopy(order.resource)) if order.resource else {}
        resource.setdefault("resourceType", "ServiceRequest")
        if "id" not in resource and "/" in order.reference:
            resource["id"] = order.reference.split("/", 1)[1]
        if not resource.get("code") and order.code.code:
            resource["code"] = prune({"coding": [{
                "system": order.code.system, "code": order.code.code, "display": order.code.display,
            }]})
        resource.setdefault("status", "draft")
        resource.setdefault("intent", "plan")
        return resource

    @staticmethod
    def _with_rating(resource: dict, rating: str, consult_id: str) -> dict:
        extensions = [e for e in resource.get("extension", []) if not (isinstance(e, dict) and e.get("url") in _PAMA_URLS)]
        extensions.append({
            "url": PAMA_RATING_URL,
            "valueCodeableConcept": {"coding": [{"system": PAMA_RATING_SYSTEM, "code": rating}]},
        })
        extensions.append({"url": PAMA_CONSULT_ID_URL, "valueUri": consult_id})
        resource["extension"] = extensions
        return resource

    def _system_action(self, decision: OrderDecision, consult_id: str) -> dict:
        resource = self._with_rating(self._order_resource(decision), decision.rating, consult_id)
        description = self.templates["system_action_description"].render(
            rating=decision.rating, order=self.order_name(decision)
        )
        return {"type": "update", "description": _plain(description), "resource": resource}

    def _updated_order(self, decision: OrderDecision, alternative) -> dict:
        """The order as the suggestion would leave it: the alternative MRI study, rated."""
        study = self.common["suggested_studies"][study_key(alternative.modality, alternative.contrast)]
        resource = self._order_resource(decision)
        resource["code"] = {
            "coding": [{"system": study["system"], "code": str(study["code"]), "display": study["display"]}],
            "text": study["display"],
        }
        if alternative.priority:
            resource["priority"] = alternative.priority
        return self._with_rating(resource, alternative.rating, f"urn:uuid:{new_uuid()}")

    def _physical_therapy_referral(self, decision: OrderDecision, patient_reference: str) -> dict:
        pt = self.common["physical_therapy"]
        reasons = []
        for evidence in decision.evidence:
            if evidence.code and evidence.system:
                coding = prune({"system": evidence.system, "code": evidence.code, "display": evidence.display})
                if {"coding": [coding]} not in reasons:
                    reasons.append({"coding": [coding]})
        resource = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "priority": "routine",
            "code": {"coding": [{"system": pt["system"], "code": str(pt["code"]), "display": pt["display"]}],
                     "text": pt["display"]},
            "subject": {"reference": patient_reference},
            "reasonCode": reasons,
        }
        authored = decision.order.authored_on
        if authored:
            resource["authoredOn"] = authored.isoformat()
        return prune(resource)
