"""The cards in a sandbox-style page at a 1366x768 laptop size: the card and its buttons are on
the screen without scrolling (headless Debian Chromium; clinical-specification.md §7.3).
The README's docs/cards.png is taken the same way: `python -m tests.render.card_page`."""

from __future__ import annotations

import pytest

from tests.governance.browser import chromium_missing
from tests.render.card_page import VIEWPORT, scenario_page, screenshot

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))


@pytest.mark.parametrize("name", ["lbp-10-weeks-mri-no-prior-management", "cauda-equina-urinary-retention-xray",
                                  "sandbox-captured-pama-contrast-mri-osteomyelitis"])
def test_every_button_of_the_card_is_visible_at_1366x768(client, tmp_path, name):
    shot = tmp_path / "cards.png"
    where = screenshot(scenario_page(client, name), shot)
    assert shot.stat().st_size > 10_000
    buttons = where["buttons"]
    assert len(buttons) >= 2  # a suggestion (or override) and dismiss
    for box in buttons:
        assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], box
        assert box["x"] + box["width"] <= VIEWPORT["width"], box
