"""The card content: `cards/*.yaml` loaded, checked and compiled once at start-up.

Role in the data flow: render stage. The wording of every card is data (`cards/`, one YAML file
per topic plus `common.yaml` with the shared partials, labels and study codes); its Jinja2
templates are compiled here, so a missing topic, key or a template syntax error fails the
start-up, not a request (docs/clinical-specification.md section 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jinja2 import DictLoader, Environment, StrictUndefined, TemplateSyntaxError

from cds_service import vocabulary

REQUIRED_TOPIC_KEYS = ("topic", "display", "summary", "detail", "source")


class CardContentError(RuntimeError):
    """The card content files are incomplete or malformed (raised at start-up)."""


@dataclass
class Topic:
    code: str
    display: str
    source: dict
    override_reasons: list[dict] = field(default_factory=list)
    suggestion_label: str | None = None
    priority_suggestion_label: str | None = None  # when only the priority changes (same study)
    contrast_suggestion_label: str | None = None  # the MRI without and with contrast alternative
    links: list[dict] = field(default_factory=list)  # CDS Hooks Links: the guideline, absolute


class CardContent:
    """`common` (common.yaml), `topics` by code, and the compiled `templates` by name."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        common_path = self.directory / "common.yaml"
        if not common_path.is_file():
            raise CardContentError(f"card content file missing: {common_path}")
        self.common = self._load(common_path)
        for key in ("topic_system", "override_reason_system", "system_action_description",
                    "suggested_studies", "physical_therapy", "study_labels", "red_flag_groups",
                    "data_labels", "gap_reasons", "partials", "rating_labels", "acr_variants", "code_system_names"):
            if key not in self.common:
                raise CardContentError(f"{common_path.name}: missing key {key!r}")

        templates: dict[str, str] = dict(self.common["partials"])
        templates["system_action_description"] = self.common["system_action_description"]
        templates["physical_therapy_description"] = self.common["physical_therapy"]["description"]
        self.topics: dict[str, Topic] = {}
        for code in vocabulary.Topic:
            path = self.directory / f"{code}.yaml"
            if not path.is_file():
                raise CardContentError(f"card content file missing: {path}")
            data = self._load(path)
            for key in REQUIRED_TOPIC_KEYS:
                if not data.get(key):
                    raise CardContentError(f"{path.name}: missing key {key!r}")
            if data["topic"] != code:
                raise CardContentError(f"{path.name}: topic {data['topic']!r} should be {code!r}")
            source = data["source"]
            if not source.get("label"):
                raise CardContentError(f"{path.name}: source.label missing")
            links = data.get("links") or []
            for link in links:
                if not (isinstance(link, dict) and link.get("label") and str(link.get("url", "")).startswith("https://")):
                    raise CardContentError(f"{path.name}: every link needs a label and an https url")
            reasons = data.get("override_reasons") or []
            for reason in reasons:
                if not reason.get("code") or not reason.get("display"):
                    raise CardContentError(f"{path.name}: every override reason needs code and display")
            self.topics[code] = Topic(
                code=code,
                display=data["display"],
                source={"label": source["label"], "url": source.get("url")},
                override_reasons=[
                    {"code": r["code"], "system": self.common["override_reason_system"], "display": r["display"]}
                    for r in reasons
                ],
                suggestion_label=data.get("suggestion_label"),
                priority_suggestion_label=data.get("priority_suggestion_label"),
                contrast_suggestion_label=data.get("contrast_suggestion_label"),
                links=[{"label": link["label"], "url": link["url"], "type": "absolute"} for link in links],
            )
            templates[f"{code}/summary"] = data["summary"]
            templates[f"{code}/detail"] = data["detail"]
            if data.get("delete_description"):
                templates[f"{code}/delete_description"] = data["delete_description"]

        self.env = Environment(
            loader=DictLoader(templates), undefined=StrictUndefined, autoescape=False,
            trim_blocks=True, lstrip_blocks=True,
        )
        # Compile every template now: a syntax error fails the start-up, not a request.
        try:
            self.templates = {name: self.env.get_template(name) for name in templates}
        except TemplateSyntaxError as error:
            raise CardContentError(f"card template {error.name!r} line {error.lineno}: {error.message}") from None

    @staticmethod
    def _load(path: Path) -> dict:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise CardContentError(f"{path.name}: not valid YAML ({error})") from None
        if not isinstance(data, dict):
            raise CardContentError(f"{path.name}: expected a mapping")
        return data
