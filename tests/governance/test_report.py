"""The report's figures on a seeded data set, checked exactly (pure, via each store, via the CLI).

The data set is `support.SEED_JUDGEMENTS` / `SEED_FEEDBACK`; the figures below were worked out
by hand from it (see the comments there: a card outside the period on each side, a silent card,
a change of mind, an override without a reason code, two orphans of which one is in the period).
"""

from __future__ import annotations

import copy
import csv
import io
from datetime import date

import orjson
import pytest

from cds_service.cli import main as cli_main
from cds_service.governance.rendering import chart_data, render_csv, render_table
from cds_service.governance.report import build_report
from cds_service.governance.store.labels import load_reason_labels

from .support import OVERRIDE_SYSTEM, seed_pure_rows, seed_store

SINCE, UNTIL = date(2026, 3, 1), date(2026, 3, 3)

EXPECTED_TOPICS = [
    {
        "topic": "cauda-equina-risk", "cards_shown": 1, "cards_silent": 0, "accepted": 1, "overridden": 0,
        "override_rate": 0.0, "top_override_reasons": [], "suggestions_offered": 1,
        "suggestions_accepted": 1, "suggestion_acceptance": 1.0, "ratings": {"not-appropriate": 1},
        "orders_judged": 1, "orders_per_day": {"2026-03-01": 1}, "cards_per_day": {"2026-03-01": 1},
    },
    {
        "topic": "imaging-before-6-weeks", "cards_shown": 5, "cards_silent": 0, "accepted": 2, "overridden": 3,
        "override_rate": 0.6,
        "top_override_reasons": [
            {"system": OVERRIDE_SYSTEM, "code": "patient-declines-wait", "display": "Patient declines to wait", "count": 2},
            {"system": OVERRIDE_SYSTEM, "code": "specialist-request", "display": None, "count": 1},
        ],
        "suggestions_offered": 10, "suggestions_accepted": 3, "suggestion_acceptance": 0.3,
        "ratings": {"not-appropriate": 5}, "orders_judged": 5,
        "orders_per_day": {"2026-03-01": 2, "2026-03-02": 2, "2026-03-03": 1},
        "cards_per_day": {"2026-03-01": 2, "2026-03-02": 2, "2026-03-03": 1},
    },
    {
        "topic": "prefer-mri-without-contrast", "cards_shown": 1, "cards_silent": 0, "accepted": 0, "overridden": 1,
        "override_rate": 1.0, "top_override_reasons": [], "suggestions_offered": 1, "suggestions_accepted": 0,
        "suggestion_acceptance": 0.0, "ratings": {"appropriate": 1}, "orders_judged": 1,
        "orders_per_day": {"2026-03-02": 1}, "cards_per_day": {"2026-03-02": 1},
    },
    {
        "topic": "repeat-imaging", "cards_shown": 0, "cards_silent": 1, "accepted": 0, "overridden": 0,
        "override_rate": None, "top_override_reasons": [], "suggestions_offered": 0, "suggestions_accepted": 0,
        "suggestion_acceptance": None, "ratings": {"not-appropriate": 1}, "orders_judged": 1,
        "orders_per_day": {"2026-03-03": 1}, "cards_per_day": {},
    },
    {
        "topic": "(no card)", "cards_shown": 0, "cards_silent": 0, "accepted": 0, "overridden": 0,
        "override_rate": None, "top_override_reasons": [], "suggestions_offered": 0, "suggestions_accepted": 0,
        "suggestion_acceptance": None, "ratings": {"appropriate": 2, "no-criteria-apply": 1}, "orders_judged": 3,
        "orders_per_day": {"2026-03-01": 1, "2026-03-02": 1, "2026-03-03": 1}, "cards_per_day": {},
    },
]

# Every seeded order is judged once (one fire each): the raw fires equal the decisions.
for _topic in EXPECTED_TOPICS:
    _topic["fires"], _topic["cards_shown_fires"] = _topic["orders_judged"], _topic["cards_shown"]

EXPECTED = {
    "period": {"since": "2026-03-01", "until": "2026-03-03"},
    "counting": {"unit": "decision", "window_minutes": 30,
                 "note": "fires of one patient's order and topic within the window count as one decision; "
                         "'fires' and 'cards_shown_fires' are the raw hook calls"},
    "totals": {
        "orders_judged": 11, "fires": 11, "cards_shown_fires": 7, "cards_shown": 7, "cards_silent": 1, "accepted": 3, "overridden": 4,
        "orphan_feedback": 1,
        "ratings": {"appropriate": 3, "no-criteria-apply": 1, "not-appropriate": 7},
        "orders_per_day": {"2026-03-01": 4, "2026-03-02": 4, "2026-03-03": 3},
    },
    "topics": EXPECTED_TOPICS,
}


