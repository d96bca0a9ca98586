"""The governance report counted in the database: what `lumbar-cds report` and the dashboard read.

Role in the data flow: the store side of the pure `report` module. A period's judgements are
counted with one GROUP BY (topic, UTC day, rating, card kind) over the index on (recorded_at,
topic, rating, shown), so the rows themselves never come into Python; only the feedback and the
shown cards it is about are read (feedback is a small share of the judgements), and orphan items
are counted in SQL. `report_from_counts` gives the same figures as `build_report` over all rows
(tests/governance/test_report.py checks both on each back end). Suggestions offered are counted
with json_array_length: the recorder writes a card's suggestion ids once each.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import Date, Engine, and_, case, cast, func, select

from cds_service.governance.report import FeedbackRow, JudgementCount, ShownCard, report_from_counts
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
                                 orders=int(r.orders), suggestions=int(r.suggestions or 0))
                  for r in connection.execute(_count_query(dialect, start, end))]
        cards = [ShownCard(r.card_uuid, r.topic, tuple(r.suggestion_uuids or ()))
                 for r in connection.execute(_cards_with_feedback(start, end))]
        items = [FeedbackRow(card_uuid=r.card_uuid, outcome=r.outcome, outcome_at=r.outcome_at,
                             accepted_suggestions=tuple(r.accepted_suggestions or ()),
                             override_system=r.override_system, override_code=r.override_code,
                             override_display=r.override_display)
                 for r in connection.execute(_feedback_of_cards(start, end))]
        orphans = connection.scalar(_orphan_count(start, end)) or 0
    return report_from_counts(counts, cards, items, since, until, reason_labels, orphans=int(orphans))


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _count_query(dialect: str, start, end):
    j = judgement.c
    day = func.date(j.recorded_at) if dialect == "sqlite" else cast(j.recorded_at, Date)
    has_card = and_(j.card_uuid.is_not(None), j.topic.is_not(None))
    card = case((has_card & j.shown.is_(True), "shown"), (has_card, "silent"), else_="")
    offered = func.sum(case((has_card & j.shown.is_(True), func.json_array_length(j.suggestion_uuids)), else_=0))
    return (select(j.topic, day.label("day"), j.rating, card.label("card"), func.count().label("orders"),
                   offered.label("suggestions"))
            .where(*_window(j.recorded_at, start, end))
            .group_by(j.topic, day, j.rating, card))


def _shown_cards_with_feedback(start, end):
    j = judgement.c
    return (j.shown.is_(True), j.topic.is_not(None), j.card_uuid.is_not(None),
            j.card_uuid.in_(select(feedback.c.card_uuid)), *_window(j.recorded_at, start, end))


def _cards_with_feedback(start, end):
    j = judgement.c
    return (select(j.card_uuid, j.topic, j.suggestion_uuids)
            .where(*_shown_cards_with_feedback(start, end)).order_by(j.recorded_at, j.id))


def _feedback_of_cards(start, end):
    """Feedback on the period's shown cards: one index lookup (judgement.card_uuid) per item."""
    f, j = feedback.c, judgement.c
    card_shown = select(j.card_uuid).where(j.card_uuid == f.card_uuid, j.shown.is_(True), j.topic.is_not(None),
                                           *_window(j.recorded_at, start, end)).exists()
    return (select(f.card_uuid, f.outcome, f.outcome_at, f.accepted_suggestions, f.override_system,
                   f.override_code, f.override_display)
            .where(card_shown).order_by(f.outcome_at, f.id))


def _orphan_count(start, end):
    """Feedback items whose card no judgement holds, by the day of their outcomeTimestamp."""
    f = feedback.c
    known = select(judgement.c.card_uuid).where(judgement.c.card_uuid == f.card_uuid).exists()
    return select(func.count()).select_from(feedback).where(~known, *_window(f.outcome_at, start, end))
