"""Cards, suggestions and system actions: pathway decisions -> the CDS Hooks 2.0 response body.

Role in the data flow: after `decide.rules.decide()`, inside `pipeline.Evaluator`. The wording lives
in `cards/` (one YAML file per topic plus `common.yaml`); its Jinja2 templates are compiled once
when the `CardRenderer` is built at start-up, and a missing topic or template fails the start-up,
not a request. Rendering is pure apart from the uuids it mints.

What it produces (clinical-specification.md §7 and §7.6; CDS Hooks 2.0 "CDS Service Response"):
- one card per decision with a topic: uuid, summary (<= 140 characters, naming the order),
  indicator, a short markdown detail saying in plain words what was found, when and where (no
  resource ids: those go to the card's `extension`, `render.evidence`), source {label, url,
  topic}, the guideline as an absolute link;
  suggestions of one FHIR action each, `selectionBehavior: any` (what Epic supports; removing
  and referring may both be taken), `at-most-one` only where two suggestions update the same
  order to different studies; override reasons where the card advises against the order;
- one system action per rated order: an update of the draft ServiceRequest carrying the Argonaut
  PAMA rating and consult-id extensions. Every update *suggestion* carries the rating the order
  would have after the update: the sandbox's PAMA tab crashes on an update without it.
No value in the output is null or an empty string, array or object (the sandbox and strict
clients reject them; FHIR forbids them in resources).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.decide.outcomes import OrderDecision
from cds_service.render.actions import (
    PAMA_CONSULT_ID_URL,
    PAMA_RATING_SYSTEM,
    PAMA_RATING_URL,
    order_resource,
    with_rating,
)
from cds_service.render.content import CardContent, CardContentError
from cds_service.render.context import CardContext
from cds_service.render.evidence import typeset
from cds_service.render.suggestions import build_suggestions
from cds_service.render.text import SUMMARY_MAX, md, new_uuid, plain, prune
from cds_service.vocabulary import Topic

__all__ = ["PAMA_CONSULT_ID_URL", "PAMA_RATING_SYSTEM", "PAMA_RATING_URL", "CardContentError", "CardRenderer",
           "RenderedOrder"]


@dataclass
class RenderedOrder:
    """The rendered outcome of one decision."""

    decision: OrderDecision
    card: dict | None = None
    card_uuid: str | None = None
    suggestion_uuids: tuple[str, ...] = ()
    consult_id: str | None = None
    system_action: dict | None = None


def selection_behavior(suggestions: list[dict]) -> str:
    """`any` unless two suggestions update the same resource (alternative studies for one order:
    taking both would leave whichever the client applied last), then `at-most-one`."""
    updated = [a["resource"].get("id") for s in suggestions for a in s["actions"] if a["type"] == "update"]
    return "at-most-one" if len(updated) != len(set(updated)) else "any"


class CardRenderer:
    """Card content loaded and compiled once; `render()` per hook call."""

    def __init__(self, directory: Path):
        self.content = CardContent(Path(directory))
        self.common = self.content.common
        self.topics = self.content.topics
        self.templates = self.content.templates
        self.context = CardContext(self.common)

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
            # The CDS Hooks sandbox and the Argonaut PAMA guidance read them here (clinical-specification.md §7.6).
            # The same list object twice: serialised twice, never mutated after this point.
            body["extension"] = {"systemActions": actions}
        return body

    def study_label(self, modality: str, contrast: str) -> str:
        return self.context.study_label(modality, contrast)

    def order_name(self, decision: OrderDecision) -> str:
        return self.context.order_name(decision)

    def _card(self, decision: OrderDecision, patient_reference: str, reference_date: date) -> tuple[dict, tuple[str, ...]]:
        topic = self.topics[decision.topic]
        context = self.context.build(decision, reference_date)
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
        if topic.links:
            card["links"] = copy.deepcopy(topic.links)
        # The evidence for integrators and the governance store: references, codes, dates (§7.3).
        card["extension"] = self.context.words.extension(decision, reference_date)
        suggestions = build_suggestions(self.content, decision, topic, context, patient_reference)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = selection_behavior(suggestions)
        # Override reasons only where the card advises against the order as placed.
        if topic.override_reasons and decision.topic != Topic.DURATION_UNKNOWN:
            card["overrideReasons"] = copy.deepcopy(topic.override_reasons)
        return prune(card), tuple(s["uuid"] for s in suggestions)

    def _summary(self, topic: str, context: dict) -> str:
        template = self.templates[f"{topic}/summary"]
        name = context["order"]
        summary = typeset(plain(template.render(context), 10_000))
        # Shorten the order's name (never the advice) until the summary fits.
        while len(summary) > SUMMARY_MAX and len(name) > 12:
            name = name[: max(11, len(name) - (len(summary) - SUMMARY_MAX) - 1)].rstrip() + "\u2026"
            summary = typeset(plain(template.render({**context, "order": name}), 10_000))
        return summary if len(summary) <= SUMMARY_MAX else summary[: SUMMARY_MAX - 1] + "\u2026"

    def _detail(self, topic: str, context: dict) -> str:
        md_context = {**context, "order": md(context["order"])}
        text = self.templates[f"{topic}/detail"].render(md_context)
        # Collapse the blank lines left by empty optional sections.
        return typeset(re.sub(r"\n{3,}", "\n\n", text).strip())

    def _system_action(self, decision: OrderDecision, consult_id: str) -> dict:
        resource = with_rating(order_resource(decision), decision.rating, consult_id)
        description = self.templates["system_action_description"].render(
            rating=decision.rating, order=self.order_name(decision)
        )
        return {"type": "update", "description": plain(description), "resource": resource}
