"""Run the pathway for one hook call: gathered data -> inputs -> decisions -> response.

Role in the data flow: the pure core behind the controller. It takes the validated request, the
gathered FHIR data and the reference clock value, and returns the CDS Hooks response together
with one `Judgement` per judged order for the governance store. No I/O happens here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .envelope import HookRequest
from .gathering import GatheredData


@dataclass(frozen=True)
class Judgement:
    """What the service decided about one order (recorded for governance, issue 6)."""

    order_reference: str  # "ServiceRequest/<id>"
    order_code: str | None  # "<system>|<code>" of the ordered study
    topic: str | None  # card topic code, None when no card
    indicator: str | None  # info | warning | critical
    rating: str | None  # appropriate | not-appropriate | no-criteria-apply
    card_uuid: str | None
    consult_id: str | None  # the pama-rating-consult-id urn:uuid
    suggestion_uuids: tuple[str, ...] = ()


@dataclass
class EvaluationResult:
    response: dict  # the CDS Hooks response body: {"cards": [...], "systemActions": [...], ...}
    judgements: list[Judgement] = field(default_factory=list)


class Evaluator:
    """Built once at start-up (value sets loaded, card templates compiled); evaluate() per call."""

    def __init__(self, settings: dict):
        self.settings = settings

    def evaluate(self, request: HookRequest, gathered: GatheredData, now: datetime) -> EvaluationResult:
        """Placeholder until the pathway lands: no cards. `now` is an aware UTC datetime."""
        return EvaluationResult(response={"cards": []})
