"""Reads and writes of the governance store.

Role in the data flow: the only module that talks SQL. The background writer inserts judgement
rows; the feedback endpoint inserts feedback items (idempotently, joined to their card); the
report and the dashboard count a period in the database (`aggregates`, via `Store.report`);
`load_rows` reads a period's rows themselves (the pure `build_report` takes them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from cds_service.governance.report import FeedbackRow, JudgementRow, reason_tuples
from cds_service.governance.store.schema import JUDGEMENT_KEY, feedback, judgement


def naive_utc(moment: datetime) -> datetime:
    """Stored form of a time: UTC without tzinfo (SQLite and PostgreSQL alike)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


@dataclass(frozen=True)
class FeedbackCounts:
    received: int
    stored: int
    duplicates: int
    orphans: int

    def to_json(self) -> dict:
        return {"received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "orphans": self.orphans}


# INSERT ... ON CONFLICT DO NOTHING on the judgement's key, built once per dialect (the writer
# inserts a batch after each call when calls are few).
_UPSERTS = {
    module.dialect.name: module.insert(judgement).on_conflict_do_nothing(index_elements=list(JUDGEMENT_KEY))
    for module in (postgresql, sqlite)
}


class Store:
    """The governance database behind one engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # --- judgements ---------------------------------------------------------------------------

    def insert_judgements(self, rows: list[dict]) -> None:
        """Insert rows; a row whose (hook instance, order, service) is stored already is skipped:
        a repeated call, or a spool written again, records once."""
        if not rows:
            return
        with self.engine.begin() as connection:
            if connection.dialect.name in _UPSERTS:
                connection.execute(_UPSERTS[connection.dialect.name], rows)
                return
            for row in rows:  # other back ends: check, then insert (the unique key still guards races)
                if not connection.scalar(select(func.count()).where(
                        *(judgement.c[name] == row[name] for name in JUDGEMENT_KEY))):
                    connection.execute(insert(judgement).values(row))

    def known_cards(self, card_uuids: Iterable[str]) -> set[str]:
        wanted = sorted(set(card_uuids))
        found: set[str] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                found.update(connection.scalars(
                    select(judgement.c.card_uuid).where(judgement.c.card_uuid.in_(chunk))
                ))
        return found

    # --- feedback -----------------------------------------------------------------------------

    def insert_feedback(self, rows: list[dict]) -> FeedbackCounts:
        """Insert feedback rows (each with its `dedupe_key`); a key seen before is skipped."""
        known = self.known_cards(r["card_uuid"] for r in rows)
        stored = duplicates = orphans = 0
        with self.engine.begin() as connection:
            dialect = connection.dialect.name
            for row in rows:
                row = dict(row, orphan=row["card_uuid"] not in known)
                if dialect in ("postgresql", "sqlite"):
                    # ON CONFLICT DO NOTHING RETURNING: a row comes back only when inserted
                    # (rowcount is not reliable here with every driver).
                    module = postgresql if dialect == "postgresql" else sqlite
                    statement = module.insert(feedback).values(row).on_conflict_do_nothing(
                        index_elements=["dedupe_key"]).returning(feedback.c.id)
                    inserted = connection.execute(statement).first() is not None
                else:  # other back ends: check, then insert (the unique key still guards races)
                    exists = connection.scalar(
                        select(func.count()).where(feedback.c.dedupe_key == row["dedupe_key"]))
                    if not exists:
                        connection.execute(insert(feedback).values(row))
                    inserted = not exists
                if inserted:
                    stored += 1
                    orphans += row["orphan"]
                else:
                    duplicates += 1
        return FeedbackCounts(len(rows), stored, duplicates, orphans)

    # --- reading for reports ------------------------------------------------------------------

    def report(self, since: date | None, until: date | None,
               reason_labels: dict[tuple[str, str, str], str] | None = None) -> dict:
        """The governance report of [since, until], counted in the database (`aggregates`)."""
        from cds_service.governance.store.aggregates import period_report

        return period_report(self.engine, since, until, reason_labels)

    def load_rows(self, since: date | None, until: date | None) -> tuple[list[JudgementRow], list[FeedbackRow]]:
        """Judgements of [since, until] (UTC days, inclusive), their cards' feedback, and orphans."""
        start = datetime.combine(since, time.min) if since else None
        end = datetime.combine(until + timedelta(days=1), time.min) if until else None

        j = judgement.c
        window = []
        if start:
            window.append(j.recorded_at >= start)
        if end:
            window.append(j.recorded_at < end)
        query = select(j.recorded_at, j.service_id, j.topic, j.rating, j.card_uuid,
                       j.suggestion_uuids, j.shown, j.patient_hash, j.order_reference).where(*window)
        cards_in_window = select(j.card_uuid).where(j.card_uuid.is_not(None), *window)

        f = feedback.c
        known = select(judgement.c.card_uuid).where(judgement.c.card_uuid == f.card_uuid).exists()
        feedback_query = select(f.card_uuid, f.outcome, f.outcome_at, f.accepted_suggestions,
                                f.override_system, f.override_code, f.override_display, f.override_reasons,
                                known.label("card_known")).where(
            or_(f.card_uuid.in_(cards_in_window), ~known))
        with self.engine.connect() as connection:
            judgements = [
                JudgementRow(
                    recorded_at=r.recorded_at, service_id=r.service_id, topic=r.topic,
                    rating=r.rating, card_uuid=r.card_uuid,
                    suggestion_uuids=tuple(r.suggestion_uuids or ()), shown=bool(r.shown),
                    patient_hash=r.patient_hash, order_reference=r.order_reference,
                )
                for r in connection.execute(query.order_by(j.recorded_at, j.id))
            ]
            # Feedback of cards in the period, and orphans (the report filters them by date).
            items = [
                FeedbackRow(
                    card_uuid=r.card_uuid, outcome=r.outcome, outcome_at=r.outcome_at,
                    accepted_suggestions=tuple(r.accepted_suggestions or ()),
                    override_system=r.override_system, override_code=r.override_code,
                    override_display=r.override_display, card_known=bool(r.card_known),
                    override_reasons=reason_tuples(r.override_reasons),
                )
                for r in connection.execute(feedback_query.order_by(f.outcome_at, f.id))
            ]
        return judgements, items
