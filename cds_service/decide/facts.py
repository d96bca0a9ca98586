"""Facts on the reference date: look-back windows, negation, trends, and the episode's start.

Role in the data flow: decide stage (pure functions of the pathway inputs and the reference date;
docs/clinical-specification.md sections 3 and 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cds_service.read.inputs import (
    Evidence,
    Measurement,
    PathwayInputs,
    RedFlagFact,
)
from cds_service.rules import windows
from cds_service.vocabulary import RedFlagGroup

# The pathway's windows are defined in cds_service/rules/windows.py (the one place for them).
SIX_WEEKS_DAYS = windows.SIX_WEEKS_DAYS
REPEAT_WINDOW_DAYS = windows.REPEAT_WINDOW_DAYS
WEIGHT_LOSS_WINDOW_DAYS = windows.WEIGHT_LOSS_WINDOW_DAYS
MOTOR_GRADE_WINDOW_DAYS = windows.MOTOR_GRADE_WINDOW_DAYS
ADULT_AGE = 18
WEIGHT_LOSS_FRACTION = 0.05  # ">= 5 % body weight loss over 180 d"
OLDER_AGE = 50  # "age > 50 with weight loss" (clinical-specification.md §4, malignancy)
# Over 50 a smaller loss counts, but not day-to-day scale variation (about 1 kg): below 2 % a
# "loss" is noise, and flagging it would silence the 6-week warning for most older patients.
OLDER_AGE_WEIGHT_LOSS_FRACTION = 0.02
# Red-flag kinds whose active Condition states a condition lasting up to today (see counts_on).
ONGOING_STATE_KINDS = frozenset({"long-term-steroids"})


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
        # to today, whenever it was first coded: the last 12 months are covered (clinical-specification.md §4).
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
    """Red flags that only a series of measurements shows (clinical-specification.md §4), for
    the trends the parser has not already turned into a fact of the same kind. (Corticosteroid
    exposure needs each course's duration, which only the parser sees: it is the parser's fact,
    kind "prolonged-corticosteroids".)"""
    flags: list[RedFlagFact] = []
    ref = inputs.reference_date
    present = {(f.group, f.kind) for f in inputs.red_flags}

    # Malignancy: >= 5 % body weight loss over 180 days: the latest weight against the heaviest
    # earlier weight inside the window.
    weights = _dated(inputs.measurements, "body-weight-kg", ref, WEIGHT_LOSS_WINDOW_DAYS)
    if len(weights) >= 2 and (RedFlagGroup.MALIGNANCY, "weight-loss-measured") not in present:
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
                    group=RedFlagGroup.MALIGNANCY, kind=kind, label=label,
                    evidence=latest.evidence, window_days=WEIGHT_LOSS_WINDOW_DAYS,
                ))

    # Neurological deficit: a motor grade lower than an earlier grade within 365 days.
    grades = _dated(inputs.measurements, "motor-grade", ref, MOTOR_GRADE_WINDOW_DAYS)
    if len(grades) >= 2 and (RedFlagGroup.NEURO_DEFICIT, "motor-grade-worsening") not in present:
        latest = grades[-1]
        earlier = [g for g in grades[:-1] if g.evidence.date < latest.evidence.date]
        if earlier and latest.value < max(g.value for g in earlier):
            best = max(earlier, key=lambda g: g.value)
            flags.append(RedFlagFact(
                group=RedFlagGroup.NEURO_DEFICIT, kind="motor-grade-worsening",
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
    bound and the card says so (clinical-specification.md §3).
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

