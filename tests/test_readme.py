"""The README tells the truth: its quick start, settings table and example request."""

import json
import re
from pathlib import Path

from cds_service.config import SETTINGS
from cds_service.hooks.errors import MESSAGES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_quick_start_has_exactly_the_two_setup_commands():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_block = re.search(r"```sh\n(.*?)```", quick_start, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_every_setting_is_documented_with_its_default():
    for setting in SETTINGS:
        assert f"`{setting.env}`" in README, setting.env


def test_every_error_code_is_documented():
    for code in MESSAGES:
        assert f"`{code}`" in README, code


def test_the_readme_example_request_gives_the_6_week_warning(client):
    """The quick start's curl example: MRI 2 weeks into low back pain, no red flag."""
    body = json.loads((ROOT / "examples" / "order-sign-acute-lbp.json").read_text())
    response = client.post("/cds-services/lumbar-imaging-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    assert card["indicator"] == "warning"
    assert card["source"]["topic"]["code"] == "imaging-before-6-weeks"
    assert "2026-12-18" in card["detail"]  # six weeks after the 2026-11-06 onset
    (action,) = response.get_json()["extension"]["systemActions"]
    rating = next(e for e in action["resource"]["extension"] if e["url"].endswith("/pama-rating"))
    assert rating["valueCodeableConcept"]["coding"][0]["code"] == "not-appropriate"
