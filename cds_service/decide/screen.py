"""The red-flag screen in the decision: which questions the record leaves open, and the
clinician's attested answers applied as facts (docs/clinical-specification.md §12).

Role in the data flow: decide stage, pure (no I/O, no clock). `open_questions(decision, ...)`
says what the screen asks for one decision; `decide_with_screen(inputs, attested, ...)` adds the
attested facts to the pathway inputs and runs `decide()`:

- a "yes" is a red flag like a coded one, dated on the day it was attested, so its kind's
  look-back window applies (a fever attested 20 days ago no longer counts);
- a "no" is an attested absence: it never cancels a sign the record shows (the card shows both,
  `ScreenUse.conflicts`);
- an onset (a date, or "about N weeks ago") starts the episode when the record has none, or only
  a recordedDate (a lower bound);
- conservative care attested "yes" counts from its "since" day (or the onset) as management;
- when every red-flag question is settled (by the record or the screen), the data gaps the
  screen covers no longer withhold the rating (§8.3): the clinician attested what the unread
  data could have shown. Gaps in prior imaging are not covered: the screen does not ask about it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date

from cds_service.decide.facts import active_red_flags, trend_red_flags
from cds_service.decide.outcomes import DURATION_UNKNOWN, OrderDecision
from cds_service.decide.rules import decide
from cds_service.read.inputs import EpisodeCondition, Evidence, PathwayInputs, RedFlagFact
from cds_service.read.screen import AttestedScreen, ScreenQuestion, ScreenQuestionnaire

# The record's kinds that answer a question (the derived kinds the parser and the trend rules
# make, beside the question's own kind).
RECORD_KINDS: dict[str, frozenset[str]] = {
    "urinary-retention": frozenset({"urinary-retention", "neurogenic-bladder", "cauda-equina-syndrome"}),
    "weight-loss": frozenset({"weight-loss", "weight-loss-measured", "weight-loss-over-50"}),
    "neurological-deficit": frozenset({"neurological-deficit", "motor-grade-worsening"}),
    "long-term-steroids": frozenset({"long-term-steroids", "prolonged-corticosteroids"}),
}
# Data groups whose gaps the screen covers (§12.2): all but prior imaging and the patient record.
NOT_COVERED = frozenset({"imagingStudies", "diagnosticReports", "patient"})


def record_kinds(question: ScreenQuestion) -> frozenset[str]:
    return RECORD_KINDS.get(question.kind, frozenset({question.kind}))


@dataclass
class ScreenUse:
    """How one patient's attested screen entered the decision (the card says so)."""

    screen: AttestedScreen
    yes: list[ScreenQuestion] = field(default_factory=list)
    no: list[ScreenQuestion] = field(default_factory=list)
    # (question answered no, the record's facts that show the sign): both shown, the record stands.
    conflicts: list[tuple[ScreenQuestion, list[RedFlagFact]]] = field(default_factory=list)
    onset_used: bool = False
    care_used: bool = False
    covers_gaps: bool = False  # every red-flag question settled: covered gaps no longer withhold


@dataclass(frozen=True)
class OpenQuestions:
    """What the screen asks for one decision, and what it shows as already in the record."""

    onset: bool
    asked: tuple[str, ...]  # linkIds of yes/no questions
    from_record: tuple[tuple[ScreenQuestion, tuple[tuple[str, Evidence], ...]], ...]  # (label, evidence)

    @property
    def empty(self) -> bool:
        return not self.onset and not self.asked


def offers_screen(decision: OrderDecision) -> bool:
    """Cards that withhold the rating or cannot date the episode offer the screen (§12)."""
    return bool(decision.topic) and (decision.rating_withheld or decision.topic == DURATION_UNKNOWN)


