"""The README tells the truth: its quick start, settings table and example request."""

import json
import re
from pathlib import Path

from cds_service.config import SETTINGS
from cds_service.errors import MESSAGES

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


def test_the_readme_example_request_is_valid(client):
    body = json.loads((ROOT / "examples" / "order-sign-acute-lbp.json").read_text())
    response = client.post("/cds-services/lumbar-imaging-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
