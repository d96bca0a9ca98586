"""Governance figures of the red-flag screen: screens offered, completed, used, and how often
they changed the decision (docs/clinical-specification.md §12.5).

Role in the data flow: read side of the governance store, beside `report.build_report` (kept
apart so the per-topic report stays as it is). `load_screen_counts` counts the `lcds_screen`
rows of a period (by the day the screen was offered, UTC); `report_lines` and `csv_rows` print
them in the `lumbar-cds report` formats; the dashboard shows the same dict.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import Engine, func, select

from cds_service.governance.store.screen_table import screen


def load_screen_counts(engine: Engine, since: date | None, until: date | None) -> dict:
    """offered, completed, used (entered a later decision), changed (that decision's topic or
    rating differs from the one the screen was offered on), rated (offered without a rating,
    rated after it), and the completion and change rates."""
    c = screen.c
    window = []
    if since:
        window.append(c.created_at >= datetime.combine(since, time.min))
    if until:
        window.append(c.created_at < datetime.combine(until + timedelta(days=1), time.min))
    query = select(
        func.count(),
        func.count(c.completed_at),
        func.count(c.used_at),
        func.count().filter(c.changed.is_(True)),
        func.count().filter(c.used_at.is_not(None), c.offered_rating.is_(None), c.used_rating.is_not(None)),
    ).where(*window)
    with engine.connect() as connection:
        offered, completed, used, changed, rated = connection.execute(query).one()
    return {
        "offered": offered, "completed": completed, "used": used, "changed_decision": changed,
        "rated_after_screen": rated,
        "completion_rate": round(completed / offered, 4) if offered else None,
        "change_rate": round(changed / used, 4) if used else None,
    }


def report_lines(counts: dict) -> str:
    rate = counts["completion_rate"]
    change = counts["change_rate"]
    return (
        f"\nred-flag screens: offered {counts['offered']}, completed {counts['completed']}"
        f" ({'-' if rate is None else f'{rate * 100:.1f} %'}), used {counts['used']},"
        f" changed the decision {counts['changed_decision']}"
        f" ({'-' if change is None else f'{change * 100:.1f} %'} of those used),"
        f" rated after the screen {counts['rated_after_screen']}\n"
    )


def csv_rows(counts: dict) -> str:
    """Rows in the report's tidy CSV shape (topic, metric, key, value)."""
    keys = ("offered", "completed", "used", "changed_decision", "rated_after_screen")
    return "".join(f"red-flag-screen,{key},,{counts[key]}\n" for key in keys)
