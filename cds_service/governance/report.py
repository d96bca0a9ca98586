"""The governance figures: what fired, what was accepted or overridden, and why.

Role in the data flow: pure, over counts. The store counts a period's judgements in the database
(`store.aggregates`: GROUP BY topic, UTC day, rating and card kind, so a million rows never come
into Python) and reads the feedback of its shown cards; `report_from_counts` turns them into the
figures that `lumbar-cds report` prints and the dashboard charts. `build_report` gives the same
figures from judgement rows (`count_rows` does in Python what the database does). No I/O, no
clock: the period is an input.

Definitions (documented in the README "Governance" section):
- figures count *decisions*, not fires: `order-select` fires on every edit of an order, so the
  fires of one patient's order and topic (the same card topic, or none) each within
  DECISION_WINDOW of the one before are one decision, counted once, on the day, rating and card
  kind of its last fire (the order as finally entered). The raw fires stay as a second figure
  (`fires`, `cards_shown_fires`);
- a decision's *outcome* is the latest feedback item (by outcomeTimestamp) about any of its
  cards; a decision with both an `accepted` and a later `overridden` item counts as overridden;
- override rate = overridden / (accepted + overridden) among decisions with feedback;
- top override reasons rank every reason code of the decisions whose outcome is overridden (Epic
  may send several reasons for one item: each counts);
- suggestion acceptance = distinct accepted suggestion ids that belong to the decision's cards /
  suggestions offered on the last fire of each decision whose card was shown;
- days are UTC dates of the judgement's time;
- orphan feedback = items whose card uuid the store never recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

NO_CARD = "(no card)"
TOP_REASONS = 5
# Fires of one patient's order and topic this close together are one decision (an order being
# entered: the sandbox fires order-select three times for one order). 30 minutes covers an order
# entry session; a new look at the order after a break counts as a new decision.
DECISION_WINDOW = timedelta(minutes=30)
COUNTING = {"unit": "decision", "window_minutes": int(DECISION_WINDOW.total_seconds() // 60),
            "note": "fires of one patient's order and topic within the window count as one decision; "
                    "'fires' and 'cards_shown_fires' are the raw hook calls"}


@dataclass(frozen=True)
class JudgementRow:
    recorded_at: datetime  # UTC
    service_id: str
    topic: str | None
    rating: str | None
    card_uuid: str | None
    suggestion_uuids: tuple[str, ...] = ()
    shown: bool = True
    patient_hash: str | None = None
    order_reference: str | None = None


@dataclass(frozen=True)
class FeedbackRow:
    card_uuid: str
    outcome: str  # accepted | overridden
    outcome_at: datetime  # UTC
    accepted_suggestions: tuple[str, ...] = ()
    override_system: str | None = None
    override_code: str | None = None
    override_display: str | None = None
    card_known: bool = True  # False: no judgement ever recorded this card uuid (orphan)
    # Every reason of the item as (system, code, display); empty on rows stored before revision 0005.
    override_reasons: tuple[tuple[str | None, str, str | None], ...] = ()


@dataclass(frozen=True)
class JudgementCount:
    """A group of a period's judgements: one topic, UTC day, rating and card kind."""

    topic: str | None
    day: date
    rating: str | None
    card: str  # "shown" | "silent" | "" (no card: no topic or no card uuid)
    orders: int  # decisions whose last fire is in this group
    suggestions: int = 0  # suggestions offered on those decisions' last fires, when shown
    fires: int = 0  # the hook calls of the group, each counted


@dataclass(frozen=True)
class ShownCard:
    """A shown card of the period (one that has feedback is enough): its topic and suggestions."""

    card_uuid: str
    topic: str
    suggestion_uuids: tuple[str, ...] = ()
    decision: str = ""  # the decision the card belongs to ("" : the card alone)


@dataclass
class TopicFigures:
    topic: str
    cards_shown: int = 0
    cards_silent: int = 0
    accepted: int = 0
    overridden: int = 0
    suggestions_offered: int = 0
    suggestions_accepted: int = 0
    orders_judged: int = 0
    fires: int = 0
    cards_shown_fires: int = 0
    ratings: dict[str, int] = field(default_factory=dict)
    override_reasons: list[dict] = field(default_factory=list)
    orders_per_day: dict[str, int] = field(default_factory=dict)
    cards_per_day: dict[str, int] = field(default_factory=dict)  # shown cards

    @property
    def override_rate(self) -> float | None:
        answered = self.accepted + self.overridden
        return round(self.overridden / answered, 4) if answered else None

    @property
    def suggestion_acceptance(self) -> float | None:
        offered = self.suggestions_offered
        return round(self.suggestions_accepted / offered, 4) if offered else None

    def to_json(self) -> dict:
        return {
            "topic": self.topic,
            "cards_shown": self.cards_shown,
            "cards_silent": self.cards_silent,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "override_rate": self.override_rate,
            "top_override_reasons": self.override_reasons,
            "suggestions_offered": self.suggestions_offered,
            "suggestions_accepted": self.suggestions_accepted,
            "suggestion_acceptance": self.suggestion_acceptance,
            "ratings": self.ratings,
            "orders_judged": self.orders_judged,
            "fires": self.fires,
            "cards_shown_fires": self.cards_shown_fires,
            "orders_per_day": self.orders_per_day,
            "cards_per_day": self.cards_per_day,
        }


