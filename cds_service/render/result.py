"""What one hook call produced: the CDS Hooks response and one `Judgement` per judged order.

Role in the data flow: the last product of render, handed to the controller (the response) and to
governance (the judgements are recorded for the CDS governance committee).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    order_recognised_by: str | None = None  # how the order was recognised as lumbar imaging (<= 16 chars)


@dataclass
class EvaluationResult:
    response: dict  # the CDS Hooks response body: {"cards": [...], "systemActions": [...], ...}
    judgements: list[Judgement] = field(default_factory=list)
    # The red-flag screen (clinical-specification.md §12): cards that offer it (render.screen.ScreenOffer),
    # and how the patient's attested answers entered the decision (decide.screen.ScreenUse), if they did.
    screen_offers: list = field(default_factory=list)
    screen_use: object | None = None
