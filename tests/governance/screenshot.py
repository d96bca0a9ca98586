"""Take the README's dashboard screenshot: `python -m tests.governance.screenshot [docs/dashboard.png]`.

Seeds a throw-away embedded store with four weeks of synthetic demo data (deterministic, no
patient data: the patient hashes are of made-up ids), serves the app on a loopback port and
captures /dashboard in headless Debian Chromium, as the browser test does.
"""

from __future__ import annotations

import random
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from cds_service.app import create_app
from cds_service.governance.store import patient_hash

from .browser import browser_page, chromium_missing, served
from .support import CPT, OVERRIDE_SYSTEM, SIGN

TOKEN = "demo-dashboard-token"

# topic -> (cards per weekday (min, max), override probability, reason codes as the cards offer them)
DEMO_TOPICS = {
    "imaging-before-6-weeks": ((3, 8), 0.45, ["specialist-request", "onset-earlier-than-recorded",
                                               "red-flag-not-in-record"]),
    "prefer-mri-without-contrast": ((1, 3), 0.35, ["contrast-indicated", "mri-contraindicated",
                                                   "specialist-request"]),
    "repeat-imaging": ((0, 2), 0.55, ["new-symptoms", "prior-study-unavailable", "pre-operative-planning"]),
    "cauda-equina-risk": ((0, 1), 0.10, ["mri-already-arranged"]),
}


def demo_rows(seed: int = 6) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    judgements, feedback = [], []
    start = datetime(2026, 2, 2)
    for day in range(28):
        date = start + timedelta(days=day)
        weekend = date.weekday() >= 5
        for topic, ((low, high), p_override, reasons) in DEMO_TOPICS.items():
            for n in range(rng.randint(low, high) // (3 if weekend else 1)):
                at = date + timedelta(hours=rng.randint(7, 18), minutes=rng.randint(0, 59))
                card = f"demo-{topic}-{day}-{n}"
                suggestions = [f"{card}-s1", f"{card}-s2"] if topic == "imaging-before-6-weeks" else [f"{card}-s1"]
                judgements.append({
                    "recorded_at": at, "service_id": SIGN, "hook": "order-sign", "hook_instance": card,
                    "patient_hash": patient_hash("demo", f"demo-patient-{rng.randint(1, 400)}"),
                    "order_reference": f"ServiceRequest/{card}", "order_code": f"{CPT}|72148",
                    "topic": topic, "indicator": "critical" if topic == "cauda-equina-risk" else "warning",
                    "rating": "appropriate" if topic == "prefer-mri-without-contrast" else "not-appropriate",
                    "card_uuid": card, "consult_id": None, "suggestion_uuids": suggestions, "shown": True,
                })
                if rng.random() < 0.15:
                    continue  # no feedback from the EHR for this card
                when = (at + timedelta(minutes=2)).isoformat() + "Z"
                if rng.random() < p_override:
                    code = rng.choices(reasons, weights=[5, 3, 1][: len(reasons)])[0]
                    feedback.append({"card": card, "outcome": "overridden", "outcomeTimestamp": when,
                                     "overrideReason": {"reason": {"code": code, "system": OVERRIDE_SYSTEM}}})
                else:
                    feedback.append({"card": card, "outcome": "accepted", "outcomeTimestamp": when,
                                     "acceptedSuggestions": [{"id": suggestions[-1]}]})
        for n in range(rng.randint(6, 12) // (3 if weekend else 1)):  # orders judged without a card
            judgements.append({
                "recorded_at": date + timedelta(hours=rng.randint(7, 18)), "service_id": SIGN,
                "hook": "order-sign", "hook_instance": f"demo-nocard-{day}-{n}",
                "patient_hash": patient_hash("demo", f"demo-patient-{rng.randint(1, 400)}"),
                "order_reference": f"ServiceRequest/demo-nocard-{day}-{n}", "order_code": f"{CPT}|72148",
                "topic": None, "indicator": None, "rating": rng.choice(["appropriate", "no-criteria-apply"]),
                "card_uuid": None, "consult_id": None, "suggestion_uuids": [], "shown": True,
            })
    return judgements, feedback


def take(out: Path) -> None:
    why = chromium_missing()
    if why:
        raise SystemExit(f"cannot take the screenshot: {why}")
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATABASE_PATH": f"{folder}/demo.sqlite3", "DASHBOARD_TOKEN": TOKEN,
                          "PATIENT_HASH_KEY": "demo"})
        try:
            judgements, feedback = demo_rows()
            app.extensions["lumbar_cds"].recorder.store.insert_judgements(judgements)
            response = app.test_client().post(f"/cds-services/{SIGN}/feedback", json={"feedback": feedback})
            assert response.status_code == 200, response.get_json()
            with served(app) as base, browser_page(1280, 1000) as page:
                page.goto(f"{base}/dashboard?token={TOKEN}&since=2026-02-02&until=2026-03-01")
                for chart in ("chart-cards-per-day", "chart-override-rate", "chart-override-reasons"):
                    page.wait_for_selector(f"#{chart}[data-rendered='chart'] svg.main-svg", timeout=30_000)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
        finally:
            app.extensions["lumbar_cds_shutdown"]()
    print(f"wrote {out}")


if __name__ == "__main__":
    take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png"))
