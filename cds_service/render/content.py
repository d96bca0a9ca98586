"""The card content: `cards/*.yaml` loaded, checked and compiled once at start-up.

Role in the data flow: render stage. The wording of every card is data (`cards/`, one YAML file
per topic plus `common.yaml` with the shared partials, labels and study codes), read and checked
the way all rule data is (`cds_service.rules`: the schemas are in `rules/schemas/cards.py`); its
Jinja2 templates are compiled here, so a missing topic, key or a template syntax error fails the
start-up, not a request (docs/clinical-specification.md section 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import DictLoader, Environment, StrictUndefined, Template, TemplateSyntaxError

from cds_service import vocabulary
from cds_service.rules.loader import (
    RuleDataError,
    RuleModel,
    read_rule_file,
    shown,
    validate_rule_data,
)
from cds_service.rules.schemas.cards import CommonWording, TopicWording


class CardContentError(RuleDataError, RuntimeError):
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
    referral_suggestion_label: str | None = None  # the physical therapy referral beside a removal
    links: list[dict] = field(default_factory=list)  # CDS Hooks Links: the guideline, absolute
    # override reason code -> its CDS Hooks 3.0 example Coding (non-adherence-reason-codes), where one fits
    non_adherence: dict[str, dict] = field(default_factory=dict)


class CardContent:
    """`common` (common.yaml), `topics` by code, and the compiled `templates` by name."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.common = self._load("common", CommonWording)
        templates: dict[str, str] = dict(self.common["partials"])
        templates["system_action_description"] = self.common["system_action_description"]
        templates["physical_therapy_description"] = self.common["physical_therapy"]["description"]
        templates["update_description"] = self.common["update_description"]
        templates["priority_description"] = self.common["priority_description"]
        self.topics: dict[str, Topic] = {}
        for code in vocabulary.Topic:
            self.topics[code] = self._topic(code, templates)
        self.env = Environment(
            loader=DictLoader(templates), undefined=StrictUndefined, autoescape=False,
            trim_blocks=True, lstrip_blocks=True,
        )
        self.templates = self._compile(templates)

    def _topic(self, code: str, templates: dict[str, str]) -> Topic:
        """cards/<code>.yaml as a Topic; its templates join `templates` under '<code>/<name>'."""
        data = self._load(code, TopicWording)
        if data["topic"] != code:
            raise CardContentError(f"{code}.yaml: topic {data['topic']!r} should be {code!r}")
        for name in ("summary", "detail", "delete_description"):
            if data.get(name):
                templates[f"{code}/{name}"] = data[name]
        reasons = data.get("override_reasons") or []
        return Topic(
            code=code,
            display=data["display"],
            source={"label": data["source"]["label"], "url": data["source"].get("url")},
            override_reasons=[
                {"code": r["code"], "system": self.common["override_reason_system"], "display": r["display"]}
                for r in reasons
            ],
            suggestion_label=data.get("suggestion_label"),
            priority_suggestion_label=data.get("priority_suggestion_label"),
            contrast_suggestion_label=data.get("contrast_suggestion_label"),
            referral_suggestion_label=data.get("referral_suggestion_label"),
            links=[{"label": link["label"], "url": link["url"], "type": "absolute"}
                   for link in data.get("links") or []],
            non_adherence={r["code"]: {"system": self.common["non_adherence_system"], "code": r["non_adherence"]}
                           for r in reasons if r.get("non_adherence")},
        )

    def _compile(self, templates: dict[str, str]) -> dict[str, Template]:
        """Every template compiled now: a syntax error fails the start-up, not a request."""
        try:
            return {name: self.env.get_template(name) for name in templates}
        except TemplateSyntaxError as error:
            raise CardContentError(f"card template {error.name!r} line {error.lineno}: {error.message}") from None

    def _load(self, name: str, model: type[RuleModel]) -> dict:
        """cards/<name>.yaml, checked against its schema (cds_service.rules.schemas.cards)."""
        path = self.directory / f"{name}.yaml"
        if not path.is_file():
            raise CardContentError(f"card content file missing: {path}")
        data = read_rule_file(path, CardContentError)
        validate_rule_data(data, model, shown(path), error=CardContentError)
        return data
