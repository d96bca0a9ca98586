"""The red-flag screen's loop in real Chromium, and the docs' screenshots:
`python -m tests.screen.browser_loop [docs/]`.

Role in the test data flow: the service runs on a loopback port; a hook call (real HTTP) gets a
card whose rating is withheld and whose episode cannot be dated; the card is laid out as the
sandbox shows it (tests/render/card_page.py) and its link "Complete the red-flag screen" is
clicked in headless Debian Chromium; the screen is answered at a narrow side-panel width by
label and keyboard (fieldsets and labels are what Playwright finds the inputs by); the hook is
re-fired and the order comes back rated.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import requests

from tests.render.card_page import page_html
from tests.screen.support import SELECT, lbp, rating_of, request_for, screen_link

DOCS = Path(__file__).resolve().parents[2] / "docs"
SIDE_PANEL = {"width": 400, "height": 900}
RED_FLAG_LEGENDS = (
    "New urinary retention or difficulty emptying the bladder", "New urinary incontinence",
    "Saddle (perineal) numbness", "Faecal incontinence", "Leg pain, numbness or weakness in both legs",
    "Progressive leg weakness or foot drop", "Fever of 38.0 °C or more in the last 14 days",
    "Intravenous drug use in the last 12 months", "Immunosuppression (HIV, transplant, immunosuppressive drugs)",
    "History of cancer", "Unexplained weight loss in the last 6 months", "Significant trauma in the last 90 days",
    "Osteoporosis or a fragility fracture", "Systemic corticosteroids for 3 months or more in the last 12 months",
)


def loop_request() -> dict:
    """No onset on the back pain, and the prescriptions could not be read: the card withholds
    the rating and cannot date the episode."""
    return request_for("pat-browser", lbp("pat-browser"), drop_keys=("medications",))


def run(base_url: str, page, shots: Path | None = None) -> dict:
    body = loop_request()
    first = requests.post(base_url + SELECT, json=body, timeout=30).json()
    link = screen_link(first)
    with tempfile.TemporaryDirectory() as folder:
        card_file = Path(folder) / "card.html"
        card_file.write_text(page_html(first, body), encoding="utf-8")
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(card_file.as_uri())
        if shots:
            page.screenshot(path=str(shots / "screen-card.png"))
        page.get_by_role("link", name=link["label"]).click()
    page.wait_for_url("**/screen/**")
    page.set_viewport_size(SIDE_PANEL)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    shown = page.inner_text("main")
    page.get_by_label("or about how many weeks ago").first.fill("8")
    for legend in RED_FLAG_LEGENDS:
        page.get_by_role("group", name=legend).get_by_label("No").check()
    # Physical therapy by keyboard alone: focus "Yes", Space selects it.
    page.get_by_role("group", name="Physical therapy or supervised exercise").get_by_label("Yes").focus()
    page.keyboard.press("Space")
    analgesics = page.get_by_role("group", name="Analgesics (paracetamol, NSAIDs or others)")
    analgesics.get_by_label("Yes").focus()
    page.keyboard.press("ArrowRight")  # arrows move within a radio group: "No"
    page.keyboard.press("ArrowLeft")  # ... and back to "Yes"
    page.get_by_label("or for about how many weeks").fill("6")
    if shots:
        page.screenshot(path=str(shots / "screen-page.png"), full_page=True)
    page.get_by_role("button", name="Save answers").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    saved = page.inner_text("main")
    again = requests.post(base_url + SELECT, json=body, timeout=30).json()
    return {"first": first, "link": link, "shown": shown, "overflow": overflow, "saved": saved,
            "again": again, "first_rating": rating_of(first), "rating": rating_of(again)}


def main(target: str | None = None) -> None:
    from cds_service.app import create_app
    from tests.governance.browser import browser_page, served

    shots = Path(target) if target else DOCS
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"TESTING": True, "DATABASE_PATH": str(Path(folder) / "store.sqlite3")})
        try:
            with served(app) as base_url, browser_page(1366, 768) as page:
                result = run(base_url, page, shots)
        finally:
            app.extensions["lumbar_cds_shutdown"]()
    print({"rating before": result["first_rating"], "rating after": result["rating"], "shots": str(shots)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
