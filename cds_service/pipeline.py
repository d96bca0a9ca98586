"""Run the pathway for one hook call: gathered data -> inputs -> decisions -> response.

Role in the data flow: the pure core behind the controller. It takes the validated request, the
gathered FHIR data and the reference clock value, and returns the CDS Hooks response together
with one `Judgement` per judged order for the governance store. No I/O happens here: the value
sets are loaded, the card templates compiled and the free-text pipeline built once, when the
Evaluator is built at start-up.

    read.parse_inputs  ->  decide.decide  ->  render.CardRenderer.render  ->  response
"""

from __future__ import annotations

from datetime import datetime

from cds_service import cards_dir
from cds_service.decide.rules import decide
from cds_service.decide.screen import decide_with_screen
from cds_service.gather.prefetch import GatheredData
from cds_service.hooks.envelope import HookRequest
from cds_service.queries import build_query_plan
from cds_service.read.local_codes import load_local_codes
from cds_service.read.parser import parse_inputs
from cds_service.read.screen import AttestedScreen, load_questionnaire
from cds_service.read.text import default_reader
from cds_service.read.valuesets import load_valuesets
from cds_service.render.cards import CardRenderer
from cds_service.render.result import EvaluationResult, Judgement
from cds_service.render.screen import ScreenRenderer


class Evaluator:
    """Built once at start-up (value sets loaded, card templates compiled); evaluate() per call."""

    def __init__(self, settings: dict):
        self.settings = settings
        # The shipped value sets plus the site's local codes (LOCAL_CODES_FILE), checked here at start-up.
        local = settings.get("LOCAL_CODES_FILE")
        self.valuesets = load_valuesets(local_codes=load_local_codes(local) if local else None)
        self.renderer = CardRenderer(cards_dir(settings.get("CARDS_DIR")))
        # The prefetch templates and the service's own FHIR searches, narrowed from the value sets.
        self.query_plan = build_query_plan(self.valuesets, settings)
        # The free-text reader (medspaCy pipeline, about 1 s to build): built here, at start-up,
        # once per process; its results are cached by content hash (clinical-specification.md §9.6).
        self.text_reader = default_reader()
        # The red-flag screen (clinical-specification.md §12): its Questionnaire and card words.
        self.screen_questionnaire = load_questionnaire()
        self.screen_renderer = ScreenRenderer(cards_dir(settings.get("CARDS_DIR")), self.renderer.common,
                                              self.screen_questionnaire)

    def evaluate(self, request: HookRequest, gathered: GatheredData, now: datetime,
                 attested: AttestedScreen | None = None) -> EvaluationResult:
        """`now` is an aware UTC datetime; its date is the reference date when no order has an
        authoredOn (clinical-specification.md §7, "Reference date"). `attested`: the patient's
        red-flag screen answers, read as facts (§12)."""
        inputs = parse_inputs(request, gathered, self.valuesets, self.settings, now.date(), self.text_reader)
        use = None
        if attested is not None:
            decisions, use = decide_with_screen(inputs, attested, self.screen_questionnaire)
        else:
            decisions = decide(inputs)
        patient_reference = inputs.patient.reference or f"Patient/{request.patient_id}"
        rendered = self.renderer.render(decisions, patient_reference, inputs.reference_date)
        offers = self.screen_renderer.decorate(rendered, use, attested, inputs.patient.age_on(inputs.reference_date),
                                               inputs.patient.sex, self.renderer.order_name)
        judgements = [
            Judgement(
                order_reference=r.decision.order.reference,
                order_code=_code_of(r.decision.order.code.system, r.decision.order.code.code),
                order_recognised_by=r.decision.order.recognised_by,
                topic=r.decision.topic,
                indicator=r.decision.indicator,
                rating=r.decision.rating,
                card_uuid=r.card_uuid,
                consult_id=r.consult_id,
                suggestion_uuids=r.suggestion_uuids,
            )
            for r in rendered
        ]
        return EvaluationResult(response=self.renderer.response(rendered), judgements=judgements,
                                screen_offers=offers, screen_use=use)


def _code_of(system: str | None, code: str | None) -> str | None:
    if not code:
        return None
    return f"{system or ''}|{code}"
