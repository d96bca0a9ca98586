"""The governance figures: what fired, what was accepted or overridden, and why.

Role in the data flow: pure, over counts. The store counts a period's judgements in the database
(`store.aggregates`: GROUP BY topic, UTC day, rating and card kind, so a million rows never come
into Python) and reads the feedback of its shown cards; `report_from_counts` turns them into the
figures that `lumbar-cds report` prints and the dashboard charts. `build_report` gives the same
figures from judgement rows (`count_rows` does in Python what the database does). No I/O, no
clock: the period is an input.

Definitions (documented in the README "Governance" section):
- a card's *outcome* is its latest feedback item (by outcomeTimestamp); a card with both an
  `accepted` and a later `overridden` item counts as overridden;
- override rate = overridden / (accepted + overridden) among shown cards with feedback;
- top override reasons rank the reason codes of the cards whose outcome is overridden;
- suggestion acceptance = distinct accepted suggestion ids that belong to the card / suggestions
  offered on shown cards;
- days are UTC dates of the judgement's time;
- orphan feedback = items whose card uuid the store never recorded.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

NO_CARD = "(no card)"
TOP_REASONS = 5


@dataclass(frozen=True)
class JudgementRow:
    recorded_at: datetime  # UTC
    service_id: str
    topic: str | None
    rating: str | None
    card_uuid: str | None
    suggestion_uuids: tuple[str, ...] = ()
    shown: bool = True


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


@dataclass(frozen=True)
class JudgementCount:
    """A group of a period's judgements: one topic, UTC day, rating and card kind."""

    topic: str | None
    day: date
    rating: str | None
    card: str  # "shown" | "silent" | "" (no card: no topic or no card uuid)
    orders: int
    suggestions: int = 0  # suggestions offered on the group's shown cards


@dataclass(frozen=True)
class ShownCard:
    """A shown card of the period (one that has feedback is enough): its topic and suggestions."""

    card_uuid: str
    topic: str
    suggestion_uuids: tuple[str, ...] = ()


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
            "orders_per_day": self.orders_per_day,
            "cards_per_day": self.cards_per_day,
        }


def _reason_key(item: FeedbackRow) -> tuple[str, str] | None:
    if not item.override_code:
        return None
    return (item.override_system or "", item.override_code)


def _in_period(day: date, since: date | None, until: date | None) -> bool:
    return not ((since and day < since) or (until and day > until))


@dataclass
class _Judged:
    """The judgements of the period, counted per topic, and the shown cards they produced."""

    topics: dict[str, TopicFigures] = field(default_factory=dict)
    card_topic: dict[str, str] = field(default_factory=dict)  # shown card uuid -> topic
    card_suggestions: dict[str, frozenset[str]] = field(default_factory=dict)  # shown card -> offered ids
    per_day: Counter[str] = field(default_factory=Counter)
    ratings: Counter[str] = field(default_factory=Counter)


@dataclass
class _Answered:
    """The feedback about the period's shown cards: the latest item per card decides its outcome."""

    latest: dict[str, FeedbackRow] = field(default_factory=dict)
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


def count_rows(judgements: list[JudgementRow], since: date | None,
               until: date | None) -> tuple[list[JudgementCount], list[ShownCard]]:
    """What the store's GROUP BY gives, from rows: the period's counts and shown cards in time order."""
    groups: Counter[tuple] = Counter()
    offered: Counter[tuple] = Counter()
    cards: list[ShownCard] = []
    for row in sorted(judgements, key=lambda r: r.recorded_at):
        day = row.recorded_at.date()
        if not _in_period(day, since, until):
            continue
        kind = ("shown" if row.shown else "silent") if row.card_uuid and row.topic else ""
        key = (row.topic, day, row.rating, kind)
        groups[key] += 1
        if kind == "shown":
            offered[key] += len(set(row.suggestion_uuids))
            cards.append(ShownCard(row.card_uuid, row.topic, tuple(row.suggestion_uuids)))
    return [JudgementCount(*key, orders=n, suggestions=offered[key]) for key, n in groups.items()], cards


def _tally(counts: list[JudgementCount], cards: list[ShownCard]) -> _Judged:
    judged = _Judged()
    for group in sorted(counts, key=lambda g: (g.day, g.topic or "", g.rating or "", g.card)):
        topic = group.topic or NO_CARD
        figures = judged.topics.setdefault(topic, TopicFigures(topic))
        figures.orders_judged += group.orders
        iso = group.day.isoformat()
        figures.orders_per_day[iso] = figures.orders_per_day.get(iso, 0) + group.orders
        judged.per_day[iso] += group.orders
        rating = group.rating or "undetermined"
        figures.ratings[rating] = figures.ratings.get(rating, 0) + group.orders
        judged.ratings[rating] += group.orders
        if group.card == "shown":
            figures.cards_shown += group.orders
            figures.cards_per_day[iso] = figures.cards_per_day.get(iso, 0) + group.orders
            figures.suggestions_offered += group.suggestions
        elif group.card == "silent":
            figures.cards_silent += group.orders
    for card in cards:
        judged.card_topic[card.card_uuid] = card.topic
        judged.card_suggestions[card.card_uuid] = frozenset(card.suggestion_uuids)
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
        answered.latest[item.card_uuid] = item
        if item.outcome == "accepted":
            offered = judged.card_suggestions[item.card_uuid]
            answered.accepted_ids[item.card_uuid].update(s for s in item.accepted_suggestions if s in offered)
        key = _reason_key(item)
        if key and item.override_display:
            answered.reason_display.setdefault(key, item.override_display)
    return answered


