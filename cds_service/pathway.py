"""The pathway decisions: pathway inputs -> one `OrderDecision` per judged imaging order.

Role in the data flow: after `parsing` (FHIR JSON -> `PathwayInputs`), before `cards` (decisions ->
CDS Hooks cards and system actions). `decide()` is a pure function of its argument: no I/O, no
clock; `inputs.reference_date` is "today" for every window (pathway.md section 3, "Reference date").

The rules, in the order they are applied to each order (pathway.md sections 1 and 3):

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
   (ACR variants 1-2). 42 days or more -> ACR variant 3, or variant 5 after prior lumbar surgery
   (where contrast MRI and X-ray are usually appropriate); usually appropriate -> no card,
   `appropriate`; otherwise `prefer-mri-without-contrast` (info), rated as in rule 5.

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

from dataclasses import dataclass, field
from datetime import date, timedelta

from .inputs import (
    CAUDA_EQUINA,
    CT,
    CT_MYELOGRAPHY,
    FRACTURE,
    INFECTION,
    MALIGNANCY,
    MRI,
    NEURO_DEFICIT,
    RED_FLAG_GROUPS,
    UNSPECIFIED,
    WITH,
    WITHOUT,
    WITHOUT_WITH,
    XR,
    Evidence,
    ImagingOrder,
    Measurement,
    PathwayInputs,
    PriorImaging,
    RedFlagFact,
)

# --- Topics (pathway.md section 3) ------------------------------------------------------------
CAUDA_EQUINA_RISK = "cauda-equina-risk"
IMAGING_BEFORE_6_WEEKS = "imaging-before-6-weeks"
PREFER_MRI = "prefer-mri-without-contrast"
REPEAT_IMAGING = "repeat-imaging"
DURATION_UNKNOWN = "symptom-duration-unknown"
TOPICS = (CAUDA_EQUINA_RISK, IMAGING_BEFORE_6_WEEKS, PREFER_MRI, REPEAT_IMAGING, DURATION_UNKNOWN)

# --- Ratings (Argonaut PAMA guidance, pathway.md section 3) -----------------------------------
APPROPRIATE = "appropriate"
NOT_APPROPRIATE = "not-appropriate"
NO_CRITERIA_APPLY = "no-criteria-apply"

# --- Suggestion kinds (rendered by `cards`) ---------------------------------------------------
SUGGEST_UPDATE_TO_MRI = "update-to-mri-without-contrast"
SUGGEST_DELETE_AND_REFER = "delete-and-refer-to-physical-therapy"
SUGGEST_DELETE = "delete-order"

# --- Why no card / which branch (machine-readable, for tests and the governance store) -------
REASON_UNDER_18 = "under-18"
REASON_NO_EPISODE = "no-qualifying-episode"
REASON_APPROPRIATE_RED_FLAG = "appropriate-for-red-flag"
REASON_APPROPRIATE_6_WEEKS = "appropriate-after-6-weeks"

SIX_WEEKS_DAYS = 42  # pathway.md section 1, item 3: "< 6 weeks (42 days)"
REPEAT_WINDOW_DAYS = 365  # pathway.md section 1, item 5: "in the last 12 months"
ADULT_AGE = 18
WEIGHT_LOSS_FRACTION = 0.05  # ">= 5 % body weight loss over 180 d"
WEIGHT_LOSS_WINDOW_DAYS = 180
OLDER_AGE = 50  # "age > 50 with weight loss" (pathway.md section 1, item 2, malignancy)
# Over 50 a smaller loss counts, but not day-to-day scale variation (about 1 kg): below 2 % a
# "loss" is noise, and flagging it would silence the 6-week warning for most older patients.
OLDER_AGE_WEIGHT_LOSS_FRACTION = 0.02
# Red-flag kinds whose active Condition states a condition lasting up to today (see counts_on).
ONGOING_STATE_KINDS = frozenset({"long-term-steroids"})
MOTOR_GRADE_WINDOW_DAYS = 365  # "worsening motor grade across serial observations (365 days)"

# Study keys: modality + contrast. CT myelography always uses intrathecal contrast, so its
# contrast does not change the study.
def study_key(modality: str, contrast: str) -> str:
    if modality in (XR, CT_MYELOGRAPHY):
        return modality
    return f"{modality}-{contrast}"


MRI_WITHOUT = study_key(MRI, WITHOUT)

# ACR Appropriateness Criteria, Low Back Pain (2021 revision), the variants of pathway.md
# section 1: (usually appropriate, may be appropriate). Anything else is usually not appropriate.
ACR_VARIANTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "1": (frozenset(), frozenset()),
    "3": (
        frozenset({MRI_WITHOUT}),
        frozenset({XR, study_key(MRI, WITHOUT_WITH), study_key(CT, WITHOUT), CT_MYELOGRAPHY}),
    ),
    "4": (
        frozenset({MRI_WITHOUT, study_key(MRI, WITHOUT_WITH)}),
        frozenset({study_key(CT, WITHOUT), CT_MYELOGRAPHY}),
    ),
    "5": (
        frozenset({XR, MRI_WITHOUT, study_key(MRI, WITHOUT_WITH)}),
        frozenset({study_key(CT, WITHOUT), CT_MYELOGRAPHY}),
    ),
    "6": (
        frozenset({XR, MRI_WITHOUT, study_key(CT, WITHOUT)}),
        frozenset({study_key(MRI, WITHOUT_WITH), CT_MYELOGRAPHY}),
    ),
    "7": (
        frozenset({MRI_WITHOUT, study_key(MRI, WITHOUT_WITH)}),
        frozenset({XR, study_key(CT, WITHOUT), study_key(CT, WITH), CT_MYELOGRAPHY}),
    ),
}

# Which ACR variant each red-flag group calls for (see the module docstring, rule 5).
VARIANT_OF_GROUP = {NEURO_DEFICIT: "3", INFECTION: "7", MALIGNANCY: "7", FRACTURE: "6"}
# When several variants rank the study equally, report the more serious one.
VARIANT_PREFERENCE = ("7", "6", "5", "3")

USUAL, MAY, NOT = 2, 1, 0
_CONTRASTS = (WITHOUT, WITH, WITHOUT_WITH)


def tier(variant: str, modality: str, contrast: str) -> int:
    """How the ACR variant ranks a study. An MRI/CT whose contrast is not given could be any of
    them: it is ranked as its best possible reading (not condemned for a missing detail), but it
    is never "exactly the usually appropriate study", so a card still asks for MRI without."""
    usual, may = ACR_VARIANTS[variant]
    if contrast == UNSPECIFIED and modality in (MRI, CT):
        best = max(tier(variant, modality, c) for c in _CONTRASTS)
        return min(best, MAY)
    key = study_key(modality, contrast)
    if key in usual:
        return USUAL
    if key in may:
        return MAY
    return NOT


def rating_of_tier(value: int) -> str:
    return APPROPRIATE if value >= MAY else NOT_APPROPRIATE


@dataclass(frozen=True)
class Alternative:
    """The study a suggestion proposes instead, and the rating it would get."""

    modality: str
    contrast: str
    priority: str | None
    rating: str


@dataclass
class OrderDecision:
    order: ImagingOrder
    topic: str | None
    indicator: str | None
    rating: str | None
    acr_variant: str | None
    reason: str  # the branch taken (a topic code or one of the REASON_* constants)
    evidence: list[Evidence] = field(default_factory=list)  # the facts that drove the decision
    red_flags: list[RedFlagFact] = field(default_factory=list)  # active red flags (all groups)
    documented_absent: list[RedFlagFact] = field(default_factory=list)  # cancelled by negation
    red_flag_groups_checked: tuple[str, ...] = RED_FLAG_GROUPS
    alternative: Alternative | None = None
    # A second alternative where the variant makes contrast usually appropriate too (5, 7).
    contrast_alternative: Alternative | None = None
    suggestion: str | None = None  # one of SUGGEST_*
    age: int | None = None
    onset: date | None = None
    onset_is_lower_bound: bool = False  # onset taken from a recordedDate
    onset_evidence: Evidence | None = None
    days_since_onset: int | None = None
    weeks_since_onset: int | None = None
    six_weeks_date: date | None = None
    prior_imaging: PriorImaging | None = None
    prior_surgery: list[Evidence] = field(default_factory=list)
    unavailable_data: list[str] = field(default_factory=list)
    skipped_resources: list[str] = field(default_factory=list)

    @property
    def red_flag_groups_found(self) -> list[str]:
        return [g for g in RED_FLAG_GROUPS if any(f.group == g for f in self.red_flags)]


# --- Facts on the reference date ---------------------------------------------------------------


def in_window(fact_date: date | None, window_days: int | None, reference: date) -> bool:
    """Whether a fact dated `fact_date` counts on `reference` (window's last day included)."""
    if fact_date is None:
        return True
    age = (reference - fact_date).days
    if age < 0:
        return False  # recorded after the day being judged
    return window_days is None or age <= window_days


def counts_on(fact: RedFlagFact, reference: date) -> bool:
    """Whether a positive fact counts on the reference date (its look-back window)."""
    if fact.kind in ONGOING_STATE_KINDS and fact.evidence.resource_type == "Condition":
        # An active "long-term (current) use" code (Z79.52) asserts an exposure that continues up
        # to today, whenever it was first coded: the last 12 months are covered (pathway.md 1.2).
        # The parser only passes current-sign Conditions that are still active.
        return fact.evidence.date is None or fact.evidence.date <= reference
    return in_window(fact.evidence.date, fact.window_days, reference)


def active_red_flags(
    facts: list[RedFlagFact], reference: date
) -> tuple[list[RedFlagFact], list[RedFlagFact]]:
    """(active positive facts, positive facts cancelled by a later or same-day absent finding)."""
    negations = [f for f in facts if f.negated and f.evidence.date is not None and f.evidence.date <= reference]
    active: list[RedFlagFact] = []
    cancelled: list[RedFlagFact] = []
    for fact in facts:
        if fact.negated or not counts_on(fact, reference):
            continue
        cancelling = [
            n for n in negations
            if n.group == fact.group and n.kind == fact.kind
            and (fact.evidence.date is None or n.evidence.date >= fact.evidence.date)
        ]
        (cancelled if cancelling else active).append(fact)
    return active, cancelled


def _dated(measurements: list[Measurement], kind: str, reference: date, window: int) -> list[Measurement]:
    found = [
        m for m in measurements
        if m.kind == kind and m.evidence.date is not None and in_window(m.evidence.date, window, reference)
    ]
    return sorted(found, key=lambda m: m.evidence.date)


def trend_red_flags(inputs: PathwayInputs) -> list[RedFlagFact]:
    """Red flags that only a series of measurements shows (pathway.md section 1, item 2), for
    the trends the parser has not already turned into a fact of the same kind. (Corticosteroid
    exposure needs each course's duration, which only the parser sees: it is the parser's fact,
    kind "prolonged-corticosteroids".)"""
    flags: list[RedFlagFact] = []
    ref = inputs.reference_date
    present = {(f.group, f.kind) for f in inputs.red_flags}

    # Malignancy: >= 5 % body weight loss over 180 days: the latest weight against the heaviest
    # earlier weight inside the window.
    weights = _dated(inputs.measurements, "body-weight-kg", ref, WEIGHT_LOSS_WINDOW_DAYS)
    if len(weights) >= 2 and (MALIGNANCY, "weight-loss-measured") not in present:
        latest = weights[-1]
        earlier = [w for w in weights[:-1] if w.evidence.date < latest.evidence.date and w.value > 0]
        if earlier:
            heaviest = max(earlier, key=lambda w: w.value)
            loss = (heaviest.value - latest.value) / heaviest.value
            age = inputs.patient.age_on(ref)
            older = age is not None and age > OLDER_AGE
            change = (f"body weight loss of {loss * 100:.1f} % ({heaviest.value:g} kg on "
                      f"{heaviest.evidence.date.isoformat()} to {latest.value:g} kg)")
            kind = label = None
            if loss >= WEIGHT_LOSS_FRACTION:
                kind, label = "weight-loss-measured", change[0].upper() + change[1:]
            elif loss >= OLDER_AGE_WEIGHT_LOSS_FRACTION and older:
                # "age > 50 with weight loss" is listed beside the 5 % rule: over 50, a measured
                # loss of 2 % or more in 180 days counts (the combination raises suspicion).
                kind, label = "weight-loss-over-50", f"Age {age} with {change}"
            if kind:
                flags.append(RedFlagFact(
                    group=MALIGNANCY, kind=kind, label=label,
                    evidence=latest.evidence, window_days=WEIGHT_LOSS_WINDOW_DAYS,
                ))

    # Neurological deficit: a motor grade lower than an earlier grade within 365 days.
    grades = _dated(inputs.measurements, "motor-grade", ref, MOTOR_GRADE_WINDOW_DAYS)
    if len(grades) >= 2 and (NEURO_DEFICIT, "motor-grade-worsening") not in present:
        latest = grades[-1]
        earlier = [g for g in grades[:-1] if g.evidence.date < latest.evidence.date]
        if earlier and latest.value < max(g.value for g in earlier):
            best = max(earlier, key=lambda g: g.value)
            flags.append(RedFlagFact(
                group=NEURO_DEFICIT, kind="motor-grade-worsening",
                label=(
                    f"Worsening motor grade ({best.value:g}/5 on {best.evidence.date.isoformat()} "
                    f"to {latest.value:g}/5)"
                ),
                evidence=latest.evidence, window_days=MOTOR_GRADE_WINDOW_DAYS,
            ))

    return flags


# --- The episode ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeStart:
    onset: date | None
    lower_bound: bool
    evidence: Evidence | None


def episode_start(inputs: PathwayInputs) -> EpisodeStart:
    """The earliest onset among the qualifying conditions (the parser keeps only active ones).

    A recordedDate only tells that the symptoms began on or before it, so it competes with the
    onsets as a candidate: when the earliest candidate is a recordedDate, the duration is a lower
    bound and the card says so (pathway.md section 2).
    """
    candidates: list[tuple[date, bool, Evidence]] = []
    for condition in inputs.episode:
        if condition.onset is not None:
            candidates.append((condition.onset, False, condition.evidence))
        elif condition.recorded is not None:
            candidates.append((condition.recorded, True, condition.evidence))
    if not candidates:
        return EpisodeStart(None, False, None)
    # Earliest date; on a tie prefer a true onset over a recordedDate.
    onset, lower_bound, evidence = min(candidates, key=lambda c: (c[0], c[1]))
    return EpisodeStart(onset, lower_bound, evidence)


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
    return [_decide_order(inputs, order, active, cancelled, start, age, latest_prior) for order in inputs.orders]


def _decide_order(
    inputs: PathwayInputs,
    order: ImagingOrder,
    active: list[RedFlagFact],
    cancelled: list[RedFlagFact],
    start: EpisodeStart,
    age: int | None,
    latest_prior: PriorImaging | None,
) -> OrderDecision:
    ref = inputs.reference_date
    # Facts taken from *another* order's reasonCode belong to that order only.
    own = [f for f in active if not _other_order(f, order, inputs)]
    decision = OrderDecision(
        order=order, topic=None, indicator=None, rating=None, acr_variant=None, reason="",
        red_flags=own, documented_absent=cancelled, age=age,
        onset=start.onset, onset_is_lower_bound=start.lower_bound, onset_evidence=start.evidence,
        prior_surgery=list(inputs.spinal_surgery),
        unavailable_data=list(inputs.unavailable_data), skipped_resources=list(inputs.skipped_resources),
    )
    if start.onset is not None:
        days = max((ref - start.onset).days, 0)
        decision.days_since_onset = days
        decision.weeks_since_onset = days // 7
        decision.six_weeks_date = start.onset + timedelta(days=SIX_WEEKS_DAYS)

    # 1. Adults only.
    if age is not None and age < ADULT_AGE:
        return _no_card(decision, REASON_UNDER_18, NO_CRITERIA_APPLY)

    # 2. Cauda equina: an emergency whatever the duration.
    cauda = [f for f in own if f.group == CAUDA_EQUINA]
    has_episode = bool(inputs.episode)
    if cauda and (has_episode or any(_stands_for_episode(f, order) for f in cauda)):
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

    # 3. No qualifying episode: the pathway does not apply.
    if not has_episode:
        return _no_card(decision, REASON_NO_EPISODE, NO_CRITERIA_APPLY)

    # 4. Repeat imaging: a prior lumbar MRI/CT in 12 months and no red flag newer than it. An
    #    undated red flag could be new, so it blocks the repeat warning.
    if latest_prior is not None:
        since = latest_prior.evidence.date
        new_flags = [f for f in own if f.evidence.date is None or f.evidence.date > since]
        if not new_flags:
            decision.topic, decision.indicator, decision.reason = REPEAT_IMAGING, "warning", REPEAT_IMAGING
            decision.rating = NOT_APPROPRIATE
            decision.prior_imaging = latest_prior
            decision.evidence = [latest_prior.evidence]
            decision.suggestion = SUGGEST_DELETE
            return decision

    # 5. Other red flags: the variant under which the ordered study ranks best.
    if own:
        variants = sorted({VARIANT_OF_GROUP[f.group] for f in own if f.group in VARIANT_OF_GROUP},
                          key=VARIANT_PREFERENCE.index)
        if variants:
            variant = max(variants, key=lambda v: (tier(v, order.modality, order.contrast), -VARIANT_PREFERENCE.index(v)))
            decision.evidence = [f.evidence for f in own]
            return _judge_study(decision, variant, REASON_APPROPRIATE_RED_FLAG)

    # 6. Duration unknown.
    if start.onset is None:
        decision.topic, decision.indicator, decision.reason = DURATION_UNKNOWN, "info", DURATION_UNKNOWN
        decision.rating = NO_CRITERIA_APPLY
        decision.evidence = [c.evidence for c in inputs.episode]
        return decision

    decision.evidence = [start.evidence]
    # 7. Fewer than 6 weeks: no imaging yet (ACR variants 1-2).
    if (ref - start.onset).days < SIX_WEEKS_DAYS:
        decision.topic, decision.indicator, decision.reason = IMAGING_BEFORE_6_WEEKS, "warning", IMAGING_BEFORE_6_WEEKS
        decision.acr_variant = "1"
        decision.rating = NOT_APPROPRIATE
        decision.suggestion = SUGGEST_DELETE_AND_REFER
        return decision

    # 6 weeks or more: variant 3, or variant 5 after prior lumbar surgery.
    variant = "5" if inputs.spinal_surgery else "3"
    if inputs.spinal_surgery:
        decision.evidence = decision.evidence + list(inputs.spinal_surgery)
    return _judge_study(decision, variant, REASON_APPROPRIATE_6_WEEKS)


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
    # immunosuppression; pathway.md section 1 item 4, "contrast only after prior lumbar surgery,
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