def reason_tuples(stored) -> tuple:
    """The `override_reasons` column ({system, code, display} list) as the report's tuples."""
    return tuple((r.get("system"), r.get("code"), r.get("display")) for r in stored or () if isinstance(r, dict))


def _reasons(item: FeedbackRow) -> list[tuple[tuple[str, str], str | None]]:
    """Every reason of an item as ((system, code), display), once each."""
    given = item.override_reasons or ((item.override_system, item.override_code, item.override_display),)
    out: dict[tuple[str, str], str | None] = {}
    for system, code, display in given:
        if code:
            out.setdefault((system or "", code), display)
    return list(out.items())


def _in_period(day: date, since: date | None, until: date | None) -> bool:
    return not ((since and day < since) or (until and day > until))


@dataclass
class _Judged:
    """The judgements of the period, counted per topic, and the shown cards they produced."""

    topics: dict[str, TopicFigures] = field(default_factory=dict)
    card_topic: dict[str, str] = field(default_factory=dict)  # shown card uuid -> topic
    card_suggestions: dict[str, frozenset[str]] = field(default_factory=dict)  # shown card -> offered ids
    card_decision: dict[str, str] = field(default_factory=dict)  # shown card -> its decision
    fires: int = 0
    per_day: Counter[str] = field(default_factory=Counter)
    ratings: Counter[str] = field(default_factory=Counter)


@dataclass
class _Answered:
    """The feedback about the period's shown cards: the latest item per decision decides its outcome."""

    latest: dict[str, FeedbackRow] = field(default_factory=dict)  # decision -> item
    accepted_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    reason_display: dict[tuple[str, str], str] = field(default_factory=dict)
    orphans: int = 0


def build_report(
    judgements: list[JudgementRow],
    feedback: list[FeedbackRow],
    since: date | None = None,
    until: date | None = None,
    reason_labels: dict[tuple[str, str, str], str] | None = None,
) -> dict:
    """Figures per topic for judgements in [since, until] (UTC dates, both inclusive).

    Feedback is attributed to its card's period; an orphan item (`card_known` False) to the period
    of its outcomeTimestamp. Items about cards outside the period, or about silent cards, are
    left out. `reason_labels` ((topic, system, code) -> display, from the card content) names
    reasons whose feedback carried no display (the sandbox sends only code and system).
    """
    counts, cards = count_rows(judgements, since, until)
    return report_from_counts(counts, cards, feedback, since, until, reason_labels)


def report_from_counts(
    counts: list[JudgementCount],
    cards: list[ShownCard],
    feedback: list[FeedbackRow],
    since: date | None = None,
    until: date | None = None,
    reason_labels: dict[tuple[str, str, str], str] | None = None,
    orphans: int | None = None,
) -> dict:
    """The report from the period's judgement counts, its shown cards (later ones win) and their
    feedback; `orphans`, when the store counted them, replaces counting `card_known` False items."""
    judged = _tally(counts, cards)
    answered = _read_feedback(feedback, judged, since, until)
    if orphans is not None:
        answered.orphans = orphans
    _count_outcomes(judged, answered, reason_labels or {})
    return _report_json(judged, answered.orphans, since, until)


def decision_key(patient_hash: str | None, order_reference: str | None, topic: str | None, number: int) -> str:
    """The name of a decision: the patient's order and topic, and which decision on it (1, 2, ...)."""
    return f"{patient_hash}|{order_reference}|{topic or ''}|{number}"


def _decisions(rows: list[JudgementRow]) -> list[tuple[JudgementRow, str, bool]]:
    """Each row (in time order) with its decision and whether it is the decision's last fire."""
    last_at: dict[tuple, datetime] = {}
    numbers: Counter[tuple] = Counter()
    named: list[tuple[JudgementRow, tuple, str]] = []
    for index, row in enumerate(rows):
        # Without a patient and order (rows built by hand), each row is its own decision.
        key = (row.patient_hash, row.order_reference, row.topic) if row.order_reference else ("row", index)
        if key not in last_at or row.recorded_at - last_at[key] > DECISION_WINDOW:
            numbers[key] += 1
        last_at[key] = row.recorded_at
        named.append((row, key, decision_key(row.patient_hash, row.order_reference, row.topic, numbers[key])
                      if row.order_reference else f"row-{index}"))
    out, seen_later = [], set()
    for row, _key, name in reversed(named):
        out.append((row, name, name not in seen_later))
        seen_later.add(name)
    return list(reversed(out))


