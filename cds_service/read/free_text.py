"""What a free-text finding means: TextFindings of one source -> pathway facts (clinical-specification.md §9).

Role in the data flow: read stage, called by the record readers that hold text (orders.py: the
draft order's reasonCode text and notes; conditions.py: code.text when no coding matched, notes;
observations.py: valueString, valueCodeableConcept.text, notes; documents.py: clinical notes).
The text goes through the TextReader (`cds_service/read/text`, built once at start-up, prefiltered
and cached by content hash); each finding becomes a fact by its assertion (§9.3):

- affirmed (the patient's own, current): a red flag of its group; current signs only from a
  source that is itself current (an inactive Condition's text gives history flags only);
- uncertain cauda equina ("rule out cauda equina syndrome", "? saddle anaesthesia"): suspected
  cauda equina, a cauda equina fact (the emergency card, ACR variant 4);
- historical: the history red flags only (cancer, osteoporosis, spinal surgery, long-term
  steroids, IV drug use), never a current sign;
- negated: a negative finding (`RedFlagFact.negated`) that cancels earlier signs of the same kind
  as a coded absent finding does -- unless the same source also affirms that sign (a templated
  "negative for ..." line does not cancel the history written above it);
- hypothetical, other-person: nothing;
- conservative care (affirmed or historical): management evidence; spinal surgery: surgery
  evidence; durations: an onset for the episode (see `text_onsets`).

Every fact's Evidence is the source resource's reference, the source's date (the windows count
from it) and the finding's snippet (`Evidence.text`, at most 120 characters) for the card to quote.
Nothing here logs: text, snippets and matches stay in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.read.inputs import Evidence, RedFlagFact
from cds_service.vocabulary import Assertion, RedFlagGroup

# §9.3: history red flags count from a historical mention; current signs do not. Immunosuppression
# is among them: its value set counts at any time (a transplant in 2018 still immunosuppresses).
HISTORY_GROUPS = frozenset({
    "malignancy-history", "fracture-osteoporosis", "spinal-surgery", "fracture-long-term-steroids",
    "infection-iv-drug-use", "infection-immunosuppression",
})
# §9.3: an uncertain mention of these is suspected cauda equina (bilateral sciatica is a sign of
# its own, and "possible bilateral sciatica" is not a suspicion of the syndrome).
NOT_SUSPECTED = frozenset({"cauda-equina-bilateral-sciatica"})
POSITIVE = frozenset({Assertion.AFFIRMED, Assertion.HISTORICAL})
# §9.5: a duration counts for the episode when an episode mention is this close to it in the same
# clause, or the text belongs to an episode record; and only from a source written in the last 90 days.
EPISODE_NEAR_CHARS = 100
ONSET_SOURCE_DAYS = 90
_CLAUSE_END = re.compile(r"[.!?;\n]")


@dataclass(frozen=True)
class TextSource:
    """Where a text came from: the resource it is cited as, its date, and what it is."""

    reference: str
    resource_type: str
    when: date | None
    label: str  # "clinical note", "reason for the order", "condition text", ...
    current: bool = True  # a current sign counts from it (False: an inactive Condition)
    episode_record: bool = False  # the text belongs to an episode record (a duration is its onset)


def read_source(ctx: Any, source: TextSource, texts: list[str]) -> list:
    """Findings of every text of the source (cheap when the prefilter finds nothing)."""
    reader = ctx.text_reader
    if reader is None:
        return []
    found = []
    for text in texts:
        if isinstance(text, str) and text.strip():
            found += [(text, f) for f in reader.read(text, source.when)]
    return found


def might_say(ctx: Any, texts: list[str]) -> bool:
    """False when `read_source` would find nothing in `texts` for sure (the reader's prefilter):
    a caller skips what it would have prepared for the read (dates, sources)."""
    reader = ctx.text_reader
    return reader is not None and any(
        isinstance(text, str) and text.strip() and reader.might_match(text) for text in texts)


def texts_of_notes(resource: dict) -> list[str]:
    return [n["text"] for n in resource.get("note") or [] if isinstance(n, dict) and isinstance(n.get("text"), str)]


def evidence_of(source: TextSource, display: str, snippet: str) -> Evidence:
    return Evidence(reference=source.reference, resource_type=source.resource_type,
                    display=f"{display} ({source.label}, free text)", date=source.when, text=snippet)


def affirms_episode(found: list) -> Any:
    """The first affirmed episode mention (low back pain, sciatica, radiculopathy), or None."""
    return next((f for _, f in found if f.group == "qualifying-episode" and f.assertion == Assertion.AFFIRMED), None)


def apply_findings(ctx: Any, source: TextSource, found: list) -> None:
    """Turn a source's findings into red flags, negative findings, surgery, management, onsets."""
    vs = ctx.vs
    positives: set[str] = set()
    facts: list[tuple[str, bool, Any, str]] = []  # (value-set id, negated, finding, label)
    for _, finding in found:
        group, assertion = finding.group, finding.assertion
        if group in ("duration", "qualifying-episode"):
            continue
        if group in ("conservative-care", "spinal-surgery"):
            target = ctx.inputs.management if group == "conservative-care" else ctx.inputs.spinal_surgery
            what = "Conservative care" if group == "conservative-care" else "Prior lumbar spine surgery"
            evidence = evidence_of(source, what, finding.snippet)
            if assertion in POSITIVE and evidence not in target:  # one per sentence quoted
                target.append(evidence)
            continue
        valueset = vs.by_id.get(group)
        if valueset is None or valueset.purpose != "red-flag":
            continue
        label = valueset.label
        if assertion == Assertion.AFFIRMED and (source.current or not valueset.current_sign):
            positives.add(group)
            facts.append((group, False, finding, label))
        elif assertion == Assertion.HISTORICAL and group in HISTORY_GROUPS:
            positives.add(group)
            facts.append((group, False, finding, label))
        elif assertion == Assertion.UNCERTAIN and valueset.group == RedFlagGroup.CAUDA_EQUINA and group not in NOT_SUSPECTED:
            positives.add(group)
            facts.append((group, False, finding, f"Suspected {label[0].lower()}{label[1:]}"))
        elif assertion == Assertion.NEGATED:
            facts.append((group, True, finding, label))
    seen: set[tuple[str, bool]] = set()
    for group, negated, finding, label in facts:
        if (negated and group in positives) or (group, negated) in seen:
            continue
        seen.add((group, negated))
        valueset = vs[group]
        evidence = evidence_of(source, label if not negated else f"{label} documented absent", finding.snippet)
        ctx.inputs.red_flags.append(RedFlagFact(
            group=valueset.group, kind=valueset.kind, label=label, evidence=evidence,
            window_days=valueset.window_days, negated=negated,
        ))
        if valueset.kind == "long-term-steroids" and not negated:
            ctx.inputs.corticosteroids.append(evidence)
    _onsets(ctx, source, found)


def _same_clause(text: str, a: Any, b: Any) -> bool:
    """Two findings close together with no sentence or clause end between them."""
    lo, hi = min(a.end, b.end), max(a.start, b.start)
    return hi - lo <= EPISODE_NEAR_CHARS and not _CLAUSE_END.search(text, lo, hi)


def _onsets(ctx: Any, source: TextSource, found: list) -> None:
    if source.when is None or (ctx.inputs.reference_date - source.when).days > ONSET_SOURCE_DAYS:
        return
    for text, finding in found:
        if finding.group != "duration" or finding.onset is None or finding.assertion not in POSITIVE:
            continue
        near = any(
            other.group == "qualifying-episode" and other.assertion in POSITIVE and t is text
            and _same_clause(text, other, finding) for t, other in found
        )
        if near or source.episode_record:
            ctx.text_onsets.append((finding.onset, evidence_of(source, "Symptom duration", finding.snippet)))