def open_questions(decision: OrderDecision, questionnaire: ScreenQuestionnaire,
                   attested: AttestedScreen | None = None) -> OpenQuestions:
    """The onset is asked when the record has none (or only a recordedDate); a red-flag question
    when the record has no fact of its kind and its absence cannot be relied on (the rating was
    withheld for unread data); conservative care when the record shows none in the episode.
    A question the clinician already answered is not asked again."""
    answered = set(attested.answers) if attested else set()
    facts = list(decision.red_flags) + list(decision.documented_absent)
    # Red flags are worth asking only when the screen can stand in for what was not read.
    unreliable = decision.rating_withheld and any(
        k.rstrip("0123456789") not in NOT_COVERED for k in decision.incomplete_data)
    asked, from_record = [], []
    for question in questionnaire.questions:
        if question.is_red_flag:
            found = tuple((f.label, f.evidence) for f in facts
                          if f.group == question.group and f.kind in record_kinds(question))
            if found:
                from_record.append((question, found))
            elif unreliable and question.link_id not in answered:
                asked.append(question.link_id)
        elif decision.management:
            from_record.append((question, tuple((e.display or question.label, e) for e in decision.management)))
        elif question.link_id not in answered:
            asked.append(question.link_id)
    onset = (decision.onset is None or decision.onset_is_lower_bound) and not (attested and attested.onset)
    return OpenQuestions(onset, tuple(asked), tuple(from_record))


def decide_with_screen(inputs: PathwayInputs, attested: AttestedScreen,
                       questionnaire: ScreenQuestionnaire) -> tuple[list[OrderDecision], ScreenUse]:
    """`decide()` with the attested answers as facts. `inputs` is not changed."""
    inputs = copy.copy(inputs)
    ref = inputs.reference_date
    record_active, _ = active_red_flags(list(inputs.red_flags) + trend_red_flags(inputs), ref)
    use = ScreenUse(screen=attested)
    red_flags = list(inputs.red_flags)
    management = list(inputs.management)
    settled = True
    for question in questionnaire.questions:
        answer = attested.answers.get(question.link_id)
        shown = [f for f in record_active if f.group == question.group and f.kind in record_kinds(question)]
        if answer is None:
            settled = settled and (not question.is_red_flag or bool(shown))
            continue
        yes, day = answer
        # An answer given after the order was written speaks of the patient as ordered: it counts
        # on the reference date (its text keeps the day it was attested).
        evidence = _evidence(attested, question, day, min(day, ref))
        if yes:
            use.yes.append(question)
            if question.is_red_flag:
                red_flags.append(RedFlagFact(group=question.group, kind=question.kind, label=question.label,
                                             evidence=evidence, window_days=question.window_days))
            else:
                since = attested.care_since or attested.onset or day
                management.append(Evidence(evidence.reference, evidence.resource_type, evidence.code,
                                           evidence.system, question.label, since, evidence.text))
                use.care_used = True
        else:
            use.no.append(question)
            if shown:
                use.conflicts.append((question, shown))  # the record's sign stands
    inputs.red_flags, inputs.management = red_flags, management
    if attested.onset is not None and _needs_onset(inputs):
        evidence = Evidence(attested.reference, "QuestionnaireResponse", "11368-8", "http://loinc.org",
                            "Back pain onset", min(attested.attested_on, ref), _attested_text(attested.attested_on))
        inputs.episode = list(inputs.episode) + [EpisodeCondition(evidence=evidence, onset=attested.onset, recorded=None)]
        use.onset_used = True
    full_gaps = dict(inputs.incomplete_data)
    if settled and full_gaps:
        use.covers_gaps = True
        inputs.incomplete_data = {k: v for k, v in full_gaps.items() if k.rstrip("0123456789") in NOT_COVERED}
    decisions = decide(inputs)
    for decision in decisions:  # the card still says what could not be read
        decision.incomplete_data = dict(full_gaps)
        decision.unavailable_data = list(full_gaps)
    return decisions, use


def _needs_onset(inputs: PathwayInputs) -> bool:
    """No true onset on any episode condition (none, or recordedDates only): the screen's counts.
    Without an episode the screen's onset does not make one (the pathway would not apply)."""
    return bool(inputs.episode) and all(c.onset is None for c in inputs.episode)


def _attested_text(day: date) -> str:
    return f"clinician-attested on {day.isoformat()}"


def _evidence(attested: AttestedScreen, question: ScreenQuestion, day: date, counts_on: date) -> Evidence:
    code = question.code or {}
    return Evidence(attested.reference, "QuestionnaireResponse", code.get("code"), code.get("system"),
                    question.label, counts_on, _attested_text(day))