def _count_outcomes(judged: _Judged, answered: _Answered, reason_labels: dict[tuple[str, str, str], str]) -> None:
    """Accepted and overridden cards, accepted suggestions and the top override reasons per topic."""
    reasons: dict[str, Counter] = defaultdict(Counter)
    for card, item in answered.latest.items():
        figures = judged.topics[judged.card_topic[card]]
        if item.outcome == "accepted":
            figures.accepted += 1
        else:
            figures.overridden += 1
            key = _reason_key(item)
            if key:  # the reason of the override that stands (an override without one is not ranked)
                reasons[figures.topic][key] += 1
    for card, ids in answered.accepted_ids.items():
        judged.topics[judged.card_topic[card]].suggestions_accepted += len(ids)
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
        "totals": {
            "orders_judged": sum(judged.per_day.values()),
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


# --- renderings ---------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _reason_label(reason: dict) -> str:
    return reason.get("display") or reason["code"]


def render_table(report: dict) -> str:
    """A plain-text report for a terminal."""
    period = report["period"]
    lines = [
        f"Governance report  since {period['since'] or 'the start'}  until {period['until'] or 'now'}",
        "",
    ]
    header = ("topic", "shown", "silent", "accepted", "overridden", "override", "sugg. acc.", "orders")
    rows = [header]
    for t in report["topics"]:
        rows.append((
            t["topic"], str(t["cards_shown"]), str(t["cards_silent"]), str(t["accepted"]),
            str(t["overridden"]), _percent(t["override_rate"]),
            f"{t['suggestions_accepted']}/{t['suggestions_offered']}", str(t["orders_judged"]),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    totals = report["totals"]
    lines += [
        "",
        f"orders judged: {totals['orders_judged']}   orphan feedback items: {totals['orphan_feedback']}",
    ]
    for t in report["topics"]:
        lines.append("")
        lines.append(f"[{t['topic']}]")
        lines.append("  ratings: " + (", ".join(f"{k} {v}" for k, v in sorted(t["ratings"].items())) or "-"))
        reasons = t["top_override_reasons"]
        lines.append("  top override reasons: " + (", ".join(f"{_reason_label(r)} {r['count']}" for r in reasons) or "-"))
        lines.append("  orders per day: " + (", ".join(f"{d} {n}" for d, n in t["orders_per_day"].items()) or "-"))
    return "\n".join(lines) + "\n"


def render_csv(report: dict) -> str:
    """Tidy CSV (topic, metric, key, value): one figure a line, ready for a pivot table."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["topic", "metric", "key", "value"])
    for t in report["topics"]:
        topic = t["topic"]
        for metric in ("cards_shown", "cards_silent", "accepted", "overridden", "override_rate",
                       "suggestions_offered", "suggestions_accepted", "suggestion_acceptance", "orders_judged"):
            value = t[metric]
            writer.writerow([topic, metric, "", "" if value is None else value])
        for reason in t["top_override_reasons"]:
            writer.writerow([topic, "override_reason", f"{reason['system']}|{reason['code']}", reason["count"]])
        for rating, n in sorted(t["ratings"].items()):
            writer.writerow([topic, "rating", rating, n])
        for day, n in t["orders_per_day"].items():
            writer.writerow([topic, "orders_per_day", day, n])
        for day, n in t["cards_per_day"].items():
            writer.writerow([topic, "cards_per_day", day, n])
    writer.writerow(["(all)", "orphan_feedback", "", report["totals"]["orphan_feedback"]])
    return out.getvalue()


def chart_data(report: dict) -> dict:
    """The dashboard's three charts as plain series (plotted by static/dashboard.js)."""
    topics = [t for t in report["topics"] if t["topic"] != NO_CARD]
    days = sorted({d for t in topics for d in t["cards_per_day"]})
    cards_per_day = [
        {"topic": t["topic"], "days": days, "counts": [t["cards_per_day"].get(d, 0) for d in days]}
        for t in topics if t["cards_shown"]
    ]
    override_rate = [
        {"topic": t["topic"], "rate": t["override_rate"], "overridden": t["overridden"],
         "answered": t["accepted"] + t["overridden"]}
        for t in topics if t["override_rate"] is not None
    ]
    reasons: Counter[tuple[str, str]] = Counter()
    labels: dict[tuple[str, str], str] = {}
    for t in topics:
        for r in t["top_override_reasons"]:
            reasons[(t["topic"], r["code"])] += r["count"]
            labels.setdefault((t["topic"], r["code"]), _reason_label(r))
    override_reasons = [
        {"topic": topic, "code": code, "label": labels[(topic, code)], "count": n}
        for (topic, code), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {"topics": [t["topic"] for t in topics], "cards_per_day": cards_per_day,
            "override_rate": override_rate, "override_reasons": override_reasons}
