"""The governance report counted in the database: what `lumbar-cds report` and the dashboard read.

Role in the data flow: the store side of the pure `report` module. A period's judgements are
counted with one GROUP BY (topic, UTC day, rating, card kind), so the rows themselves never come
into Python. Decisions, not fires (report.DECISION_WINDOW): window functions over each
patient's order and topic (by recorded_at, the same SQL on PostgreSQL and SQLite 3.25+). For
the counts, LEAD marks the fire that ends a decision, and the GROUP BY counts those as decisions
and every row as a fire. Only the feedback and the shown cards it is about are read (feedback is
a small share of the judgements): LAG marks the fire that starts a decision and a running SUM
numbers them, over the orders that hold such a card only (numbering every order was most of the
report's time: 1 million judgements, SQLite, 21.0 s before, 9.6 s after). Orphan items are
counted in SQL. `report_from_counts` gives the same figures as `build_report` over all rows
(tests/governance/test_report.py checks both on each back end). Suggestions offered are counted
with json_array_length: the recorder writes a card's suggestion ids once each.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import Date, Engine, Integer, and_, case, cast, func, literal_column, select, tuple_

from cds_service.governance.report import (
    DECISION_WINDOW,
    FeedbackRow,
    JudgementCount,
    ShownCard,
    decision_key,
    reason_tuples,
    report_from_counts,
)
from cds_service.governance.store.schema import feedback, judgement


def _bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(since, time.min) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min) if until else None
    return start, end


def _window(column, start: datetime | None, end: datetime | None) -> list:
    return [c for c in (column >= start if start else None, column < end if end else None) if c is not None]


def period_report(engine: Engine, since: date | None, until: date | None,
                  reason_labels: dict[tuple[str, str, str], str] | None = None) -> dict:
    """The report of [since, until] (UTC days, inclusive), counted by the database."""
    start, end = _bounds(since, until)
    with engine.connect() as connection:
        dialect = connection.dialect.name
        counts = [JudgementCount(topic=r.topic, day=_as_date(r.day), rating=r.rating, card=r.card,
                                 orders=int(r.orders or 0), suggestions=int(r.suggestions or 0), fires=int(r.fires))
                  for r in connection.execute(_count_query(dialect, _fires_marked_last(dialect, start, end)))]
        cards = [ShownCard(r.card_uuid, r.topic, tuple(r.suggestion_uuids or ()),
                           decision_key(r.patient_hash, r.order_reference, r.topic, int(r.decision)))
                 for r in connection.execute(_cards_with_feedback(dialect, start, end))]
        items = [FeedbackRow(card_uuid=r.card_uuid, outcome=r.outcome, outcome_at=r.outcome_at,
                             accepted_suggestions=tuple(r.accepted_suggestions or ()),
                             override_system=r.override_system, override_code=r.override_code,
                             override_display=r.override_display,
                             override_reasons=reason_tuples(r.override_reasons))
                 for r in connection.execute(_feedback_of_cards(start, end))]
        orphans = connection.scalar(_orphan_count(start, end)) or 0
    return report_from_counts(counts, cards, items, since, until, reason_labels, orphans=int(orphans))


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _beyond_window(dialect: str, earlier, later):
    """`later` is more than DECISION_WINDOW after `earlier` (SQLite stores times as ISO text)."""
    seconds = int(DECISION_WINDOW.total_seconds())
    if dialect == "sqlite":
        return earlier < func.datetime(later, f"-{seconds} seconds")
    return earlier < later - literal_column(f"interval '{seconds} seconds'")


# One order's fires of one topic: the partition that decisions are counted in.
def _same_order(table) -> dict:
    return {"partition_by": (table.patient_hash, table.order_reference, table.topic),
            "order_by": (table.recorded_at, table.id)}


def _fires_marked_last(dialect: str, start, end):
    """The period's judgements, each with its card kind ("shown", "silent" or "") and marked
    `last` (1 when no fire of the same patient's order and topic follows within the window): all
    the counts need, in one window pass (LEAD only)."""
    j = judgement.c
    after = func.lead(j.recorded_at).over(**_same_order(j))
    has_card = and_(j.card_uuid.is_not(None), j.topic.is_not(None))
    shown = has_card & j.shown.is_(True)
    card = case((shown, "shown"), (has_card, "silent"), else_="")
    # a shown card's suggestions, counted here so the window's rows carry a number, not the list
    offered = case((shown, func.json_array_length(j.suggestion_uuids)), else_=0)
    marked = (select(j.recorded_at, j.topic, j.rating, card.label("card"), offered.label("offered"),
                     after.label("after"))
              .where(*_window(j.recorded_at, start, end)).subquery("neighbours"))
    n = marked.c
    last = case((n.after.is_(None), 1), (_beyond_window(dialect, n.recorded_at, n.after), 1), else_=0)
    return select(n.recorded_at, n.topic, n.rating, n.card, n.offered, last.label("last")).subquery("fires")


def _count_query(dialect: str, fires):
    f = fires.c
    day = func.date(f.recorded_at) if dialect == "sqlite" else cast(f.recorded_at, Date)
    last = cast(f.last, Integer)
    offered = func.sum(case((last == 1, f.offered), else_=0))
    return (select(f.topic, day.label("day"), f.rating, f.card, func.sum(last).label("orders"),
                   func.count().label("fires"), offered.label("suggestions"))
            .group_by(f.topic, day, f.rating, f.card))


def _cards_with_feedback(dialect: str, start, end):
    """The period's shown cards that have feedback, with the decision each belongs to (its
    running number on its order: LAG marks the fire that starts a decision, a running SUM numbers
    them). Only the orders that hold such a card are numbered: feedback is a small share of the
    judgements, and numbering every order took most of the report's time."""
    j = judgement.c
    orders_with_feedback = (select(j.patient_hash, j.order_reference, j.topic)
                            .where(j.card_uuid.in_(select(feedback.c.card_uuid)), *_window(j.recorded_at, start, end)))
    before = func.lag(j.recorded_at).over(**_same_order(j))
    neighbours = (select(j.id, j.recorded_at, j.topic, j.card_uuid, j.suggestion_uuids, j.shown,
                         j.patient_hash, j.order_reference, before.label("before"))
                  .where(tuple_(j.patient_hash, j.order_reference, j.topic).in_(orders_with_feedback),
                         *_window(j.recorded_at, start, end))
                  .subquery("neighbours"))
    n = neighbours.c
    starts = case((n.before.is_(None), 1), (_beyond_window(dialect, n.before, n.recorded_at), 1), else_=0)
    numbered = {**_same_order(n), "rows": (None, 0)}
    fires = (select(n.id, n.recorded_at, n.topic, n.card_uuid, n.suggestion_uuids, n.shown,
                    n.patient_hash, n.order_reference, func.sum(starts).over(**numbered).label("decision"))
             .subquery("fires"))
    f = fires.c
    return (select(f.card_uuid, f.topic, f.suggestion_uuids, f.patient_hash, f.order_reference, f.decision)
            .where(f.shown.is_(True), f.topic.is_not(None), f.card_uuid.is_not(None),
                   f.card_uuid.in_(select(feedback.c.card_uuid)))
            .order_by(f.recorded_at, f.id))


def _feedback_of_cards(start, end):
    """Feedback on the period's shown cards: one index lookup (judgement.card_uuid) per item."""
    f, j = feedback.c, judgement.c
    card_shown = select(j.card_uuid).where(j.card_uuid == f.card_uuid, j.shown.is_(True), j.topic.is_not(None),
                                           *_window(j.recorded_at, start, end)).exists()
    return (select(f.card_uuid, f.outcome, f.outcome_at, f.accepted_suggestions, f.override_system,
                   f.override_code, f.override_display, f.override_reasons)
            .where(card_shown).order_by(f.outcome_at, f.id))


def _orphan_count(start, end):
    """Feedback items whose card no judgement holds, by the day of their outcomeTimestamp."""
    f = feedback.c
    known = select(judgement.c.card_uuid).where(judgement.c.card_uuid == f.card_uuid).exists()
    return select(func.count()).select_from(feedback).where(~known, *_window(f.outcome_at, start, end))
