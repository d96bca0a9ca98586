"""A sandbox-style page of the project's own that shows a CDS Hooks response's cards, and the
README's card screenshot: `python -m tests.render.card_page [docs/cards.png]`.

Role in the test data flow: the cards are what the service really answers for a scenario (run
through the app); the page lays them out as the CDS Hooks sandbox does (the EHR's order form on
the left, the cards on the right: summary, markdown detail, source, links, suggestion buttons,
override and dismiss), so a headless Chromium at a 1366x768 laptop size can check that a card and
its buttons fit on the screen (docs/clinical-specification.md §7.3).
"""

from __future__ import annotations

import html
import re
import sys
import tempfile
from pathlib import Path

from tests.support.scenario import load_scenarios, service_path

VIEWPORT = {"width": 1366, "height": 768}
SCREENSHOT_SCENARIO = "lbp-10-weeks-mri-no-prior-management"
DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "cards.png"

STYLE = """
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #222; }
header { background: #1f4e79; color: #fff; padding: 10px 18px; font-size: 17px; }
main { display: flex; gap: 18px; padding: 14px 18px; }
.ehr { flex: 0 0 40%; border: 1px solid #ccc; border-radius: 4px; padding: 12px 16px; background: #fafafa; }
.ehr label { display: block; margin-top: 10px; font-weight: 600; }
.ehr .field { border: 1px solid #bbb; background: #fff; padding: 6px 8px; margin-top: 4px; border-radius: 3px; }
.cards { flex: 1; }
.card { border: 1px solid #ccc; border-left: 6px solid #999; border-radius: 4px; padding: 10px 14px; margin-bottom: 12px; background: #fff; }
.card.info { border-left-color: #2a7ab9; } .card.warning { border-left-color: #e0a800; } .card.critical { border-left-color: #c62828; }
.summary { font-size: 16px; font-weight: 600; margin: 0 0 6px; }
.detail p { margin: 0 0 7px; }
.source { color: #555; font-size: 12px; margin: 6px 0; }
.links a, .source a { color: #1f4e79; }
.buttons { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
button { font: inherit; padding: 6px 12px; border-radius: 3px; border: 1px solid #1f4e79; background: #fff; color: #1f4e79; cursor: pointer; }
button.suggestion { background: #1f4e79; color: #fff; }
"""


def markdown_html(text: str) -> str:
    """The little markdown the cards use: paragraphs, line breaks, **bold**, backslash escapes."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        escaped = html.escape(paragraph)
        escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
        escaped = re.sub(r"\\([\\`*_{}\[\]<>()#|!~])", r"\1", escaped).replace("\n", "<br>")
        out.append(f"<p>{escaped}</p>")
    return "".join(out)


def card_html(card: dict) -> str:
    links = "".join(f' · <a href="{html.escape(link["url"])}">{html.escape(link["label"])}</a>'
                    for link in card.get("links") or [])
    buttons = "".join(f'<button class="suggestion">{html.escape(s["label"])}</button>'
                      for s in card.get("suggestions") or [])
    if card.get("overrideReasons"):
        buttons += "<button>Override…</button>"
    buttons += "<button>Dismiss</button>"
    source = card.get("source") or {}
    return (f'<section class="card {html.escape(card["indicator"])}">'
            f'<p class="summary">{html.escape(card["summary"])}</p>'
            f'<div class="detail">{markdown_html(card.get("detail", ""))}</div>'
            f'<p class="source">Source: <a href="{html.escape(source.get("url") or "")}">'
            f'{html.escape(source.get("label", ""))}</a><span class="links">{links}</span></p>'
            f'<div class="buttons">{buttons}</div></section>')


def page_html(response: dict, request: dict) -> str:
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    study = html.escape((order.get("code") or {}).get("text") or "")
    reasons = ", ".join(c.get("display", "") for r in order.get("reasonCode") or [] for c in r.get("coding") or [])
    cards = "".join(card_html(card) for card in response.get("cards") or [])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Lumbar imaging cards</title>"
            f"<style>{STYLE}</style></head><body><header>PAMA imaging order — lumbar-imaging-cds</header>"
            f"<main><div class='ehr'><strong>New imaging order</strong>"
            f"<label>Study</label><div class='field'>{study}</div>"
            f"<label>Reason</label><div class='field'>{html.escape(reasons) or '—'}</div>"
            f"<label>Authored</label><div class='field'>{html.escape(order.get('authoredOn', ''))}</div></div>"
            f"<div class='cards'>{cards}</div></main></body></html>")


def scenario_page(client, name: str = SCREENSHOT_SCENARIO) -> str:
    request = dict(load_scenarios())[name]["request"]
    response = client.post(service_path(request), json=request).get_json()
    return page_html(response, request)


def screenshot(page_source: str, path: Path) -> dict:
    """Render the page at 1366x768 in headless Chromium, save a PNG; returns where the buttons are."""
    from tests.governance.browser import browser_page

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "cards.html"
        file.write_text(page_source, encoding="utf-8")
        with browser_page(VIEWPORT["width"], VIEWPORT["height"]) as page:
            page.goto(file.as_uri())
            boxes = [button.bounding_box() for button in page.query_selector_all("button")]
            page.screenshot(path=str(path))
    return {"buttons": boxes, "viewport": VIEWPORT}


def main(target: str | None = None) -> None:
    from cds_service.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"TESTING": True, "DATABASE_PATH": str(Path(folder) / "store.sqlite3")})
        try:
            source = scenario_page(app.test_client())
        finally:
            app.extensions["lumbar_cds_shutdown"]()
    print(screenshot(source, Path(target) if target else DOCS_PNG))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
