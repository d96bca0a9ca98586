"""The governance figures of the red-flag screen (docs/clinical-specification.md §12.5): screens
offered, completed, and how often they changed the decision -- counted from the real loop on
embedded SQLite and on PostgreSQL, shown by `lumbar-cds report` and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime

from cds_service.governance.screen.counts import load_screen_counts
from tests.screen.support import answer, lbp, post_hook, request_for, screen_path


def test_screens_offered_completed_and_changing_the_decision_are_counted(gov_app, gov_client):
    changed = request_for("pat-c1", lbp("pat-c1"))
    unanswered = request_for("pat-c2", lbp("pat-c2"))
    answer(gov_client, screen_path(post_hook(gov_client, changed)),
           {"onset-weeks": "2", "physical-therapy": "no", "analgesics": "no"})
    screen_path(post_hook(gov_client, unanswered))  # offered, never completed
    again = post_hook(gov_client, changed)  # the re-fired hook: the screen is used
    assert again["cards"][0]["source"]["topic"]["code"] == "imaging-before-6-weeks"
    post_hook(gov_client, changed)  # a second re-fire does not count the screen twice

    engine = gov_app.extensions["lumbar_cds_screen"].engine
    today = datetime.now(UTC).date()
    counts = load_screen_counts(engine, today, today)
    assert counts == {"offered": 2, "completed": 1, "used": 1, "changed_decision": 1, "rated_after_screen": 0,
                      "completion_rate": 0.5, "change_rate": 1.0}
    assert load_screen_counts(engine, None, datetime(2000, 1, 1).date())["offered"] == 0


def test_the_dashboard_shows_the_screen_counts(tmp_path):
    from cds_service.app import create_app

    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "s.sqlite3"), "DASHBOARD_TOKEN": "t" * 32})
    try:
        client = app.test_client()
        screen_path(post_hook(client, request_for("pat-d1", lbp("pat-d1"))))
        body = client.get("/dashboard/data", headers={"Authorization": f"Bearer {'t' * 32}"}).get_json()
        assert body["report"]["screen"]["offered"] == 1 and body["report"]["screen"]["completed"] == 0
        html = client.get(f"/dashboard?token={'t' * 32}").get_data(as_text=True)
        assert 'id="screens-offered">1<' in html
    finally:
        app.extensions["lumbar_cds_shutdown"]()
