"""The governance report rendered: a terminal table, tidy CSV, and the dashboard's chart series.

Role in the data flow: the last step of `lumbar-cds report` and the dashboard, over the figures
`report.report_from_counts` gives (pure, no I/O).
"""

from __future__ import annotations

import csv
import io
from collections import Counter

from cds_service.governance.report import NO_CARD


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _reason_label(reason: dict) -> str:
    return reason.get("display") or reason["code"]


def render_table(report: dict) -> str:
    """A plain-text report for a terminal."""
    period = report["period"]
    lines = [
        f"Governance report  since {period['since'] or 'the start'}  until {period['until'] or 'now'}",
        f"Counted in decisions: fires of one patient's order and topic within "
        f"{report['counting']['window_minutes']} minutes count once; 'fires' are the raw hook calls.",
        "",
    ]
    header = ("topic", "shown", "silent", "accepted", "overridden", "override", "sugg. acc.", "orders", "fires")
    rows = [header]
    for t in report["topics"]:
        rows.append((
            t["topic"], str(t["cards_shown"]), str(t["cards_silent"]), str(t["accepted"]),
            str(t["overridden"]), _percent(t["override_rate"]),
            f"{t['suggestions_accepted']}/{t['suggestions_offered']}", str(t["orders_judged"]), str(t["fires"]),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    totals = report["totals"]
    lines += [
        "",
        f"orders judged: {totals['orders_judged']} decisions ({totals['fires']} fires; cards shown "
        f"{totals['cards_shown']}, {totals['cards_shown_fires']} fires)   orphan feedback items: {totals['orphan_feedback']}",
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
                       "suggestions_offered", "suggestions_accepted", "suggestion_acceptance", "orders_judged",
                       "fires", "cards_shown_fires"):
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
