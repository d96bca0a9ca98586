"""The README tells the truth: its quick start, settings table, example request, and the
repository paths it (and docs/*.md) names."""

import json
import re
from pathlib import Path

import pytest

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


def test_the_override_reason_map_is_the_card_content():
    """README "CDS Hooks 2.0 and 3.0": every override reason of every card, with the CDS Hooks 3.0
    example code its card file maps it to, as the cards hold them."""
    from cds_service import cards_dir
    from cds_service.render.content import CardContent

    content = CardContent(cards_dir())
    expected = ["| topic | override reason | 3.0 example code |", "|---|---|---|"]
    for code, topic in sorted(content.topics.items()):
        for reason in topic.override_reasons:
            mapped = topic.non_adherence.get(reason["code"])
            assert mapped is None or mapped["system"] == "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
            expected.append(f"| {code} | {reason['code']} | {mapped['code'] if mapped else '(none fits)'} |")
    table = README.split("<!-- non-adherence-map:start -->\n", 1)[1].split("\n<!-- non-adherence-map:end -->", 1)[0]
    assert table.splitlines() == expected


def test_the_readme_example_request_gives_the_6_week_warning(client):
    """The quick start's curl example: MRI 2 weeks into low back pain, no red flag."""
    body = json.loads((ROOT / "examples" / "order-sign-acute-lbp.json").read_text())
    response = client.post("/cds-services/lumbar-imaging-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    assert card["indicator"] == "warning"
    assert card["source"]["topic"]["code"] == "imaging-before-6-weeks"
    assert "Reassess on 18 Dec 2026" in card["detail"]  # six weeks after the 6 Nov 2026 onset
    (action,) = response.get_json()["extension"]["systemActions"]
    rating = next(e for e in action["resource"]["extension"] if e["url"].endswith("/pama-rating"))
    assert rating["valueCodeableConcept"]["coding"][0]["code"] == "not-appropriate"


# --- the Docker quick start ------------------------------------------------------------------


def _dockerfile() -> tuple[dict[str, str], list[str]]:
    """The final stage's ENV settings and its CMD, read as Docker reads them."""
    text = (ROOT / "Dockerfile").read_text()
    final = text.rsplit("\nFROM ", 1)[1]
    lines = [line for line in final.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    env: dict[str, str] = {}
    for instruction in re.findall(r"^ENV (.*)$", joined, re.M):
        env.update(dict(pair.split("=", 1) for pair in instruction.split()))
    (cmd,) = re.findall(r"^CMD (\[.*\])$", joined, re.M)
    return env, json.loads(cmd)


def _readme_docker_run() -> tuple[str, dict[str, str]]:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (run,) = [line for line in quick_start.splitlines() if line.startswith("docker run --rm")]
    return run, dict(value.split("=", 1) for value in re.findall(r"-e (\S+=\S+)", run))


def test_the_docker_quick_start_fits_the_image():
    """Issue 14: the documented container answered 401 to every call (auth on, no issuer)."""
    from cds_service.cli import _preflight, build_parser
    from cds_service.config import load_settings

    image_env, cmd = _dockerfile()
    assert image_env["CDS_AUTH_REQUIRED"] == "true" and "--require-fhir-allowlist" in cmd
    run, given = _readme_docker_run()
    assert given == {"CDS_AUTH_REQUIRED": "false"} and "demo" in run
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "not for production" in quick_start and "--require-fhir-allowlist" in quick_start
    settings = load_settings(environ={**image_env, **given})
    assert settings["AUTH_REQUIRED"] is False
    assert cmd[:2] == ["lumbar-cds", "serve"]
    assert _preflight(build_parser().parse_args(cmd[1:]), settings) is None  # it starts
    # Without the README's settings the image refuses to start (the allowlist rule), in one line.
    assert "refusing to start" in _preflight(build_parser().parse_args(cmd[1:]), load_settings(environ=image_env))


def test_the_docker_quick_start_answers_the_curl(tmp_path):
    """The image's command and settings plus the README's, served (gunicorn, as in the image;
    on a free loopback port instead of 0.0.0.0:8080): discovery and the example call answer."""
    import requests

    from tests.cli.served import Served

    image_env, cmd = _dockerfile()
    _, given = _readme_docker_run()
    env = {k: v for k, v in {**image_env, **given}.items() if k != "CDS_DATABASE_PATH"}  # /data: the volume
    args, skip = [], 0
    for arg in cmd[2:]:
        if skip or arg in ("--host", "--port", "--workers"):
            skip = 0 if skip else 1
            continue
        args.append(arg)
    with Served(tmp_path, env=env, args=tuple(args)) as served:
        discovery = requests.get(f"{served.base}/cds-services", timeout=10)
        assert discovery.status_code == 200 and len(discovery.json()["services"]) == 2
        body = json.loads((ROOT / "examples" / "order-sign-acute-lbp.json").read_text())
        answer = requests.post(f"{served.base}/cds-services/lumbar-imaging-order-sign", json=body, timeout=30)
        assert answer.status_code == 200 and answer.json()["cards"]


# --- the paths the documents name --------------------------------------------------------------

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCED = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_PATH = re.compile(r"[\w.-]+(/[\w.*-]+)+/?")


def missing_paths(document: Path, root: Path = ROOT) -> list[str]:
    """The repository paths `document` names that do not exist.

    A path in backticks (outside fenced blocks) is one whose first part is at the repository's
    root (`cds_service/web/openapi.yaml`, `cards/*.yaml`) or is a package of `cds_service`
    (`read/text/`, as the documents name the stages' files); other names (`instance/...`, made at
    run time) are not checked. A link's target is relative to the document, as a Markdown viewer
    reads it; web addresses and anchors are not checked.
    """
    text = _FENCED.sub("", document.read_text(encoding="utf-8"))
    missing = []
    for name in _CODE.findall(text):
        if not _PATH.fullmatch(name):
            continue
        first = name.split("/", 1)[0]
        base = root if (root / first).exists() else root / "cds_service" if (root / "cds_service" / first).is_dir() else None
        if base is not None and not list(base.glob(name.rstrip("/"))):
            missing.append(name)
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
            continue
        if not (document.parent / target.split("#", 1)[0]).exists():
            missing.append(target)
    return missing


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_the_documents_name_exists(document):
    """Issue 18: the README named cds_service/trust/... and cds_service/openapi.yaml after they moved."""
    assert missing_paths(document) == []


def test_the_path_check_catches_a_moved_file(tmp_path):
    (tmp_path / "cds_service" / "web").mkdir(parents=True)
    (tmp_path / "cds_service" / "web" / "openapi.yaml").write_text("openapi: 3.1.0\n")
    (tmp_path / "docs").mkdir()
    document = tmp_path / "docs" / "guide.md"
    document.write_text(
        "Served from `cds_service/web/openapi.yaml`, once `cds_service/openapi.yaml`; see `web/` and\n"
        "`web/openapi.py`, [the spec](../cds_service/web/openapi.yaml) and [gone](old.md#part).\n"
        "Made at run time: `instance/spool/`. [Web](https://example.org/x.md)\n"
        "```sh\ncat cds_service/nowhere.txt `cds_service/nowhere.txt`\n```\n"
    )
    assert missing_paths(document, tmp_path) == ["cds_service/openapi.yaml", "web/openapi.py", "old.md#part"]
