"""Card suggestions: what the clinician can do instead, as FHIR actions.

Role in the data flow: render stage (docs/clinical-specification.md section 7.4).
"""

from __future__ import annotations

from cds_service.decide.outcomes import OrderDecision
from cds_service.decide.variants import study_key
from cds_service.render.actions import physical_therapy_referral, updated_order
from cds_service.render.content import CardContent, Topic
from cds_service.render.text import new_uuid, plain
from cds_service.vocabulary import SuggestionKind


def build_suggestions(content: CardContent, decision: OrderDecision, topic: Topic, context: dict,
                      patient_reference: str) -> list[dict]:
    """The card's suggestions: the better study (an update of the order), or removing the order with
    a physical therapy referral; a second update where contrast is usually appropriate too."""
    kind = decision.suggestion
    if not kind or not topic.suggestion_label:
        return []
    order = decision.order
    actions: list[dict] = []
    label = topic.suggestion_label
    if kind == SuggestionKind.UPDATE_TO_MRI and decision.alternative:
        alternative = decision.alternative
        if study_key(alternative.modality, alternative.contrast) == study_key(order.modality, order.contrast):
            label = topic.priority_suggestion_label or label  # same study, new priority
        actions.append({
            "type": "update",
            "description": label,
            "resource": updated_order(decision, alternative, content.common["suggested_studies"]),
        })
    elif kind in (SuggestionKind.DELETE, SuggestionKind.DELETE_AND_REFER):
        describe = content.templates.get(f"{decision.topic}/delete_description")
        actions.append({
            "type": "delete",
            "description": plain(describe.render(context)) if describe else topic.suggestion_label,
            "resourceId": [order.reference],
        })
        if kind == SuggestionKind.DELETE_AND_REFER:
            actions.append({
                "type": "create",
                "description": plain(content.templates["physical_therapy_description"].render(context)),
                "resource": physical_therapy_referral(decision, patient_reference, content.common["physical_therapy"]),
            })
    if not actions:
        return []
    suggestions = [{"label": label, "uuid": new_uuid(), "isRecommended": True, "actions": actions}]
    if decision.contrast_alternative and topic.contrast_suggestion_label:
        contrast_label = topic.contrast_suggestion_label
        suggestions.append({"label": contrast_label, "uuid": new_uuid(), "actions": [{
            "type": "update",
            "description": contrast_label,
            "resource": updated_order(decision, decision.contrast_alternative, content.common["suggested_studies"]),
        }]})
    return suggestions