def count_rows(judgements: list[JudgementRow], since: date | None,
               until: date | None) -> tuple[list[JudgementCount], list[ShownCard]]:
    """What the store's GROUP BY gives, from rows: the period's counts (decisions, on their last
    fire's group, and fires) and shown cards in time order."""
    groups: Counter[tuple] = Counter()
    fires: Counter[tuple] = Counter()
    offered: Counter[tuple] = Counter()
    cards: list[ShownCard] = []
    in_period = [r for r in sorted(judgements, key=lambda r: r.recorded_at)
                 if _in_period(r.recorded_at.date(), since, until)]
    for row, decision, last in _decisions(in_period):
        kind = ("shown" if row.shown else "silent") if row.card_uuid and row.topic else ""
        key = (row.topic, row.recorded_at.date(), row.rating, kind)
        fires[key] += 1
        groups[key] += last
        if kind == "shown":
            offered[key] += len(set(row.suggestion_uuids)) if last else 0
            cards.append(ShownCard(row.card_uuid, row.topic, tuple(row.suggestion_uuids), decision))
    return [JudgementCount(*key, orders=groups[key], suggestions=offered[key], fires=n)
            for key, n in fires.items()], cards


def _tally(counts: list[JudgementCount], cards: list[ShownCard]) -> _Judged:
    judged = _Judged()
    for group in sorted(counts, key=lambda g: (g.day, g.topic or "", g.rating or "", g.card)):
        topic = group.topic or NO_CARD
        figures = judged.topics.setdefault(topic, TopicFigures(topic))
        figures.orders_judged += group.orders
        figures.fires += group.fires
        judged.fires += group.fires
        iso = group.day.isoformat()
        figures.orders_per_day[iso] = figures.orders_per_day.get(iso, 0) + group.orders
        judged.per_day[iso] += group.orders
        rating = group.rating or "undetermined"
        figures.ratings[rating] = figures.ratings.get(rating, 0) + group.orders
        judged.ratings[rating] += group.orders
        if group.card == "shown":
            figures.cards_shown_fires += group.fires
            figures.cards_shown += group.orders
            figures.cards_per_day[iso] = figures.cards_per_day.get(iso, 0) + group.orders
            figures.suggestions_offered += group.suggestions
        elif group.card == "silent":
            figures.cards_silent += group.orders
    for card in cards:
        judged.card_topic[card.card_uuid] = card.topic
        judged.card_suggestions[card.card_uuid] = frozenset(card.suggestion_uuids)
        judged.card_decision[card.card_uuid] = card.decision or card.card_uuid
    return judged


def _read_feedback(feedback: list[FeedbackRow], judged: _Judged, since: date | None,
                   until: date | None) -> _Answered:
    answered = _Answered()
    for item in sorted(feedback, key=lambda f: (f.outcome_at, f.outcome)):
        if not item.card_known:
            if _in_period(item.outcome_at.date(), since, until):
                answered.orphans += 1
            continue
        if item.card_uuid not in judged.card_topic:
            continue
        decision = judged.card_decision[item.card_uuid]
        answered.latest[decision] = item
        if item.outcome == "accepted":
            offered = judged.card_suggestions[item.card_uuid]
            answered.accepted_ids[decision].update(s for s in item.accepted_suggestions if s in offered)
        for key, display in _reasons(item):
            if display:
                answered.reason_display.setdefault(key, display)
    return answered


def _count_outcomes(judged: _Judged, answered: _Answered, reason_labels: dict[tuple[str, str, str], str]) -> None:
    """Accepted and overridden decisions, accepted suggestions and the top override reasons per topic."""
    reasons: dict[str, Counter] = defaultdict(Counter)
    for _decision, item in answered.latest.items():
        figures = judged.topics[judged.card_topic[item.card_uuid]]
        if item.outcome == "accepted":
            figures.accepted += 1
        else:
            figures.overridden += 1
            # Every reason of the override that stands (an override without one is not ranked).
            for key, _display in _reasons(item):
                reasons[figures.topic][key] += 1
    topic_of_decision = {decision: judged.card_topic[card] for card, decision in judged.card_decision.items()}
    for decision, ids in answered.accepted_ids.items():
        judged.topics[topic_of_decision[decision]].suggestions_accepted += len(ids)
    for topic, counter in reasons.items():
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0]))[:TOP_REASONS]
        judged.topics[topic].override_reasons = [
            {"system": system, "code": code,
             "display": answered.reason_display.get((system, code)) or reason_labels.get((topic, system, code)),
             "count": n}
            for (system, code), n in ranked
        ]


def _report_json(judged: _Judged, orphans: int, since: date | None, until: date | None) -> dict:
    ordered = sorted(judged.topics.values(), key=lambda f: (f.topic == NO_CARD, f.topic))
    return {
        "period": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
        "counting": dict(COUNTING),
        "totals": {
            "orders_judged": sum(judged.per_day.values()),
            "fires": judged.fires,
            "cards_shown_fires": sum(f.cards_shown_fires for f in ordered),
            "cards_shown": sum(f.cards_shown for f in ordered),
            "cards_silent": sum(f.cards_silent for f in ordered),
            "accepted": sum(f.accepted for f in ordered),
            "overridden": sum(f.overridden for f in ordered),
            "orphan_feedback": orphans,
            "ratings": dict(sorted(judged.ratings.items())),
            "orders_per_day": dict(sorted(judged.per_day.items())),
        },
        "topics": [f.to_json() for f in ordered],
    }
