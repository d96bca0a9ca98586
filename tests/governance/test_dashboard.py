"""The dashboard: off without a token, refuses requests without it, shows the figures and charts
(rendered in headless Chromium), serves its charting library itself."""

from __future__ import annotations

import pytest

from cds_service.app import create_app

from .browser import browser_page, chromium_missing, served
from .support import seed_store

TOKEN = "dash-token-0123456789"


@pytest.fixture
def dash_app(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_PATH": str(tmp_path / "dash.sqlite3"), "DASHBOARD_TOKEN": TOKEN})
    seed_store(app.extensions["lumbar_cds"].recorder.store, app.test_client())
    yield app
    app.extensions["lumbar_cds_shutdown"]()


def test_dashboard_is_off_without_a_configured_token(client):
    for path in ("/dashboard", "/dashboard/data", "/dashboard/assets/plotly.min.js"):
        response = client.get(path, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 404, path


@pytest.mark.parametrize("headers,query", [
    ({}, ""),
    ({"Authorization": "Bearer wrong"}, ""),
    ({}, "?token=wrong"),
    ({"Authorization": f"Basic {TOKEN}"}, ""),
    ({}, f"?token={TOKEN[:-1]}"),
])
def test_dashboard_refuses_a_request_without_the_token(dash_app, headers, query):
    client = dash_app.test_client()
    for path in ("/dashboard", "/dashboard/data"):
        response = client.get(path + query, headers=headers)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "LCDS-1401"
        assert b"imaging-before-6-weeks" not in response.data


def test_dashboard_data_with_the_bearer_token(dash_app):
    response = dash_app.test_client().get("/dashboard/data?since=2026-03-01&until=2026-03-03",
                                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["report"]["totals"]["cards_shown"] == 7
    assert body["report"]["totals"]["orphan_feedback"] == 1
    rates = {r["topic"]: r["rate"] for r in body["charts"]["override_rate"]}
    assert rates == {"cauda-equina-risk": 0.0, "imaging-before-6-weeks": 0.6, "prefer-mri-without-contrast": 1.0}


def test_dashboard_rejects_a_bad_period(dash_app):
    client = dash_app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = client.get("/dashboard/data?since=yesterday", headers=headers)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "since"
    response = client.get("/dashboard/data?since=2026-03-05&until=2026-03-01", headers=headers)
    assert response.status_code == 400


def test_dashboard_serves_plotly_itself(dash_app):
    client = dash_app.test_client()
    page = client.get(f"/dashboard?token={TOKEN}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "cdn" not in html.lower() and "https://" not in html  # every script is our own
    assert 'src="/dashboard/assets/plotly.min.js"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    script = client.get("/dashboard/assets/plotly.min.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert b"plotly.js v" in script.data[:200]
    assert client.get("/dashboard/assets/../config.py").status_code == 404
    assert client.get("/dashboard/assets/secret.txt").status_code == 404


def test_dashboard_table_shows_the_figures(dash_app):
    html = dash_app.test_client().get(f"/dashboard?token={TOKEN}&since=2026-03-01&until=2026-03-03").get_data(
        as_text=True)
    assert '<span class="figure" id="total-orders">11</span> orders judged (decisions)' in html
    assert '<span class="figure" id="total-fires">11</span> hook fires' in html
    assert "fires of one patient's order and topic within 30 minutes count once" in html
    assert '<span class="figure" id="total-cards">7</span>' in html
    row = html.split("<td>imaging-before-6-weeks</td>")[1].split("</tr>")[0]
    assert "<td>60.0%</td>" in row and "<td>3 / 10</td>" in row
    assert "Patient declines to wait (2)" in row


BROWSER_SKIP = chromium_missing()


@pytest.mark.browser
@pytest.mark.skipif(BROWSER_SKIP is not None, reason=BROWSER_SKIP or "")
def test_dashboard_renders_its_charts_in_chromium(dash_app):
    with served(dash_app) as base, browser_page() as refused_page:
        refused = refused_page.goto(f"{base}/dashboard")
        assert refused.status == 401
        assert "LCDS-1401" in refused_page.content()
        assert "imaging-before-6-weeks" not in refused_page.content()

        page = refused_page.context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        response = page.goto(f"{base}/dashboard?token={TOKEN}&since=2026-03-01&until=2026-03-03")
        assert response.status == 200
        for chart in ("chart-cards-per-day", "chart-override-rate", "chart-override-reasons"):
            page.wait_for_selector(f"#{chart}[data-rendered='chart'] svg.main-svg", timeout=30_000)
        # Cards per day: one bar series per topic shown; the stacked bars carry the counts.
        assert page.locator("#chart-cards-per-day .legendtext").all_text_contents() == [
            "cauda-equina-risk", "imaging-before-6-weeks", "prefer-mri-without-contrast"]
        assert page.locator("#chart-override-rate .bartext").all_text_contents() == ["0 / 1", "3 / 5", "1 / 1"]
        ticks = page.locator("#chart-override-reasons .ytick text")
        top = {ticks.nth(i).text_content(): ticks.nth(i).bounding_box()["y"] for i in range(ticks.count())}
        assert set(top) == {"Patient declines to wait", "Requested by a spine specialist"}
        assert top["Patient declines to wait"] < top["Requested by a spine specialist"]  # most frequent on top
        assert page.locator("#chart-override-reasons .bars .point").count() == 2
        # Count axes tick at whole numbers, each label once ("0 1 2", never "0 0 1 1 2").
        for axis in ("#chart-override-reasons .xtick text", "#chart-cards-per-day .ytick text"):
            labels = page.locator(axis).all_text_contents()
            assert labels and all(label.isdigit() for label in labels), (axis, labels)
            assert [int(label) for label in labels] == list(range(len(labels))), (axis, labels)
        layout = page.evaluate("document.getElementById('chart-override-reasons').layout.xaxis")
        assert (layout["dtick"], layout["tickformat"]) == (1, ",d")
        assert errors == []
        assert all(url.startswith(base) for url in requested)  # nothing from a CDN
