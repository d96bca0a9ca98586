"""FHIR actions on the draft order: the PAMA-rated update (system action and suggestions) and the
physical therapy referral.

Role in the data flow: render stage. Every update of the draft ServiceRequest carries the Argonaut
PAMA rating and consult-id extensions: the system action with the order's own rating, a
suggestion with the rating the order would have after it (the CDS Hooks sandbox's PAMA tab
crashes on an update without one; docs/clinical-specification.md sections 7.4 to 7.6).
"""

from __future__ import annotations

import copy

from cds_service.decide.outcomes import Alternative, OrderDecision
from cds_service.decide.variants import study_key
from cds_service.render.text import new_uuid, prune

PAMA_RATING_URL = "http://fhir.org/argonaut/Extension/pama-rating"
PAMA_RATING_SYSTEM = "http://fhir.org/argonaut/CodeSystem/pama-rating"
PAMA_CONSULT_ID_URL = "http://fhir.org/argonaut/Extension/pama-rating-consult-id"
PAMA_URLS = {PAMA_RATING_URL, PAMA_CONSULT_ID_URL}


def order_resource(decision: OrderDecision) -> dict:
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


def with_rating(resource: dict, rating: str, consult_id: str) -> dict:
    extensions = [e for e in resource.get("extension", []) if not (isinstance(e, dict) and e.get("url") in PAMA_URLS)]
    extensions.append({
        "url": PAMA_RATING_URL,
        "valueCodeableConcept": {"coding": [{"system": PAMA_RATING_SYSTEM, "code": rating}]},
    })
    extensions.append({"url": PAMA_CONSULT_ID_URL, "valueUri": consult_id})
    resource["extension"] = extensions
    return resource


def updated_order(decision: OrderDecision, alternative: Alternative, suggested_studies: dict) -> dict:
    """The order as the suggestion would leave it: the alternative MRI study, rated."""
    study = suggested_studies[study_key(alternative.modality, alternative.contrast)]
    resource = order_resource(decision)
    resource["code"] = {
        "coding": [{"system": study["system"], "code": str(study["code"]), "display": study["display"]}],
        "text": study["display"],
    }
    if alternative.priority:
        resource["priority"] = alternative.priority
    return with_rating(resource, alternative.rating, f"urn:uuid:{new_uuid()}")


def physical_therapy_referral(decision: OrderDecision, patient_reference: str, pt: dict) -> dict:
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
