"""The full loop through the real CDS Hooks sandbox in Chromium (docs/clinical-specification.md
§12): the PAMA imaging view orders an MRI of the lumbar spine for low back pain; the service's
card cannot date the episode and links to the red-flag screen; the link opens in a new tab; the
screen is answered; the order is changed so the sandbox re-fires order-select; the card now says
the screen was used and the PAMA rating box shows the rating.

Runs when LUMBAR_CDS_SANDBOX_DIR names the sandbox's build folder (built outside this
repository, README "The real CDS Hooks sandbox"); skipped otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.governance.browser import browser_page, chromium_missing, served
from tests.screen.sandbox_ehr import PATIENT, SANDBOX_ENV, sandbox_dir, sandbox_ehr

pytestmark = [
    pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or ""),
    pytest.mark.skipif(sandbox_dir() is None, reason=f"{SANDBOX_ENV} does not name a built CDS Hooks sandbox"),
]


def _choose(page, placeholder: str, query: str, option: str) -> None:
    box = page.get_by_text(placeholder, exact=True)
    box.click()
    page.keyboard.type(query, delay=20)
    page.get_by_text(option, exact=True).first.click()


def test_the_screen_loop_through_the_cds_hooks_sandbox(app):
    result = run(app)
    assert "record when the back pain began" in result["card"]
    assert "Red-flag screen" in result["screen"] and "Answers saved" in result["saved"]
    assert "Red-flag screen (clinician-attested" in result["after"]
    assert "not yet" in result["after"]  # the 6-week warning now that the onset is known
    assert "PAMA Rating: not-appropriate" in result["after"]
    assert "PAMA Rating: not-appropriate" not in result["card"]  # no rating before the screen


def run(app, shots: Path | None = None) -> dict:
    """The loop; with `shots`, the sandbox before and after the screen as PNGs there."""
    ehr = sandbox_ehr(sandbox_dir(), [PATIENT])
    out = {}
    with served(app) as service, served(ehr) as ehr_base, browser_page(1366, 900) as page:
        page.goto(f"{ehr_base}/?fhirServiceUrl={ehr_base}/fhir&patientId={PATIENT['id']}"
                  f"&serviceDiscoveryURL={service}/cds-services")
        page.get_by_role("button", name="PAMA Imaging").click()
        _choose(page, "Search orders", "lumbar magnetic without",
                "Magnetic resonance (eg, proton) imaging, spinal canal and contents, lumbar; without contrast material")
        _choose(page, "Search reasons", "low back pain", "Low back pain (finding)")
        link = page.get_by_text("Complete the red-flag screen", exact=False).first
        link.wait_for(timeout=30_000)
        out["card"] = page.inner_text("body")
        if shots:
            link.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "screen-sandbox-card.png"))
        with page.context.expect_page() as opened:
            link.click()
        screen = opened.value
        screen.wait_for_load_state()
        out["screen"] = screen.inner_text("main")
        screen.get_by_label("or about how many weeks ago").fill("2")
        for legend in ("Physical therapy or supervised exercise", "Analgesics (paracetamol, NSAIDs or others)"):
            screen.get_by_role("group", name=legend).get_by_label("No").check()
        with screen.expect_navigation():
            screen.get_by_role("button", name="Save answers").click()
        out["saved"] = screen.inner_text("main")
        screen.close()
        # Change the order (a second reason): the sandbox re-fires order-select.
        _choose(page, "Search reasons", "sciatica", "Sciatica (disorder)")
        page.get_by_text("Red-flag screen (clinician-attested", exact=False).first.wait_for(timeout=30_000)
        page.get_by_text("PAMA Rating: not-appropriate", exact=False).wait_for(timeout=30_000)
        out["after"] = page.inner_text("body")
        if shots:
            page.screenshot(path=str(shots / "screen-sandbox-after.png"))
    return out


if __name__ == "__main__":  # python -m tests.screen.test_sandbox: the docs' sandbox screenshots
    import tempfile

    from cds_service.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        application = create_app({"TESTING": True, "DATABASE_PATH": f"{folder}/store.sqlite3"})
        try:
            run(application, Path(__file__).resolve().parents[2] / "docs")
        finally:
            application.extensions["lumbar_cds_shutdown"]()