# What the CLI and the dashboard show: the reason sent without a display is named from the card
# content (cards/imaging-before-6-weeks.yaml offers "specialist-request").
EXPECTED_LABELLED = copy.deepcopy(EXPECTED)
EXPECTED_LABELLED["topics"][1]["top_override_reasons"][1]["display"] = "Requested by a spine specialist"


def test_reason_labels_come_from_the_card_content():
    labels = load_reason_labels()
    assert labels[("imaging-before-6-weeks", OVERRIDE_SYSTEM, "specialist-request")] == "Requested by a spine specialist"
    assert labels[("prefer-mri-without-contrast", OVERRIDE_SYSTEM, "specialist-request")] == (
        "Requested by a spine specialist or radiologist")


def test_report_figures_on_the_seeded_data_set():
    judgements, feedback = seed_pure_rows()
    assert build_report(judgements, feedback, SINCE, UNTIL) == EXPECTED


def test_report_without_a_period_takes_everything():
    judgements, feedback = seed_pure_rows()
    report = build_report(judgements, feedback)
    assert report["totals"]["orders_judged"] == 13
    assert report["totals"]["orphan_feedback"] == 2
    six_weeks = report["topics"][1]
    assert (six_weeks["cards_shown"], six_weeks["accepted"], six_weeks["overridden"]) == (7, 2, 4)
    assert six_weeks["top_override_reasons"][1]["count"] == 2  # specialist-request: card-a3 and card-out


def test_report_figures_read_from_each_store(gov_app, gov_client):
    store = gov_app.extensions["lumbar_cds"].recorder.store
    seed_store(store, gov_client)  # feedback through the real endpoint
    judgements, feedback = store.load_rows(SINCE, UNTIL)
    assert build_report(judgements, feedback, SINCE, UNTIL) == EXPECTED


def test_the_database_counts_give_the_same_report(gov_app, gov_client):
    """`Store.report` (GROUP BY in the database, what the CLI and the dashboard use) gives exactly
    the figures of the pure report over every row, for several periods."""
    store = gov_app.extensions["lumbar_cds"].recorder.store
    seed_store(store, gov_client)
    labels = load_reason_labels()
    for since, until in ((SINCE, UNTIL), (None, None), (date(2026, 3, 2), None), (None, date(2026, 3, 1)),
                         (date(2026, 3, 5), date(2026, 3, 9))):
        judgements, feedback = store.load_rows(since, until)
        assert store.report(since, until, labels) == build_report(judgements, feedback, since, until, labels)
    assert store.report(SINCE, UNTIL) == EXPECTED


def test_the_database_counts_match_the_pure_report_on_random_data(gov_app):
    """A few hundred random judgements (orders fired several times) and feedback items over ten
    days, on each back end."""
    import random
    from datetime import datetime, timedelta

    from cds_service.governance.feedback import parse_feedback

    from .support import accepted, overridden

    store = gov_app.extensions["lumbar_cds"].recorder.store
    chance = random.Random(23)
    topics = [None, "imaging-before-6-weeks", "cauda-equina-risk", "repeat-imaging"]
    rows, items = [], []
    fired: dict[int, datetime] = {}

    def at_time(n: int) -> datetime:
        """Often minutes after the same order's last fire (0 to 45: inside and outside the window)."""
        previous = fired.get(n % 120)
        if previous and chance.random() < 0.6:
            fired[n % 120] = previous + timedelta(minutes=chance.randrange(46))
        else:
            fired[n % 120] = datetime(2026, 3, 1) + timedelta(minutes=chance.randrange(10 * 24 * 60))
        return fired[n % 120]

    for n in range(400):
        topic = chance.choice(topics)
        card = f"card-{n}" if topic and chance.random() < 0.9 else None
        suggestions = [f"s-{n}-{k}" for k in range(chance.randrange(3))] if card else []
        rows.append({
            "recorded_at": at_time(n),
            "service_id": "lumbar-imaging-order-sign", "hook": "order-sign", "hook_instance": f"r-{n}",
            # Orders of a few patients, fired again and again: decisions (window) differ from fires.
            "patient_hash": str(n % 3) * 64, "order_reference": f"ServiceRequest/r-{n % 40}", "order_code": None,
            "topic": topic, "indicator": "warning" if topic else None,
            "rating": chance.choice(["appropriate", "not-appropriate", None]), "card_uuid": card,
            "consult_id": None, "suggestion_uuids": suggestions, "shown": chance.random() < 0.8,
        })
        for _ in range(chance.randrange(3) if card else 0):
            at = f"2026-03-{chance.randrange(1, 12):02d}T{chance.randrange(24):02d}:00:00Z"
            if chance.random() < 0.5:
                items.append(accepted(card, *chance.sample(suggestions + ["other"], k=min(2, len(suggestions) + 1)), at=at))
            else:
                items.append(overridden(card, chance.choice(["patient-declines-wait", "specialist-request", None]), at=at))
    items += [overridden(f"never-{n}", "other", at=f"2026-03-0{n + 1}T10:00:00Z") for n in range(5)]
    store.insert_judgements(rows)
    feedback_rows = parse_feedback({"feedback": items})
    for row in feedback_rows:
        row["received_at"], row["service_id"] = datetime(2026, 3, 12), "lumbar-imaging-order-sign"
    store.insert_feedback(feedback_rows)
    for since, until in ((None, None), (date(2026, 3, 3), date(2026, 3, 6)), (date(2026, 3, 10), None)):
        assert store.report(since, until) == build_report(*store.load_rows(since, until), since, until)
    totals = store.report(None, None)["totals"]
    assert totals["fires"] == 400 and 120 < totals["orders_judged"] < 390 and totals["orphan_feedback"] == 5
    assert totals["accepted"] > 10 and totals["overridden"] > 10 and totals["cards_silent"] > 10


