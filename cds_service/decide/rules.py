"""The pathway decisions: pathway inputs -> one `OrderDecision` per judged imaging order.

Role in the data flow: after `read` (FHIR JSON -> `PathwayInputs`), before `render` (decisions ->
CDS Hooks cards and system actions). `decide()` is a pure function of its argument: no I/O, no
clock; `inputs.reference_date` is "today" for every window (clinical-specification.md §7, "Reference date").

The rules, in the order they are applied to each order (clinical-specification.md §5 and §7):

1. Patient under 18 on the reference date -> no card, `no-criteria-apply` (the ACR criteria and the
   HEDIS measure are for adults).
2. Cauda equina sign -> `cauda-equina-risk` (critical), whatever the duration, ACR variant 4.
   A cauda equina sign also stands in for the qualifying episode when it is coded cauda equina
   syndrome or is the order's own reason (a clinician ordering lumbar imaging *for* cauda equina
   must never meet silence); other bladder/bowel signs need a back-pain episode to count.
3. No qualifying episode -> no card, `no-criteria-apply`.
4. Prior lumbar MRI/CT within 365 days and no red flag newer than that study -> `repeat-imaging`
   (warning, `not-appropriate`).
5. Other red flag -> the ACR variant of each active flag group (5 prior surgery is not a red flag
   by itself, see 7; 6 fracture; 7 malignancy / infection; neurological deficit -> variant 3's
   lists applied at once, without the 6-week wait: ACR variant 3 names "progressive symptoms"
   and every red-flag guideline sends a progressive deficit to early MRI). The variant under
   which the ordered study ranks best is used. Usually appropriate -> no card, `appropriate`;
   may be appropriate -> `prefer-mri-without-contrast` (info), `appropriate`; outside the lists ->
   `prefer-mri-without-contrast` (info), `not-appropriate`.
6. Duration unknown (no onset and no recordedDate on any episode condition) ->
   `symptom-duration-unknown` (info), `no-criteria-apply`.
7. Fewer than 42 days since onset -> `imaging-before-6-weeks` (warning), `not-appropriate`
   (ACR variants 1-2). 42 days or more -> variant 5 after prior lumbar surgery (where contrast
   MRI and X-ray are usually appropriate); otherwise, with no conservative care on record within
   the episode (physical therapy, manipulation, exercise therapy, analgesics, or text evidence of
   them) -> `no-prior-management` (warning), ACR variant 2, `not-appropriate`; with it, ACR
   variant 3. Usually appropriate -> no card, `appropriate`; otherwise
   `prefer-mri-without-contrast` (info), rated as in rule 5. Red flags (rules 2, 5) never wait
   for management.

Look-back windows: a fact counts when 0 <= (reference date - fact date) <= window_days (the
window's last day included); a fact dated after the reference date does not count; a fact with
no date counts only when its window is "any time" -- except that an undated fact never cancels
(see negation) and an undated sign without a window is taken at face value. A windowed fact
without a date is counted too: a red flag that cannot be dated is not discarded (missing a red
flag costs more than a card that is not shown).

Trends (from `inputs.measurements`, when the parser has not already made the fact): >= 5 %
body-weight loss in 180 days (latest weight against the heaviest earlier one) -> malignancy;
over 50 years of age, a measured loss of >= 2 % in 180 days -> malignancy ("age > 50 with weight loss" is
listed beside the 5 % rule); a motor grade lower than an earlier one within 365 days ->
neurological deficit. An active Condition coding long-term (current) use of systemic steroids
(Z79.52) counts whenever it was first coded: it states an exposure that lasts up to today.

Negation: an observation saying a sign is absent (RedFlagFact.negated) cancels every positive
fact of the same group and kind dated on or before it (the latest finding wins; on the same day
the absent finding wins, as it is the more specific statement). An undated negation cancels
nothing. A cancelled fact is listed in the card as "documented absent".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cds_service.decide.facts import (
    ADULT_AGE,
    REPEAT_WINDOW_DAYS,
    SIX_WEEKS_DAYS,
    EpisodeStart,
    active_red_flags,
    episode_start,
    in_window,
    trend_red_flags,
)
from cds_service.decide.outcomes import (
    APPROPRIATE,
    CAUDA_EQUINA_RISK,
    DURATION_UNKNOWN,
    IMAGING_BEFORE_6_WEEKS,
    NO_CRITERIA_APPLY,
    NO_PRIOR_MANAGEMENT,
    NOT_APPROPRIATE,
    PREFER_MRI,
    REASON_APPROPRIATE_6_WEEKS,
    REASON_APPROPRIATE_RED_FLAG,
    REASON_NO_EPISODE,
    REASON_UNDER_18,
    REPEAT_IMAGING,
    SUGGEST_DELETE,
    SUGGEST_DELETE_AND_REFER,
    SUGGEST_UPDATE_TO_MRI,
    Alternative,
    OrderDecision,
)
from cds_service.decide.variants import (
    MRI_WITHOUT,
    USUAL,
    VARIANT_OF_GROUP,
    VARIANT_PREFERENCE,
    rating_of_tier,
    study_key,
    tier,
)
from cds_service.read.inputs import (
    CAUDA_EQUINA,
    CT,
    CT_MYELOGRAPHY,
    MRI,
    WITHOUT,
    WITHOUT_WITH,
    ImagingOrder,
    PathwayInputs,
    PriorImaging,
    RedFlagFact,
)


def _stands_for_episode(fact: RedFlagFact, order: ImagingOrder) -> bool:
    """A cauda equina fact strong enough to count without a coded back-pain episode."""
    return fact.kind == "cauda-equina-syndrome" or fact.evidence.reference == order.reference


# --- The decision --------------------------------------------------------------------------------


def decide(inputs: PathwayInputs) -> list[OrderDecision]:
    """One decision per judged order, in the order of `inputs.orders`."""
    ref = inputs.reference_date
    active, cancelled = active_red_flags(list(inputs.red_flags) + trend_red_flags(inputs), ref)
    start = episode_start(inputs)
    age = inputs.patient.age_on(ref)
    prior = [
        p for p in inputs.prior_imaging
        if p.modality in (MRI, CT, CT_MYELOGRAPHY) and p.evidence.date is not None
        and in_window(p.evidence.date, REPEAT_WINDOW_DAYS, ref)
    ]
    latest_prior = max(prior, key=lambda p: p.evidence.date) if prior else None
    decisions = [_decide_order(inputs, order, active, cancelled, start, age, latest_prior) for order in inputs.orders]
    if inputs.incomplete_data:
        for decision in decisions:
            _withhold_rating(decision)
    return decisions


def _withhold_rating(decision: OrderDecision) -> None:
    """clinical-specification.md §8.3: a rating that rests on the absence of something in data
    that could not be read completely is not given (Argonaut PAMA guidance: when information is
    insufficient the service SHALL NOT produce a rating). Cauda equina found is not an absence:
    its emergency card and rating stand. The advice itself stands, and says what was not checked."""
    if decision.rating is not None and decision.topic != CAUDA_EQUINA_RISK:
        decision.rating = None
        decision.rating_withheld = True


@dataclass(frozen=True)
class _Case:
    """What the rules of one order look at (the same for every rule step)."""

    inputs: PathwayInputs
    order: ImagingOrder
    own: list[RedFlagFact]  # active red flags, less those of another order's reasonCode
    start: EpisodeStart
    age: int | None
    latest_prior: PriorImaging | None


def _decide_order(
    inputs: PathwayInputs,
    order: ImagingOrder,
    active: list[RedFlagFact],
    cancelled: list[RedFlagFact],
    start: EpisodeStart,
    age: int | None,
    latest_prior: PriorImaging | None,
) -> OrderDecision:
    """clinical-specification.md §5: the rules from the top; the first that applies decides."""
    # Facts taken from *another* order's reasonCode belong to that order only.
    own = [f for f in active if not _other_order(f, order, inputs)]
    case = _Case(inputs, order, own, start, age, latest_prior)
    decision = _blank_decision(case, cancelled)
    return (
        _under_18(case, decision)  # §5.1
        or _cauda_equina(case, decision)  # §5.2
        or _no_qualifying_episode(case, decision)  # §5.3
        or _repeat_imaging(case, decision)  # §5.4
        or _other_red_flags(case, decision)  # §5.5
        or _duration_unknown(case, decision)  # §5.6
        or _under_6_weeks(case, decision)  # §5.7
        or _six_weeks_or_more(case, decision)  # §5.8
    )


def _blank_decision(case: _Case, cancelled: list[RedFlagFact]) -> OrderDecision:
    """The facts every card may show, before any rule has decided the order."""
    inputs, start = case.inputs, case.start
    decision = OrderDecision(
        order=case.order, topic=None, indicator=None, rating=None, acr_variant=None, reason="",
        red_flags=case.own, documented_absent=cancelled, age=case.age,
        onset=start.onset, onset_is_lower_bound=start.lower_bound, onset_evidence=start.evidence,
        prior_surgery=list(inputs.spinal_surgery),
        unavailable_data=list(inputs.unavailable_data), skipped_resources=list(inputs.skipped_resources),
        incomplete_data=dict(inputs.incomplete_data),
    )
    if start.onset is not None:
        days = max((inputs.reference_date - start.onset).days, 0)
        decision.days_since_onset = days
        decision.weeks_since_onset = days // 7
        decision.six_weeks_date = start.onset + timedelta(days=SIX_WEEKS_DAYS)
    return decision


# --- The rule steps (clinical-specification.md §5.1-§5.8): each returns the decision when its
# rule applies, None to hand the order to the next step.


def _under_18(case: _Case, decision: OrderDecision) -> OrderDecision | None:
    """§5.1 Adults only."""
    if case.age is not None and case.age < ADULT_AGE:
        return _no_card(decision, REASON_UNDER_18, NO_CRITERIA_APPLY)
    return None


def _cauda_equina(case: _Case, decision: OrderDecision) -> OrderDecision | None:
    """§5.2 Cauda equina: an emergency whatever the duration."""
    order = case.order
    cauda = [f for f in case.own if f.group == CAUDA_EQUINA]
    if not (cauda and (case.inputs.episode or any(_stands_for_episode(f, order) for f in cauda))):
        return None
    value = tier("4", order.modality, order.contrast)
    decision.topic, decision.indicator, decision.reason = CAUDA_EQUINA_RISK, "critical", CAUDA_EQUINA_RISK
    decision.acr_variant = "4"
    decision.rating = rating_of_tier(value)
    decision.evidence = [f.evidence for f in cauda]
    already = study_key(order.modality, order.contrast) == MRI_WITHOUT and order.priority == "stat"
    if not already:
        decision.alternative = Alternative(MRI, WITHOUT, "stat", APPROPRIATE)
        decision.suggestion = SUGGEST_UPDATE_TO_MRI
    return decision


def _no_qualifying_episode(case: _Case, decision: OrderDecision) -> OrderDecision | None:
    """§5.3 No qualifying episode: the pathway does not apply."""
    if not case.inputs.episode:
        return _no_card(decision, REASON_NO_EPISODE, NO_CRITERIA_APPLY)
    return None


def _repeat_imaging(case: _Case, decision: OrderDecision) -> OrderDecision | None:
    """§5.4 Repeat imaging: a prior lumbar MRI/CT in 12 months and no red flag newer than it. An
    undated red flag could be new, so it blocks the repeat warning."""
    prior = case.latest_prior
    if prior is None:
        return None
    since = prior.evidence.date
    if any(f.evidence.date is None or f.evidence.date > since for f in case.own):
        return None
    decision.topic, decision.indicator, decision.reason = REPEAT_IMAGING, "warning", REPEAT_IMAGING
    decision.rating = NOT_APPROPRIATE
    decision.prior_imaging = prior
    decision.evidence = [prior.evidence]
    decision.suggestion = SUGGEST_DELETE
    return decision


def _other_red_flags(case: _Case, decision: OrderDecision) -> OrderDecision | None:
    """§5.5 Other red flags: the variant under which the ordered study ranks best (on a tie, the
    more serious variant: VARIANT_PREFERENCE)."""
    order = case.order
    variants = sorted({VARIANT_OF_GROUP[f.group] for f in case.own if f.group in VARIANT_OF_GROUP},
                      key=VARIANT_PREFERENCE.index)
    if not variants:
        return None
    variant = max(variants, key=lambda v: (tier(v, order.modality, order.contrast), -VARIANT_PREFERENCE.index(v)))
    decision.evidence = [f.evidence for f in case.own]
    return _judge_study(decision, variant, REASON_APPROPRIATE_RED_FLAG)


def _duration_unknown(case: _Case, decision: OrderDecision) -> OrderDecision | None:
    """§5.6 Duration unknown: no episode condition has an onset or a recorded date."""
    if case.start.onset is not None:
        return None
    decision.topic, decision.indicator, decision.reason = DURATION_UNKNOWN, "info", DURATION_UNKNOWN
    decision.rating = NO_CRITERIA_APPLY
    decision.evidence = [c.evidence for c in case.inputs.episode]
    return decision


def _under_6_weeks(case: _Case, decision: OrderDecision) -> OrderDecision | None:
    """§5.7 Fewer than 6 weeks: no imaging yet (ACR variants 1-2)."""
    if (case.inputs.reference_date - case.start.onset).days >= SIX_WEEKS_DAYS:
        return None
    decision.evidence = [case.start.evidence]
    decision.topic, decision.indicator, decision.reason = IMAGING_BEFORE_6_WEEKS, "warning", IMAGING_BEFORE_6_WEEKS
    decision.acr_variant = "1"
    decision.rating = NOT_APPROPRIATE
    decision.suggestion = SUGGEST_DELETE_AND_REFER
    return decision


def _six_weeks_or_more(case: _Case, decision: OrderDecision) -> OrderDecision:
    """§5.8 Six weeks or more: variant 5 after prior lumbar surgery; otherwise variant 3 needs
    conservative care within the episode, and without it variant 2 (no prior management)."""
    inputs = case.inputs
    decision.evidence = [case.start.evidence]
    if inputs.spinal_surgery:
        decision.evidence = decision.evidence + list(inputs.spinal_surgery)
        return _judge_study(decision, "5", REASON_APPROPRIATE_6_WEEKS)
    decision.management = episode_management(inputs, case.start.onset)
    if not decision.management:
        decision.topic, decision.indicator, decision.reason = NO_PRIOR_MANAGEMENT, "warning", NO_PRIOR_MANAGEMENT
        decision.acr_variant = "2"
        decision.rating = NOT_APPROPRIATE
        decision.suggestion = SUGGEST_DELETE_AND_REFER
        return decision
    decision.evidence = decision.evidence + decision.management
    return _judge_study(decision, "3", REASON_APPROPRIATE_6_WEEKS)


def episode_management(inputs: PathwayInputs, onset) -> list:
    """Conservative care dated within the current episode, from its start to the reference date
    (clinical-specification.md §5.8). Care before the episode began, or undated, does not count."""
    ref = inputs.reference_date
    found = [e for e in inputs.management if e.date is not None and onset <= e.date <= ref]
    return sorted(found, key=lambda e: e.date)


def _judge_study(decision: OrderDecision, variant: str, appropriate_reason: str) -> OrderDecision:
    order = decision.order
    value = tier(variant, order.modality, order.contrast)
    decision.acr_variant = variant
    decision.rating = rating_of_tier(value)
    if value == USUAL:
        decision.reason = appropriate_reason
        return decision  # appropriate as ordered: silence beats alert fatigue
    decision.topic, decision.indicator, decision.reason = PREFER_MRI, "info", PREFER_MRI
    decision.alternative = Alternative(MRI, WITHOUT, order.priority, rating_of_tier(tier(variant, MRI, WITHOUT)))
    decision.suggestion = SUGGEST_UPDATE_TO_MRI
    # A contrast MRI ordered where the variant makes MRI without and with contrast usually
    # appropriate too (5: prior lumbar surgery; 7: suspected infection, tumour,
    # immunosuppression; clinical-specification.md §5 item 4, "contrast only after prior lumbar surgery,
    # suspected infection or tumour"): offer that study as well, so the card does not steer away
    # from contrast the guideline recommends.
    if order.modality == MRI and order.contrast != WITHOUT and tier(variant, MRI, WITHOUT_WITH) == USUAL:
        decision.contrast_alternative = Alternative(MRI, WITHOUT_WITH, order.priority, APPROPRIATE)
    return decision


def _no_card(decision: OrderDecision, reason: str, rating: str) -> OrderDecision:
    decision.reason = reason
    decision.rating = rating
    return decision


def _other_order(fact: RedFlagFact, order: ImagingOrder, inputs: PathwayInputs) -> bool:
    ref = fact.evidence.reference
    return ref.startswith("ServiceRequest/") and ref != order.reference and any(
        o.reference == ref for o in inputs.orders
    )

