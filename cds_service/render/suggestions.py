"""Card suggestions: what the clinician can do instead, as FHIR actions.

Role in the data flow: render stage (docs/clinical-specification.md section 7.4). Each suggestion
holds exactly one action, and each action's `description` reads on its own (it names the order
and what happens to it): Epic applies one action per suggestion and shows the description, not
the label. Removing the order and referring to physical therapy are two suggestions, so a client
may take either or both (`selectionBehavior: any`, set by `render.cards`).
"""

from __future__ import annotations

from cds_service.decide.outcomes import Alternative, OrderDecision
from cds_service.decide.variants import study_key
from cds_service.render.actions import physical_therapy_referral, updated_order
from cds_service.render.content import CardContent, Topic
from cds_service.render.text import new_uuid, plain
from cds_service.vocabulary import SuggestionKind


def build_suggestions(content: CardContent, decision: OrderDecision, topic: Topic, context: dict,
                      patient_reference: str) -> list[dict]:
    """The card's suggestions, one action each: the better study (an update of the order), or
    removing the order and, as a suggestion of its own, a physical therapy referral; a second
    update where contrast is usually appropriate too."""
    kind = decision.suggestion
    if not kind or not topic.suggestion_label:
        return []
    suggestions: list[dict] = []
    if kind == SuggestionKind.UPDATE_TO_MRI and decision.alternative:
        suggestions.append(_update(content, decision, decision.alternative, topic, context))
    elif kind in (SuggestionKind.DELETE, SuggestionKind.DELETE_AND_REFER):
        describe = content.templates.get(f"{decision.topic}/delete_description")
        suggestions.append(_suggestion(topic.suggestion_label, {
            "type": "delete",
            "description": plain(describe.render(context)) if describe else topic.suggestion_label,
            "resourceId": [decision.order.reference],
        }))
        if kind == SuggestionKind.DELETE_AND_REFER:
            suggestions.append(_suggestion(topic.referral_suggestion_label or content.common["physical_therapy"]["display"], {
                "type": "create",
                "description": plain(content.templates["physical_therapy_description"].render(context)),
                "resource": physical_therapy_referral(decision, patient_reference, content.common["physical_therapy"]),
            }))
    if not suggestions:
        return []
    suggestions[0]["isRecommended"] = True
    if decision.contrast_alternative and topic.contrast_suggestion_label:
        suggestions.append(_update(content, decision, decision.contrast_alternative, topic, context,
                                   label=topic.contrast_suggestion_label))
    return suggestions


def _suggestion(label: str, action: dict) -> dict:
    return {"label": label, "uuid": new_uuid(), "actions": [action]}


def _update(content: CardContent, decision: OrderDecision, alternative: Alternative, topic: Topic,
            context: dict, label: str | None = None) -> dict:
    """One update of the order to `alternative`: "Change <order> to <study>[, <priority> priority]",
    or "Make <order> <priority> priority" when the study stays and only the priority changes."""
    order = decision.order
    studies = content.common["suggested_studies"]
    same_study = study_key(alternative.modality, alternative.contrast) == study_key(order.modality, order.contrast)
    # The priority is named only where the update changes it.
    changed = alternative.priority if alternative.priority and alternative.priority != order.priority else None
    priority = content.common["priority_labels"].get(changed or "", changed)
    words = {**context, "study": studies[study_key(alternative.modality, alternative.contrast)]["display"],
             "priority": priority}
    if same_study and alternative.priority and label is None:
        label = topic.priority_suggestion_label or topic.suggestion_label
        description = content.templates["priority_description"].render(words)
    else:
        label = label or topic.suggestion_label
        description = content.templates["update_description"].render(words)
    return _suggestion(label, {"type": "update", "description": plain(description),
                               "resource": updated_order(decision, alternative, studies)})