def test_chart_series_follow_the_figures():
    judgements, feedback = seed_pure_rows()
    charts = chart_data(build_report(judgements, feedback, SINCE, UNTIL))
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert charts["cards_per_day"] == [
        {"topic": "cauda-equina-risk", "days": days, "counts": [1, 0, 0]},
        {"topic": "imaging-before-6-weeks", "days": days, "counts": [2, 2, 1]},
        {"topic": "prefer-mri-without-contrast", "days": days, "counts": [0, 1, 0]},
    ]
    assert charts["override_rate"] == [
        {"topic": "cauda-equina-risk", "rate": 0.0, "overridden": 0, "answered": 1},
        {"topic": "imaging-before-6-weeks", "rate": 0.6, "overridden": 3, "answered": 5},
        {"topic": "prefer-mri-without-contrast", "rate": 1.0, "overridden": 1, "answered": 1},
    ]
    assert charts["override_reasons"] == [
        {"topic": "imaging-before-6-weeks", "code": "patient-declines-wait", "label": "Patient declines to wait", "count": 2},
        {"topic": "imaging-before-6-weeks", "code": "specialist-request", "label": "specialist-request", "count": 1},
    ]


@pytest.fixture
def seeded_sqlite(tmp_path, monkeypatch):
    """An embedded store holding the data set, found by the CLI through CDS_DATABASE_PATH."""
    from cds_service.governance.store import open_store

    path = tmp_path / "instance" / "report.sqlite3"
    monkeypatch.setenv("CDS_DATABASE_PATH", str(path))
    monkeypatch.delenv("CDS_DATABASE_URL", raising=False)
    store = open_store({"DATABASE_PATH": str(path)})
    seed_store(store)
    store.engine.dispose()
    return path


def test_cli_report_json_is_the_report(seeded_sqlite, capsys):
    assert cli_main(["report", "--since", "2026-03-01", "--until", "2026-03-03", "--format", "json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    # The red-flag screen's counts ride along (none offered in the seeded period).
    assert report.pop("screen") == {"offered": 0, "completed": 0, "used": 0, "changed_decision": 0,
                                    "rated_after_screen": 0, "completion_rate": None, "change_rate": None}
    assert report == EXPECTED_LABELLED


def test_cli_report_csv_is_tidy(seeded_sqlite, capsys):
    assert cli_main(["report", "--since", "2026-03-01", "--until", "2026-03-03", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(render_csv(EXPECTED_LABELLED)) and "red-flag-screen,offered,,0\n" in out
    records = list(csv.DictReader(io.StringIO(out)))
    figures = {(r["topic"], r["metric"], r["key"]): r["value"] for r in records}
    assert figures[("imaging-before-6-weeks", "override_rate", "")] == "0.6"
    assert figures[("imaging-before-6-weeks", "override_reason", f"{OVERRIDE_SYSTEM}|patient-declines-wait")] == "2"
    assert figures[("imaging-before-6-weeks", "orders_per_day", "2026-03-02")] == "2"
    assert figures[("repeat-imaging", "cards_silent", "")] == "1"
    assert figures[("imaging-before-6-weeks", "fires", "")] == "5"
    assert figures[("(all)", "orphan_feedback", "")] == "1"


def test_cli_report_table_is_readable(seeded_sqlite, capsys):
    assert cli_main(["report", "--since", "2026-03-01", "--until", "2026-03-03"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(render_table(EXPECTED_LABELLED)) and "red-flag screens: offered 0" in out
    line = next(row for row in out.splitlines() if row.startswith("imaging-before-6-weeks "))
    assert line.split() == ["imaging-before-6-weeks", "5", "0", "2", "3", "60.0%", "3/10", "5", "5"]
    assert "Counted in decisions: fires of one patient's order and topic within 30 minutes count once" in out
    assert "top override reasons: Patient declines to wait 2, Requested by a spine specialist 1" in out


def test_cli_report_rejects_a_bad_date(seeded_sqlite, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["report", "--since", "March"])
    assert exit_info.value.code == 2
    assert "not a date YYYY-MM-DD" in capsys.readouterr().err
    assert cli_main(["report", "--since", "2026-03-03", "--until", "2026-03-01"]) == 2
