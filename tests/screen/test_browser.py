"""The full loop of the red-flag screen in real Chromium (docs/clinical-specification.md §12):
a card without a rating, its link, the screen at side-panel width answered by label and
keyboard, the submit, the re-fired hook, a rated order."""

from __future__ import annotations

import pytest

from tests.governance.browser import browser_page, chromium_missing, served
from tests.screen import browser_loop

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")


def test_the_screen_loop_in_chromium(app):
    with served(app) as base_url, browser_page() as page:
        result = browser_loop.run(base_url, page)
    [card] = result["first"]["cards"]
    assert card["source"]["topic"]["code"] == "symptom-duration-unknown"
    assert result["first_rating"] is None  # the prescriptions could not be read: withheld
    assert result["link"]["label"] == "Complete the red-flag screen (17 questions)"
    assert "MRI lumbar spine without contrast" in result["shown"] and "56 years, female" in result["shown"]
    assert result["overflow"] <= 0  # nothing wider than the side panel
    assert "Answers saved" in result["saved"]
    # 8 weeks of pain, 6 of physical therapy and analgesics, every red flag attested absent:
    # ACR variant 3, where MRI without contrast is usually appropriate -- rated, no card.
    assert result["again"]["cards"] == [] and result["rating"] == "appropriate"
